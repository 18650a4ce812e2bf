import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import type { PublishReceipt } from '@relaymq/sdk';
import type { ClusterEngine } from '../packages/broker/src/engine/cluster.js';
import type { FaultyFileSystem } from '../packages/broker/test/support/faulty-fs.js';
import { BrokerProcess } from './support/broker-process.js';
import { Fixture } from './support/cluster.js';
import { intervalCluster } from './support/interval-cluster.js';
import { replicaCopy } from './support/replica-copy.js';
import { waitFor, within } from './support/wait.js';

/**
 * Under fsync `interval` a replica acknowledges what it wrote before fsyncing
 * it. The leader acknowledges publishes stored by itself and one follower (the
 * third broker is stopped), then loses power: its disk forgets them. With the
 * follower that holds them still down, the leader comes back beside the third
 * broker — two of three, a quorum. Were the leader's vote counted as before,
 * those two would elect one of them and write over the acknowledged
 * messages. The restarted leader knows its machine restarted (boot id) during
 * a run that acknowledged before fsync, so its replicas do not count as
 * votes until a leader caught them up (docs/raft.md): nothing is elected
 * until the follower that kept the messages is back, and nothing is lost.
 */

const fixture = new Fixture();
const dirs: string[] = [];
afterEach(async () => {
  await fixture.cleanup();
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

const TOPIC = 'cut';

describe('a power cut under fsync interval, with the replica that kept the acknowledged messages down', () => {
  it('elects no leader without that replica, and loses no acknowledged message', async () => {
    const { options, fss, lines } = await intervalCluster('relaymq-power-cut-vote-', ['s1', 's2', 's3'], dirs);
    const brokers = await Promise.all([0, 1, 2].map((i) => fixture.broker(options(i))));
    const client = await fixture.client(brokers.map((b) => b.url), { publishTimeoutMs: 30_000 });
    const receipts = new Map<string, PublishReceipt>();
    const publish = async (from: number, count: number): Promise<void> => {
      await Promise.all(Array.from({ length: count }, async (_, j) => receipts.set(`m${from + j}`, await client.publish(TOPIC, `m${from + j}`))));
    };
    await publish(0, 20);
    const leaderIndex = brokers.findIndex((b) => b.id === brokers[0]?.engine.leaderOf?.(TOPIC, 0));
    expect(leaderIndex).toBeGreaterThanOrEqual(0);
    const [keeperIndex, laggardIndex] = [0, 1, 2].filter((i) => i !== leaderIndex) as [number, number];
    await waitFor(() => brokers[laggardIndex]?.engine.bounds(TOPIC, 0).end === 20, 'the laggard to apply the first 20');

    // The laggard stops (cleanly: what it holds is durable); the leader and the keeper acknowledge 100 more.
    await (brokers[laggardIndex] as Broker).close();
    for (let i = 20; i < 120; i += 20) await publish(i, 20);
    await waitFor(() => brokers[keeperIndex]?.engine.bounds(TOPIC, 0).end === 120, 'the keeper to apply all 120');
    await client.close();

    // The leader loses power (its disk keeps what was fsynced); the keeper stops.
    const leaderFs = fss[leaderIndex] as FaultyFileSystem;
    await leaderFs.crash();
    await (brokers[leaderIndex] as Broker).close().catch(() => undefined);
    await leaderFs.crash();
    await (brokers[keeperIndex] as Broker).close();

    // The cut leader and the laggard: a quorum of two, neither holding the 100.
    const cut = await fixture.broker(options(leaderIndex));
    const laggard = await fixture.broker(options(laggardIndex));
    expect(lines[leaderIndex]?.some((l) => l.includes('may have lost acknowledged entries'))).toBe(true);
    expect(lines[laggardIndex]?.some((l) => l.includes('may have lost acknowledged entries'))).toBe(false);
    // Both campaign and lose: the cut broker only would-grant. Many elections (300 ms timeouts by default) are refused meanwhile.
    const counters = (b: Broker) => (b.engine as ClusterEngine).raftCounters();
    await waitFor(() => counters(cut).votesWithheld >= 10, 'the cut broker to withhold its vote from 10 campaigns', 30_000);
    expect(counters(cut).leaderships + counters(laggard).leaderships).toBe(0);
    expect(cut.engine.leaderOf?.(TOPIC, 0) ?? null).toBeNull();
    expect((cut.engine as ClusterEngine).replicasRecovered()).toBe(false);

    // The keeper is back: it is elected, catches the others up, and every acknowledged message is where its receipt said.
    const keeper = await fixture.broker(options(keeperIndex));
    const all = [cut, laggard, keeper];
    for (const b of all) await waitFor(() => b.engine.bounds(TOPIC, 0).end === 120, `${b.id} to hold all 120`, 60_000);
    const reference = await replicaCopy(keeper, TOPIC);
    expect(reference).toHaveLength(120);
    for (const b of [cut, laggard]) expect(await replicaCopy(b, TOPIC)).toEqual(reference);
    const byOffset = new Map(reference.map((line) => [Number(line.split('|')[0]), line.split('|')[1] as string]));
    expect(receipts.size).toBe(120);
    for (const [value, receipt] of receipts) expect(Buffer.from(byOffset.get(receipt.offset) ?? '', 'hex').toString().endsWith(value), `${value} at ${receipt.offset}`).toBe(true);
    await waitFor(() => lines[leaderIndex]?.some((l) => l.includes('every replica caught up after the power cut')) === true, 'the cut broker to say its replicas caught up', 30_000);
  }, 180_000);
});

describe('a broker process killed under fsync interval, on the same boot', () => {
  it('is no power cut: its restart does not recover (the page cache kept what it wrote), and it records its boot', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'relaymq-power-cut-kill-'));
    dirs.push(dataDir);
    const args = ['--data', dataDir, '--fsync', 'interval', '--log-level', 'info'];
    const first = await BrokerProcess.start('k1', args, 30_000);
    const client = await fixture.client([first.url], { poolSize: 1, discovery: false });
    await within(client.publish('killed.t', 'before the kill'), 'a publish', 30_000);
    await client.close();
    await first.signal('SIGKILL');
    const record = JSON.parse(await readFile(join(dataDir, 'last-run.json'), 'utf8')) as { bootId: string | null; fsync: string; recovering: boolean };
    expect(record).toMatchObject({ fsync: 'interval', recovering: false });
    if (process.platform === 'linux') expect(record.bootId).toBe((await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim());

    const second = await BrokerProcess.start('k1', args, 30_000);
    await waitFor(() => second.stderr.includes('broker listening'), 'the listening log line');
    expect(second.stderr).toContain('no clean-shutdown marker'); // an unclean stop all the same
    expect(second.stderr).not.toContain('may have lost acknowledged entries');
    const again = await fixture.client([second.url], { poolSize: 1, discovery: false });
    await within(again.publish('killed.t', 'after the restart'), 'a publish after the restart', 30_000);
    await again.close();
    expect(await second.signal('SIGTERM')).toBe(0);
  }, 120_000);
});
