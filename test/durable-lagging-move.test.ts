/**
 * A durable subscribe through a broker whose metadata stays behind the
 * metadata leader: the positions are read on the leader, but that broker
 * refuses the subscribe with `NOT_READY` while it has not applied the log as
 * far as the read (test/durable-lagging-incarnation.test.ts). The subscriber
 * must not ask that broker alone again and again until its subscribe times
 * out: as a group member's join does (test/group-join-lagging-move.test.ts),
 * after two refusals in a row it subscribes through another ready broker it
 * is connected to, which serves it.
 *
 * The lagging broker leads the topic's partition, so the placement (served
 * from the leader, see placement.ts) names it too: it must not move the
 * subscription back there while that broker refuses it.
 *
 * Three brokers in this process; the lagging one is held behind by keeping
 * the metadata group's Raft messages from it (its heartbeats still come, so
 * it stays ready and knows the leader).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import type { Message } from '@relaymq/sdk';
import { Fixture } from './support/cluster.js';
import { holdMetadata } from './support/lagging-metadata.js';
import { waitFor } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

const TOPIC = 'lagdurmove.t';
const DURABLE = 'lagdurmove';
/**
 * How long the subscription is watched after it was served: the placement's
 * leader lookup goes as the subscribe resolves (one round trip), and a move
 * back to the lagging leader would show at once, for a second at least.
 */
const OBSERVE_MS = 1500;

interface LagEngine {
  groupStatus(): Array<{ group: string; leader: string | null }>;
  metadataLeaderKnown(): boolean;
  topicIncarnation(topic: string): number | undefined;
  leaderOf(topic: string, partition: number): string | undefined;
  meta: { transferLeadership(to: string): boolean };
}
const engineOf = (b: Broker): LagEngine => b.engine as unknown as LagEngine;

describe('a durable subscribe through a broker that stays behind the metadata leader', () => {
  it('is served by another connected broker rather than refused NOT_READY there until it times out, and not moved back; the client does not fail over for it', async () => {
    const brokers = await fixture.cluster(3, { defaultPartitions: 1 });
    const metaLeader = (): string | null => engineOf(brokers[0] as Broker).groupStatus().find((g) => g.group === 'meta')?.leader ?? null;
    await waitFor(() => metaLeader() !== null && brokers.every((b) => engineOf(b).metadataLeaderKnown()), 'a metadata leader every broker knows', 20_000);
    const byId = (id: string): Broker => brokers.find((b) => b.id === id) as Broker;

    const publisher = await fixture.client(brokers.map((b) => b.url));
    await publisher.publish(TOPIC, { n: 0 });
    let partitionLeader: string | undefined;
    await waitFor(() => (partitionLeader = brokers.map((b) => engineOf(b).leaderOf(TOPIC, 0)).find((id) => id !== undefined)) !== undefined, 'a leader of the partition', 10_000);
    const lagging = byId(partitionLeader as string);
    // The metadata is led by another broker (the one the lagging broker stays behind).
    const other = brokers.find((b) => b !== lagging) as Broker;
    await waitFor(
      () => {
        const leader = metaLeader();
        if (leader === lagging.id) engineOf(lagging).meta.transferLeadership(other.id);
        return leader !== null && leader !== lagging.id && brokers.every((b) => engineOf(b).metadataLeaderKnown());
      },
      'a metadata leader other than the partition leader',
      20_000,
    );
    await waitFor(() => engineOf(lagging).topicIncarnation(TOPIC) === 0, 'the lagging broker to apply the topic', 10_000);

    // Seeded with the lagging broker only: it is the client's active broker; the others are discovered (standbys).
    const client = await fixture.client([lagging.url]);
    const failovers: string[] = [];
    client.on('failover', ({ from, to, reason }) => failovers.push(`${from.id}->${to.id}: ${reason.code} ${reason.message}`));
    await waitFor(() => client.stats().connectedBrokers.some((c) => c.id !== lagging.id), 'a standby connection to another broker', 10_000);
    const release = holdMetadata(lagging);
    try {
      const seen: number[] = [];
      // Before the fix: refused NOT_READY by the lagging broker every 1.25 s until the subscribe timed out (10 s).
      await client.subscribe(TOPIC, (m: Message<{ n: number }>) => void seen.push(m.data.n), { durable: DURABLE, from: 'earliest' });
      // Served from another broker from then on: never moved back to the lagging leader (nor between brokers); the
      // timeline says where it was served, in case.
      const servedBy = new Set<string | undefined>();
      const t0 = Date.now();
      const timeline: string[] = [];
      const servedNow = (): void => {
        const b = client.stats().subscribe.servedBy[0]?.broker;
        if (!servedBy.has(b)) timeline.push(`${Date.now() - t0} ${b} active=${client.stats().activeBroker?.id} failovers=${failovers.join('|')}`);
        servedBy.add(b);
      };
      servedNow();
      const sample = setInterval(servedNow, 20);
      try {
        await waitFor(() => seen.includes(0), 'the durable subscription to handle the message', 10_000);
        await publisher.publish(TOPIC, { n: 1 });
        await waitFor(() => seen.includes(1), 'a message published since', 10_000);
        // Its positions are committed through the active broker still (a commit does not wait for that broker's metadata).
        await waitFor(() => client.stats().subscribe.commits > 0, 'a position commit', 10_000);
        // A move back shows at once and for a second at least (that broker waits that long before it refuses).
        await new Promise((resolve) => setTimeout(resolve, OBSERVE_MS));
        servedNow();
      } finally {
        clearInterval(sample);
      }
      expect([...servedBy], timeline.join('\n')).toHaveLength(1);
      expect([...servedBy][0]).not.toBe(lagging.id);
      expect([...servedBy][0]).toBeDefined();
      expect(seen).toEqual([0, 1]);
      // Only this subscription moved: the client's other traffic stays on its broker. (Under load the held broker may
      // lose sight of the metadata leader for a while and say it is not ready: the pool then leaves it, as it should.)
      expect(failovers.filter((f) => !f.includes('is not ready'))).toEqual([]);
    } finally {
      release();
    }
  }, 40_000);
});
