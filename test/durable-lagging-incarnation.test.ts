/**
 * A durable subscribe answered by a broker whose metadata is behind: the
 * topic was deleted and created again, and the durable positions read (an
 * entry of the metadata log, on its leader) come after that, but this
 * broker has not applied the deletion yet. It must not label its cursors
 * with the old incarnation (a later resume elsewhere would take them for the
 * deleted topic's and end the subscription, INVALID_TOPIC): it answers
 * `NOT_READY` until it has applied the log up to the read, as a resume
 * racing a deletion is answered.
 *
 * Three brokers in this process; the lagging one is held behind by keeping
 * the metadata group's Raft messages from it (its heartbeats still come, so
 * it stays ready and knows the leader).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Broker } from '@relaymq/broker';
import { Fixture } from './support/cluster.js';
import { RawClient } from './support/raw-client.js';
import { answer, holdMetadata, leaderAndFollower } from './support/lagging-metadata.js';
import { waitFor } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

const TOPIC = 'lagdur.t';

interface LagEngine {
  metadataLeaderKnown(): boolean;
  topicIncarnation(topic: string): number | undefined;
  deleteTopic(topic: string): Promise<unknown>;
}
const engineOf = (b: Broker): LagEngine => b.engine as unknown as LagEngine;

describe('a durable subscribe on a broker whose metadata is behind a deletion and creation again', () => {
  it('is answered NOT_READY (never cursors of the old incarnation), then the new incarnation once the broker caught up', async () => {
    const brokers = await fixture.cluster(3, { defaultPartitions: 1 });
    const { leader, follower: lagging } = await leaderAndFollower(brokers);

    const producer = await fixture.client([leader.url]);
    for (let i = 0; i < 3; i++) await producer.publish(TOPIC, `old${i}`);
    await waitFor(() => engineOf(lagging).topicIncarnation(TOPIC) === 0, 'the lagging broker to apply the topic', 10_000);

    const release = holdMetadata(lagging);
    const onLeader = await RawClient.open(leader.url);
    let onLagging: RawClient | undefined;
    try {
      await engineOf(leader).deleteTopic(TOPIC);
      for (let i = 0; i < 2; i++) await producer.publish(TOPIC, `new${i}`); // created again: incarnation 1
      expect(engineOf(leader).topicIncarnation(TOPIC)).toBe(1);
      // The new topic's durable position, stored through the metadata log (after the deletion and the creation).
      onLeader.send({ type: 'commit', id: 1, durable: 'lagd', positions: [{ topic: TOPIC, partition: 0, offset: 1, incarnation: 1 }] });
      expect(await answer(onLeader, 1)).toMatchObject({ type: 'committed' });
      expect(engineOf(lagging).topicIncarnation(TOPIC), 'the lagging broker already applied the deletion: no lag to test').toBe(0);

      onLagging = await RawClient.open(lagging.url);
      onLagging.send({ type: 'subscribe', id: 2, subscription: 1, pattern: TOPIC, from: 'earliest', resume: [], credit: 0, durable: 'lagd' });
      const behind = await answer(onLagging, 2);
      // Offset 1 is the new topic's position: labelled incarnation 0, a resume elsewhere ends the subscription.
      expect(behind).toMatchObject({ type: 'error', code: 'NOT_READY' });

      release();
      await waitFor(() => engineOf(lagging).topicIncarnation(TOPIC) === 1, 'the lagging broker to catch up', 15_000);
      onLagging.send({ type: 'subscribe', id: 3, subscription: 2, pattern: TOPIC, from: 'earliest', resume: [], credit: 0, durable: 'lagd' });
      expect(await answer(onLagging, 3)).toMatchObject({ type: 'subscribed', cursors: [{ topic: TOPIC, partition: 0, offset: 1, incarnation: 1 }] });
    } finally {
      release();
      onLeader.close();
      onLagging?.close();
    }
  });

  it('many waiting at once cost one check per burst of applied entries (a catch-up applies thousands), and are cleaned up', async () => {
    const brokers = await fixture.cluster(3, { defaultPartitions: 1 });
    await waitFor(() => brokers.every((b) => engineOf(b).metadataLeaderKnown()), 'a metadata leader every broker knows', 20_000);
    const engine = (brokers[0] as Broker).engine as unknown as {
      meta: { applied: number };
      metaEvents: { emit(event: 'applied'): boolean; listenerCount(event: 'applied'): number };
      reads: { metaAppliedUpTo(index: number): Promise<void> };
    };
    const listeners = engine.metaEvents.listenerCount('applied');
    // 50 durable subscribes wait for an index this broker does not reach.
    const waits = Array.from({ length: 50 }, () => engine.reads.metaAppliedUpTo(engine.meta.applied + 1_000_000).then(() => 'applied', (err: { code?: string }) => err.code));
    const spy = vi.spyOn(globalThis, 'setImmediate');
    try {
      // A catch-up's Ready applies its entries in one go, each announced.
      for (let i = 0; i < 2_000; i++) engine.metaEvents.emit('applied');
      // Before: a setImmediate per waiter per entry (100,000 here).
      expect(spy.mock.calls.length).toBeLessThanOrEqual(2_000);
    } finally {
      spy.mockRestore();
    }
    // One the log reaches (a topic's creation is the next entry) is answered then.
    const reached = engine.reads.metaAppliedUpTo(engine.meta.applied + 1);
    const producer = await fixture.client([(brokers[0] as Broker).url]);
    await producer.publish('lagmany.t', 'x');
    await reached;
    expect(await Promise.all(waits)).toEqual(Array.from({ length: 50 }, () => 'NOT_READY'));
    expect(engine.metaEvents.listenerCount('applied')).toBe(listeners);
  });
});
