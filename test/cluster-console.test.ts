import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker, BrowseResult, ClusterReport } from '@relaymq/broker';
import type { Message } from '@relaymq/sdk';
import { get, getJson, parseMetrics, sample } from './support/admin.js';
import { CLI } from './support/broker-process.js';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { waitFor, waitForAsync } from './support/wait.js';

const run = promisify(execFile);
const fixture = new Fixture();
afterEach(() => fixture.cleanup());

/** Three brokers with admin ports and data directories, RF 3. */
async function cluster(): Promise<Broker[]> {
  const ids = ['k1', 'k2', 'k3'];
  const peerPorts = await freePorts(3);
  const peers = ids.map((id, i) => `${id}@127.0.0.1:${peerPorts[i]}`);
  const root = await mkdtemp(join(tmpdir(), 'relaymq-console-'));
  fixture.defer(() => rm(root, { recursive: true, force: true }));
  return Promise.all(
    ids.map((id, i) => fixture.broker({ id, peerPort: peerPorts[i], peers: peers.filter((_, j) => j !== i), adminPort: 0, dataDir: join(root, id) })),
  );
}

const report = (b: Broker): Promise<ClusterReport> => getJson<ClusterReport>(`${b.adminUrl}/api/cluster`);
/** What must be the same on every broker's page: partition verdicts and broker states. */
const truth = (r: ClusterReport): unknown => ({
  partitions: r.partitions.map((p) => [p.topic, p.partition, p.leader, p.status, p.replicaStates, p.end]),
  brokers: r.brokers.map((b) => [b.id, b.state, b.reachable]),
  consumers: r.consumers.map((c) => [c.consumer, c.topic, c.partition, c.offset, c.end, c.lag]),
  problems: r.problems,
});

