import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import type { GapEvent, Message, RelayClient } from '@relaymq/sdk';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { RawClient } from './support/raw-client.js';
import { nextEvent, waitFor, within } from './support/wait.js';

const fixture = new Fixture();
const raws: RawClient[] = [];
afterEach(async () => {
  for (const raw of raws.splice(0)) raw.close();
  await fixture.cleanup();
});

async function raw(broker: Broker): Promise<RawClient> {
  const client = await RawClient.open(broker.url);
  raws.push(client);
  return client;
}

/** In-process brokers, three replicas per partition: with three every broker hosts everything, with five only some. */
async function cluster(count = 3): Promise<Broker[]> {
  return fixture.cluster(count, { replicationFactor: 3, prefix: 'd' });
}

type GroupStatus = { group: string; role: string; leader: string | null };

/** The first of `brokers` holding no replica of `topic`'s partition 0 (there is one only when the cluster is larger than the replication factor). */
const outsider = (brokers: Broker[], topic: string): Broker | undefined =>
  brokers.find((b) => !(b.engine as unknown as { groupStatus(): GroupStatus[] }).groupStatus().some((s) => s.group === `p/${topic}/0`));

/** The broker leading a Raft group (`meta` or `p/<topic>/<partition>`), once one is elected. */
async function leaderOf(brokers: Broker[], group: string): Promise<Broker> {
  let leader: Broker | undefined;
  await waitFor(() => {
    leader = brokers.find((b) =>
      (b.engine as unknown as { groupStatus(): GroupStatus[] }).groupStatus().some((s) => s.group === group && s.role === 'leader'),
    );
    return leader !== undefined;
  }, `a leader of ${group}`);
  return leader as Broker;
}

/**
 * Publishes the numbers `0 … count-1` to `topic` in order, a few at a time,
 * yielding between rounds so subscribers restart while it runs.
 */
