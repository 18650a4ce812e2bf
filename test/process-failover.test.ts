import { afterEach, describe, expect, it } from 'vitest';
import type { Message, PublishReceipt, RelayClient } from '@relaymq/sdk';
import { getJson } from './support/admin.js';
import { BrokerProcess } from './support/broker-process.js';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { nextEvent, waitFor, waitForAsync, within } from './support/wait.js';

const PARTITIONS = 3;

/** The part of `/api/broker` this test reads: the partitions a broker hosts. */
interface PartitionView {
  topic: string;
  partition: number;
  leader: string | null;
}

/** Publishes `count` numbered messages spread over the partitions by key; returns each partition's values in offset order. */
async function publishKeyed(client: RelayClient, topic: string, from: number, count: number): Promise<Map<number, number[]>> {
  const sent = new Map<number, Array<[number, number]>>();
  for (let i = from; i < from + count; i += 50) {
    const round = Array.from({ length: Math.min(50, from + count - i) }, (_, j) => i + j);
    const receipts = await Promise.all(round.map((n) => client.publish(topic, n, { key: `k${n % 7}` })));
    receipts.forEach((r, j) => sent.set(r.partition, [...(sent.get(r.partition) ?? []), [r.offset, round[j] as number]]));
  }
  return new Map([...sent].map(([p, list]) => [p, list.sort((a, b) => a[0] - b[0]).map(([, v]) => v)]));
}

const fixture = new Fixture();
afterEach(async () => {
  await fixture.cleanup();
  await BrokerProcess.stopAll();
});

describe('real broker processes', () => {
  it('kill -9 of the active broker: the client fails over to the standby and publishing continues', async () => {
    const a = await BrokerProcess.start('proc-a');
    const b = await BrokerProcess.start('proc-b');
    const client = await fixture.client([a.url, b.url], { poolSize: 2, pingIntervalMs: 200 });
    await waitFor(() => client.stats().connectedBrokers.length === 2, 'a warm standby');
    const victim = client.stats().activeBroker?.id === a.id ? a : b;
    const survivor = victim === a ? b : a;

    const failover = nextEvent(client, 'failover', 5000);
    const receipts: Array<Promise<PublishReceipt>> = [];
    for (let i = 0; i < 200; i++) receipts.push(client.publish('proc.kill', i));
    await victim.signal('SIGKILL');
    for (let i = 200; i < 400; i++) receipts.push(client.publish('proc.kill', i));
    const event = await failover;
    expect(event.from.id).toBe(victim.id);
    expect(event.to.id).toBe(survivor.id);
    // Every publish resolves; the ones the victim never acknowledged went to the survivor.
    const results = await within(Promise.all(receipts), 'every publish to resolve', 10_000);
    expect(results).toHaveLength(400);
    expect(results.every((r) => r.offset >= 0)).toBe(true);
  });

  it('SIGTERM drains: clients get goaway and move before the broker exits', async () => {
    const a = await BrokerProcess.start('drain-a', ['--drain-timeout-ms', '5000']);
    const b = await BrokerProcess.start('drain-b');
    const client = await fixture.client([a.url, b.url], { poolSize: 2 });
    await waitFor(() => client.stats().connectedBrokers.length === 2, 'a warm standby');
    const victim = client.stats().activeBroker?.id === a.id ? a : b;
    const failover = nextEvent(client, 'failover', 5000);
    const exit = victim.signal('SIGTERM');
    expect((await failover).reason.code).toBe('SHUTTING_DOWN');
    // The broker exits as soon as its clients left, well before the 5 s drain timeout.
    expect(await within(exit as Promise<number | null>, 'the drained broker to exit', 4000)).toBe(0);
  });

  it('SIGSTOP (a paused broker): heartbeats notice, the client fails over', async () => {
    const a = await BrokerProcess.start('stop-a');
    const b = await BrokerProcess.start('stop-b');
    const client = await fixture.client([a.url, b.url], { poolSize: 2, pingIntervalMs: 100 });
    await waitFor(() => client.stats().connectedBrokers.length === 2, 'a warm standby');
    const victim = client.stats().activeBroker?.id === a.id ? a : b;
    const failover = nextEvent(client, 'failover', 5000);
    await victim.signal('SIGSTOP');
    const event = await failover;
    expect(event.from.id).toBe(victim.id);
    await expect(client.publish('after.pause', 'x')).resolves.toMatchObject({ offset: 0 });
    await victim.signal('SIGCONT');
  });

});

