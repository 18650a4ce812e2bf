import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import type { Message, PublishReceipt } from '@relaymq/sdk';
import { Fixture, readInMemory } from './support/cluster.js';
import { waitFor, within } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

/** `count` brokers, three replicas per partition: with five, each broker hosts only some partitions. */
async function cluster(count = 3): Promise<Broker[]> {
  return fixture.cluster(count, { replicationFactor: 3, prefix: 'r' });
}

type GroupStatus = { group: string; leader: string | null };
const groupsOf = (b: Broker): GroupStatus[] => (b.engine as unknown as { groupStatus(): GroupStatus[] }).groupStatus();
/** The brokers holding a replica of `topic`'s partition 0. */
const replicasOf = (brokers: Broker[], topic: string): Broker[] => brokers.filter((b) => groupsOf(b).some((s) => s.group === `p/${topic}/0`));

/** Every replica's copy of a partition, as offsets and payloads. */
function replicaLogs(brokers: Broker[], topic: string): Array<Array<[number, string]>> {
  return replicasOf(brokers, topic).map((b) =>
    readInMemory(b.engine, topic, 0).map((m) => [m.offset, Buffer.from(m.data).toString()] as [number, string]),
  );
}

for (const count of [3, 5]) {
  describe(`replication across ${count} brokers (replication factor 3)`, () => {
    it('stores every acknowledged publish on every replica, and every broker serves subscribers', async () => {
      const brokers = await cluster(count);
      const [r1, ...others] = brokers as [Broker, ...Broker[]];
      const publisher = await fixture.client([r1.url], { poolSize: 1, discovery: false });
      const seen = new Map<string, string[]>(others.map((b) => [b.id, []]));
      for (const b of others) {
        const subscriber = await fixture.client([b.url], { poolSize: 1, discovery: false });
        await subscriber.subscribe('replicated', (m: Message) => void seen.get(b.id)?.push(Buffer.from(m.data as Uint8Array).toString()), { from: 'earliest' });
      }
      const receipts = await Promise.all(Array.from({ length: 500 }, (_, i) => publisher.publish('replicated', new TextEncoder().encode(`m${i}`))));
      expect(receipts.map((r) => r.offset)).toEqual(Array.from({ length: 500 }, (_, i) => i));
      await waitFor(() => {
        const logs = replicaLogs(brokers, 'replicated');
        return logs.length === 3 && logs.every((log) => log.length === 500);
      }, 'every replica to apply 500');
      const [a, b, c] = replicaLogs(brokers, 'replicated');
      expect(b).toEqual(a);
      expect(c).toEqual(a);
      await waitFor(() => [...seen.values()].every((values) => values.length >= 500), `subscribers on ${others.map((o) => o.id).join(', ')}`);
      for (const values of seen.values()) expect(values).toEqual(a?.map(([, v]) => v));
    });

    it('keeps publishing through the loss of the partition leader, with nothing lost or duplicated, and a subscriber on every broker sees it all', async () => {
      const brokers = await cluster(count);
      const client = await fixture.client(brokers.map((b) => b.url), { poolSize: 2 });
      await client.publish('failover', 'warm-up');
      const leaderId = brokers.flatMap(groupsOf).find((s) => s.group === 'p/failover/0')?.leader;
      const leader = brokers.find((b) => b.id === leaderId) as Broker;
      // A subscriber on a broker that is not the leader (with five brokers: one hosting no replica, when there is one).
      const watcherBroker = brokers.find((b) => b !== leader && !replicasOf(brokers, 'failover').includes(b)) ?? (brokers.find((b) => b !== leader) as Broker);
      const watched: number[] = [];
      const watcher = await fixture.client([watcherBroker.url], { poolSize: 1, discovery: false });
      await watcher.subscribe('failover', (m: Message) => void watched.push(m.offset), { from: 'earliest' });
      const receipts: Array<Promise<PublishReceipt>> = [];
      for (let i = 0; i < 2000; i++) {
        receipts.push(client.publish('failover', i));
        if (i === 1000) void leader.close();
        if (i % 200 === 199) await new Promise((resolve) => setImmediate(resolve));
      }
      const results = await within(Promise.all(receipts), 'every publish to resolve', 20_000);
      const survivors = replicasOf(brokers, 'failover').filter((b) => b !== leader);
      await waitFor(
        () => survivors.every((b) => b.engine.bounds('failover', 0).end >= 2001),
        'the survivors to apply everything',
      );
      // Exactly once, in publish order, on every surviving replica.
      for (const b of survivors) {
        const values = readInMemory(b.engine, "failover", 0, 1).map((m) => m.data);
        expect(values).toHaveLength(2000);
      }
      const offsets = results.map((r) => r.offset);
      expect(new Set(offsets).size).toBe(2000);
      expect(offsets).toEqual([...offsets].sort((x, y) => x - y));
      await waitFor(() => watched.length >= 2001, `the subscriber on ${watcherBroker.id} to see all 2001`, 15_000);
      expect(watched).toEqual(Array.from({ length: 2001 }, (_, i) => i));
    });

    it('ack all waits for every replica: with one replica down it times out, with all up it succeeds', async () => {
      const brokers = await cluster(count);
      const client = await fixture.client(brokers.map((b) => b.url), { poolSize: 1 });
      await expect(client.publish('acks', 'all up', { ack: 'all' })).resolves.toMatchObject({ offset: 0 });
      const leaderId = brokers.flatMap(groupsOf).find((s) => s.group === 'p/acks/0')?.leader;
      const follower = replicasOf(brokers, 'acks').find((b) => b.id !== leaderId && b.url !== client.stats().activeBroker?.url) as Broker;
      await follower.close();
      // A quorum is still there: quorum acks go on; an all-replica ack cannot be given.
      await expect(client.publish('acks', 'quorum', { ack: 'quorum' })).resolves.toMatchObject({ offset: 1 });
      await expect(client.publish('acks', 'all down', { ack: 'all', timeoutMs: 1500 })).rejects.toMatchObject({ code: 'TIMEOUT' });
    });
  });
}

