import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import type { AssignedEvent, Message, RelayClient, RevokedEvent } from '@relaymq/sdk';
import { get, getJson, parseMetrics, sample } from './support/admin.js';
import { Fixture } from './support/cluster.js';
import { RawClient } from './support/raw-client.js';
import { waitFor } from './support/wait.js';

const fixture = new Fixture();
const raws: RawClient[] = [];
afterEach(async () => {
  for (const raw of raws.splice(0)) raw.close();
  await fixture.cleanup();
});

/**
 * Watches a group from the outside: which member handles which partition
 * right now (a second member entering a partition's handler is a violation),
 * every message handled, and per key the offsets in handling order.
 */
class GroupWatch {
  readonly active = new Map<number, string>();
  readonly violations: string[] = [];
  readonly handled: Array<{ member: string; partition: number; offset: number; n: number }> = [];
  readonly byKey = new Map<string, number[]>();

  handler(member: string): (m: Message<{ n: number }>) => Promise<void> {
    return async (m) => {
      const holder = this.active.get(m.partition);
      if (holder !== undefined && holder !== member) this.violations.push(`${member} entered partition ${m.partition} while ${holder} handled it`);
      this.active.set(m.partition, member);
      await new Promise((resolve) => setTimeout(resolve, 1));
      this.handled.push({ member, partition: m.partition, offset: m.offset, n: m.data.n });
      const list = this.byKey.get(m.key ?? '') ?? [];
      list.push(m.offset);
      this.byKey.set(m.key ?? '', list);
      this.active.delete(m.partition);
    };
  }

  distinct(): Set<number> {
    return new Set(this.handled.map((h) => h.n));
  }

  /** Per key, offsets never go back except where a message was handled again (a redelivery after a move). */
  checkKeyOrder(): void {
    for (const [key, offsets] of this.byKey) {
      const firsts = offsets.filter((o, i) => offsets.indexOf(o) === i);
      expect(firsts, `key ${key}`).toEqual([...firsts].sort((a, b) => a - b));
    }
  }
}

function ownedBy(client: RelayClient): { partitions: Set<number>; assigned: AssignedEvent[]; revoked: RevokedEvent[] } {
  const view = { partitions: new Set<number>(), assigned: [] as AssignedEvent[], revoked: [] as RevokedEvent[] };
  client.on('assigned', (e) => {
    view.assigned.push(e);
    for (const p of e.partitions) view.partitions.add(p.partition);
  });
  client.on('revoked', (e) => {
    view.revoked.push(e);
    for (const p of e.partitions) view.partitions.delete(p.partition);
  });
  return view;
}

async function publishKeyed(client: RelayClient, topic: string, from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i += 20) {
    await Promise.all(Array.from({ length: Math.min(20, from + count - i) }, (_, j) => client.publish(topic, { n: i + j }, { key: `k${(i + j) % 17}` })));
  }
}

