/**
 * A consumer-group subscribe that ends in `TIMEOUT` (the caller's
 * `subscribe()` rejected) after its join reached the coordinator: here the
 * member's only broker stays behind the coordinator (the metadata leader), so
 * it refuses the join `NOT_READY` each time although the coordinator ordered
 * it and granted the member partitions (test/group-join-lagging.test.ts).
 * The caller gave up, so nobody will handle those partitions: the client must
 * leave the group (best effort), as Kafka's consumer sends LeaveGroup, so the
 * other members get them at once rather than once the abandoned member's
 * session expires.
 *
 * Three brokers in this process; the lagging one is held behind by keeping
 * the metadata group's Raft messages from it (its heartbeats still come, so
 * it stays ready and knows the leader).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import type { AssignedEvent } from '@relaymq/sdk';
import { Fixture } from './support/cluster.js';
import { holdMetadata, leaderAndFollower } from './support/lagging-metadata.js';
import { waitFor } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

const TOPIC = 'abandoned.t';
const GROUP = 'abandoned';
/** The abandoned member's session: far longer than the test waits for its partitions to move. */
const SESSION_MS = 60_000;

interface LagEngine {
  topicIncarnation(topic: string): number | undefined;
}
const engineOf = (b: Broker): LagEngine => b.engine as unknown as LagEngine;

describe('a group subscribe abandoned after its subscribe timed out', () => {
  it('leaves the group: another member gets every partition at once, not after the session expires', async () => {
    const brokers = await fixture.cluster(3, { defaultPartitions: 2 });
    const { leader, follower: lagging } = await leaderAndFollower(brokers);

    const publisher = await fixture.client([leader.url]);
    await publisher.publish(TOPIC, { n: 0 });
    await waitFor(() => engineOf(lagging).topicIncarnation(TOPIC) === 0, 'the lagging broker to apply the topic', 10_000);

    // Knows the lagging broker alone: no other broker to move to, so its subscribe times out there.
    const abandoned = await fixture.client([lagging.url], { discovery: false, requestTimeoutMs: 3000 });
    const release = holdMetadata(lagging);
    try {
      await expect(abandoned.subscribe(TOPIC, () => {}, { group: GROUP, sessionTimeoutMs: SESSION_MS })).rejects.toMatchObject({ code: 'TIMEOUT' });

      const other = await fixture.client([leader.url]);
      const owned = new Set<number>();
      other.on('assigned', (event: AssignedEvent) => event.partitions.forEach((p) => owned.add(p.partition)));
      other.on('revoked', (event) => event.partitions.forEach((p) => owned.delete(p.partition)));
      await other.subscribe(TOPIC, () => {}, { group: GROUP, sessionTimeoutMs: 3000 });
      // Before the fix: one partition stayed the abandoned member's, delivered by nobody, until its session expired (60 s).
      await waitFor(() => owned.size === 2, 'the other member to own both partitions', 10_000);
    } finally {
      release();
    }
  }, 40_000);
});