async function publishNumbers(client: RelayClient, topic: string, count: number): Promise<void> {
  for (let i = 0; i < count; i += 20) {
    await Promise.all(Array.from({ length: Math.min(20, count - i) }, (_, j) => client.publish(topic, i + j)));
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

/**
 * A durable subscriber restarted mid-stream: client A handles part of the
 * stream and closes; client B, with the same durable name (and `from:
 * earliest`, which a stored position overrides), must continue exactly after
 * A's last handled message. `between` runs while no subscriber is up.
 */
async function restartMidStream(
  firstBrokers: string[],
  secondBrokers: () => string[],
  publisherBrokers: string[],
  between: () => Promise<void> = async () => {},
): Promise<{ first: number[]; second: number[] }> {
  const total = 1500;
  const publisher = await fixture.client(publisherBrokers);
  const first: number[] = [];
  const a = await fixture.client(firstBrokers, { poolSize: 1, discovery: false });
  await a.subscribe('ledger', (m: Message<number>) => void first.push(m.data), { durable: 'billing', from: 'earliest' });
  const publishing = publishNumbers(publisher, 'ledger', total);
  await waitFor(() => first.length >= 300, 'the first subscriber to handle 300 messages');
  await a.close();
  const handledByFirst = first.length;
  await between();

  const second: number[] = [];
  const b = await fixture.client(secondBrokers(), { poolSize: 1, discovery: false });
  await b.subscribe('ledger', (m: Message<number>) => void second.push(m.data), { durable: 'billing', from: 'earliest' });
  await within(publishing, 'the publisher to finish', 20_000);
  await waitFor(() => second.at(-1) === total - 1, 'the second subscriber to reach the end', 20_000);
  // Nothing was handled by A after its close.
  expect(first).toHaveLength(handledByFirst);
  expect([...first, ...second]).toEqual(range(0, total));
  await b.close(); // commits the final positions
  return { first, second };
}

describe('durable subscriptions on a standalone broker', () => {
  it('a restarted subscriber resumes exactly after its last handled message while the stream goes on', async () => {
    const broker = await fixture.broker();
    const { first } = await restartMidStream([broker.url], () => [broker.url], [broker.url]);
    expect(await broker.engine.positions('billing', 'ledger')).toEqual([{ topic: 'ledger', partition: 0, offset: 1500 }]);
    expect(first.length).toBeGreaterThanOrEqual(300);
  });

  it('commits in batches, not per message', async () => {
    const broker = await fixture.broker();
    const publisher = await fixture.client([broker.url]);
    const client = await fixture.client([broker.url], { commit: { intervalMs: 60_000, maxMessages: 250 } });
    const seen: number[] = [];
    await client.subscribe('batched', (m: Message<number>) => void seen.push(m.data), { durable: 'batcher' });
    const startCommits = client.stats().subscribe.commits; // where it starts, stored at once
    await publishNumbers(publisher, 'batched', 1000);
    await waitFor(() => seen.length === 1000, 'all 1000 messages');
    await waitFor(() => client.stats().subscribe.commits === startCommits + 4, 'four commits of 250 messages each');
    expect(await broker.engine.positions('batcher', '>')).toEqual([{ topic: 'batched', partition: 0, offset: 1000 }]);
  });

  it('stores where a new durable subscription starts, so a restart before its first message misses nothing', async () => {
    const broker = await fixture.broker();
    const publisher = await fixture.client([broker.url]);
    await publisher.publish('late', 'before');
    const a = await fixture.client([broker.url]);
    await a.subscribe('late', () => {}, { durable: 'starter' }); // from: 'new'
    await a.close();
    await publisher.publish('late', 'while down');
    const b = await fixture.client([broker.url]);
    const seen: string[] = [];
    await b.subscribe('late', (m: Message<string>) => void seen.push(m.data), { durable: 'starter' });
    await waitFor(() => seen.length === 1, 'the message published while no subscriber ran');
    expect(seen).toEqual(['while down']);
  });

  it('unsubscribe commits too, and a durable stream resumes after the last message the loop took', async () => {
    const broker = await fixture.broker();
    const publisher = await fixture.client([broker.url]);
    await publishNumbers(publisher, 'streamed', 10);
    const client = await fixture.client([broker.url]);
    const stream = await client.subscribe<number>('streamed', { durable: 'reader', from: 'earliest' });
    const taken: number[] = [];
    for await (const message of stream) {
      taken.push(message.data);
      if (taken.length === 4) break;
    }
    const seen: number[] = [];
    const again = await client.subscribe('streamed', (m: Message<number>) => void seen.push(m.data), { durable: 'reader', from: 'earliest' });
    await waitFor(() => seen.length === 6, 'the other six');
    expect([...taken, ...seen]).toEqual(range(0, 10));
    await again.unsubscribe();
    expect(await broker.engine.positions('reader', 'streamed')).toEqual([{ topic: 'streamed', partition: 0, offset: 10 }]);
  });

  it('positions never go back: a stale commit is ignored', async () => {
    const broker = await fixture.broker();
    const publisher = await fixture.client([broker.url]);
    await publishNumbers(publisher, 'stale', 20);
    const client = await raw(broker);
    client.send({ type: 'commit', id: 1, durable: 'billing', positions: [{ topic: 'stale', partition: 0, offset: 12 }] });
    expect(await client.next('committed')).toEqual({ type: 'committed', id: 1 });
    client.send({ type: 'commit', id: 2, durable: 'billing', positions: [{ topic: 'stale', partition: 0, offset: 3 }] });
    expect(await client.next('committed')).toEqual({ type: 'committed', id: 2 });
    client.send({ type: 'subscribe', id: 3, subscription: 1, pattern: 'stale', from: 'earliest', resume: [], credit: 100, durable: 'billing' });
    const subscribed = await client.next('subscribed');
    expect(subscribed.cursors).toEqual([{ topic: 'stale', partition: 0, offset: 12 }]);
    expect((await client.next('message')).batches[0]?.firstOffset).toBe(12);
  });

  it('refuses commits for topics or partitions that do not exist, and bad durable names', async () => {
    const broker = await fixture.broker({ defaultPartitions: 2 });
    const publisher = await fixture.client([broker.url]);
    await publisher.publish('exists', 1);
    const client = await raw(broker);
    client.send({ type: 'commit', id: 1, durable: 'd', positions: [{ topic: 'missing', partition: 0, offset: 1 }] });
    expect(await client.next('error')).toMatchObject({ id: 1, code: 'INVALID_TOPIC' });
    client.send({ type: 'commit', id: 2, durable: 'd', positions: [{ topic: 'exists', partition: 2, offset: 1 }] });
    expect(await client.next('error')).toMatchObject({ id: 2, code: 'INVALID_PARTITION' });
    expect(await broker.engine.positions('d', '>')).toEqual([]);

    const sdk = await fixture.client([broker.url]);
    await expect(sdk.subscribe('exists', () => {}, { durable: 'no spaces' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(sdk.subscribe('exists', () => {}, { durable: 'x'.repeat(129) })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await sdk.subscribe('exists', () => {}, { durable: 'once' });
    await expect(sdk.subscribe('exists', () => {}, { durable: 'once' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('two clients with the same durable name both receive every message and share the positions', async () => {
    const broker = await fixture.broker();
    const publisher = await fixture.client([broker.url]);
    const seen: number[][] = [[], []];
    for (const list of seen) {
      const client = await fixture.client([broker.url], { commit: { intervalMs: 0, maxMessages: 1 } });
      await client.subscribe('shared', (m: Message<number>) => void list.push(m.data), { durable: 'twins' });
    }
    await publishNumbers(publisher, 'shared', 50);
    await waitFor(() => seen.every((list) => list.length === 50), 'both clients to receive all 50');
    expect(seen[0]).toEqual(range(0, 50));
    expect(seen[1]).toEqual(range(0, 50));
    await fixture.cleanup();
    expect(await broker.engine.positions('twins', 'shared')).toEqual([{ topic: 'shared', partition: 0, offset: 50 }]);
  });
});

describe('gap events when retention removed what a subscriber needed', () => {
  it('a durable subscriber that falls behind retention gets a typed gap event, then the retained messages', async () => {
    const broker = await fixture.broker({ retentionBytes: 2000 });
    const publisher = await fixture.client([broker.url]);
    const publish = (count: number): Promise<unknown> => Promise.all(Array.from({ length: count }, () => publisher.publish('retained', new Uint8Array(100))));
    await publish(5);
    const a = await fixture.client([broker.url]);
    const first: number[] = [];
    await a.subscribe('retained', (m) => void first.push(m.offset), { durable: 'slow', from: 'earliest' });
    await waitFor(() => first.length === 5, 'the first five');
    await a.close();
    await publish(95);
    expect(broker.engine.bounds('retained', 0)).toEqual({ start: 80, end: 100 });

    const b = await fixture.client([broker.url]);
    const gaps: GapEvent[] = [];
    b.on('gap', (gap) => gaps.push(gap));
    const second: number[] = [];
    await b.subscribe('retained', (m) => void second.push(m.offset), { durable: 'slow', from: 'earliest' });
    await waitFor(() => second.length === 20, 'the twenty retained messages');
    expect(gaps).toEqual([{ topic: 'retained', partition: 0, expectedOffset: 5, firstAvailableOffset: 80, durable: 'slow' }]);
    expect(second).toEqual(range(80, 100));
    expect(b.stats().subscribe.gaps).toBe(1);
  });

  it('an explicit from offset that retention removed is reported as a gap, not skipped silently', async () => {
    const broker = await fixture.broker({ retentionBytes: 1000 });
    const publisher = await fixture.client([broker.url]);
    await Promise.all(Array.from({ length: 30 }, () => publisher.publish('trimmed', new Uint8Array(100))));
    const client = await fixture.client([broker.url]);
    const gap = nextEvent(client, 'gap');
    const seen: number[] = [];
    await client.subscribe('trimmed', (m) => void seen.push(m.offset), { from: { offset: 7 } });
    expect(await gap).toEqual({ topic: 'trimmed', partition: 0, expectedOffset: 7, firstAvailableOffset: 20 });
    await waitFor(() => seen.length === 10, 'the retained ten');
    expect(seen).toEqual(range(20, 30));
  });
});

describe('replay', () => {
  it('replays from earliest, an offset and a time, then continues live with no gap and no duplicate at the seam', async () => {
    const broker = await fixture.broker();
    const publisher = await fixture.client([broker.url]);
    const total = 3000;
    const publishing = publishNumbers(publisher, 'seam', total);
    await waitFor(() => broker.engine.bounds('seam', 0).end >= 1000, 'a thousand stored messages');
    const subscriber = await fixture.client([broker.url], { subscriptionCredit: 64 });
    const earliest: number[] = [];
    const fromOffset: number[] = [];
    const fromTime: number[] = [];
    await subscriber.subscribe('seam', (m: Message<number>) => void earliest.push(m.data), { from: 'earliest' });
    await subscriber.subscribe('seam', (m: Message<number>) => void fromOffset.push(m.data), { from: { offset: 500 } });
    await subscriber.subscribe('seam', (m: Message<number>) => void fromTime.push(m.data), { from: { time: 0 } });
    // Still being published while the replays catch up.
    expect(broker.engine.bounds('seam', 0).end).toBeLessThan(total);
    await within(publishing, 'the publisher to finish', 20_000);
    await waitFor(() => earliest.length >= total && fromOffset.length >= total - 500 && fromTime.length >= total, 'every replay to reach the end');
    expect(earliest).toEqual(range(0, total));
    expect(fromOffset).toEqual(range(500, total));
    expect(fromTime).toEqual(range(0, total));
  });
});

for (const count of [3, 5]) {
  describe(`durable subscriptions in a ${count}-broker cluster (replication factor 3)`, () => {
    it('a restarted subscriber resumes exactly after its last handled message, on another broker, after the metadata leader died', async () => {
      const brokers = await cluster(count);
      const metaLeader = await leaderOf(brokers, 'meta');
      const others = brokers.filter((b) => b !== metaLeader);
      await restartMidStream(
        [metaLeader.url],
        // A broker hosting no replica of the partition when there is one: it reads it from a replica.
        () => [(outsider(others, 'ledger') ?? others[0])?.url as string],
        others.map((b) => b.url),
        async () => {
          // The position was committed through the leader that now goes away.
          await metaLeader.close();
        },
      );
      const survivors = await leaderOf(others, 'meta');
      expect(await survivors.engine.positions('billing', 'ledger')).toEqual([{ topic: 'ledger', partition: 0, offset: 1500 }]);
    });

    it('replicates positions: a commit on one broker is read on every other, and a stale commit on another broker is ignored', async () => {
      const brokers = await cluster(count);
      const [d1, d2, d3] = brokers as [Broker, Broker, Broker];
      const publisher = await fixture.client(brokers.map((b) => b.url));
      await publishNumbers(publisher, 'replicated', 40);
      const one = await raw(d1);
      one.send({ type: 'commit', id: 1, durable: 'audit', positions: [{ topic: 'replicated', partition: 0, offset: 30 }] });
      expect(await one.next('committed')).toEqual({ type: 'committed', id: 1 });
      const two = await raw(d2);
      two.send({ type: 'commit', id: 1, durable: 'audit', positions: [{ topic: 'replicated', partition: 0, offset: 10 }] });
      expect(await two.next('committed')).toEqual({ type: 'committed', id: 1 });
      for (const b of brokers) expect(await b.engine.positions('audit', 'replicated')).toEqual([{ topic: 'replicated', partition: 0, offset: 30 }]);

      const seen: number[] = [];
      const client = await fixture.client([(outsider(brokers, 'replicated') ?? d3).url], { poolSize: 1, discovery: false });
      await client.subscribe('replicated', (m: Message<number>) => void seen.push(m.data), { durable: 'audit', from: 'earliest' });
      await waitFor(() => seen.length === 10, 'the ten after the committed position');
      expect(seen).toEqual(range(30, 40));
    });

    it('a live durable subscriber keeps its positions through a failover of its broker', async () => {
      const brokers = await cluster(count);
      const [d1, d2, d3] = brokers as [Broker, Broker, Broker];
      const publisher = await fixture.client([d3.url], { poolSize: 1, discovery: false });
      const first: number[] = [];
      const a = await fixture.client([d1.url, d2.url], { poolSize: 2, discovery: false, commit: { intervalMs: 50, maxMessages: 100 } });
      await a.subscribe('moving', (m: Message<number>) => void first.push(m.data), { durable: 'mover', from: 'earliest' });
      const publishing = publishNumbers(publisher, 'moving', 1500);
      await waitFor(() => first.length >= 300, 'the subscriber to handle 300 messages');
      const active = brokers.find((b) => b.url === a.stats().activeBroker?.url) as Broker;
      const failover = nextEvent(a, 'failover');
      await active.close();
      await failover;
      const handledBefore = first.length;
      await waitFor(() => first.length >= handledBefore + 300, 'the subscriber to go on after the failover', 20_000);
      await a.close();

      const second: number[] = [];
      const b = await fixture.client([(outsider(brokers.filter((x) => x !== active), 'moving') ?? d3).url], { poolSize: 1, discovery: false });
      await b.subscribe('moving', (m: Message<number>) => void second.push(m.data), { durable: 'mover', from: 'earliest' });
      await within(publishing, 'the publisher to finish', 20_000);
      await waitFor(() => second.at(-1) === 1499, 'the restarted subscriber to reach the end', 20_000);
      expect([...first, ...second]).toEqual(range(0, 1500));
    });
  });
}

describe('durable subscriptions in a three-broker cluster', () => {
  it('positions survive a restart of every broker (metadata log on disk)', async () => {
    const root = await mkdtemp(join(tmpdir(), 'relaymq-durable-'));
    fixture.defer(() => rm(root, { recursive: true, force: true }));
    const ids = ['p1', 'p2', 'p3'];
    const peerPorts = await freePorts(3);
    const peers = ids.map((id, i) => `${id}@127.0.0.1:${peerPorts[i]}`);
    const start = (): Promise<Broker[]> =>
      Promise.all(
        ids.map((id, i) => fixture.broker({ id, peerPort: peerPorts[i], peers: peers.filter((_, j) => j !== i), dataDir: join(root, id) })),
      );
    let brokers = await start();
    const publisher = await fixture.client(brokers.map((b) => b.url));
    await publishNumbers(publisher, 'kept', 100);
    const first: number[] = [];
    const a = await fixture.client(brokers.map((b) => b.url));
    await a.subscribe('kept', (m: Message<number>) => void first.push(m.data), { durable: 'keeper', from: 'earliest' });
    await waitFor(() => first.length === 100, 'the first hundred');
    await a.close();
    await publishNumbers(publisher, 'kept', 50);
    await publisher.close();
    await Promise.all(brokers.map((b) => b.close()));

    brokers = await start();
    const second: number[] = [];
    const b = await fixture.client(brokers.map((x) => x.url));
    await b.subscribe('kept', (m) => void second.push(m.offset), { durable: 'keeper', from: 'earliest' });
    await waitFor(() => second.length >= 50, 'the fifty published after the commit', 20_000);
    expect(second).toEqual(range(100, 150));
  });
});
