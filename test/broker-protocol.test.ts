import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import { encodeValue, type PublishBatch } from '@relaymq/sdk/protocol';
import { Fixture } from './support/cluster.js';
import { RawClient } from './support/raw-client.js';
import { waitFor } from './support/wait.js';

const fixture = new Fixture();
const raws: RawClient[] = [];
afterEach(async () => {
  for (const raw of raws.splice(0)) raw.close();
  await fixture.cleanup();
});

async function raw(broker: Broker, hello = true, options: { answerPings?: boolean } = {}): Promise<RawClient> {
  const client = await RawClient.open(broker.url, hello, options);
  raws.push(client);
  return client;
}

/** A batch of `count` one-byte messages with ids from `firstId` and seqs from `firstSeq`. */
const batch = (firstId: number, firstSeq: number, count = 1, topic = 'idem'): PublishBatch => ({
  topic,
  partition: 0,
  ack: 'quorum',
  firstId,
  firstSeq,
  messages: Array.from({ length: count }, (_, i) => ({ data: new Uint8Array([firstSeq + i]) })),
});

describe('broker: idempotent publish', () => {
  it('answers a republished seq with the original offset and duplicate: true', async () => {
    const broker = await fixture.broker();
    const client = await raw(broker);
    client.send({ type: 'publish', batches: [batch(1, 0, 2)] });
    expect((await client.next('ack')).acks).toEqual([{ id: 1, offset: 0, count: 2, duplicate: false }]);
    client.send({ type: 'publish', batches: [batch(3, 0, 3)] });
    expect((await client.next('ack')).acks).toEqual([
      { id: 3, offset: 0, count: 2, duplicate: true },
      { id: 5, offset: 2, count: 1, duplicate: false },
    ]);
    expect(broker.engine.bounds('idem', 0).end).toBe(3);
  });

  it('refuses a gap in seq with SEQUENCE_GAP and the expected seq', async () => {
    const broker = await fixture.broker();
    const client = await raw(broker);
    client.send({ type: 'publish', batches: [batch(1, 0), batch(2, 5)] });
    expect((await client.next('ack')).acks).toEqual([{ id: 1, offset: 0, count: 1, duplicate: false }]);
    expect(await client.next('nack')).toMatchObject({ id: 2, code: 'SEQUENCE_GAP', expectedSeq: 1 });
    expect(broker.engine.bounds('idem', 0).end).toBe(1);
  });

  it('keeps producers apart: the same seq from another producer is new', async () => {
    const broker = await fixture.broker();
    const a = await raw(broker);
    const b = await RawClient.open(broker.url, false);
    raws.push(b);
    b.send({ type: 'hello', version: 1, clientId: 'b', producerId: 'other-producer' });
    await b.next('welcome');
    a.send({ type: 'publish', batches: [batch(1, 0)] });
    await a.next('ack');
    b.send({ type: 'publish', batches: [batch(1, 0)] });
    expect((await b.next('ack')).acks).toEqual([{ id: 1, offset: 1, count: 1, duplicate: false }]);
  });

  it('refuses a partition the topic does not have', async () => {
    const broker = await fixture.broker({ defaultPartitions: 2 });
    const client = await raw(broker);
    client.send({ type: 'publish', batches: [{ ...batch(1, 0), partition: 2 }] });
    expect(await client.next('nack')).toMatchObject({ id: 1, code: 'INVALID_PARTITION' });
  });
});

