import { afterEach, describe, expect, it } from 'vitest';
import type { Message, PublishReceipt, RelayClient } from '@relaymq/sdk';
import { get, parseMetrics, sample } from './support/admin.js';
import { BrokerProcess } from './support/broker-process.js';
import { Fixture } from './support/cluster.js';
import { publishNumbered, readBackProblems } from './support/numbered.js';
import { ProcessCluster } from './support/process-cluster.js';
import { waitFor, waitForAsync, within } from './support/wait.js';

/**
 * Shortest path with real broker processes: five brokers, replication factor
 * 3, a client seeded with one of them. Steady-state publishes reach their
 * partition's leader directly (the brokers' exported `publishedForwarded`
 * stays put); after kill -9 of the broker leading the most partitions, every
 * acknowledged message is read back once, each key's in publish order, and
 * the client publishes to the new leaders directly again.
 */

const fixture = new Fixture();
afterEach(async () => {
  await fixture.cleanup();
  await BrokerProcess.stopAll();
});

const TOPIC = 'killed.leader';
const PARTITIONS = 6;
const KEYS = 24;

/** Messages the brokers `ids` forwarded to another broker's leader, as their `/metrics` export it. */
async function forwarded(cluster: ProcessCluster, ids: readonly string[]): Promise<number> {
  const counts = await Promise.all(
    ids.map(async (id) => {
      const { body } = await get(`${cluster.get(id).adminUrl}/metrics`, 3000);
      const value = sample(parseMetrics(body), 'relaymq_broker_stat', { stat: 'publishedForwarded' });
      if (value === undefined) throw new Error(`broker ${id} exports no publishedForwarded`);
      return value;
    }),
  );
  return counts.reduce((a, b) => a + b, 0);
}

/** Keyed, numbered publishes to TOPIC (see publishNumbered). */
const publishWindowed = (client: RelayClient, from: number, count: number, window: number, acked: Map<number, PublishReceipt>): Promise<void> =>
  publishNumbered(client, TOPIC, { from, count, keys: KEYS, window }, acked);

/** Partition leaders the brokers `ids` agree on, once every partition has one. */
async function agreedLeaders(cluster: ProcessCluster, ids: readonly string[]): Promise<string[]> {
  let list: Array<string | null> = [];
  await waitForAsync(
    async () => {
      const leaders = await cluster.leaders(TOPIC, ids);
      list = [...Array(PARTITIONS).keys()].map((p) => leaders.get(`p/${TOPIC}/${p}`)?.leader ?? null);
      return list.every((l) => l !== null && ids.includes(l));
    },
    'every partition to have a leader the replicas agree on',
    20_000,
  );
  return list as string[];
}

describe('publishing to partition leaders directly, real processes (5 brokers, RF 3, one seed)', () => {
  it('forwards nothing in steady state; after kill -9 of a leader every acknowledged message is read back once, in order', async () => {
    const ids = ['s1', 's2', 's3', 's4', 's5'];
    const cluster = await ProcessCluster.start(ids, () => ['--replication-factor', '3', '--default-partitions', String(PARTITIONS)], 45_000);
    const seed = cluster.get('s1');
    const client = await fixture.client([seed.url], { producerId: 'killed', publishTimeoutMs: 30_000 });
    const acked = new Map<number, PublishReceipt>();

    await publishWindowed(client, 0, 200, 8, acked); // warm-up: the client learns the leaders and links to them
    const leaders = await agreedLeaders(cluster, ids);
    expect(new Set(leaders).size).toBeGreaterThan(1);
    const before = await forwarded(cluster, ids);
    await publishWindowed(client, 200, 600, 8, acked);
    expect(await forwarded(cluster, ids)).toBe(before);

    // kill -9 of the broker leading the most partitions, publishes in flight.
    const led = (id: string): number => leaders.filter((l) => l === id).length;
    const victim = [...ids].sort((a, b) => led(b) - led(a))[0] as string;
    const survivors = ids.filter((id) => id !== victim);
    const during = publishWindowed(client, 800, 800, 16, acked);
    await waitFor(() => acked.size > 900, 'publishes to flow before the kill', 15_000);
    await cluster.get(victim).signal('SIGKILL');
    await within(during, 'the publishes across the kill', 60_000);
    await agreedLeaders(cluster, survivors);

    // Steady again on the new leaders: nothing forwarded.
    await publishWindowed(client, 1600, 200, 8, acked);
    const after = await forwarded(cluster, survivors);
    await publishWindowed(client, 1800, 600, 8, acked);
    expect(await forwarded(cluster, survivors)).toBe(after);
    expect(client.stats().publish).toMatchObject({ published: 2400, acknowledged: 2400 });

    // Read back through a fresh client: each acknowledged message once, where its ack said, each key in order.
    const reader = await fixture.client([cluster.get(survivors[0] as string).url]);
    const read: Array<Message<string>> = [];
    await reader.subscribe<string>(TOPIC, (m) => void read.push(m), { from: 'earliest' });
    await waitFor(() => read.length >= acked.size, `${acked.size} messages read back`, 30_000);
    expect(readBackProblems(read, acked)).toEqual([]);
  }, 150_000);
});
