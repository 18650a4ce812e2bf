import { describe, expect, it } from 'vitest';
import { MetadataState, assignReplicas, parseMetadataSnapshot } from './metadata.js';

describe('assignReplicas', () => {
  it('spreads preferred leaders and replicas evenly over the brokers', () => {
    const assignment = assignReplicas(['b1', 'b2', 'b3'], new Map(), 6, 3);
    expect(assignment.map((p) => p.replicas)).toEqual([
      ['b1', 'b2', 'b3'],
      ['b2', 'b1', 'b3'],
      ['b3', 'b1', 'b2'],
      ['b1', 'b2', 'b3'],
      ['b2', 'b1', 'b3'],
      ['b3', 'b1', 'b2'],
    ]);
    const leaders = assignment.map((p) => p.replicas[0]);
    for (const id of ['b1', 'b2', 'b3']) expect(leaders.filter((l) => l === id)).toHaveLength(2);
  });

  it('never places two replicas of a partition on one broker', () => {
    for (let brokers = 1; brokers <= 7; brokers++) {
      const ids = Array.from({ length: brokers }, (_, i) => `b${i}`);
      for (let rf = 1; rf <= brokers; rf++) {
        for (const partition of assignReplicas(ids, new Map(), 10, rf)) {
          expect(new Set(partition.replicas).size).toBe(rf);
        }
      }
    }
  });
});

describe('MetadataState', () => {
  it('creates a topic once, capping the replication factor by the cluster size', () => {
    const state = new MetadataState(['b1', 'b2']);
    const created = state.apply({ type: 'create-topic', topic: 'orders', partitions: 2, replicationFactor: 3 });
    expect(created).toMatchObject({ kind: 'created', topic: { topic: 'orders', replicationFactor: 2 } });
    expect(state.apply({ type: 'create-topic', topic: 'orders', partitions: 9, replicationFactor: 1 })).toEqual({
      kind: 'exists',
      topic: created.topic,
    });
    expect(state.get('orders')?.partitions).toHaveLength(2);
  });

  it('balances leaders across topics, not just within one', () => {
    const state = new MetadataState(['b1', 'b2', 'b3']);
    const leaders = ['a', 'b', 'c'].map(
      (topic) => state.apply({ type: 'create-topic', topic, partitions: 1, replicationFactor: 3 }).topic.partitions[0]?.replicas[0],
    );
    expect(new Set(leaders)).toEqual(new Set(['b1', 'b2', 'b3']));
  });

  it('is deterministic: the same commands give the same state on every broker', () => {
    const commands = ['x', 'y', 'z'].map((topic, i) => ({ type: 'create-topic' as const, topic, partitions: i + 1, replicationFactor: 2 }));
    const a = new MetadataState(['b3', 'b1', 'b2']);
    const b = new MetadataState(['b1', 'b2', 'b3']);
    for (const command of commands) {
      a.apply(command);
      b.apply(command);
    }
    expect(a.all()).toEqual(b.all());
  });

  it('applies commit-positions with max(): positions never go back, and topics are untouched', () => {
    const state = new MetadataState(['b1', 'b2', 'b3']);
    // Positions are kept for topics that exist (one deleted meanwhile takes none: delete-topic.test.ts).
    state.apply({ type: 'create-topic', topic: 'orders', partitions: 1, replicationFactor: 3 });
    const topics = structuredClone(state.all());
    const commit = (offset: number): ReturnType<MetadataState['apply']> =>
      state.apply({ type: 'commit-positions', durable: 'billing', positions: [{ topic: 'orders', partition: 0, offset }] });
    expect(commit(10)).toEqual({ kind: 'positions', positions: [{ topic: 'orders', partition: 0, offset: 10 }] });
    expect(commit(4)).toEqual({ kind: 'positions', positions: [{ topic: 'orders', partition: 0, offset: 10 }] });
    expect(commit(11)).toEqual({ kind: 'positions', positions: [{ topic: 'orders', partition: 0, offset: 11 }] });
    expect(state.positions('billing')).toEqual([{ topic: 'orders', partition: 0, offset: 11 }]);
    expect(state.all()).toEqual(topics);
  });

  it('replays commits in log order to the same positions on every broker, whatever stale commits the log holds', () => {
    const commands = [7, 3, 9, 9, 2, 15, 1].map((offset, i) => ({
      type: 'commit-positions' as const,
      durable: i % 2 === 0 ? 'billing' : 'audit',
      positions: [{ topic: 'orders', partition: i % 3, offset }],
    }));
    const a = new MetadataState(['b1', 'b2']);
    const b = new MetadataState(['b2', 'b1']);
    for (const state of [a, b]) state.apply({ type: 'create-topic', topic: 'orders', partitions: 3, replicationFactor: 2 });
    for (const command of commands) {
      a.apply(command);
      b.apply(command);
    }
    expect(a.positions('billing')).toEqual(b.positions('billing'));
    expect(a.positions('audit')).toEqual(b.positions('audit'));
    expect(a.positions('billing')).toEqual([
      { topic: 'orders', partition: 0, offset: 7 },
      { topic: 'orders', partition: 2, offset: 9 },
      { topic: 'orders', partition: 1, offset: 2 },
    ]);
  });
});

