import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Broker, BrokerOptions } from '@relaymq/broker';
import type { Message } from '@relaymq/sdk';
import { Fixture } from './support/cluster.js';
import { backboneBrokerOptions } from './support/engines.js';
import { freePorts } from './support/ports.js';
import { rabbitAvailable, startRabbitCluster, type RabbitCluster } from './support/rabbitmq.js';
import { waitFor, within } from './support/wait.js';

/**
 * Failover of the backbone engine: 3 RabbitMQ nodes, 2 gateways, keyed
 * publishing at ack `quorum` with a live subscriber, while a RabbitMQ node
 * is SIGKILLed and then a gateway shuts down. Every acknowledged message is
 * read back exactly once in per-key order; the subscriber sees no duplicate.
 */
const availability = rabbitAvailable();
if (!availability.ok) console.log(`skipping the backbone failover test: ${availability.reason}`);

const fixture = new Fixture();
let rabbit: RabbitCluster;
beforeAll(async () => {
  if (availability.ok) rabbit = await startRabbitCluster({ nodes: 3, timeoutMs: 120_000 });
}, 130_000);
afterEach(() => fixture.cleanup(), 60_000);
afterAll(async () => {
  await rabbit?.stop();
}, 60_000);

async function gateways(count: number, options: BrokerOptions): Promise<Broker[]> {
  const ids = Array.from({ length: count }, (_, i) => `g${i + 1}`);
  const peerPorts = await freePorts(count);
  const peers = ids.map((id, i) => `${id}@127.0.0.1:${peerPorts[i]}`);
  return Promise.all(ids.map((id, i) => fixture.broker({ ...options, id, peerPort: peerPorts[i], peers: peers.filter((_, j) => j !== i) })));
}

describe.runIf(availability.ok)('backbone failover (3 RabbitMQ nodes, 2 gateways)', () => {
  it('a RabbitMQ node SIGKILLed and a gateway shut down during keyed quorum publishing: every ack read back once, in per-key order', async () => {
    const options = { ...backboneBrokerOptions(rabbit, `fo-${process.pid}`), defaultPartitions: 2, replicationFactor: 3 } as BrokerOptions;
    const [g1, g2] = (await gateways(2, options)) as [Broker, Broker];
    const publisher = await fixture.client([g1.url, g2.url], { ack: 'quorum', poolSize: 2, publishTimeoutMs: 60_000 });
    const subscriber = await fixture.client([g2.url, g1.url], { poolSize: 1 });
    const seen: Array<{ key: string; n: number; offset: number; partition: number }> = [];
    await subscriber.subscribe('payments', (m: Message<{ key: string; n: number }>) => void seen.push({ ...m.data, offset: m.offset, partition: m.partition }), { from: 'earliest' });

    const keys = ['a', 'b', 'c', 'd'];
    const acked: Array<{ key: string; n: number }> = [];
    let stop = false;
    const sequences = new Map(keys.map((k) => [k, 0]));
    const publishing = (async () => {
      while (!stop) {
        await Promise.all(
          keys.map(async (key) => {
            const n = sequences.get(key) as number;
            sequences.set(key, n + 1);
            await publisher.publish('payments', { key, n }, { key });
            acked.push({ key, n });
          }),
        );
      }
    })();
    await waitFor(() => acked.length >= 200, '200 acknowledged publishes before any fault', 30_000);
    await rabbit.nodes[0]?.kill('SIGKILL');
    const afterKill = acked.length;
    await waitFor(() => acked.length >= afterKill + 200, '200 more acknowledged after a RabbitMQ node was killed', 60_000);
    await g1.close();
    const afterClose = acked.length;
    await waitFor(() => acked.length >= afterClose + 200, '200 more acknowledged after gateway g1 shut down', 60_000);
    stop = true;
    await within(publishing, 'the publisher loop to end', 60_000);

    // The subscriber: each message once, per key in publish order, and everything acknowledged.
    await waitFor(() => seen.length >= acked.length, `the subscriber to see all ${acked.length} acknowledged messages`, 60_000);
    const ids = seen.map((m) => `${m.key}:${m.n}`);
    expect(new Set(ids).size).toBe(ids.length);
    for (const key of keys) {
      const ns = seen.filter((m) => m.key === key).map((m) => m.n);
      expect(ns).toEqual(ns.map((_, i) => i).slice(0, ns.length));
    }
    // Read back through a fresh gateway: every acknowledged message exactly once.
    const [g3] = (await gateways(1, { ...options, peers: [] } as BrokerOptions)) as [Broker];
    const stored: string[] = [];
    const reader = await fixture.client([g3.url], { discovery: false });
    await reader.subscribe('payments', (m: Message<{ key: string; n: number }>) => void stored.push(`${m.data.key}:${m.data.n}`), { from: 'earliest' });
    let total = 0;
    for (let p = 0; p < 2; p++) total += (await g3.engine.currentBounds('payments', p)).end;
    await waitFor(() => stored.length >= total, `a replay of all ${total} stored messages`, 60_000);
    expect(new Set(stored).size).toBe(stored.length);
    const storedSet = new Set(stored);
    expect(acked.filter((a) => !storedSet.has(`${a.key}:${a.n}`))).toEqual([]);
    console.log(`backbone failover: ${acked.length} acknowledged, ${stored.length} stored, ${seen.length} delivered live`);
  }, 300_000);
});
