import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import { Fixture } from './support/cluster.js';
import type { Message } from '@relaymq/sdk';
import { waitFor } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

/** Brokers that gossip with each other over their peer ports, three replicas per partition. */
async function cluster(count: number): Promise<Broker[]> {
  return fixture.cluster(count, { replicationFactor: 3, prefix: 'b' });
}

for (const count of [3, 5]) {
  describe(`discovery through gossip among ${count} brokers (replication factor 3)`, () => {
    it('an SDK given one seed learns the whole cluster, and forgets a broker that leaves', async () => {
      const brokers = await cluster(count);
      const [b1, b2, b3] = brokers as [Broker, Broker, Broker, ...Broker[]];
      const client = await fixture.client([b1.url], { poolSize: 2 });
      const removed: string[] = [];
      client.on('brokers', (event) => removed.push(...event.removed));
      await waitFor(() => client.stats().knownBrokers.length === count, 'the client to learn every broker', 10_000);
      expect(new Set(client.stats().knownBrokers)).toEqual(new Set(brokers.map((b) => b.url)));
      await waitFor(() => client.stats().connectedBrokers.length === 2, 'a standby from the discovered brokers');

      const leaving = client.stats().connectedBrokers.some((b) => b.id === 'b3') ? b2 : b3;
      await leaving.close();
      await waitFor(() => removed.includes(leaving.url), `the client to forget ${leaving.id}`, 10_000);
      expect(client.stats().knownBrokers).toContain(b1.url); // a seed is never dropped
    });

    it('survives the death of its only seed', async () => {
      const [b1] = (await cluster(count)) as [Broker, Broker, Broker, ...Broker[]];
      const client = await fixture.client([b1.url], { poolSize: 2 });
      await waitFor(() => client.stats().connectedBrokers.length === 2, 'a standby learned from the cluster', 10_000);
      await b1.close();
      await waitFor(() => client.stats().activeBroker !== undefined && client.stats().activeBroker?.id !== 'b1', 'traffic on a discovered broker');
      await expect(client.publish('after.seed', 1)).resolves.toMatchObject({ offset: 0 });
    });

    it('a subscriber that survives the death of its only seed goes on receiving through a discovered broker, nothing lost or repeated', async () => {
      const brokers = await cluster(count);
      const [b1] = brokers as [Broker, ...Broker[]];
      const client = await fixture.client([b1.url], { poolSize: 2 });
      await waitFor(() => client.stats().connectedBrokers.length === 2, 'a standby learned from the cluster', 10_000);
      const seen: number[] = [];
      await client.subscribe('seedless', (m: Message<number>) => void seen.push(m.data), { from: 'earliest' });
      const publisher = await fixture.client(brokers.slice(1).map((b) => b.url), { discovery: false });
      await Promise.all(Array.from({ length: 100 }, (_, i) => publisher.publish('seedless', i)));
      await waitFor(() => seen.length >= 100, 'the first hundred');
      await b1.close();
      await Promise.all(Array.from({ length: 100 }, (_, i) => publisher.publish('seedless', 100 + i)));
      await waitFor(() => seen.length >= 200, 'the second hundred through a discovered broker', 15_000);
      expect(seen).toEqual(Array.from({ length: 200 }, (_, i) => i));
    });
  });
}
