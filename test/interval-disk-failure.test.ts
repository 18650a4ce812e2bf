import { rm } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import type { PublishReceipt, RelayClient } from '@relaymq/sdk';
import type { FaultyFileSystem } from '../packages/broker/test/support/faulty-fs.js';
import { Fixture } from './support/cluster.js';
import { intervalCluster } from './support/interval-cluster.js';
import { replicaCopy } from './support/replica-copy.js';
import { waitFor } from './support/wait.js';

/**
 * Chaos seed 954 (`RELAYMQ_FSYNC=interval`), without chaos: under fsync
 * `interval` a follower acknowledges entries once written, before their
 * fsync. Its disk fills up; the failed write fenced it and its reload cut
 * its log back to the last fsync, below what its leader had counted, whose
 * next heartbeat then told it to commit beyond its last index:
 * `RaftInvariantError` on every heartbeat, and at every restart before it
 * listened. Now the reload keeps what was written whole before the failure,
 * and the follower catches up and serves, with nothing acknowledged lost,
 * also across a restart; and when that follower was the only other replica
 * holding them, they survive the leader's loss (a Raft core that only stops
 * throwing would still lose them: its reload cut them).
 */

const fixture = new Fixture();
const dirs: string[] = [];
afterEach(async () => {
  await fixture.cleanup();
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

const TOPIC = 'ivdisk';


/** Publishes `m<from>`..`m<from + count - 1>` (four keys, in order), 20 at a time, recording each receipt. */
function publisher(client: RelayClient, receipts: Map<string, PublishReceipt>): (from: number, count: number) => Promise<void> {
  return async (from, count) => {
    for (let i = from; i < from + count; i += 20) {
      await Promise.all(
        Array.from({ length: Math.min(20, from + count - i) }, async (_, j) => {
          const value = `m${i + j}`.padEnd(120, '.');
          receipts.set(value, await client.publish(TOPIC, value, { key: `k${(i + j) % 4}` }));
        }),
      );
    }
  };
}

/** Every acknowledgement names its own message in `reference` (nothing acknowledged was lost or replaced). */
function expectAcknowledged(reference: string[], receipts: Map<string, PublishReceipt>): void {
  const byOffset = new Map(reference.map((line) => [Number(line.split('|')[0]), Buffer.from(line.split('|')[1] as string, 'hex').toString()]));
  for (const [value, receipt] of receipts) expect(byOffset.get(receipt.offset)?.endsWith(value), `${value.trim()} at ${receipt.offset}`).toBe(true);
}

const fencedLine = (line: string): boolean => line.includes('raft group fenced after a storage failure') && line.includes(`p/${TOPIC}/0`);

describe("fsync 'interval': a follower's disk fills up after it acknowledged written, unsynced entries", () => {
  it('the follower catches up once space returns and after a restart (it used to throw RaftInvariantError), and nothing acknowledged is lost', async () => {
    const { options, fss, lines } = await intervalCluster('relaymq-interval-disk-', ['v1', 'v2', 'v3'], dirs);
    const brokers = await Promise.all([0, 1, 2].map((i) => fixture.broker(options(i))));
    const client = await fixture.client(brokers.map((b) => b.url), { publishTimeoutMs: 30_000 });
    const receipts = new Map<string, PublishReceipt>();
    const publish = publisher(client, receipts);
    await publish(0, 200);

    // The victim: a follower, which acknowledged those 200 once written (not fsynced).
    const leaderId = brokers[0]?.engine.leaderOf?.(TOPIC, 0);
    const victimIndex = brokers.findIndex((b) => b.id !== leaderId);
    const victim = brokers[victimIndex] as Broker;
    const others = brokers.filter((b) => b !== victim);
    await waitFor(() => victim.engine.bounds(TOPIC, 0).end === 200, 'the follower to apply the first 200');
    const fs = fss[victimIndex] as FaultyFileSystem;
    const victimLines = lines[victimIndex] as string[];
    fs.setCapacity(fs.usedBytes + 1500); // the next writes fill it part way, then ENOSPC

    // Writes go on through the majority; the victim's write fails and fences its group, which reloads its log.
    await publish(200, 300);
    await waitFor(() => victimLines.some(fencedLine), 'the full follower to fence its group', 15_000);

    // Space returns: it rejoins by itself, its leader repairing it like a lagging replica.
    fs.setCapacity(undefined);
    await publish(500, 100);
    await waitFor(() => victim.engine.bounds(TOPIC, 0).end === 600, 'the full follower to catch up without a restart', 30_000);
    await waitFor(() => others.every((b) => b.engine.bounds(TOPIC, 0).end === 600), 'every replica to apply everything');
    const reference = await replicaCopy(others[0] as Broker, TOPIC);
    expect(reference).toHaveLength(600);
    expect(await replicaCopy(victim, TOPIC)).toEqual(reference);
    expectAcknowledged(reference, receipts);

    // A restart starts, listens, and keeps exactly that log.
    await victim.close();
    const again = await fixture.broker(options(victimIndex));
    await publish(600, 40);
    await waitFor(() => [again, ...others].every((b) => b.engine.bounds(TOPIC, 0).end === 640), 'the restarted follower to catch up', 30_000);
    const after = await replicaCopy(others[0] as Broker, TOPIC);
    expect(after.slice(0, 600)).toEqual(reference);
    expect(await replicaCopy(again, TOPIC)).toEqual(after);
  }, 120_000);

  it('when that follower was the only other replica holding them, the acknowledged entries survive the loss of the leader', async () => {
    const { options, fss, lines } = await intervalCluster('relaymq-interval-disk-', ['v1', 'v2', 'v3'], dirs);
    const brokers = await Promise.all([0, 1, 2].map((i) => fixture.broker(options(i))));
    const client = await fixture.client(brokers.map((b) => b.url), { publishTimeoutMs: 30_000 });
    const receipts = new Map<string, PublishReceipt>();
    const publish = publisher(client, receipts);
    await publish(0, 20);
    const leaderIndex = brokers.findIndex((b) => b.id === brokers[0]?.engine.leaderOf?.(TOPIC, 0));
    const [victimIndex, thirdIndex] = [0, 1, 2].filter((i) => i !== leaderIndex) as [number, number];
    const leader = brokers[leaderIndex] as Broker;
    const victim = brokers[victimIndex] as Broker;
    await waitFor(() => brokers.every((b) => b.engine.bounds(TOPIC, 0).end === 20), 'every replica to apply the first 20');

    // The third replica stops: the leader and the victim alone acknowledge the next 200 (the victim once written).
    await brokers[thirdIndex]?.close();
    await publish(20, 200);
    await waitFor(() => victim.engine.bounds(TOPIC, 0).end === 220, 'the victim to apply them');

    // The victim's disk fills: its next write fails (that publish is never acknowledged) and its groups fence and reload.
    const fs = fss[victimIndex] as FaultyFileSystem;
    fs.setCapacity(fs.usedBytes + 200);
    const unacknowledged = client.publish(TOPIC, 'never acknowledged', { key: 'k0' }).catch(() => undefined);
    await waitFor(() => (lines[victimIndex] as string[]).some(fencedLine), 'the victim to fence its group', 15_000);

    // The leader is lost while the victim is fenced (it repairs nothing); space returns, the third replica comes back.
    await leader.close();
    fs.setCapacity(undefined);
    const third = await fixture.broker(options(thirdIndex));
    await waitFor(
      () => [victim, third].every((b) => b.engine.bounds(TOPIC, 0).end >= 220),
      'the two replicas left to elect a leader holding the acknowledged entries and apply them',
      30_000,
    );
    await unacknowledged;
    const reference = await replicaCopy(victim, TOPIC);
    expect(await replicaCopy(third, TOPIC)).toEqual(reference);
    expect(receipts.size).toBe(220);
    expectAcknowledged(reference, receipts);
  }, 120_000);
});
