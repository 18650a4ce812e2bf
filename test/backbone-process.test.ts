import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { BrokerProcess, CLI } from './support/broker-process.js';
import { Fixture } from './support/cluster.js';
import { rabbitClusterForFile, reportRabbitOnFailure } from './support/engines.js';
import { freePorts } from './support/ports.js';
import { expectEachOnceInKeyOrder, keyedSeen, startKeyedLoad } from './support/keyed-load.js';
import { waitFor, within } from './support/wait.js';

/**
 * Backbone gateways as the CLI runs them (the built `relaymq broker
 * --backbone`), each its own OS process: 3 RabbitMQ nodes, 2 gateways,
 * keyed publishing at ack `quorum` with a live subscriber; SIGKILL of a
 * gateway and of a RabbitMQ node during the load.
 */
const rabbitmq = rabbitClusterForFile('the backbone process tests', 3);
const fixture = new Fixture();
afterEach(async () => {
  await fixture.cleanup();
  await BrokerProcess.stopAll();
}, 60_000);

describe.runIf(rabbitmq.available)('relaymq broker --backbone (processes)', () => {
  reportRabbitOnFailure(rabbitmq.cluster);

  it('a bad backbone URL ends the command with status 2 and one line naming the option, never the password', async () => {
    const child = spawn(process.execPath, [CLI, 'broker', '--port', '0', '--backbone', 'amqp://app:s3cret@h1:5552'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await within(new Promise<number | null>((resolve) => child.once('exit', resolve)), 'the CLI to exit', 20_000);
    expect(code).toBe(2);
    expect(stderr).toMatch(/backbone.*must start with rabbitmq-stream:\/\//);
    expect(stderr).not.toContain('s3cret');
  });

  it('SIGKILL of a gateway and of a RabbitMQ node under keyed quorum publishing: every ack read back once, live subscriber without duplicates, per-key order', async () => {
    const ports = await freePorts(2);
    const ids = ['g1', 'g2'];
    const peers = ids.map((id, i) => `${id}@127.0.0.1:${ports[i]}`);
    const [g1, g2] = (await Promise.all(
      ids.map((id, i) =>
        BrokerProcess.start(
          id,
          ['--peer-port', String(ports[i]), '--peers', peers.filter((_, j) => j !== i).join(','), '--backbone', rabbitmq.cluster().streamUrls.join(','), '--default-partitions', '2', '--replication-factor', '3'],
          30_000,
        ),
      ),
    )) as [BrokerProcess, BrokerProcess];
    const publisher = await fixture.client([g1.url, g2.url], { ack: 'quorum', poolSize: 2, publishTimeoutMs: 60_000 });
    const subscriber = await fixture.client([g2.url, g1.url], { poolSize: 1 });
    const live = keyedSeen();
    await subscriber.subscribe('payments', live.handler, { from: 'earliest' });
    const load = startKeyedLoad(publisher, 'payments', ['a', 'b', 'c', 'd']);
    const { acked } = load;
    await waitFor(() => acked.length >= 200, '200 acknowledged before any fault', 30_000);
    await g1.signal('SIGKILL');
    let mark = acked.length;
    await waitFor(() => acked.length >= mark + 200, '200 more acknowledged after gateway g1 was SIGKILLed', 60_000);
    await rabbitmq.cluster().nodes[1]?.kill('SIGKILL');
    mark = acked.length;
    await waitFor(() => acked.length >= mark + 200, '200 more acknowledged after a RabbitMQ node was SIGKILLed', 60_000);
    await load.stop();

    // The live subscriber, then a replay through the surviving gateway: each acknowledged message once, per key in publish order.
    await waitFor(() => live.seen.length >= acked.length, `the live subscriber to see all ${acked.length} acknowledged`, 60_000);
    expectEachOnceInKeyOrder(live, acked);
    const replay = keyedSeen();
    await (await fixture.client([g2.url], { discovery: false })).subscribe('payments', replay.handler, { from: 'earliest' });
    await waitFor(() => replay.seen.length >= live.seen.length, 'a replay of everything stored', 60_000);
    expectEachOnceInKeyOrder(replay, acked);
    console.log(`backbone processes: ${acked.length} acknowledged, ${replay.seen.length} stored, ${live.seen.length} delivered live`);
  }, 300_000);
});
