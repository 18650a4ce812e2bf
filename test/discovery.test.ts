import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { waitFor } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

/** Three brokers that gossip with each other over their peer ports. */
async function cluster(): Promise<Broker[]> {
  const ids = ['b1', 'b2', 'b3'];
  const peerPorts = await freePorts(3);
  const peers = ids.map((id, i) => `${id}@127.0.0.1:${peerPorts[i]}`);
  return Promise.all(ids.map((id, i) => fixture.broker({ id, peerPort: peerPorts[i], peers: peers.filter((_, j) => j !== i) })));
}

describe('discovery through gossip', () => {
  it('an SDK given one seed learns the whole cluster, and forgets a broker that leaves', async () => {
    const [b1, b2, b3] = (await cluster()) as [Broker, Broker, Broker];
    const client = await fixture.client([b1.url], { poolSize: 2 });
    const removed: string[] = [];
    client.on('brokers', (event) => removed.push(...event.removed));
    await waitFor(() => client.stats().knownBrokers.length === 3, 'the client to learn b2 and b3', 10_000);
    expect(new Set(client.stats().knownBrokers)).toEqual(new Set([b1.url, b2.url, b3.url]));
    await waitFor(() => client.stats().connectedBrokers.length === 2, 'a standby from the discovered brokers');

    const leaving = client.stats().connectedBrokers.some((b) => b.id === 'b3') ? b2 : b3;
    await leaving.close();
    await waitFor(() => removed.includes(leaving.url), `the client to forget ${leaving.id}`, 10_000);
    expect(client.stats().knownBrokers).toContain(b1.url); // a seed is never dropped
  });

  it('survives the death of its only seed', async () => {
    const [b1] = (await cluster()) as [Broker, Broker, Broker];
    const client = await fixture.client([b1.url], { poolSize: 2 });
    await waitFor(() => client.stats().connectedBrokers.length === 2, 'a standby learned from the cluster', 10_000);
    await b1.close();
    await waitFor(() => client.stats().activeBroker !== undefined && client.stats().activeBroker?.id !== 'b1', 'traffic on a discovered broker');
    await expect(client.publish('after.seed', 1)).resolves.toMatchObject({ offset: 0 });
  });
});
