import { statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import type { GroupStatus } from '../engine/cluster.js';
import { Membership, OUT_OF_SYNC_LAG_ENTRIES, clusterStatus, type OperationsSource } from './cluster-status.js';
import { BrokerMetrics, MAX_TOPIC_LABELS } from './metrics.js';
import { RAFT_COUNTER_METRICS, zeroRaftCounters } from '../runtime/raft-counters.js';

function source(groups: GroupStatus[], brokers: Array<{ id: string; state: 'alive' | 'suspect' | 'dead' }>, peerIds: string[] = []): OperationsSource {
  return {
    id: 'b1',
    clustered: true,
    peerIds,
    dataDir: undefined,
    stats: () => ({ id: 'b1', connections: 2, subscriptions: 3, published: 10, forbidden: 4 }),
    cluster: () => ({ brokers: brokers.map((b) => ({ ...b, url: `ws://${b.id}` })) }),
    groups: () => groups,
    accepting: () => true,
    readReplica: () => Promise.resolve(undefined),
    url: () => 'ws://b1',
    peerTransport: () => undefined,
    topics: () => [],
    hostedBounds: () => undefined,
    leads: () => false,
    positionSources: () => [],
    browser: { partitionCount: () => undefined, bounds: () => Promise.resolve({ start: 0, end: 0 }), read: () => Promise.resolve([]) },
  };
}

const group = (overrides: Partial<GroupStatus>): GroupStatus => ({
  group: 'p/orders/0',
  role: 'follower',
  leader: 'b2',
  term: 3,
  commit: 90,
  firstIndex: 1,
  lastIndex: 100,
  voters: ['b1', 'b2', 'b3'],
  replicas: [],
  ...overrides,
});

async function scrape(metrics: BrokerMetrics): Promise<string> {
  return metrics.scrape();
}

describe('BrokerMetrics', () => {
  it('reports lag per replica on the leader, under-replicated and leaderless partitions, gossip states and every numeric stat', async () => {
    const led = group({
      group: 'p/orders/0',
      role: 'leader',
      leader: 'b1',
      replicas: [
        { id: 'b1', match: 100, connected: true },
        { id: 'b2', match: 97, connected: true },
        { id: 'b3', match: 100 - OUT_OF_SYNC_LAG_ENTRIES - 1, connected: true },
      ],
      lastIndex: 100,
    });
    const disconnected = group({ group: 'p/orders/1', role: 'leader', leader: 'b1', replicas: [{ id: 'b1', match: 5, connected: true }, { id: 'b2', match: 5, connected: false }] });
    const orphan = group({ group: 'p/logs/0', leader: null });
    const src = source([group({ group: 'meta', leader: 'b2' }), led, disconnected, orphan], [
      { id: 'b1', state: 'alive' },
      { id: 'b2', state: 'suspect' },
    ], ['b2', 'b3', 'b4']);
    const membership = new Membership(src);
    const text = await scrape(new BrokerMetrics(src, membership));
    expect(text).toContain('relaymq_replication_lag_entries{topic="orders",partition="0",replica="b2",broker="b1"} 3');
    expect(text).toContain(`relaymq_replication_lag_entries{topic="orders",partition="0",replica="b3",broker="b1"} ${OUT_OF_SYNC_LAG_ENTRIES + 1}`);
    expect(text).toContain('relaymq_under_replicated_partitions{broker="b1"} 2');
    expect(text).toContain('relaymq_leaderless_partitions{broker="b1"} 1');
    expect(text).toContain('relaymq_partitions{broker="b1"} 3');
    expect(text).toContain('relaymq_partition_leader{topic="logs",partition="0",broker="b1"} 0');
    expect(text).toContain('relaymq_partition_commit_index{topic="orders",partition="0",broker="b1"} 90');
    expect(text).toContain('relaymq_metadata_leader_known{broker="b1"} 1');
    expect(text).toContain('relaymq_gossip_members{state="suspect",broker="b1"} 1');
    expect(text).toContain('relaymq_gossip_members{state="unseen",broker="b1"} 2'); // b3, b4 configured but never seen
    expect(text).toContain('relaymq_broker_stat{stat="forbidden",broker="b1"} 4');
    expect(text).toContain('relaymq_connections{broker="b1"} 2');

    const status = clusterStatus(src, membership, 0);
    expect(status.healthy).toBe(false);
    expect(status.problems).toEqual([
      'broker b2 is suspect',
      'broker b3 has not joined since b1 started',
      'broker b4 has not joined since b1 started',
      'partition logs/0 has no leader',
      'partition orders/0 is under-replicated (out of sync: b3)',
      'partition orders/1 is under-replicated (out of sync: b2)',
    ]);
  });

  it(`labels at most ${MAX_TOPIC_LABELS} topics, counting the rest as _other`, async () => {
    const src = source([], [{ id: 'b1', state: 'alive' }]);
    const metrics = new BrokerMetrics(src, new Membership(src));
    for (let i = 0; i < MAX_TOPIC_LABELS + 5; i++) metrics.published(`t${i}`, 1, 10);
    metrics.published('t0', 1, 10);
    const text = await scrape(metrics);
    expect(text).toContain('relaymq_messages_in_total{topic="t0",broker="b1"} 2');
    expect(text).toContain('relaymq_messages_in_total{topic="_other",broker="b1"} 5');
    expect(text).toContain('relaymq_bytes_in_total{topic="_other",broker="b1"} 50');
  });

  it("reports the data directory's file system as df does, and nothing without a data directory", async () => {
    const dir = tmpdir();
    const withData: OperationsSource = { ...source([], [{ id: 'b1', state: 'alive' }]), dataDir: dir };
    const text = await scrape(new BrokerMetrics(withData, new Membership(withData)));
    const s = await statfs(dir);
    const size = Number(/relaymq_disk_size_bytes\{path="([^"]*)",broker="b1"\} (\d+)/.exec(text)?.[2]);
    expect(text).toContain(`relaymq_disk_size_bytes{path="${dir}",broker="b1"}`);
    expect(size).toBe(s.blocks * s.bsize);
    expect(text).toMatch(/relaymq_disk_available_bytes\{path="[^"]*",broker="b1"\} \d+/);

    const memoryOnly = source([], [{ id: 'b1', state: 'alive' }]);
    const none = await scrape(new BrokerMetrics(memoryOnly, new Membership(memoryOnly)));
    expect(none).not.toMatch(/^relaymq_disk_\w+\{/m);
  });
});

describe('the Raft counters', () => {
  it('are exported summed over the groups, each with its HELP (lost entries reported among them), and read once per scrape', async () => {
    let reads = 0;
    const counters = { ...zeroRaftCounters(), lostEntriesReported: 3, elections: 7, checkQuorumStepDowns: 1 };
    const src: OperationsSource = { ...source([], []), raftCounters: () => (reads++, counters) };
    const metrics = new BrokerMetrics(src, new Membership(src));
    const text = await scrape(metrics);
    expect(text).toContain('# HELP relaymq_raft_lost_entries_reported_total Times a follower here told its leader it lost entries it had acknowledged');
    expect(text).toContain('# TYPE relaymq_raft_lost_entries_reported_total counter');
    expect(text).toMatch(/^relaymq_raft_lost_entries_reported_total\{broker="b1"\} 3$/m);
    expect(text).toMatch(/^relaymq_raft_elections_total\{broker="b1"\} 7$/m);
    expect(text).toMatch(/^relaymq_raft_check_quorum_step_downs_total\{broker="b1"\} 1$/m);
    expect(text).toMatch(/^relaymq_raft_snapshots_sent_total\{broker="b1"\} 0$/m);
    for (const { name } of Object.values(RAFT_COUNTER_METRICS)) expect(text).toContain(`# HELP relaymq_raft_${name}_total `);
    expect(reads).toBe(1);
  });
});
