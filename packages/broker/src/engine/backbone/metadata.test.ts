import { describe, expect, it } from 'vitest';
import { BackboneMetadata, parseMetaEntry, type MetaCommand } from './metadata.js';

/** Two gateways applying the same commands in the same order end in the same state. */
function replay(commands: MetaCommand[]): BackboneMetadata {
  const state = new BackboneMetadata();
  for (const c of commands) state.apply(c);
  return state;
}

describe('backbone metadata state machine', () => {
  it('lets the first create of a topic win; a racing create is answered with the winner', () => {
    const state = new BackboneMetadata();
    expect(state.apply({ type: 'topic-create', topic: 'a.b', partitions: 3, generation: 'g1' })).toMatchObject({ kind: 'topic', created: true, topic: { generation: 'g1', partitions: 3 } });
    expect(state.apply({ type: 'topic-create', topic: 'a.b', partitions: 5, generation: 'g2' })).toMatchObject({
      kind: 'topic',
      created: false,
      info: { topic: 'a.b', partitions: 3 },
      topic: { generation: 'g1' },
    });
  });

  it('records the replication factor a topic was created with (new partitions get it), and none from an older gateway\'s entry', () => {
    const state = replay([
      { type: 'topic-create', topic: 'r3', partitions: 1, generation: 'g', replicationFactor: 3 },
      { type: 'topic-create', topic: 'old', partitions: 1, generation: 'h' },
      { type: 'topic-create', topic: 'bad', partitions: 1, generation: 'i', replicationFactor: -2 },
    ]);
    expect(state.topics.get('r3')).toEqual({ partitions: 1, generation: 'g', replicationFactor: 3 });
    expect(state.topics.get('old')).toEqual({ partitions: 1, generation: 'h' });
    expect(state.topics.get('bad')).toEqual({ partitions: 1, generation: 'i' });
    state.apply({ type: 'topic-alter', topic: 'r3', partitions: 2 });
    expect(state.topics.get('r3')?.replicationFactor).toBe(3);
  });

  it('raises partition counts only, and refuses unknown topics', () => {
    const state = replay([{ type: 'topic-create', topic: 't', partitions: 2, generation: 'g' }]);
    expect(state.apply({ type: 'topic-alter', topic: 't', partitions: 2 })).toMatchObject({ kind: 'refused', code: 'INVALID_ARGUMENT' });
    expect(state.apply({ type: 'topic-alter', topic: 't', partitions: 4 })).toMatchObject({ kind: 'topic', addedFrom: 2, info: { partitions: 4 } });
    expect(state.apply({ type: 'topic-alter', topic: 'nope', partitions: 4 })).toMatchObject({ kind: 'refused', code: 'INVALID_TOPIC' });
  });

  it('keeps durable positions raise-only and forgets them with their topic', () => {
    const state = replay([
      { type: 'topic-create', topic: 't', partitions: 1, generation: 'g' },
      { type: 'positions', durable: 'd', positions: [{ topic: 't', partition: 0, offset: 5 }] },
      { type: 'positions', durable: 'd', positions: [{ topic: 't', partition: 0, offset: 3 }] },
    ]);
    expect(state.positions.get('d')).toEqual([{ topic: 't', partition: 0, offset: 5 }]);
    expect(state.apply({ type: 'topic-delete', topic: 't' })).toMatchObject({ kind: 'topic-deleted', topic: { generation: 'g' } });
    expect(state.positions.get('d')).toEqual([]);
    expect(state.topics.has('t')).toBe(false);
    // Created again: a new generation, so new streams from offset 0.
    expect(state.apply({ type: 'topic-create', topic: 't', partitions: 1, generation: 'h' })).toMatchObject({ created: true, topic: { generation: 'h' } });
  });

  it('applies consumer-group commands with the groups table of the embedded engines', () => {
    const commands: MetaCommand[] = [
      { type: 'topic-create', topic: 'orders', partitions: 2, generation: 'g' },
      { type: 'group', command: { type: 'group-join', group: 'billing', member: 'm1', pattern: 'orders', sessionTimeoutMs: 10_000 } },
    ];
    const a = replay(commands);
    const b = replay(commands);
    expect(a.groups.toRecords()).toEqual(b.groups.toRecords());
    expect(a.groups.toRecords()[0]).toMatchObject({ group: 'billing', members: ['m1'] });
  });

  it('reads entries back from their JSON, skipping anything else', () => {
    const entry = { id: 'x:1', command: { type: 'barrier' } };
    expect(parseMetaEntry(Buffer.from(JSON.stringify(entry)))).toEqual(entry);
    expect(parseMetaEntry(Buffer.from('not json'))).toBeUndefined();
    expect(parseMetaEntry(Buffer.from('{"id":1}'))).toBeUndefined();
  });
});
