import { afterEach, expect, it } from 'vitest';
import type { Broker, BrokerOptions } from '@relaymq/broker';
import type { Message } from '@relaymq/sdk';
import type { PublishBatch } from '@relaymq/sdk/protocol';
import { Fixture } from './support/cluster.js';
import { describeEngines, type EngineContext, type EngineUnderTest } from './support/engines.js';
import { freePorts } from './support/ports.js';
import { range } from './support/conformance.js';
import { RawClient } from './support/raw-client.js';
import { waitFor, within } from './support/wait.js';

/**
 * The SDK's guarantees, written once and run against both engines
 * (`[embedded]`: a two-broker Raft cluster; `[rabbitmq]`: two gateways over
 * a 3-node RabbitMQ): per-partition order, idempotent republish through
 * another broker, replay by offset and time, durable resume on another
 * broker, consumer groups across brokers, offsets across segment rolls.
 * The engines cannot drift apart. Failover, retention gaps and ACLs are in
 * conformance-failover.test.ts.
 */
const fixture = new Fixture();
afterEach(() => fixture.cleanup(), 60_000);

const batch = (firstId: number, firstSeq: number, count: number, topic: string): PublishBatch => ({
  topic,
  partition: 0,
  ack: 'quorum',
  firstId,
  firstSeq,
  messages: Array.from({ length: count }, (_, i) => ({ data: new Uint8Array([firstSeq + i]) })),
});

