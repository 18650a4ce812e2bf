import { spawn } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Message } from '@relaymq/sdk';
import { BrokerProcess, CLI } from './support/broker-process.js';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { rabbitAvailable, startRabbitCluster, type RabbitCluster } from './support/rabbitmq.js';
import { waitFor, within } from './support/wait.js';

/**
 * Backbone gateways as the CLI runs them (the built `relaymq broker
 * --backbone`), each its own OS process: 3 RabbitMQ nodes, 2 gateways,
 * keyed publishing at ack `quorum` with a live subscriber; SIGKILL of a
 * gateway and of a RabbitMQ node during the load.
 */
const availability = rabbitAvailable();
if (!availability.ok) console.log(`skipping the backbone process tests: ${availability.reason}`);

const fixture = new Fixture();
let rabbit: RabbitCluster;
beforeAll(async () => {
  if (availability.ok) rabbit = await startRabbitCluster({ nodes: 3, timeoutMs: 120_000 });
}, 130_000);
afterEach(async () => {
  await fixture.cleanup();
  await BrokerProcess.stopAll();
}, 60_000);
afterAll(async () => {
  await rabbit?.stop();
}, 60_000);

describe.runIf(availability.ok)('relaymq broker --backbone (processes)', () => {
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
          ['--peer-port', String(ports[i]), '--peers', peers.filter((_, j) => j !== i).join(','), '--backbone', rabbit.streamUrls.join(','), '--default-partitions', '2', '--replication-factor', '3'],
          30_000,
        ),
      ),
    )) as [BrokerProcess, BrokerProcess];
    const publisher = await fixture.client([g1.url, g2.url], { ack: 'quorum', poolSize: 2, publishTimeoutMs: 60_000 });
    const subscriber = await fixture.client([g2.url, g1.url], { poolSize: 1 });
    const seen: string[] = [];
    const perKey = new Map<string, number[]>();
    await subscriber.subscribe(
      'payments',
      (m: Message<{ key: string; n: number }>) => {
        seen.push(`${m.data.key}:${m.data.n}`);
        perKey.set(m.data.key, [...(perKey.get(m.data.key) ?? []), m.data.n]);
      },
      { from: 'earliest' },
    );
    const keys = ['a', 'b', 'c', 'd'];
    const next = new Map(keys.map((k) => [k, 0]));
    const acked: string[] = [];
    let stop = false;
    const publishing = (async () => {
      while (!stop) {
        await Promise.all(
          keys.map(async (key) => {
            const n = next.get(key) as number;
            next.set(key, n + 1);
            await publisher.publish('payments', { key, n }, { key });
            acked.push(`${key}:${n}`);
          }),
        );
      }
    })();
    await waitFor(() => acked.length >= 200, '200 acknowledged before any fault', 30_000);
    await g1.signal('SIGKILL');
    let mark = acked.length;
    await waitFor(() => acked.length >= mark + 200, '200 more acknowledged after gateway g1 was SIGKILLed', 60_000);
    await rabbit.nodes[1]?.kill('SIGKILL');
    mark = acked.length;
    await waitFor(() => acked.length >= mark + 200, '200 more acknowledged after a RabbitMQ node was SIGKILLed', 60_000);
    stop = true;
    await within(publishing, 'the publisher loop to end', 60_000);

    await waitFor(() => seen.length >= acked.length, `the live subscriber to see all ${acked.length} acknowledged`, 60_000);
    expect(new Set(seen).size).toBe(seen.length);
    for (const [, ns] of perKey) expect(ns).toEqual(ns.map((_, i) => i));
    const reader = await fixture.client([g2.url], { discovery: false });
    const stored: string[] = [];
    await reader.subscribe('payments', (m: Message<{ key: string; n: number }>) => void stored.push(`${m.data.key}:${m.data.n}`), { from: 'earliest' });
    await waitFor(() => stored.length >= seen.length, 'a replay of everything stored', 60_000);
    expect(new Set(stored).size).toBe(stored.length);
    const storedSet = new Set(stored);
    expect(acked.filter((a) => !storedSet.has(a))).toEqual([]);
    console.log(`backbone processes: ${acked.length} acknowledged, ${stored.length} stored, ${seen.length} delivered live`);
  }, 300_000);
});
