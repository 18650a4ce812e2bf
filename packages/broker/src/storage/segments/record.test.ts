import { describe, expect, it } from 'vitest';
import { checkFrame, FRAME_HEADER_BYTES } from './frame.js';
import { decodeRecord, measureRecord, MIN_RECORD_FRAME_BYTES, peekOffset, peekTimestamp, RecordFormatError, writeRecord, type NewMessage } from './record.js';
import { SparseIndex } from './sparse-index.js';

function encode(offset: number, timestamp: number, message: NewMessage): Buffer {
  const measured = measureRecord(message);
  const buf = Buffer.alloc(measured.frameBytes);
  writeRecord(buf, 0, offset, timestamp, message, measured);
  return buf;
}

describe('record format', () => {
  it('round-trips every field, offsets and timestamps beyond 32 bits included', () => {
    const cases: Array<[number, number, NewMessage]> = [
      [0, 0, { timestamp: 0, data: new Uint8Array(0), encoding: 'raw' }],
      [2 ** 40 + 7, 1_763_000_000_123, { timestamp: 0, key: 'k-é', headers: { trace: 'abc', n: '' }, data: Uint8Array.of(0x81, 0xa1, 0x61, 1), encoding: 'msgpack' }],
      [Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, { timestamp: 0, key: '', data: Uint8Array.of(9), encoding: 'raw' }],
    ];
    for (const [offset, timestamp, message] of cases) {
      const buf = encode(offset, timestamp, message);
      const check = checkFrame(buf, 0, 1 << 20);
      if (check.kind !== 'ok') throw new Error(check.kind);
      expect(check.bodyEnd).toBe(buf.length);
      expect(peekOffset(buf, FRAME_HEADER_BYTES)).toBe(offset);
      expect(peekTimestamp(buf, FRAME_HEADER_BYTES)).toBe(timestamp);
      const { timestamp: _ignored, ...rest } = message;
      expect(decodeRecord(buf, check.bodyStart, check.bodyEnd)).toEqual({ ...rest, offset, timestamp });
    }
    expect(encode(0, 0, cases[0]?.[2] as NewMessage).length).toBe(MIN_RECORD_FRAME_BYTES);
  });

  it('format 2 (a Raft entry) carries term, first offset and count after the timestamp, 20 bytes more, offset and timestamp where format 1 has them', () => {
    const raft = { term: 2 ** 33 + 5, firstOffset: 2 ** 41 + 3, count: 0xfffffffe };
    const message: NewMessage = { timestamp: 0, raft, key: 'k', headers: { h: 'v' }, data: Uint8Array.of(7, 8), encoding: 'msgpack' };
    const buf = encode(2 ** 35 + 1, 1_763_000_000_000, message);
    const { raft: _raft, ...format1 } = message;
    expect(buf.length).toBe(encode(0, 0, format1).length + 20);
    expect(buf[FRAME_HEADER_BYTES]).toBe(2);
    expect(peekOffset(buf, FRAME_HEADER_BYTES)).toBe(2 ** 35 + 1);
    expect(peekTimestamp(buf, FRAME_HEADER_BYTES)).toBe(1_763_000_000_000);
    const check = checkFrame(buf, 0, 1 << 20);
    if (check.kind !== 'ok') throw new Error(check.kind);
    const { timestamp: _ignored, ...rest } = message;
    expect(decodeRecord(buf, check.bodyStart, check.bodyEnd)).toEqual({ ...rest, offset: 2 ** 35 + 1, timestamp: 1_763_000_000_000 });
    // A format 1 record has none; a header that is not made of non-negative integers is refused.
    expect(decodeRecord(encode(1, 1, format1), FRAME_HEADER_BYTES, encode(1, 1, format1).length).raft).toBeUndefined();
    expect(() => measureRecord({ ...message, raft: { ...raft, count: -1 } })).toThrow(RangeError);
  });

  it('detects a flipped bit, a short buffer and an impossible length', () => {
    const buf = encode(5, 6, { timestamp: 0, data: Uint8Array.of(1, 2, 3), encoding: 'raw' });
    expect(checkFrame(buf.subarray(0, buf.length - 1), 0, 1 << 20)).toEqual({ kind: 'incomplete', frameBytes: buf.length });
    expect(checkFrame(buf.subarray(0, 4), 0, 1 << 20)).toEqual({ kind: 'incomplete', frameBytes: undefined });
    expect(checkFrame(buf, 0, 4).kind).toBe('bad');
    buf[buf.length - 1] = (buf[buf.length - 1] as number) ^ 4;
    expect(checkFrame(buf, 0, 1 << 20)).toEqual({ kind: 'bad', reason: 'checksum mismatch' });
  });

  it('a body that passes its checksum but is not a record is refused, not guessed at', () => {
    const buf = encode(1, 1, { timestamp: 0, key: 'abc', data: new Uint8Array(0), encoding: 'raw' });
    const body = buf.subarray(FRAME_HEADER_BYTES);
    body.writeUInt16BE(200, 18); // key length past the end
    expect(() => decodeRecord(buf, FRAME_HEADER_BYTES, buf.length)).toThrow(RecordFormatError);
    body[0] = 9; // unknown format
    expect(() => decodeRecord(buf, FRAME_HEADER_BYTES, buf.length)).toThrow(RecordFormatError);
  });

  it('rejects keys longer than 65535 bytes', () => {
    expect(() => measureRecord({ timestamp: 0, key: 'x'.repeat(70_000), data: new Uint8Array(0), encoding: 'raw' })).toThrow(RangeError);
  });
});

describe('SparseIndex', () => {
  function sample(): SparseIndex {
    const index = new SparseIndex();
    for (let i = 0; i < 200; i++) index.push(i * 10, i * 4096, 1000 + i * 100);
    return index;
  }

  it('finds the entry at or below an offset and the last entry before a time', () => {
    const index = sample();
    expect(index.floorByOffset(0)).toBe(0);
    expect(index.floorByOffset(9)).toBe(0);
    expect(index.floorByOffset(10)).toBe(1);
    expect(index.floorByOffset(5000)).toBe(199);
    expect(index.lastBeforeTime(1000)).toBe(-1);
    expect(index.lastBeforeTime(1001)).toBe(0);
    expect(index.lastBeforeTime(1100)).toBe(0);
    expect(index.lastBeforeTime(1101)).toBe(1);
    index.truncateFrom(15);
    expect(index.length).toBe(2);
  });

  it('round-trips through its files, and refuses files that do not check out', () => {
    const index = sample();
    const idx = index.encodeOffsets();
    const tix = index.encodeTimes(1999, 21_000);
    const decoded = SparseIndex.decode(idx, tix, 200 * 4096);
    expect(decoded?.lastRelOffset).toBe(1999);
    expect(decoded?.lastTimestamp).toBe(21_000);
    expect(decoded?.index.length).toBe(200);
    expect(decoded?.index.positionAt(199)).toBe(199 * 4096);
    expect(SparseIndex.decode(idx, tix, 100 * 4096)).toBeUndefined(); // positions past the segment
    expect(SparseIndex.decode(idx.subarray(0, idx.length - 1), tix, 200 * 4096)).toBeUndefined(); // torn
    const flipped = Buffer.from(tix);
    flipped[10] = (flipped[10] as number) ^ 1;
    expect(SparseIndex.decode(idx, flipped, 200 * 4096)).toBeUndefined(); // checksum
    expect(SparseIndex.decode(idx, index.encodeTimes(5, 0), 200 * 4096)).toBeUndefined(); // inconsistent
  });
});
