import net from 'node:net';
import fc from 'fast-check';
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import type { Message } from '@relaymq/sdk';
import { PROTOCOL_VERSION, encodeFrame, encodeValue } from '@relaymq/sdk/protocol';
import { Fixture } from './support/cluster.js';
import { waitFor, within } from './support/wait.js';

/**
 * Hostile input against a running broker over real sockets: random,
 * oversized, deeply nested and truncated frames, then a connection flood —
 * while a well-behaved client publishes and subscribes. Reproduce a failure
 * with FUZZ_SEED=<seed printed in the error>.
 */

const MAX_PAYLOAD = 64 * 1024;
const HOSTILE_CONNECTIONS = 150;
const FRAMES_PER_CONNECTION = 20; // 3000 frames in all
const PARALLEL = 15;
const FLOOD_CONNECTIONS = 300;
/** TCP connections that never become WebSockets (silence, or garbage instead of an HTTP upgrade). */
const RAW_TCP_CONNECTIONS = 100;
/** Most messages the well-behaved client publishes; it publishes until the attacks are over. */
const MAX_GOOD_MESSAGES = 50_000;

const fixture = new Fixture();
const sockets = new Set<WebSocket>();
afterEach(async () => {
  for (const ws of sockets) ws.terminate();
  sockets.clear();
  await fixture.cleanup();
});

const clientTypes = ['hello', 'publish', 'subscribe', 'credit', 'unsubscribe', 'metadata', 'ping', 'pong', 'bogus'];

/** msgpack header bytes nested `depth` times around nil: arrays, or single-entry maps. */
function nested(depth: number, map: boolean): Uint8Array {
  const unit = map ? [0x81, 0xa1, 0x61] : [0x91];
  const bytes = new Uint8Array(depth * unit.length + 1);
  for (let i = 0; i < depth; i++) bytes.set(unit, i * unit.length);
  bytes[bytes.length - 1] = 0xc0;
  return bytes;
}

const validPublish = (topic: string, size: number): Uint8Array =>
  encodeFrame({ type: 'publish', batches: [{ topic, partition: 0, ack: 'quorum', firstId: 1, firstSeq: 0, messages: [{ data: new Uint8Array(size) }] }] });

/** One hostile WebSocket message: bytes (binary) or a string (a text frame). */
const hostileFrame: fc.Arbitrary<Uint8Array | string> = fc.oneof(
  fc.uint8Array({ maxLength: 2048 }),
  fc.record({ type: fc.constantFrom(...clientTypes) }, { requiredKeys: ['type'] }).chain((head) =>
    fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 4 }), { maxKeys: 8 }).map((rest) => encodeValue({ ...rest, ...head })),
  ),
  fc.tuple(fc.integer({ min: 0, max: 4000 }), fc.integer({ min: 1, max: 2000 })).map(([size, cut]) => {
    const whole = validPublish('fuzz.truncated', size);
    return whole.subarray(0, Math.max(0, whole.length - cut)); // truncated
  }),
  fc.tuple(fc.integer({ min: 9, max: 200_000 }), fc.boolean()).map(([depth, map]) => nested(depth, map).subarray(0, MAX_PAYLOAD)), // deeply nested
  fc.integer({ min: 1, max: 4096 }).map((extra) => new Uint8Array(MAX_PAYLOAD + extra)), // oversized
  fc.constantFrom(
    Uint8Array.of(0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0), // array32 claiming 4 billion items
    Uint8Array.of(0xc6, 0x7f, 0xff, 0xff, 0xff, 0x00), // bin32 claiming 2 GiB
    Uint8Array.of(0xdf, 0x00, 0x10, 0x00, 0x00), // map32 with a million missing entries
    Uint8Array.of(0xc7, 0x01, 0x05, 0x00), // an extension type
    Uint8Array.of(0xd6, 0xff, 0x00, 0x00, 0x00, 0x00), // a timestamp extension
  ),
  fc.string({ maxLength: 100 }), // text frames are not part of the protocol
  fc.record({ topic: fc.string({ maxLength: 300 }), credit: fc.integer(), subscription: fc.integer(), id: fc.integer() }).map((f) =>
    encodeValue({ type: 'subscribe', pattern: f.topic, from: 'earliest', credit: f.credit, subscription: f.subscription, id: f.id, resume: [] }),
  ),
);

