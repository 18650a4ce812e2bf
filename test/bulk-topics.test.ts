/**
 * Bulk topic creation (issue 13): a `metadata` request naming many new
 * topics, sent to a broker that does not lead the metadata group, becomes
 * one request to the leader and one metadata entry, not one round trip and
 * one entry per topic; every broker then knows every topic.
 */
import type { Broker, BrokerOptions } from '@relaymq/broker';
import { afterEach, describe, expect, it } from 'vitest';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { RawClient } from './support/raw-client.js';
import { tempDirs } from './support/temp-dirs.js';
import { waitFor } from './support/wait.js';

const TOPICS = 64;
const PARTITIONS = 2;

type GroupStatus = { group: string; role: string; leader: string | null; lastIndex: number };
const metaOf = (b: Broker): GroupStatus | undefined => (b.engine as unknown as { groupStatus(): GroupStatus[] }).groupStatus().find((g) => g.group === 'meta');

const fixture = new Fixture();
const tempDir = tempDirs('relaymq-bulk-topics-');
afterEach(() => fixture.cleanup());

interface Conf {
  voters: readonly string[];
  learners?: readonly string[];
}
const membership = (broker: Broker): Conf | undefined => (broker.engine as unknown as { membership(group: string): Conf | undefined }).membership('meta');
const hosts = (broker: Broker, topic: string, partition: number): boolean =>
  (broker.engine as unknown as { hostsReplica(t: string, p: number): boolean }).hostsReplica(topic, partition);

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

  it('places the topics of one bulk request on the admitted members, a broker that joined included, as a single topic is', async () => {
    const ids = ['g1', 'g2', 'g3', 'g4'];
    const peerPorts = await freePorts(4);
    const address = (i: number): string => `${ids[i]}@127.0.0.1:${peerPorts[i]}`;
    const base = async (i: number): Promise<BrokerOptions> => ({ id: ids[i] as string, peerPort: peerPorts[i] as number, dataDir: await tempDir(), replicationFactor: 2, defaultPartitions: PARTITIONS });
    const running = await Promise.all([0, 1, 2].map(async (i) => fixture.broker({ ...(await base(i)), peers: [0, 1, 2].filter((j) => j !== i).map(address) })));
    // g4 joins the running cluster (they were not configured with it) and is admitted as a metadata learner.
    const joined = await fixture.broker({ ...(await base(3)), peers: [0, 1, 2].map(address) });
    const all = [...running, joined];
    await waitFor(() => all.every((b) => (membership(b)?.learners ?? []).includes('g4')), 'every broker to see g4 admitted', 20_000);

    const topics = Array.from({ length: 16 }, (_, i) => `joined.t${i}`);
    const client = await RawClient.open((running[0] as Broker).url);
    try {
      client.send({ type: 'metadata', id: 1, topics });
      const answer = await client.next('topics', 20_000);
      expect(answer.topics.map((t) => t.topic)).toEqual(topics);
    } finally {
      client.close();
    }
    await waitFor(() => all.every((b) => topics.every((t) => b.engine.partitionCount(t) === PARTITIONS)), 'every topic on every broker', 20_000);
    // 16 topics x 2 partitions x 2 replicas over four members: the joined broker holds its share (16 of 64 when even).
    const replicasOn = (b: Broker): number => topics.reduce((n, t) => n + [0, 1].filter((p) => hosts(b, t, p)).length, 0);
    await waitFor(() => all.map(replicasOn).reduce((a, b) => a + b, 0) === topics.length * PARTITIONS * 2, 'every replica of the bulk topics hosted', 20_000);
    expect(replicasOn(joined)).toBe(16);
  }, 60_000);
});
