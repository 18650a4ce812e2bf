/**
 * Delivery over reads that need the disk: on layout `unified` every read of
 * a partition returns a promise, and a cursor whose read found nothing stays
 * ready (it is tried again) unless it is caught up with what the replica
 * applied. The subscription's other partitions must still be read: the pass
 * goes on to them rather than reading the same cursor first forever; and a
 * caught-up cursor is not read again until an append, which is delivered
 * in the turn it is announced.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, decodeBrokerFrame, encodeFrame, encodeValue, type BrokerFrame, type ClientFrame, type MessageFrame } from '@relaymq/sdk/protocol';
import type { LogEngine } from '../engine/engine.js';
import { MemoryEngine } from '../engine/memory.js';
import { resolveBrokerOptions } from '../options.js';
import { newSecurityCounters } from '../security/counters.js';
import { Fanout } from './fanout.js';
import type { ClientSocket } from './session-context.js';
import { ClientSession } from './session.js';

const WAIT_MS = 10_000;

/** A socket whose writes complete at once; it keeps the frames the broker sent. */
class RecordingSocket implements ClientSocket {
  readonly frames: BrokerFrame[] = [];
  send(bytes: Uint8Array, onWritten: (err?: Error) => void): void {
    this.frames.push(decodeBrokerFrame(bytes, 64 * 1024 * 1024));
    onWritten();
  }
  close(): void {}
  terminate(): void {}
  messages(): MessageFrame[] {
    return this.frames.filter((f): f is MessageFrame => f.type === 'message');
  }
}

const live: ClientSession[] = [];
afterEach(() => {
  for (const s of live.splice(0)) s.ended();
});

