import { describe, expect, it } from 'vitest';
import type { BackboneHealth } from '../engine/backbone/health.js';
import { resolveBrokerOptions } from '../options.js';
import { parseBrokerReport, type BrokerReport } from './broker-report.js';
import { Membership, clusterStatus, type OperationsSource } from './cluster-status.js';
import { buildClusterView, type ClusterReport } from './cluster-view.js';
import { Operations } from './operations.js';
import { renderStatus } from './status-report.js';

/**
 * Gateways in the console (backbone mode): two gateways over RabbitMQ
 * streams, their reports built by `Operations.brokerReport` from what a
 * gateway's broker gives it (broker.ts: every partition "on" itself, `leads`
 * true for all), sent through the peer codec's checks, combined by
 * `buildClusterView` and printed by `relaymq status`.
 */

const stream = (partition: number): string => `relaymq:orders:k3x9:${partition}`;

/** What one gateway's health monitor reports: it tails `tailed`, whose leaders it learned as `leaders` (by partition). */
function health(tailed: number[], leaders: Record<number, string | null>): BackboneHealth {
  return {
    kind: 'rabbitmq-stream',
    connected: true,
    connectedTo: '10.0.0.5:5552',
    advertisedAs: 'rabbit-0:5552',
    connections: 2,
    nodes: [{ node: '10.0.0.5:5552', reachable: true, lastError: null, checkedAtMs: 1000, roundTripMs: 1.5 }],
    partitions: tailed.map((partition) => ({ topic: 'orders', partition, stream: stream(partition), leader: leaders[partition] ?? null })),
    lastConfirmMs: null,
  };
}

/** A gateway as broker.ts describes it to Operations: 3 partitions of `orders`, the end of each as its tail knows it, a durable consumer at offset 10 of partitions 0 and 1. */
function gatewaySource(id: string, peer: string, backbone: BackboneHealth, ends: number[]): OperationsSource {
  return {
    id,
    clustered: false,
    peerIds: [peer],
    dataDir: undefined,
    stats: () => ({ id, connections: 1, subscriptions: 0 }),
    cluster: () => ({ brokers: [id, peer].sort().map((b) => ({ id: b, url: `ws://${b}`, state: 'alive' as const })) }),
    groups: () => [],
    accepting: () => true,
    readReplica: () => Promise.resolve(undefined),
    url: () => `ws://${id}`,
    peerTransport: () => undefined,
    topics: () => [{ topic: 'orders', replicationFactor: 1, partitions: ends.map(() => [id]) }],
    hostedBounds: (_topic, partition) => ({ start: 0, end: ends[partition] as number }),
    leads: () => true,
    positionSources: () => [{ positions: () => [0, 1].map((partition) => ({ kind: 'durable' as const, consumer: 'billing', topic: 'orders', partition, offset: 10 })) }],
    browser: { partitionCount: () => 3, bounds: () => Promise.resolve({ start: 0, end: 0 }), read: () => Promise.resolve([]) },
    backbone: () => backbone,
  };
}

/** Each gateway's own report, through the checks a peer's report passes (the msgpack codec keeps what JSON keeps here). */
async function reportOf(source: OperationsSource): Promise<BrokerReport> {
  const report = await new Operations(resolveBrokerOptions({ id: source.id }), source).brokerReport();
  return parseBrokerReport(JSON.parse(JSON.stringify(report)));
}

async function twoGateways(): Promise<{ g1: BrokerReport; g2: BrokerReport; view: ClusterReport }> {
  // g1 tails partitions 0 and 1 and knows 0's stream leader; g2 tails 0 and 1 too, further along on 1, and knows 1's; nobody tails 2.
  const g1 = await reportOf(gatewaySource('g1', 'g2', health([0, 1], { 0: 'rabbit-1:5552', 1: null }), [40, 30, 0]));
  const g2 = await reportOf(gatewaySource('g2', 'g1', health([0, 1], { 0: null, 1: 'rabbit-2:5552' }), [40, 35, 0]));
  const view = buildClusterView({ self: g1, peers: new Map([['g2', { report: g2 }]]), clustered: false, intervalMs: 1000 });
  return { g1, g2, view };
}