for (const count of [3, 5]) {
  describe(`real broker processes, ${count} brokers (replication factor 3)`, () => {
    it(`gossip among ${count} brokers: kill -9 of a broker is detected by the cluster, and clients forget it`, async () => {
      const ids = Array.from({ length: count }, (_, i) => `g${i + 1}`);
      const ports = await freePorts(count);
      const peers = ids.map((id, i) => `${id}@127.0.0.1:${ports[i]}`);
      const brokers = await Promise.all(
        ids.map((id, i) => BrokerProcess.start(id, ['--peer-port', String(ports[i]), '--peers', peers.filter((_, j) => j !== i).join(','), '--replication-factor', '3'])),
      );
      const [g1, , g3] = brokers as [BrokerProcess, BrokerProcess, BrokerProcess, ...BrokerProcess[]];
      const client = await fixture.client([g1.url], { poolSize: 1 });
      await waitFor(() => client.stats().knownBrokers.length === count, 'discovery of every broker', 10_000);
      const forgotten = new Promise<void>((resolve) =>
        client.on('brokers', ({ removed }) => {
          if (removed.includes(g3.url)) resolve();
        }),
      );
      await g3.signal('SIGKILL');
      // Suspicion, then death, spread by gossip and pushed to the client in a cluster frame.
      await within(forgotten, 'the client to forget the killed broker', 20_000);
      expect(client.stats().knownBrokers).not.toContain(g3.url);
    });

    it('kill -9 of the replica a subscriber is read from: a client seeded with one broker receives every partition, no gap, no duplicate', async () => {
      const ids = Array.from({ length: count }, (_, i) => `k${i + 1}`);
      const ports = await freePorts(count);
      const peers = ids.map((id, i) => `${id}@127.0.0.1:${ports[i]}`);
      const brokers = await Promise.all(
        ids.map((id, i) =>
          BrokerProcess.start(id, [
            '--peer-port', String(ports[i]), '--peers', peers.filter((_, j) => j !== i).join(','),
            '--replication-factor', '3', '--default-partitions', String(PARTITIONS), '--admin-port', '0',
          ]),
        ),
      );
      const publisher = await fixture.client(brokers.map((b) => b.url), { poolSize: 2 });
      const expected = await publishKeyed(publisher, 'proc.spread', 0, 1500);
      // Which broker hosts which partition, as each reports the partitions it hosts.
      const hosted = new Map<string, PartitionView[]>();
      await waitForAsync(async () => {
        for (const b of brokers) hosted.set(b.id, (await getJson<{ partitions: PartitionView[] }>(`${b.adminUrl}/api/broker`)).partitions.filter((p) => p.topic === 'proc.spread'));
        return [...hosted.values()].reduce((n, views) => n + views.length, 0) === PARTITIONS * 3 && [...hosted.values()].flat().every((v) => v.leader !== null);
      }, 'every replica of proc.spread to report a leader', 10_000);
      const hostsOf = (b: BrokerProcess): number[] => (hosted.get(b.id) ?? []).map((v) => v.partition);
      const home = [...brokers].sort((a, b) => hostsOf(a).length - hostsOf(b).length)[0] as BrokerProcess;
      const partition = Array.from({ length: PARTITIONS }, (_, p) => p).find((p) => !hostsOf(home).includes(p)) ?? 0;
      if (count > 3) expect(hostsOf(home)).not.toContain(partition);
      // Reads go to the leader first: kill it (unless it is the home broker itself, at 3/3).
      const leaderId = [...hosted.values()].flat().find((v) => v.partition === partition)?.leader;
      const victim = brokers.find((b) => b.id === leaderId && b !== home) ?? (brokers.find((b) => b !== home && hostsOf(b).includes(partition)) as BrokerProcess);

      const seen = new Map<number, Array<[number, number]>>();
      const total = (): number => [...seen.values()].reduce((n, l) => n + l.length, 0);
      const client = await fixture.client([home.url], { poolSize: 1, discovery: false, subscriptionCredit: 50 });
      await client.subscribe(
        'proc.spread',
        async (m: Message<number>) => {
          seen.set(m.partition, [...(seen.get(m.partition) ?? []), [m.offset, m.data]]);
          // Paced, so that the kill strikes while the partition is still being read.
          if (m.offset % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 2));
        },
        { from: 'earliest' },
      );
      await waitFor(() => (seen.get(partition)?.length ?? 0) >= 100, `100 of partition ${partition}`);
      expect(total()).toBeLessThan(1500); // mid-stream
      await victim.signal('SIGKILL');
      const survivors = await fixture.client(brokers.filter((b) => b !== victim).map((b) => b.url), { poolSize: 2 });
      const later = await within(publishKeyed(survivors, 'proc.spread', 1500, 300), 'publishing after the kill', 20_000);
      for (const [p, values] of later) expected.set(p, [...(expected.get(p) ?? []), ...values]);
      await waitFor(() => total() >= 1800, 'every message after the kill', 20_000).catch(() => undefined);
      const counts = (m: Map<number, unknown[]>): number[] => Array.from({ length: PARTITIONS }, (_, p) => m.get(p)?.length ?? 0);
      expect(counts(seen)).toEqual(counts(expected));
      for (const [p, values] of expected) {
        expect(seen.get(p)?.map(([o]) => o)).toEqual(values.map((_, i) => i));
        expect(seen.get(p)?.map(([, v]) => v)).toEqual(values);
      }
    });
  });
}
