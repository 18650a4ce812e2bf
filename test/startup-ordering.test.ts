import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker, BrokerOptions, FileSystem } from '@relaymq/broker';
import { RelayError, type PublishReceipt, type RelayClient } from '@relaymq/sdk';
import { nodeFileSystem } from '../packages/broker/src/storage/fs.js';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { waitFor, waitForAsync, within } from './support/wait.js';

/**
 * Finding 4 of issue 10: a broker restarted while its peers still believed
 * it led some partitions got their forwarded publishes before it had applied
 * its own metadata. It answered INVALID_PARTITION for valid partitions, kept
 * that answer cached, and its startup then failed with `topic … has no
 * partition …` (exit 2). Here the restarted broker's metadata log is slow to
 * load (as a big one is after a crash), which holds that window open.
 */
const fixture = new Fixture();
const dirs: string[] = [];
afterEach(async () => {
  await fixture.cleanup();
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

/** Node's file system, but the metadata Raft log opens `delayMs` late, once. */
function slowMetadataLog(delayMs: number): FileSystem {
  let delayed = false;
  return {
    ...nodeFileSystem,
    open: async (path, mode) => {
      if (!delayed && path.endsWith(join('raft', 'meta.log'))) {
        delayed = true;
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
      return nodeFileSystem.open(path, mode);
    },
  };
}

async function cluster(partitions: number): Promise<{ options: BrokerOptions[]; brokers: Broker[] }> {
  const ids = ['s1', 's2', 's3'];
  const ports = await freePorts(3);
  const options: BrokerOptions[] = [];
  for (const [i, id] of ids.entries()) {
    const dataDir = await mkdtemp(join(tmpdir(), `relaymq-startup-${id}-`));
    dirs.push(dataDir);
    const peers = ids.flatMap((other, j) => (other === id ? [] : [`${other}@127.0.0.1:${ports[j]}`]));
    // No drain time: a broker stops without handing its leaderships over, as a kill -9 would.
    options.push({ id, peerPort: ports[i], peers, dataDir, defaultPartitions: partitions, replicationFactor: 3, fsync: 'interval', drainTimeoutMs: 0 });
  }
  const brokers = await Promise.all(options.map((o) => fixture.broker(o)));
  return { options, brokers };
}

/** Publishes with keys over every partition, from each client, until stopped; keeps every outcome. */
function keepPublishing(clients: RelayClient[], topic: string): { stop: () => Promise<Array<PromiseSettledResult<PublishReceipt>>> } {
  const outcomes: Array<Promise<PublishReceipt>> = [];
  let running = true;
  const loops = clients.map(async (client, c) => {
    for (let i = 0; running; i++) {
      const receipt = client.publish(topic, i, { key: `c${c}-k${i % 97}` });
      outcomes.push(receipt);
      receipt.catch(() => {}); // judged once all settled
      // A few in flight at a time: enough to reach every partition's leader while it restarts.
      if (i % 8 === 7) await receipt.catch(() => {});
      else await new Promise((resolve) => setTimeout(resolve, 2));
    }
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return within(Promise.allSettled(outcomes), 'every publish to settle', 60_000);
    },
  };
}

const refusedAsInvalid = (results: Array<PromiseSettledResult<PublishReceipt>>): string[] =>
  results.flatMap((r) =>
    r.status === 'rejected' && r.reason instanceof RelayError && (r.reason.code === 'INVALID_PARTITION' || r.reason.code === 'INVALID_ARGUMENT')
      ? [`${r.reason.code}: ${r.reason.message}`]
      : [],
  );

describe('a broker restarting while its peers still believe it leads', () => {
  it.each([
    { name: '12 partitions', partitions: 12 },
    { name: 'many partitions (48)', partitions: 48 },
  ])('$name: publishes are never refused as invalid, and the restart succeeds', async ({ partitions }) => {
    const { options, brokers } = await cluster(partitions);
    const topic = 'startup.t';
    await within((await fixture.client([brokers[0]!.url], { poolSize: 1 })).publish(topic, 'first'), 'the topic to be created', 20_000);
    const led = (id: string | undefined): number => Array.from({ length: partitions }, (_, p) => p).filter((p) => leaderOf(brokers[0]!, topic, p) === id).length;
    await waitFor(() => Array.from({ length: partitions }, (_, p) => leaderOf(brokers[0]!, topic, p)).every((l) => l !== undefined), 'a leader for every partition', 20_000);
    // The broker that leads the most restarts; the others publish through forwarding to it.
    const victim = [...brokers.keys()].sort((a, b) => led(brokers[b]?.id) - led(brokers[a]?.id))[0] as number;
    const others = brokers.filter((_, i) => i !== victim);
    const clients = await Promise.all(others.map((b) => fixture.client([b.url], { poolSize: 1, discovery: false })));

    const load = keepPublishing(clients, topic);
    await waitForAsync(async () => (await others[0]!.engine.bounds(topic, 0)).end > 3, 'publishes to flow', 20_000);
    // The others still believe it leads some partitions when it comes back (it stops with no drain time).
    await brokers[victim]!.close();
    const restarted = await within(fixture.broker({ ...options[victim], drainTimeoutMs: 200, fileSystem: slowMetadataLog(600) }), 'the restart', 45_000);
    await waitForAsync(
      async () => Array.from({ length: partitions }, (_, p) => leaderOf(restarted, topic, p)).every((l) => l !== undefined),
      'the restarted broker to know every leader',
      30_000,
    );
    const results = await load.stop();

    expect(refusedAsInvalid(results)).toEqual([]);
    expect(results.filter((r) => r.status === 'fulfilled').length).toBeGreaterThan(0);
    // The restarted broker hosts (and so serves) every partition again.
    expect(restarted.engine.partitionCount(topic)).toBe(partitions);
  }, 180_000);
});

/** The leader of a partition as `broker` knows it (its engine is the replicated one). */
function leaderOf(broker: Broker, topic: string, partition: number): string | undefined {
  return (broker.engine as unknown as { leaderOf(topic: string, partition: number): string | undefined }).leaderOf(topic, partition);
}
