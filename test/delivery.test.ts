import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import type { Message, RelayClient } from '@relaymq/sdk';
import { Fixture } from './support/cluster.js';
import { waitFor, within } from './support/wait.js';

/**
 * Every broker serves every partition to its subscribers, also in a cluster
 * larger than the replication factor, where a broker hosts only some of them
 * (issue 10, finding 5: a client seeded with one broker of five received
 * 0/60/0 of a 120/60/120 topic, silently).
 */

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

const PARTITIONS = 3;

type GroupStatus = { group: string; role: string; leader: string | null };
const groupsOf = (b: Broker): GroupStatus[] => (b.engine as unknown as { groupStatus(): GroupStatus[] }).groupStatus();
const hosts = (b: Broker, topic: string, partition: number): boolean => groupsOf(b).some((s) => s.group === `p/${topic}/${partition}`);

async function cluster(count: number, replicationFactor: number): Promise<Broker[]> {
  return fixture.cluster(count, { replicationFactor, defaultPartitions: PARTITIONS, prefix: 'x' });
}

/** Publishes `count` numbered messages spread over the partitions by key; returns each partition's values in offset order. */
async function publishKeyed(client: RelayClient, topic: string, from: number, count: number): Promise<Map<number, number[]>> {
  const sent = new Map<number, Array<[number, number]>>();
  for (let i = from; i < from + count; i += 50) {
    const round = Array.from({ length: Math.min(50, from + count - i) }, (_, j) => i + j);
    const receipts = await Promise.all(round.map((n) => client.publish(topic, n, { key: `k${n % 7}` })));
    receipts.forEach((r, j) => {
      const list = sent.get(r.partition) ?? [];
      list.push([r.offset, round[j] as number]);
      sent.set(r.partition, list);
    });
  }
  return new Map([...sent].map(([p, list]) => [p, list.sort((a, b) => a[0] - b[0]).map(([, v]) => v)]));
}

/** Collects what a subscription delivers, per partition, as [offset, value]. */
function collector(): { seen: Map<number, Array<[number, number]>>; handle: (m: Message<number>) => void; total: () => number } {
  const seen = new Map<number, Array<[number, number]>>();
  return {
    seen,
    handle: (m) => {
      const list = seen.get(m.partition) ?? [];
      list.push([m.offset, m.data]);
      seen.set(m.partition, list);
    },
    total: () => [...seen.values()].reduce((n, l) => n + l.length, 0),
  };
}

/** The broker hosting the fewest partitions of `topic`: it must read the others from replicas elsewhere. */
async function leastHosting(brokers: Broker[], topic: string): Promise<Broker> {
  await waitFor(() => brokers.every((b) => b.engine.partitionCount(topic) === PARTITIONS), `every broker to know ${topic}`);
  const count = (b: Broker): number => Array.from({ length: PARTITIONS }, (_, p) => p).filter((p) => hosts(b, topic, p)).length;
  const chosen = [...brokers].sort((a, b) => count(a) - count(b))[0] as Broker;
  return chosen;
}

/** Every partition delivered whole, in offset order, each message once. */
function expectEverything(seen: Map<number, Array<[number, number]>>, expected: Map<number, number[]>, firstOffset = 0): void {
  const summary = (m: Map<number, unknown[]>): number[] => Array.from({ length: PARTITIONS }, (_, p) => m.get(p)?.length ?? 0);
  expect(summary(seen)).toEqual(summary(expected).map((n) => n - firstOffset));
  for (const [partition, values] of expected) {
    const got = seen.get(partition) ?? [];
    expect(got.map(([offset]) => offset)).toEqual(values.map((_, i) => i).slice(firstOffset));
    expect(got.map(([, v]) => v)).toEqual(values.slice(firstOffset));
  }
}

