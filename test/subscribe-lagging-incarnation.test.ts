/**
 * A topic deleted and created again while one broker's metadata is behind:
 * what a subscriber starting there sees once that broker catches up, and what
 * a durable subscriber resuming there sees.
 *
 * A plain subscribe is answered from the lagging broker's own metadata: its
 * `subscribed` cursors name the deleted incarnation (0) and, from `new`, the
 * deleted log's end (3), above offsets the new topic has. That start is never
 * carried into the new topic: the broker applies the deletion before the
 * creation, and the deletion ends a single-topic subscription
 * (`INVALID_TOPIC`) or makes a wildcard one forget the topic's cursors, here
 * and in the SDK, which then reads the new topic from offset 0, told its
 * incarnation. No message of the new topic is skipped or dropped as a repeat.
 * (Not linearizable, and left so: the deleted topic's messages may come first,
 * and a single-topic subscription made after the creation again is ended as
 * if subscribed before the deletion; it says so.)
 *
 * A durable subscriber's stored positions name no incarnation: the deletion's
 * metadata entry removes them, and a commit of the deleted topic's offset
 * checked at a broker still behind carries the incarnation checked there (0),
 * which the metadata leader's apply drops once the topic is created again.
 *
 * Three brokers in this process; the lagging one is held behind by keeping
 * the metadata group's Raft messages from it (its heartbeats still come, so
 * it stays ready and knows the leader).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import type { Message, StartPosition } from '@relaymq/sdk';
import type { Cursor } from '@relaymq/sdk/protocol';
import { Fixture } from './support/cluster.js';
import { RawClient } from './support/raw-client.js';
import { answer, holdMetadata, leaderAndFollower } from './support/lagging-metadata.js';
import { waitFor } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

interface LagEngine {
  groupStatus(): Array<{ group: string; leader: string | null }>;
  topicIncarnation(topic: string): number | undefined;
  deleteTopic(topic: string): Promise<unknown>;
  positions(durable: string, pattern: string): Promise<Cursor[]>;
}
const engineOf = (b: Broker): LagEngine => b.engine as unknown as LagEngine;

/**
 * Three brokers; `topic` created with old0..old2 (incarnation 0), which every
 * broker applied; then `lagging` held behind while the topic is deleted and
 * created again with new0, new1 (incarnation 1) through the metadata leader.
 * `lagging` leads neither the metadata nor the old topic's partition.
 */
async function deletedAndCreatedBehind(topic: string) {
  const brokers = await fixture.cluster(3, { defaultPartitions: 1 });
  const { leader } = await leaderAndFollower(brokers);
  const producer = await fixture.client([leader.url]);
  for (let i = 0; i < 3; i++) await producer.publish(topic, `old${i}`);
  const partitionLeader = (): string | null | undefined => engineOf(leader).groupStatus().find((g) => g.group === `p/${topic}/0`)?.leader;
  await waitFor(() => typeof partitionLeader() === 'string', `a leader of ${topic}/0`, 10_000);
  const lagging = brokers.find((b) => b !== leader && b.id !== partitionLeader()) as Broker;
  await waitFor(() => engineOf(lagging).topicIncarnation(topic) === 0, 'the lagging broker to apply the topic', 10_000);
  const release = holdMetadata(lagging);
  fixture.defer(async () => release());
  await engineOf(leader).deleteTopic(topic);
  for (let i = 0; i < 2; i++) await producer.publish(topic, `new${i}`);
  expect(engineOf(leader).topicIncarnation(topic)).toBe(1);
  expect(engineOf(lagging).topicIncarnation(topic), 'the lagging broker already applied the deletion: no lag to test').toBe(0);
  return { leader, lagging, producer, release };
}