describe('consumer groups', () => {
  it('one broker: a second member takes half the partitions without a stop; each partition is handled by one member at a time, every message at least once, keys in order', async () => {
    const broker = await fixture.broker({ defaultPartitions: 6 });
    const publisher = await fixture.client([broker.url]);
    await publisher.publish('work', { n: -1 }, { key: 'warm' }); // creates the topic with its 6 partitions
    const watch = new GroupWatch();
    const a = await fixture.client([broker.url], { commit: { intervalMs: 20 } });
    const aView = ownedBy(a);
    await a.subscribe('work', watch.handler('a'), { group: 'billing', from: 'earliest' });
    await waitFor(() => aView.partitions.size === 6, 'a to own the 6 partitions');

    const publishing = publishKeyed(publisher, 'work', 0, 600);
    await waitFor(() => watch.handled.length >= 100, 'a to handle 100 messages');
    const b = await fixture.client([broker.url], { commit: { intervalMs: 20 } });
    const bView = ownedBy(b);
    await b.subscribe('work', watch.handler('b'), { group: 'billing', from: 'earliest' });
    await waitFor(() => aView.partitions.size === 3 && bView.partitions.size === 3, 'a and b to own 3 partitions each');
    await publishing;
    await waitFor(() => watch.distinct().size === 601, 'every message handled', 20_000);

    expect(watch.violations).toEqual([]);
    expect(new Set([...aView.partitions, ...bView.partitions]).size).toBe(6);
    expect(aView.revoked.every((e) => e.reason === 'rebalance')).toBe(true);
    expect(aView.revoked.flatMap((e) => e.partitions.map((p) => p.partition)).sort()).toEqual([...bView.partitions].sort());
    watch.checkKeyOrder();
    // A rebalance moves a partition only after its last handled message was committed: nothing is handled twice.
    expect(watch.handled.length).toBe(601);
  });

  it('three brokers, members on different brokers: a member that leaves hands its partitions over at once and the others continue', async () => {
    const brokers: Broker[] = await fixture.cluster(3, { replicationFactor: 3, prefix: 'g', defaultPartitions: 6 });
    const urls = brokers.map((b) => b.url);
    const publisher = await fixture.client(urls);
    await publisher.publish('jobs', { n: -1 }, { key: 'warm' });
    const watch = new GroupWatch();
    const members: RelayClient[] = [];
    const views: Array<ReturnType<typeof ownedBy>> = [];
    for (const [i, url] of urls.entries()) {
      const client = await fixture.client([url], { poolSize: 1, discovery: false, commit: { intervalMs: 20 } });
      views.push(ownedBy(client));
      await client.subscribe('jobs', watch.handler(`m${i}`), { group: 'workers', from: 'earliest' });
      members.push(client);
    }
    await waitFor(() => views.every((v) => v.partitions.size === 2), 'each of 3 members to own 2 partitions', 15_000);
    const publishing = publishKeyed(publisher, 'jobs', 0, 300);
    await waitFor(() => watch.handled.length >= 100, '100 messages handled', 15_000);
    await members[2]?.close();
    await waitFor(() => views[0]?.partitions.size === 3 && views[1]?.partitions.size === 3, 'the 2 others to own 3 partitions each', 15_000);
    await publishing;
    await waitFor(() => watch.distinct().size === 301, 'every message handled', 20_000);
    expect(watch.violations).toEqual([]);
    watch.checkKeyOrder();
  });

  it('a member whose session is gone loses its partitions after sessionTimeoutMs; its late commits are refused with FENCED', async () => {
    const broker = await fixture.broker({ defaultPartitions: 4 });
    const publisher = await fixture.client([broker.url]);
    await publisher.publish('tasks', { n: -1 });
    // A raw member that never heartbeats: the broker keeps its connection, the coordinator expires it.
    const raw = await RawClient.open(broker.url);
    raws.push(raw);
    raw.send({ type: 'subscribe', id: 1, subscription: 1, pattern: 'tasks', from: 'earliest', resume: [], credit: 10, group: 'g', member: 'silent', sessionTimeoutMs: 300 });
    await raw.next('subscribed');
    const first = await raw.next('assignment');
    expect(first.partitions).toHaveLength(4);
    const epoch = first.partitions[0]?.epoch as number;

    const watch = new GroupWatch();
    const live = await fixture.client([broker.url], { commit: { intervalMs: 20 } });
    const view = ownedBy(live);
    const joinedAt = Date.now();
    await live.subscribe('tasks', watch.handler('live'), { group: 'g', from: 'earliest', sessionTimeoutMs: 300 });
    await waitFor(() => view.partitions.size === 4, 'the live member to own all 4 partitions after the silent one expired', 5000);
    // Within the session timeout plus the coordinator's check interval and scheduling slack.
    expect(Date.now() - joinedAt).toBeLessThan(300 + 2000);

    raw.send({ type: 'group-commit', id: 2, group: 'g', member: 'silent', positions: [{ topic: 'tasks', partition: 0, offset: 1, epoch }] });
    expect(await raw.next('error')).toMatchObject({ id: 2, code: 'FENCED' });
    raw.send({ type: 'group-heartbeat', id: 3, group: 'g', member: 'silent' });
    expect(await raw.next('error')).toMatchObject({ id: 3, code: 'FENCED' });
  });

  it('the for-await form joins the group too: a member that leaves the loop hands its partitions over with its position', async () => {
    const broker = await fixture.broker({ defaultPartitions: 2 });
    const publisher = await fixture.client([broker.url]);
    for (let n = 0; n < 10; n++) await publisher.publish('feed', { n }, { key: `k${n}` });
    const a = await fixture.client([broker.url]);
    const seenByA: number[] = [];
    const stream = await a.subscribe<{ n: number }>('feed', { group: 'readers', from: 'earliest' });
    for await (const m of stream) {
      seenByA.push(m.data.n);
      if (seenByA.length === 10) break;
    }
    expect(seenByA.sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // a left the group on break, committing its position: b starts after it and sees only what is new.
    const b = await fixture.client([broker.url]);
    const seenByB: number[] = [];
    await b.subscribe('feed', (m: Message<{ n: number }>) => void seenByB.push(m.data.n), { group: 'readers', from: 'earliest' });
    await publisher.publish('feed', { n: 10 });
    await waitFor(() => seenByB.length > 0, 'b to get the new message');
    expect(seenByB).toEqual([10]);
  });

  it('group lag shows in /metrics and /api/cluster: committed position against partition end, per group and partition', async () => {
    const broker = await fixture.broker({ adminPort: 0 });
    const publisher = await fixture.client([broker.url]);
    for (let n = 0; n < 10; n++) await publisher.publish('lagging', { n });
    const member = await fixture.client([broker.url], { commit: { intervalMs: 0 } });
    let handled = 0;
    await member.subscribe('lagging', () => void handled++, { group: 'slow', from: 'earliest' });
    await waitFor(() => handled === 10, 'the member to handle the 10 messages');
    await member.close(); // leaves, committing position 10
    for (let n = 10; n < 14; n++) await publisher.publish('lagging', { n });
    const admin = broker.adminUrl as string;
    const lag = async (): Promise<number | undefined> => sample(parseMetrics((await get(`${admin}/metrics`)).body), 'relaymq_consumer_lag_messages', { kind: 'group', consumer: 'slow', topic: 'lagging', partition: '0' });
    expect(await lag()).toBe(4);
    const report = await getJson<{ consumers: Array<{ kind: string; consumer: string; lag: number; offset: number; end: number }> }>(`${admin}/api/cluster`);
    expect(report.consumers).toContainEqual(expect.objectContaining({ kind: 'group', consumer: 'slow', topic: 'lagging', partition: 0, offset: 10, end: 14, lag: 4 }));
  });

  it('refuses a group with a durable name, a member with another pattern, and a bad session timeout', async () => {
    const broker = await fixture.broker();
    const a = await fixture.client([broker.url]);
    const b = await fixture.client([broker.url]);
    await expect(a.subscribe('x.>', () => {}, { group: 'g', durable: 'd' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(a.subscribe('x.>', () => {}, { group: 'g', sessionTimeoutMs: 5 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await a.subscribe('x.>', () => {}, { group: 'g' });
    await expect(b.subscribe('y.>', () => {}, { group: 'g' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: /every member must subscribe with that pattern/ });
  });
});
