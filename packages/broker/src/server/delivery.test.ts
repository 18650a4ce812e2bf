/**
 * `advance`: what one engine read becomes on the wire. Dense reads (every
 * embedded engine) are one batch, encoded exactly as before offsets could
 * have holes; reads with holes (the RabbitMQ backbone) are one batch per run
 * of consecutive offsets, each saying which hole it skipped, and a cursor
 * below the partition's start (retention) is still a gap.
 */
import { describe, expect, it } from 'vitest';
import { encodeFrame, type DeliveryBatch } from '@relaymq/sdk/protocol';
import type { StoredMessage } from '../core/partition/partition.js';
import { advance } from './delivery.js';

const stored = (offset: number): StoredMessage => ({ offset, timestamp: 1000 + offset, data: Uint8Array.of(offset & 0xff), encoding: 'raw', key: `k${offset}` });
const engine = (offsetHoles: boolean | undefined, start = 0) => ({ offsetHoles, bounds: () => ({ start, end: 1000 }) });
const cursor = (offset: number) => ({ topic: 't', partition: 2, offset });
const wire = (batches: DeliveryBatch[]): Uint8Array => encodeFrame({ type: 'message', subscription: 1, batches });

describe('delivery advance', () => {
  it('a dense read is one batch, byte-identical to what was sent before holes existed, on every engine', () => {
    const messages = [5, 6, 7, 8].map(stored);
    // What advance sent before: one batch from the first offset, no other field.
    const before: DeliveryBatch = {
      topic: 't',
      partition: 2,
      firstOffset: 5,
      messages: messages.map((m) => ({ timestamp: m.timestamp, data: m.data, key: m.key as string })),
    };
    for (const e of [engine(undefined), engine(false), engine(true)]) {
      const c = cursor(5);
      const batches = advance(e, c, messages);
      expect(wire(batches)).toEqual(wire([before]));
      expect(Object.keys(batches[0] as DeliveryBatch)).toEqual(['topic', 'partition', 'firstOffset', 'messages']);
      expect(c.offset).toBe(9);
    }
    expect(advance(engine(true), cursor(5), [])).toEqual([]);
  });

  it('a read with holes is one batch per run of consecutive offsets, each naming the hole it skipped', () => {
    const c = cursor(39);
    const batches = advance(engine(true), c, [39, 41, 42, 44].map(stored));
    expect(batches.map((b) => [b.firstOffset, b.messages.length, b.from])).toEqual([
      [39, 1, undefined],
      [41, 2, 40],
      [44, 1, 43],
    ]);
    expect(c.offset).toBe(45);
    // A cursor sitting on the hole: the first batch names it.
    const onHole = cursor(40);
    expect(advance(engine(true), onHole, [41, 42].map(stored)).map((b) => [b.firstOffset, b.from])).toEqual([[41, 40]]);
    expect(onHole.offset).toBe(43);
  });

  it('a cursor below the partition start is a retention gap, not a hole: no from, on either kind of engine', () => {
    for (const e of [engine(true, 100), engine(undefined, 100)]) {
      const c = cursor(3);
      const batches = advance(e, c, [100, 101].map(stored));
      expect(batches).toHaveLength(1);
      expect(batches[0]?.firstOffset).toBe(100);
      expect(batches[0]).not.toHaveProperty('from');
      expect(c.offset).toBe(102);
    }
  });

  it('an engine whose offsets are dense never names a hole, even where a read jumps', () => {
    const c = cursor(3);
    const batches = advance(engine(undefined, 0), c, [7, 8].map(stored));
    expect(batches.map((b) => [b.firstOffset, b.from])).toEqual([[7, undefined]]);
  });
});
