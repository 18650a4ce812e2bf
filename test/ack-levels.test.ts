import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { startProxy, type TcpProxy } from './support/proxy.js';
import { tempDirs } from './support/temp-dirs.js';
import { waitFor, within } from './support/wait.js';

/**
 * Ack levels over real sockets: `leader` is acknowledged once the partition's
 * leader wrote the entry to its own log (fsynced with `fsync: always`),
 * before any follower has it — Kafka's `acks=1`; the default, `quorum`,
 * waits until a majority stored it.
 */

const tempDir = tempDirs('relaymq-acks-');
const fixture = new Fixture();
afterEach(() => fixture.cleanup());

/** Three brokers on disk whose peer links all pass through a proxy in front of each broker's peer port. */
async function cutOffableCluster(layout: 'split' | 'unified'): Promise<{ brokers: Broker[]; proxies: TcpProxy[] }> {
  const ids = ['k1', 'k2', 'k3'];
  const peerPorts = await freePorts(3);
  const proxies = await Promise.all(peerPorts.map((port) => startProxy(port)));
  for (const proxy of proxies) fixture.defer(() => proxy.close());
  const dirs = await Promise.all(ids.map(() => tempDir()));
  const brokers = await Promise.all(
    ids.map((id, i) =>
      fixture.broker({
        id,
        peerPort: peerPorts[i] as number,
        peers: ids.flatMap((other, j) => (j === i ? [] : [`${other}@127.0.0.1:${(proxies[j] as TcpProxy).port}`])),
        dataDir: dirs[i] as string,
        fsync: 'always',
        storage: { layout },
      }),
    ),
  );
  return { brokers, proxies };
}

describe.each(['split', 'unified'] as const)('ack levels in a cluster (storage.layout %s)', (layout) => {
  it('`leader` is acknowledged while the followers cannot be reached; the default `quorum` is not', async () => {
    const { brokers, proxies } = await cutOffableCluster(layout);
    const seeder = await fixture.client(brokers.map((b) => b.url), { poolSize: 1, discovery: false });
    await seeder.publish('acks', 'first');
    await waitFor(() => brokers.some((b) => b.engine.leaderOf?.('acks', 0) === b.id), 'a leader of acks/0');
    const leader = brokers.find((b) => b.engine.leaderOf?.('acks', 0) === b.id) as Broker;
    const followers = brokers.filter((b) => b !== leader);
    // Clients of the leader alone, which already know the topic.
    const fast = await fixture.client([leader.url], { poolSize: 1, discovery: false });
    const safe = await fixture.client([leader.url], { poolSize: 1, discovery: false, publishTimeoutMs: 3000 });
    await fast.publish('acks', 'warm', { ack: 'leader' });
    await safe.publish('acks', 'warm');
    await waitFor(() => followers.every((f) => f.engine.bounds('acks', 0).end === 3), 'the followers to hold the first three');

    // Every peer link cut: the leader can write its own log and nothing more. (Check-quorum steps it down within
    // an election timeout or two; both publishes leave at once, well before.)
    for (const proxy of proxies) proxy.block();
    fixture.defer(async () => proxies.forEach((proxy) => proxy.unblock())); // before the brokers' shutdown, whatever fails
    let quorumSettled = false;
    const quorum = safe.publish('acks', 'needs a quorum').finally(() => (quorumSettled = true));
    quorum.catch(() => {}); // asserted below
    const receipt = await within(fast.publish('acks', 'leader only', { ack: 'leader' }), 'the `leader` ack with the followers cut off', 2000);
    expect(receipt.duplicate).toBe(false);
    expect([3, 4]).toContain(receipt.offset);
    // Acknowledged on the leader's write alone: no follower holds it, and the `quorum` publish is still waiting.
    expect(followers.map((f) => f.engine.bounds('acks', 0).end)).toEqual([3, 3]);
    expect(quorumSettled).toBe(false);
    await expect(quorum).rejects.toMatchObject({ code: 'TIMEOUT' });
  }, 30_000);

  it('`leader` and `quorum` publishes of one producer, pipelined, are stored in publish order on every replica', async () => {
    const { brokers } = await cutOffableCluster(layout);
    const client = await fixture.client(brokers.map((b) => b.url));
    await client.publish('mixed-acks', 'm0');
    // Pipelined: one flush carries batches of both levels for the partition, in publish order.
    const rest = Array.from({ length: 29 }, (_, i) => client.publish('mixed-acks', `m${i + 1}`, { ack: i % 3 === 0 ? 'quorum' : 'leader' }));
    const receipts = [{ offset: 0 }, ...(await Promise.all(rest))];
    expect(receipts.map((r) => r.offset)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    await waitFor(() => brokers.every((b) => b.engine.bounds('mixed-acks', 0).end === 30), 'every replica to apply the 30 messages', 10_000);
    for (const broker of brokers) {
      const read = await broker.engine.read('mixed-acks', 0, 0, 100, 1 << 20);
      expect(read.map((m) => m.offset)).toEqual(receipts.map((r) => r.offset));
    }
  }, 30_000);
});
