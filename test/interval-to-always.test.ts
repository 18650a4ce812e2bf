import { rm } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import type { PublishReceipt } from '@relaymq/sdk';
import type { ClusterEngine } from '../packages/broker/src/engine/cluster.js';
import type { FaultyFileSystem } from '../packages/broker/test/support/faulty-fs.js';
import { Fixture } from './support/cluster.js';
import { intervalCluster } from './support/interval-cluster.js';
import { replicaCopy } from './support/replica-copy.js';
import { waitFor } from './support/wait.js';

/**
 * An operator switches a broker from fsync `interval` to `always` after a
 * power cut: the follower lost entries it had acknowledged (written, not
 * fsynced), and its leader still counts them. It used to throw
 * `RaftInvariantError` at the leader's first heartbeat, at every start (a
 * crash loop); now it tells the leader, which sends it what it lacks.
 */

const fixture = new Fixture();
const dirs: string[] = [];
afterEach(async () => {
  await fixture.cleanup();
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

const TOPIC = 'switch';

describe("a follower power-cut under fsync 'interval', restarted under 'always'", () => {
  it('catches up from its leader instead of throwing at every start, and nothing acknowledged is lost', async () => {
    const { options, fss, lines } = await intervalCluster('relaymq-interval-always-', ['s1', 's2', 's3'], dirs);
    const brokers = await Promise.all([0, 1, 2].map((i) => fixture.broker(options(i, 'interval'))));
    const client = await fixture.client(brokers.map((b) => b.url), { publishTimeoutMs: 30_000 });
    const receipts = new Map<string, PublishReceipt>();
    for (let i = 0; i < 200; i += 20) {
      await Promise.all(Array.from({ length: 20 }, async (_, j) => receipts.set(`m${i + j}`, await client.publish(TOPIC, `m${i + j}`))));
    }
    const leaderId = brokers[0]?.engine.leaderOf?.(TOPIC, 0);
    const victimIndex = brokers.findIndex((b) => b.id !== leaderId);
    const victim = brokers[victimIndex] as Broker;
    const others = brokers.filter((b) => b !== victim);
    await waitFor(() => victim.engine.bounds(TOPIC, 0).end === 200, 'the follower to apply the 200');

    // The power cut: its disk keeps what was fsynced; the process is gone.
    const fs = fss[victimIndex] as FaultyFileSystem;
    await fs.crash();
    await victim.close().catch(() => undefined);
    await fs.crash();

    const again = await fixture.broker(options(victimIndex, 'always'));
    await waitFor(() => again.engine.bounds(TOPIC, 0).end === 200, 'the restarted follower to catch up', 30_000);
    const reference = await replicaCopy(others[0] as Broker, TOPIC);
    expect(reference).toHaveLength(200);
    expect(await replicaCopy(again, TOPIC)).toEqual(reference);
    // Every acknowledgement names its own message.
    const byOffset = new Map(reference.map((line) => [Number(line.split('|')[0]), line.split('|')[1] as string]));
    for (const [value, receipt] of receipts) expect(Buffer.from(byOffset.get(receipt.offset) ?? '', 'hex').toString().endsWith(value), `${value} at ${receipt.offset}`).toBe(true);
    expect(receipts.size).toBe(200);
    expect(lines[victimIndex]?.filter((l) => l.includes('RaftInvariantError'))).toEqual([]);
    // Its machine restarted (a power cut) during a run under interval: its replicas recovered, which the leaders of
    // their start term (their term has not changed: it was a follower) provoke with an election each.
    expect(lines[victimIndex]?.some((l) => l.includes('may have lost acknowledged entries'))).toBe(true);
    await waitFor(() => lines[victimIndex]?.some((l) => l.includes('every replica caught up after the power cut')) === true, 'the restarted follower to say its replicas caught up', 30_000);
    const elections = others.reduce((sum, b) => sum + (b.engine as ClusterEngine).raftCounters().recoveryElections, 0);
    expect(elections).toBeGreaterThanOrEqual(1);
  }, 120_000);
});
