/**
 * The sparse offset and time index of one segment: every `indexIntervalBytes`
 * of records (and at the first record), the record's offset relative to the
 * segment's base, its byte position, and its timestamp. A lookup lands on the
 * nearest entry below and scans forward at most one interval.
 *
 * On disk, written when a segment is sealed (the active segment's index lives
 * in memory only and is rebuilt by the scan on open):
 *
 * ```
 * NNN.idx  n × [u32 relative offset][u32 position]           + [u32 n][u32 crc32 of the entries]
 * NNN.tix  m × [f64 timestamp][u32 relative offset]          + [u32 m][u32 crc32 of the entries]
 * ```
 *
 * where the time index has one more entry than the offset index: the last
 * record of the segment (its newest timestamp, for retention by age).
 * A file that fails its checks is ignored and the index rebuilt from the log.
 */
import { crc32 } from 'node:zlib';

const IDX_ENTRY_BYTES = 8;
const TIX_ENTRY_BYTES = 12;
const TRAILER_BYTES = 8;
/**
 * Entries an index makes room for at its second entry, doubling from there.
 * The first entry is held in fields, not arrays: the active segment of an
 * idle partition holds one indexed record (its leader's first entry), and a
 * broker hosting thousands of partitions kept three arrays for each (about
 * 730 bytes with their buffers and headers, in a heap snapshot).
 */
const INITIAL_CAPACITY = 8;
const NO_U32 = new Uint32Array(0);
const NO_F64 = new Float64Array(0);

export class SparseIndex {
  private firstRel = 0;
  private firstPos = 0;
  private firstTs = 0;
  /** The entries after the first: entry `i` at `i - 1`. */
  private rel = NO_U32;
  private pos = NO_U32;
  private ts = NO_F64;
  private count = 0;

  get length(): number {
    return this.count;
  }

  /** Appends an entry; entries come in increasing offset and position. */
  push(relOffset: number, position: number, timestamp: number): void {
    if (this.count === 0) {
      this.firstRel = relOffset;
      this.firstPos = position;
      this.firstTs = timestamp;
      this.count = 1;
      return;
    }
    const at = this.count - 1;
    if (at === this.rel.length) {
      const capacity = Math.max(INITIAL_CAPACITY, this.rel.length * 2);
      this.rel = grow(this.rel, new Uint32Array(capacity));
      this.pos = grow(this.pos, new Uint32Array(capacity));
      this.ts = grow(this.ts, new Float64Array(capacity));
    }
    this.rel[at] = relOffset;
    this.pos[at] = position;
    this.ts[at] = timestamp;
    this.count++;
  }

  relOffsetAt(i: number): number {
    return i === 0 ? this.firstRel : (this.rel[i - 1] as number);
  }

  positionAt(i: number): number {
    return i === 0 ? this.firstPos : (this.pos[i - 1] as number);
  }

  timestampAt(i: number): number {
    return i === 0 ? this.firstTs : (this.ts[i - 1] as number);
  }