describe('broker: hostile input closes only the offending connection', () => {
  it('closes on undecodable bytes with PROTOCOL_ERROR; other clients go on', async () => {
    const broker = await fixture.broker();
    const bystander = await fixture.client([broker.url]);
    const received: unknown[] = [];
    await bystander.subscribe('calm', (m) => void received.push(m.data));

    const attacker = await raw(broker);
    attacker.sendBytes(new Uint8Array([0xc1, 0xff, 0x00]));
    expect(await attacker.next('error')).toMatchObject({ code: 'PROTOCOL_ERROR' });
    expect(await attacker.waitClosed()).toMatchObject({ code: 1002, reason: 'PROTOCOL_ERROR' });

    await bystander.publish('calm', 'still here');
    await waitFor(() => received.length === 1, 'the bystander to get its message');
  });

  it('rejects frames that decode but are not valid frames', async () => {
    const broker = await fixture.broker();
    const cases: unknown[] = [
      { type: 'publish', batches: 'nope' },
      { type: 'publish', batches: [{ ...batch(1, 0), topic: 'has.*.wildcard' }] },
      { type: 'publish', batches: [batch(1, 0, 6000), batch(6001, 6000, 6000)] }, // over 10,000 messages in one frame
      { type: 'subscribe', id: 1, subscription: 1, pattern: 'a..b', from: 'new', resume: [], credit: 1 },
      { type: 'launch-missiles' },
      [1, 2, 3],
    ];
    for (const frame of cases) {
      const attacker = await raw(broker);
      attacker.sendBytes(encodeValue(frame));
      expect(await attacker.next('error')).toMatchObject({ code: 'PROTOCOL_ERROR' });
      await attacker.waitClosed();
    }
    expect(broker.stats().connections).toBe(0);
  });

  it('enforces maxPayload before decoding (close 1009)', async () => {
    const broker = await fixture.broker({ maxPayload: 64 * 1024 });
    const bystander = await fixture.client([broker.url]);
    const attacker = await raw(broker);
    attacker.sendBytes(new Uint8Array(64 * 1024 + 1));
    expect((await attacker.waitClosed()).code).toBe(1009);
    await expect(bystander.publish('ok', 1)).resolves.toMatchObject({ offset: 0 });
  });

  it('refuses text frames, a missing hello, a second hello and a wrong version', async () => {
    const broker = await fixture.broker({ helloTimeoutMs: 100 });
    const text = await raw(broker);
    text.sendBytes('hello?');
    expect(await text.next('error')).toMatchObject({ code: 'PROTOCOL_ERROR' });

    const silent = await raw(broker, false);
    expect(await silent.next('error')).toMatchObject({ code: 'UNAUTHORIZED' });
    await silent.waitClosed();

    const twice = await raw(broker);
    twice.send({ type: 'hello', version: 1, clientId: 'x', producerId: 'y' });
    expect(await twice.next('error')).toMatchObject({ code: 'PROTOCOL_ERROR' });

    const future = await raw(broker, false);
    future.send({ type: 'hello', version: 99, clientId: 'x', producerId: 'y' });
    expect(await future.next('error')).toMatchObject({ code: 'UNSUPPORTED_VERSION' });
  });

  it('drops a client that stops answering pings', async () => {
    const broker = await fixture.broker({ heartbeatMs: 50 });
    const client = await raw(broker, true, { answerPings: false });
    expect(await client.next('ping')).toMatchObject({ type: 'ping' });
    // Never answer: after two intervals of silence the broker hangs up.
    await client.waitClosed(2000);
    expect(broker.stats().connections).toBe(0);
  });
});

describe('broker: credit-based flow control', () => {
  it('never sends past the credit, so a stalled subscriber costs no broker memory', async () => {
    const broker = await fixture.broker();
    const subscriber = await raw(broker);
    subscriber.send({ type: 'subscribe', id: 1, subscription: 7, pattern: 'flow', from: 'earliest', resume: [], credit: 10 });
    await subscriber.next('subscribed');
    const publisher = await fixture.client([broker.url]);
    const payload = new Uint8Array(1024);
    await Promise.all(Array.from({ length: 2000 }, () => publisher.publish('flow', payload)));

    const delivered = (): number =>
      subscriber.frames.reduce((n, f) => n + (f.type === 'message' ? f.batches.reduce((m, b) => m + b.messages.length, 0) : 0), 0);
    await waitFor(() => delivered() === 10, 'the first 10 messages');
    // The broker holds no queue for the subscriber: nothing pending on its socket.
    await waitFor(() => broker.stats().outboundBytes === 0, 'the socket to drain');
    expect(broker.stats().delivered).toBe(10);

    subscriber.send({ type: 'credit', subscription: 7, credit: 25 });
    await waitFor(() => delivered() === 35, '25 more messages');
    const offsets = subscriber.frames.flatMap((f) =>
      f.type === 'message' ? f.batches.flatMap((b) => b.messages.map((_, i) => b.firstOffset + i)) : [],
    );
    expect(offsets).toEqual(Array.from({ length: 35 }, (_, i) => i));
  });

  it('a slow SDK subscriber receives everything in order while the broker stays bounded', async () => {
    const broker = await fixture.broker();
    const client = await fixture.client([broker.url], { subscriptionCredit: 20 });
    const seen: number[] = [];
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    await client.subscribe('slow', async (m) => {
      await gate;
      seen.push(m.data as number);
    });
    const publisher = await fixture.client([broker.url]);
    await Promise.all(Array.from({ length: 3000 }, (_, i) => publisher.publish('slow', i)));
    await waitFor(() => broker.stats().delivered === 20, 'the credit window to be used');
    expect(broker.stats().delivered).toBe(20);
    release();
    await waitFor(() => seen.length === 3000, 'all 3000 messages', 15_000);
    expect(seen).toEqual(Array.from({ length: 3000 }, (_, i) => i));
  });
});
