/**
 * `raft.quiesce: false` is honoured: two in-process 3-broker clusters host
 * the same topic, one with the default and one with quiescence off. Once
 * every group of the default cluster has quiesced (so the groups had every
 * chance to), the other cluster's groups have not, and they go on ticking
 * and heartbeating: counted from the brokers' own stats, over a number of
 * ticks rather than a sleep.
 */
import type { Broker } from '@relaymq/broker';
import { afterEach, describe, expect, it } from 'vitest';
import { Fixture } from './support/cluster.js';
import { waitFor } from './support/wait.js';

const PARTITIONS = 4;
/** Groups per broker: every partition (R=3 on 3 brokers) and the metadata group. */
const GROUPS = PARTITIONS + 1;
/** Election timeouts (`local` preset: 5 ticks) each group of the unquiesced cluster must tick through while watched. */
const WATCHED_TICKS_PER_GROUP = 20;

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

async function clusterWithTopic(prefix: string, quiesce: boolean | undefined): Promise<Broker[]> {
  const raft = quiesce === undefined ? { preset: 'local' as const } : { preset: 'local' as const, quiesce };
  const brokers = await fixture.cluster(3, { prefix, raft, swim: { preset: 'local' }, defaultPartitions: PARTITIONS });
  // The metadata group elects first; creating the topic retries until it has.
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await (brokers[0] as Broker).engine.ensureTopic('quiet.t');
      break;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  await waitFor(
    () => brokers.every((b) => b.stats().raftGroups === GROUPS) && Array.from({ length: PARTITIONS }, (_, p) => brokers.every((b) => (b.engine.leaderOf?.('quiet.t', p) ?? '') !== '')).every(Boolean),
    `${prefix}: every group hosted and led`,
    20_000,
  );
  return brokers;
}

describe('raft.quiesce', () => {
  it('false keeps every group ticking and heartbeating while the same cluster with the default quiesces them all', async () => {
    const [quiet, busy] = await Promise.all([clusterWithTopic('q', undefined), clusterWithTopic('n', false)]);

    await waitFor(() => quiet.every((b) => b.stats().raftGroupsQuiesced === GROUPS), 'every group of the default cluster to quiesce', 60_000);
    const before = busy.map((b) => b.stats());
    for (const [i, b] of busy.entries()) expect(before[i]?.raftGroupsQuiesced, `${b.id}: quiesced groups`).toBe(0);

    // Watched over ticks, not time: every quiesced count seen meanwhile is 0.
    let quiescedSeen = 0;
    await waitFor(
      () => {
        const now = busy.map((b) => b.stats());
        for (const s of now) quiescedSeen = Math.max(quiescedSeen, s.raftGroupsQuiesced);
        return now.every((s, i) => s.raftTicks - (before[i]?.raftTicks ?? 0) >= GROUPS * WATCHED_TICKS_PER_GROUP);
      },
      `${WATCHED_TICKS_PER_GROUP} ticks per group on every broker with quiescence off`,
      30_000,
    );
    expect(quiescedSeen).toBe(0);
    const after = busy.map((b) => b.stats());
    for (const [i, b] of busy.entries()) {
      // Leaders heartbeat their followers all along: each broker leads some groups, or answers heartbeats of those it follows.
      expect(after[i]?.raftMessagesSent ?? 0, `${b.id}: Raft messages while idle`).toBeGreaterThan(before[i]?.raftMessagesSent ?? 0);
      expect(after[i]?.raftGroupsQuiesced, `${b.id}: quiesced groups`).toBe(0);
    }
  }, 120_000); // two clusters of three brokers on a loaded 2-core machine
});
