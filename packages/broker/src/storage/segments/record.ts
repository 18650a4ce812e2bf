/**
 * One message as a record of a segment file: a frame (see `frame.ts`) whose
 * body is a small fixed binary header followed by the message's bytes.
 *
 * ```
 * body: 0  u8   format (1)
 *       1  u8   flags: 1 = encoding msgpack (else raw), 2 = has key, 4 = has headers
 *       2  u64  offset     (two u32, big-endian, high word first)
 *       10 u64  timestamp  (Unix ms, same layout)
 *       18 [u16 key length][key, UTF-8]           when flag 2
 *          [u32 headers length][headers, msgpack]  when flag 4
 *          data                                    the rest of the body
 * ```
 *
 * Format 2 (a partition log that is also its Raft log, layout `unified`:
 * docs/storage.md) is a Raft entry: its offset field is the Raft index, and
 * after the timestamp come the Raft term (`u64` at 18), the partition offset
 * of the entry's first message (`u64` at 26) and its message count (`u32` at
 * 34), then the key, headers and data as in format 1.
 *
 * Binary rather than a msgpack map: the offset and the timestamp sit at fixed
 * places, so recovery and index rebuilds read them without decoding, and a
 * replay decodes a record with a few integer reads and one view of `data`
 * (no copy). Headers, rare and free-form, stay msgpack through the pinned codec.
 */
import { decodeValue, encodeValue, type ScanLimits } from '@relaymq/sdk/protocol';
import type { StoredMessage } from '../../core/partition/partition.js';
import { FRAME_HEADER_BYTES, sealFrame } from './frame.js';

export const RECORD_FORMAT = 1;
/** The record of a Raft entry in a unified partition log: format 1 plus {@link RaftRecordHeader}. */
export const RAFT_RECORD_FORMAT = 2;
/** Bytes of the body before the key: format, flags, offset, timestamp (format 1; format 2 adds {@link RAFT_HEADER_BYTES}). */
export const RECORD_FIXED_BYTES = 18;
/** Term (u64), first offset (u64), count (u32). */
const RAFT_HEADER_BYTES = 20;
/** The smallest frame a record can be. */
export const MIN_RECORD_FRAME_BYTES = FRAME_HEADER_BYTES + RECORD_FIXED_BYTES;

const FLAG_MSGPACK = 1;
const FLAG_KEY = 2;
const FLAG_HEADERS = 4;
const MAX_KEY_BYTES = 0xffff;
const TWO_32 = 2 ** 32;

/** Headers are a flat map of strings. */
const HEADER_SCAN_LIMITS: ScanLimits = { maxDepth: 2, maxElements: 1_000_000, allowTimestamp: false };

/** What a format 2 record (a Raft entry; its offset field is the Raft index) carries beyond format 1. */
export interface RaftRecordHeader {
  term: number;
  /** The partition offset of the entry's first message (the next offset when it has none). */
  firstOffset: number;
  /** Messages the entry stores (0: a no-op, a configuration change, a command that stores none). */
  count: number;
}

/** A message to append: a {@link StoredMessage} before it has an offset; with `raft`, a format 2 record (a Raft entry). */
export type NewMessage = Omit<StoredMessage, 'offset'> & { raft?: RaftRecordHeader };

/** A record read back: format 2 records carry their {@link RaftRecordHeader}. */
export type StoredRecord = StoredMessage & { raft?: RaftRecordHeader };

/** Whether `format` is a record format this version reads. */
export function knownFormat(format: number | undefined): boolean {
  return format === RECORD_FORMAT || format === RAFT_RECORD_FORMAT;
}

/** Bytes of the fixed part of a body of `format`. */
function fixedBytes(format: number): number {
  return format === RAFT_RECORD_FORMAT ? RECORD_FIXED_BYTES + RAFT_HEADER_BYTES : RECORD_FIXED_BYTES;
}

/** A record body that passed its checksum but cannot be a record: a bug or a foreign file, never served. */
export class RecordFormatError extends Error {
  override readonly name = 'RecordFormatError';
}

/** The sizes {@link writeRecord} needs, measured once. */
export interface MeasuredRecord {
  /** Bytes of the whole frame. */
  frameBytes: number;
  /** UTF-8 bytes of the key, -1 without one. */
  keyBytes: number;
  headers: Uint8Array | undefined;
}

/** Measures `message` as a record. Throws `RangeError` for a key longer than 65535 bytes. */
export function measureRecord(message: NewMessage): MeasuredRecord {
  const keyBytes = message.key === undefined ? -1 : Buffer.byteLength(message.key, 'utf8');
  if (keyBytes > MAX_KEY_BYTES) throw new RangeError(`key of ${keyBytes} bytes exceeds ${MAX_KEY_BYTES}`);
  const headers = message.headers === undefined ? undefined : encodeValue(message.headers);
  const raft = message.raft;
  if (raft !== undefined && (![raft.term, raft.firstOffset, raft.count].every((v) => Number.isSafeInteger(v) && v >= 0) || raft.count > 0xffffffff)) {
    throw new RangeError(`Raft record header must hold non-negative integers, got ${JSON.stringify(raft)}`);
  }
  const frameBytes =
    FRAME_HEADER_BYTES +
    RECORD_FIXED_BYTES +
    (raft === undefined ? 0 : RAFT_HEADER_BYTES) +
    (keyBytes >= 0 ? 2 + keyBytes : 0) +
    (headers === undefined ? 0 : 4 + headers.length) +
    message.data.length;
  return { frameBytes, keyBytes, headers };
}

