import { protocolError, type RelayError } from './errors.js';

/** Bounds the structure of a msgpack value before anything decodes it. */
export interface ScanLimits {
  /** Deepest nesting of arrays and maps. */
  maxDepth: number;
  /** Most elements (array items plus map keys and values) in the whole value. */
  maxElements: number;
  /** Accept the msgpack timestamp extension (-1), decoded as a `Date`. */
  allowTimestamp: boolean;
}

/** Frame limits: frames nest a few levels only. */
export const FRAME_SCAN_LIMITS: Readonly<ScanLimits> = Object.freeze({
  maxDepth: 8,
  maxElements: 1_000_000,
  allowTimestamp: false,
});

/** Application payloads (`data` with `msgpack` encoding) may nest deeper and hold dates. */
export const PAYLOAD_SCAN_LIMITS: Readonly<ScanLimits> = Object.freeze({
  maxDepth: 64,
  maxElements: 1_000_000,
  allowTimestamp: true,
});

/**
 * Walks msgpack bytes without decoding them and throws `PROTOCOL_ERROR`
 * unless they hold exactly one value that is plain data: no extension types
 * (msgpackr would otherwise build records, errors, regexps or typed arrays,
 * and a record definition would even change how later frames decode), map
 * keys that are strings, nesting and element counts within `limits`, and no
 * declared length beyond the bytes present. It runs before msgpackr so that
 * the decoder never recurses deeply or allocates for a length it was told.
 */
export function scanMsgpack(bytes: Uint8Array, limits: Readonly<ScanLimits>): void {
  // Allocation-free (it runs on every frame, on both sides): no closures, no DataView, and the container stack
  // in reused typed arrays. Not reentrant, and it needs not be: it calls nothing that could scan again.
  const end = bytes.length;
  const stack = stackFor(Math.min(limits.maxDepth, end)); // each level takes a byte at least
  const { pending, flags } = stack;
  let pos = 0;
  let elements = 0;
  // pending[i]: values still to read in the container at depth i; flags[i]: IS_MAP and KEY_NEXT (next one is a map key).
  let depth = 0;
  pending[0] = 1;
  flags[0] = 0;

  while (depth >= 0) {
    if (pending[depth] === 0) {
      depth--;
      continue;
    }
    (pending[depth] as number)--;
    const flag = flags[depth] as number;
    const wantKey = (flag & KEY_NEXT) !== 0;
    if ((flag & IS_MAP) !== 0) flags[depth] = flag ^ KEY_NEXT;

    if (pos + 1 > end) throw truncated();
    const token = bytes[pos++] as number;
    const isString = (token >= 0xa0 && token <= 0xbf) || (token >= 0xd9 && token <= 0xdb);
    if (wantKey && !isString) throw protocolError('msgpack map key is not a string');

    if (token <= 0x7f || token >= 0xe0) continue; // fixints
    let skip = 0;
    /** A container opens: its element count (-1: none), and whether it is a map. */
    let count = -1;
    let map = false;
    if (token <= 0x8f) {
      count = token & 0x0f;
      map = true;
    } else if (token <= 0x9f) count = token & 0x0f;
    else if (token <= 0xbf) skip = token & 0x1f;
    else
      switch (token) {
        case 0xc0: case 0xc2: case 0xc3: break; // nil, false, true
        case 0xc4: case 0xd9: skip = readUint(bytes, pos, 1, end); pos += 1; break; // bin8, str8
        case 0xc5: case 0xda: skip = readUint(bytes, pos, 2, end); pos += 2; break; // bin16, str16
        case 0xc6: case 0xdb: skip = readUint(bytes, pos, 4, end); pos += 4; break; // bin32, str32
        case 0xca: skip = 4; break; // float32
        case 0xcb: skip = 8; break; // float64
        case 0xcc: case 0xd0: skip = 1; break;
        case 0xcd: case 0xd1: skip = 2; break;
        case 0xce: case 0xd2: skip = 4; break;
        case 0xcf: case 0xd3: skip = 8; break;
        case 0xdc: count = readUint(bytes, pos, 2, end); pos += 2; break;
        case 0xdd: count = readUint(bytes, pos, 4, end); pos += 4; break;
        case 0xde: count = readUint(bytes, pos, 2, end); pos += 2; map = true; break;
        case 0xdf: count = readUint(bytes, pos, 4, end); pos += 4; map = true; break;
        case 0xd6: // fixext 4: only the 32-bit timestamp
        case 0xd7: // fixext 8: only the 64-bit timestamp
          if (pos + 1 > end) throw truncated();
          if (!limits.allowTimestamp || bytes[pos] !== 0xff) throw protocolError('msgpack extension types are not allowed');
          skip = 1 + (token === 0xd6 ? 4 : 8);
          break;
        case 0xc7: // ext 8: only the 96-bit timestamp (msgpackr writes dates before 1970 or after 2106 so)
          if (pos + 2 > end) throw truncated();
          if (!limits.allowTimestamp || bytes[pos] !== 12 || bytes[pos + 1] !== 0xff) {
            throw protocolError('msgpack extension types are not allowed');
          }
          skip = 2 + 12;
          break;
        default:
          // 0xc1 (never used), ext 16/32, other ext 8 and the remaining fixext forms
          throw protocolError(`msgpack type 0x${token.toString(16)} is not allowed`);
      }
    if (skip > 0) {
      if (pos + skip > end) throw truncated();
      pos += skip;
    }
    if (count < 0) continue;
    const items = map ? count * 2 : count;
    // Every element takes at least one byte, so a count beyond the bytes left is a lie.
    if (items > end - pos) throw protocolError('msgpack container declares more elements than bytes');
    elements += items;
    if (elements > limits.maxElements) throw protocolError(`msgpack value has more than ${limits.maxElements} elements`);
    if (depth + 1 > limits.maxDepth) throw protocolError(`msgpack value nests deeper than ${limits.maxDepth}`);
    if (items === 0) continue;
    depth++;
    pending[depth] = items;
    flags[depth] = map ? IS_MAP | KEY_NEXT : 0;
  }
  if (pos !== end) throw protocolError('trailing bytes after the msgpack value');
}

const IS_MAP = 1;
const KEY_NEXT = 2;

/** The container stack {@link scanMsgpack} reuses: one level per depth it may reach, plus the top-level value. */
let scratch = { pending: new Float64Array(65), flags: new Uint8Array(65) };

function stackFor(maxDepth: number): typeof scratch {
  if (scratch.pending.length < maxDepth + 1) scratch = { pending: new Float64Array(maxDepth + 1), flags: new Uint8Array(maxDepth + 1) };
  return scratch;
}

function truncated(): RelayError {
  return protocolError('msgpack value is truncated');
}

/** A big-endian unsigned integer of `size` bytes at `pos`; throws when the bytes are not all there. */
function readUint(bytes: Uint8Array, pos: number, size: 1 | 2 | 4, end: number): number {
  if (pos + size > end) throw truncated();
  if (size === 1) return bytes[pos] as number;
  if (size === 2) return ((bytes[pos] as number) << 8) | (bytes[pos + 1] as number);
  return (bytes[pos] as number) * 0x1000000 + (((bytes[pos + 1] as number) << 16) | ((bytes[pos + 2] as number) << 8) | (bytes[pos + 3] as number));
}
