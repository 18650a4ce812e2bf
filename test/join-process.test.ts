import { afterEach, describe, expect, it } from 'vitest';
import type { Message } from '@relaymq/sdk';
import { get } from './support/admin.js';
import { BrokerProcess } from './support/broker-process.js';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { ProcessCluster } from './support/process-cluster.js';
import { tempDirs } from './support/temp-dirs.js';
import { waitFor, waitForAsync, within } from './support/wait.js';

/**
 * A fourth and a fifth broker process join a running three-broker cluster,
 * one with `--peers` naming the running brokers (which know nothing of it),
 * one with `--join` and a single peer address: both become ready (admitted
 * into the metadata group), clients discover them, and a new topic has
 * replicas on them that serve reads and writes.
 */

const fixture = new Fixture();
const tempDir = tempDirs('relaymq-join-process-');
afterEach(async () => {
  await fixture.cleanup();
  await BrokerProcess.stopAll();
});

describe('brokers joining a running cluster (processes)', () => {
  it('admits a broker started with --peers and one with --join; clients discover them; new topics place replicas on them', async () => {
    const dirs = new Map<string, string>();
    for (const id of ['p1', 'p2', 'p3', 'p4', 'p5']) dirs.set(id, await tempDir());
    const cluster = await ProcessCluster.start(['p1', 'p2', 'p3'], (id) => ['--data', dirs.get(id) as string, '--partitions', '5']);
    const client = await fixture.client([cluster.get('p1').url]);
    await within(client.publish('before', 'b'), 'a publish to the three brokers');

    const [p4Port, p5Port] = await freePorts(2);
    const peersOf = ['p1', 'p2', 'p3'].map((id) => `${id}@127.0.0.1:${cluster.peerPortOf(id)}`).join(',');
    const p4 = await BrokerProcess.start('p4', ['--peer-port', String(p4Port), '--peers', peersOf, '--admin-port', '0', '--data', dirs.get('p4') as string, '--partitions', '5']);
    const p5 = await BrokerProcess.start('p5', [
      '--peer-port',
      String(p5Port),
      '--join',
      `127.0.0.1:${cluster.peerPortOf('p2')}`,
      '--admin-port',
      '0',
      '--data',
      dirs.get('p5') as string,
      '--partitions',
      '5',
    ]);

    // Admitted: each knows the metadata leader, so it says it is ready.
    for (const joined of [p4, p5]) {
      await waitForAsync(async () => (await get(`${joined.adminUrl}/readyz`, 2000).catch(() => ({ status: 0 }))).status === 200, `${joined.id} to be admitted (ready)`, 30_000);
    }
    await waitFor(() => client.stats().knownBrokers.includes(p4.url) && client.stats().knownBrokers.includes(p5.url), 'the client to discover p4 and p5', 20_000);

    // A new topic spreads 5 partitions x 3 replicas over the five brokers.
    await within(client.publish('after', -1, { key: 'k' }), 'a publish to a new topic', 20_000);
    const hosted = async (id: string): Promise<number> => {
      const broker = id === 'p4' ? p4 : p5;
      const report = await (await fetch(`${broker.adminUrl}/api/broker`)).json() as { partitions: Array<{ topic: string }> };
      return report.partitions.filter((row) => row.topic === 'after').length;
    };
    await waitForAsync(async () => (await hosted('p4')) > 0 && (await hosted('p5')) > 0, 'p4 and p5 to host replicas of "after"', 20_000);

    const writer = await fixture.client([p4.url], { discovery: false, poolSize: 1 });
    await Promise.all(Array.from({ length: 50 }, (_, i) => writer.publish('after', i, { key: `k${i % 5}` })));
    const reader = await fixture.client([p5.url], { discovery: false, poolSize: 1 });
    const read: number[] = [];
    await reader.subscribe('after', (m: Message<number>) => void (m.data >= 0 && read.push(m.data)), { from: 'earliest' });
    await waitFor(() => read.length === 50, 'p5 to deliver the 50 messages published through p4', 20_000);
    expect([...read].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  }, 120_000);
});