/** Turns of the event loop until `done`, bounded. */
async function until(done: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** What a session needs around it, over `engine`. */
function sessionContext(options: ReturnType<typeof resolveBrokerOptions>, engine: MemoryEngine): ConstructorParameters<typeof ClientSession>[1] {
  return {
    options,
    engine,
    fanout: new Fanout(engine),
    cluster: () => ({ brokers: [] }),
    now: Date.now,
    newId: () => 'id',
    draining: () => false,
    ready: () => true,
    authenticator: undefined,
    counters: newSecurityCounters(),
  };
}

describe('Delivery', () => {
  it('sends encoded reads as they are, and reads again the usual way when an encoded read fails', async () => {
    const options = resolveBrokerOptions({ defaultPartitions: 3 });
    const engine = new MemoryEngine({ ...options, now: Date.now });
    const encodedReads = [0, 0, 0];
    const reads = [0, 0, 0];
    const read = engine.read.bind(engine);
    (engine as LogEngine).read = (topic, partition, offset, maxCount, maxBytes) => {
      reads[partition] = (reads[partition] ?? 0) + 1;
      return read(topic, partition, offset, maxCount, maxBytes);
    };
    // As a unified replica: messages encoded as a delivery frame carries them; partition 1's encoded reads fail.
    (engine as LogEngine).readEncoded = (topic, partition, offset, maxCount, maxBytes) => {
      encodedReads[partition] = (encodedReads[partition] ?? 0) + 1;
      if (partition === 1) return Promise.reject(new Error('damaged record'));
      const stored = read(topic, partition, offset, maxCount, maxBytes) as Awaited<ReturnType<MemoryEngine['read']>>;
      const maps = encodeValue(stored.map((m) => ({ timestamp: m.timestamp, data: m.data, key: `k${m.offset}` })));
      // The array's header is one byte (fewer than 16 messages here): the elements follow it.
      return Promise.resolve({ firstOffset: stored[0]?.offset ?? offset, count: stored.length, dataBytes: stored.reduce((n, m) => n + m.data.length, 0), bytes: maps.subarray(1) });
    };
    await engine.ensureTopic('t');
    for (const partition of [1, 2]) {
      await engine.append('t', partition, { producerId: `p${partition}`, firstSeq: 0, messages: [0, 1, 2].map((i) => ({ data: Uint8Array.of(partition, i), encoding: 'raw' as const })) }, 'leader');
    }
    const socket = new RecordingSocket();
    const session = new ClientSession(socket, sessionContext(options, engine), () => {});
    live.push(session);
    const send = (frame: ClientFrame): void => session.receive(encodeFrame(frame));
    send({ type: 'hello', version: PROTOCOL_VERSION, clientId: '', producerId: '' });
    send({ type: 'subscribe', id: 1, subscription: 1, pattern: 't', from: 'earliest', resume: [], credit: 100 });
    const delivered = (partition: number): unknown[] =>
      socket.messages().flatMap((m) => m.batches.filter((b) => b.partition === partition).flatMap((b) => b.messages.map((x, i) => ({ offset: b.firstOffset + i, data: [...x.data], key: x.key }))));
    await until(() => delivered(1).length >= 3 && delivered(2).length >= 3, 'partitions 1 and 2 to be delivered');
    // Partition 2 from its encoded reads (the key only they carry), partition 1 read again the usual way.
    expect(delivered(2)).toEqual([0, 1, 2].map((i) => ({ offset: i, data: [2, i], key: `k${i}` })));
    expect(delivered(1)).toEqual([0, 1, 2].map((i) => ({ offset: i, data: [1, i], key: undefined })));
    expect(encodedReads[1]).toBeGreaterThan(0);
    expect(reads[1]).toBeGreaterThan(0);
    expect(reads[2]).toBe(0);
  });

  it('stops reading a caught-up partition until an append, when every read is encoded (no read per turn while idle)', async () => {
    const options = resolveBrokerOptions({ defaultPartitions: 1 });
    const engine = new MemoryEngine({ ...options, now: Date.now });
    const read = engine.read.bind(engine);
    let encodedReads = 0;
    (engine as LogEngine).readEncoded = (topic, partition, offset, maxCount, maxBytes) => {
      encodedReads++;
      const stored = read(topic, partition, offset, maxCount, maxBytes) as Awaited<ReturnType<MemoryEngine['read']>>;
      const maps = encodeValue(stored.map((m) => ({ timestamp: m.timestamp, data: m.data })));
      return Promise.resolve({ firstOffset: stored[0]?.offset ?? offset, count: stored.length, dataBytes: stored.reduce((n, m) => n + m.data.length, 0), bytes: maps.subarray(1) });
    };
    await engine.ensureTopic('t');
    const publish = (seq: number): Promise<unknown> => engine.append('t', 0, { producerId: 'p', firstSeq: seq, messages: [{ data: Uint8Array.of(seq), encoding: 'raw' }] }, 'leader');
    await publish(0);
    const socket = new RecordingSocket();
    const session = new ClientSession(socket, sessionContext(options, engine), () => {});
    live.push(session);
    const send = (frame: ClientFrame): void => session.receive(encodeFrame(frame));
    send({ type: 'hello', version: PROTOCOL_VERSION, clientId: '', producerId: '' });
    send({ type: 'subscribe', id: 1, subscription: 1, pattern: 't', from: 'earliest', resume: [], credit: 100 });
    const delivered = (): number[] => socket.messages().flatMap((m) => m.batches.flatMap((b) => b.messages.map((x) => x.data[0] as number)));
    await until(() => delivered().length >= 1, 'the first message');
    const turns = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
    };
    // Idle: the cursor is caught up, so nothing reads it again (before: one read per turn of the event loop).
    await turns(100);
    const idleReads = encodedReads;
    expect(idleReads).toBeLessThanOrEqual(2);
    await turns(100);
    expect(encodedReads).toBe(idleReads);
    // An append brings it back: delivered, then idle again.
    await publish(1);
    await until(() => delivered().length >= 2, 'the second message');
    await turns(100);
    expect(delivered()).toEqual([0, 1]);
    expect(encodedReads - idleReads).toBeLessThanOrEqual(2);
  });

  it.each([
    ['from memory', false],
    ['encoded', true],
  ])('delivers an append in the turn it was announced, before a setImmediate queued ahead of it (read %s)', async (_what, encoded) => {
    const options = resolveBrokerOptions({ defaultPartitions: 1 });
    const engine = new MemoryEngine({ ...options, now: Date.now });
    if (encoded) {
      const read = engine.read.bind(engine);
      (engine as LogEngine).readEncoded = (topic, partition, offset, maxCount, maxBytes) => {
        const stored = read(topic, partition, offset, maxCount, maxBytes) as Awaited<ReturnType<MemoryEngine['read']>>;
        const maps = encodeValue(stored.map((m) => ({ timestamp: m.timestamp, data: m.data })));
        return Promise.resolve({ firstOffset: stored[0]?.offset ?? offset, count: stored.length, dataBytes: stored.reduce((n, m) => n + m.data.length, 0), bytes: maps.subarray(1) });
      };
    }
    await engine.ensureTopic('t');
    const publish = (seq: number): Promise<unknown> => engine.append('t', 0, { producerId: 'p', firstSeq: seq, messages: [{ data: Uint8Array.of(seq), encoding: 'raw' }] }, 'leader');
    await publish(0);
    const socket = new RecordingSocket();
    const session = new ClientSession(socket, sessionContext(options, engine), () => {});
    live.push(session);
    const send = (frame: ClientFrame): void => session.receive(encodeFrame(frame));
    send({ type: 'hello', version: PROTOCOL_VERSION, clientId: '', producerId: '' });
    send({ type: 'subscribe', id: 1, subscription: 1, pattern: 't', from: 'earliest', resume: [], credit: 100 });
    const delivered = (): number => socket.messages().reduce((n, m) => n + m.batches.reduce((k, b) => k + b.messages.length, 0), 0);
    await until(() => delivered() === 1, 'the first message');
    for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
    let atImmediate: number | undefined;
    setImmediate(() => (atImmediate = delivered()));
    await publish(1);
    await until(() => atImmediate !== undefined, 'the setImmediate');
    // Before, the delivery pass itself waited for a setImmediate, behind this one.
    expect(atImmediate).toBe(2);
  });

  it.each([
    ['finds nothing', false],
    ['fails', true],
  ])('reads every ready partition when every read needs the disk and the first one %s', async (_what, failing) => {
    const options = resolveBrokerOptions({ defaultPartitions: 3 });
    const engine = new MemoryEngine({ ...options, now: Date.now });
    const read = engine.read.bind(engine);
    const reads = [0, 0, 0];
    // As a unified partition: every read is a promise (partition 0 empty: caught up, or its reads failing).
    (engine as LogEngine).read = (topic, partition, offset, maxCount, maxBytes) => {
      reads[partition] = (reads[partition] ?? 0) + 1;
      if (failing && partition === 0) return Promise.reject(new Error('damaged record'));
      return Promise.resolve(read(topic, partition, offset, maxCount, maxBytes));
    };
    await engine.ensureTopic('t');
    for (const partition of [1, 2]) await engine.append('t', partition, { producerId: `p${partition}`, firstSeq: 0, messages: [{ data: Uint8Array.of(partition), encoding: 'raw' }] }, 'leader');
    const socket = new RecordingSocket();
    const session = new ClientSession(socket, sessionContext(options, engine), () => {});
    live.push(session);
    const send = (frame: ClientFrame): void => session.receive(encodeFrame(frame));
    send({ type: 'hello', version: PROTOCOL_VERSION, clientId: '', producerId: '' });
    send({ type: 'subscribe', id: 1, subscription: 1, pattern: 't', from: 'earliest', resume: [], credit: 100 });
    const delivered = (): number[] => socket.messages().flatMap((m) => m.batches.map((b) => b.partition));
    await until(() => delivered().length >= 2, 'partitions 1 and 2 to be delivered');
    expect(delivered().sort()).toEqual([1, 2]);
    expect(reads[0]).toBeGreaterThan(0);
  });
});
