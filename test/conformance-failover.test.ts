import { afterEach, expect, it } from 'vitest';
import type { Broker, BrokerOptions } from '@relaymq/broker';
import { RelayError, type GapEvent, type Message } from '@relaymq/sdk';
import { Fixture } from './support/cluster.js';
import { engineBrokers, LONG, publishNumbers, range } from './support/conformance.js';
import { describeEngines, type EngineContext } from './support/engines.js';
import { streamLeader } from '../bench/rabbitmq.js';
import { rejection } from './support/rejection.js';
import { nextEvent, waitFor, waitForAsync, within } from './support/wait.js';

/**
 * The SDK's guarantees through failures, retention and ACLs, written once
 * and run against both engines (issue 16; the rest in conformance.test.ts):
 * `[embedded]` in-process brokers with their own log, `[rabbitmq]`
 * gateways over a 3-node RabbitMQ streams cluster (one per file).
 */
const fixture = new Fixture();
afterEach(async () => {
  await fixture.cleanup();
}, 60_000);

const brokers = (context: () => EngineContext, count: number, options: BrokerOptions = {}): Promise<Broker[]> => engineBrokers(fixture, context, count, options);

/**
 * Options under which retention removes old messages within a few hundred
 * 100-byte messages. Embedded in-memory brokers keep `retentionBytes` per
 * partition. A gateway keeps nothing: RabbitMQ deletes whole segments
 * (`segmentBytes` → `stream-max-segment-size-bytes`, 4096 at least) beyond
 * `retention.maxBytes` (`max-length-bytes`); the gateway's memory
 * (`retentionBytes`) is made tiny so older offsets are read from RabbitMQ,
 * which is where they are gone.
 */
const retaining = (engine: string): BrokerOptions =>
  engine === 'rabbitmq' ? { retention: { maxBytes: 8192 }, segmentBytes: 4096, retentionBytes: 64 } : { retentionBytes: 2000 };

const tokens = { 'token-of-alice': 'alice' };
const acl = {
  alice: {
    publish: { allow: ['orders.>'], deny: ['orders.internal.>'] },
    subscribe: { allow: ['orders.>'], deny: ['orders.internal.>'] },
  },
};

