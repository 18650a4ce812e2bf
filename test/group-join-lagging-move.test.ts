/**
 * A consumer-group member whose broker stays behind the coordinator (the
 * metadata leader): its join is ordered by the coordinator, which grants the
 * member partitions, but that broker refuses it with `NOT_READY` while it has
 * not applied the join (test/group-join-lagging.test.ts). The member must not
 * ask that broker alone again and again (every join renews its session, so
 * the coordinator keeps the partitions it granted it, delivered by nobody):
 * as with heartbeats failing there, it moves to another broker, which serves it.
 *
 * Three brokers in this process; the lagging one is held behind by keeping
 * the metadata group's Raft messages from it (its heartbeats still come, so
 * it stays ready and knows the leader).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import type { Message } from '@relaymq/sdk';
import { Fixture } from './support/cluster.js';
import { holdMetadata, leaderAndFollower } from './support/lagging-metadata.js';
import { waitFor } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

const TOPIC = 'lagmove.t';
const GROUP = 'lagmove';
const SESSION_MS = 3000;

interface LagEngine {
  topicIncarnation(topic: string): number | undefined;
}
const engineOf = (b: Broker): LagEngine => b.engine as unknown as LagEngine;

describe('a group member joining through a broker that stays behind the coordinator', () => {
  it('moves to another broker, which serves it, rather than being refused NOT_READY there until its subscribe times out', async () => {
    const brokers = await fixture.cluster(3, { defaultPartitions: 1 });
    const { follower: lagging } = await leaderAndFollower(brokers);

    const publisher = await fixture.client(brokers.map((b) => b.url));
    await publisher.publish(TOPIC, { n: 0 });
    await waitFor(() => engineOf(lagging).topicIncarnation(TOPIC) === 0, 'the lagging broker to apply the topic', 10_000);

    // Seeded with the lagging broker only: it is the member's first broker; the others are discovered (standbys).
    const member = await fixture.client([lagging.url]);
    await waitFor(() => member.stats().connectedBrokers.some((c) => c.id !== lagging.id), 'a standby connection to another broker', 10_000);
    const release = holdMetadata(lagging);
    try {
      const seen: number[] = [];
      // Before the fix: refused NOT_READY by the lagging broker every 1.25 s until the subscribe timed out (10 s).
      await member.subscribe(TOPIC, (m: Message<{ n: number }>) => void seen.push(m.data.n), { group: GROUP, sessionTimeoutMs: SESSION_MS, from: 'earliest' });
      expect(member.stats().subscribe.servedBy[0]?.broker).not.toBe(lagging.id);
      await waitFor(() => seen.includes(0), 'the member to handle the partition', 10_000);
    } finally {
      release();
    }
  }, 30_000);
});
