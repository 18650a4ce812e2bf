/**
 * Delivery straight from stored bytes (issue 12, "encode once"). A unified
 * record holds its Raft entry as the pinned msgpack codec wrote it, and in
 * it every message of the publish batch as the map the client sent
 * (`{ data, encoding?, key?, headers? }`). A delivery frame's message is the
 * same map plus `timestamp`. So instead of decoding the entry into objects
 * and encoding them again, the read path finds each stored message's bytes
 * (a structural walk, no objects) and copies them behind a new map header
 * and the record's timestamp: one copy of the payload, no allocation per
 * message. The result is an `EncodedMessages` (core/partition/message.ts).
 */
import { LogStorageError } from './segments/index.js';

/** Where one stored entry's messages are, found by {@link locateMessages}. */
export interface MessageSpans {
  /** Per message: where its map's entries start (after the map header). */
  bodies: number[];
  /** Per message: where its map ends. */
  ends: number[];
  /** Per message: its map's entry count. */
  fields: number[];
  /** Per message: bytes of its `data`. */
  dataBytes: number[];
}

const KEY_T = bytesOf('t');
const KEY_D = bytesOf('d');
const KEY_MESSAGES = bytesOf('messages');
const KEY_DATA = bytesOf('data');
const VALUE_NORMAL = bytesOf('normal');
/** `timestamp` as a msgpack fixstr, then the `uint 64` marker: the start of every message's timestamp field. */
const TIMESTAMP_FIELD = Buffer.from([0xa9, ...bytesOf('timestamp'), 0xcf]);
/** Bytes of the timestamp field: key, marker and 8 bytes of value. */
const TIMESTAMP_FIELD_BYTES = TIMESTAMP_FIELD.length + 8;
const TWO_32 = 2 ** 32;

function bytesOf(text: string): Uint8Array {
  return Buffer.from(text, 'utf8');
}

class Malformed extends Error {}

/** A cursor over msgpack bytes that never reads past `end` (a bad length throws {@link Malformed}). */
class Walk {
  constructor(
    readonly buf: Uint8Array,
    public pos: number,
    private readonly end: number,
  ) {}

  byte(): number {
    if (this.pos >= this.end) throw new Malformed('cut short');
    return this.buf[this.pos++] as number;
  }

  uint(bytes: number): number {
    if (this.pos + bytes > this.end) throw new Malformed('cut short');
    let value = 0;
    for (let i = 0; i < bytes; i++) value = value * 256 + (this.buf[this.pos++] as number);
    return value;
  }

  advance(bytes: number): void {
    if (this.pos + bytes > this.end) throw new Malformed('cut short');
    this.pos += bytes;
  }

  /** The length of a map at `pos` (consumes its header). */
  mapHeader(): number {
    const b = this.byte();
    if (b >= 0x80 && b <= 0x8f) return b & 0x0f;
    if (b === 0xde) return this.uint(2);
    if (b === 0xdf) return this.uint(4);
    throw new Malformed('expected a map');
  }

  /** The length of an array at `pos` (consumes its header). */
  arrayHeader(): number {
    const b = this.byte();
    if (b >= 0x90 && b <= 0x9f) return b & 0x0f;
    if (b === 0xdc) return this.uint(2);
    if (b === 0xdd) return this.uint(4);
    throw new Malformed('expected an array');
  }

  /** Whether the string at `pos` is `expected` (consumes it either way; anything but a string is not). */
  stringIs(expected: Uint8Array): boolean {
    return this.oneOf(expected) === 0;
  }

  /** Which of `first` (0) and `second` (1) the string at `pos` is, -1 for neither (consumes it either way; anything but a string is neither). */
  oneOf(first: Uint8Array, second?: Uint8Array): number {
    const b = this.buf[this.pos];
    let length: number;
    if (b !== undefined && b >= 0xa0 && b <= 0xbf) {
      this.pos++;
      length = b & 0x1f;
    } else if (b === 0xd9 || b === 0xda || b === 0xdb) {
      this.pos++;
      length = this.uint(b === 0xd9 ? 1 : b === 0xda ? 2 : 4);
    } else {
      this.skip();
      return -1;
    }
    const start = this.pos;
    this.advance(length);
    if (this.equals(start, length, first)) return 0;
    return second !== undefined && this.equals(start, length, second) ? 1 : -1;
  }

  private equals(start: number, length: number, expected: Uint8Array): boolean {
    if (length !== expected.length) return false;
    for (let i = 0; i < length; i++) if (this.buf[start + i] !== expected[i]) return false;
    return true;
  }

  /** The length of a byte string at `pos` (consumes it), or -1 (consumed) for any other value. */
  binLength(): number {
    const b = this.buf[this.pos];
    if (b !== 0xc4 && b !== 0xc5 && b !== 0xc6) {
      this.skip();
      return -1;
    }
    this.pos++;
    const length = this.uint(b === 0xc4 ? 1 : b === 0xc5 ? 2 : 4);
    this.advance(length);
    return length;
  }