describeEngines('SDK guarantees', (engine: EngineUnderTest, context: () => EngineContext) => {
  /** Two brokers that gossip: an embedded cluster replicating everything to both, or two gateways over the RabbitMQ. */
  async function gateways(count: number, options: BrokerOptions = {}): Promise<Broker[]> {
    if (engine.name === 'embedded') return fixture.cluster(count, { ...options, replicationFactor: count, prefix: 'g' });
    const ids = Array.from({ length: count }, (_, i) => `g${i + 1}`);
    const peerPorts = await freePorts(count);
    const peers = ids.map((id, i) => `${id}@127.0.0.1:${peerPorts[i]}`);
    const backbone = context().brokerOptions.backbone as NonNullable<BrokerOptions['backbone']>;
    return Promise.all(
      ids.map((id, i) =>
        fixture.broker({ ...options, id, peerPort: peerPorts[i], peers: peers.filter((_, j) => j !== i), backbone: { ...backbone, requestTimeoutMs: 20_000 } }),
      ),
    );
  }

  it('SDK publish and subscribe through two brokers: keyed messages arrive once each, in per-key order, offsets dense per partition', async () => {
    const [g1, g2] = (await gateways(2, { defaultPartitions: 3 })) as [Broker, Broker];
    const publisher = await fixture.client([g1.url], { discovery: false, ack: 'quorum' });
    const subscriber = await fixture.client([g2.url], { discovery: false });
    const received: Array<Message<{ key: string; n: number }>> = [];
    await subscriber.subscribe('orders.eu.paid', (m: Message<{ key: string; n: number }>) => void received.push(m), { from: 'earliest' });
    const keys = Array.from({ length: 6 }, (_, i) => `k${i}`);
    const total = 300;
    const acks = [];
    for (let n = 0; n < total; n++) acks.push(publisher.publish('orders.eu.paid', { key: keys[n % keys.length], n }, { key: keys[n % keys.length] as string }));
    const results = await within(Promise.all(acks), 'every publish acknowledged', 30_000);
    await waitFor(() => received.length >= total, `the subscriber to receive ${total} messages`, 30_000);
    expect(received).toHaveLength(total);
    for (const key of keys) {
      const ns = received.filter((m) => m.data.key === key).map((m) => m.data.n);
      expect(ns).toEqual([...ns].sort((a, b) => a - b));
      expect(ns).toHaveLength(total / keys.length);
    }
    // Per partition, the acknowledged offsets are 0..n-1: the stream's dense offsets.
    const byPartition = new Map<number, number[]>();
    for (const r of results) byPartition.set(r.partition, [...(byPartition.get(r.partition) ?? []), r.offset]);
    expect(byPartition.size).toBeGreaterThan(1);
    for (const offsets of byPartition.values()) expect([...offsets].sort((a, b) => a - b)).toEqual(offsets.map((_, i) => i));
  });

  it('offsets rise uniquely while the log rolls over to new segments (embedded: dense 0..n-1), every message arrives once with its acknowledged offset, and a subscriber sees no gap', async () => {
    // 4096-byte segments (the smallest allowed): 300 messages of 100 bytes fill several.
    const [g1, g2] = (await gateways(2, { segmentBytes: 4096 })) as [Broker, Broker];
    const publisher = await fixture.client([g1.url], { discovery: false, ack: 'quorum' });
    const acked: number[] = [];
    for (let i = 0; i < 300; i += 20) acked.push(...(await Promise.all(Array.from({ length: 20 }, () => publisher.publish('rolling', new Uint8Array(100))))).map((r) => r.offset));
    expect(acked).toHaveLength(300);
    expect(acked.every((offset, i) => i === 0 || offset > (acked[i - 1] as number))).toBe(true);
    // RabbitMQ starts each segment with a tracking chunk that takes an offset: holes, never reported as gaps.
    if (engine.name === 'embedded') expect(acked).toEqual(range(0, 300));
    else expect(acked.at(-1)).toBeGreaterThan(299);
    const subscriber = await fixture.client([g2.url], { discovery: false });
    const gaps: unknown[] = [];
    subscriber.on('gap', (gap) => gaps.push(gap));
    const seen: number[] = [];
    await subscriber.subscribe('rolling', (m) => void seen.push(m.offset), { from: 'earliest' });
    await waitFor(() => seen.length >= 300, 'the 300 messages', 30_000);
    expect(seen).toEqual(acked);
    expect(gaps).toEqual([]);
  });

  it('a republished (producer, seq) is stored once: answered duplicate with its offset, through the same and another broker, and no false gap back on the first', async () => {
    const [g1, g2] = (await gateways(2)) as [Broker, Broker];
    const a = await RawClient.open(g1.url);
    fixture.defer(async () => a.close());
    await a.whenReady(); // a new cluster: until its broker knows a metadata leader, a publish may be refused NOT_READY
    a.send({ type: 'publish', batches: [batch(1, 0, 3, 'idem')] });
    expect((await a.next('ack', 20_000)).acks).toMatchObject([{ id: 1, offset: 0, count: 3, duplicate: false }]);
    a.send({ type: 'publish', batches: [batch(4, 1, 3, 'idem')] });
    expect((await a.next('ack', 20_000)).acks).toMatchObject([
      { id: 4, offset: 1, count: 2, duplicate: true },
      { id: 6, offset: 3, count: 1, duplicate: false },
    ]);
    a.close();
    // The producer fails over to the other gateway and republishes everything: nothing is stored twice.
    const b = await RawClient.open(g2.url);
    fixture.defer(async () => b.close());
    b.send({ type: 'publish', batches: [batch(10, 0, 5, 'idem')] });
    expect((await b.next('ack', 20_000)).acks).toMatchObject([
      { id: 10, offset: 0, count: 4, duplicate: true },
      { id: 14, offset: 4, count: 1, duplicate: false },
    ]);
    // A seq that skips ahead is refused, as by the embedded engines.
    b.send({ type: 'publish', batches: [batch(20, 9, 1, 'idem')] });
    expect(await b.next('nack', 20_000)).toMatchObject({ id: 20, code: 'SEQUENCE_GAP', expectedSeq: 5 });
    b.close();
    // Seq 5 is the next, not a gap, back on the first broker, whose own count of this producer is stale (it last
    // saw seq 3).
    const c = await RawClient.open(g1.url);
    fixture.defer(async () => c.close());
    c.send({ type: 'publish', batches: [batch(30, 5, 1, 'idem')] });
    expect((await c.next('ack', 20_000)).acks).toMatchObject([{ id: 30, offset: 5, count: 1, duplicate: false }]);
    const read = await g1.engine.read('idem', 0, 0, 100, 1 << 20);
    expect(read.map((m) => [m.offset, m.data[0]])).toEqual([[0, 0], [1, 1], [2, 2], [3, 3], [4, 4], [5, 5]]);
    expect((await g2.engine.currentBounds('idem', 0)).end).toBe(6);
  });

  it('replays from an offset and from a time (64 bytes of memory per partition: older messages come from the log)', async () => {
    // 64 bytes of memory per partition: replays must read the stream.
    const [g1, g2] = (await gateways(2, engine.name === 'rabbitmq' ? { retentionBytes: 64 } : {})) as [Broker, Broker];
    const publisher = await fixture.client([g1.url], { discovery: false, ack: 'quorum' });
    const total = 40;
    const timestamps: number[] = [];
    for (let n = 0; n < total; n++) {
      await publisher.publish('replay', { n, pad: 'x'.repeat(20) });
      if (n === 19) await new Promise((resolve) => setTimeout(resolve, 20)); // a time boundary between n=19 and n=20
    }
    const all: Array<Message<{ n: number }>> = [];
    const reader = await fixture.client([g2.url], { discovery: false });
    await reader.subscribe('replay', (m: Message<{ n: number }>) => void all.push(m), { from: 'earliest' });
    await waitFor(() => all.length >= total, 'a replay of everything', 20_000);
    expect(all.map((m) => m.offset)).toEqual(all.map((_, i) => i));
    for (const m of all) timestamps.push(m.timestamp);

    const fromOffset: number[] = [];
    await reader.subscribe('replay', (m: Message<{ n: number }>) => void fromOffset.push(m.data.n), { from: { offset: 7 } });
    await waitFor(() => fromOffset.length >= total - 7, 'a replay from offset 7', 20_000);
    expect(fromOffset).toEqual(Array.from({ length: total - 7 }, (_, i) => i + 7));

    const time = timestamps[20] as number;
    const expectedFirst = timestamps.findIndex((t) => t >= time);
    const fromTime: number[] = [];
    await reader.subscribe('replay', (m: Message<{ n: number }>) => void fromTime.push(m.offset), { from: { time } });
    await waitFor(() => fromTime.length >= total - expectedFirst, 'a replay from a time', 20_000);
    expect(fromTime[0]).toBe(expectedFirst);
    expect(fromTime).toEqual(Array.from({ length: total - expectedFirst }, (_, i) => i + expectedFirst));
  });

  it('a durable subscription resumes on another broker right after the last handled message', async () => {
    const [g1, g2] = (await gateways(2)) as [Broker, Broker];
    const publisher = await fixture.client([g1.url], { discovery: false, ack: 'quorum' });
    await Promise.all(Array.from({ length: 100 }, (_, n) => publisher.publish('ledger', n)));
    const first: number[] = [];
    const a = await fixture.client([g1.url], { discovery: false });
    await a.subscribe('ledger', (m: Message<number>) => void first.push(m.data), { durable: 'billing', from: 'earliest' });
    await waitFor(() => first.length >= 30, 'the first subscriber to handle 30 messages', 20_000);
    await a.close();
    await Promise.all(Array.from({ length: 50 }, (_, n) => publisher.publish('ledger', 100 + n)));
    const second: number[] = [];
    const b = await fixture.client([g2.url], { discovery: false });
    await b.subscribe('ledger', (m: Message<number>) => void second.push(m.data), { durable: 'billing', from: 'earliest' });
    await waitFor(() => first.length + second.length >= 150, 'the second subscriber to handle the rest', 20_000);
    expect([...first, ...second]).toEqual(Array.from({ length: 150 }, (_, n) => n));
  });

  it('consumer groups through two brokers: members share the partitions, every message handled once, keys in order, the rest handed over when a member leaves', async () => {
    const [g1, g2] = (await gateways(2, { defaultPartitions: 4 })) as [Broker, Broker];
    const publisher = await fixture.client([g1.url], { discovery: false, ack: 'quorum' });
    const handled: Array<{ member: string; key: string; n: number; partition: number }> = [];
    const handler = (member: string) => (m: Message<{ key: string; n: number }>) => void handled.push({ member, ...m.data, partition: m.partition });
    const a = await fixture.client([g1.url], { discovery: false });
    const b = await fixture.client([g2.url], { discovery: false });
    await a.subscribe('jobs', handler('a'), { group: 'workers', from: 'earliest' });
    await b.subscribe('jobs', handler('b'), { group: 'workers', from: 'earliest' });
    const keys = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7'];
    await Promise.all(Array.from({ length: 160 }, (_, n) => publisher.publish('jobs', { key: keys[n % keys.length], n }, { key: keys[n % keys.length] as string })));
    await waitFor(() => new Set(handled.map((h) => h.n)).size >= 160, 'the group to handle 160 messages', 30_000);
    // Both members got partitions, and no partition was handled by both at once (each message once here: nobody failed).
    expect(new Set(handled.map((h) => h.member))).toEqual(new Set(['a', 'b']));
    expect(handled).toHaveLength(160);
    for (const key of keys) {
      const ns = handled.filter((h) => h.key === key).map((h) => h.n);
      expect(ns).toEqual([...ns].sort((x, y) => x - y));
    }
    await a.close();
    await Promise.all(Array.from({ length: 40 }, (_, n) => publisher.publish('jobs', { key: keys[n % keys.length], n: 160 + n }, { key: keys[n % keys.length] as string })));
    await waitFor(() => new Set(handled.map((h) => h.n)).size >= 200, 'the remaining member to handle the rest', 30_000);
    expect(handled.filter((h) => h.n >= 160).every((h) => h.member === 'b')).toBe(true);
  });
});
