import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import type { PublishReceipt, RelayClient } from '@relaymq/sdk';
import { Fixture } from './support/cluster.js';
import { publishNumbered, readBackProblems, type ReadBack } from './support/numbered.js';
import { waitFor } from './support/wait.js';

/**
 * Shortest path: a client seeded with one broker of five (replication factor
 * 3) publishes each partition to its leader directly, so in steady state no
 * broker forwards a publish (`publishedForwarded`). When a leader goes away,
 * forwarding carries the partition meanwhile, the client moves to the new
 * leader, and every acknowledged message is stored once, in publish order.
 */

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

const TOPIC = 'shortest.path';
const PARTITIONS = 6;
const KEYS = 24;

const groups = (b: Broker): Array<{ group: string; leader: string | null }> =>
  (b.engine as unknown as { groupStatus(): Array<{ group: string; leader: string | null }> }).groupStatus();
const forwarded = (brokers: Broker[]): number => brokers.reduce((sum, b) => sum + b.stats().publishedForwarded, 0);
const leaderOf = (brokers: Broker[], partition: number): Broker | undefined => brokers.find((b) => b.engine.leaderOf?.(TOPIC, partition) === b.id);

/** Keyed, numbered publishes to TOPIC (see publishNumbered). */
const publishWindowed = (client: RelayClient, from: number, count: number, window: number, acked: Map<number, PublishReceipt>): Promise<void> =>
  publishNumbered(client, TOPIC, { from, count, keys: KEYS, window }, acked);

describe('publishing to partition leaders directly (5 brokers, RF 3, one seed)', () => {
  it('forwards nothing in steady state, and after a leader leaves stores every acknowledged message once, in order', async () => {
    const brokers = await fixture.cluster(5, { replicationFactor: 3, defaultPartitions: PARTITIONS, prefix: 'r' });
    await waitFor(() => brokers.every((b) => groups(b).find((g) => g.group === 'meta')?.leader != null), 'every broker to know the metadata leader', 15_000);
    const seed = brokers[0] as Broker;
    const client = await fixture.client([seed.url], { producerId: 'shortest' });
    const acked = new Map<number, PublishReceipt>();

    // Warm-up: the first publishes of each partition may be forwarded (the seed learns who leads from its answers).
    await publishWindowed(client, 0, 200, 8, acked);
    await waitFor(() => [...Array(PARTITIONS).keys()].every((p) => leaderOf(brokers, p) !== undefined), 'a leader for every partition', 10_000);
    const leaders = new Set([...Array(PARTITIONS).keys()].map((p) => (leaderOf(brokers, p) as Broker).id));
    // The seed leads few of them: most partitions are led elsewhere.
    expect(leaders.size).toBeGreaterThan(1);

    // Steady state: every publish goes to its partition's leader.
    const before = forwarded(brokers);
    await publishWindowed(client, 200, 600, 8, acked);
    expect(forwarded(brokers) - before).toBe(0);
    // One connection per broker at most, and one to each leader.
    const pooled = client.stats().connectedBrokers.map((c) => c.id);
    expect(new Set(pooled).size).toBe(pooled.length);
    for (const id of leaders) expect(pooled).toContain(id);

    // The counter counts: a client that cannot reach the leaders (no discovery, one connection) has every
    // publish to a partition the seed does not lead forwarded. Keyless publishes go round robin, 10 per partition.
    const pinned = await fixture.client([seed.url], { discovery: false, poolSize: 1 });
    const PINNED = 'shortest.pinned';
    await Promise.all(Array.from({ length: PARTITIONS }, (_, i) => pinned.publish(PINNED, `first ${i}`))); // creates the topic
    const pinnedLeader = (p: number): Broker | undefined => brokers.find((b) => b.engine.leaderOf?.(PINNED, p) === b.id);
    await waitFor(() => [...Array(PARTITIONS).keys()].every((p) => pinnedLeader(p) !== undefined), `a leader for every partition of ${PINNED}`, 10_000);
    const ledElsewhere = [...Array(PARTITIONS).keys()].filter((p) => pinnedLeader(p) !== seed).length;
    expect(ledElsewhere).toBeGreaterThan(0);
    const beforePinned = forwarded(brokers);
    await Promise.all(Array.from({ length: 10 * PARTITIONS }, (_, i) => pinned.publish(PINNED, `p${i}`)));
    expect(forwarded(brokers) - beforePinned).toBe(10 * ledElsewhere);
    await pinned.close();

    // The broker leading the most partitions leaves (its leadership moves to other replicas) while publishes flow.
    const count = (b: Broker): number => [...Array(PARTITIONS).keys()].filter((p) => leaderOf(brokers, p) === b).length;
    const leaving = [...brokers].sort((a, b) => count(b) - count(a))[0] as Broker;
    const staying = brokers.filter((b) => b !== leaving);
    const during = publishWindowed(client, 800, 800, 16, acked);
    await waitFor(() => acked.size > 900, 'publishes to flow before the leader leaves', 10_000);
    await leaving.close();
    await during;
    await waitFor(() => [...Array(PARTITIONS).keys()].every((p) => leaderOf(staying, p) !== undefined), 'a new leader for every partition', 15_000);

    // Steady again: the client follows the new leaders, and nothing is forwarded.
    await publishWindowed(client, 1600, 200, 8, acked); // settles the routes
    const after = forwarded(staying);
    await publishWindowed(client, 1800, 600, 8, acked);
    expect(forwarded(staying) - after).toBe(0);

    // Every acknowledged message is stored once, at the offset its ack named, and each key's messages in publish order.
    expect(acked.size).toBe(2400);
    const read: ReadBack[] = [];
    for (let p = 0; p < PARTITIONS; p++) {
      const leader = leaderOf(staying, p) as Broker;
      for (const m of await leader.engine.read(TOPIC, p, 0, 100_000, Number.MAX_SAFE_INTEGER)) read.push({ ...m, partition: p });
    }
    expect(readBackProblems(read, acked)).toEqual([]);
    expect(client.stats().publish).toMatchObject({ published: 2400, acknowledged: 2400 });
  }, 90_000);
});
