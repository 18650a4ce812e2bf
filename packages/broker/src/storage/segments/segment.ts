/**
 * One segment of a partition log: the file `<base offset, 20 digits>.log`
 * holding records with offsets from `base`, its sparse index, and what the
 * log knows of its bytes (appended, written, durable). Also the recovery
 * scan that validates a segment file record by record.
 */
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { FileHandle } from '../fs.js';
import type { CachedFile } from '../open-files.js';
import { FRAME_HEADER_BYTES, checkFrame } from './frame.js';
import { MIN_RECORD_FRAME_BYTES, RECORD_FIXED_BYTES, knownFormat, peekOffset, peekTimestamp, plausibleBody } from './record.js';
import { SparseIndex } from './sparse-index.js';

const NAME_DIGITS = 20;
const NAME_PATTERN = /^(\d{20})\.(log|idx|tix)$/;

export type SegmentFileKind = 'log' | 'idx' | 'tix';

/** `00000000000000000042.log` for base offset 42. */
export function segmentFileName(base: number, kind: SegmentFileKind): string {
  return `${String(base).padStart(NAME_DIGITS, '0')}.${kind}`;
}

/** The base offset and kind of a segment file name, or `undefined` for any other file. */
export function parseSegmentFileName(name: string): { base: number; kind: SegmentFileKind } | undefined {
  const match = NAME_PATTERN.exec(name);
  if (match === null) return undefined;
  const base = Number(match[1]);
  if (!Number.isSafeInteger(base)) return undefined;
  return { base, kind: match[2] as SegmentFileKind };
}

export class Segment {
  /** Offset after the last record (appended, not necessarily written). */
  end: number;
  /** Bytes of records appended, written or not: the position of the next record. */
  size = 0;
  /** Bytes known to be in the file, written in full. */
  written = 0;
  /** Bytes known to be on disk (fsynced). */
  durable = 0;
  /**
   * Bytes of the file holding whole records, written by this log (or found
   * on open), fsynced or not: what a process killed now would leave. At
   * least `durable`; above `written` while a failure's rewrite is pending.
   */
  intact = 0;
  index = new SparseIndex();
  lastIndexedPosition = Number.NEGATIVE_INFINITY;
  firstTimestamp: number | undefined;
  lastTimestamp: number | undefined;
  /** Fsynced in full and closed for appends; its index files were written. */
  sealed = false;
  /** The file exists and its directory entry is durable. */
  fileCreated = false;
  handle: FileHandle | undefined;
  handleWritable = false;
  /** Handles replaced while reads were using them; closed when the last read ends. */
  retired: FileHandle[] = [];
  /** Reads in flight. */
  users = 0;
  deleted = false;
  /** This segment's entry in the broker-wide bound on open files, made when its file is first opened. */
  cachedFile: CachedFile | undefined;

  constructor(
    /** The log's directory (its string, shared by every segment of the log). */
    private readonly dir: string,
    readonly base: number,
  ) {
    this.end = base;
  }

  /**
   * The files' paths, made when needed (opening, sealing, deleting, recovery):
   * kept as fields, they cost each idle partition about 100 bytes each in a
   * heap snapshot (strings `join` left as ropes of their parts).
   */
  get logPath(): string {
    return join(this.dir, segmentFileName(this.base, 'log'));
  }

  get idxPath(): string {
    return `${this.logPath.slice(0, -3)}idx`;
  }

  get tixPath(): string {
    return `${this.logPath.slice(0, -3)}tix`;
  }

  /** Notes a record at `position` in the index and the bounds. */
  noteRecord(offset: number, position: number, frameBytes: number, timestamp: number, indexIntervalBytes: number, forceIndex = false): void {
    if (forceIndex || this.index.length === 0 || position - this.lastIndexedPosition >= indexIntervalBytes) {
      this.index.push(offset - this.base, position, timestamp);
      this.lastIndexedPosition = position;
    }
    if (this.firstTimestamp === undefined) this.firstTimestamp = timestamp;
    this.lastTimestamp = timestamp;
    this.end = offset + 1;
    this.size = position + frameBytes;
  }

  /** Average record size, for sizing reads. */
  averageRecordBytes(): number {
    const count = this.end - this.base;
    return count > 0 ? Math.max(MIN_RECORD_FRAME_BYTES, this.size / count) : 256;
  }
}

/** Damage found by a scan. */
export interface ScannedCorruption {
  offset: number;
  /** `undefined`: up to the end of the segment (the caller knows where the next segment starts). */
  endOffset: number | undefined;
  position: number;
  resumePosition: number;
  reason: string;
}

/** What {@link scanSegment} found. */
export interface ScanFindings {
  /** Where the valid records end. */
  validBytes: number;
  corruptions: ScannedCorruption[];
  /** For the active segment: a torn or corrupt tail to cut at `validBytes`. */
  tail: { position: number; bytes: number; reason: string } | undefined;
}

export interface ScanLimits {
  maxRecordBytes: number;
  indexIntervalBytes: number;
  chunkBytes: number;
  /** Most bytes read at once while looking for valid records after damage. */
  resyncWindowBytes: number;
}

