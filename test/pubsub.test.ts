import { afterEach, describe, expect, it } from 'vitest';
import { RelayError, createClient, type Message } from '@relaymq/sdk';
import { Fixture } from './support/cluster.js';
import { nextEvent, waitFor } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

/** Collects what a handler receives. */
function collector<T = unknown>(): { messages: Array<Message<T>>; handler: (m: Message<T>) => void } {
  const messages: Array<Message<T>> = [];
  return { messages, handler: (m) => void messages.push(m) };
}

describe('publish and subscribe over real sockets', () => {
  it('acks a publish with partition and offset, and delivers it to a subscriber', async () => {
    const broker = await fixture.broker();
    const client = await fixture.client([broker.url]);
    const { messages, handler } = collector();
    await client.subscribe('orders.created', handler);
    const receipt = await client.publish('orders.created', { id: 42 }, { headers: { trace: 't-1' }, key: 'c-7' });
    expect(receipt).toEqual({ topic: 'orders.created', partition: 0, offset: 0, duplicate: false });
    await waitFor(() => messages.length === 1, 'the message');
    expect(messages[0]).toMatchObject({ topic: 'orders.created', partition: 0, offset: 0, data: { id: 42 }, key: 'c-7', headers: { trace: 't-1' } });
  });

  it('delivers bytes as bytes and values as values', async () => {
    const broker = await fixture.broker();
    const client = await fixture.client([broker.url]);
    const { messages, handler } = collector();
    await client.subscribe('kinds', handler);
    await client.publish('kinds', new Uint8Array([1, 2, 3]));
    await client.publish('kinds', 'text');
    await client.publish('kinds', [1, { nested: true }, null]);
    await waitFor(() => messages.length === 3, 'three messages');
    expect(messages.map((m) => m.data)).toEqual([new Uint8Array([1, 2, 3]), 'text', [1, { nested: true }, null]]);
  });

  it('matches wildcards: * is one segment, > is the rest', async () => {
    const broker = await fixture.broker();
    const client = await fixture.client([broker.url]);
    const star = collector();
    const tail = collector();
    await client.subscribe('orders.*.created', star.handler);
    await client.subscribe('orders.>', tail.handler);
    for (const topic of ['orders.eu.created', 'orders.us.created', 'orders.eu.deleted', 'orders.eu.created.late', 'billing.eu.created']) {
      await client.publish(topic, topic);
    }
    await waitFor(() => tail.messages.length === 4, 'four messages under orders.>');
    await waitFor(() => star.messages.length === 2, 'two messages under orders.*.created');
    expect(star.messages.map((m) => m.topic).sort()).toEqual(['orders.eu.created', 'orders.us.created']);
    expect(tail.messages.map((m) => m.topic).sort()).toEqual(['orders.eu.created', 'orders.eu.created.late', 'orders.eu.deleted', 'orders.us.created']);
  });

  it('replays from earliest, from an offset and from a time, then continues live', async () => {
    const broker = await fixture.broker();
    const client = await fixture.client([broker.url]);
    for (let i = 0; i < 5; i++) await client.publish('replay', i);
    const cutoff = Date.now() + 1;
    await waitFor(() => Date.now() > cutoff, 'the clock to pass the cutoff', 1000);
    for (let i = 5; i < 10; i++) await client.publish('replay', i);

    const earliest = collector<number>();
    const fromOffset = collector<number>();
    const fromTime = collector<number>();
    const fromNew = collector<number>();
    await client.subscribe('replay', earliest.handler, { from: 'earliest' });
    await client.subscribe('replay', fromOffset.handler, { from: { offset: 7 } });
    await client.subscribe('replay', fromTime.handler, { from: { time: cutoff } });
    await client.subscribe('replay', fromNew.handler, { from: 'new' });
    await client.publish('replay', 10);

    await waitFor(() => earliest.messages.length === 11 && fromOffset.messages.length === 4 && fromTime.messages.length === 6, 'replays');
    await waitFor(() => fromNew.messages.length === 1, 'the live message');
    expect(earliest.messages.map((m) => m.data)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(fromOffset.messages.map((m) => m.data)).toEqual([7, 8, 9, 10]);
    expect(fromTime.messages.map((m) => m.data)).toEqual([5, 6, 7, 8, 9, 10]);
    expect(fromNew.messages.map((m) => m.data)).toEqual([10]);
  });

  it('routes by key: one key, one partition, in order; no key: round robin', async () => {
    const broker = await fixture.broker({ defaultPartitions: 4 });
    const client = await fixture.client([broker.url]);
    const keyed = await Promise.all(Array.from({ length: 20 }, (_, i) => client.publish('keyed', i, { key: 'customer-7' })));
    expect(new Set(keyed.map((r) => r.partition)).size).toBe(1);
    expect(keyed.map((r) => r.offset)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    const unkeyed = await Promise.all(Array.from({ length: 8 }, (_, i) => client.publish('unkeyed', i)));
    expect(unkeyed.map((r) => r.partition)).toEqual([0, 1, 2, 3, 0, 1, 2, 3]);
  });

  it('stops delivery on unsubscribe', async () => {
    const broker = await fixture.broker();
    const client = await fixture.client([broker.url]);
    const { messages, handler } = collector();
    const subscription = await client.subscribe('unsub', handler);
    await client.publish('unsub', 1);
    await waitFor(() => messages.length === 1, 'the first message');
    await subscription.unsubscribe();
    await waitFor(() => broker.stats().subscriptions === 0, 'the broker to drop the subscription');
    await client.publish('unsub', 2);
    // A second subscriber proves the message went out; the first must not see it.
    const witness = collector();
    await client.subscribe('unsub', witness.handler, { from: 'earliest' });
    await waitFor(() => witness.messages.length === 2, 'the witness to see both');
    expect(messages).toHaveLength(1);
  });

  it('offers an async-iterator form', async () => {
    const broker = await fixture.broker();
    const client = await fixture.client([broker.url]);
    for (let i = 0; i < 3; i++) await client.publish('iter', i);
    const stream = await client.subscribe<number>('iter', { from: 'earliest' });
    const seen: number[] = [];
    for await (const message of stream) {
      seen.push(message.data);
      if (seen.length === 3) break;
    }
    expect(seen).toEqual([0, 1, 2]);
    await waitFor(() => broker.stats().subscriptions === 0, 'break to unsubscribe');
  });

  it('rejects bad input with clear error codes', async () => {
    const broker = await fixture.broker();
    const client = await fixture.client([broker.url]);
    await expect(client.publish('orders.*', 1)).rejects.toMatchObject({ code: 'INVALID_TOPIC' });
    await expect(client.publish('', 1)).rejects.toMatchObject({ code: 'INVALID_TOPIC' });
    await expect(client.subscribe('a.>.b', () => {})).rejects.toMatchObject({ code: 'INVALID_TOPIC' });
    await expect(client.publish('big', new Uint8Array(2 * 1024 * 1024))).rejects.toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
    await expect(client.subscribe('x', () => {}, { from: { offset: -1 } })).rejects.toBeInstanceOf(RelayError);
    await expect(client.publish('maps', new Map([[1, 'one']]))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    // The client is still fine afterwards.
    await expect(client.publish('still.fine', 1)).resolves.toMatchObject({ offset: 0 });
  });

  it('close() flushes the outbox first', async () => {
    const broker = await fixture.broker();
    const client = await fixture.client([broker.url]);
    const pending = Array.from({ length: 500 }, (_, i) => client.publish('flush', i));
    await client.close();
    const receipts = await Promise.all(pending);
    expect(receipts).toHaveLength(500);
    expect(broker.engine.bounds('flush', 0).end).toBe(500);
    await expect(client.publish('flush', 'late')).rejects.toMatchObject({ code: 'CLIENT_CLOSED' });
  });

  it('createClient lets listeners see the first dial', async () => {
    const broker = await fixture.broker();
    const client = createClient({ brokers: [broker.url] });
    const seen: string[] = [];
    client.on('connecting', ({ url }) => seen.push(`connecting ${url}`));
    client.on('connected', ({ broker: b }) => seen.push(`connected ${b.id}`));
    await client.start();
    await client.close();
    expect(seen).toEqual([`connecting ${broker.url}`, 'connected b1']);
  });

  it('a stalled subscriber holds at most subscriptionCreditBytes of payload in flight, then gets the rest in order', async () => {
    const broker = await fixture.broker();
    const stalled = await fixture.client([broker.url], { subscriptionCreditBytes: 1000 });
    const seen: number[] = [];
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    await stalled.subscribe('bounded', async (m) => {
      await gate;
      seen.push(m.offset);
    }, { from: 'earliest' });
    // A second subscriber without a byte limit on the same broker: once it has every message, the broker has had its chance to send them all.
    const witness = await fixture.client([broker.url]);
    let witnessed = 0;
    await witness.subscribe('bounded', () => void witnessed++, { from: 'earliest' });
    const publisher = await fixture.client([broker.url]);
    await Promise.all(Array.from({ length: 50 }, () => publisher.publish('bounded', new Uint8Array(100))));
    await waitFor(() => witnessed === 50, 'the witness to get all 50');
    // 1000 bytes of credit: ten messages of 100 B, not the 50 that message credit (10,000 by default) would allow.
    await waitFor(() => broker.stats().delivered === 60, 'ten messages to reach the stalled subscriber');
    expect(broker.stats().delivered).toBe(60);
    release();
    await waitFor(() => seen.length === 50, 'the stalled subscriber to get the rest');
    expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(stalled.stats().subscribe.duplicatesDropped).toBe(0);
  });

  it('a subscriber that falls behind retention gets a gap event, then the retained messages', async () => {
    const broker = await fixture.broker({ retentionBytes: 2000 });
    const subscriber = await fixture.client([broker.url], { subscriptionCredit: 5 });
    const seen: number[] = [];
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    await subscriber.subscribe('retained', async (m) => {
      await gate;
      seen.push(m.offset);
    });
    const publisher = await fixture.client([broker.url]);
    await Promise.all(Array.from({ length: 5 }, () => publisher.publish('retained', new Uint8Array(100))));
    await waitFor(() => broker.stats().delivered === 5, 'the first five to reach the (stalled) subscriber');
    await Promise.all(Array.from({ length: 95 }, () => publisher.publish('retained', new Uint8Array(100))));
    expect(broker.engine.bounds('retained', 0)).toEqual({ start: 80, end: 100 });

    const gap = nextEvent(subscriber, 'gap');
    release();
    expect(await gap).toEqual({ topic: 'retained', partition: 0, expectedOffset: 5, firstAvailableOffset: 80 });
    await waitFor(() => seen.length === 25, 'the first five and the twenty retained');
    expect(seen).toEqual([0, 1, 2, 3, 4, ...Array.from({ length: 20 }, (_, i) => 80 + i)]);
    expect(subscriber.stats().subscribe.gaps).toBe(1);
  });
});
