import { afterEach, expect, it } from 'vitest';
import type { Broker, BrokerOptions } from '@relaymq/broker';
import type { Message } from '@relaymq/sdk';
import { Fixture } from './support/cluster.js';
import { engineBrokers, LONG, numberBatch as batch, publishNumbers, range } from './support/conformance.js';
import { describeEngines, type EngineContext } from './support/engines.js';
import { RawClient } from './support/raw-client.js';
import { waitFor, within } from './support/wait.js';

/**
 * The SDK's guarantees, written once and run against both engines (issue
 * 16): `[embedded]` is a 3-broker relaymq cluster (replication factor 3),
 * `[rabbitmq]` two or three gateways over a 3-node RabbitMQ streams cluster
 * (one per file, test/support/engines.ts). Every test talks to the brokers
 * only through the SDK or the wire protocol, so the engines cannot drift.
 * Failover, retention and ACLs are in conformance-failover.test.ts.
 */
const fixture = new Fixture();
afterEach(async () => {
  await fixture.cleanup();
}, 60_000);

const brokers = (context: () => EngineContext, count: number, options: BrokerOptions = {}): Promise<Broker[]> => engineBrokers(fixture, context, count, options);

describeEngines('conformance: order, idempotence, replay, durable positions', (_engine, context) => {
  it('keyed messages arrive once each in per-key order through another broker; offsets are dense per partition', async () => {
    const [b1, b2] = (await brokers(context, 2, { defaultPartitions: 3 })) as [Broker, Broker];
    const publisher = await fixture.client([b1.url], { discovery: false, ack: 'quorum' });
    const subscriber = await fixture.client([b2.url], { discovery: false });
    const received: Array<Message<{ key: string; n: number }>> = [];
    await subscriber.subscribe('orders.eu.paid', (m: Message<{ key: string; n: number }>) => void received.push(m), { from: 'earliest' });
    const keys = Array.from({ length: 6 }, (_, i) => `k${i}`);
    const total = 300;
    const acks = Array.from({ length: total }, (_, n) => publisher.publish('orders.eu.paid', { key: keys[n % keys.length], n }, { key: keys[n % keys.length] as string }));
    const results = await within(Promise.all(acks), 'every publish acknowledged', LONG);
    await waitFor(() => received.length >= total, `the subscriber to receive ${total} messages`, LONG);
    expect(received).toHaveLength(total);
    for (const key of keys) expect(received.filter((m) => m.data.key === key).map((m) => m.data.n)).toEqual(range(0, total).filter((n) => n % keys.length === keys.indexOf(key)));
    const byPartition = new Map<number, number[]>();
    for (const r of results) byPartition.set(r.partition, [...(byPartition.get(r.partition) ?? []), r.offset]);
    expect(byPartition.size).toBeGreaterThan(1);
    for (const offsets of byPartition.values()) expect(offsets).toEqual(range(0, offsets.length));
    // What each partition delivered is what was acknowledged there, in offset order.
    for (const [partition, offsets] of byPartition) expect(received.filter((m) => m.partition === partition).map((m) => m.offset)).toEqual(offsets);
  });

  it('offsets stay dense 0..n-1 while the log rolls over to new segments, and a subscriber sees no gap', async () => {
    // 4096-byte segments (the smallest allowed): 300 messages of 100 bytes fill several.
    const [b1, b2] = (await brokers(context, 2, { segmentBytes: 4096 })) as [Broker, Broker];
    const publisher = await fixture.client([b1.url], { discovery: false, ack: 'quorum' });
    const acked: number[] = [];
    for (let i = 0; i < 300; i += 20) acked.push(...(await Promise.all(Array.from({ length: 20 }, () => publisher.publish('rolling', new Uint8Array(100))))).map((r) => r.offset));
    expect(acked).toEqual(range(0, 300));
    const subscriber = await fixture.client([b2.url], { discovery: false });
    const gaps: unknown[] = [];
    subscriber.on('gap', (gap) => gaps.push(gap));
    const seen: number[] = [];
    await subscriber.subscribe('rolling', (m) => void seen.push(m.offset), { from: 'earliest' });
    await waitFor(() => seen.length >= 300, 'the 300 messages', LONG);
    expect(seen).toEqual(range(0, 300));
    expect(gaps).toEqual([]);
  });

  it('a (producer, seq) republished through another broker after a reconnect is stored once and answered with its original offsets', async () => {
    const [b1, b2] = (await brokers(context, 2)) as [Broker, Broker];
    const a = await RawClient.open(b1.url);
    fixture.defer(async () => a.close());
    a.send({ type: 'publish', batches: [batch(1, 0, 3, 'idem')] });
    expect((await a.next('ack', LONG)).acks).toMatchObject([{ id: 1, offset: 0, count: 3, duplicate: false }]);
    a.close();
    // Same producer id (the raw client's), reconnected to the other broker: seqs 0..2 again plus two new ones
    // (an embedded broker that is not the partition's leader adds a `leader` hint to its acks).
    const b = await RawClient.open(b2.url);
    fixture.defer(async () => b.close());
    b.send({ type: 'publish', batches: [batch(10, 0, 5, 'idem')] });
    expect((await b.next('ack', LONG)).acks).toMatchObject([
      { id: 10, offset: 0, count: 3, duplicate: true },
      { id: 13, offset: 3, count: 2, duplicate: false },
    ]);
    // Read back through a subscriber on the first broker: five messages, each once.
    const seen: Array<[number, number]> = [];
    const reader = await fixture.client([b1.url], { discovery: false });
    await reader.subscribe('idem', (m: Message<Uint8Array>) => void seen.push([m.offset, m.data[0] as number]), { from: 'earliest' });
    await waitFor(() => seen.length >= 5, 'the five stored messages', LONG);
    // One more publish: anything stored twice would have been delivered before it.
    b.send({ type: 'publish', batches: [batch(20, 5, 1, 'idem')] });
    await waitFor(() => seen.length >= 6, 'the sixth message', LONG);
    expect(seen).toEqual(range(0, 6).map((n) => [n, n]));
  });

  it('replays from an offset and from a time through a broker that did not store them', async () => {
    const [b1, b2] = (await brokers(context, 2)) as [Broker, Broker];
    const publisher = await fixture.client([b1.url], { discovery: false, ack: 'quorum' });
    const total = 60;
    await publishNumbers(publisher, 'replay', 30);
    // A boundary in time between n=29 and n=30 that both engines' clocks see.
    await new Promise((resolve) => setTimeout(resolve, 20));
    await publishNumbers(publisher, 'replay', 30, 30);
    const reader = await fixture.client([b2.url], { discovery: false });
    const all: Array<Message<number>> = [];
    await reader.subscribe('replay', (m: Message<number>) => void all.push(m), { from: 'earliest' });
    await waitFor(() => all.length >= total, 'a replay of everything', LONG);
    expect(all.map((m) => m.data)).toEqual(range(0, total));

    const fromOffset: number[] = [];
    await reader.subscribe('replay', (m: Message<number>) => void fromOffset.push(m.data), { from: { offset: 17 } });
    const time = (all[30] as Message<number>).timestamp;
    const expectedFirst = all.findIndex((m) => m.timestamp >= time);
    const fromTime: number[] = [];
    await reader.subscribe('replay', (m: Message<number>) => void fromTime.push(m.offset), { from: { time } });
    await waitFor(() => fromOffset.length >= total - 17 && fromTime.length >= total - expectedFirst, 'the replays from an offset and a time', LONG);
    expect(fromOffset).toEqual(range(17, total));
    expect(fromTime).toEqual(range(expectedFirst, total));
    // Live messages follow each replay with no gap and no duplicate at the seam.
    await publisher.publish('replay', total);
    await waitFor(() => fromOffset.at(-1) === total && fromTime.at(-1) === total, 'the live message after the replays', LONG);
    expect(fromOffset).toEqual(range(17, total + 1));
  });

  it('a durable subscription resumes on another broker right after the last message its handler took, while publishing goes on', async () => {
    const [b1, b2] = (await brokers(context, 2)) as [Broker, Broker];
    const publisher = await fixture.client([b1.url], { discovery: false, ack: 'quorum' });
    const total = 600;
    const first: number[] = [];
    const a = await fixture.client([b1.url], { poolSize: 1, discovery: false });
    await a.subscribe('ledger', (m: Message<number>) => void first.push(m.data), { durable: 'billing', from: 'earliest' });
    const publishing = publishNumbers(publisher, 'ledger', total);
    await waitFor(() => first.length >= 100, 'the first subscriber to handle 100 messages', LONG);
    await a.close(); // commits what the handler took
    const handledByFirst = first.length;
    const second: number[] = [];
    const b = await fixture.client([b2.url], { poolSize: 1, discovery: false });
    await b.subscribe('ledger', (m: Message<number>) => void second.push(m.data), { durable: 'billing', from: 'earliest' });
    await within(publishing, 'the publisher to finish', LONG);
    await waitFor(() => second.at(-1) === total - 1, 'the second subscriber to reach the end', LONG);
    expect(first).toHaveLength(handledByFirst);
    expect([...first, ...second]).toEqual(range(0, total));
    await b.close();
    expect(await b1.engine.positions('billing', 'ledger')).toEqual([{ topic: 'ledger', partition: 0, offset: total }]);
  });
});