describe('cluster-wide console', () => {
  it('answers for the whole cluster on every broker: leader lag, sizes, disk, consumer lag, messages; a closed broker shown as gone', async () => {
    const brokers = await cluster();
    const client = await fixture.client(brokers.map((b) => b.url), { poolSize: 1 });
    for (let i = 0; i < 10; i++) await client.publish('console.orders', { i, note: 'ten first' });

    // A durable consumer reads all ten, commits, leaves; five more make its lag 5.
    const reader = await fixture.client(brokers.map((b) => b.url), { poolSize: 1, commit: { intervalMs: 0 } });
    const seen: number[] = [];
    await reader.subscribe('console.orders', (m: Message<{ i: number }>) => void seen.push(m.data.i), { durable: 'billing', from: 'earliest' });
    await waitFor(() => seen.length === 10, 'the durable consumer to read 10 messages');
    await waitForAsync(async () => (await report(brokers[0] as Broker)).consumers.some((c) => c.consumer === 'billing' && c.offset === 10), 'its position 10 to be committed');
    await reader.close();
    for (let i = 10; i < 15; i++) await client.publish('console.orders', i % 2 === 0 ? `text ${i}` : { i });

    // Every broker's page: the same partitions, leaders, replica states, lag and problems.
    let reports: ClusterReport[] = [];
    await waitForAsync(
      async () => {
        reports = await Promise.all(brokers.map(report));
        const [first] = reports;
        return first !== undefined && first.consumers[0]?.lag === 5 && first.topics[0]?.sizeBytes !== 0 && reports.every((r) => JSON.stringify(truth(r)) === JSON.stringify(truth(first)));
      },
      'every broker to show the same cluster with lag 5',
      15_000,
    );
    const [fromK1] = reports as [ClusterReport];
    const orders = fromK1.partitions.find((p) => p.topic === 'console.orders');
    expect(orders).toMatchObject({ status: 'ok', end: 15 });
    expect(Object.keys(orders?.lag ?? {}).sort()).toEqual(['k1', 'k2', 'k3']);
    expect(Object.values(orders?.replicaStates ?? {}).sort()).toEqual(['in-sync', 'in-sync', 'leader']);
    expect(fromK1.healthy).toBe(true);
    expect(fromK1.reached).toEqual(['k1', 'k2', 'k3']);
    expect(fromK1.consumers).toEqual([{ kind: 'durable', consumer: 'billing', topic: 'console.orders', partition: 0, offset: 10, end: 15, lag: 5, leader: orders?.leader }]);
    const topic = fromK1.topics.find((t) => t.topic === 'console.orders');
    expect(topic).toMatchObject({ partitions: 1, replicationFactor: 3, messages: 15 });
    expect(topic?.replicaBytes).toBeGreaterThanOrEqual(3 * (topic?.sizeBytes ?? 0) * 0.5);
    for (const b of fromK1.brokers) {
      expect(b.disk?.sizeBytes).toBeGreaterThan(0);
      expect(b.disk?.dataBytes).toBeGreaterThan(0);
      expect(b.connections).not.toBeNull();
    }
    expect(Object.keys(fromK1.series.brokers).sort()).toEqual(['k1', 'k2', 'k3']);

    // The leader exports the lag; the others do not, so the cluster has one series per partition.
    const lagSamples = await Promise.all(
      brokers.map(async (b) => sample(parseMetrics((await get(`${b.adminUrl}/metrics`)).body), 'relaymq_consumer_lag_messages', { kind: 'durable', consumer: 'billing', topic: 'console.orders', partition: '0' })),
    );
    expect(lagSamples.filter((v) => v !== undefined)).toEqual([5]);

    // The message browser: the last three, from an offset, and refusals of bad input.
    const last = await getJson<BrowseResult>(`${brokers[1]?.adminUrl}/api/messages?topic=console.orders&partition=0&count=3`);
    expect(last.messages.map((m) => [m.offset, m.json, m.text])).toEqual([
      [12, 'text 12', null],
      [13, { i: 13 }, null],
      [14, 'text 14', null],
    ]);
    const from = await getJson<BrowseResult>(`${brokers[2]?.adminUrl}/api/messages?topic=console.orders&from=3&count=2`);
    expect(from.messages.map((m) => m.offset)).toEqual([3, 4]);
    expect((await get(`${brokers[0]?.adminUrl}/api/messages?topic=console.orders&count=1000`)).status).toBe(400);
    expect((await get(`${brokers[0]?.adminUrl}/api/messages?topic=no.such.topic`)).status).toBe(404);

    // `relaymq status` prints the cluster view.
    const { stdout } = await run(process.execPath, [CLI, 'status', '--broker', brokers[0]?.adminUrl as string], { timeout: 15_000 });
    expect(stdout).toMatch(/^cluster as seen by k1: HEALTHY\ngathered from 3 of 3 brokers\n/);
    expect(stdout).toMatch(/^console\.orders\/0\s+k[123]\s+(k[123]:(leader|in-sync:0) ?){3}\s+15\s+[\d.]+ KiB\s+ok$/m);
    expect(stdout).toMatch(/^billing\s+durable\s+console\.orders\/0\s+10\s+15\s+5$/m);

    // A follower closes: every remaining page marks it gone and the partition under-replicated.
    const leader = orders?.leader as string;
    const victim = brokers.find((b) => b.id !== leader) as Broker;
    await victim.close();
    const survivors = brokers.filter((b) => b !== victim);
    await waitForAsync(
      async () => {
        reports = await Promise.all(survivors.map(report));
        return reports.every((r) => r.partitions.find((p) => p.topic === 'console.orders')?.replicaStates[victim.id] === 'left' && JSON.stringify(truth(r)) === JSON.stringify(truth(reports[0] as ClusterReport)));
      },
      `both survivors to show ${victim.id} gone`,
      15_000,
    );
    for (const r of reports) {
      expect(r.partitions.find((p) => p.topic === 'console.orders')?.status).toBe('under-replicated');
      expect(r.brokers.find((b) => b.id === victim.id)).toMatchObject({ state: 'left', reachable: false });
      expect(r.problems).toContain(`partition console.orders/0 is under-replicated (out of sync: ${victim.id})`);
      expect(r.unreachable).toEqual([victim.id]);
    }
  });
});