  /** Skips one whole value (nested ones included), without recursion. */
  skip(): void {
    let pending = 1;
    while (pending > 0) {
      pending--;
      const b = this.byte();
      if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) continue;
      if (b <= 0x8f) pending += 2 * (b & 0x0f);
      else if (b <= 0x9f) pending += b & 0x0f;
      else if (b <= 0xbf) this.advance(b & 0x1f);
      else
        switch (b) {
          case 0xc4:
          case 0xd9:
            this.advance(this.uint(1));
            break;
          case 0xc5:
          case 0xda:
            this.advance(this.uint(2));
            break;
          case 0xc6:
          case 0xdb:
            this.advance(this.uint(4));
            break;
          case 0xc7:
            this.advance(this.uint(1) + 1);
            break;
          case 0xc8:
            this.advance(this.uint(2) + 1);
            break;
          case 0xc9:
            this.advance(this.uint(4) + 1);
            break;
          case 0xca:
          case 0xce:
          case 0xd2:
            this.advance(4);
            break;
          case 0xcb:
          case 0xcf:
          case 0xd3:
            this.advance(8);
            break;
          case 0xcc:
          case 0xd0:
            this.advance(1);
            break;
          case 0xcd:
          case 0xd1:
          case 0xd4:
            this.advance(2);
            break;
          case 0xd5:
            this.advance(3);
            break;
          case 0xd6:
            this.advance(5);
            break;
          case 0xd7:
            this.advance(9);
            break;
          case 0xd8:
            this.advance(17);
            break;
          case 0xdc:
            pending += this.uint(2);
            break;
          case 0xdd:
            pending += this.uint(4);
            break;
          case 0xde:
            pending += 2 * this.uint(2);
            break;
          case 0xdf:
            pending += 2 * this.uint(4);
            break;
          default:
            throw new Malformed(`byte 0x${b.toString(16)} is not msgpack`);
        }
    }
  }
}

/**
 * Finds messages `skip … skip + take - 1` of the `stored` last messages of
 * the publish batch in `entry` (a unified record's body:
 * `{ t: 'normal', d: { …, messages: [...] } }`; an entry stores the last
 * `count` messages of its batch), appending their spans to `out`. Throws
 * `STORAGE_CORRUPT` when the entry is not such a batch or holds fewer
 * messages (its CRC passed, so a bug or a foreign file: never served).
 */
export function locateMessages(entry: Uint8Array, stored: number, skip: number, take: number, out: MessageSpans, index: number): void {
  try {
    const walk = new Walk(entry, 0, entry.length);
    findMessages(walk);
    const total = walk.arrayHeader();
    if (stored > total || skip + take > stored) throw new Malformed(`holds ${total} messages, the record says it stores ${stored}`);
    for (let i = total - stored + skip; i > 0; i--) walk.skip();
    for (let i = 0; i < take; i++) {
      const fields = walk.mapHeader();
      const body = walk.pos;
      let data = -1;
      for (let f = 0; f < fields; f++) {
        if (walk.stringIs(KEY_DATA)) data = walk.binLength();
        else walk.skip();
      }
      if (data < 0) throw new Malformed(`a message has no data`);
      out.bodies.push(body);
      out.ends.push(walk.pos);
      out.fields.push(fields);
      out.dataBytes.push(data);
    }
  } catch (err) {
    if (!(err instanceof Malformed)) throw err;
    throw new LogStorageError('STORAGE_CORRUPT', `record ${index}: not a publish batch (${err.message})`, { offset: index });
  }
}

/** Moves `walk` to the value of `d.messages` of a normal entry (`t` and `d` in either order). */
function findMessages(walk: Walk): void {
  let normal = false;
  let batch = -1;
  for (let n = walk.mapHeader(); n > 0; n--) {
    const key = walk.oneOf(KEY_T, KEY_D);
    if (key === 0) normal = walk.stringIs(VALUE_NORMAL);
    else {
      if (key === 1) batch = walk.pos;
      walk.skip();
    }
  }
  if (!normal || batch < 0) throw new Malformed('not a normal entry');
  walk.pos = batch;
  for (let m = walk.mapHeader(); m > 0; m--) {
    if (walk.stringIs(KEY_MESSAGES)) return;
    walk.skip();
  }
  throw new Malformed('the batch has no messages');
}

/** Bytes the messages `from … to - 1` of `spans` take as delivery maps ({@link writeMessages}). */
export function encodedBytes(spans: MessageSpans, from: number, to: number): number {
  let bytes = 0;
  for (let i = from; i < to; i++) {
    const fields = (spans.fields[i] as number) + 1;
    bytes += (fields < 16 ? 1 : fields < 0x10000 ? 3 : 5) + TIMESTAMP_FIELD_BYTES + (spans.ends[i] as number) - (spans.bodies[i] as number);
  }
  return bytes;
}

/**
 * Writes the messages `from … to - 1` of `spans` (found in `entry`) into
 * `target` at `pos` as delivery maps: a map header one field longer, the
 * `timestamp` field, then the stored fields as they are. Returns the
 * position after them.
 */
export function writeMessages(target: Buffer, pos: number, entry: Buffer, spans: MessageSpans, from: number, to: number, timestamp: number): number {
  const high = Math.floor(timestamp / TWO_32);
  const low = timestamp >>> 0;
  for (let i = from; i < to; i++) {
    const fields = (spans.fields[i] as number) + 1;
    if (fields < 16) target[pos++] = 0x80 | fields;
    else if (fields < 0x10000) {
      target[pos] = 0xde;
      target.writeUInt16BE(fields, pos + 1);
      pos += 3;
    } else {
      target[pos] = 0xdf;
      target.writeUInt32BE(fields, pos + 1);
      pos += 5;
    }
    target.set(TIMESTAMP_FIELD, pos);
    pos += TIMESTAMP_FIELD.length;
    target.writeUInt32BE(high, pos);
    target.writeUInt32BE(low, pos + 4);
    pos += 8;
    const body = spans.bodies[i] as number;
    const end = spans.ends[i] as number;
    pos += entry.copy(target, pos, body, end);
  }
  return pos;
}
