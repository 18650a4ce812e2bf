import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Message, PublishReceipt, RelayClient } from '@relaymq/sdk';
import { BrokerProcess } from './support/broker-process.js';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { RawClient } from './support/raw-client.js';
import { waitFor, waitForProgress, within } from './support/wait.js';

const fixture = new Fixture();
const dirs: string[] = [];
afterEach(async () => {
  await fixture.cleanup();
  await BrokerProcess.stopAll();
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

type Layout = 'split' | 'unified';

/** How to start (and restart) each of three brokers: peers and a data directory apiece, in storage layout `layout`. */
async function clusterPlan(layout: Layout): Promise<{ ids: string[]; start: (i: number) => Promise<BrokerProcess> }> {
  const ids = ['c1', 'c2', 'c3'];
  const ports = await freePorts(3);
  const peers = ids.map((id, i) => `${id}@127.0.0.1:${ports[i]}`);
  const root = await mkdtemp(join(tmpdir(), 'relaymq-cluster-'));
  dirs.push(root);
  const start = (i: number): Promise<BrokerProcess> =>
    BrokerProcess.start(ids[i] as string, [
      '--peer-port', String(ports[i]), '--peers', peers.filter((_, j) => j !== i).join(','), '--data', join(root, ids[i] as string), '--storage-layout', layout,
    ]);
  return { ids, start };
}

/** Three broker processes with peers and data directories. */
async function startCluster(layout: Layout): Promise<BrokerProcess[]> {
  const { ids, start } = await clusterPlan(layout);
  return Promise.all(ids.map((_, i) => start(i)));
}

/** The partition leader, as a broker reports it in a metadata answer. */
async function leaderOf(brokers: BrokerProcess[], topic: string): Promise<BrokerProcess> {
  let leader: string | undefined;
  await waitFor(() => leader !== undefined && leader !== '', `a leader of ${topic}`, 10_000).catch(() => {});
  for (let attempt = 0; attempt < 100 && (leader === undefined || leader === ''); attempt++) {
    const raw = await RawClient.open((brokers[attempt % brokers.length] as BrokerProcess).url);
    raw.send({ type: 'metadata', id: 1, topics: [topic] });
    leader = (await raw.next('topics')).topics[0]?.leaders?.[0];
    raw.close();
    if (leader === '') await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const found = brokers.find((b) => b.id === leader);
  if (found === undefined) throw new Error(`no leader of ${topic} reported`);
  return found;
}

/** Publishes `total` numbers pipelined, doing `fault` to the leader after `faultAt`; returns the receipts. */
async function publishThrough(client: RelayClient, total: number, faultAt: number, fault: () => Promise<unknown>): Promise<PublishReceipt[]> {
  const receipts: Array<Promise<PublishReceipt>> = [];
  for (let i = 0; i < total; i++) {
    receipts.push(client.publish('orders', i));
    if (i === faultAt) await fault();
    if (i % 250 === 249) await new Promise((resolve) => setImmediate(resolve));
  }
  return within(Promise.all(receipts), `all ${total} publishes to be acknowledged`, 60_000);
}

/** Reads the whole partition through a subscriber on `broker`, from earliest. */
async function readAll(broker: BrokerProcess, count: number, timeoutMs = 30_000): Promise<number[]> {
  const reader = await fixture.client([broker.url], { poolSize: 1, discovery: false });
  const values: number[] = [];
  await reader.subscribe('orders', (m: Message<number>) => void values.push(m.data), { from: 'earliest' });
  await waitFor(() => values.length >= count, `${count} messages from ${broker.id}`, timeoutMs);
  return values;
}

describe.each(['split', 'unified'] as const)('a 3-broker cluster of real processes (storage.layout %s)', (layout) => {
  it('kill -9 of the partition leader during 10,000 pipelined publishes loses, duplicates and reorders nothing', async () => {
    const brokers = await startCluster(layout);
    const client = await fixture.client(brokers.map((b) => b.url), { poolSize: 2, pingIntervalMs: 200 });
    await client.publish('orders', -1);
    const leader = await leaderOf(brokers, 'orders');
    const results = await publishThrough(client, 10_000, 3000, () => leader.signal('SIGKILL'));
    expect(results).toHaveLength(10_000);
    const survivor = brokers.find((b) => b !== leader) as BrokerProcess;
    const values = await readAll(survivor, 10_001);
    expect(values).toEqual([-1, ...Array.from({ length: 10_000 }, (_, i) => i)]);
  }, 90_000);

  it('SIGSTOP of the partition leader (a paused broker): the rest elect a leader and nothing is lost', async () => {
    const brokers = await startCluster(layout);
    const client = await fixture.client(brokers.map((b) => b.url), { poolSize: 2, pingIntervalMs: 200 });
    await client.publish('orders', -1);
    const leader = await leaderOf(brokers, 'orders');
    const results = await publishThrough(client, 10_000, 3000, () => leader.signal('SIGSTOP'));
    expect(results).toHaveLength(10_000);
    const survivor = brokers.find((b) => b !== leader) as BrokerProcess;
    const values = await readAll(survivor, 10_001);
    expect(values).toEqual([-1, ...Array.from({ length: 10_000 }, (_, i) => i)]);
    await leader.signal('SIGCONT');
  }, 90_000);

  it('kill -9 of all three brokers mid-stream at ack quorum: after a restart every acknowledged message is there, once, in order', async () => {
    const { ids, start } = await clusterPlan(layout);
    let brokers = await Promise.all(ids.map((_, i) => start(i)));
    // The default ping interval, not 200 ms: nothing here needs a silent broker noticed (kill -9 closes the sockets).
    // At 200 ms a broker silent for 400 ms is judged dead, and on one loaded core (this loop and three brokers) the
    // brokers were, so the client failed over again and again, republishing its 10,000-message outbox to each next
    // broker, which stalled that one too: no ack for 10-26 s, and 2 of 3 pinned runs missed 3,000 acks in 30 s.
    const client = await fixture.client(brokers.map((b) => b.url), { poolSize: 2, publishTimeoutMs: 60_000 });
    const acknowledged: number[] = [];
    let sent = 0;
    let crashed = false;
    const load = (async () => {
      while (!crashed && sent < 50_000) {
        const value = sent++;
        client.publish('orders', value, { ack: 'quorum' }).then(
          () => void acknowledged.push(value),
          () => {}, // unacknowledged at the crash: it may or may not be stored
        );
        if (sent % 100 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
      }
    })();
    // Bounded on stalls (no new ack for 20 s: election and the first quorum commit included), not on a total that assumes an idle machine.
    await waitForProgress(() => acknowledged.length, 3000, 'acknowledged publishes', 20_000, 60_000);
    crashed = true;
    await Promise.all(brokers.map((b) => b.signal('SIGKILL')));
    await load;
    const before = [...acknowledged];
    expect(before.length).toBeGreaterThanOrEqual(3000);

    brokers = await Promise.all(ids.map((_, i) => start(i)));
    // Three processes recovering at once on a CI machine busy with other test files: a longer bound.
    const values = await readAll(brokers[1] as BrokerProcess, before.length, 60_000);
    // Exactly once and in publish order; every acknowledged value among them.
    expect(values).toEqual([...values].sort((x, y) => x - y));
    expect(new Set(values).size).toBe(values.length);
    const stored = new Set(values);
    expect(before.filter((v) => !stored.has(v))).toEqual([]);
  }, 120_000);

  it('a rolling restart of all three brokers under load loses and duplicates nothing', async () => {
    const { ids, start } = await clusterPlan(layout);
    const brokers = await Promise.all(ids.map((_, i) => start(i)));
    const client = await fixture.client(brokers.map((b) => b.url), { poolSize: 2, pingIntervalMs: 200 });
    await client.publish('orders', -1);

    let stop = false;
    let sent = 0;
    const receipts: Array<Promise<PublishReceipt>> = [];
    const load = (async () => {
      while (!stop && sent < 20_000) {
        receipts.push(client.publish('orders', sent++));
        if (sent % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
      }
    })();
    for (let i = 0; i < 3; i++) {
      const broker = brokers[i] as BrokerProcess;
      expect(await broker.signal('SIGTERM')).toBe(0); // graceful: leadership handed over, clients told to move
      brokers[i] = await start(i);
    }
    stop = true;
    await load;
    await within(Promise.all(receipts), 'every publish to be acknowledged', 60_000);
    const values = await readAll(brokers[0] as BrokerProcess, sent + 1);
    expect(values).toEqual([-1, ...Array.from({ length: sent }, (_, i) => i)]);
  }, 120_000);
});
