import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker, ClusterReport } from '@relaymq/broker';
import type { Message } from '@relaymq/sdk';
import { eventually, get, getJson, parseMetrics, sample } from './support/admin.js';
import { Fixture } from './support/cluster.js';
import { RawClient } from './support/raw-client.js';
import { freePorts } from './support/ports.js';
import { waitFor } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

/** Three brokers with admin ports and data directories (so fsyncs happen). */
async function cluster(): Promise<Broker[]> {
  const dir = await mkdtemp(join(tmpdir(), 'relaymq-ops-'));
  fixture.defer(() => rm(dir, { recursive: true, force: true }));
  const ids = ['o1', 'o2', 'o3'];
  const peerPorts = await freePorts(3);
  const peers = ids.map((id, i) => `${id}@127.0.0.1:${peerPorts[i]}`);
  return Promise.all(
    ids.map((id, i) =>
      fixture.broker({ id, peerPort: peerPorts[i], peers: peers.filter((_, j) => j !== i), adminPort: 0, dataDir: join(dir, id) }),
    ),
  );
}

async function metrics(broker: Broker): Promise<ReturnType<typeof parseMetrics>> {
  const { status, body, contentType } = await get(`${broker.adminUrl}/metrics`);
  expect(status).toBe(200);
  expect(contentType).toContain('text/plain');
  return parseMetrics(body);
}

