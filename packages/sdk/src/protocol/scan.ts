import { protocolError } from './errors.js';

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
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.length;
  let pos = 0;
  let elements = 0;
  // pending[i]: values still to read in the container at depth i; keyNext[i]: next one is a map key.
  const pending: number[] = [1];
  const isMap: boolean[] = [false];
  const keyNext: boolean[] = [false];

  const need = (n: number): void => {
    if (pos + n > end) throw protocolError('msgpack value is truncated');
  };
  const skip = (n: number): void => {
    need(n);
    pos += n;
  };
  const open = (count: number, map: boolean): void => {
    const items = map ? count * 2 : count;
    // Every element takes at least one byte, so a count beyond the bytes left is a lie.
    if (items > end - pos) throw protocolError('msgpack container declares more elements than bytes');
    elements += items;
    if (elements > limits.maxElements) throw protocolError(`msgpack value has more than ${limits.maxElements} elements`);
    if (pending.length > limits.maxDepth) throw protocolError(`msgpack value nests deeper than ${limits.maxDepth}`);
    if (items === 0) return;
    pending.push(items);
    isMap.push(map);
    keyNext.push(map);
  };

  while (pending.length > 0) {
    const depth = pending.length - 1;
    if (pending[depth] === 0) {
      pending.pop();
      isMap.pop();
      keyNext.pop();
      continue;
    }
    pending[depth] = (pending[depth] as number) - 1;
    const wantKey = keyNext[depth] === true;
    if (isMap[depth] === true) keyNext[depth] = !wantKey;

    need(1);
    const token = bytes[pos++] as number;
    const isString = (token >= 0xa0 && token <= 0xbf) || (token >= 0xd9 && token <= 0xdb);
    if (wantKey && !isString) throw protocolError('msgpack map key is not a string');

    if (token <= 0x7f || token >= 0xe0) continue; // fixints
    if (token <= 0x8f) open(token & 0x0f, true);
    else if (token <= 0x9f) open(token & 0x0f, false);
    else if (token <= 0xbf) skip(token & 0x1f);
    else
      switch (token) {
        case 0xc0: case 0xc2: case 0xc3: break; // nil, false, true
        case 0xc4: case 0xd9: need(1); skip(view.getUint8(pos++)); break; // bin8, str8
        case 0xc5: case 0xda: need(2); pos += 2; skip(view.getUint16(pos - 2)); break; // bin16, str16
        case 0xc6: case 0xdb: need(4); pos += 4; skip(view.getUint32(pos - 4)); break; // bin32, str32
        case 0xca: skip(4); break; // float32
        case 0xcb: skip(8); break; // float64
        case 0xcc: case 0xd0: skip(1); break;
        case 0xcd: case 0xd1: skip(2); break;
        case 0xce: case 0xd2: skip(4); break;
        case 0xcf: case 0xd3: skip(8); break;
        case 0xdc: need(2); pos += 2; open(view.getUint16(pos - 2), false); break;
        case 0xdd: need(4); pos += 4; open(view.getUint32(pos - 4), false); break;
        case 0xde: need(2); pos += 2; open(view.getUint16(pos - 2), true); break;
        case 0xdf: need(4); pos += 4; open(view.getUint32(pos - 4), true); break;
        case 0xd6: // fixext 4: only the 32-bit timestamp
        case 0xd7: // fixext 8: only the 64-bit timestamp
          need(1);
          if (!limits.allowTimestamp || view.getInt8(pos) !== -1) throw protocolError('msgpack extension types are not allowed');
          skip(1 + (token === 0xd6 ? 4 : 8));
          break;
        case 0xc7: // ext 8: only the 96-bit timestamp (msgpackr writes dates before 1970 or after 2106 so)
          need(2);
          if (!limits.allowTimestamp || view.getUint8(pos) !== 12 || view.getInt8(pos + 1) !== -1) {
            throw protocolError('msgpack extension types are not allowed');
          }
          skip(2 + 12);
          break;
        default:
          // 0xc1 (never used), ext 16/32, other ext 8 and the remaining fixext forms
          throw protocolError(`msgpack type 0x${token.toString(16)} is not allowed`);
      }
  }
  if (pos !== end) throw protocolError('trailing bytes after the msgpack value');
}
