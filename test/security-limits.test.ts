import net from 'node:net';
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import { RelayError, createClient, type Message } from '@relaymq/sdk';
import { encodeFrame, type PublishBatch } from '@relaymq/sdk/protocol';
import { Fixture } from './support/cluster.js';
import { RawClient } from './support/raw-client.js';
import { nextEvent, waitFor, within } from './support/wait.js';

const fixture = new Fixture();
const raws: RawClient[] = [];
afterEach(async () => {
  for (const raw of raws.splice(0)) raw.close();
  await fixture.cleanup();
});

async function raw(b: Broker, hello = true, ws: WebSocket.ClientOptions = {}): Promise<RawClient> {
  const client = await RawClient.open(b.url, hello, { ws });
  raws.push(client);
  return client;
}

const batch = (firstId: number, firstSeq: number, count: number, topic = 'rate'): PublishBatch => ({
  topic,
  partition: 0,
  ack: 'quorum',
  firstId,
  firstSeq,
  messages: Array.from({ length: count }, () => ({ data: new Uint8Array([1]) })),
});

describe('connection limits', () => {
  it('refuses connections beyond maxConnections with LIMIT_EXCEEDED, and admits again once one left', async () => {
    const b = await fixture.broker({ maxConnections: 2 });
    const first = await raw(b);
    await raw(b);
    const third = await raw(b, false);
    expect(await third.next('error')).toMatchObject({ code: 'LIMIT_EXCEEDED', message: expect.stringMatching(/maxConnections/) });
    expect((await third.waitClosed()).reason).toBe('LIMIT_EXCEEDED');
    expect(b.stats().security.connectionsRejected).toBe(1);
    first.close();
    await waitFor(() => b.stats().connections === 1, 'the first connection to be gone');
    await raw(b); // welcomed
  });

  it('counts connections per IP address (maxConnectionsPerIp)', async () => {
    const b = await fixture.broker({ maxConnectionsPerIp: 2, maxConnections: 100 });
    await raw(b);
    await raw(b);
    const third = await raw(b, false);
    expect(await third.next('error')).toMatchObject({ code: 'LIMIT_EXCEEDED', message: expect.stringMatching(/maxConnectionsPerIp/) });
    // Another loopback address (Linux routes all of 127/8 to lo) is a different client.
    const other = await raw(b, true, { localAddress: '127.0.0.2' });
    expect(other.closed).toBeUndefined();
    expect(b.stats().connections).toBe(3);
  });

  it('the SDK reports LIMIT_EXCEEDED on a refused dial', async () => {
    const b = await fixture.broker({ maxConnections: 1 });
    await raw(b);
    const client = createClient({ brokers: [b.url], poolSize: 1, discovery: false, reconnect: { initialDelayMs: 50, maxDelayMs: 100 } });
    const failure = nextEvent(client, 'reconnecting', 5000);
    void client.start().catch(() => {});
    try {
      expect((await failure).error.code).toBe('LIMIT_EXCEEDED');
    } finally {
      await client.close();
    }
    expect(b.stats().security.connectionsRejected).toBeGreaterThanOrEqual(1);
  });
});

describe('connections that never become WebSockets', () => {
  it('drops a TCP connection that sends no upgrade request within helloTimeoutMs, and answers plain HTTP with 426', async () => {
    const b = await fixture.broker({ helloTimeoutMs: 300 });
    const socket = net.connect(b.port, '127.0.0.1');
    socket.on('error', () => {});
    const closedAt = await within(new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now()))), 'the idle socket to be dropped', 5000);
    expect(closedAt).toBeGreaterThan(0);
    const response = await fetch(`http://127.0.0.1:${b.port}/`);
    expect(response.status).toBe(426);
  });
});

describe('subscription limit', () => {
  it('refuses subscriptions beyond maxSubscriptionsPerConnection with LIMIT_EXCEEDED', async () => {
    const b = await fixture.broker({ maxSubscriptionsPerConnection: 2 });
    const client = await fixture.client([b.url], { poolSize: 1 });
    await client.subscribe('a', () => {});
    const second = await client.subscribe('b.*', () => {});
    const err = await client.subscribe('c', () => {}).then(
      () => undefined,
      (e: unknown) => e as RelayError,
    );
    expect(err?.code).toBe('LIMIT_EXCEEDED');
    expect(b.stats().security.subscriptionsRejected).toBe(1);
    await second.unsubscribe();
    await expect(client.subscribe('c', () => {})).resolves.toBeDefined();
  });
});

