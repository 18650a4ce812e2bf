import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import type { RelayClient } from '@relaymq/sdk';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { startProxy } from './support/proxy.js';
import { waitFor, within } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

/** `ids.length` brokers that know each other, replication factor 3, `partitions` per topic. */
async function cluster(ids: string[], partitions: number): Promise<Broker[]> {
  const peerPorts = await freePorts(ids.length);
  const peers = ids.map((id, i) => `${id}@127.0.0.1:${peerPorts[i]}`);
  return Promise.all(
    ids.map((id, i) =>
      fixture.broker({ id, peerPort: peerPorts[i], peers: peers.filter((_, j) => j !== i), replicationFactor: 3, defaultPartitions: partitions }),
    ),
  );
}

const metadataLeader = (b: Broker): string | null =>
  (b.engine as unknown as { groupStatus(): Array<{ group: string; leader: string | null }> }).groupStatus().find((g) => g.group === 'meta')?.leader ?? null;

/** Failovers as the client reports them in events: from, to and why. */
function recordFailovers(client: RelayClient): string[] {
  const seen: string[] = [];
  client.on('failover', ({ from, to, reason }) => seen.push(`${from.id}->${to.id} ${reason.code}: ${reason.message}`));
  return seen;
}

describe('routing in a cluster larger than the replication factor (5 brokers, RF 3)', () => {
  it('a steady publisher to every partition never fails over and sends each message once', async () => {
    const brokers = await cluster(['b1', 'b2', 'b3', 'b4', 'b5'], 5);
    // Started together, the brokers are briefly not ready (no metadata leader): that is not what this test is about.
    await waitFor(() => brokers.every((b) => metadataLeader(b) !== null), 'every broker to know the metadata leader', 15_000);
    const client = await fixture.client([(brokers[0] as Broker).url]);
    const failovers = recordFailovers(client);
    // Ten keys over five partitions, most of them hosted and led elsewhere than the broker dialed.
    const total = 600;
    for (let i = 0; i < total; i += 20) {
      const receipts = await within(
        Promise.all(Array.from({ length: 20 }, (_, j) => client.publish('routed.orders', { n: i + j }, { key: `k${(i + j) % 10}` }))),
        `publishes ${i}..${i + 19}`,
        15_000,
      );
      expect(receipts.every((r) => r.offset >= 0)).toBe(true);
    }
    const stats = client.stats();
    expect(failovers).toEqual([]);
    expect(stats.failovers).toBe(0);
    expect(stats.publish).toMatchObject({ published: total, acknowledged: total, republished: 0, duplicates: 0 });
    // Every partition stored exactly what was published to it: nothing twice.
    const stored = await Promise.all(
      Array.from({ length: 5 }, async (_, p) => {
        const leader = brokers.find((b) => b.engine.leaderOf?.('routed.orders', p) === b.id);
        return leader === undefined ? -1 : leader.engine.bounds('routed.orders', p).end;
      }),
    );
    expect(stored.reduce((a, b) => a + b, 0)).toBe(total);
  });
});

describe('readiness on the wire', () => {
  it('a client whose first seed has not joined the cluster moves to a ready broker, publishes, and keeps its membership', async () => {
    const [b1, b2, b3] = (await cluster(['b1', 'b2', 'b3'], 1)) as [Broker, Broker, Broker];
    // b4 names the three as peers but cannot reach them (cut off from the cluster): it is never admitted into the
    // metadata group, never learns a metadata leader, and serves nobody. (A broker that reaches them is admitted and
    // becomes ready: test/joining.test.ts.)
    const cutOff = await Promise.all([b1, b2, b3].map((b) => startProxy(b.peerPort as number)));
    for (const proxy of cutOff) {
      proxy.block();
      fixture.defer(() => proxy.close());
    }
    const [b4PeerPort] = (await freePorts(1)) as [number];
    const b4 = await fixture.broker({
      id: 'b4',
      peerPort: b4PeerPort,
      peers: [b1, b2, b3].map((b, i) => `${b.id}@127.0.0.1:${(cutOff[i] as { port: number }).port}`),
      adminPort: 0,
    });
    const readyz = await fetch(`${b4.adminUrl as string}/readyz`);
    expect(readyz.status).toBe(503);

    // b1 is reachable only once the client is active on b4, as when b4 answered first.
    const toB1 = await startProxy(b1.port);
    fixture.defer(() => toB1.close());
    toB1.block();
    const client = await fixture.client([b4.url, toB1.url], { poolSize: 2 });
    const removed: string[] = [];
    client.on('brokers', (event) => removed.push(...event.removed));
    expect(client.stats().activeBroker?.id).toBe('b4');
    toB1.unblock();
    await waitFor(() => client.stats().activeBroker !== undefined && client.stats().activeBroker?.id !== 'b4', 'the client to be active on a ready broker', 10_000);
    await expect(within(client.publish('ready.orders', { n: 1 }), 'a publish', 10_000)).resolves.toMatchObject({ offset: 0 });
    await waitFor(() => client.stats().knownBrokers.length >= 4, 'the client to learn b2 and b3 from a ready broker', 10_000);
    // b4's own member list (itself alone) arrives too, but a broker that is not ready removes nobody.
    expect(client.stats().knownBrokers).toEqual(expect.arrayContaining([b2.url, b3.url, b4.url]));
    expect(removed).not.toContain(b2.url);
    expect(removed).not.toContain(b3.url);
    expect(client.stats().activeBroker?.id).not.toBe('b4');
  });
});