  /** The last entry at or below `relOffset`, or -1. */
  floorByOffset(relOffset: number): number {
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.relOffsetAt(mid) <= relOffset) lo = mid + 1;
      else hi = mid;
    }
    return lo - 1;
  }

  /** The last entry whose timestamp is below `timeMs`, or -1. */
  lastBeforeTime(timeMs: number): number {
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.timestampAt(mid) < timeMs) lo = mid + 1;
      else hi = mid;
    }
    return lo - 1;
  }

  /** Drops the entries at or after `relOffset`. */
  truncateFrom(relOffset: number): void {
    this.count = this.floorByOffset(relOffset - 1) + 1;
  }

  /** Bytes of memory held. */
  get memoryBytes(): number {
    return this.rel.byteLength + this.pos.byteLength + this.ts.byteLength;
  }

  /** The `.idx` file. */
  encodeOffsets(): Buffer {
    const out = Buffer.allocUnsafe(this.count * IDX_ENTRY_BYTES + TRAILER_BYTES);
    for (let i = 0; i < this.count; i++) {
      out.writeUInt32BE(this.relOffsetAt(i), i * IDX_ENTRY_BYTES);
      out.writeUInt32BE(this.positionAt(i), i * IDX_ENTRY_BYTES + 4);
    }
    return withTrailer(out, this.count);
  }

  /** The `.tix` file, closed by the segment's last record (`lastRelOffset`, `lastTimestamp`). */
  encodeTimes(lastRelOffset: number, lastTimestamp: number): Buffer {
    const entries = this.count === 0 ? 0 : this.count + 1;
    const out = Buffer.allocUnsafe(entries * TIX_ENTRY_BYTES + TRAILER_BYTES);
    for (let i = 0; i < entries; i++) {
      const last = i === this.count;
      out.writeDoubleBE(last ? lastTimestamp : this.timestampAt(i), i * TIX_ENTRY_BYTES);
      out.writeUInt32BE(last ? lastRelOffset : this.relOffsetAt(i), i * TIX_ENTRY_BYTES + 8);
    }
    return withTrailer(out, entries);
  }

  /**
   * Parses index files written by {@link encodeOffsets} and {@link encodeTimes}
   * for a segment of `segmentBytes`; `undefined` if anything is off.
   */
  static decode(
    idx: Uint8Array,
    tix: Uint8Array,
    segmentBytes: number,
  ): { index: SparseIndex; lastRelOffset: number; lastTimestamp: number } | undefined {
    const offsets = entriesOf(idx, IDX_ENTRY_BYTES);
    const times = entriesOf(tix, TIX_ENTRY_BYTES);
    if (offsets === undefined || times === undefined) return undefined;
    const n = offsets.length / IDX_ENTRY_BYTES;
    const m = times.length / TIX_ENTRY_BYTES;
    if (n === 0 || m !== n + 1) return undefined; // a sealed segment with records has both
    const index = new SparseIndex();
    let previousRel = -1;
    let previousPos = -1;
    let previousTs = -Infinity;
    for (let i = 0; i < m; i++) {
      const rel = times.readUInt32BE(i * TIX_ENTRY_BYTES + 8);
      const ts = times.readDoubleBE(i * TIX_ENTRY_BYTES);
      if (!Number.isSafeInteger(ts) || ts < previousTs) return undefined;
      if (i < n) {
        const pos = offsets.readUInt32BE(i * IDX_ENTRY_BYTES + 4);
        if (offsets.readUInt32BE(i * IDX_ENTRY_BYTES) !== rel || rel <= previousRel || pos <= previousPos || pos >= segmentBytes) return undefined;
        if (i === 0 && (rel !== 0 || pos !== 0)) return undefined;
        index.push(rel, pos, ts);
        previousPos = pos;
      } else if (rel < previousRel) {
        return undefined;
      }
      previousRel = rel;
      previousTs = ts;
    }
    return { index, lastRelOffset: previousRel, lastTimestamp: previousTs };
  }
}

function grow<A extends Uint32Array | Float64Array>(from: A, to: A): A {
  to.set(from);
  return to;
}

function withTrailer(out: Buffer, entries: number): Buffer {
  const body = out.length - TRAILER_BYTES;
  out.writeUInt32BE(entries, body);
  out.writeUInt32BE(crc32(out.subarray(0, body)), body + 4);
  return out;
}

function entriesOf(file: Uint8Array, entryBytes: number): Buffer | undefined {
  const buf = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  if (buf.length < TRAILER_BYTES || (buf.length - TRAILER_BYTES) % entryBytes !== 0) return undefined;
  const body = buf.length - TRAILER_BYTES;
  if (buf.readUInt32BE(body) !== body / entryBytes) return undefined;
  if (buf.readUInt32BE(body + 4) !== crc32(buf.subarray(0, body))) return undefined;
  return buf.subarray(0, body);
}
