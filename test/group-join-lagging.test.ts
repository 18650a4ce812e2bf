/**
 * A consumer-group member joining through a broker whose metadata is behind
 * the coordinator (the metadata leader). The join is ordered by the leader,
 * but the broker the member asked builds its `assignment` from the group
 * table it applied: one that has not applied the leader's later changes (a
 * member's leave or expiry and the re-grant of its partition to another)
 * would show the member a grant that another member holds now (chaos seed 7:
 * `groupOverlap` after a coordinator's mass expiry). It must wait until it
 * applied the log as far as the join (else `NOT_READY`, which the SDK retries).
 *
 * Three brokers in this process; the lagging one is held behind by keeping
 * the metadata group's Raft messages from it (its heartbeats still come, so
 * it stays ready and knows the leader).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import { Fixture } from './support/cluster.js';
import { RawClient } from './support/raw-client.js';
import { answer, holdMetadata, leaderAndFollower } from './support/lagging-metadata.js';
import { waitFor } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

const TOPIC = 'laggroup.t';
const GROUP = 'laggroup';
const SESSION_MS = 60_000;

interface GroupPartitionView {
  topic: string;
  partition: number;
  owner?: string;
  epoch: number;
  revoking: boolean;
}
interface LagEngine {
  topicIncarnation(topic: string): number | undefined;
  groupCommand(command: Record<string, unknown>): Promise<{ kind: string }>;
  consumerGroups: { assignmentOf(group: string, member: string): GroupPartitionView[] };
}
const engineOf = (b: Broker): LagEngine => b.engine as unknown as LagEngine;

/** The partitions every `assignment` frame on `raw` showed as granted (not revoking), with their epochs. */
function grantsShown(raw: RawClient): Array<{ topic: string; partition: number; epoch: number }> {
  const shown: Array<{ topic: string; partition: number; epoch: number }> = [];
  for (const f of raw.frames) {
    if (f.type !== 'assignment') continue;
    for (const p of f.partitions) if (p.revoking !== true) shown.push({ topic: p.topic, partition: p.partition, epoch: p.epoch });
  }
  return shown;
}

describe('a group member joining through a broker whose metadata is behind the coordinator', () => {
  it('is never shown a grant another member holds now: NOT_READY while behind, the current assignment once caught up', async () => {
    const brokers = await fixture.cluster(3, { defaultPartitions: 1 });
    const { leader, follower: lagging } = await leaderAndFollower(brokers);

    const producer = await fixture.client([leader.url]);
    await producer.publish(TOPIC, 'x');
    await waitFor(() => engineOf(lagging).topicIncarnation(TOPIC) === 0, 'the lagging broker to apply the topic', 10_000);

    // Member a owns the one partition under epoch E, and the lagging broker applied that.
    const join = (member: string): Promise<{ kind: string }> =>
      engineOf(leader).groupCommand({ type: 'group-join', group: GROUP, member, pattern: TOPIC, sessionTimeoutMs: SESSION_MS });
    expect(await join('a')).toMatchObject({ kind: 'group' });
    const [grantA] = engineOf(leader).consumerGroups.assignmentOf(GROUP, 'a');
    expect(grantA).toMatchObject({ topic: TOPIC, partition: 0, owner: 'a', revoking: false });
    const epochA = (grantA as GroupPartitionView).epoch;
    await waitFor(() => engineOf(lagging).consumerGroups.assignmentOf(GROUP, 'a').some((p) => p.epoch === epochA), 'the lagging broker to apply a\'s grant', 10_000);

    const release = holdMetadata(lagging);
    let onLagging: RawClient | undefined;
    try {
      // On the coordinator: a leaves (as an expiry would take it out), b joins and is granted the partition.
      expect(await engineOf(leader).groupCommand({ type: 'group-leave', group: GROUP, member: 'a', positions: [] })).toMatchObject({ kind: 'group' });
      expect(await join('b')).toMatchObject({ kind: 'group' });
      const [grantB] = engineOf(leader).consumerGroups.assignmentOf(GROUP, 'b');
      expect(grantB).toMatchObject({ topic: TOPIC, partition: 0, owner: 'b', revoking: false });
      expect((grantB as GroupPartitionView).epoch).toBeGreaterThan(epochA);
      expect(engineOf(lagging).consumerGroups.assignmentOf(GROUP, 'a'), 'the lagging broker already applied the leave: no lag to test').toHaveLength(1);

      // a joins again, through the lagging broker: the coordinator gives it nothing (b holds the one partition).
      onLagging = await RawClient.open(lagging.url);
      onLagging.send({ type: 'subscribe', id: 2, subscription: 1, pattern: TOPIC, from: 'earliest', resume: [], credit: 10, group: GROUP, member: 'a', sessionTimeoutMs: SESSION_MS });
      const behind = await answer(onLagging, 2);
      if (behind.type === 'subscribed') {
        // The assignment frame follows `subscribed` at once: wait for it before looking at what it granted.
        await waitFor(() => onLagging?.frames.some((f) => f.type === 'assignment') === true, 'the assignment after subscribed', 5_000);
      }
      // Before the fix: `subscribed`, then an assignment granting partition 0 under a's old epoch, which b holds.
      expect(grantsShown(onLagging), 'a was shown the grant b holds now').toEqual([]);
      expect(behind).toMatchObject({ type: 'error', code: 'NOT_READY' });

      release();
      await waitFor(() => engineOf(lagging).consumerGroups.assignmentOf(GROUP, 'b').length === 1, 'the lagging broker to catch up', 15_000);
      onLagging.send({ type: 'subscribe', id: 3, subscription: 2, pattern: TOPIC, from: 'earliest', resume: [], credit: 10, group: GROUP, member: 'a', sessionTimeoutMs: SESSION_MS });
      expect(await answer(onLagging, 3)).toMatchObject({ type: 'subscribed' });
      expect(grantsShown(onLagging)).toEqual([]);
      expect(engineOf(lagging).consumerGroups.assignmentOf(GROUP, 'a')).toEqual([]);
    } finally {
      release();
      onLagging?.close();
    }
  });
});