describe('admin port of a 3-broker cluster', () => {
  it('exports exact traffic figures, Raft state, gossip and fsyncs after a known workload', async () => {
    const brokers = await cluster();
    const [o1, o2] = brokers as [Broker, Broker, Broker];
    const publisher = await fixture.client([o1.url], { poolSize: 1, discovery: false });
    const subscriber = await fixture.client([o2.url], { poolSize: 1, discovery: false });
    let received = 0;
    await subscriber.subscribe('ops.metrics', (_m: Message) => void received++, { from: 'earliest' });

    // The workload: 120 messages of exactly 100 bytes, published through o1, read on o2.
    const payload = new Uint8Array(100).fill(7);
    await Promise.all(Array.from({ length: 120 }, () => publisher.publish('ops.metrics', payload)));
    await waitFor(() => received === 120, 'the subscriber to get 120 messages');

    const m1 = await metrics(o1);
    expect(sample(m1, 'relaymq_messages_in_total', { broker: 'o1', topic: 'ops.metrics' })).toBe(120);
    expect(sample(m1, 'relaymq_bytes_in_total', { topic: 'ops.metrics' })).toBe(12_000);
    expect(sample(m1, 'relaymq_publish_latency_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(sample(m1, 'relaymq_publish_latency_seconds_bucket', { le: '+Inf' })).toBe(sample(m1, 'relaymq_publish_latency_seconds_count'));
    expect(sample(m1, 'relaymq_connections')).toBe(1);
    expect(sample(m1, 'relaymq_broker_stat', { stat: 'published' })).toBe(120);

    const m2 = await metrics(o2);
    expect(sample(m2, 'relaymq_messages_out_total', { topic: 'ops.metrics' })).toBe(120);
    expect(sample(m2, 'relaymq_bytes_out_total', { topic: 'ops.metrics' })).toBe(12_000);
    expect(sample(m2, 'relaymq_messages_in_total', { topic: 'ops.metrics' })).toBeUndefined();
    expect(sample(m2, 'relaymq_subscriptions')).toBe(1);

    // Raft: every replica reaches the same commit index; the leader reports every replica's lag, and it drains to 0.
    const all = await Promise.all(brokers.map(metrics));
    const partition = { topic: 'ops.metrics', partition: '0' };
    const leaders = all.filter((m) => sample(m, 'relaymq_partition_leader', partition) === 1);
    expect(leaders).toHaveLength(1);
    const leaderBroker = brokers[all.indexOf(leaders[0] as ReturnType<typeof parseMetrics>)] as Broker;
    await eventually(
      () => metrics(leaderBroker),
      (m) => ['o1', 'o2', 'o3'].every((replica) => sample(m, 'relaymq_replication_lag_entries', { ...partition, replica }) === 0),
      'every replica to catch up',
    );
    const commits = (await Promise.all(brokers.map(metrics))).map((m) => sample(m, 'relaymq_partition_commit_index', partition));
    expect(new Set(commits).size).toBe(1);
    expect(commits[0]).toBeGreaterThan(0);
    for (const m of all) {
      expect(sample(m, 'relaymq_under_replicated_partitions')).toBe(0);
      expect(sample(m, 'relaymq_leaderless_partitions')).toBe(0);
      expect(sample(m, 'relaymq_gossip_members', { state: 'alive' })).toBe(3);
      expect(sample(m, 'relaymq_fsync_duration_seconds_count')).toBeGreaterThan(0);
      expect(sample(m, 'relaymq_metadata_leader_known')).toBe(1);
    }
    const leaderChanges = all.map((m) => sample(m, 'relaymq_leader_changes_total', partition) ?? 0);
    expect(leaderChanges.every((n) => n >= 1)).toBe(true);
  });

  it('answers healthz, readyz and api/cluster, and reports a broker that left', async () => {
    const brokers = await cluster();
    const [o1, , o3] = brokers as [Broker, Broker, Broker];
    const client = await fixture.client([o1.url], { poolSize: 1, discovery: false });
    await client.publish('ops.api', 'hello');

    expect((await get(`${o1.adminUrl}/healthz`)).status).toBe(200);
    expect(await getJson(`${o1.adminUrl}/readyz`)).toMatchObject({ status: 'ready', broker: 'o1' });
    expect((await get(`${o1.adminUrl}/nope`)).status).toBe(404);
    expect((await fetch(`${o1.adminUrl}/metrics`, { method: 'POST' })).status).toBe(405);

    const report = await getJson<ClusterReport>(`${o1.adminUrl}/api/cluster`);
    expect(report.broker).toBe('o1');
    expect(report.healthy).toBe(true);
    expect(report.problems).toEqual([]);
    expect(report.brokers.map((b) => [b.id, b.state])).toEqual([
      ['o1', 'alive'],
      ['o2', 'alive'],
      ['o3', 'alive'],
    ]);
    expect(report.brokers.filter((b) => b.role === 'leader').map((b) => b.id)).toEqual([report.metadataLeader]);
    const partition = report.partitions.find((p) => p.topic === 'ops.api');
    expect(partition?.replicas.slice().sort()).toEqual(['o1', 'o2', 'o3']);
    expect(partition?.leader).toMatch(/^o[123]$/);
    expect(report.events.some((e) => e.kind === 'leader-changed' && e.message.includes('ops.api/0'))).toBe(true);

    await o3.close();
    const readReport = (): Promise<ClusterReport> => getJson<ClusterReport>(`${o1.adminUrl}/api/cluster`);
    const after = await eventually(readReport, (r) => r.brokers.find((b) => b.id === 'o3')?.state === 'left', 'o1 to see o3 gone');
    expect(after.healthy).toBe(false);
    expect(after.problems).toContain('broker o3 left the cluster');
    // Which state a broker records depends on whether the leave reached it before its failure detector gave up on o3
    // (left, or suspect then dead): any of them is the event an operator needs. Read as states and events only, so a
    // timeout prints what the view held.
    const statesAndEvents = async (): Promise<{ states: string[]; events: ClusterReport['events'] }> => {
      const r = await readReport();
      return { states: r.brokers.map((b) => `${b.id}:${b.state}`), events: r.events };
    };
    await eventually(
      statesAndEvents,
      (r) => r.events.some((e) => e.kind === 'member-state' && /^broker o3 is (left|suspect|dead) \(was /.test(e.message)),
      'a member-state event for o3',
    );
  });

  it('stops being ready while draining, and stays alive until closed', async () => {
    const broker = await fixture.broker({ id: 's1', adminPort: 0, drainTimeoutMs: 10_000 });
    expect((await get(`${broker.adminUrl}/readyz`)).status).toBe(200);
    // A client that ignores `goaway` holds the broker in its drain period.
    const stubborn = await RawClient.open(broker.url);
    const closing = broker.close();
    expect(await getJson(`${broker.adminUrl}/healthz`)).toMatchObject({ status: 'ok' });
    const readyz = await get(`${broker.adminUrl}/readyz`);
    expect(readyz.status).toBe(503);
    expect(JSON.parse(readyz.body)).toMatchObject({ status: 'not ready', broker: 's1' });
    stubborn.close();
    await closing;
  });
});
