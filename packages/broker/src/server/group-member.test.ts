import { describe, expect, it } from 'vitest';
import type { AssignedPartition, BrokerFrame, Cursor } from '@relaymq/sdk/protocol';
import type { GroupPartition } from '../core/metadata/groups.js';
import type { LogEngine } from '../engine/engine.js';
import { GroupMember } from './group-member.js';

/** Just what GroupMember reads of an engine: the member's assignment, no committed position, and offsetForTime answered by the test. */
function stubEngine(): { engine: LogEngine; assign: (partitions: GroupPartition[]) => void; answers: Array<(offset: number) => void> } {
  let assigned: GroupPartition[] = [];
  const answers: Array<(offset: number) => void> = [];
  const engine = {
    consumerGroups: { assignmentOf: () => assigned, position: () => undefined },
    bounds: () => ({ start: 0, end: 10 }),
    offsetForTime: () => new Promise<number>((resolve) => answers.push(resolve)),
  } as unknown as LogEngine;
  return { engine, assign: (partitions) => { assigned = partitions; }, answers };
}

const granted = (frame: BrokerFrame | undefined): AssignedPartition[] => (frame?.type === 'assignment' ? frame.partitions : []);

describe('GroupMember with from: { time }', () => {
  it('does not start a later grant at an offset learnt for a partition no longer assigned (its topic deleted while learning)', async () => {
    const { engine, assign, answers } = stubEngine();
    const member = new GroupMember('g', 'm1', { time: 1_000 });
    const cursors = new Map<string, Cursor>();
    assign([{ topic: 't', partition: 0, owner: 'm1', epoch: 1, revoking: false }]);
    expect(granted(member.refresh(engine, 1, cursors))).toEqual([]);
    const [item] = member.takeUnknownStarts();
    const learning = member.learnStart(engine, item!);
    // The topic is deleted while its replica is asked: the group forgets the partition.
    assign([]);
    member.refresh(engine, 1, cursors);
    // The old topic's answer comes late: offset 500.
    answers[0]!(500);
    await learning;
    member.refresh(engine, 1, cursors);
    // Created again under the name (10 messages, from offset 0) and granted to the member: it learns the new topic's start.
    assign([{ topic: 't', partition: 0, owner: 'm1', epoch: 2, revoking: false }]);
    const frame = member.refresh(engine, 1, cursors);
    expect(granted(frame).find((p) => p.topic === 't')?.offset).toBeUndefined();
    expect(member.takeUnknownStarts()).toEqual([{ key: '0:t', topic: 't', partition: 0 }]);
    expect(cursors.get('0:t')).toBeUndefined();
  });
});

describe('GroupMember start lookups that fail', () => {
  it('are asked for again after a pause that doubles per failure in a row, up to 8 s, and starts over after a success', async () => {
    let fail = true;
    const engine = {
      consumerGroups: { assignmentOf: () => [], position: () => undefined },
      offsetForTime: () => (fail ? Promise.reject(new Error('no replica answered')) : Promise.resolve(3)),
    } as unknown as LogEngine;
    const member = new GroupMember('g', 'm1', { time: 1_000 });
    const item = { key: '0:t', topic: 't', partition: 0 };
    const pauses: number[] = [];
    for (let i = 0; i < 7; i++) {
      await expect(member.learnStart(engine, item)).rejects.toThrow('no replica answered');
      pauses.push(member.startRetryMs());
    }
    expect(pauses).toEqual([250, 500, 1000, 2000, 4000, 8000, 8000]);
    fail = false;
    await member.learnStart(engine, item);
    fail = true;
    await expect(member.learnStart(engine, item)).rejects.toThrow();
    expect(member.startRetryMs()).toBe(250);
  });
});