describe('routing across three brokers', () => {
  it('publishes go straight to the partition leader when the client is connected to it', async () => {
    const brokers = await cluster();
    const client = await fixture.client(brokers.map((b) => b.url), { poolSize: 3 });
    await waitFor(() => client.stats().connectedBrokers.length === 3, 'connections to all three brokers');
    await client.publish('routed', 'first'); // learns the leader from the metadata answer
    const leaderId = brokers
      .flatMap((b) => (b.engine as unknown as { groupStatus(): Array<{ group: string; leader: string | null }> }).groupStatus())
      .find((s) => s.group === 'p/routed/0')?.leader;
    const before = new Map(brokers.map((b) => [b.id, b.stats().published]));
    await Promise.all(Array.from({ length: 200 }, (_, i) => client.publish('routed', i)));
    for (const b of brokers) {
      const accepted = b.stats().published - (before.get(b.id) ?? 0);
      expect(accepted).toBe(b.id === leaderId ? 200 : 0);
    }
  });

  it('a client connected to two followers moves a standby to the partition leader, then publishes there directly', async () => {
    const brokers = await cluster();
    const setup = await fixture.client([(brokers[0] as Broker).url], { poolSize: 1 });
    await setup.publish('moved', 'first'); // creates the topic; its leader is elected
    const leaderOf = (): string | undefined =>
      brokers
        .flatMap((b) => (b.engine as unknown as { groupStatus(): Array<{ group: string; leader: string | null }> }).groupStatus())
        .find((s) => s.group === 'p/moved/0')?.leader ?? undefined;
    await waitFor(() => leaderOf() !== undefined, 'a leader of moved/0');
    const leaderId = leaderOf() as string;
    const followers = brokers.filter((b) => b.id !== leaderId);
    const client = await fixture.client(followers.map((b) => b.url), { poolSize: 2 });
    await waitFor(() => client.stats().connectedBrokers.length === 2, 'connections to both followers');
    // Forwarded at first; the forwarded acks name the leader, and the pool swaps its standby for it. Publishing
    // goes on until it has: a dial that fails on a busy machine is retried at the next rebalance (5 s), which
    // only a publish that needs the leader asks for.
    const connectedToLeader = (): boolean => client.stats().connectedBrokers.some((b) => b.id === leaderId);
    const deadline = Date.now() + 15_000;
    for (let i = 0; !connectedToLeader() && Date.now() < deadline; i++) {
      await client.publish('moved', i);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(connectedToLeader()).toBe(true);
    const leader = brokers.find((b) => b.id === leaderId) as Broker;
    const before = leader.stats().published;
    await Promise.all(Array.from({ length: 100 }, (_, i) => client.publish('moved', 1000 + i)));
    expect(leader.stats().published - before).toBe(100);
  });
});
