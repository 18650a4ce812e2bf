import { afterEach, describe, expect, it } from 'vitest';
import type { Message, PublishReceipt, RelayClient } from '@relaymq/sdk';
import { BrokerProcess } from './support/broker-process.js';
import { Fixture } from './support/cluster.js';
import { publishNumbered, readBackProblems } from './support/numbered.js';
import { ProcessCluster } from './support/process-cluster.js';
import { waitFor, waitForAsync, waitForProgress, within } from './support/wait.js';

/**
 * Subscribing on the leader with real broker processes (issue 12, publish →
 * deliver): three brokers, replication factor 3, a subscriber seeded with a
 * follower of the topic's one partition. The subscription moves to the
 * partition's leader (a follower learns of a commit one hop later); after
 * kill -9 of that leader, messages flowing, it is served by the new leader,
 * and the handler has seen every acknowledged message once, in offset order.
 * Then five brokers and twelve partitions led by several of them: the
 * subscription goes to the broker leading the most, from where a `from: 'new'`
 * start placed it on the seed, and every partition is read once, in order.
 */

const fixture = new Fixture();
afterEach(async () => {
  await fixture.cleanup();
  await BrokerProcess.stopAll();
});

const TOPIC = 'sub.on.leader';

/** The leader of `topic`'s partition 0 that the brokers `ids` agree on. */
async function agreedLeader(cluster: ProcessCluster, ids: readonly string[], topic = TOPIC): Promise<string> {
  let leader: string | null | undefined;
  await waitForAsync(
    async () => {
      leader = (await cluster.leaders(topic, ids)).get(`p/${topic}/0`)?.leader;
      return typeof leader === 'string' && ids.includes(leader);
    },
    'a leader the replicas agree on',
    20_000,
  );
  return leader as string;
}

/** The broker serving the client's one subscription, as its stats say. */
const servedBy = (client: RelayClient): string | undefined => client.stats().subscribe.servedBy[0]?.broker;

