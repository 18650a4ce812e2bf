import { afterEach, describe, expect, it } from 'vitest';
import type { Broker, BrokerOptions } from '@relaymq/broker';
import { Fixture } from './support/cluster.js';
import { backboneBrokerOptions, rabbitClusterForFile, reportRabbitOnFailure } from './support/engines.js';
import { freePorts } from './support/ports.js';
import { expectEachOnceInKeyOrder, keyedSeen, startKeyedLoad } from './support/keyed-load.js';
import { waitFor } from './support/wait.js';

/**
 * What only the backbone engine has (the guarantees both engines share are
 * in conformance.test.ts): gateways that discover each other and share
 * topics through the metadata stream, and failover of the backbone engine: 3 RabbitMQ nodes, 2 gateways, keyed
 * publishing at ack `quorum` with a live subscriber, while a RabbitMQ node
 * is SIGKILLed and then a gateway shuts down. Every acknowledged message is
 * read back exactly once in per-key order; the subscriber sees no duplicate.
 */
const rabbitmq = rabbitClusterForFile('the backbone failover test', 3);
const fixture = new Fixture();
afterEach(() => fixture.cleanup(), 60_000);

async function gateways(count: number, options: BrokerOptions): Promise<Broker[]> {
  const ids = Array.from({ length: count }, (_, i) => `g${i + 1}`);
  const peerPorts = await freePorts(count);
  const peers = ids.map((id, i) => `${id}@127.0.0.1:${peerPorts[i]}`);
  return Promise.all(ids.map((id, i) => fixture.broker({ ...options, id, peerPort: peerPorts[i], peers: peers.filter((_, j) => j !== i) })));
}

describe.runIf(rabbitmq.available)('backbone gateways (3 RabbitMQ nodes)', () => {
  reportRabbitOnFailure(rabbitmq.cluster);

  it('gateways gossip: an SDK given one gateway learns the other', async () => {
    const [g1, g2] = (await gateways(2, { ...backboneBrokerOptions(rabbitmq.cluster(), `gossip-${process.pid}`) } as BrokerOptions)) as [Broker, Broker];
    const client = await fixture.client([g1.url], { poolSize: 2 });
    await waitFor(() => client.stats().knownBrokers.length === 2, 'the client to learn both gateways', 15_000);
    expect(new Set(client.stats().knownBrokers)).toEqual(new Set([g1.url, g2.url]));
    // Topics created through one gateway are known to the other (the metadata stream).
    await client.publish('shared.topic', 'x');
    await waitFor(() => g2.engine.partitionCount('shared.topic') === 1, 'the other gateway to apply the topic', 15_000);
  });

  it('a RabbitMQ node SIGKILLed and a gateway shut down during keyed quorum publishing: every ack read back once, in per-key order', async () => {
    const options = { ...backboneBrokerOptions(rabbitmq.cluster(), `fo-${process.pid}`), defaultPartitions: 2, replicationFactor: 3 } as BrokerOptions;
    const [g1, g2] = (await gateways(2, options)) as [Broker, Broker];
    const publisher = await fixture.client([g1.url, g2.url], { ack: 'quorum', poolSize: 2, publishTimeoutMs: 60_000 });
    const subscriber = await fixture.client([g2.url, g1.url], { poolSize: 1 });
    const live = keyedSeen();
    await subscriber.subscribe('payments', live.handler, { from: 'earliest' });
    const load = startKeyedLoad(publisher, 'payments', ['a', 'b', 'c', 'd']);
    const { acked } = load;
    await waitFor(() => acked.length >= 200, '200 acknowledged publishes before any fault', 30_000);
    await rabbitmq.cluster().nodes[0]?.kill('SIGKILL');
    const afterKill = acked.length;
    await waitFor(() => acked.length >= afterKill + 200, '200 more acknowledged after a RabbitMQ node was killed', 60_000);
    await g1.close();
    const afterClose = acked.length;
    await waitFor(() => acked.length >= afterClose + 200, '200 more acknowledged after gateway g1 shut down', 60_000);
    await load.stop();

    // The live subscriber, then a replay through a fresh gateway: each acknowledged message once, per key in publish order.
    await waitFor(() => live.seen.length >= acked.length, `the subscriber to see all ${acked.length} acknowledged messages`, 60_000);
    expectEachOnceInKeyOrder(live, acked);
    const [g3] = (await gateways(1, { ...options, peers: [] } as BrokerOptions)) as [Broker];
    let total = 0;
    for (let p = 0; p < 2; p++) total += (await g3.engine.currentBounds('payments', p)).end;
    const replay = keyedSeen();
    await (await fixture.client([g3.url], { discovery: false })).subscribe('payments', replay.handler, { from: 'earliest' });
    await waitFor(() => replay.seen.length >= total, `a replay of all ${total} stored messages`, 60_000);
    expectEachOnceInKeyOrder(replay, acked);
    console.log(`backbone failover: ${acked.length} acknowledged, ${total} stored, ${live.seen.length} delivered live`);
  }, 300_000);
});