describe('a plain subscribe through a broker behind a deletion and creation again, served there until it catches up', () => {
  const cases: Array<[string, StartPosition]> = [
    ['lagplain.t', 'new'],
    ['lagplain.t', 'earliest'],
    ['lagplain.*', 'new'],
    ['lagplain.*', 'earliest'],
  ];
  for (const [pattern, from] of cases) {
    it(`${pattern} from ${String(from)}: the new topic is read from offset 0 or the subscription ends, never started at the deleted log's offsets`, async () => {
      const { lagging, producer, release } = await deletedAndCreatedBehind('lagplain.t');
      // Only that broker (no discovery): a single-topic subscription does not move to its partition's leader.
      const client = await fixture.client([lagging.url], { discovery: false });
      const ended: string[] = [];
      client.on('error', (err, context) => {
        if (context?.subscription !== undefined) ended.push((err as { code?: string }).code ?? String(err));
      });
      const got: string[] = [];
      await client.subscribe(pattern, (m: Message) => void got.push(`${String(m.data)}@${m.offset}`), { from });
      // Its `subscribed` named incarnation 0 (at offset 3 from `new`: taken for the new topic's, offsets 0..2 would be skipped).
      release();
      await waitFor(() => engineOf(lagging).topicIncarnation('lagplain.t') === 1, 'the lagging broker to catch up', 15_000);
      await producer.publish('lagplain.t', 'new2');
      await producer.publish('lagplain.t', 'new3');
      await waitFor(() => got.includes('new3@3') || ended.length > 0, "the new topic's offset 3, or the subscription ended", 15_000);
      const fresh = got.filter((m) => m.startsWith('new'));
      if (ended.length > 0) {
        // The SDK heard of the deletion: a single-topic subscription ends, and says so (a wildcard one goes on).
        expect(pattern, 'only a single-topic subscription ends').toBe('lagplain.t');
        expect(ended).toEqual(['INVALID_TOPIC']);
        expect(fresh, 'ended: nothing of the new topic delivered (nothing of it skipped)').toEqual([]);
      } else {
        // Every message of the new topic, once, from offset 0 (none below the deleted log's end skipped or dropped as a repeat).
        expect(fresh).toEqual(['new0@0', 'new1@1', 'new2@2', 'new3@3']);
      }
      // Before it, only the deleted topic's messages as they were (a stale read), from `earliest` only.
      const stale = got.filter((m) => !m.startsWith('new'));
      expect(stale).toEqual(from === 'earliest' ? ['old0@0', 'old1@1', 'old2@2'].slice(0, stale.length) : []);
    });
  }
});

describe("a durable subscriber resuming a topic deleted and created again, through a broker behind", () => {
  it("does not start the new topic at the deleted one's committed offset: the deletion removed it, and a commit checked behind stores nothing", async () => {
    const TOPIC = 'lagdurres.t';
    const brokers = await fixture.cluster(3, { defaultPartitions: 1 });
    const { leader, follower: lagging } = await leaderAndFollower(brokers);
    const producer = await fixture.client([leader.url]);
    for (let i = 0; i < 3; i++) await producer.publish(TOPIC, `old${i}`);
    await waitFor(() => engineOf(lagging).topicIncarnation(TOPIC) === 0, 'the lagging broker to apply the topic', 10_000);
    const onLeader = await RawClient.open(leader.url);
    const onLagging = await RawClient.open(lagging.url);
    const release = holdMetadata(lagging);
    try {
      // The old topic's consumer handled all 3: its stored position is 3.
      onLeader.send({ type: 'commit', id: 1, durable: 'keep', positions: [{ topic: TOPIC, partition: 0, offset: 3, incarnation: 0 }] });
      expect(await answer(onLeader, 1)).toMatchObject({ type: 'committed' });
      expect(await engineOf(leader).positions('keep', TOPIC)).toEqual([{ topic: TOPIC, partition: 0, offset: 3 }]);

      await engineOf(leader).deleteTopic(TOPIC);
      // Gone with the topic (metadata.ts deleteTopic: the same entry forgets the durable positions).
      expect(await engineOf(leader).positions('keep', TOPIC)).toEqual([]);
      for (let i = 0; i < 2; i++) await producer.publish(TOPIC, `new${i}`); // created again: incarnation 1, offsets 0 and 1
      expect(engineOf(lagging).topicIncarnation(TOPIC), 'the lagging broker already applied the deletion: no lag to test').toBe(0);

      // A commit of the old offset naming no incarnation (an older SDK), checked by the broker behind: it names the
      // incarnation it checked (0), and the leader, ordering it after the creation again, stores nothing of it.
      onLagging.send({ type: 'commit', id: 2, durable: 'keep', positions: [{ topic: TOPIC, partition: 0, offset: 3 }] });
      expect(await answer(onLagging, 2)).toMatchObject({ type: 'committed' });
      expect(await engineOf(leader).positions('keep', TOPIC)).toEqual([]);

      // The durable subscriber comes back through the broker behind: it reads the stored positions (none) there.
      const engine = lagging.engine as unknown as LagEngine;
      const read = engine.positions.bind(engine);
      let reads = 0;
      engine.positions = (durable, pattern) => {
        reads++;
        return read(durable, pattern);
      };
      const client = await fixture.client([lagging.url]);
      const got: string[] = [];
      const subscribed = client.subscribe(TOPIC, (m: Message) => void got.push(`${String(m.data)}@${m.offset}`), { durable: 'keep', from: 'earliest' });
      await waitFor(() => reads > 0, 'the durable read through the broker behind', 10_000);
      release(); // it waits for this broker to catch up (or is answered NOT_READY and asks again), then starts the new topic
      await subscribed;
      await producer.publish(TOPIC, 'new2');
      await waitFor(() => got.includes('new2@2'), "the new topic's offset 2", 15_000);
      expect(got).toEqual(['new0@0', 'new1@1', 'new2@2']);
    } finally {
      release();
      onLeader.close();
      onLagging.close();
    }
  });
});
