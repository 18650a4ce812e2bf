import { createRequire } from 'node:module';
import { afterEach, describe, expect, it } from 'vitest';
import { applyClientCompat } from './compat.js';

interface HeartbeatClass {
  new (connection: unknown, logger: unknown): { interval: number; idleCounter: number; MAX_HEARTBEATS_MISSED: number; lastMessageSent: Date; lastMessageReceived: Date; heartbeat(): Promise<void> };
}

describe('the stream client with the compat patches (compat.ts)', () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
  afterEach(() => void process.off('unhandledRejection', onUnhandled));

  it('a heartbeat whose write to a reset connection fails (ECONNRESET) destroys the socket instead of rejecting unhandled (which ends the process)', async () => {
    applyClientCompat();
    process.on('unhandledRejection', onUnhandled);
    const { Heartbeat } = createRequire(import.meta.url)('rabbitmq-stream-js-client/dist/heartbeat.js') as { Heartbeat: HeartbeatClass };
    const destroyed: unknown[] = [];
    const reset = Object.assign(new Error('write ECONNRESET'), { code: 'ECONNRESET' });
    const connection = {
      send: async () => Promise.reject(reset),
      close: async () => undefined,
      socket: { destroy: (err: unknown) => void destroyed.push(err) },
    };
    const logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
    const beat = new Heartbeat(connection, logger);
    // Nothing sent for a while: this beat writes a heartbeat, and the write fails.
    beat.lastMessageSent = beat.lastMessageReceived = new Date(Date.now() - 60_000);
    beat.interval = 1_000;
    // The client calls it from a timer and drops the promise, as here.
    void beat.heartbeat();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(destroyed).toEqual([reset]);
    expect(unhandled).toEqual([]);
  });

  it('a delivery whose credit request cannot be written (EPIPE: the socket closing under it) does not reject unhandled', async () => {
    applyClientCompat();
    process.on('unhandledRejection', onUnhandled);
    const { Client } = createRequire(import.meta.url)('rabbitmq-stream-js-client/dist/client.js') as {
      Client: { prototype: { getDeliverV1Callback(this: unknown, connectionId: string): (response: unknown) => Promise<void> } };
    };
    const epipe = Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });
    // The client's delivery handler asks for credit first; on a closing socket that write fails.
    const client = { handleDelivery: async () => Promise.reject(epipe) };
    const deliver = Client.prototype.getDeliverV1Callback.call(client, 'connection-1');
    // The socket decoder calls it and drops the promise, as here.
    void deliver({ messages: [], subscriptionId: 1 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(unhandled).toEqual([]);
  });
});
