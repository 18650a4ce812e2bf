import { describe, expect, it } from 'vitest';
import { parseCommitPositions } from './positions.js';
import { MetadataState, parseDeleteTopicCommand, parseMetadataSnapshot, type MetadataCommand, type MetadataSnapshot } from './metadata.js';

const brokers = ['b1', 'b2', 'b3', 'b4', 'b5'];

/** A cluster's metadata with two topics, a move of `orders`, durable and group positions on both. */
function populated(): MetadataState {
  const state = new MetadataState(brokers);
  state.apply({ type: 'create-topic', topic: 'orders', partitions: 4, replicationFactor: 3 });
  state.apply({ type: 'create-topic', topic: 'audit', partitions: 2, replicationFactor: 3 });
  const p0 = state.get('orders')?.partitions[0]?.replicas as string[];
  const to = brokers.find((id) => !p0.includes(id)) as string;
  expect(state.apply({ type: 'move-replica', topic: 'orders', partition: 0, from: p0[1] as string, to, atMs: 1 })).toMatchObject({ kind: 'move-started' });
  state.apply({ type: 'commit-positions', durable: 'd1', positions: [{ topic: 'orders', partition: 1, offset: 7 }, { topic: 'audit', partition: 0, offset: 3 }] });
  state.apply({ type: 'commit-positions', durable: 'only-orders', positions: [{ topic: 'orders', partition: 0, offset: 5 }] });
  state.apply({ type: 'group-join', group: 'g', member: 'm1', pattern: '>', sessionTimeoutMs: 1000 });
  for (const p of state.groups.assignmentOf('g', 'm1')) {
    state.apply({ type: 'group-commit', group: 'g', member: 'm1', positions: [{ topic: p.topic, partition: p.partition, offset: 9, epoch: p.epoch }], release: false });
  }
  return state;
}

const roundTrip = (snapshot: MetadataSnapshot): MetadataSnapshot => {
  const parsed = parseMetadataSnapshot(JSON.parse(JSON.stringify(snapshot)));
  expect(parsed).toBeDefined();
  return parsed as MetadataSnapshot;
};

