import { describe, expect, it } from 'vitest';
import type { BrokerReport } from './broker-report.js';
import type { PartitionView } from './cluster-status.js';
import { buildClusterView, type ClusterPartition, type PeerAnswer } from './cluster-view.js';
import type { SeriesPoint } from './history.js';
import { bucketOf, countLatencies } from './latency-histogram.js';

const ids = ['b1', 'b2', 'b3'];

function report(broker: string, overrides: Partial<BrokerReport> = {}): BrokerReport {
  return {
    broker,
    url: `ws://${broker}`,
    timeMs: 10_000,
    ready: true,
    metadataLeader: 'b1',
    members: ids.map((id) => ({ id, url: `ws://${id}`, state: 'alive' })),
    partitions: [],
    connections: 1,
    subscriptions: 0,
    series: [],
    topicRates: [],
    stores: [],
    disk: null,
    consumers: [],
    topics: [{ topic: 'orders', replicationFactor: 3, partitions: [['b2', 'b3', 'b1']] }],
    events: [],
    ...overrides,
  };
}

const view = (overrides: Partial<PartitionView>): PartitionView => ({
  topic: 'orders',
  partition: 0,
  leader: 'b2',
  replicas: ['b2', 'b3', 'b1'],
  role: 'follower',
  term: 4,
  commit: 90,
  lastIndex: 90,
  lag: null,
  outOfSync: null,
  leaderless: false,
  underReplicated: false,
  ...overrides,
});

const point = (timeMs: number, inPerSec: number, latenciesMs: number[] = []): SeriesPoint => ({ timeMs, inPerSec, outPerSec: inPerSec * 2, p50Ms: null, p99Ms: null, latency: countLatencies(latenciesMs) });

/** b3 was killed: gossip on b1 and b2 calls it dead, and its peer link fails at once. */
function deadB3(): { b1: BrokerReport; b2: BrokerReport } {
  const members = [
    { id: 'b1', url: 'ws://b1', state: 'alive' as const },
    { id: 'b2', url: 'ws://b2', state: 'alive' as const },
    { id: 'b3', url: 'ws://b3', state: 'dead' as const },
  ];
  const b1 = report('b1', { members, partitions: [view({ role: 'follower' })], stores: [{ topic: 'orders', partition: 0, start: 0, end: 80, bytes: 1000 }], series: [point(1000, 10), point(2000, 20)] });
  const b2 = report('b2', {
    members,
    partitions: [view({ role: 'leader', lag: { b1: 0, b2: 0, b3: 40 }, outOfSync: ['b3'], underReplicated: true })],
    stores: [{ topic: 'orders', partition: 0, start: 0, end: 80, bytes: 1200 }],
    series: [point(1000, 5), point(2000, 7), point(3000, 9)],
    consumers: [{ kind: 'durable', consumer: 'billing', topic: 'orders', partition: 0, offset: 50, end: 80, lag: 30 }],
    topicRates: [{ topic: 'orders', inPerSec: 7, outPerSec: 3 }],
  });
  return { b1, b2 };
}

const dead: PeerAnswer = { error: 'NOT_CONNECTED: broker b3 is not connected' };
const stripRole = (ps: ClusterPartition[]): unknown[] => ps.map(({ role: _role, ...rest }) => rest);