/** One hostile connection: maybe a valid hello first (to reach the open state), then its frames; never waits for answers. */
async function attack(url: string, helloFirst: boolean, frames: Array<Uint8Array | string>): Promise<void> {
  const ws = new WebSocket(url, { maxPayload: 0 });
  sockets.add(ws);
  ws.on('error', () => {});
  const opened = await new Promise<boolean>((resolve) => {
    ws.once('open', () => resolve(true));
    ws.once('close', () => resolve(false));
  });
  if (opened) {
    if (helloFirst) ws.send(encodeFrame({ type: 'hello', version: PROTOCOL_VERSION, clientId: 'fuzz', producerId: 'fuzz' }));
    for (const frame of frames) {
      if (ws.readyState !== WebSocket.OPEN) break;
      ws.send(frame, { binary: typeof frame !== 'string' });
    }
    // Give the broker a moment to answer or close, bounded, then drop the connection.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 100);
      ws.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  ws.terminate();
  sockets.delete(ws);
}

/** Opens `count` WebSockets that never say hello; resolves once each opened or was refused. */
async function flood(url: string, count: number): Promise<{ opened: number }> {
  let opened = 0;
  await Promise.all(
    Array.from({ length: count }, async () => {
      const ws = new WebSocket(url, { maxPayload: 0 });
      sockets.add(ws);
      ws.on('error', () => {});
      ws.on('message', () => {});
      await new Promise<void>((resolve) => {
        ws.once('open', () => {
          opened++;
          resolve();
        });
        ws.once('close', () => resolve());
      });
    }),
  );
  return { opened };
}

/** Opens raw TCP connections that send nothing or garbage; resolves once the broker closed all of them. */
async function tcpFlood(port: number, garbage: Uint8Array[]): Promise<void> {
  await Promise.all(
    garbage.map(
      (bytes) =>
        new Promise<void>((resolve) => {
          const socket = net.connect(port, '127.0.0.1', () => {
            if (bytes.length > 0) socket.write(bytes);
          });
          socket.on('error', () => {});
          socket.on('data', () => {});
          socket.once('close', () => resolve());
        }),
    ),
  );
}

/**
 * A client that publishes numbered messages, 20 at a time, until `stop()`,
 * and subscribes to them; `run` resolves with how many it published.
 */
async function wellBehaved(broker: Broker): Promise<{ run: Promise<number>; received: number[]; stop(): void }> {
  const client = await fixture.client([broker.url], { poolSize: 1, discovery: false });
  const received: number[] = [];
  await client.subscribe('fuzz.good', (m: Message) => void received.push(m.data as number), { from: 'earliest' });
  let stopped = false;
  const run = (async () => {
    let sent = 0;
    while (!stopped && sent < MAX_GOOD_MESSAGES) {
      await within(Promise.all(Array.from({ length: 20 }, (_, j) => client.publish('fuzz.good', sent + j))), `good publishes from ${sent}`, 20_000);
      sent += 20;
      await new Promise((resolve) => setTimeout(resolve, 2)); // leave the attackers room: interleave, do not race ahead
    }
    return sent;
  })();
  return { run, received, stop: () => (stopped = true) };
}

describe('fuzz: hostile frames and connection floods against a running broker', () => {
  it('stays up, bounds its memory, and loses nothing for a well-behaved client', async () => {
    const seed = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
    let good: Awaited<ReturnType<typeof wellBehaved>> | undefined;
    try {
      // helloTimeoutMs well above the flood's duration on a loaded machine: a shorter one reaps early flood connections before the limit is reached.
      const broker = await fixture.broker({ maxPayload: MAX_PAYLOAD, helloTimeoutMs: 4000, maxConnections: 200, maxConnectionsPerIp: 200 });
      const heapBefore = process.memoryUsage().heapUsed;
      const client = await wellBehaved(broker);
      good = client;

      // Phase 1: hostile frames on many short connections, a few at a time.
      const plans = fc.sample(
        fc.record({ helloFirst: fc.boolean(), frames: fc.array(hostileFrame, { minLength: FRAMES_PER_CONNECTION, maxLength: FRAMES_PER_CONNECTION }) }),
        { seed, numRuns: HOSTILE_CONNECTIONS },
      );
      for (let i = 0; i < plans.length; i += PARALLEL) {
        await within(Promise.all(plans.slice(i, i + PARALLEL).map((p) => attack(broker.url, p.helloFirst, p.frames))), 'a round of attacks', 20_000);
      }

      // Phase 2: a connection flood past maxConnections; none says hello.
      const { opened } = await within(flood(broker.url, FLOOD_CONNECTIONS), 'the flood', 20_000);
      expect(opened).toBe(FLOOD_CONNECTIONS); // every upgrade completes; those over the limit are then refused
      await waitFor(() => broker.stats().security.connectionsRejected >= FLOOD_CONNECTIONS - 200, 'connections over the limit to be refused', 10_000);
      expect(broker.stats().connections).toBeLessThanOrEqual(200);
      // Connections that never become WebSockets are dropped too (after helloTimeoutMs at the latest).
      const garbage = fc.sample(fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ maxLength: 512 })), { seed: seed + 1, numRuns: RAW_TCP_CONNECTIONS });
      await within(tcpFlood(broker.port, garbage), 'every raw TCP connection to be closed by the broker', 15_000);
      // helloTimeoutMs reaps the silent ones.
      await waitFor(() => broker.stats().connections === 1, 'the flood to be reaped, leaving the good client', 10_000);

      client.stop();
      const sent = await within(client.run, 'the good client to finish publishing', 30_000);
      expect(sent).toBeGreaterThan(100); // it really ran alongside the attacks
      await waitFor(() => client.received.length === sent, 'every good message delivered', 20_000);
      expect(client.received).toEqual(Array.from({ length: sent }, (_, i) => i));

      const stats = broker.stats();
      if (process.env.FUZZ_VERBOSE) console.log(JSON.stringify({ seed, sent, stats }));
      expect(stats.outboundBytes).toBeLessThan(1024 * 1024);
      const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
      expect(heapGrowth, `heap grew by ${heapGrowth} bytes`).toBeLessThan(256 * 1024 * 1024);
      // Still serving new clients.
      const late = await fixture.client([broker.url], { poolSize: 1, discovery: false });
      await expect(late.publish('fuzz.late', 'still up')).resolves.toMatchObject({ offset: 0 });
    } catch (err) {
      good?.stop();
      await good?.run.catch(() => {}); // settle it here: the failure reported is the one above
      if (err instanceof Error) err.message = `[FUZZ_SEED=${seed}] ${err.message}`;
      throw err;
    }
  }, 120_000);
});
