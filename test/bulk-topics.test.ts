/**
 * Bulk topic creation (issue 13): a `metadata` request naming many new
 * topics, sent to a broker that does not lead the metadata group, becomes
 * one request to the leader and one metadata entry, not one round trip and
 * one entry per topic; every broker then knows every topic.
 */
import type { Broker } from '@relaymq/broker';
import { afterEach, describe, expect, it } from 'vitest';
import { Fixture } from './support/cluster.js';
import { RawClient } from './support/raw-client.js';
import { waitFor } from './support/wait.js';

const TOPICS = 64;
const PARTITIONS = 2;

type GroupStatus = { group: string; role: string; leader: string | null; lastIndex: number };
const metaOf = (b: Broker): GroupStatus | undefined => (b.engine as unknown as { groupStatus(): GroupStatus[] }).groupStatus().find((g) => g.group === 'meta');

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

describe('bulk topic creation', () => {
  it(`creates ${TOPICS} topics asked for in one metadata request through a follower with a handful of metadata entries`, async () => {
    const brokers = await fixture.cluster(3, { defaultPartitions: PARTITIONS, prefix: 'k', raft: { preset: 'local' }, swim: { preset: 'local' } });
    await waitFor(() => brokers.every((b) => { const m = metaOf(b); return m !== undefined && m.leader !== null && m.leader === metaOf(brokers[0] as Broker)?.leader; }), 'a metadata leader every broker knows', 20_000);
    const leaderId = metaOf(brokers[0] as Broker)?.leader;
    const leader = brokers.find((b) => b.id === leaderId) as Broker;
    const follower = brokers.find((b) => b.id !== leaderId) as Broker;
    // The leader's first entry of its term is committed before it takes proposals.
    await waitFor(() => (metaOf(leader)?.lastIndex ?? 0) > 0, 'the leader entry', 10_000);
    const before = metaOf(leader)?.lastIndex ?? 0;

    const topics = Array.from({ length: TOPICS }, (_, i) => `bulk.t${i}`);
    const client = await RawClient.open(follower.url);
    try {
      client.send({ type: 'metadata', id: 1, topics });
      const answer = await client.next('topics', 20_000);
      expect(answer.topics.map((t) => [t.topic, t.partitions])).toEqual(topics.map((t) => [t, PARTITIONS]));
    } finally {
      client.close();
    }
    // One entry for the whole request (a few at most, should the request have straddled turns of the event loop).
    const entries = (metaOf(leader)?.lastIndex ?? 0) - before;
    expect(entries).toBeGreaterThanOrEqual(1);
    expect(entries).toBeLessThanOrEqual(4);
    await waitFor(() => brokers.every((b) => topics.every((t) => b.engine.partitionCount(t) === PARTITIONS)), 'every topic on every broker', 20_000);
  }, 60_000);
});
