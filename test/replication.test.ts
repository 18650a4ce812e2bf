import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import type { Message, PublishReceipt } from '@relaymq/sdk';
import { Fixture, readInMemory } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { waitFor, within } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

async function cluster(): Promise<Broker[]> {
  const ids = ['r1', 'r2', 'r3'];
  const peerPorts = await freePorts(3);
  const peers = ids.map((id, i) => `${id}@127.0.0.1:${peerPorts[i]}`);
  return Promise.all(ids.map((id, i) => fixture.broker({ id, peerPort: peerPorts[i], peers: peers.filter((_, j) => j !== i) })));
}

/** Every replica's copy of a partition, as offsets and payloads. */
function replicaLogs(brokers: Broker[], topic: string): Array<Array<[number, string]>> {
  return brokers.map((b) =>
    readInMemory(b.engine, topic, 0).map((m) => [m.offset, Buffer.from(m.data).toString()] as [number, string]),
  );
}

describe('replication across three brokers', () => {
  it('stores every acknowledged publish on every replica, and any replica serves subscribers', async () => {
    const brokers = await cluster();
    const [r1, r2, r3] = brokers as [Broker, Broker, Broker];
    const publisher = await fixture.client([r1.url], { poolSize: 1, discovery: false });
    const seen: Record<string, string[]> = { r2: [], r3: [] };
    for (const b of [r2, r3]) {
      const subscriber = await fixture.client([b.url], { poolSize: 1, discovery: false });
      await subscriber.subscribe('replicated', (m: Message) => void seen[b.id]?.push(Buffer.from(m.data as Uint8Array).toString()), { from: 'earliest' });
    }
    const receipts = await Promise.all(Array.from({ length: 500 }, (_, i) => publisher.publish('replicated', new TextEncoder().encode(`m${i}`))));
    expect(receipts.map((r) => r.offset)).toEqual(Array.from({ length: 500 }, (_, i) => i));
    await waitFor(() => replicaLogs(brokers, 'replicated').every((log) => log.length === 500), 'every replica to apply 500');
    const [a, b, c] = replicaLogs(brokers, 'replicated');
    expect(b).toEqual(a);
    expect(c).toEqual(a);
    await waitFor(() => seen.r2?.length === 500 && seen.r3?.length === 500, 'subscribers on r2 and r3');
    expect(seen.r2).toEqual(a?.map(([, v]) => v));
    expect(seen.r3).toEqual(a?.map(([, v]) => v));
  });

  it('keeps publishing through the loss of the partition leader, with nothing lost or duplicated', async () => {
    const brokers = await cluster();
    const client = await fixture.client(brokers.map((b) => b.url), { poolSize: 2 });
    await client.publish('failover', 'warm-up');
    const leaderId = brokers
      .flatMap((b) => (b as unknown as { engine: { groupStatus(): Array<{ group: string; leader: string | null }> } }).engine.groupStatus())
      .find((s) => s.group === 'p/failover/0')?.leader;
    const leader = brokers.find((b) => b.id === leaderId) as Broker;
    const receipts: Array<Promise<PublishReceipt>> = [];
    for (let i = 0; i < 2000; i++) {
      receipts.push(client.publish('failover', i));
      if (i === 1000) void leader.close();
      if (i % 200 === 199) await new Promise((resolve) => setImmediate(resolve));
    }
    const results = await within(Promise.all(receipts), 'every publish to resolve', 20_000);
    const survivors = brokers.filter((b) => b !== leader);
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
  });

  it('ack all waits for every replica: with one replica down it times out, with all up it succeeds', async () => {
    const brokers = await cluster();
    const client = await fixture.client(brokers.map((b) => b.url), { poolSize: 1 });
    await expect(client.publish('acks', 'all up', { ack: 'all' })).resolves.toMatchObject({ offset: 0 });
    const leaderId = brokers
      .flatMap((b) => (b.engine as unknown as { groupStatus(): Array<{ group: string; leader: string | null }> }).groupStatus())
      .find((s) => s.group === 'p/acks/0')?.leader;
    const follower = brokers.find((b) => b.id !== leaderId && b.url !== client.stats().activeBroker?.url) as Broker;
    await follower.close();
    // A quorum is still there: quorum acks go on; an all-replica ack cannot be given.
    await expect(client.publish('acks', 'quorum', { ack: 'quorum' })).resolves.toMatchObject({ offset: 1 });
    await expect(client.publish('acks', 'all down', { ack: 'all', timeoutMs: 1500 })).rejects.toMatchObject({ code: 'TIMEOUT' });
  });

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
    // Forwarded at first; the forwarded acks name the leader, and the pool swaps its standby for it.
    for (let i = 0; i < 50 && !client.stats().connectedBrokers.some((b) => b.id === leaderId); i++) {
      await client.publish('moved', i);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await waitFor(() => client.stats().connectedBrokers.some((b) => b.id === leaderId), 'a connection to the leader', 5000);
    const leader = brokers.find((b) => b.id === leaderId) as Broker;
    const before = leader.stats().published;
    await Promise.all(Array.from({ length: 100 }, (_, i) => client.publish('moved', 1000 + i)));
    expect(leader.stats().published - before).toBe(100);
  });
});