describe('publish rate limit', () => {
  it('nacks batches over the rate with RATE_LIMITED, retriable; the connection stays open', async () => {
    const b = await fixture.broker({ publishRateLimit: 10, publishBurst: 5 });
    const client = await raw(b);
    client.send({ type: 'publish', batches: [batch(1, 0, 5)] });
    expect((await client.next('ack')).acks).toEqual([{ id: 1, offset: 0, count: 5, duplicate: false }]);
    client.send({ type: 'publish', batches: [batch(6, 5, 5)] });
    const nack = await client.next('nack');
    expect(nack).toMatchObject({ id: 6, code: 'RATE_LIMITED' });
    expect(new RelayError('RATE_LIMITED', '').retriable).toBe(true);
    expect(client.closed).toBeUndefined();
    expect(b.stats().security.rateLimited).toBe(1);
  });

  it('the SDK paces itself through RATE_LIMITED: every publish is stored once, in order', async () => {
    const b = await fixture.broker({ publishRateLimit: 400, publishBurst: 40 });
    const client = await fixture.client([b.url], { poolSize: 1 });
    const received: number[] = [];
    await client.subscribe('paced', (m: Message) => void received.push(m.data as number), { from: 'earliest' });
    const started = Date.now();
    const offsets: number[] = [];
    // Three rounds of 120: the first passes on the burst (a batch larger than the burst runs the bucket
    // into debt), each later one waits until the debt is repaid at 400/s.
    for (let round = 0; round < 3; round++) {
      const receipts = await within(Promise.all(Array.from({ length: 120 }, (_, i) => client.publish('paced', round * 120 + i))), `round ${round}`, 15_000);
      offsets.push(...receipts.map((r) => r.offset));
    }
    expect(offsets).toEqual(Array.from({ length: 360 }, (_, i) => i));
    expect(Date.now() - started).toBeGreaterThanOrEqual(500); // (360 - 40) / 400 per second, less the last round's debt
    expect(b.stats().security.rateLimited).toBeGreaterThan(0);
    await waitFor(() => received.length === 360, 'every message delivered');
    expect(received).toEqual(Array.from({ length: 360 }, (_, i) => i));
  });
});

describe('slow consumers', () => {
  it('cuts off a subscriber that stops reading, with SLOW_CONSUMER, instead of queueing for it', async () => {
    const b = await fixture.broker({ outboundHighWaterBytes: 64 * 1024, slowConsumerTimeoutMs: 300, retentionBytes: 256 * 1024 * 1024 });
    const stuck = await raw(b);
    stuck.send({ type: 'subscribe', id: 1, subscription: 1, pattern: 'firehose', from: 'earliest', credit: 1_000_000, resume: [] });
    await stuck.next('subscribed');
    stuck.ws.pause(); // reads nothing from now on: the kernel buffers fill, then the broker's queue
    const healthy = await fixture.client([b.url], { poolSize: 1 });
    let healthyReceived = 0;
    await healthy.subscribe('firehose', () => void healthyReceived++, { from: 'earliest' });
    const chunk = new Uint8Array(64 * 1024);
    let sent = 0;
    // Publish until the broker gives up on the stuck subscriber (bounded: at most 64 MiB).
    while (b.stats().security.slowConsumersCut === 0 && sent < 1024) {
      await Promise.all(Array.from({ length: 16 }, () => healthy.publish('firehose', chunk)));
      sent += 16;
    }
    // Publishing may outrun the timer: the stuck subscriber stays at the high-water mark either way.
    await waitFor(() => b.stats().security.slowConsumersCut === 1, 'the stuck subscriber to be cut off');
    await waitFor(() => b.stats().connections === 1, 'the stuck connection to be dropped');
    expect(b.stats().maxConnectionOutboundBytes).toBeLessThan(64 * 1024 + 2 * 1024 * 1024);
    await waitFor(() => healthyReceived === sent, 'the healthy subscriber to get everything');
    stuck.ws.resume();
    const closed = await stuck.waitClosed();
    expect(['SLOW_CONSUMER', '']).toContain(closed.reason); // the close frame may be lost behind the unread backlog
  });

  it('rejects maxOutboundBytes below outboundHighWaterBytes + maxPayload', async () => {
    await expect(fixture.broker({ outboundHighWaterBytes: 4096, maxPayload: 4096, maxOutboundBytes: 8000 })).rejects.toThrow(/maxOutboundBytes must be at least/);
  });
});

describe('max payload', () => {
  it('closes a connection that sends a frame over maxPayload (1009), before decoding it', async () => {
    const b = await fixture.broker({ maxPayload: 4096 });
    const client = await raw(b);
    client.ws.send(encodeFrame({ type: 'publish', batches: [{ ...batch(1, 0, 1, 'big'), messages: [{ data: new Uint8Array(8192) }] }] }));
    expect((await client.waitClosed()).code).toBe(1009);
    expect(b.engine.partitionCount('big')).toBeUndefined();
  });
});