function writeU64(buf: Buffer, pos: number, value: number): void {
  buf.writeUInt32BE(Math.floor(value / TWO_32), pos);
  buf.writeUInt32BE(value >>> 0, pos + 4);
}

function readU64(buf: Buffer, pos: number): number {
  return buf.readUInt32BE(pos) * TWO_32 + buf.readUInt32BE(pos + 4);
}

/** Writes the whole frame of `message` at `pos` (`measured.frameBytes` bytes). */
export function writeRecord(buf: Buffer, pos: number, offset: number, timestamp: number, message: NewMessage, measured: MeasuredRecord): void {
  const body = pos + FRAME_HEADER_BYTES;
  let flags = message.encoding === 'msgpack' ? FLAG_MSGPACK : 0;
  if (measured.keyBytes >= 0) flags |= FLAG_KEY;
  if (measured.headers !== undefined) flags |= FLAG_HEADERS;
  const format = message.raft === undefined ? RECORD_FORMAT : RAFT_RECORD_FORMAT;
  buf[body] = format;
  buf[body + 1] = flags;
  writeU64(buf, body + 2, offset);
  writeU64(buf, body + 10, timestamp);
  if (message.raft !== undefined) {
    writeU64(buf, body + RECORD_FIXED_BYTES, message.raft.term);
    writeU64(buf, body + RECORD_FIXED_BYTES + 8, message.raft.firstOffset);
    buf.writeUInt32BE(message.raft.count, body + RECORD_FIXED_BYTES + 16);
  }
  let p = body + fixedBytes(format);
  if (measured.keyBytes >= 0) {
    buf.writeUInt16BE(measured.keyBytes, p);
    buf.write(message.key as string, p + 2, measured.keyBytes, 'utf8');
    p += 2 + measured.keyBytes;
  }
  if (measured.headers !== undefined) {
    buf.writeUInt32BE(measured.headers.length, p);
    buf.set(measured.headers, p + 4);
    p += 4 + measured.headers.length;
  }
  buf.set(message.data, p);
  sealFrame(buf, pos, measured.frameBytes - FRAME_HEADER_BYTES);
}

/** The offset of the record whose body starts at `bodyStart` (no checks beyond its length). */
export function peekOffset(buf: Buffer, bodyStart: number): number {
  return readU64(buf, bodyStart + 2);
}

/** The timestamp of the record whose body starts at `bodyStart`. */
export function peekTimestamp(buf: Buffer, bodyStart: number): number {
  return readU64(buf, bodyStart + 10);
}

/** Whether `[bodyStart, bodyEnd)` is long enough and of a known format, so that the peeks are meaningful. */
export function plausibleBody(buf: Buffer, bodyStart: number, bodyEnd: number): boolean {
  const format = buf[bodyStart];
  return bodyEnd - bodyStart >= RECORD_FIXED_BYTES && knownFormat(format) && bodyEnd - bodyStart >= fixedBytes(format as number);
}

/**
 * Decodes the body `[bodyStart, bodyEnd)` of a checksum-verified record.
 * `data` is a view into `buf` (no copy): `buf` must not be reused.
 */
export function decodeRecord(buf: Buffer, bodyStart: number, bodyEnd: number): StoredRecord {
  if (!plausibleBody(buf, bodyStart, bodyEnd)) throw new RecordFormatError(`not a record of format ${RECORD_FORMAT} or ${RAFT_RECORD_FORMAT}`);
  const format = buf[bodyStart] as number;
  const flags = buf[bodyStart + 1] as number;
  const message: StoredRecord = {
    offset: readU64(buf, bodyStart + 2),
    timestamp: readU64(buf, bodyStart + 10),
    data: EMPTY,
    encoding: (flags & FLAG_MSGPACK) !== 0 ? 'msgpack' : 'raw',
  };
  if (format === RAFT_RECORD_FORMAT) {
    const at = bodyStart + RECORD_FIXED_BYTES;
    message.raft = { term: readU64(buf, at), firstOffset: readU64(buf, at + 8), count: buf.readUInt32BE(at + 16) };
  }
  let p = bodyStart + fixedBytes(format);
  if ((flags & FLAG_KEY) !== 0) {
    if (p + 2 > bodyEnd) throw new RecordFormatError('key length past the end of the record');
    const length = buf.readUInt16BE(p);
    if (p + 2 + length > bodyEnd) throw new RecordFormatError('key past the end of the record');
    message.key = buf.toString('utf8', p + 2, p + 2 + length);
    p += 2 + length;
  }
  if ((flags & FLAG_HEADERS) !== 0) {
    if (p + 4 > bodyEnd) throw new RecordFormatError('headers length past the end of the record');
    const length = buf.readUInt32BE(p);
    if (p + 4 + length > bodyEnd) throw new RecordFormatError('headers past the end of the record');
    message.headers = decodeHeaders(buf.subarray(p + 4, p + 4 + length));
    p += 4 + length;
  }
  message.data = new Uint8Array(buf.buffer, buf.byteOffset + p, bodyEnd - p);
  return message;
}

const EMPTY = new Uint8Array(0);

function decodeHeaders(bytes: Uint8Array): Record<string, string> {
  let value: unknown;
  try {
    value = decodeValue(bytes, HEADER_SCAN_LIMITS);
  } catch (err) {
    throw new RecordFormatError(`undecodable headers: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    throw new RecordFormatError('headers are not a map');
  }
  const entries = Object.entries(value);
  for (const [name, v] of entries) {
    if (typeof v !== 'string') throw new RecordFormatError(`header ${name} is not a string`);
  }
  // fromEntries defines properties: a header named __proto__ stays a header.
  return Object.fromEntries(entries) as Record<string, string>;
}