describe('MetadataState snapshots', () => {
  it('restores topics and durable positions, and goes on exactly as the original', () => {
    const original = new MetadataState(['b1', 'b2', 'b3']);
    original.apply({ type: 'create-topic', topic: 'orders', partitions: 2, replicationFactor: 3 });
    original.apply({ type: 'commit-positions', durable: 'billing', positions: [{ topic: 'orders', partition: 1, offset: 7 }] });
    const snapshot = original.snapshot();
    original.apply({ type: 'create-topic', topic: 'later', partitions: 1, replicationFactor: 3 }); // the snapshot is a copy
    expect(snapshot.topics.map((t) => t.topic)).toEqual(['orders']);

    const copy = new MetadataState(['b1', 'b2', 'b3']);
    copy.restore(parseMetadataSnapshot(structuredClone(snapshot)) as NonNullable<ReturnType<typeof parseMetadataSnapshot>>);
    expect(copy.get('orders')).toEqual(original.get('orders'));
    expect(copy.positions('billing')).toEqual([{ topic: 'orders', partition: 1, offset: 7 }]);
    // Deterministic from there: the same next command gives the same assignment.
    copy.apply({ type: 'create-topic', topic: 'later', partitions: 1, replicationFactor: 3 });
    expect(copy.get('later')).toEqual(original.get('later'));
  });

  it('creates several topics in one create-topics entry exactly as one entry per topic would, skipping those that exist', () => {
    const topics = Array.from({ length: 50 }, (_, i) => ({ topic: `t${i}`, partitions: (i % 8) + 1, replicationFactor: 3 }));
    const one = new MetadataState(['b1', 'b2', 'b3', 'b4']);
    const bulk = new MetadataState(['b1', 'b2', 'b3', 'b4']);
    one.apply({ type: 'create-topic', topic: 't7', partitions: 2, replicationFactor: 1 });
    bulk.apply({ type: 'create-topic', topic: 't7', partitions: 2, replicationFactor: 1 });
    for (const topic of topics) one.apply({ type: 'create-topic', ...topic });
    const result = bulk.apply({ type: 'create-topics', topics });
    expect(bulk.all()).toEqual(one.all());
    expect(result.kind).toBe('topics');
    expect(result.results.map((r) => r.kind)).toEqual(topics.map((t) => (t.topic === 't7' ? 'exists' : 'created')));
    expect(result.results[7]?.topic.partitions).toHaveLength(2); // the existing topic, unchanged
  });

  it('places 10,000 partitions (1,250 topics of 8) evenly, in bulk and one by one alike, and goes on the same after a restore', () => {
    const brokers = ['b1', 'b2', 'b3'];
    const topics = Array.from({ length: 1250 }, (_, i) => ({ topic: `scale.t${i}`, partitions: 8, replicationFactor: 3 }));
    const bulk = new MetadataState(brokers);
    for (let i = 0; i < topics.length; i += 250) bulk.apply({ type: 'create-topics', topics: topics.slice(i, i + 250) });
    const one = new MetadataState(brokers);
    for (const topic of topics) one.apply({ type: 'create-topic', ...topic });
    expect(bulk.all()).toEqual(one.all());
    const led = new Map<string, number>();
    for (const topic of bulk.all()) for (const p of topic.partitions) led.set(p.replicas[0] as string, (led.get(p.replicas[0] as string) ?? 0) + 1);
    for (const id of brokers) expect(Math.abs((led.get(id) ?? 0) - 10_000 / 3)).toBeLessThanOrEqual(1);
    // The load kept as topics were created is the load a restore counts again: the next topic lands the same.
    const restored = new MetadataState(brokers);
    restored.restore(bulk.snapshot());
    const next = { type: 'create-topic' as const, topic: 'next', partitions: 5, replicationFactor: 2 };
    expect(restored.apply(next)).toEqual(bulk.apply(next));
  });

  it('places each entry only on the brokers it names (a broker that joined, one removed), in bulk exactly as one by one and as a fresh count of every replica would', () => {
    const configured = ['b1', 'b2', 'b3'];
    // Entries as the metadata leader proposes them while b4 is admitted and then b3 leaves the group.
    const steps: Array<{ brokers?: string[]; topics: string[] }> = [
      { topics: ['old1', 'old2'] }, // entries from before brokers could join: the configured brokers
      { brokers: ['b1', 'b2', 'b3'], topics: ['a1', 'a2', 'a3'] },
      { brokers: ['b1', 'b2', 'b3', 'b4'], topics: ['j1', 'j2', 'j3', 'j4'] },
      { brokers: ['b1', 'b2', 'b4'], topics: ['r1', 'r2'] },
    ];
    const bulk = new MetadataState(configured);
    const one = new MetadataState(configured);
    // The reference: main's placement, each topic on the load counted again from every replica so far.
    const expected: Array<{ topic: string; replicas: string[][] }> = [];
    for (const step of steps) {
      const topics = step.topics.map((topic, i) => ({ topic, partitions: 5 + i, replicationFactor: 3 }));
      const result = bulk.apply({ type: 'create-topics', topics, ...(step.brokers === undefined ? {} : { brokers: step.brokers }) });
      expect(result.results.every((r) => r.kind === 'created')).toBe(true);
      for (const topic of topics) {
        one.apply({ type: 'create-topic', ...topic, ...(step.brokers === undefined ? {} : { brokers: step.brokers }) });
        const load = new Map<string, { replicas: number; leaders: number }>();
        for (const placed of expected) {
          for (const replicas of placed.replicas) {
            replicas.forEach((id, i) => {
              const entry = load.get(id) ?? { replicas: 0, leaders: 0 };
              entry.replicas++;
              if (i === 0) entry.leaders++;
              load.set(id, entry);
            });
          }
        }
        const eligible = step.brokers ?? configured;
        expected.push({ topic: topic.topic, replicas: assignReplicas(eligible, load, topic.partitions, 3).map((p) => p.replicas) });
        const placed = bulk.get(topic.topic)?.partitions.flatMap((p) => p.replicas) ?? [];
        expect(placed.every((id) => eligible.includes(id))).toBe(true);
      }
    }
    expect(bulk.all()).toEqual(one.all());
    expect(bulk.all().map((t) => ({ topic: t.topic, replicas: t.partitions.map((p) => p.replicas) }))).toEqual(expected);
    // The joined broker got its share, and the removed one nothing after it left.
    expect(bulk.get('j1')?.partitions.some((p) => p.replicas.includes('b4'))).toBe(true);
    expect(bulk.get('r2')?.partitions.some((p) => p.replicas.includes('b3'))).toBe(false);
    // A restore counts the joined broker's load again: the next entry lands the same.
    const restored = new MetadataState(configured);
    restored.restore(bulk.snapshot());
    const next = { type: 'create-topics' as const, topics: [{ topic: 'n1', partitions: 7, replicationFactor: 2 }], brokers: ['b1', 'b2', 'b4'] };
    expect(restored.apply(next)).toEqual(bulk.apply(next));
  });

  it('counts partitions added to a topic in the load: the next topic lands the same applied, restored and recounted', () => {
    const brokers = ['b1', 'b2', 'b3'];
    const applied = new MetadataState(brokers);
    applied.apply({ type: 'create-topic', topic: 'a', partitions: 2, replicationFactor: 2 });
    // Six more partitions of 'a' placed on b1 and b2 only: b3 holds less than the first topic alone suggests.
    applied.apply({ type: 'add-partitions', topic: 'a', partitions: 8, brokers: ['b1', 'b2'] });
    const restored = new MetadataState(brokers);
    restored.restore(applied.snapshot());
    const next = { type: 'create-topic' as const, topic: 'b', partitions: 6, replicationFactor: 2 };
    const placed = applied.apply(next);
    expect(restored.apply(next)).toEqual(placed);
    // A fresh count of every replica so far places it the same way too.
    const load = new Map<string, { replicas: number; leaders: number }>();
    for (const p of restored.get('a')?.partitions ?? []) {
      p.replicas.forEach((id, i) => {
        const entry = load.get(id) ?? { replicas: 0, leaders: 0 };
        entry.replicas++;
        if (i === 0) entry.leaders++;
        load.set(id, entry);
      });
    }
    expect(placed.topic.partitions).toEqual(assignReplicas(brokers, load, 6, 2));
    // b3 missed the added partitions, so it leads first and most of the new topic.
    expect(placed.topic.partitions.filter((p) => p.replicas[0] === 'b3').length).toBeGreaterThan(2);
  });

  it('refuses a malformed snapshot from a peer', () => {
    expect(parseMetadataSnapshot(null)).toBeUndefined();
    expect(parseMetadataSnapshot({ topics: [{ topic: 'x', replicationFactor: 1, partitions: [{ replicas: [1] }] }], durables: [] })).toBeUndefined();
    expect(parseMetadataSnapshot({ topics: [], durables: [{ durable: 'd', positions: [{ topic: 't', partition: -1, offset: 0 }] }] })).toBeUndefined();
    expect(parseMetadataSnapshot({ topics: [], durables: [] })).toEqual({ topics: [], durables: [] });
  });
});