/**
 * Reads a whole segment file and checks every record: frame, checksum,
 * format, dense offsets from the segment's base. Fills in `segment`'s index,
 * bounds and size from the valid records.
 *
 * Damage followed by valid records (a valid checksum and a later offset) is
 * corruption in the middle, reported with the offsets it hides. Damage with
 * nothing valid after it is, in the active segment (`active`), a torn or
 * corrupt tail: what a crash mid-write leaves, never acknowledged, cut off by
 * the caller. In a sealed segment, which was fsynced whole before the next
 * one was created, it is corruption up to the end of the segment.
 */
export async function scanSegment(handle: FileHandle, fileBytes: number, segment: Segment, active: boolean, limits: ScanLimits): Promise<ScanFindings> {
  const corruptions: ScannedCorruption[] = [];
  let expected = segment.base;
  let pos = 0;
  let forceIndex = false;
  let want = limits.chunkBytes;
  // Bounded: every turn either consumes at least one record, or moves `pos` forward, or returns.
  while (pos < fileBytes) {
    const length = Math.min(Math.max(want, limits.chunkBytes), fileBytes - pos);
    const buf = Buffer.allocUnsafe(length);
    const read = await handle.read(buf, pos);
    const chunk = read < length ? buf.subarray(0, read) : buf;
    want = limits.chunkBytes;
    let i = 0;
    let damage: string | undefined;
    while (i < chunk.length) {
      const check = checkFrame(chunk, i, limits.maxRecordBytes);
      if (check.kind === 'incomplete') {
        const frameEnd = pos + i + (check.frameBytes ?? FRAME_HEADER_BYTES);
        if (frameEnd > fileBytes || read < length) damage = 'record cut short by the end of the file';
        else want = check.frameBytes ?? FRAME_HEADER_BYTES;
        break;
      }
      if (check.kind === 'bad') {
        damage = check.reason;
        break;
      }
      if (!plausibleBody(chunk, check.bodyStart, check.bodyEnd)) {
        damage = 'not a record';
        break;
      }
      const offset = peekOffset(chunk, check.bodyStart);
      if (offset < expected) {
        damage = `offset ${offset} where ${expected} was expected`;
        break;
      }
      if (offset > expected) {
        // A valid record after a hole: the records in between are missing.
        const reason = `records ${expected}..${offset - 1} missing`;
        corruptions.push({ offset: expected, endOffset: offset, position: pos + i, resumePosition: pos + i, reason });
        expected = offset;
        forceIndex = true;
      }
      segment.noteRecord(offset, pos + i, check.bodyEnd - i, peekTimestamp(chunk, check.bodyStart), limits.indexIntervalBytes, forceIndex);
      forceIndex = false;
      expected++;
      i = check.bodyEnd;
    }
    if (damage === undefined) {
      pos += i;
      if (i === 0 && chunk.length === 0) break; // the file shrank under us
      continue;
    }
    const at = pos + i;
    const resync = await findNextRecord(handle, at, fileBytes, expected, limits);
    if (resync !== undefined) {
      corruptions.push({ offset: expected, endOffset: resync.offset, position: at, resumePosition: resync.position, reason: damage });
      expected = resync.offset;
      pos = resync.position;
      forceIndex = true;
      continue;
    }
    if (active) return { validBytes: at, corruptions, tail: { position: at, bytes: fileBytes - at, reason: damage } };
    corruptions.push({ offset: expected, endOffset: undefined, position: at, resumePosition: fileBytes, reason: damage });
    return { validBytes: at, corruptions, tail: undefined };
  }
  return { validBytes: pos, corruptions, tail: undefined };
}

/**
 * Looks after damage at `from` for the first position holding a whole,
 * checksum-valid record with an offset above `expected` (and no further
 * above it than the bytes left could hold). Reads windows of
 * `resyncWindowBytes` (plus room for one record).
 */
async function findNextRecord(
  handle: FileHandle,
  from: number,
  fileBytes: number,
  expected: number,
  limits: ScanLimits,
): Promise<{ position: number; offset: number } | undefined> {
  const maxOffset = expected + Math.ceil((fileBytes - from) / MIN_RECORD_FRAME_BYTES);
  let start = from + 1;
  // Bounded: each window advances `start` by `resyncWindowBytes`.
  while (start + MIN_RECORD_FRAME_BYTES <= fileBytes) {
    const length = Math.min(limits.resyncWindowBytes + limits.maxRecordBytes + FRAME_HEADER_BYTES, fileBytes - start);
    const buf = Buffer.allocUnsafe(length);
    const read = await handle.read(buf, start);
    const last = Math.min(read - MIN_RECORD_FRAME_BYTES, limits.resyncWindowBytes - 1);
    for (let q = 0; q <= last; q++) {
      const bodyLength = buf.readUInt32BE(q);
      if (bodyLength < RECORD_FIXED_BYTES || bodyLength > limits.maxRecordBytes) continue;
      const bodyStart = q + FRAME_HEADER_BYTES;
      const bodyEnd = bodyStart + bodyLength;
      if (bodyEnd > read || !knownFormat(buf[bodyStart])) continue;
      const offset = peekOffset(buf, bodyStart);
      if (offset <= expected || offset > maxOffset) continue;
      if (crc32(buf.subarray(bodyStart, bodyEnd)) !== buf.readUInt32BE(q + 4)) continue;
      return { position: start + q, offset };
    }
    start += limits.resyncWindowBytes;
  }
  return undefined;
}
