import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { tempDirs } from './support/temp-dirs.js';
import { waitFor } from './support/wait.js';

/**
 * Subscribers caught up on a partition stored on disk (layout `unified`,
 * where every read of a subscriber is a promise) cost nothing while the
 * partition is idle: before, a caught-up cursor stayed ready and was read
 * again in every turn of the event loop, so a broker with one idle
 * subscriber spent 83% of a core reading nothing (issue 12, publish →
 * deliver: that CPU was taken from the Raft traffic bringing the next
 * message). The next publish still reaches every subscriber, in order,
 * once each.
 */

const tempDir = tempDirs('relaymq-idle-deliver-');
const fixture = new Fixture();
afterEach(() => fixture.cleanup());

/** Long enough for the old loop to read a caught-up cursor thousands of times (hundreds on a loaded machine). */
const IDLE_WINDOW_MS = 500;

/** Delivery passes' cursor reads on every broker (the brokers' own counter). */
const cursorsVisited = (brokers: readonly Broker[]): number => brokers.reduce((n, b) => n + b.stats().deliveryCursorsVisited, 0);

async function diskCluster(fsync: 'always' | 'interval'): Promise<Broker[]> {
  const ids = ['u1', 'u2', 'u3'];
  const peerPorts = await freePorts(3);
  const dirs = await Promise.all(ids.map(() => tempDir()));
  return Promise.all(
    ids.map((id, i) =>
      fixture.broker({
        id,
        peerPort: peerPorts[i] as number,
        peers: ids.flatMap((other, j) => (j === i ? [] : [`${other}@127.0.0.1:${peerPorts[j] as number}`])),
        dataDir: dirs[i] as string,
        fsync,
        storage: { layout: 'unified' },
      }),
    ),
  );
}

describe.each(['interval', 'always'] as const)('idle subscribers of a unified partition (fsync %s)', (fsync) => {
  it('read nothing while the partition is idle, and get the next message at once, in order, once', async () => {
    const brokers = await diskCluster(fsync);
    const urls = brokers.map((b) => b.url);
    const publisher = await fixture.client(urls);
    await publisher.publish('idle.deliver', 'm0');
    // One subscriber on each broker: the leader's and both followers' delivery paths.
    const received = brokers.map((): string[] => []);
    for (const [i, broker] of brokers.entries()) {
      const subscriber = await fixture.client([broker.url], { poolSize: 1, discovery: false });
      await subscriber.subscribe<string>('idle.deliver', (m) => void received[i]?.push(m.data), { from: 'earliest' });
    }
    await publisher.publish('idle.deliver', 'm1');
    await waitFor(() => received.every((r) => r.length === 2), 'both messages at every subscriber', 30_000);

    // Idle: a fixed window is the measure here (nothing happening is what is checked).
    const before = cursorsVisited(brokers);
    await new Promise((resolve) => setTimeout(resolve, IDLE_WINDOW_MS));
    const idleReads = cursorsVisited(brokers) - before;
    expect(idleReads, 'cursor reads while idle, every broker').toBeLessThanOrEqual(6);

    await publisher.publish('idle.deliver', 'm2');
    await waitFor(() => received.every((r) => r.length === 3), 'the next message at every subscriber', 30_000);
    expect(received).toEqual(brokers.map(() => ['m0', 'm1', 'm2']));
  }, 60_000);
});
