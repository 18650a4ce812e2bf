/**
 * The SDK over a real socket to a broker double that speaks the protocol by
 * hand: a publish refused `RATE_LIMITED` (which a broker says before it hands
 * anything to its engine, so nothing was stored) and then, resent, refused
 * for good (`INVALID_PARTITION`: the partition went meanwhile) fails at once
 * with that refusal, not with `TIMEOUT` after the whole publish timeout.
 * A refusal that may come after a proposal (`NOT_READY` here) still keeps the
 * seq until the timeout: the earlier send may be stored.
 */
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { connect, RelayError, type RelayClient } from '@relaymq/sdk';
import { PROTOCOL_VERSION, decodeClientFrame, encodeFrame, type BrokerFrame, type ClientFrame, type ErrorCode } from '@relaymq/sdk/protocol';
import { rejection } from './support/rejection.js';

/** One publish as the double received it. */
interface Received {
  firstId: number;
  firstSeq: number;
  incarnation: number;
  count: number;
}

/**
 * A one-broker "cluster" on 127.0.0.1: welcomes, answers metadata (one
 * partition), and answers each publish batch with `refusal(n, batch)` (n:
 * the batches received before it) for every message in it, or acks it.
 */
async function brokerDouble(refusal: (n: number, batch: Received) => ErrorCode | undefined): Promise<{ url: string; publishes: Received[]; close(): Promise<void> }> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const publishes: Received[] = [];
  let offset = 0;
  server.on('connection', (ws: WebSocket) => {
    const send = (frame: BrokerFrame): void => ws.send(encodeFrame(frame));
    ws.on('message', (data: Buffer) => {
      const frame: ClientFrame = decodeClientFrame(data, 1024 * 1024);
      if (frame.type === 'hello') {
        send({
          type: 'welcome',
          version: PROTOCOL_VERSION,
          brokerId: 'double',
          clientId: frame.clientId,
          producerId: frame.producerId,
          cluster: { brokers: [{ id: 'double', url, state: 'alive' }] },
          limits: { maxPayload: 1024 * 1024, dedupeWindow: 16384, maxCredit: 10000 },
          heartbeatMs: 60_000,
        });
      } else if (frame.type === 'metadata') {
        send({ type: 'topics', id: frame.id, topics: frame.topics.map((topic) => ({ topic, partitions: 1 })) });
      } else if (frame.type === 'ping') {
        send({ type: 'pong', id: frame.id });
      } else if (frame.type === 'publish') {
        for (const b of frame.batches) {
          const received: Received = { firstId: b.firstId, firstSeq: b.firstSeq, incarnation: b.incarnation ?? 0, count: b.messages.length };
          const code = refusal(publishes.length, received);
          publishes.push(received);
          if (code === undefined) {
            send({ type: 'ack', acks: [{ id: b.firstId, offset, count: b.messages.length, duplicate: false }] });
            offset += b.messages.length;
          } else {
            b.messages.forEach((_, i) => send({ type: 'nack', id: b.firstId + i, code, message: `${code} (double)` }));
          }
        }
      }
    });
  });
  return {
    url,
    publishes,
    close: async () => {
      for (const ws of server.clients) ws.terminate();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function clientOf(url: string): Promise<RelayClient> {
  // The outbox keeps a timed-out publish (its outcome is unknown): close without waiting for it.
  const client = await connect({ brokers: [url], closeTimeoutMs: 0 });
  cleanups.push(() => client.close());
  return client;
}

describe('a validation refusal after earlier refusals, over a real socket', () => {
  it('fails at once when the only earlier send was refused RATE_LIMITED; the next publish starts a new incarnation', async () => {
    // Incarnation 0 is refused: over the rate first, then its partition is gone (a later incarnation is taken).
    const double = await brokerDouble((n, batch) => (n === 0 ? 'RATE_LIMITED' : batch.incarnation === 0 ? 'INVALID_PARTITION' : undefined));
    cleanups.push(() => double.close());
    const client = await clientOf(double.url);
    const startedAt = Date.now();
    const error = await rejection(client.publish('orders', { n: 1 }, { timeoutMs: 6000 }), RelayError);
    expect(error.code).toBe('INVALID_PARTITION');
    expect(Date.now() - startedAt).toBeLessThan(3000);
    expect(double.publishes.map((p) => [p.incarnation, p.firstSeq])).toEqual([[0, 0], [0, 0]]);
    // Seq 0 of incarnation 0 is never stored: what comes next is numbered afresh.
    await expect(client.publish('orders', { n: 2 }, { timeoutMs: 10_000 })).resolves.toMatchObject({ offset: 0 });
    expect(double.publishes.at(-1)).toMatchObject({ incarnation: 1, firstSeq: 0 });
  });

  it('keeps the seq until the timeout when the earlier send was refused NOT_READY, which may follow a proposal', async () => {
    const double = await brokerDouble((n) => (n === 0 ? 'NOT_READY' : 'INVALID_PARTITION'));
    cleanups.push(() => double.close());
    const client = await clientOf(double.url);
    const error = await rejection(client.publish('orders', { n: 1 }, { timeoutMs: 1500 }), RelayError);
    expect(error.code).toBe('TIMEOUT');
    expect(error.message).toContain('INVALID_PARTITION');
    expect(double.publishes.length).toBeGreaterThanOrEqual(2);
    expect(double.publishes.every((p) => p.incarnation === 0 && p.firstSeq === 0)).toBe(true);
  });
});