for (const [count, rf] of [
  [5, 3],
  [3, 3],
] as const) {
  describe(`delivery from one broker of ${count} (replication factor ${rf})`, () => {
    it('a client seeded with one broker receives every message of every partition from earliest, in order', async () => {
      const brokers = await cluster(count, rf);
      const publisher = await fixture.client(brokers.map((b) => b.url));
      const expected = await publishKeyed(publisher, 'spread', 0, 300);
      expect(expected.size).toBe(PARTITIONS);
      const home = await leastHosting(brokers, 'spread');
      if (count > rf) expect(Array.from({ length: PARTITIONS }, (_, p) => hosts(home, 'spread', p))).toContain(false);

      const got = collector();
      const client = await fixture.client([home.url], { poolSize: 1, discovery: false });
      await client.subscribe('spread', got.handle, { from: 'earliest' });
      // On a timeout the comparison below names what arrived per partition (before the fix: e.g. [0, 131, 0]).
      await waitFor(() => got.total() >= 300, `300 messages through ${home.id}`, 15_000).catch(() => undefined);
      expectEverything(got.seen, expected);
    });

    it('a live subscription on one broker receives what is published afterwards to every partition', async () => {
      const brokers = await cluster(count, rf);
      const publisher = await fixture.client(brokers.map((b) => b.url));
      const before = await publishKeyed(publisher, 'live', 0, 30);
      const home = await leastHosting(brokers, 'live');
      const got = collector();
      const client = await fixture.client([home.url], { poolSize: 1, discovery: false });
      await client.subscribe('live', got.handle, { from: 'new' });
      const after = await publishKeyed(publisher, 'live', 30, 300);
      await waitFor(() => got.total() >= 300, `300 live messages through ${home.id}`, 15_000);
      const expected = new Map([...after].map(([p, values]) => [p, [...(before.get(p) ?? []), ...values]]));
      // Each partition from where it ended when the subscription started.
      for (let p = 0; p < PARTITIONS; p++) {
        const firstOffset = before.get(p)?.length ?? 0;
        const list = got.seen.get(p) ?? [];
        expect(list.map(([o]) => o)).toEqual((expected.get(p) ?? []).map((_, i) => i).slice(firstOffset));
        expect(list.map(([, v]) => v)).toEqual((expected.get(p) ?? []).slice(firstOffset));
      }
    });

    it('replays from an offset and from a time on one broker, partitions hosted elsewhere included', async () => {
      const brokers = await cluster(count, rf);
      const publisher = await fixture.client(brokers.map((b) => b.url));
      const early = await publishKeyed(publisher, 'replay', 0, 150);
      // Broker timestamps come from this machine's clock: a few ms apart, every later message is stamped at or after `middle`.
      await new Promise((resolve) => setTimeout(resolve, 5));
      const middle = Date.now();
      await new Promise((resolve) => setTimeout(resolve, 5));
      const late = await publishKeyed(publisher, 'replay', 150, 150);
      const expected = new Map(Array.from({ length: PARTITIONS }, (_, p) => [p, [...(early.get(p) ?? []), ...(late.get(p) ?? [])]]));
      const home = await leastHosting(brokers, 'replay');
      const client = await fixture.client([home.url], { poolSize: 1, discovery: false });
      const fromOffset = collector();
      const fromTime = collector();
      await client.subscribe('replay', fromOffset.handle, { from: { offset: 10 } });
      await client.subscribe('replay', fromTime.handle, { from: { time: middle } });
      await waitFor(() => fromOffset.total() >= 300 - 10 * PARTITIONS && fromTime.total() >= 150, 'both replays to reach the end', 15_000).catch(() => undefined);
      expectEverything(fromOffset.seen, expected, 10);
      for (let p = 0; p < PARTITIONS; p++) {
        const firstLate = early.get(p)?.length ?? 0;
        expect(fromTime.seen.get(p)?.map(([o]) => o) ?? []).toEqual((expected.get(p) ?? []).map((_, i) => i).slice(firstLate));
      }
    });

    it('a durable subscriber on one broker resumes after a restart with no gap and no duplicate', async () => {
      const brokers = await cluster(count, rf);
      const publisher = await fixture.client(brokers.map((b) => b.url));
      const expected = await publishKeyed(publisher, 'kept', 0, 300);
      const home = await leastHosting(brokers, 'kept');
      const first = collector();
      const a = await fixture.client([home.url], { poolSize: 1, discovery: false, subscriptionCredit: 20 });
      await a.subscribe('kept', first.handle, { durable: 'keeper', from: 'earliest' });
      await waitFor(() => first.total() >= 100, 'the first subscriber to handle 100');
      await a.close(); // commits what it handled
      const more = await publishKeyed(publisher, 'kept', 300, 150);
      for (const [p, values] of more) expected.set(p, [...(expected.get(p) ?? []), ...values]);

      const second = collector();
      const b = await fixture.client([home.url], { poolSize: 1, discovery: false });
      await b.subscribe('kept', second.handle, { durable: 'keeper', from: 'earliest' });
      await waitFor(() => first.total() + second.total() >= 450, 'the second subscriber to reach the end', 15_000);
      const joined = new Map(Array.from({ length: PARTITIONS }, (_, p) => [p, [...(first.seen.get(p) ?? []), ...(second.seen.get(p) ?? [])]]));
      expectEverything(joined, expected);
    });

    it('the replica a broker reads from goes away mid-stream: reading fails over to another replica, no gap, no duplicate', async () => {
      const brokers = await cluster(count, rf);
      const publisher = await fixture.client(brokers.map((b) => b.url), { poolSize: 2 });
      const expected = await publishKeyed(publisher, 'moving', 0, 1500);
      const home = await leastHosting(brokers, 'moving');
      // The partition to watch: one hosted elsewhere when the cluster allows it.
      const partition = Array.from({ length: PARTITIONS }, (_, p) => p).find((p) => !hosts(home, 'moving', p)) ?? 0;
      const leaderId = groupsOf(brokers.find((b) => hosts(b, 'moving', partition)) as Broker).find((s) => s.group === `p/moving/${partition}`)?.leader;
      const victim = brokers.find((b) => b.id === leaderId && b !== home) ?? (brokers.find((b) => b !== home && hosts(b, 'moving', partition)) as Broker);

      const got = collector();
      const client = await fixture.client([home.url], { poolSize: 1, discovery: false, subscriptionCredit: 50 });
      await client.subscribe(
        'moving',
        async (m: Message<number>) => {
          got.handle(m);
          // Paced, so that the replica goes away while this partition is still being read.
          if (m.offset % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 2));
        },
        { from: 'earliest' },
      );
      await waitFor(() => (got.seen.get(partition)?.length ?? 0) >= 100, `100 of partition ${partition}`);
      const total = [...expected.values()].reduce((n, l) => n + l.length, 0);
      expect(got.total()).toBeLessThan(total); // mid-stream
      await victim.close();
      const later = await within(
        publishKeyed(await fixture.client(brokers.filter((b) => b !== victim).map((b) => b.url), { poolSize: 2 }), 'moving', 1500, 300),
        'publishing after the replica left',
        20_000,
      );
      for (const [p, values] of later) expected.set(p, [...(expected.get(p) ?? []), ...values]);
      await waitFor(() => got.total() >= 1800, 'every message after the failover', 20_000);
      expectEverything(got.seen, expected);
    });
  });
}