describe('subscriptions served by the partition leader, real processes (RF 3, one seed)', () => {
  it('moves to the leader, then to the new leader after kill -9 of it: every acknowledged message handled once, in order', async () => {
    const ids = ['l1', 'l2', 'l3'];
    const cluster = await ProcessCluster.start(ids, () => ['--replication-factor', '3', '--default-partitions', '1'], 45_000);
    const publisher = await fixture.client(ids.map((id) => cluster.get(id).url), { producerId: 'sub-on-leader', publishTimeoutMs: 30_000 });
    const acked = new Map<number, PublishReceipt>();
    await publishNumbered(publisher, TOPIC, { from: 0, count: 50, keys: 1, window: 1 }, acked);
    const leader = await agreedLeader(cluster, ids);
    const follower = ids.find((id) => id !== leader) as string;

    // Seeded with a follower, one connection at first: the subscription starts there and moves to the leader.
    const subscriber = await fixture.client([cluster.get(follower).url], { poolSize: 1 });
    expect(subscriber.stats().activeBroker?.id).toBe(follower);
    const read: Array<Message<string>> = [];
    await subscriber.subscribe<string>(TOPIC, (m) => void read.push(m), { from: 'earliest' });
    await waitFor(() => servedBy(subscriber) === leader, `the subscription to be served by the leader ${leader}`, 15_000);
    await publishNumbered(publisher, TOPIC, { from: 50, count: 200, keys: 1, window: 4 }, acked);
    await waitFor(() => read.length >= acked.size, `${acked.size} messages handled`, 15_000);
    expect(servedBy(subscriber)).toBe(leader);

    // kill -9 of the leader, publishes in flight.
    const survivors = ids.filter((id) => id !== leader);
    const during = publishNumbered(publisher, TOPIC, { from: 250, count: 600, keys: 1, window: 4 }, acked);
    await waitFor(() => acked.size > 350, 'publishes to flow before the kill', 15_000);
    await cluster.get(leader).signal('SIGKILL');
    await within(during, 'the publishes across the kill', 60_000);
    const next = await agreedLeader(cluster, survivors);
    await waitFor(() => servedBy(subscriber) === next, `the subscription to be served by the new leader ${next}`, 20_000);
    await publishNumbered(publisher, TOPIC, { from: 850, count: 150, keys: 1, window: 4 }, acked);
    await waitFor(() => read.length >= acked.size, `${acked.size} messages handled`, 30_000);
    expect(servedBy(subscriber)).toBe(next);

    expect(readBackProblems(read, acked)).toEqual([]);
    expect(read.map((m) => m.offset)).toEqual([...read.keys()]); // offsets 0, 1, 2, ...: none skipped, none twice
    expect(subscriber.stats().subscribe).toMatchObject({ gaps: 0, delivered: acked.size });
    // A new leader that is the seed (the active broker) takes the subscription back without a move.
    expect(subscriber.stats().subscribe.leaderMoves).toBeGreaterThanOrEqual(next === follower ? 1 : 2);
  }, 150_000);

  it('5 brokers, 12 partitions led by several: a from-"new" subscription seeded on the broker leading the fewest moves to the one leading the most while publishes flow, then follows after kill -9 of it; every partition read once, in order, from where it started', async () => {
    const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];
    const topic = 'sub.on.leaders';
    const cluster = await ProcessCluster.start(ids, () => ['--replication-factor', '3', '--default-partitions', '12'], 60_000);
    const bootstrap = await fixture.client(ids.map((id) => cluster.get(id).url), { producerId: 'sub-on-leaders-0', publishTimeoutMs: 30_000 });
    const warmup = new Map<number, PublishReceipt>();
    await publishNumbered(bootstrap, topic, { from: 0, count: 24, keys: 24, window: 4 }, warmup);

    /** Leaders the brokers `among` agree on for all 12 partitions, and the brokers leading the most of them. */
    const leading = async (among: readonly string[]): Promise<{ counts: Map<string, number>; most: Set<string> } | undefined> => {
      const rows = await cluster.leaders(topic, among);
      const counts = new Map<string, number>();
      for (let p = 0; p < 12; p++) {
        const leader = rows.get(`p/${topic}/${p}`)?.leader;
        if (typeof leader !== 'string' || !among.includes(leader)) return undefined;
        counts.set(leader, (counts.get(leader) ?? 0) + 1);
      }
      const max = Math.max(...counts.values());
      return { counts, most: new Set([...counts].filter(([, n]) => n === max).map(([id]) => id)) };
    };
    let before: Awaited<ReturnType<typeof leading>>;
    await waitForAsync(async () => (before = await leading(ids)) !== undefined, 'leaders of the 12 partitions the brokers agree on', 20_000);
    const { counts, most } = before as NonNullable<typeof before>;
    // 12 partitions over 5 brokers never split evenly: some broker leads fewer than the most.
    const seed = [...ids].sort((x, y) => (counts.get(x) ?? 0) - (counts.get(y) ?? 0))[0] as string;
    expect(most.has(seed)).toBe(false);
    // Publishes go through the seed: a broker knows the leader of a partition it does not host only from the
    // publishes it routed there, and the subscriber asks the seed where the leaders are.
    const publisher = await fixture.client([cluster.get(seed).url], { producerId: 'sub-on-leaders', publishTimeoutMs: 30_000, poolSize: 1, discovery: false });
    await publishNumbered(publisher, topic, { from: 24, count: 72, keys: 24, window: 4 }, warmup);
    expect(new Set([...warmup.values()].map((r) => r.partition)).size).toBe(12);

    const subscriber = await fixture.client([cluster.get(seed).url], { poolSize: 1 });
    const read: Array<Message<string>> = [];
    await subscriber.subscribe<string>(topic, (m) => void read.push(m), { from: 'new' });
    // Published from now on (racing the move): each must be read once.
    const acked = new Map<number, PublishReceipt>();
    await publishNumbered(publisher, topic, { from: 100, count: 300, keys: 24, window: 4 }, acked);
    await waitFor(() => most.has(servedBy(subscriber) ?? ''), `the subscription to be served by one of ${[...most]}`, 15_000);
    expect(subscriber.stats().subscribe.leaderMoves).toBeGreaterThanOrEqual(1);
    await waitFor(() => read.filter((m) => Number(m.headers?.n) >= 100).length >= acked.size, `${acked.size} messages handled`, 15_000);

    // kill -9 of the broker serving it, publishes in flight.
    const home = servedBy(subscriber) as string;
    const survivors = ids.filter((id) => id !== home);
    const during = publishNumbered(publisher, topic, { from: 400, count: 600, keys: 24, window: 4 }, acked);
    await waitFor(() => acked.size > 450, 'publishes to flow before the kill', 15_000);
    await cluster.get(home).signal('SIGKILL');
    await within(during, 'the publishes across the kill', 60_000);
    await publishNumbered(publisher, topic, { from: 1000, count: 150, keys: 24, window: 4 }, acked);
    await waitForAsync(
      async () => {
        const after = await leading(survivors);
        return after !== undefined && after.most.has(servedBy(subscriber) ?? '');
      },
      () => `the subscription to be served by a survivor leading the most partitions (now ${servedBy(subscriber)})`,
      30_000,
    );
    await publishNumbered(publisher, topic, { from: 1150, count: 100, keys: 24, window: 4 }, acked);
    await waitFor(() => read.filter((m) => Number(m.headers?.n) >= 100).length >= acked.size, `${acked.size} messages handled`, 30_000);

    // From where it started, each partition's offsets follow one another: nothing skipped, nothing twice.
    const byPartition = new Map<number, number[]>();
    for (const m of read) byPartition.set(m.partition, [...(byPartition.get(m.partition) ?? []), m.offset]);
    for (const [partition, offsets] of byPartition) {
      expect({ partition, offsets }).toEqual({ partition, offsets: offsets.map((_, i) => (offsets[0] as number) + i) });
    }
    expect(readBackProblems(read.filter((m) => Number(m.headers?.n) >= 100), acked)).toEqual([]);
    expect(subscriber.stats().subscribe).toMatchObject({ gaps: 0 });
  }, 180_000);

  it('a durable subscription whose window is full when it moves keeps its whole window (credit given back while the leader reads its stored positions is not lost)', async () => {
    const ids = ['c1', 'c2', 'c3'];
    const topic = 'sub.credit.move';
    const cluster = await ProcessCluster.start(ids, () => ['--replication-factor', '3', '--default-partitions', '1'], 45_000);
    const publisher = await fixture.client(ids.map((id) => cluster.get(id).url), { producerId: 'sub-credit-move', publishTimeoutMs: 30_000 });
    const acked = new Map<number, PublishReceipt>();
    await publishNumbered(publisher, topic, { from: 0, count: 400, keys: 1, window: 8 }, acked);
    const leader = await agreedLeader(cluster, ids, topic);
    const follower = ids.find((id) => id !== leader) as string;

    const subscriber = await fixture.client([cluster.get(follower).url], { poolSize: 1 });
    const read: Array<Message<string>> = [];
    const moved = async (): Promise<void> => {
      // Checked every turn of the event loop, so the queued messages are handled right after the move's subscribe is sent.
      const deadline = Date.now() + 15_000;
      while (subscriber.stats().subscribe.leaderMoves === 0 && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
    };
    // The first message is held until the subscription moves: a window of 100 fills up (99 queued).
    await subscriber.subscribe<string>(topic, (m) => (read.push(m), m.offset === 0 ? moved() : undefined), { from: 'earliest', durable: 'credit-move', credit: 100 });
    await waitFor(() => servedBy(subscriber) === leader, `the subscription to be served by the leader ${leader}`, 15_000);
    await waitForProgress(() => read.length, 400, 'messages handled after the move', 5000, 15_000);
    expect(readBackProblems(read, acked)).toEqual([]);
  }, 120_000);
});
