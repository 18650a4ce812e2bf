import { EventEmitter } from 'node:events';
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

  it('a handshake whose write fails (EPIPE: the server closed a connection it found too slow) fails the connect instead of rejecting unhandled', async () => {
    applyClientCompat();
    process.on('unhandledRejection', onUnhandled);
    const { Connection } = createRequire(import.meta.url)('rabbitmq-stream-js-client/dist/connection.js') as {
      Connection: { prototype: { registerSocketListeners(this: unknown): Promise<unknown> } };
    };
    const epipe = Object.assign(new Error('write EPIPE'), { code: 'EPIPE', syscall: 'write' });
    // A socket that connected, and whose writes fail: the server closed it before the client's first handshake write.
    const socket = Object.assign(new EventEmitter(), {
      destroyed: false,
      write: (_body: unknown, done: (err?: Error) => void) => void setImmediate(() => done(epipe)),
      destroy(this: EventEmitter & { destroyed: boolean }, err?: Error) {
        this.destroyed = true;
        if (err !== undefined) this.emit('error', err);
        this.emit('close', err !== undefined);
      },
    });
    const logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
    const connection = Object.assign(Object.create(Connection.prototype) as object, {
      params: { hostname: '127.0.0.1', port: 1, vhost: '/' },
      logger,
      socket,
      waitingResponses: [],
      receivedResponses: [],
      correlationId: 0,
      bufferSizeSettings: {},
      frameMax: 1_048_576,
      heartbeat: { reportLastMessageSent: () => undefined, reportLastMessageReceived: () => undefined, started: false },
    });
    const connecting = Connection.prototype.registerSocketListeners.call(connection);
    socket.emit('connect');
    // Unpatched, the failure went unhandled and the connect waited for ever.
    const outcome = await Promise.race([connecting.then(() => 'connected', (err: unknown) => err), new Promise((resolve) => setTimeout(() => resolve('still connecting'), 2000))]);
    expect(outcome).toMatchObject({ code: 'NOT_READY', cause: epipe });
    expect(unhandled).toEqual([]);
  });

  it('a request whose write fails (EPIPE) fails NOT_READY, as on a closed connection, not with the bare socket error no caller retries', async () => {
    applyClientCompat();
    const { Connection } = createRequire(import.meta.url)('rabbitmq-stream-js-client/dist/connection.js') as {
      Connection: { prototype: { sendAndWait(this: unknown, cmd: unknown): Promise<unknown> } };
    };
    const epipe = Object.assign(new Error('write EPIPE'), { code: 'EPIPE', syscall: 'write' });
    const refused = new Error('Declare Consumer command returned error with code 6 - Stream not available');
    const connection = (write: (body: unknown, done: (err?: Error) => void) => void, answer: () => Promise<unknown>): object =>
      Object.assign(Object.create(Connection.prototype) as object, {
        params: { hostname: '127.0.0.1', port: 1, vhost: '/' },
        logger: { debug: () => undefined },
        socket: { destroyed: false, write },
        correlationId: 0,
        bufferSizeSettings: {},
        frameMax: 1_048_576,
        waitResponse: answer,
      });
    const cmd = { key: 0x0d, responseKey: 0x800d, toBuffer: () => Buffer.alloc(8) };
    const failedWrite = connection((_body, done) => void setImmediate(() => done(epipe)), async () => undefined);
    await expect(Connection.prototype.sendAndWait.call(failedWrite, cmd)).rejects.toMatchObject({ name: 'RelayError', code: 'NOT_READY', cause: epipe });
    // The server's own refusal is an answer, not a lost connection: it stays as it was.
    const answered = connection((_body, done) => void setImmediate(() => done()), async () => Promise.reject(refused));
    await expect(Connection.prototype.sendAndWait.call(answered, cmd)).rejects.toBe(refused);
  });
});
