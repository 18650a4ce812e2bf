import { afterEach, describe, expect, it } from 'vitest';
import type { Message, PublishReceipt, RelayClient } from '@relaymq/sdk';
import { BrokerProcess } from './support/broker-process.js';
import { Fixture } from './support/cluster.js';
import { publishNumbered, readBackProblems } from './support/numbered.js';
import { ProcessCluster } from './support/process-cluster.js';
import { waitFor, waitForAsync, within } from './support/wait.js';

/**
 * Subscribing on the leader with real broker processes (issue 12, publish →
 * deliver): three brokers, replication factor 3, a subscriber seeded with a
 * follower of the topic's one partition. The subscription moves to the
 * partition's leader (a follower learns of a commit one hop later); after
 * kill -9 of that leader, messages flowing, it is served by the new leader,
 * and the handler has seen every acknowledged message once, in offset order.
 */

const fixture = new Fixture();
afterEach(async () => {
  await fixture.cleanup();
  await BrokerProcess.stopAll();
});

const TOPIC = 'sub.on.leader';

/** The leader of TOPIC's partition that the brokers `ids` agree on. */
async function agreedLeader(cluster: ProcessCluster, ids: readonly string[]): Promise<string> {
  let leader: string | null | undefined;
  await waitForAsync(
    async () => {
      leader = (await cluster.leaders(TOPIC, ids)).get(`p/${TOPIC}/0`)?.leader;
      return typeof leader === 'string' && ids.includes(leader);
    },
    'a leader the replicas agree on',
    20_000,
  );
  return leader as string;
}

/** The broker serving the client's one subscription, as its stats say. */
const servedBy = (client: RelayClient): string | undefined => client.stats().subscribe.servedBy[0]?.broker;

describe('subscriptions served by the partition leader, real processes (3 brokers, RF 3, one seed)', () => {
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
});