describe('gateways in the console (backbone mode)', () => {
  it("a gateway's report claims no leadership: role gateway, no replica, each partition's leader is its stream's RabbitMQ leader as it knows it", async () => {
    const { g1 } = await twoGateways();
    expect(g1.partitions.map((p) => [p.partition, p.role, p.leader, p.replicas])).toEqual([
      [0, 'gateway', 'rabbit-1:5552', []],
      [1, 'gateway', null, []],
      [2, 'gateway', null, []],
    ]);
    expect(g1.partitions.every((p) => p.lag === null && p.outOfSync === null)).toBe(true);
    // No broker holds a replica of a stream: the topic lists none (not the gateway itself).
    expect(g1.topics).toEqual([{ topic: 'orders', replicationFactor: 1, partitions: [[], [], []] }]);
  });

  it('/api/cluster shows every gateway as a gateway leading nothing, and the partitions led by their RabbitMQ stream leaders', async () => {
    const { view } = await twoGateways();
    expect(view.brokers.map((b) => [b.id, b.role, b.partitionsLed])).toEqual([
      ['g1', 'gateway', 0],
      ['g2', 'gateway', 0],
    ]);
    expect(view.partitions.map((p) => ({ partition: p.partition, leader: p.leader, stream: p.stream, replicas: p.replicas, status: p.status, end: p.end, sizeBytes: p.sizeBytes }))).toEqual([
      { partition: 0, leader: 'rabbit-1:5552', stream: stream(0), replicas: [], status: 'ok', end: 40, sizeBytes: null },
      // The leader g2 knows, and the end of g2's tail, which is further along.
      { partition: 1, leader: 'rabbit-2:5552', stream: stream(1), replicas: [], status: 'ok', end: 35, sizeBytes: null },
      // Tailed by no gateway: stream and leader not known; no problem of its own (the gateways' checks of RabbitMQ judge the backbone).
      { partition: 2, leader: null, stream: null, replicas: [], status: 'unknown', end: 0, sizeBytes: null },
    ]);
    expect(view.problems).toEqual([]);
    expect(view.healthy).toBe(true);
    // Consumer lag is counted once per partition, from the gateway whose end is shown (each gateway reports every partition).
    expect(view.consumers.map((c) => [c.partition, c.leader, c.end, c.lag])).toEqual([
      [0, 'g1', 40, 30],
      [1, 'g2', 35, 25],
    ]);
  });

  it('a gateway that did not answer is still a gateway', async () => {
    const { g1 } = await twoGateways();
    const view = buildClusterView({ self: g1, peers: new Map([['g2', { error: 'TIMEOUT: no answer' }]]), clustered: false, intervalMs: 1000 });
    expect(view.brokers.map((b) => [b.id, b.role, b.state])).toEqual([
      ['g1', 'gateway', 'alive'],
      ['g2', 'gateway', 'unreachable'],
    ]);
    // Its partitions are still the streams the answering gateway knows.
    expect(view.partitions.map((p) => [p.partition, p.leader, p.status])).toEqual([
      [0, 'rabbit-1:5552', 'ok'],
      [1, null, 'unknown'],
      [2, null, 'unknown'],
    ]);
    expect(view.problems).toEqual(['broker g2 did not answer g1 (TIMEOUT: no answer)']);
  });

  it('relaymq status prints gateways and the RabbitMQ stream leaders, not a standalone broker leading everything', async () => {
    const { view } = await twoGateways();
    const text = renderStatus(view);
    expect(text).toMatch(/^g1\* +alive +gateway +- +1 /m);
    expect(text).toMatch(/^g2 +alive +gateway +- +1 /m);
    expect(text).not.toContain('standalone');
    expect(text).toMatch(/^orders\/0 +rabbit-1:5552 \(RabbitMQ\) +RabbitMQ stream relaymq:orders:k3x9:0 +40 +- +ok$/m);
    expect(text).toMatch(/^orders\/1 +rabbit-2:5552 \(RabbitMQ\) +RabbitMQ stream relaymq:orders:k3x9:1 +35 +- +ok$/m);
    expect(text).toMatch(/^orders\/2 +unknown +RabbitMQ stream +0 +- +UNKNOWN$/m);
  });

  it("a gateway's /api/broker head (clusterStatus) calls it a gateway", () => {
    const source = gatewaySource('g1', 'g2', health([], {}), [0]);
    expect(clusterStatus(source, new Membership(source), 0).brokers.map((b) => [b.id, b.role])).toEqual([
      ['g1', 'gateway'],
      ['g2', 'gateway'],
    ]);
  });
});
