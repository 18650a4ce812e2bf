/**
 * Delivery frames built from stored entry bytes (issue 12, "encode once")
 * decode as the frames the object path encodes, for every shape of message;
 * with or without the topic's incarnation (told once, before `messages`); an
 * entry that is not a publish batch is refused as damage.
 */
import { decodeBrokerFrame, encodeFrame, encodeValue, type DeliveryBatch, type StoredMessageFrame } from '@relaymq/sdk/protocol';
import { describe, expect, it } from 'vitest';
import type { PublishCommand } from '../core/partition/command.js';
import { deriveRandom } from '../core/raft/index.js';
import { encodedBytes, locateMessages, writeMessages, type MessageSpans } from '../storage/encoded-messages.js';
import { encodeMessageFrame } from './encoded-delivery.js';

const MAX_PAYLOAD = 64 * 1024 * 1024;

/** An entry's record body as the unified storage writes it. */
function entryBytes(command: PublishCommand): Buffer {
  return Buffer.from(encodeValue({ t: 'normal', d: command }));
}

/** Messages `skip … skip + take - 1` of the `stored` last of `entry`, as a frame from their stored bytes. */
function encodedFrame(entry: Buffer, stored: number, skip: number, take: number, timestamp: number, firstOffset: number, incarnation?: number): Uint8Array {
  const spans: MessageSpans = { bodies: [], ends: [], fields: [], dataBytes: [] };
  locateMessages(entry, stored, skip, take, spans, 7);
  const bytes = Buffer.allocUnsafe(encodedBytes(spans, 0, take));
  expect(writeMessages(bytes, 0, entry, spans, 0, take, timestamp)).toBe(bytes.length);
  const dataBytes = spans.dataBytes.reduce((a, b) => a + b, 0);
  return encodeMessageFrame(3, 'orders.eu', 2, { firstOffset, count: take, dataBytes, bytes }, incarnation);
}

describe('encoded delivery', () => {
  it.each([1, 2, 3, 4])('seed %i: a frame from stored bytes decodes as the frame of the same messages as objects', (seed) => {
    const stream = deriveRandom(seed, 'encoded-delivery');
    const random = (n: number): number => stream.nextInt(n);
    for (let round = 0; round < 24; round++) {
      const n = 1 + random(round % 6 === 0 ? 12_000 : 40);
      const command: PublishCommand = {
        producerId: `producer-${round}`,
        firstSeq: random(1000),
        timestampMs: 1_700_000_000_000 + random(1e6),
        dedupe: random(2) === 0,
        messages: Array.from({ length: n }, (_, i) => {
          const m: PublishCommand['messages'][number] = { data: Uint8Array.from({ length: random(n > 1000 ? 4 : 300) }, (_, k) => (i + k) & 0xff) };
          if (random(3) === 0) m.key = `key-${random(100)}-${'é'.repeat(random(40))}`;
          if (random(4) === 0) m.headers = Object.fromEntries(Array.from({ length: 1 + random(20) }, (_, h) => [`h${h}`, `v${h}`]));
          if (random(3) === 0) m.encoding = random(2) === 0 ? 'msgpack' : 'raw';
          return m;
        }),
      };
      const stored = 1 + random(n);
      const skip = random(stored);
      // At most a frame's worth (FIELD_LIMITS.maxBatch); 16 and more take a 16-bit array header.
      const take = 1 + random(Math.min(stored - skip, 10_000));
      // Timestamps below and above 2^32 ms (the `uint 64` field either way).
      const timestamp = random(2) === 0 ? random(2 ** 31) : command.timestampMs;
      const firstOffset = random(2) === 0 ? random(100) : 2 ** 40 + random(100);
      // The topic's incarnation, on the first delivery of a topic the subscription was not told of.
      const incarnation = random(2) === 0 ? undefined : random(2) === 0 ? random(5) : 2 ** 40 + random(100);
      const frame = decodeBrokerFrame(encodedFrame(entryBytes(command), stored, skip, take, timestamp, firstOffset, incarnation), MAX_PAYLOAD);
      const messages = command.messages.slice(n - stored + skip, n - stored + skip + take).map((m): StoredMessageFrame => {
        const f: StoredMessageFrame = { timestamp, data: m.data };
        if (m.encoding !== undefined) f.encoding = m.encoding;
        if (m.key !== undefined) f.key = m.key;
        if (m.headers !== undefined) f.headers = m.headers;
        return f;
      });
      const batch: DeliveryBatch = { topic: 'orders.eu', partition: 2, firstOffset, messages };
      if (incarnation !== undefined) batch.incarnation = incarnation;
      const expected = decodeBrokerFrame(encodeFrame({ type: 'message', subscription: 3, batches: [batch] }), MAX_PAYLOAD);
      expect(frame).toEqual(expected);
    }
  });

  it('refuses, as damage, an entry that is not a publish batch or holds fewer messages than its record says', () => {
    const command: PublishCommand = { producerId: 'p', firstSeq: 0, timestampMs: 1, dedupe: true, messages: [{ data: Uint8Array.of(1) }, { data: Uint8Array.of(2) }] };
    const spans = (): MessageSpans => ({ bodies: [], ends: [], fields: [], dataBytes: [] });
    const refused = (entry: Uint8Array, stored = 1): unknown => {
      try {
        locateMessages(entry, stored, 0, 1, spans(), 9);
      } catch (err) {
        return err;
      }
      return undefined;
    };
    expect(refused(entryBytes(command), 2)).toBeUndefined();
    for (const entry of [
      encodeValue({ t: 'noop' }),
      encodeValue({ t: 'conf', change: {}, conf: {} }),
      encodeValue({ t: 'normal', d: { ...command, messages: undefined } }),
      encodeValue({ t: 'normal', d: { ...command, messages: [{ key: 'no data' }] } }),
      entryBytes(command).subarray(0, entryBytes(command).length - 1), // cut short
      Uint8Array.of(0xc1), // not msgpack
    ]) {
      expect(refused(entry)).toMatchObject({ code: 'STORAGE_CORRUPT', message: expect.stringContaining('record 9') });
    }
    expect(refused(entryBytes(command), 3)).toMatchObject({ code: 'STORAGE_CORRUPT' });
  });
});
