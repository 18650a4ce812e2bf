import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import { Fixture } from './support/cluster.js';
import { RawClient } from './support/raw-client.js';
import { waitFor } from './support/wait.js';

/**
 * A metadata answer names every partition's leader, whichever broker gives
 * it. With 5 brokers and replication factor 3 each broker hosts only some
 * partitions; before, one named the leaders of the others only after it had
 * routed publishes to them, so a client seeded with it could not find them
 * (a subscription stayed on a broker that holds no replica).
 */

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

const TOPIC = 'lookup.leaders';
const PARTITIONS = 6;

/** Whom a broker's own Raft group says leads a partition it hosts (`''` none yet, `undefined` where it hosts none). */
const hostedLeader = (b: Broker, partition: number): string | undefined => {
  const groups = (b.engine as unknown as { groupStatus(): Array<{ group: string; leader: string | null }> }).groupStatus();
  const group = groups.find((g) => g.group === `p/${TOPIC}/${partition}`);
  return group === undefined ? undefined : (group.leader ?? '');
};

async function leadersNamedBy(broker: Broker): Promise<string[] | undefined> {
  const raw = await RawClient.open(broker.url);
  try {
    raw.send({ type: 'metadata', id: 1, topics: [TOPIC] });
    return (await raw.next('topics')).topics[0]?.leaders;
  } finally {
    raw.close();
  }
}

describe('partition leaders in metadata answers (5 brokers, RF 3)', () => {
  it('a broker names the leaders of partitions it holds no replica of, with no publish routed through it', async () => {
    const brokers = await fixture.cluster(5, { replicationFactor: 3, defaultPartitions: PARTITIONS, prefix: 'l' });
    // The topic is created through one broker's metadata request; nothing is ever published.
    await leadersNamedBy(brokers[0] as Broker);
    const truth = (): string[] | undefined => {
      const leaders: string[] = [];
      for (let p = 0; p < PARTITIONS; p++) {
        const named = new Set(brokers.map((b) => hostedLeader(b, p)).filter((id) => id !== undefined));
        const [leader] = named;
        if (named.size !== 1 || leader === '') return undefined; // not settled: replicas disagree or know none
        leaders.push(leader as string);
      }
      return leaders;
    };
    await waitFor(() => truth() !== undefined, 'every partition to have one settled leader', 20_000);
    // Each broker lacks replicas of some partitions (RF 3 of 5): those are the ones this covers.
    for (const broker of brokers) expect(Array.from({ length: PARTITIONS }, (_, p) => hostedLeader(broker, p)).filter((id) => id === undefined).length).toBeGreaterThan(0);
    for (const broker of brokers) {
      // The cluster is idle and settled: one answer each, unless an election happened in between (then ask again).
      let named: string[] | undefined;
      for (let attempt = 0; attempt < 5; attempt++) {
        named = await leadersNamedBy(broker);
        if (JSON.stringify(named) === JSON.stringify(truth())) break;
      }
      expect(named, `broker ${broker.id}`).toEqual(truth());
    }
    expect(brokers.reduce((sum, b) => sum + b.stats().publishedForwarded, 0)).toBe(0);
  });

  it('a subscriber seeded with a broker holding no replica of its one-partition topic is served by the leader', async () => {
    const brokers = await fixture.cluster(5, { replicationFactor: 3, defaultPartitions: 1, prefix: 's' });
    await leadersNamedBy(brokers[0] as Broker);
    await waitFor(() => brokers.some((b) => hostedLeader(b, 0) === b.id), 'a leader of the partition', 20_000);
    await waitFor(() => brokers.filter((b) => hostedLeader(b, 0) !== undefined).every((b) => hostedLeader(b, 0) !== ''), 'every replica to know the leader', 20_000);
    const outsider = brokers.find((b) => hostedLeader(b, 0) === undefined) as Broker;
    const leader = (brokers.find((b) => hostedLeader(b, 0) === b.id) as Broker).id;
    const subscriber = await fixture.client([outsider.url]);
    const received: string[] = [];
    await subscriber.subscribe<string>(TOPIC, (m) => void received.push(m.data), { from: 'earliest' });
    await waitFor(() => subscriber.stats().subscribe.servedBy[0]?.broker === leader, `the subscription to move to the leader ${leader}`, 15_000);
    const publisher = await fixture.client([outsider.url]);
    for (let i = 0; i < 20; i++) await publisher.publish(TOPIC, `m${i}`);
    await waitFor(() => received.length >= 20, 'the 20 messages', 10_000);
    expect(received).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
  });
});
