/**
 * The peer transport's frames (see peer-transport.ts): a 4-byte length, then
 * a msgpack map `{ c: channel, p: payload }` (one message) or a msgpack array
 * `[channel, payload, channel, payload, ...]` (a batch frame), and what a
 * peer tells of itself in its introduction (the batch frames it accepts, the
 * features it understands).
 */
import { encodeValue, type ScanLimits } from '@relaymq/sdk/protocol';

/** Peer frames carry Raft batches: deeper than client frames, same other rules. */
export const PEER_SCAN_LIMITS: ScanLimits = { maxDepth: 16, maxElements: 4_000_000, allowTimestamp: false };
export const HEADER_BYTES = 4;

/**
 * Most messages in one batch frame: a turn that queues more to one peer sends
 * them in several (each flushed as soon as it is full, so the backlog check
 * of `PeerTransport.send` sees the bytes of the earlier ones).
 */
export const BATCH_MAX_MESSAGES = 1024;

/** A length-prefixed frame: 4-byte length, then `body`. */
export function framed(body: Uint8Array): Buffer {
  const bytes = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  bytes.writeUInt32BE(body.length, 0);
  bytes.set(body, HEADER_BYTES);
  return bytes;
}

/**
 * Frames shorter than this are copied whole into one buffer and written at
 * once: Node hands out buffers below half its pool (`Buffer.poolSize`, 8 KiB)
 * as slices of that pool, so the copy allocates no memory of its own, while a
 * two-chunk `writev` leaves about 1.5 KB of garbage per frame (the corked
 * write requests, the chunk list, its write request): an awaited publish's
 * frames between the brokers (an append, its answer, the commit) are all
 * this small.
 */
export const COPIED_FRAME_BELOW_BYTES = 4096;

/**
 * Writes `body` as a frame. A large one goes without copying it: its 4-byte
 * length and the body go out in one `writev`. `body` must not change until
 * written: the pinned codec never writes over bytes it returned (a later
 * encode goes after them, or into a new buffer), so an encoding may be
 * written as is. A frame of a Raft append carries every payload of it:
 * copying it into a frame buffer was one more copy of every message, per
 * follower. A small one is copied (see {@link COPIED_FRAME_BELOW_BYTES}).
 */
export function writeFramed(socket: { cork(): void; uncork(): void; write(chunk: Uint8Array): boolean }, body: Uint8Array): void {
  if (HEADER_BYTES + body.length < COPIED_FRAME_BELOW_BYTES) {
    socket.write(framed(body));
    return;
  }
  const header = Buffer.allocUnsafe(HEADER_BYTES);
  header.writeUInt32BE(body.length, 0);
  socket.cork();
  socket.write(header);
  socket.write(body);
  socket.uncork();
}

/** The bytes of a single frame's msgpack map `{ c: channel, p: payload }` before the encoded channel, and between it and the encoded payload. */
export const SINGLE_C = Uint8Array.of(0x82, 0xa1, 0x63);
export const SINGLE_P = Uint8Array.of(0xa1, 0x70);
/** A batch frame's msgpack array header (array 32: 0xdd and a 4-byte count). */
export const BATCH_HEADER_BYTES = 5;

/** A batch frame of values encoded apart (channel, payload, channel, payload...), `bytes` long together. */
export function batchFrame(values: readonly Uint8Array[], bytes: number): Buffer {
  const frameBytes = Buffer.allocUnsafe(HEADER_BYTES + BATCH_HEADER_BYTES + bytes);
  frameBytes.writeUInt32BE(BATCH_HEADER_BYTES + bytes, 0);
  frameBytes[HEADER_BYTES] = 0xdd;
  frameBytes.writeUInt32BE(values.length, HEADER_BYTES + 1);
  let at = HEADER_BYTES + BATCH_HEADER_BYTES;
  for (const value of values) {
    frameBytes.set(value, at);
    at += value.length;
  }
  return frameBytes;
}

/** A frame of one message: a msgpack map `{ c: channel, p: payload }`. */
export function frame(channel: string, payload: unknown): Buffer {
  return framed(encodeValue({ c: channel, p: payload }));
}

/**
 * The largest batch frame this broker accepts, told to peers in its
 * introduction (`batch`): its frame limit, and no more bytes than the scan
 * allows elements (every msgpack element takes at least one byte, so a batch
 * of that many bytes can never hold too many).
 */
export function batchLimit(maxFrameBytes: number): number {
  return Math.min(maxFrameBytes, PEER_SCAN_LIMITS.maxElements);
}

/** What a peer told of itself in its introduction, besides who it is. */
export interface Capabilities {
  /** The largest batch frame it accepts; 0 when it told none (a broker from before batch frames). */
  batchBytes: number;
  /** The features it told (`PeerTransportOptions.features`). */
  features: ReadonlySet<string>;
}

export const NO_FEATURES: ReadonlySet<string> = new Set();

/** Reads a peer's {@link Capabilities} from its `hello` or `welcome`; a broker from before them told none. */
export function toldCapabilities(introduction: unknown): Capabilities {
  const { batch, features } = (typeof introduction === 'object' && introduction !== null ? introduction : {}) as { batch?: unknown; features?: unknown };
  const batchBytes = typeof batch === 'number' && Number.isSafeInteger(batch) && batch > 0 ? batch : 0;
  const told = Array.isArray(features) ? features.filter((f): f is string => typeof f === 'string' && f.length <= 64).slice(0, 64) : [];
  return { batchBytes, features: told.length === 0 ? NO_FEATURES : new Set(told) };
}