describe('delete-topic', () => {
  it('removes the topic with its moves, durable positions and consumer-group partitions and positions; other topics keep theirs', () => {
    const state = populated();
    const before = structuredClone(state.get('orders'));
    expect(state.apply({ type: 'delete-topic', topic: 'orders' })).toEqual({ kind: 'topic-deleted', topic: before });
    expect(state.get('orders')).toBeUndefined();
    expect(state.all().map((t) => t.topic)).toEqual(['audit']);
    expect(state.moves.all()).toEqual([]);
    expect(state.positions('d1')).toEqual([{ topic: 'audit', partition: 0, offset: 3 }]);
    expect(state.positions('only-orders')).toEqual([]);
    expect(state.snapshot().durables.map((d) => d.durable)).toEqual(['d1']);
    const group = state.groups.get('g');
    expect(group?.partitions.map((p) => p.topic)).toEqual(['audit', 'audit']);
    expect(group?.positions.every((c) => c.topic === 'audit')).toBe(true);
    expect(group?.positions).toHaveLength(2);
    expect(state.groups.assignmentOf('g', 'm1')).toHaveLength(2);
  });

  it('a commit ordered after the deletion (in flight when it was applied) stores nothing: the topic created again starts without it', () => {
    const state = populated();
    state.apply({ type: 'delete-topic', topic: 'orders' });
    // Checked at a broker edge that still had the topic, proposed once the deletion was in the log.
    const late = state.apply({ type: 'commit-positions', durable: 'only-orders', positions: [{ topic: 'orders', partition: 0, offset: 6 }] });
    expect(late).toEqual({ kind: 'positions', positions: [] });
    state.apply({ type: 'commit-positions', durable: 'd1', positions: [{ topic: 'orders', partition: 1, offset: 8 }, { topic: 'audit', partition: 0, offset: 4 }] });
    state.apply({ type: 'create-topic', topic: 'orders', partitions: 4, replicationFactor: 3 });
    // Offsets 6 and 8 were the deleted topic's: taken for the new one's, they would skip its first messages unannounced.
    expect(state.positions('only-orders')).toEqual([]);
    expect(state.positions('d1')).toEqual([{ topic: 'audit', partition: 0, offset: 4 }]);
    expect(state.snapshot().durables.map((d) => d.durable)).toEqual(['d1']);
  });

  it('a commit checked against an earlier incarnation at its broker edge (a broker behind) stores nothing for the topic created again', () => {
    const state = populated();
    state.apply({ type: 'delete-topic', topic: 'orders' });
    state.apply({ type: 'create-topic', topic: 'orders', partitions: 4, replicationFactor: 3 });
    // The edge names the incarnation it checked the topic in (0, the deleted one); the log orders it after the new one's creation.
    const parsed = parseCommitPositions({ type: 'commit-positions', durable: 'only-orders', positions: [{ topic: 'orders', partition: 0, offset: 6, incarnation: 0 }] });
    expect(parsed?.positions[0]?.incarnation).toBe(0);
    expect(state.apply(parsed as MetadataCommand)).toEqual({ kind: 'positions', positions: [] });
    // The current incarnation (1), or none named (an older broker's entry), is stored as before.
    state.apply({ type: 'commit-positions', durable: 'd1', positions: [{ topic: 'orders', partition: 0, offset: 2, incarnation: 1 }, { topic: 'orders', partition: 1, offset: 3 }] });
    expect(state.positions('d1')).toEqual([{ topic: 'audit', partition: 0, offset: 3 }, { topic: 'orders', partition: 0, offset: 2 }, { topic: 'orders', partition: 1, offset: 3 }]);
    expect(state.positions('only-orders')).toEqual([]);
  });

  it('answers missing for an unknown topic and changes nothing', () => {
    const state = populated();
    const before = state.snapshot();
    expect(state.apply({ type: 'delete-topic', topic: 'nope' })).toEqual({ kind: 'missing', topic: 'nope' });
    expect(state.snapshot()).toEqual(before);
  });

  it('gives the load back: the next topic is placed as on a cluster that never had the deleted one', () => {
    const state = new MetadataState(brokers);
    state.apply({ type: 'create-topic', topic: 'big', partitions: 10, replicationFactor: 3 });
    state.apply({ type: 'create-topic', topic: 'small', partitions: 1, replicationFactor: 3 });
    state.apply({ type: 'delete-topic', topic: 'big' });
    const fresh = new MetadataState(brokers);
    fresh.apply({ type: 'create-topic', topic: 'small', partitions: 1, replicationFactor: 3 });
    const next: MetadataCommand = { type: 'create-topic', topic: 'next', partitions: 5, replicationFactor: 3 };
    expect(state.apply(next)).toMatchObject({ kind: 'created', topic: { partitions: (fresh.apply(next) as { topic: { partitions: unknown } }).topic.partitions } });
  });

  it('a topic created again under the name is a new incarnation with no positions; the counter survives a snapshot', () => {
    const state = populated();
    expect(state.get('orders')?.incarnation).toBeUndefined();
    state.apply({ type: 'delete-topic', topic: 'orders' });
    const again = state.apply({ type: 'create-topic', topic: 'orders', partitions: 2, replicationFactor: 3 });
    expect(again).toMatchObject({ kind: 'created', topic: { incarnation: 1 } });
    expect(state.positions('d1').filter((c) => c.topic === 'orders')).toEqual([]);
    expect(state.groups.position('g', 'orders', 1)).toBeUndefined();
    const restored = new MetadataState(brokers);
    restored.restore(roundTrip(state.snapshot()));
    expect(restored.snapshot()).toEqual(state.snapshot());
    // Deleted and created again after the restore: both continue the count alike.
    for (const s of [state, restored]) {
      s.apply({ type: 'delete-topic', topic: 'orders' });
      expect(s.apply({ type: 'create-topic', topic: 'orders', partitions: 1, replicationFactor: 3 })).toMatchObject({ topic: { incarnation: 2 } });
    }
    expect(restored.snapshot()).toEqual(state.snapshot());
  });

  it("a group member's commit under its grant of the deleted topic is fenced once the topic is created again (the new grant has a new epoch): group commits need no incarnation", () => {
    const state = populated();
    const old = state.groups.assignmentOf('g', 'm1').find((p) => p.topic === 'orders' && p.partition === 1);
    expect(old).toBeDefined();
    state.apply({ type: 'delete-topic', topic: 'orders' });
    // In flight at the deletion: no such partition.
    const late: MetadataCommand = { type: 'group-commit', group: 'g', member: 'm1', positions: [{ topic: 'orders', partition: 1, offset: 12, epoch: old?.epoch ?? 0 }], release: false };
    expect(state.apply(late)).toMatchObject({ kind: 'group', known: true, fenced: [{ topic: 'orders', partition: 1, offset: 12 }] });
    state.apply({ type: 'create-topic', topic: 'orders', partitions: 2, replicationFactor: 3 });
    const fresh = state.groups.assignmentOf('g', 'm1').find((p) => p.topic === 'orders' && p.partition === 1);
    expect(fresh?.epoch).toBeGreaterThan(old?.epoch ?? 0);
    // Ordered after the creation again, to the same member: fenced all the same, and the new topic has no position.
    expect(state.apply(late)).toMatchObject({ kind: 'group', known: true, fenced: [{ topic: 'orders', partition: 1, offset: 12 }] });
    expect(state.groups.position('g', 'orders', 1)).toBeUndefined();
  });

  it('snapshot and restore round trip: a restored state deletes exactly as the original, and goes on the same', () => {
    const original = populated();
    const restored = new MetadataState(brokers);
    restored.restore(roundTrip(original.snapshot()));
    const commands: MetadataCommand[] = [
      { type: 'delete-topic', topic: 'orders' },
      { type: 'create-topic', topic: 'later', partitions: 3, replicationFactor: 3 },
      { type: 'delete-topic', topic: 'audit' },
      { type: 'create-topic', topic: 'orders', partitions: 2, replicationFactor: 2 },
    ];
    for (const command of commands) expect(restored.apply(command)).toEqual(original.apply(command));
    expect(restored.snapshot()).toEqual(original.snapshot());
    expect(original.snapshot().topicsDeleted).toBe(2);
  });

  it('parses delete-topic entries and refuses malformed ones, and malformed snapshot fields', () => {
    expect(parseDeleteTopicCommand({ type: 'delete-topic', topic: 'orders' })).toEqual({ type: 'delete-topic', topic: 'orders' });
    expect(parseDeleteTopicCommand({ type: 'delete-topic', topic: '' })).toBeUndefined();
    expect(parseDeleteTopicCommand({ type: 'delete-topic' })).toBeUndefined();
    expect(parseDeleteTopicCommand({ type: 'create-topic', topic: 'x' })).toBeUndefined();
    expect(parseDeleteTopicCommand(null)).toBeUndefined();
    const snapshot = populated().snapshot();
    expect(parseMetadataSnapshot({ ...snapshot, topicsDeleted: -1 })).toBeUndefined();
    expect(parseMetadataSnapshot({ ...snapshot, topics: [{ ...snapshot.topics[0], incarnation: 'x' }] })).toBeUndefined();
  });
});