describeEngines('conformance: failover, retention gaps, ACLs', (engine, context) => {
  it('a handler gets every message exactly once, in order, while the broker its subscription uses is stopped', async () => {
    const [b1, b2, b3] = (await brokers(context, 3)) as [Broker, Broker, Broker];
    const publisher = await fixture.client([b3.url], { poolSize: 1, discovery: false, ack: 'quorum' });
    const received: number[] = [];
    const subscriber = await fixture.client([b1.url, b2.url], { poolSize: 2, discovery: false });
    await waitFor(() => subscriber.stats().connectedBrokers.length === 2, 'a warm standby', LONG);
    await subscriber.subscribe('moving', (m: Message<number>) => void received.push(m.data), { from: 'earliest' });
    const total = 1200;
    const publishing = publishNumbers(publisher, 'moving', total);
    await waitFor(() => received.length >= 300, 'the subscriber to handle 300 messages', LONG);
    const active = [b1, b2].find((b) => b.url === subscriber.stats().activeBroker?.url) as Broker;
    expect(active).toBeDefined();
    const failover = nextEvent(subscriber, 'failover', LONG);
    await active.close();
    expect((await failover).from.url).toBe(active.url);
    await within(publishing, 'the publisher to finish', LONG);
    await waitFor(() => received.length >= total, 'every message after the failover', LONG);
    // One more: a duplicate delivered late would show up before it.
    await publisher.publish('moving', total);
    await waitFor(() => received.at(-1) === total, 'the last message', LONG);
    expect(received).toEqual(range(0, total + 1));
  });

  it('what holds the partition fails mid-stream (embedded: its leader broker stops; rabbitmq: the stream leader node is SIGKILLed): every acknowledged message is delivered once, in order', { timeout: 90_000 }, async () => {
    const all = await brokers(context, 3);
    const [b1, b2, b3] = all as [Broker, Broker, Broker];
    // Each client lists every broker (its own first): the stopped embedded leader may be the one it uses.
    const publisher = await fixture.client([b1.url, b2.url, b3.url], { poolSize: 2, discovery: false, ack: 'quorum' });
    await publisher.publish('holder', 0);
    const received: number[] = [];
    const subscriber = await fixture.client([b2.url, b3.url, b1.url], { poolSize: 2, discovery: false });
    await subscriber.subscribe('holder', (m: Message<number>) => void received.push(m.data), { from: 'earliest' });
    const total = 900;
    const publishing = publishNumbers(publisher, 'holder', total - 1, 1);
    await waitFor(() => received.length >= 200, 'the subscriber to handle 200 messages', LONG);
    const rabbit = context().rabbit;
    if (rabbit === undefined) {
      // The partition's Raft leader, whichever broker it is.
      type Status = { group: string; role: string };
      const leader = all.find((b) => (b.engine as unknown as { groupStatus(): Status[] }).groupStatus().some((s) => s.group === 'p/holder/0' && s.role === 'leader'));
      await (leader as Broker).close();
    } else {
      const node = rabbit.nodes[await streamLeader(rabbit, 'holder')] as (typeof rabbit.nodes)[number];
      await node.kill('SIGKILL');
      fixture.defer(() => node.start());
    }
    await within(publishing, 'every publish acknowledged', 60_000);
    await waitFor(() => received.length >= total, 'every message delivered', 60_000);
    await publisher.publish('holder', total);
    await waitFor(() => received.at(-1) === total, 'the last message', LONG);
    expect(received).toEqual(range(0, total + 1));
  });

  it('a durable subscriber that fell behind retention gets a gap event, then every retained message in order', { timeout: 60_000 }, async () => {
    const [broker] = (await brokers(context, 1, retaining(engine.name))) as [Broker];
    const publisher = await fixture.client([broker.url], { discovery: false });
    const acked: number[] = [];
    const publish = async (count: number): Promise<void> => {
      for (let i = 0; i < count; i += 20) acked.push(...(await Promise.all(Array.from({ length: 20 }, () => publisher.publish('retained', new Uint8Array(100))))).map((r) => r.offset));
    };
    await publish(20);
    const a = await fixture.client([broker.url], { discovery: false });
    const first: number[] = [];
    await a.subscribe('retained', (m) => void first.push(m.offset), { durable: 'slow', from: 'earliest' });
    await waitFor(() => first.length === 20, 'the first twenty', LONG);
    await a.close();
    await publish(280);
    // Retention runs on its own schedule (RabbitMQ's when a segment rolls over): wait until offset 20 is gone.
    const firstReadable = async (): Promise<number> => (await broker.engine.read('retained', 0, 20, 1, 1 << 20))[0]?.offset ?? 0;
    await waitForAsync(async () => (await firstReadable()) > 20, 'retention to remove offset 20', 20_000);

    const b = await fixture.client([broker.url], { discovery: false });
    const gaps: GapEvent[] = [];
    b.on('gap', (gap) => gaps.push(gap));
    const second: number[] = [];
    await b.subscribe('retained', (m) => void second.push(m.offset), { durable: 'slow', from: 'earliest' });
    const last = acked.at(-1) as number;
    await waitFor(() => second.at(-1) === last, 'the retained messages', LONG);
    expect(gaps).toHaveLength(1);
    expect(gaps[0]).toEqual({ topic: 'retained', partition: 0, expectedOffset: 20, firstAvailableOffset: second[0], durable: 'slow' });
    expect(second[0]).toBeGreaterThan(20);
    // Every acknowledged message from the first retained one, each once, in order, with the offset it was acknowledged with:
    // offsets rise uniquely (RabbitMQ's have a hole at each new segment, which is no gap: one gap event, for retention).
    expect(acked.every((offset, i) => i === 0 || offset > (acked[i - 1] as number))).toBe(true);
    expect(second).toEqual(acked.filter((offset) => offset >= (second[0] as number)));
    expect(b.stats().subscribe.gaps).toBe(1);
  });

  it('ACLs: a denied publish fails FORBIDDEN and creates nothing, an allowed one is stored', async () => {
    const [broker] = (await brokers(context, 1, { auth: { tokens }, acl })) as [Broker];
    const alice = await fixture.client([broker.url], { discovery: false, token: 'token-of-alice' });
    expect((await rejection(alice.publish('payments.created', 1), RelayError)).code).toBe('FORBIDDEN');
    expect((await rejection(alice.publish('orders.internal.audit', 1), RelayError)).code).toBe('FORBIDDEN');
    await expect(alice.publish('orders.created', 2)).resolves.toMatchObject({ offset: 0 });
    expect(broker.engine.partitionCount('payments.created')).toBeUndefined();
    expect(broker.stats().security.denied).toBe(2);
  });

  it('ACLs: an exact subscription to a denied topic is refused, and a wildcard one never delivers it', async () => {
    const [broker] = (await brokers(context, 1, { auth: { tokens: { ...tokens, 'token-of-admin': 'admin' } }, acl: { ...acl, admin: { publish: { allow: ['>'] }, subscribe: { allow: ['>'] } } } })) as [
      Broker,
    ];
    const admin = await fixture.client([broker.url], { discovery: false, token: 'token-of-admin' });
    await admin.publish('orders.internal.audit', 'secret');
    await admin.publish('orders.created', 'public');
    const alice = await fixture.client([broker.url], { discovery: false, token: 'token-of-alice' });
    expect((await rejection(alice.subscribe('orders.internal.audit', () => undefined, { from: 'earliest' }), RelayError)).code).toBe('FORBIDDEN');
    const seen: Array<[string, unknown]> = [];
    await alice.subscribe('orders.>', (m) => void seen.push([m.topic, m.data]), { from: 'earliest' });
    await waitFor(() => seen.length >= 1, 'the allowed message', LONG);
    // Published after the subscription: a denied topic's live messages are not delivered either.
    await admin.publish('orders.internal.audit', 'secret 2');
    await admin.publish('orders.created', 'public 2');
    await waitFor(() => seen.length >= 2, 'the second allowed message', LONG);
    expect(seen).toEqual([
      ['orders.created', 'public'],
      ['orders.created', 'public 2'],
    ]);
  });
});
