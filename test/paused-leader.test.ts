import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BrokerProcess } from './support/broker-process.js';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { RawClient } from './support/raw-client.js';
import { within } from './support/wait.js';

/**
 * A paused broker (SIGSTOP) keeps its TCP connections open: nothing tells its
 * peers it is gone but silence. Chaos runs at 5 brokers (replication factor
 * 3) found publishes forwarded to a paused partition leader held for the
 * whole peer timeout (3 s), or until the broker resumed, although the other
 * replicas had elected a new leader within about a second.
 */

const fixture = new Fixture();
const dirs: string[] = [];
afterEach(async () => {
  await fixture.cleanup();
  await BrokerProcess.stopAll();
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

/** The peer timeout of a publish forwarded to the leader (`peer.requestTimeoutMs`, 2 s by default, + 1 s): what a stalled forward waited. */
const FORWARD_TIMEOUT_MS = 3000;

async function startCluster(): Promise<BrokerProcess[]> {
  const ids = ['p1', 'p2', 'p3'];
  const ports = await freePorts(3);
  const peers = ids.map((id, i) => `${id}@127.0.0.1:${ports[i]}`);
  const root = await mkdtemp(join(tmpdir(), 'relaymq-paused-'));
  dirs.push(root);
  return Promise.all(
    ids.map((id, i) =>
      BrokerProcess.start(id, ['--peer-port', String(ports[i]), '--peers', peers.filter((_, j) => j !== i).join(','), '--data', join(root, id)]),
    ),
  );
}

/** The leader of partition 0 of `topic`, as a broker reports it in a metadata answer (bounded). */
async function leaderOf(brokers: BrokerProcess[], topic: string): Promise<BrokerProcess> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const raw = await RawClient.open((brokers[attempt % brokers.length] as BrokerProcess).url);
    raw.send({ type: 'metadata', id: 1, topics: [topic] });
    const leader = (await raw.next('topics')).topics[0]?.leaders?.[0];
    raw.close();
    const found = brokers.find((b) => b.id === leader);
    if (found !== undefined) return found;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no leader of ${topic} reported`);
}

describe('a paused partition leader', () => {
  it('a publish forwarded by a follower goes to the newly elected leader, not held for the peer timeout', async () => {
    const brokers = await startCluster();
    const seeder = await fixture.client(brokers.map((b) => b.url));
    await seeder.publish('orders', -1);
    const leader = await leaderOf(brokers, 'orders');
    const follower = brokers.find((b) => b !== leader) as BrokerProcess;
    // Only the follower: every publish is forwarded by it. A long ping interval keeps the SDK's own silence detection out.
    const client = await fixture.client([follower.url], { poolSize: 1, discovery: false, pingIntervalMs: 10_000, publishTimeoutMs: 20_000 });
    for (let i = 0; i < 20; i++) await client.publish('orders', i);

    await leader.signal('SIGSTOP');
    const started = Date.now();
    const receipt = await within(client.publish('orders', 20), 'the publish after the pause', 15_000);
    const waitedMs = Date.now() - started;
    await leader.signal('SIGCONT');
    expect(receipt.offset).toBeGreaterThan(0);
    expect(receipt.duplicate).toBe(false);
    // An election takes 0.5–1 s (plus a pre-vote round); before the fix the forward waited out its timeout, then the SDK failed over.
    expect(waitedMs).toBeLessThan(FORWARD_TIMEOUT_MS - 500);
  }, 60_000);
});
