import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import type { GapEvent, Message } from '@relaymq/sdk';
import { Fixture } from './support/cluster.js';
import { waitFor, within } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

const hosts = (broker: Broker, topic: string, partition: number): boolean =>
  (broker.engine as unknown as { hostsReplica(t: string, p: number): boolean }).hostsReplica(topic, partition);

const metadataLeader = (b: Broker): string | null =>
  (b.engine as unknown as { groupStatus(): Array<{ group: string; leader: string | null }> }).groupStatus().find((g) => g.group === 'meta')?.leader ?? null;

/**
 * A group member connected to a broker that holds no replica of the
 * partition it is granted (5 brokers, replication factor 3): where a
 * partition the group never committed starts must be where `from` says, as
 * on a broker that hosts it — not offset 0 because this broker never read
 * the partition's bounds.
 */
describe('a group member on a broker that holds no replica of its partition', () => {
  async function setup(topic: string, options: { retentionBytes?: number } = {}): Promise<{ brokers: Broker[]; outsider: Broker; leader: Broker }> {
    const brokers = await fixture.cluster(5, { replicationFactor: 3, defaultPartitions: 1, prefix: 'r', ...options });
    await waitFor(() => brokers.every((b) => metadataLeader(b) !== null), 'every broker to know the metadata leader', 15_000);
    const publisher = await fixture.client(brokers.map((b) => b.url));
    for (let n = 0; n < 40; n++) await publisher.publish(topic, { n, pad: 'x'.repeat(80) });
    const outsider = brokers.find((b) => !hosts(b, topic, 0));
    const leader = brokers.find((b) => b.engine.leaderOf?.(topic, 0) === b.id);
    if (outsider === undefined || leader === undefined) throw new Error('expected a broker without a replica, and a leader');
    await waitFor(() => leader.engine.bounds(topic, 0).end === 40, 'the 40 messages to be applied on the leader', 10_000);
    return { brokers, outsider, leader };
  }

  it("from 'new' starts at the partition's end, not at offset 0", async () => {
    const { brokers, outsider } = await setup('remote.new');
    const member = await fixture.client([outsider.url], { poolSize: 1, discovery: false });
    const handled: number[] = [];
    const gaps: GapEvent[] = [];
    member.on('gap', (gap) => gaps.push(gap));
    const assigned = new Promise<void>((resolve) => member.once('assigned', () => resolve()));
    await member.subscribe('remote.new', (m: Message<{ n: number }>) => void handled.push(m.data.n), { group: 'fresh', from: 'new' });
    await within(assigned, 'the partition to be assigned', 10_000);
    const publisher = await fixture.client(brokers.map((b) => b.url));
    for (let n = 40; n < 45; n++) await publisher.publish('remote.new', { n });
    await waitFor(() => handled.includes(44), 'the new messages to be handled', 10_000);
    expect(handled).toEqual([40, 41, 42, 43, 44]);
    expect(gaps).toEqual([]);
  });

  it("from 'earliest' starts at the first retained message: no gap event, as on a broker that hosts it", async () => {
    const { outsider, leader } = await setup('remote.earliest', { retentionBytes: 1000 });
    const start = leader.engine.bounds('remote.earliest', 0).start;
    expect(start).toBeGreaterThan(0);
    const member = await fixture.client([outsider.url], { poolSize: 1, discovery: false });
    const handled: number[] = [];
    const gaps: GapEvent[] = [];
    member.on('gap', (gap) => gaps.push(gap));
    await member.subscribe('remote.earliest', (m: Message<{ n: number }>) => void handled.push(m.data.n), { group: 'replay', from: 'earliest' });
    await waitFor(() => handled.includes(39), 'the retained messages to be handled', 10_000);
    expect(handled[0]).toBe(start);
    expect(gaps).toEqual([]);
  });
});
