import { afterEach, describe, expect, it } from 'vitest';
import { connect as connectStream, Offset, type Client } from 'rabbitmq-stream-js-client';
import type { BackboneOptions, Broker, BrokerOptions } from '@relaymq/broker';
import type { BackboneEngine } from '../packages/broker/src/engine/backbone/engine.js';
import { applyClientCompat } from './support/rabbitmq-client-compat.js';
import { Fixture } from './support/cluster.js';
import { backboneBrokerOptions, rabbitClusterForFile, reportRabbitOnFailure } from './support/engines.js';
import type { RabbitCluster } from './support/rabbitmq.js';
import { waitFor, within } from './support/wait.js';

/**
 * A gateway whose metadata tail was lost for a while (its RabbitMQ node
 * unreachable) while other gateways wrote on, long enough for the metadata
 * stream's retention to delete the entries it had not applied yet: when it
 * subscribes again it must not skip them silently (RabbitMQ starts a
 * consumer whose offset is gone at the first one still held) but start
 * again from the snapshot covering them, and end with the same state.
 */
const rabbitmq = rabbitClusterForFile('the backbone metadata resume test', 1);
const fixture = new Fixture();
afterEach(() => fixture.cleanup(), 60_000);

/** What the test reaches of a gateway's metadata tail (meta-log.ts, private). */
interface MetaTail {
  nextOffset: bigint;
  subscribe: (client: Client) => Promise<void>;
  tailLost: (client?: Client) => void;
}

function metadataOf(broker: Broker): unknown {
  const engine = broker.engine as BackboneEngine;
  const topics = [...engine.topics()].sort().map((t) => [t, engine.partitionCount(t)]);
  const positions = engine.appliedPositions().sort((a, b) => a.durable.localeCompare(b.durable));
  return { topics, positions };
}

async function firstRetainedOffset(cluster: RabbitCluster, stream: string): Promise<bigint> {
  applyClientCompat();
  const client = await connectStream({ hostname: '127.0.0.1', port: cluster.nodes[0]?.streamPort as number, username: cluster.username, password: cluster.password, vhost: '/', heartbeat: 0 });
  try {
    let first: (offset: bigint) => void = () => undefined;
    const got = new Promise<bigint>((resolve) => (first = resolve));
    await client.declareConsumer({ stream, offset: Offset.first() }, (m) => first(m.offset ?? 0n));
    return await within(got, `the first record of ${stream}`, 15_000);
  } finally {
    await client.close().catch(() => undefined);
  }
}

describe.runIf(rabbitmq.available)('backbone metadata tail resumed past retention (1 RabbitMQ node)', () => {
  reportRabbitOnFailure(rabbitmq.cluster);

  it('a gateway whose metadata tail was away while retention deleted entries it had not applied starts again from the snapshot: same positions as the others', async () => {
    const prefix = `metaresume-${process.pid}`;
    const { backbone } = backboneBrokerOptions(rabbitmq.cluster(), prefix);
    // Retention of 256 KiB: segments of 32 KiB, a snapshot after 16 KiB of entries (or 100 entries).
    const options: BrokerOptions = { backbone: { ...(backbone as BackboneOptions), metaSnapshotEveryEntries: 100, metaMaxBytes: 256 * 1024 } };
    const g1 = await fixture.broker({ ...options, id: 'g1' });
    const g2 = await fixture.broker({ ...options, id: 'g2' });
    const engine = g1.engine as BackboneEngine;
    await engine.createTopic('orders', { partitions: 1 });
    await (g2.engine as BackboneEngine).positions('any', '>');

    // g2's metadata tail is lost and cannot subscribe again until released (as while its node is unreachable).
    const tail = (g2.engine as unknown as { meta: MetaTail }).meta;
    const subscribe = tail.subscribe.bind(tail);
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    tail.subscribe = async (client) => {
      await gate;
      return subscribe(client);
    };
    tail.tailLost();

    // Meanwhile g1 commits positions of 100 durables once, then 1,900 more commits of 50 others.
    const commit = (n: number): Promise<void> => engine.commitPositions(n < 100 ? `early-${n}` : `busy-${n % 50}`, [{ topic: 'orders', partition: 0, offset: n }]);
    for (let n = 0; n < 2_000; n += 20) await Promise.all(Array.from({ length: 20 }, (_, i) => commit(n + i)));
    await waitFor(() => (engine.metadataStats().latestSnapshot?.upTo ?? 0) >= 1_500, 'g1 to write a snapshot covering the commits', 60_000);
    // Read once the lost tail's consumer is surely closed (it may deliver a few entries more after tailLost).
    const stoppedAt = tail.nextOffset;
    const firstRetained = await firstRetainedOffset(rabbitmq.cluster(), `${prefix}:__meta`);
    // Retention deleted entries g2 had not applied.
    expect(firstRetained).toBeGreaterThan(stoppedAt + 1n);

    tail.subscribe = subscribe;
    release();
    await waitFor(() => tail.nextOffset > firstRetained, 'g2 to tail the metadata stream again', 30_000);
    await (g2.engine as BackboneEngine).positions('any', '>');
    await engine.positions('any', '>');
    const state = metadataOf(g1);
    expect((state as { positions: unknown[] }).positions).toHaveLength(150);
    // Durables whose last commit retention deleted before g2 read it: none may be missing there.
    const durables = (broker: Broker): string[] => (broker.engine as BackboneEngine).appliedPositions().map((p) => p.durable);
    expect(durables(g1).filter((d) => !durables(g2).includes(d))).toEqual([]);
    expect(metadataOf(g2)).toEqual(state);
  }, 120_000);
});
