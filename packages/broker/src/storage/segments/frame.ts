/**
 * The framing every storage file of relaymq uses, the same as `record-file.ts`:
 * `[u32 length][u32 crc32(body)][body]`, big-endian, the checksum being
 * `zlib.crc32` of the body.
 */
import { crc32 } from 'node:zlib';

/** length (u32) + crc32 of the body (u32). */
export const FRAME_HEADER_BYTES = 8;

/** What {@link checkFrame} found at a position. */
export type FrameCheck =
  /** A whole frame whose checksum matches: the body is `[bodyStart, bodyEnd)`. */
  | { kind: 'ok'; bodyStart: number; bodyEnd: number }
  /** The bytes end before the frame does (it may continue past this buffer). */
  | { kind: 'incomplete'; frameBytes: number | undefined }
  /** The length field is impossible, or the checksum does not match. */
  | { kind: 'bad'; reason: string };

/**
 * Checks the frame starting at `pos` in `buf`. `maxBodyBytes` bounds the
 * length field: anything larger is corruption, not a frame.
 */
export function checkFrame(buf: Buffer, pos: number, maxBodyBytes: number): FrameCheck {
  if (pos + FRAME_HEADER_BYTES > buf.length) return { kind: 'incomplete', frameBytes: undefined };
  const length = buf.readUInt32BE(pos);
  if (length > maxBodyBytes) return { kind: 'bad', reason: `length ${length} exceeds ${maxBodyBytes}` };
  const bodyStart = pos + FRAME_HEADER_BYTES;
  const bodyEnd = bodyStart + length;
  if (bodyEnd > buf.length) return { kind: 'incomplete', frameBytes: FRAME_HEADER_BYTES + length };
  if (crc32(buf.subarray(bodyStart, bodyEnd)) !== buf.readUInt32BE(pos + 4)) return { kind: 'bad', reason: 'checksum mismatch' };
  return { kind: 'ok', bodyStart, bodyEnd };
}

/** Fills in the header of a frame whose body already sits at `[pos + 8, pos + 8 + bodyLength)`. */
export function sealFrame(buf: Buffer, pos: number, bodyLength: number): void {
  const bodyStart = pos + FRAME_HEADER_BYTES;
  buf.writeUInt32BE(bodyLength, pos);
  buf.writeUInt32BE(crc32(buf.subarray(bodyStart, bodyStart + bodyLength)), pos + 4);
}

/** One frame holding `body`. */
export function frame(body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length);
  out.set(body, FRAME_HEADER_BYTES);
  sealFrame(out, 0, body.length);
  return out;
}

/** A `Buffer` view of `bytes`, without copying. */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
