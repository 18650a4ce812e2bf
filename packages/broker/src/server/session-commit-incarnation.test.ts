/**
 * A durable commit's positions at the broker edge, by topic incarnation: one
 * naming the current incarnation goes into the replicated entry with it; one
 * naming a deleted incarnation (the topic deleted and created again since) is
 * not stored, the others are, and the answer is `INVALID_TOPIC` naming it;
 * one this broker has not applied yet is `NOT_READY`; none named takes the
 * incarnation checked here; an engine without incarnations stores none.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, decodeBrokerFrame, encodeFrame, type BrokerFrame, type ClientFrame, type Cursor } from '@relaymq/sdk/protocol';
import { MemoryEngine } from '../engine/memory.js';
import { resolveBrokerOptions } from '../options.js';
import { newSecurityCounters } from '../security/counters.js';
import { Fanout } from './fanout.js';
import type { ClientSocket } from './session-context.js';
import { ClientSession } from './session.js';

class RecordingSocket implements ClientSocket {
  readonly frames: BrokerFrame[] = [];
  send(bytes: Uint8Array): void {
    this.frames.push(decodeBrokerFrame(bytes, 64 * 1024 * 1024));
  }
  close(): void {}
  terminate(): void {}
}

const sessions: ClientSession[] = [];
afterEach(() => {
  for (const s of sessions.splice(0)) s.ended();
});

/** A memory engine that tracks incarnations as a clustered one does (`current`: each topic's), recording what it is asked to store. */
async function setup(current: Record<string, number> | undefined, deletedSoFar = 0): Promise<{ commit: (positions: Cursor[]) => Promise<BrokerFrame>; stored: Cursor[][] }> {
  const resolved = resolveBrokerOptions({});
  const engine = new MemoryEngine({ ...resolved, now: Date.now });
  for (const topic of ['a', 'b']) await engine.ensureTopic(topic);
  const stored: Cursor[][] = [];
  const commitPositions = engine.commitPositions.bind(engine);
  engine.commitPositions = (durable, positions) => {
    stored.push(positions.map((p) => ({ ...p })));
    return commitPositions(durable, positions);
  };
  if (current !== undefined) {
    const tracking = engine as MemoryEngine & { topicIncarnation?(topic: string): number | undefined; incarnationStatus?(topic: string, incarnation: number): 'current' | 'gone' | 'ahead' };
    tracking.topicIncarnation = (topic) => current[topic];
    tracking.incarnationStatus = (topic, incarnation) => {
      const now = current[topic];
      // Missing as the cluster engine tells it: gone when a deletion after that incarnation's creation was applied.
      if (now === undefined) return deletedSoFar > incarnation ? 'gone' : 'ahead';
      return now === incarnation ? 'current' : now > incarnation ? 'gone' : 'ahead';
    };
  }
  const socket = new RecordingSocket();
  const s = new ClientSession(
    socket,
    { options: resolved, engine, fanout: new Fanout(engine), cluster: () => ({ brokers: [] }), now: Date.now, newId: () => 'id', draining: () => false, ready: () => true, authenticator: undefined, counters: newSecurityCounters() },
    () => {},
  );
  sessions.push(s);
  const send = (frame: ClientFrame): void => s.receive(encodeFrame(frame));
  send({ type: 'hello', version: PROTOCOL_VERSION, clientId: 'c', producerId: 'p' });
  let nextId = 0;
  const commit = async (positions: Cursor[]): Promise<BrokerFrame> => {
    const id = ++nextId;
    send({ type: 'commit', id, durable: 'd', positions });
    for (let i = 0; i < 200; i++) {
      const answer = socket.frames.find((f) => 'id' in f && f.id === id && (f.type === 'committed' || f.type === 'error'));
      if (answer !== undefined) return answer;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    throw new Error(`commit ${id} not answered within 1 s`);
  };
  return { commit, stored };
}

describe('durable commits by topic incarnation at the broker edge', () => {
  it("stores the current incarnation's positions with it, and none of a deleted one (answered INVALID_TOPIC naming it)", async () => {
    const { commit, stored } = await setup({ a: 2, b: 0 });
    expect(await commit([{ topic: 'a', partition: 0, offset: 5, incarnation: 2 }])).toMatchObject({ type: 'committed' });
    expect(stored).toEqual([[{ topic: 'a', partition: 0, offset: 5, incarnation: 2 }]]);

    // `a` at incarnation 1 is the deleted topic's: not stored; `b`'s position in the same commit is.
    const refused = await commit([{ topic: 'a', partition: 0, offset: 9, incarnation: 1 }, { topic: 'b', partition: 0, offset: 3, incarnation: 0 }]);
    expect(refused).toMatchObject({ type: 'error', code: 'INVALID_TOPIC' });
    expect((refused as { message: string }).message).toMatch(/a\/0 \(incarnation 1\)/);
    expect(stored[1]).toEqual([{ topic: 'b', partition: 0, offset: 3, incarnation: 0 }]);
    // Only stale ones: nothing reaches the engine.
    expect(await commit([{ topic: 'a', partition: 0, offset: 9, incarnation: 0 }])).toMatchObject({ type: 'error', code: 'INVALID_TOPIC' });
    expect(stored).toHaveLength(2);
  });

  it('answers NOT_READY for an incarnation not applied here yet; names the one checked here when the SDK names none', async () => {
    const { commit, stored } = await setup({ a: 2, b: 0 });
    expect(await commit([{ topic: 'a', partition: 0, offset: 1, incarnation: 3 }])).toMatchObject({ type: 'error', code: 'NOT_READY' });
    expect(stored).toEqual([]);
    expect(await commit([{ topic: 'a', partition: 0, offset: 1 }])).toMatchObject({ type: 'committed' });
    expect(stored).toEqual([[{ topic: 'a', partition: 0, offset: 1, incarnation: 2 }]]);
  });

  it('an engine without incarnations stores positions as before, dropping one the SDK named', async () => {
    const { commit, stored } = await setup(undefined);
    expect(await commit([{ topic: 'a', partition: 0, offset: 4, incarnation: 7 }])).toMatchObject({ type: 'committed' });
    expect(stored).toEqual([[{ topic: 'a', partition: 0, offset: 4 }]]);
  });

  it('a topic missing here: NOT_READY for an incarnation not applied yet (this broker behind), not INVALID_TOPIC', async () => {
    // `c` was created (incarnation 1) after this broker's metadata: 1 deletion applied here, none since.
    const { commit, stored } = await setup({ a: 0, b: 0 }, 1);
    expect(await commit([{ topic: 'c', partition: 0, offset: 4, incarnation: 1 }])).toMatchObject({ type: 'error', code: 'NOT_READY' });
    expect(stored).toEqual([]);
  });

  it("a topic missing here, deleted since the commit's incarnation: the others are stored, INVALID_TOPIC names it", async () => {
    // `c` at incarnation 1 was deleted (the 2nd deletion applied here) and not created again.
    const { commit, stored } = await setup({ a: 0, b: 0 }, 2);
    const refused = await commit([{ topic: 'c', partition: 0, offset: 4, incarnation: 1 }, { topic: 'b', partition: 0, offset: 3, incarnation: 0 }]);
    expect(refused).toMatchObject({ type: 'error', code: 'INVALID_TOPIC' });
    expect((refused as { message: string }).message).toMatch(/c\/0 \(incarnation 1\)/);
    expect(stored).toEqual([[{ topic: 'b', partition: 0, offset: 3, incarnation: 0 }]]);
  });

  it('a position of a deleted incarnation with more partitions than the current one: not stored, the others are (not INVALID_PARTITION for all)', async () => {
    // `a` had 4 partitions at incarnation 0; it is incarnation 1 now, with 1.
    const { commit, stored } = await setup({ a: 1, b: 0 }, 1);
    const refused = await commit([{ topic: 'a', partition: 3, offset: 7, incarnation: 0 }, { topic: 'b', partition: 0, offset: 3, incarnation: 0 }]);
    expect(refused).toMatchObject({ type: 'error', code: 'INVALID_TOPIC' });
    expect((refused as { message: string }).message).toMatch(/a\/3 \(incarnation 0\)/);
    expect(stored).toEqual([[{ topic: 'b', partition: 0, offset: 3, incarnation: 0 }]]);
  });
});