describe('buildClusterView', () => {
  it("shows a follower's page the leader's truth: the dead replica, the lag, the same verdict on every broker", () => {
    const { b1, b2 } = deadB3();
    const fromB1 = buildClusterView({ self: b1, peers: new Map<string, PeerAnswer>([['b2', { report: b2 }], ['b3', dead]]), clustered: true, intervalMs: 1000 });
    const fromB2 = buildClusterView({ self: b2, peers: new Map<string, PeerAnswer>([['b1', { report: b1 }], ['b3', dead]]), clustered: true, intervalMs: 1000 });

    const [p] = fromB1.partitions;
    expect(p).toMatchObject({
      topic: 'orders',
      partition: 0,
      leader: 'b2',
      role: 'follower',
      status: 'under-replicated',
      underReplicated: true,
      replicaStates: { b1: 'in-sync', b2: 'leader', b3: 'dead' },
      lag: { b1: 0, b2: 0, b3: 40 },
      outOfSync: ['b3'],
      end: 80,
      sizeBytes: 1200,
      replicaBytes: 2200,
    });
    expect(fromB1.brokers.map((b) => [b.id, b.state, b.reachable])).toEqual([
      ['b1', 'alive', true],
      ['b2', 'alive', true],
      ['b3', 'dead', false],
    ]);
    expect(fromB1.healthy).toBe(false);
    expect(fromB1.problems).toEqual(['broker b3 is dead', 'partition orders/0 is under-replicated (out of sync: b3)']);
    expect(fromB1.reached).toEqual(['b1', 'b2']);
    expect(fromB1.unreachable).toEqual(['b3']);
    expect(fromB1.consumers).toEqual([{ kind: 'durable', consumer: 'billing', topic: 'orders', partition: 0, offset: 50, end: 80, lag: 30, leader: 'b2' }]);
    expect(fromB1.topics).toEqual([{ topic: 'orders', partitions: 1, replicationFactor: 3, messages: 80, sizeBytes: 1200, replicaBytes: 2200, inPerSec: 7, outPerSec: 3, status: 'under-replicated' }]);

    // The same truth from the leader's own page.
    expect(stripRole(fromB2.partitions)).toEqual(stripRole(fromB1.partitions));
    expect(fromB2.problems).toEqual(fromB1.problems);
    expect(fromB2.brokers.map((b) => [b.id, b.state])).toEqual(fromB1.brokers.map((b) => [b.id, b.state]));
    expect(fromB2.series.cluster).toEqual(fromB1.series.cluster);
  });

  it('sums brokers per second, only up to the second every answering broker has sampled, with percentiles of the added latencies', () => {
    const { b1, b2 } = deadB3();
    b1.series = [point(1000, 10, [1, 1, 1]), point(2000, 20, [100])];
    b2.series = [point(1000, 5, [1]), point(2000, 7, [100, 100, 100]), point(3000, 9)];
    const { series } = buildClusterView({ self: b1, peers: new Map<string, PeerAnswer>([['b2', { report: b2 }]]), clustered: true, intervalMs: 1000 });
    expect(series.cluster.map((p) => [p.timeMs, p.inPerSec, p.outPerSec])).toEqual([
      [1000, 15, 30],
      [2000, 27, 54],
    ]);
    const [first, second] = series.cluster;
    expect(first?.p50Ms).toBeGreaterThanOrEqual(1);
    expect(first?.p50Ms).toBeLessThan(1.1);
    expect(second?.p99Ms).toBeGreaterThanOrEqual(100);
    expect(second?.p99Ms).toBeLessThan(110);
    expect(second?.latency).toEqual({ [bucketOf(100)]: 4 });
    expect(Object.keys(series.brokers)).toEqual(['b1', 'b2']);
  });

  it('counts a late sampler\'s point, whose rates average several seconds, at every second it covers', () => {
    const { b1, b2 } = deadB3();
    // b2's sampler fired 2 s late: one point at 4000 for the 3 s since 1000, 9 msg/s (27 messages).
    b1.series = [point(1000, 10), point(2000, 10), point(3000, 10), point(4000, 10)];
    b2.series = [point(1000, 5, [1]), point(4000, 9, [100])];
    const { series } = buildClusterView({ self: b1, peers: new Map<string, PeerAnswer>([['b2', { report: b2 }]]), clustered: true, intervalMs: 1000 });
    expect(series.cluster.map((p) => [p.timeMs, p.inPerSec])).toEqual([
      [1000, 15],
      [2000, 19],
      [3000, 19],
      [4000, 19],
    ]);
    // Its latencies count once, at its own second.
    expect(series.cluster.map((p) => Object.values(p.latency).reduce((n, c) => n + c, 0))).toEqual([1, 0, 0, 1]);
    expect(series.brokers.b2).toEqual(b2.series);
  });

  it("marks a partition whose leader did not answer as unknown, never ok, and one nobody leads as leaderless", () => {
    const b1 = report('b1', {
      members: ids.map((id) => ({ id, url: `ws://${id}`, state: 'alive' })),
      partitions: [view({ role: 'follower', leader: 'b2' }), view({ topic: 'logs', leader: null, replicas: ['b1', 'b3'], leaderless: true })],
      topics: [
        { topic: 'orders', replicationFactor: 3, partitions: [['b2', 'b3', 'b1']] },
        { topic: 'logs', replicationFactor: 2, partitions: [['b1', 'b3']] },
      ],
    });
    const b3 = report('b3', { partitions: [view({ role: 'follower', leader: 'b2' }), view({ topic: 'logs', leader: null, replicas: ['b1', 'b3'], leaderless: true })] });
    // b2 is alive to gossip but its report timed out (a paused process).
    const v = buildClusterView({ self: b1, peers: new Map<string, PeerAnswer>([['b2', { error: 'TIMEOUT: console.report to broker b2 unanswered after 1500 ms' }], ['b3', { report: b3 }]]), clustered: true, intervalMs: 1000 });
    expect(v.partitions.map((p) => [`${p.topic}/${p.partition}`, p.status, p.leader, p.replicaStates])).toEqual([
      ['logs/0', 'leaderless', null, { b1: 'unknown', b3: 'unknown' }],
      ['orders/0', 'unknown', 'b2', { b2: 'unreachable', b3: 'unknown', b1: 'unknown' }],
    ]);
    expect(v.brokers.find((b) => b.id === 'b2')).toMatchObject({ state: 'unreachable', reachable: false, error: 'TIMEOUT: console.report to broker b2 unanswered after 1500 ms', connections: null });
    expect(v.problems).toEqual([
      'broker b2 did not answer b1 (TIMEOUT: console.report to broker b2 unanswered after 1500 ms)',
      'partition logs/0 has no leader',
      'partition orders/0: its leader b2 did not answer (unreachable)',
    ]);
  });

  it('keeps left and unseen brokers as gossip names them, and shows each event once', () => {
    const members = [
      { id: 'b1', url: 'ws://b1', state: 'alive' as const },
      { id: 'b2', url: '', state: 'left' as const },
      { id: 'b3', url: '', state: 'unseen' as const },
    ];
    const event = { timeMs: 5000, kind: 'member-state' as const, message: 'broker b2 is left (was alive)' };
    const b1 = report('b1', { members, topics: [], events: [event] });
    const v = buildClusterView({ self: b1, peers: new Map<string, PeerAnswer>([['b2', dead], ['b3', dead]]), clustered: true, intervalMs: 1000 });
    expect(v.brokers.map((b) => [b.id, b.state])).toEqual([
      ['b1', 'alive'],
      ['b2', 'left'],
      ['b3', 'unseen'],
    ]);
    expect(v.problems).toEqual(['broker b2 left the cluster', 'broker b3 has not joined since b1 started']);
    expect(v.events).toEqual([{ ...event, broker: 'b1' }]);
  });

  it("lists the moves in progress as the metadata leader reported them, none when it did not answer", () => {
    const move = { topic: 'orders', partition: 0, from: 'b3', to: 'b4', startedAtMs: 1_000, phase: 'catching-up', copiedBytes: 12_900_000, totalBytes: 41_943_040, bytesPerSecond: 4_000_000, timeLeftMs: 7_261, error: null };
    // b1 leads the metadata: its list is the truth; a follower's (pending, no figures) is not shown.
    const pending = { ...move, phase: 'pending', copiedBytes: null, totalBytes: null, bytesPerSecond: null, timeLeftMs: null };
    const peers = new Map<string, PeerAnswer>([['b1', { report: report('b1', { moves: [move] }) }], ['b3', { report: report('b3') }]]);
    expect(buildClusterView({ self: report('b2', { moves: [pending] }), peers, clustered: true, intervalMs: 1000 }).moves).toEqual([move]);
    const leaderSilent = new Map<string, PeerAnswer>([['b1', { error: 'timed out' }], ['b3', { report: report('b3') }]]);
    expect(buildClusterView({ self: report('b2'), peers: leaderSilent, clustered: true, intervalMs: 1000 }).moves).toEqual([]);
  });
});
