import { Packr } from 'msgpackr';
import { RelayError, protocolError } from './errors.js';
import type { BrokerFrame, ClientFrame } from './frames.js';
import { FRAME_SCAN_LIMITS, PAYLOAD_SCAN_LIMITS, scanMsgpack } from './scan.js';
import { validateBrokerFrame, validateClientFrame } from './validate.js';

/**
 * The one place msgpackr options are pinned. `pack`/`unpack` and `new Packr()`
 * have different defaults; every encode and decode in relaymq goes through
 * these instances so both sides always agree.
 */
const OPTIONS = {
  useRecords: false, // plain maps: records would make frames depend on decoder state
  mapsAsObjects: true,
  structuredClone: false,
  moreTypes: false,
  bundleStrings: false,
  encodeUndefinedAsNil: true, // undefined would otherwise become extension 0, which decoders reject
  int64AsType: 'number',
} as const;

/** Copies every decoded byte string: what the SDK hands to applications must not pin a whole frame. */
const packr = new Packr({ ...OPTIONS, copyBuffers: true });

/**
 * The broker's decoder for client frames: message bytes stay views into the
 * frame (no copy per message). Every message of a frame is stored alike, so
 * nothing is pinned that is not kept; frames are never reused, so views stay valid.
 */
const viewingUnpackr = new Packr({ ...OPTIONS, copyBuffers: false });

/** Encodes a value with the pinned options. */
export function encodeValue(value: unknown): Uint8Array {
  return packr.pack(value);
}

/**
 * Decodes msgpack bytes produced by {@link encodeValue}, after checking their
 * structure. Throws `PROTOCOL_ERROR` on anything malformed.
 */
export function decodeValue(bytes: Uint8Array, limits = FRAME_SCAN_LIMITS, decoder: Packr = packr): unknown {
  scanMsgpack(bytes, limits);
  try {
    return decoder.unpack(bytes);
  } catch (err) {
    throw new RelayError('PROTOCOL_ERROR', `undecodable msgpack: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Like {@link decodeValue} (the same structure check first), but every byte
 * string in the result is a view into `bytes`, not a copy: for a broker
 * reading back values it stored, where one copy per message cost ten times
 * the rest of the decode (a restart reading back its Raft log's tail). The
 * result pins `bytes`; do not modify `bytes` afterwards.
 */
export function decodeValueInPlace(bytes: Uint8Array, limits = FRAME_SCAN_LIMITS): unknown {
  return decodeValue(bytes, limits, viewingUnpackr);
}

/** Encodes a frame for the wire. */
export function encodeFrame(frame: ClientFrame | BrokerFrame): Uint8Array {
  return packr.pack(frame);
}

function checkSize(bytes: Uint8Array, maxPayload: number): void {
  if (bytes.length > maxPayload) {
    throw new RelayError('PAYLOAD_TOO_LARGE', `frame of ${bytes.length} bytes exceeds maxPayload ${maxPayload}`);
  }
}

/**
 * Decodes and validates a frame sent by a client. Throws `RelayError` on any
 * bad input. Message bytes in the result are views into `bytes`: do not
 * modify `bytes` afterwards.
 */
export function decodeClientFrame(bytes: Uint8Array, maxPayload: number): ClientFrame {
  checkSize(bytes, maxPayload);
  return validateClientFrame(decodeValue(bytes, FRAME_SCAN_LIMITS, viewingUnpackr));
}

/** Bytes of one {@link DataSlab} chunk; data of more than half of it gets a copy of its own. */
const SLAB_BYTES = 8192;

/**
 * Copies of delivered message data, packed into shared chunks as Node's
 * `Buffer` pool does: a message kept by an application pins at most one
 * 8 KiB chunk, never its frame, and a frame of 1,000 small messages costs no
 * `ArrayBuffer` per message (copying each one alone was about half the cost
 * of decoding a delivery: 1.2 against 0.7 µs of CPU per 128-byte message,
 * bench/read-path.ts).
 */
class DataSlab {
  private chunk = new Uint8Array(SLAB_BYTES);
  private used = 0;

  own(data: Uint8Array): Uint8Array {
    if (data.length > SLAB_BYTES / 2) {
      // Not `data.slice()`: on a Node Buffer that is a view, not a copy.
      const own = new Uint8Array(data.length);
      own.set(data);
      return own;
    }
    if (this.used + data.length > this.chunk.length) {
      this.chunk = new Uint8Array(SLAB_BYTES);
      this.used = 0;
    }
    const copy = this.chunk.subarray(this.used, (this.used += data.length));
    copy.set(data);
    return copy;
  }
}

const slab = new DataSlab();

/**
 * Decodes and validates a frame sent by a broker. Throws `RelayError` on any
 * bad input. Message data in the result never aliases `bytes` (see {@link DataSlab}).
 */
export function decodeBrokerFrame(bytes: Uint8Array, maxPayload: number): BrokerFrame {
  checkSize(bytes, maxPayload);
  // Views first (the validated frame keeps only known fields), then one copy of each message's data.
  const frame = validateBrokerFrame(decodeValue(bytes, FRAME_SCAN_LIMITS, viewingUnpackr));
  if (frame.type === 'message') for (const batch of frame.batches) for (const message of batch.messages) message.data = slab.own(message.data);
  return frame;
}

/** Encodes an application value as message `data` (`msgpack` encoding). */
export function encodePayload(value: unknown): Uint8Array {
  return packr.pack(value);
}

/** Decodes message `data` of `msgpack` encoding; dates are allowed, other extensions are not. */
export function decodePayload(bytes: Uint8Array): unknown {
  return decodeValue(bytes, PAYLOAD_SCAN_LIMITS);
}

export { protocolError };
