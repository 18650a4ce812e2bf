/**
 * The on-disk log of one partition: a directory of segment files, each a run
 * of CRC-checked records with a sparse offset and time index. See
 * docs/storage.md for the format, the recovery rules and the fsync policies.
 */
import { dirname, join } from 'node:path';
import type { StoredMessage } from '../../core/partition/partition.js';
import type { OpenSync } from '../clean-shutdown.js';
import { errorCode, readWholeFile, takeInlineSync, type FileHandle, type FileSystem } from '../fs.js';
import { FileTaskChain, type CachedFile } from '../open-files.js';
import { LogStorageError, ioError } from './errors.js';
import { checkFrame, FRAME_HEADER_BYTES } from './frame.js';
import {
  resolveSegmentLogOptions,
  type CorruptRange,
  type LogHealthStatus,
  type ResolvedSegmentLogOptions,
  type SegmentLogOptions,
  type StorageEvent,
} from './options.js';
import {
  decodeRecord,
  measureRecord,
  peekOffset,
  peekTimestamp,
  plausibleBody,
  writeRecord,
  RecordFormatError,
  type MeasuredRecord,
  type NewMessage,
  type StoredRecord,
} from './record.js';
import { parseSegmentFileName, scanSegment, Segment, type ScanFindings, type ScanLimits } from './segment.js';
import { SparseIndex } from './sparse-index.js';
import { TailCache } from './tail-cache.js';

/** What opening a log found and did. */
export interface RecoveryReport {
  /** Segment files found (or the one created for a new log). */
  segments: number;
  /** A torn or corrupt tail of the active segment, cut off. */
  truncatedTail: { segment: string; position: number; bytes: number; reason: string } | undefined;
  /** Damage found in the middle of the log; nothing of it was deleted. */
  corruptions: CorruptRange[];
  /** Index files that were missing or invalid and were rebuilt from the log. */
  rebuiltIndexes: number;
}

/** Retention of one topic; every limit is optional. Only whole sealed segments are deleted, oldest first. */
export interface RetentionPolicy {
  /** Delete a segment once its newest record is older than this. */
  maxAgeMs?: number;
  /** Delete the oldest segments while the log holds more bytes than this (the active segment is always kept). */
  maxBytes?: number;
  /** Delete the oldest segments while the log holds more messages than this. */
  maxMessages?: number;
}

/** What {@link SegmentLog.applyRetention} deleted. */
export interface RetentionResult {
  deletedSegments: number;
  deletedBytes: number;
  /** The log's first offset afterwards. */
  startOffset: number;
}

/** The health of a log: see {@link LogHealthStatus}. */
export interface LogHealth {
  status: LogHealthStatus;
  /** The failure that makes the log degraded, until a retry succeeds. */
  writeError: LogStorageError | undefined;
  /** Damaged ranges: while any remains, this replica must not lead the partition. */
  corruptions: readonly CorruptRange[];
}

/** Records appended to one segment, written together. */
interface Batch {
  segment: Segment;
  chunks: Buffer[];
  bytes: number;
  /** Offset after its last record. */
  endOffset: number;
  /** The segment is full: after this batch it is fsynced and sealed. */
  seal: boolean;
}

/**
 * The interval fsync in flight: it runs beside the task chain, so writes go
 * on while it runs (an fdatasync covers what was written before it started;
 * later writes wait for the next one). `promise` never rejects.
 */
interface BackgroundSync {
  segment: Segment;
  promise: Promise<void>;
}

/** How {@link SegmentLog.walk} ended. */
type WalkEnd = { kind: 'end'; nextOffset: number } | { kind: 'stopped' } | { kind: 'corrupt'; range: CorruptRange };

type Visit = (buf: Buffer, bodyStart: number, bodyEnd: number, offset: number, position: number) => boolean;

/**
 * The first arena of a log, and of a batch after small ones. Small enough
 * to come from Node's shared buffer pool: an idle partition's tail cache
 * holds views of its last records, so each arena it last wrote stays
 * allocated (at 16 KiB, a unified partition with only its first Raft
 * entries kept 16 KiB, 160 MiB over 10,000 of them). Arenas grow by
 * doubling with the batch (up to {@link MAX_ARENA_BYTES}).
 */
const MIN_ARENA_BYTES = 512;
const MAX_ARENA_BYTES = 1024 * 1024;
/**
 * A batch up to this size is written on the event loop's thread when the file
 * system can (`FileHandle.writeSync`): a copy into the page cache takes a few
 * microseconds, a hop through the libuv thread pool 150–500 µs under load,
 * and that hop sat on every acknowledgement's path (a follower answers only
 * once written). Larger batches (catch-up, a backlog) go through the pool
 * and do not stall the loop. The fdatasync of at most this many unsynced
 * bytes may run on the loop's thread too (see `takeInlineSync`).
 */
const SYNC_WRITE_MAX_BYTES = 256 * 1024;
const MIN_READ_BYTES = 16 * 1024;
const RESYNC_WINDOW_BYTES = 4 * 1024 * 1024;
const MAX_INDEX_FILE_BYTES = 64 * 1024 * 1024;
/** Bytes of a read budgeted per record beyond its data. */
const READ_OVERHEAD_BYTES = 64;

/**
 * An append-only partition log on disk.
 *
 * - `append` assigns offsets and buffers records in memory (synchronous);
 *   `flush` writes everything appended so far in one write per segment and,
 *   with `fsync: 'always'`, one fdatasync: group commit. Concurrent `flush`
 *   calls share the next flush.
 * - Reads are sequential from the OS page cache, recent records from memory.
 * - A failed write or fsync makes the log `degraded`: the flush rejects with
 *   `STORAGE_FULL` or `STORAGE_IO`, appends are refused, reads go on, and the
 *   records not yet durable are kept in memory and written again (from the
 *   last durable position) by the next flush or the automatic retry.
 * - Damage in the middle of the log makes it `corrupt`: reads of the damaged
 *   range fail with `STORAGE_CORRUPT`, nothing is deleted, appends go on.
 */
export class SegmentLog {
  private readonly segments: Segment[];
  private readonly cache: TailCache;
  /** Appended, not written yet, in order. The last may still receive appends (`openBatch`). */
  private pending: Batch[] = [];
  private openBatch: Batch | undefined;
  /** Written, not fsynced: all of the segment written last. */
  private unsynced: Batch[] = [];
  private unsyncedBytes = 0;
  private arena: Buffer | undefined;
  private arenaStart = 0;
  private arenaUsed = 0;
  private lastBatchBytes = 0;

  private nextOffset: number;
  private writtenEnd: number;
  private durableEnd: number;
  private lastTimestamp: number | undefined;

  private writeError: LogStorageError | undefined;
  private readonly corrupt: CorruptRange[];
  private closing = false;
  private closed = false;
  /** truncateFrom or reset calls queued or running: appends wait for none, they are refused. */
  private truncations = 0;

  /** Every operation that changes files runs on this chain, one at a time; while one runs, no handle of this log is closed to honour the open-file bound. */
  private readonly tasks: FileTaskChain;
  private queuedFlush: { sync: boolean; promise: Promise<void> } | undefined;
  private inFlight: { sync: boolean; target: number; promise: Promise<void> } | undefined;
  private syncTimer: unknown;
  /** The interval fsync running beside the chain; every chain task that fsyncs, truncates, closes or deletes its file waits for it first. */
  private backgroundSync: BackgroundSync | undefined;
  /** That fsync failed (already reported as the write error): the next flush, or the task queued when it failed, rewinds and arms the retry. */
  private backgroundFailure: LogStorageError | undefined;
  private retryTimer: unknown;
  /** Sealed segments holding a read handle, least recently used first (created with the first: an idle partition's log has none). */
  private openSealed: Set<Segment> | undefined;

  private constructor(
    readonly dir: string,
    private readonly fs: FileSystem,
    private readonly options: ResolvedSegmentLogOptions,
    segments: Segment[],
    corrupt: CorruptRange[],
    /** What opening found. */
    readonly recovery: RecoveryReport,
  ) {
    this.segments = segments;
    this.corrupt = corrupt;
    const active = segments[segments.length - 1] as Segment;
    this.nextOffset = active.end;
    this.writtenEnd = active.end;
    this.durableEnd = active.end;
    for (let i = segments.length - 1; i >= 0 && this.lastTimestamp === undefined; i--) this.lastTimestamp = segments[i]?.lastTimestamp;
    this.cache = new TailCache(active.end);
    this.tasks = new FileTaskChain(options.openFiles);
    for (const segment of segments) if (segment.handle !== undefined) this.options.openFiles.opened(this.cachedFile(segment));
  }

  /**
   * Opens the log in `dir` (creating it), recovering from whatever a crash
   * left: see {@link RecoveryReport}. Throws only when the files cannot be read.
   */
  static async open(dir: string, fs: FileSystem, options: SegmentLogOptions = {}): Promise<SegmentLog> {
    const opts = resolveSegmentLogOptions(options);
    if ((await fs.stat(dir)) === undefined) {
      await fs.mkdir(dir);
      await fs.syncDir(dirname(dir));
    }
    const bases = new Set<number>();
    const indexFiles: Array<{ base: number; name: string }> = [];
    for (const name of await fs.readdir(dir)) {
      const parsed = parseSegmentFileName(name);
      if (parsed === undefined) continue;
      if (parsed.kind === 'log') bases.add(parsed.base);
      else indexFiles.push({ base: parsed.base, name });
    }
    // Index files without their segment are leftovers of a deletion cut short.
    for (const { base, name } of indexFiles) if (!bases.has(base)) await unlinkQuietly(fs, join(dir, name));
    const sorted = [...bases].sort((a, b) => a - b);
    const report: RecoveryReport = { segments: sorted.length, truncatedTail: undefined, corruptions: [], rebuiltIndexes: 0 };
    const limits: ScanLimits = {
      maxRecordBytes: opts.maxRecordBytes,
      indexIntervalBytes: opts.indexIntervalBytes,
      chunkBytes: Math.max(opts.readChunkBytes, 4 * 1024 * 1024),
      resyncWindowBytes: RESYNC_WINDOW_BYTES,
    };
    const events: StorageEvent[] = [];
    const segments: Segment[] = [];
    if (sorted.length === 0) {
      const segment = new Segment(dir, opts.initialOffset);
      const handle = await fs.open(segment.logPath, 'write');
      segment.handle = handle;
      segment.handleWritable = true;
      try {
        await fs.syncDir(dir);
      } catch (err) {
        // No log to close it later: a descriptor dropped here stays open until a garbage collection closes it.
        await handle.close().catch(() => {});
        throw err;
      }
      segment.fileCreated = true;
      segments.push(segment);
      report.segments = 1;
    }
    for (let i = 0; i < sorted.length; i++) {
      const segment = new Segment(dir, sorted[i] as number);
      const nextBase = sorted[i + 1];
      if (nextBase === undefined) await loadActive(fs, segment, limits, report, events, opts.openSync);
      else await loadSealed(fs, segment, nextBase, opts.verifyOnOpen, limits, report, events);
      segments.push(segment);
    }
    // Segments must follow each other without holes or overlaps.
    for (let i = 0; i + 1 < segments.length; i++) {
      const segment = segments[i] as Segment;
      const next = segments[i + 1] as Segment;
      if (segment.end < next.base) {
        const reason = `records ${segment.end}..${next.base - 1} missing`;
        const range = { segment: segment.logPath, offset: segment.end, endOffset: next.base, position: segment.size, reason };
        report.corruptions.push(range);
        segment.end = next.base;
      } else if (segment.end > next.base) {
        const reason = `overlaps segment ${segment.base}`;
        const range = { segment: next.logPath, offset: next.base, endOffset: Math.min(segment.end, next.end), position: 0, reason };
        report.corruptions.push(range);
        segment.end = next.base;
      }
    }
    for (const range of report.corruptions) events.push({ kind: 'corruption', range });
    // A copy of exactly its length: the array grown by `push` keeps room for 17 (an idle partition's log has one segment).
    const log = new SegmentLog(dir, fs, opts, segments.slice(), [...report.corruptions], report);
    for (const event of events) log.emit(event);
    if (report.corruptions.length > 0) log.emit({ kind: 'health', status: 'corrupt', error: undefined });
    return log;
  }

  // ---- state ---------------------------------------------------------------------

  /** First offset stored. */
  get startOffset(): number {
    return (this.segments[0] as Segment).base;
  }

  /** Offset the next appended record gets. */
  get endOffset(): number {
    return this.nextOffset;
  }

  /** Records below this offset are fsynced. */
  get durableOffset(): number {
    return this.durableEnd;
  }

  /** Bytes appended but not yet written to the file. */
  get pendingBytes(): number {
    let bytes = 0;
    for (const batch of this.pending) bytes += batch.bytes;
    return bytes;
  }

  /** Bytes of all segments, appended records included. */
  get sizeBytes(): number {
    let bytes = 0;
    for (const segment of this.segments) bytes += segment.size;
    return bytes;
  }

  /** Number of segment files. */
  get segmentCount(): number {
    return this.segments.length;
  }

  /** Base offsets of the segments, oldest first. */
  segmentBases(): number[] {
    return this.segments.map((segment) => segment.base);
  }

  /** Resolves once every operation started so far (including timer-driven fsyncs and retries) has finished. */
  async settled(): Promise<void> {
    for (;;) {
      await this.tasks.settled();
      const running = this.backgroundSync;
      if (running === undefined) return;
      await running.promise;
    }
  }

  health(): LogHealth {
    return { status: this.status(), writeError: this.writeError, corruptions: [...this.corrupt] };
  }

  /** The failed write or fsync that refuses appends until a retry succeeds (whether or not the log is also damaged). */
  get writeFailure(): LogStorageError | undefined {
    return this.writeError;
  }

  /** Whether damaged ranges are known; cheaper than {@link health} for a check on every request. */
  get damaged(): boolean {
    return this.corrupt.length > 0;
  }

  private status(): LogHealthStatus {
    if (this.corrupt.length > 0) return 'corrupt';
    return this.writeError === undefined ? 'ok' : 'degraded';
  }

  // ---- append and flush --------------------------------------------------------------

  /**
   * Appends `messages` with the next offsets (returned: the first one) and
   * buffers them; `flush` makes them durable. A timestamp below the previous
   * record's is raised to it, so timestamps never decrease. The data is copied:
   * the caller may reuse its buffers.
   *
   * Throws `STORAGE_FULL` / `STORAGE_IO` while the log is degraded,
   * `STORAGE_CLOSED` once closed, and `RangeError` for a record over
   * `maxRecordBytes`, a key over 65535 bytes or a bad timestamp (then nothing is appended).
   */
  append(messages: readonly NewMessage[]): number {
    this.assertWritable();
    const measured: MeasuredRecord[] = [];
    for (const message of messages) {
      if (!Number.isSafeInteger(message.timestamp) || message.timestamp < 0) {
        throw new RangeError(`timestamp must be a non-negative integer, got ${message.timestamp}`);
      }
      const m = measureRecord(message);
      if (m.frameBytes > this.options.maxRecordBytes) {
        throw new RangeError(`record of ${m.frameBytes} bytes exceeds maxRecordBytes ${this.options.maxRecordBytes}`);
      }
      measured.push(m);
    }
    const first = this.nextOffset;
    for (let i = 0; i < messages.length; i++) {
      const message = messages[i] as NewMessage;
      const m = measured[i] as MeasuredRecord;
      let active = this.segments[this.segments.length - 1] as Segment;
      if (active.size > 0 && active.size + m.frameBytes > this.options.segmentBytes) active = this.roll();
      const batch = this.batchFor(active);
      const { buf, pos } = this.reserve(m.frameBytes);
      const offset = this.nextOffset;
      const timestamp = this.lastTimestamp === undefined ? message.timestamp : Math.max(this.lastTimestamp, message.timestamp);
      writeRecord(buf, pos, offset, timestamp, message, m);
      active.noteRecord(offset, active.size, m.frameBytes, timestamp, this.options.indexIntervalBytes);
      batch.bytes += m.frameBytes;
      batch.endOffset = offset + 1;
      this.nextOffset = offset + 1;
      this.lastTimestamp = timestamp;
      const stored: StoredMessage = {
        offset,
        timestamp,
        data: new Uint8Array(buf.buffer, buf.byteOffset + pos + m.frameBytes - message.data.length, message.data.length),
        encoding: message.encoding,
      };
      if (message.key !== undefined) stored.key = message.key;
      if (message.headers !== undefined) stored.headers = message.headers;
      if (message.raft !== undefined) (stored as StoredRecord).raft = message.raft;
      this.cache.push(stored);
    }
    return first;
  }

  /**
   * Writes every record appended so far; with `fsync: 'always'` also fsyncs
   * them (one fdatasync for all: group commit). Resolves when they are as
   * durable as the policy promises; rejects with a {@link LogStorageError} if
   * the write or fsync failed (the records are then not durable, stay in
   * memory, and are written again by the next flush or the automatic retry).
   */
  flush(): Promise<void> {
    return this.requestFlush(this.options.fsync === 'always');
  }

  /** Like {@link flush}, and fsyncs whatever the policy. */
  sync(): Promise<void> {
    return this.requestFlush(true);
  }

  /**
   * Resolves once the records below `offset` (appended before the call) are
   * fsynced. Under `interval` through the background fsync: its fdatasync
   * runs in the thread pool, beside the task chain, so flushes asked for
   * meanwhile (a replica's next appends) are written without waiting for it,
   * and the event loop is not held either, as {@link sync} would hold both
   * (a small fdatasync runs on the loop's thread, see `takeInlineSync`).
   * Falls back to {@link sync} when the background fsync cannot cover them.
   */
  async syncThrough(offset: number): Promise<void> {
    if (this.options.fsync !== 'interval') {
      if (this.durableEnd < offset) await this.sync();
      return;
    }
    // A background fsync already running covers only what was written before it started: then one more.
    for (let round = 0; round < 2 && this.durableEnd < offset; round++) {
      await this.tasks.run(() => this.startBackgroundSync());
      await this.joinBackgroundSync();
    }
    if (this.durableEnd < offset) await this.sync();
  }

  private assertOpen(): void {
    if (this.closed || this.closing) throw new LogStorageError('STORAGE_CLOSED', `log ${this.dir} is closed`);
  }

  private assertWritable(): void {
    this.assertOpen();
    if (this.truncations > 0) throw new Error('append during truncateFrom or reset');
    const error = this.writeError;
    if (error !== undefined) {
      const message = `appends refused until the failed write is retried successfully: ${error.message}`;
      throw new LogStorageError(error.code, message, { ...error.details, cause: error });
    }
  }

  private batchFor(segment: Segment): Batch {
    if (this.openBatch === undefined || this.openBatch.segment !== segment) {
      this.closeOpenBatch();
      this.openBatch = { segment, chunks: [], bytes: 0, endOffset: this.nextOffset, seal: false };
      this.pending.push(this.openBatch);
    }
    return this.openBatch;
  }

  /**
   * Room for `bytes` in the arena; the open batch gets what the old arena
   * held. A new arena is twice the last batch, or twice what this batch
   * holds already (so a large batch takes a few arenas, not one per record).
   */
  private reserve(bytes: number): { buf: Buffer; pos: number } {
    if (this.arena === undefined || this.arenaUsed + bytes > this.arena.length) {
      this.cutChunk();
      const want = Math.max(MIN_ARENA_BYTES, this.lastBatchBytes * 2, (this.openBatch?.bytes ?? 0) * 2);
      const size = Math.max(bytes, Math.min(MAX_ARENA_BYTES, want));
      this.arena = Buffer.allocUnsafe(size);
      this.arenaStart = 0;
      this.arenaUsed = 0;
    }
    const pos = this.arenaUsed;
    this.arenaUsed += bytes;
    return { buf: this.arena, pos };
  }

  /** Hands the bytes written into the arena since the last cut to the open batch. */
  private cutChunk(): void {
    if (this.arena !== undefined && this.openBatch !== undefined && this.arenaUsed > this.arenaStart) {
      this.openBatch.chunks.push(this.arena.subarray(this.arenaStart, this.arenaUsed));
    }
    this.arenaStart = this.arenaUsed;
  }

  private closeOpenBatch(): void {
    if (this.openBatch === undefined) return;
    this.cutChunk();
    this.lastBatchBytes = this.openBatch.bytes;
    this.openBatch = undefined;
    // The next batch goes on in what is left of the arena: one batch of one small record each no longer takes an arena
    // (the tail cache keeps each alive while it holds the records).
  }

  /** Starts a new segment at the next offset; the full one is sealed by the next flush. */
  private roll(): Segment {
    const full = this.segments[this.segments.length - 1] as Segment;
    const batch = this.batchFor(full);
    batch.seal = true;
    batch.endOffset = this.nextOffset;
    this.closeOpenBatch();
    const segment = new Segment(this.dir, this.nextOffset);
    this.segments.push(segment);
    this.emit({ kind: 'segment-rolled', segment: segment.logPath, baseOffset: segment.base });
    return segment;
  }

  private requestFlush(sync: boolean): Promise<void> {
    try {
      this.assertOpen();
    } catch (err) {
      return Promise.reject(err);
    }
    const nothingNew = this.pending.length === 0 && (!sync || this.unsynced.length === 0);
    if (nothingNew && this.inFlight === undefined && this.queuedFlush === undefined) return Promise.resolve();
    // A flush in progress that started after the last append and fsyncs as asked covers this caller.
    const inFlight = this.inFlight;
    if (inFlight !== undefined && inFlight.target >= this.nextOffset && (inFlight.sync || !sync) && this.queuedFlush === undefined) return inFlight.promise;
    if (this.queuedFlush !== undefined) {
      this.queuedFlush.sync ||= sync;
      return this.queuedFlush.promise;
    }
    const entry: { sync: boolean; promise: Promise<void> } = { sync, promise: Promise.resolve() };
    entry.promise = this.tasks.run(async () => {
      if (this.queuedFlush === entry) this.queuedFlush = undefined;
      const run = { sync: entry.sync, target: this.nextOffset, promise: entry.promise };
      this.inFlight = run;
      try {
        await this.flushOnce(entry.sync);
      } finally {
        if (this.inFlight === run) this.inFlight = undefined;
      }
    });
    this.queuedFlush = entry;
    return entry.promise;
  }

  /** Writes the pending batches and fsyncs as asked; on failure rewinds to the last durable byte. */
  private async flushOnce(sync: boolean): Promise<void> {
    this.closeOpenBatch();
    // As if that fsync had been the flush before this one: what it should have made durable is written again.
    await this.recoverFromBackgroundFailure();
    try {
      // Bounded by the batches pending when the flush started: appends made meanwhile go to new batches at the end.
      const count = this.pending.length;
      for (let i = 0; i < count && this.pending.length > 0; i++) {
        const batch = this.pending[0] as Batch;
        await this.writeBatch(batch);
        if (batch.seal) {
          await this.joinBackgroundSync();
          await this.seal(batch.segment);
        } else {
          this.unsynced.push(batch);
          this.unsyncedBytes += batch.bytes;
        }
        this.pending.shift();
        this.writtenEnd = batch.endOffset;
      }
      const forced = this.options.fsync === 'interval' && this.unsyncedBytes >= this.options.maxUnsyncedBytes;
      if (sync || forced) {
        // An fsync in flight may already cover the bytes; its failure must be seen before a later fsync reports success.
        await this.joinBackgroundSync();
        if (this.unsynced.length > 0) await this.syncUnsynced();
      }
      if (this.unsynced.length > 0) this.armSyncTimer();
    } catch (err) {
      const error = ioError(err, `writing ${this.dir}`);
      this.backgroundFailure = undefined;
      await this.rewind();
      if (error !== this.writeError) this.setWriteError(error); // an interval fsync's failure was reported when it failed
      this.armRetry();
      throw error;
    } finally {
      this.cache.evict(this.options.tailCacheBytes, this.durableEnd);
    }
    // Healthy again once everything appended is durable (a write alone does not prove a failed fsync recovered).
    if (this.writeError !== undefined && this.pending.length === 0 && this.unsynced.length === 0) this.setWriteError(undefined);
  }

  private async writeBatch(batch: Batch): Promise<void> {
    const segment = batch.segment;
    // Opened (creating the file), or reopened after the open-file bound closed it while idle.
    if (segment.handle === undefined || !segment.handleWritable) await this.openWritable(segment);
    if (!segment.fileCreated) {
      // The directory entry must be durable before any record in the file is acknowledged.
      await this.fs.syncDir(this.dir);
      segment.fileCreated = true;
    }
    if (batch.bytes === 0) return;
    // One write per batch: a copy of a few MiB at most costs far less than a syscall per arena.
    const data = batch.chunks.length === 1 ? (batch.chunks[0] as Buffer) : Buffer.concat(batch.chunks, batch.bytes);
    this.options.openFiles.used(this.cachedFile(segment));
    const handle = segment.handle as FileHandle;
    if (handle.writeSync !== undefined && data.length <= SYNC_WRITE_MAX_BYTES) handle.writeSync(data, segment.written);
    else await handle.write(data, segment.written);
    segment.written += data.length;
    if (segment.written > segment.intact) segment.intact = segment.written;
  }

  /** Gives `segment` a writable handle (a read-only one is dropped: retired while reads use it). */
  private async openWritable(segment: Segment): Promise<void> {
    if (segment.handle !== undefined) await this.dropHandle(segment);
    this.attach(segment, await this.fs.open(segment.logPath, 'write'), true);
  }

  /** `segment` now has `handle`: counted in the open-file bound. */
  private attach(segment: Segment, handle: FileHandle, writable: boolean): void {
    const previous = segment.handle;
    if (previous !== undefined && previous !== handle) {
      // A read opened one while this handle was being opened (opening takes a turn): closed once no read uses it.
      if (segment.users > 0) segment.retired.push(previous);
      else previous.close().catch(() => {});
    }
    segment.handle = handle;
    segment.handleWritable = writable;
    this.options.openFiles.opened(this.cachedFile(segment));
  }

  /** `segment`'s handle is no longer its own (closed, or retired until its reads end). */
  private detach(segment: Segment): FileHandle | undefined {
    const handle = segment.handle;
    segment.handle = undefined;
    segment.handleWritable = false;
    this.openSealed?.delete(segment);
    this.options.openFiles.closed(this.cachedFile(segment));
    return handle;
  }

  /** `segment`'s entry in the broker-wide bound on open files (`options.openFiles`). */
  private cachedFile(segment: Segment): CachedFile {
    return (segment.cachedFile ??= { tryClose: () => this.closeIfIdle(segment) });
  }

  /**
   * For the open-file bound: closes `segment`'s handle unless something needs
   * it. Kept open while a read uses it, while a task of the chain runs (a
   * write, fsync, truncation or seal may be using it), and while bytes written
   * through it are not fsynced: an fsync must go through the descriptor the
   * bytes were written through, or a write-back error reported on the closed
   * one could be missed; and while the log is degraded, so that the retry
   * rewrites and fsyncs through the descriptor that failed. Reopened on
   * demand (`openWritable`, `readHandle`).
   */
  private closeIfIdle(segment: Segment): boolean {
    const handle = segment.handle;
    if (handle === undefined) return true;
    if (segment.users > 0 || this.tasks.busy || this.closing || segment.written !== segment.durable || this.writeError !== undefined) return false;
    if (this.backgroundSync?.segment === segment) return false;
    segment.handle = undefined;
    segment.handleWritable = false;
    this.openSealed?.delete(segment);
    try {
      handle.close().catch(() => {});
    } catch {
      // Detached either way: a close that failed at once is not this log's to retry.
    }
    return true;
  }

  /** Fsyncs the full segment, writes its index files and closes it for appends. */
  private async seal(segment: Segment): Promise<void> {
    await (segment.handle as FileHandle).datasync();
    segment.durable = segment.written;
    this.durableEnd = segment.end;
    this.unsynced = [];
    this.unsyncedBytes = 0;
    segment.sealed = true;
    await this.writeIndexFiles(segment);
    (this.openSealed ??= new Set()).add(segment);
    await this.trimOpenHandles();
  }

  private async writeIndexFiles(segment: Segment): Promise<void> {
    if (segment.end === segment.base) return; // an empty segment needs no index
    try {
      await writeFileAt(this.fs, segment.idxPath, segment.index.encodeOffsets());
      await writeFileAt(this.fs, segment.tixPath, segment.index.encodeTimes(segment.end - 1 - segment.base, segment.lastTimestamp ?? 0));
    } catch (err) {
      // Not fatal: a missing or torn index is rebuilt from the log on open.
      await this.fs.unlink(segment.idxPath).catch(() => {});
      await this.fs.unlink(segment.tixPath).catch(() => {});
      this.emit({ kind: 'index-write-failed', segment: segment.logPath, error: ioError(err, 'writing the index', segment.idxPath) });
    }
  }

  private async syncUnsynced(): Promise<void> {
    const segment = (this.unsynced[0] as Batch).segment;
    // The open-file bound closes a handle only with nothing written and not fsynced (empty batches): nothing to fsync then.
    const handle = segment.handle;
    if (handle !== undefined) {
      // A small batch's fdatasync on the calling thread (see `takeInlineSync`): the pool's hop cost more than the disk.
      if (handle.datasyncSync !== undefined && this.unsyncedBytes <= SYNC_WRITE_MAX_BYTES && takeInlineSync()) handle.datasyncSync();
      else await handle.datasync();
    } else if (segment.written !== segment.durable) throw new LogStorageError('STORAGE_IO', `${segment.logPath}: bytes written through a handle no longer open`);
    segment.durable = segment.written;
    this.durableEnd = this.writtenEnd;
    this.unsynced = [];
    this.unsyncedBytes = 0;
    if (this.syncTimer !== undefined) {
      this.options.timers.clearTimeout(this.syncTimer);
      this.syncTimer = undefined;
    }
  }

  /**
   * After a failed write or fsync, every record not durable is queued again
   * from memory and written again from the last durable byte by the retry
   * (after a failed fsync Linux may have dropped the dirty pages: only a
   * rewrite and a new fsync make them durable). The file is cut back (best
   * effort: the rewrite goes to the same position anyway, and recovery cuts
   * a torn tail): under `always` to the last durable byte, since nothing after
   * it was acknowledged; under `interval`, which acknowledges records once
   * written, only after the records written whole (a process killed now
   * keeps them), which cuts the torn tail of a failed write.
   *
   * With `drop` (a close that writes nothing), the records not durable are
   * dropped instead (the caller clears `pending`) and the cut is strict, so a
   * reopen cannot read them back: `unsynced` cuts at the last durable byte
   * (what a power loss now would leave); `unwritten` keeps what the file
   * holds whole (what a killed process would leave), written again from
   * memory first so that the fsync after the cut covers them.
   */
  private async rewind(drop?: 'unsynced' | 'unwritten'): Promise<void> {
    await this.joinBackgroundSync(false);
    const first = this.unsynced[0] ?? this.pending[0];
    this.pending = [...this.unsynced, ...this.pending];
    this.unsynced = [];
    this.unsyncedBytes = 0;
    this.writtenEnd = this.durableEnd;
    if (first === undefined) return;
    const segment = first.segment;
    segment.written = segment.durable;
    if (drop === 'unsynced' || this.options.fsync === 'always') segment.intact = segment.durable;
    if (segment.handle === undefined || !segment.handleWritable) return;
    if (drop === undefined) {
      await segment.handle.truncate(segment.intact).catch(() => {});
      return;
    }
    if (drop === 'unwritten') await this.rewriteIntact(segment);
    await segment.handle.truncate(segment.intact);
    await segment.handle.datasync();
  }

  /**
   * Writes the queued records of `segment` that its file already holds whole
   * again, from memory (the same bytes at the same place). Best effort: they
   * are in the file either way.
   */
  private async rewriteIntact(segment: Segment): Promise<void> {
    for (const batch of this.pending) {
      if (batch.segment !== segment || segment.written + batch.bytes > segment.intact) return;
      try {
        await this.writeBatch(batch);
      } catch {
        return;
      }
    }
  }

  private setWriteError(error: LogStorageError | undefined): void {
    const before = this.status();
    this.writeError = error;
    if (error === undefined && this.retryTimer !== undefined) {
      this.options.timers.clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
    }
    if (this.status() !== before || error !== undefined) this.emit({ kind: 'health', status: this.status(), error });
  }

  private armRetry(): void {
    if (this.retryTimer !== undefined || this.closed || this.closing) return;
    this.retryTimer = this.options.timers.setTimeout(() => {
      this.retryTimer = undefined;
      if (this.closed || this.closing || this.writeError === undefined) return;
      this.requestFlush(true).catch(() => {}); // a failure re-arms the retry and is reported as a health event
    }, this.options.retryDelayMs);
  }

  private armSyncTimer(): void {
    if (this.options.fsync !== 'interval' || this.syncTimer !== undefined || this.closed || this.closing) return;
    this.syncTimer = this.options.timers.setTimeout(() => {
      this.syncTimer = undefined;
      if (this.closed || this.closing) return;
      this.tasks.run(() => this.startBackgroundSync()).catch(() => {}); // reported as a health event; the retry takes over
    }, this.options.fsyncIntervalMs);
  }

  /**
   * The interval fsync (a chain task): writes what is pending, then starts
   * the fdatasync of what is written and returns without waiting for it, so
   * that the writes after it (the next flushes) need not wait either. While
   * degraded, or with nothing open to fsync through, it fsyncs on the chain
   * as any flush does.
   */
  private async startBackgroundSync(): Promise<void> {
    if (this.closed || this.closing || this.backgroundSync !== undefined) return;
    if (this.writeError !== undefined || this.backgroundFailure !== undefined) return this.flushOnce(true);
    await this.flushOnce(false);
    const batches = this.unsynced.slice();
    const segment = batches[0]?.segment;
    if (segment === undefined || this.backgroundSync !== undefined) return;
    const handle = segment.handle;
    if (handle === undefined) return this.flushOnce(true);
    const written = segment.written;
    const writtenEnd = this.writtenEnd;
    const run: BackgroundSync = { segment, promise: Promise.resolve() };
    run.promise = handle.datasync().then(
      () => {
        this.backgroundSync = undefined;
        this.backgroundSynced(segment, batches, written, writtenEnd);
      },
      (err: unknown) => {
        this.backgroundSync = undefined;
        this.backgroundFailed(ioError(err, `writing ${this.dir}`));
      },
    );
    this.backgroundSync = run;
  }

  /** The interval fsync covered `batches`: up to `written` in `segment`, offsets below `writtenEnd`. */
  private backgroundSynced(segment: Segment, batches: Batch[], written: number, writtenEnd: number): void {
    // Whatever lowers these (a rewind, truncation, reset, close) waited for this fsync first: they only go up here.
    segment.durable = Math.max(segment.durable, written);
    this.durableEnd = Math.max(this.durableEnd, writtenEnd);
    // The batches synced are the first unsynced ones, unless a seal's fsync covered them meanwhile.
    let covered = 0;
    while (covered < batches.length && this.unsynced[covered] === batches[covered]) {
      this.unsyncedBytes -= (batches[covered] as Batch).bytes;
      covered++;
    }
    if (covered > 0) this.unsynced.splice(0, covered);
    if (this.unsynced.length > 0) this.armSyncTimer(); // written meanwhile: the timer may have fired while this fsync ran
    else if (this.syncTimer !== undefined) {
      this.options.timers.clearTimeout(this.syncTimer);
      this.syncTimer = undefined;
    }
    this.cache.evict(this.options.tailCacheBytes, this.durableEnd);
  }

  /**
   * The interval fsync failed: appends are refused at once, and a chain task
   * rewinds and arms the retry, as a failed flush does (unless a flush
   * queued before it meets the failure first and does both).
   */
  private backgroundFailed(error: LogStorageError): void {
    this.backgroundFailure = error;
    this.setWriteError(error);
    this.tasks.run(() => this.recoverFromBackgroundFailure()).catch(() => {});
  }

  /** After a failed interval fsync: every record not durable is queued again and the file cut back, and the retry armed. */
  private async recoverFromBackgroundFailure(): Promise<void> {
    if (this.backgroundFailure === undefined || this.closed) return;
    this.backgroundFailure = undefined;
    await this.rewind();
    this.armRetry();
  }

  /** Waits for the interval fsync in flight, if any; then throws its failure (unless `check` is false). */
  private async joinBackgroundSync(check = true): Promise<void> {
    const running = this.backgroundSync;
    if (running !== undefined) await running.promise;
    if (check && this.backgroundFailure !== undefined) throw this.backgroundFailure;
  }

  // ---- reads -----------------------------------------------------------------------

  /**
   * Up to `maxCount` records from `offset` (from the start offset when
   * `offset` was already deleted), stopping before `maxBytes` of data (but
   * returning at least one). Records appended but not yet flushed are
   * included: visibility (commit) is the caller's business.
   *
   * `data` of records read from disk are views into one buffer per read,
   * never reused. Reads stop before a damaged range; a read starting inside
   * one throws `STORAGE_CORRUPT`.
   */
  async read(offset: number, maxCount: number, maxBytes: number): Promise<StoredRecord[]> {
    this.assertOpen();
    const out: StoredRecord[] = [];
    let next = Math.max(offset, this.startOffset);
    let bytes = 0;
    // Bounded: each turn either reads at least one record, or ends the loop.
    while (out.length < maxCount && next < this.nextOffset) {
      if (next >= this.cache.firstOffset) {
        this.cache.read(next, maxCount, maxBytes, out, bytes);
        break;
      }
      const damage = this.corruptionAt(next);
      if (damage !== undefined) {
        if (out.length > 0) break;
        throw corruptError(damage);
      }
      const segment = this.segmentFor(next);
      if (segment === undefined) break;
      const before = out.length;
      const stopAt = this.cache.firstOffset;
      let full = false;
      const walking = this.walk(segment, next, this.readSize(segment, maxCount - out.length, maxBytes - bytes), (buf, bodyStart, bodyEnd, recordOffset) => {
        if (recordOffset < next) return true;
        if (recordOffset >= stopAt) return false;
        const message = decodeRecord(buf, bodyStart, bodyEnd);
        if (out.length > 0 && bytes + message.data.length > maxBytes) {
          full = true;
          return false;
        }
        bytes += message.data.length;
        out.push(message);
        return out.length < maxCount;
      });
      let end: WalkEnd;
      try {
        end = await walking;
      } catch (err) {
        // Retention deleted the segment under this read: go on from the new start.
        if (!segment.deleted) throw err;
        if (out.length > 0 || this.startOffset <= next) break;
        next = this.startOffset;
        continue;
      }
      if (out.length > before) next = (out[out.length - 1] as StoredMessage).offset + 1;
      if (full) break;
      if (end.kind === 'corrupt') {
        if (out.length > 0) break;
        throw corruptError(end.range);
      }
      if (end.kind === 'end' && end.nextOffset > next) next = end.nextOffset;
      else if (out.length === before) break; // no progress: nothing more to give
    }
    return out;
  }

  /**
   * Like {@link read}, synchronously, when `offset` is among the records held
   * in memory (the newest, and every one not yet durable); `undefined` when
   * the read needs the disk. For live subscribers at the tail.
   */
  readFromMemory(offset: number, maxCount: number, maxBytes: number): StoredMessage[] | undefined {
    this.assertOpen();
    const from = Math.max(offset, this.startOffset);
    if (from < this.cache.firstOffset) return undefined;
    const out: StoredMessage[] = [];
    if (maxCount > 0) this.cache.read(from, maxCount, maxBytes, out, 0);
    return out;
  }

  /**
   * The first offset whose timestamp is at or after `timeMs`, or
   * {@link endOffset} if none. A damaged range on the way answers its first offset
   * (a read from there fails with `STORAGE_CORRUPT` rather than skipping it).
   */
  async offsetForTime(timeMs: number): Promise<number> {
    this.assertOpen();
    const cachedFirst = this.cache.firstTimestamp;
    if (cachedFirst !== undefined && cachedFirst < timeMs) return this.cache.offsetForTime(timeMs);
    // Timestamps never decrease: the answer is at most the first cached offset.
    const bound = this.cache.size > 0 ? this.cache.firstOffset : this.nextOffset;
    for (const segment of [...this.segments]) {
      if (segment.base >= bound) break;
      if (segment.end === segment.base) continue;
      const newest = this.newestTimestamp(segment);
      if (newest !== undefined && newest < timeMs) continue;
      const i = segment.index.lastBeforeTime(timeMs);
      if (i < 0) return this.corruptionAt(segment.base)?.offset ?? segment.base;
      let found: number | undefined;
      const end = await this.walk(segment, segment.base + segment.index.relOffsetAt(i), this.options.readChunkBytes, (buf, bodyStart, _bodyEnd, offset) => {
        if (offset >= bound) return false;
        if (peekTimestamp(buf, bodyStart) >= timeMs) found = offset;
        return found === undefined;
      });
      if (found !== undefined) return found;
      if (end.kind === 'corrupt') return end.range.offset;
    }
    return bound;
  }

  /** Newest timestamp in a segment; for a damaged one, a bound from the next segment. */
  private newestTimestamp(segment: Segment): number | undefined {
    const damaged = this.corrupt.some((range) => range.offset >= segment.base && range.offset < segment.end);
    if (!damaged) return segment.lastTimestamp;
    const next = this.segments[this.segments.indexOf(segment) + 1];
    return next?.firstTimestamp;
  }

  private readSize(segment: Segment, maxCount: number, maxBytes: number): number {
    const wanted = Math.min(maxCount * segment.averageRecordBytes(), maxBytes + maxCount * READ_OVERHEAD_BYTES) + this.options.indexIntervalBytes;
    return Math.max(MIN_READ_BYTES, Math.min(this.options.readChunkBytes, Math.ceil(wanted)));
  }

  private segmentFor(offset: number): Segment | undefined {
    let lo = 0;
    let hi = this.segments.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.segments[mid] as Segment).base <= offset) lo = mid + 1;
      else hi = mid;
    }
    return this.segments[lo - 1];
  }

  private corruptionAt(offset: number): CorruptRange | undefined {
    for (const range of this.corrupt) if (offset >= range.offset && offset < range.endOffset) return range;
    return undefined;
  }

  /**
   * Reads the durable records of `segment` from the index entry at or before
   * `from`, calling `visit` for each (in order) until it returns false, the
   * durable bytes end or damage is met (recorded as a new corrupt range).
   */
  private async walk(segment: Segment, from: number, chunkBytes: number, visit: Visit): Promise<WalkEnd> {
    const entry = segment.index.floorByOffset(from - segment.base);
    let pos = entry < 0 ? 0 : segment.index.positionAt(entry);
    let expected = entry < 0 ? segment.base : segment.base + segment.index.relOffsetAt(entry);
    const limit = segment.durable;
    let want = chunkBytes;
    segment.users++;
    try {
      const handle = await this.readHandle(segment);
      // Bounded: each turn consumes at least one record or returns.
      while (pos < limit) {
        const length = Math.min(Math.max(want, chunkBytes), limit - pos);
        const buf = Buffer.allocUnsafe(length);
        const read = await handle.read(buf, pos);
        want = chunkBytes;
        let i = 0;
        let damage: string | undefined;
        while (i < read) {
          // A known damaged range: never read past its start.
          const known = this.corrupt.length > 0 ? this.corruptionAt(expected) : undefined;
          if (known !== undefined) return { kind: 'corrupt', range: known };
          const check = checkFrame(buf.subarray(0, read), i, this.options.maxRecordBytes);
          if (check.kind === 'incomplete') {
            if (read < length || pos + i + (check.frameBytes ?? FRAME_HEADER_BYTES) > limit) damage = 'record cut short';
            else want = check.frameBytes ?? FRAME_HEADER_BYTES;
            break;
          }
          if (check.kind === 'bad') {
            damage = check.reason;
            break;
          }
          if (!plausibleBody(buf, check.bodyStart, check.bodyEnd) || peekOffset(buf, check.bodyStart) !== expected) {
            damage = `expected offset ${expected}`;
            break;
          }
          let go: boolean;
          try {
            go = visit(buf, check.bodyStart, check.bodyEnd, expected, pos + i);
          } catch (err) {
            if (!(err instanceof RecordFormatError)) throw err;
            damage = err.message;
            break;
          }
          expected++;
          i = check.bodyEnd;
          if (!go) return { kind: 'stopped' };
        }
        if (damage !== undefined) return { kind: 'corrupt', range: this.markCorrupt(segment, expected, pos + i, damage) };
        if (i === 0 && want <= chunkBytes) break; // no progress possible (cannot happen: a safety net for the loop bound)
        pos += i;
      }
      return { kind: 'end', nextOffset: expected };
    } catch (err) {
      throw err instanceof LogStorageError ? err : ioError(err, `reading ${segment.logPath}`, segment.logPath);
    } finally {
      segment.users--;
      if (segment.users === 0) await this.releaseRetired(segment);
    }
  }

  /** Damage met by a read: from there to the end of the segment is unreadable here until repaired. */
  private markCorrupt(segment: Segment, offset: number, position: number, reason: string): CorruptRange {
    const existing = this.corruptionAt(offset);
    if (existing !== undefined) return existing;
    const range: CorruptRange = { segment: segment.logPath, offset, endOffset: Math.max(segment.end, offset + 1), position, reason };
    this.corrupt.push(range);
    this.corrupt.sort((a, b) => a.offset - b.offset);
    this.emit({ kind: 'corruption', range });
    this.emit({ kind: 'health', status: this.status(), error: this.writeError });
    return range;
  }

  private async readHandle(segment: Segment): Promise<FileHandle> {
    if (segment.handle !== undefined) {
      if (this.openSealed?.delete(segment)) this.openSealed.add(segment); // most recently used
      this.options.openFiles.used(this.cachedFile(segment));
      return segment.handle;
    }
    const handle = await this.fs.open(segment.logPath, 'read');
    if (segment.handle !== undefined) {
      await handle.close(); // another read opened it meanwhile
      return segment.handle;
    }
    this.attach(segment, handle, false);
    (this.openSealed ??= new Set()).add(segment);
    await this.trimOpenHandles();
    return handle;
  }

  /** Closes read handles of sealed segments beyond `maxOpenSegments`, least recently used first. */
  private async trimOpenHandles(): Promise<void> {
    const open = this.openSealed;
    if (open === undefined) return;
    for (const segment of open) {
      if (open.size <= this.options.maxOpenSegments) break;
      if (segment.users > 0) continue;
      const handle = this.detach(segment);
      if (handle !== undefined) await handle.close().catch(() => {});
    }
  }

  private async releaseRetired(segment: Segment): Promise<void> {
    const handles = segment.retired;
    segment.retired = [];
    if (segment.deleted && segment.handle !== undefined) handles.push(this.detach(segment) as FileHandle);
    for (const handle of handles) await handle.close().catch(() => {});
  }

  /** Stops using `segment`'s handle: closed now, or when the reads using it end. */
  private async dropHandle(segment: Segment): Promise<void> {
    // An fsync in flight goes through this handle: it is closed once that fsync ends.
    if (this.backgroundSync?.segment === segment) await this.joinBackgroundSync(false);
    const handle = this.detach(segment);
    if (handle === undefined) return;
    if (segment.users > 0) segment.retired.push(handle);
    else await handle.close().catch(() => {});
  }

  // ---- retention, truncation, reset ----------------------------------------------------

  /**
   * Deletes the oldest sealed segments that the policy no longer keeps:
   * whole segments only, never the active one, never one holding offsets at
   * or after `keepFrom` (e.g. entries Raft still needs). A damaged segment is
   * judged by the next segment's first timestamp for age.
   */
  applyRetention(policy: RetentionPolicy, nowMs: number, keepFrom = Number.POSITIVE_INFINITY): Promise<RetentionResult> {
    for (const [name, value] of Object.entries(policy)) {
      if (value !== undefined && (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)) {
        return Promise.reject(new RangeError(`retention ${name} must be a non-negative integer, got ${String(value)}`));
      }
    }
    return this.tasks.run(async () => {
      this.assertOpen();
      let bytes = this.sizeBytes;
      let count = this.nextOffset - this.startOffset;
      const victims: Segment[] = [];
      for (let i = 0; i + 1 < this.segments.length; i++) {
        const segment = this.segments[i] as Segment;
        if (!segment.sealed || segment.end > keepFrom) break;
        const newest = this.newestTimestamp(segment);
        const old = policy.maxAgeMs !== undefined && newest !== undefined && newest < nowMs - policy.maxAgeMs;
        const tooBig = policy.maxBytes !== undefined && bytes > policy.maxBytes;
        const tooMany = policy.maxMessages !== undefined && count > policy.maxMessages;
        if (!old && !tooBig && !tooMany) break;
        victims.push(segment);
        bytes -= segment.size;
        count -= segment.end - segment.base;
      }
      let deletedBytes = 0;
      for (const segment of victims) {
        // Oldest first: a crash part way leaves a log that is still contiguous.
        await this.deleteSegment(segment, 'retention');
        deletedBytes += segment.size;
      }
      if (victims.length > 0) this.cache.dropBefore(this.startOffset);
      return { deletedSegments: victims.length, deletedBytes, startOffset: this.startOffset };
    });
  }

  /**
   * Removes every record at and after `offset` (Raft cutting a conflicting
   * suffix), durably, and continues appending at `offset`. Also the repair of
   * damage: cutting from a damaged offset, then replicating the rest from a
   * healthy replica, clears the `corrupt` state. Requires
   * `startOffset <= offset <= endOffset`; no appends while it runs.
   */
  truncateFrom(offset: number): Promise<void> {
    if (!Number.isSafeInteger(offset)) return Promise.reject(new RangeError(`truncateFrom(${offset}): not an integer`));
    this.truncations++;
    return this.tasks.run(async () => {
      try {
        this.assertOpen();
        if (offset < this.startOffset || offset > this.nextOffset) {
          throw new RangeError(`truncateFrom(${offset}) outside [${this.startOffset}, ${this.nextOffset}]`);
        }
        if (offset === this.nextOffset) return;
        // Everything on disk and durable first: the cut is then a plain truncate.
        await this.joinBackgroundSync(false);
        if (this.pending.length > 0 || this.unsynced.length > 0 || this.backgroundFailure !== undefined) await this.flushOnce(true);
        const keepIndex = this.segments.indexOf(this.segmentFor(offset) as Segment);
        // Newest first: a crash part way leaves a contiguous prefix.
        while (this.segments.length > keepIndex + 1) await this.deleteSegment(this.segments[this.segments.length - 1] as Segment, 'truncate');
        const segment = this.segments[keepIndex] as Segment;
        const cut = await this.locate(segment, offset);
        if (segment.sealed || !segment.handleWritable) {
          await this.dropHandle(segment);
          await unlinkQuietly(this.fs, segment.idxPath);
          await unlinkQuietly(this.fs, segment.tixPath);
          this.attach(segment, await this.fs.open(segment.logPath, 'write'), true);
          segment.sealed = false;
        }
        const handle = segment.handle as FileHandle;
        await handle.truncate(cut.position);
        await handle.datasync();
        await this.fs.syncDir(this.dir);
        segment.size = segment.written = segment.durable = segment.intact = cut.position;
        segment.end = offset;
        segment.index.truncateFrom(offset - segment.base);
        segment.lastIndexedPosition = segment.index.length > 0 ? segment.index.positionAt(segment.index.length - 1) : Number.NEGATIVE_INFINITY;
        segment.lastTimestamp = cut.lastTimestamp;
        if (offset === segment.base) segment.firstTimestamp = undefined;
        this.unsynced = [];
        this.unsyncedBytes = 0;
        this.nextOffset = this.writtenEnd = this.durableEnd = offset;
        this.lastTimestamp = undefined;
        for (let i = this.segments.length - 1; i >= 0 && this.lastTimestamp === undefined; i--) this.lastTimestamp = this.segments[i]?.lastTimestamp;
        this.cache.truncateFrom(offset);
        this.forgetCorruptionFrom(offset);
      } catch (err) {
        throw err instanceof LogStorageError || err instanceof RangeError ? err : ioError(err, `truncating ${this.dir}`);
      } finally {
        this.truncations--;
      }
    });
  }

  /** Byte position of `offset` in `segment` and the timestamp of the record before it. */
  private async locate(segment: Segment, offset: number): Promise<{ position: number; lastTimestamp: number | undefined }> {
    if (offset === segment.base) return { position: 0, lastTimestamp: undefined };
    let position: number | undefined;
    let lastTimestamp: number | undefined;
    const end = await this.walk(segment, offset - 1, this.options.readChunkBytes, (buf, bodyStart, bodyEnd, recordOffset, recordPosition) => {
      if (recordOffset === offset - 1) {
        position = recordPosition + (bodyEnd - bodyStart) + FRAME_HEADER_BYTES;
        lastTimestamp = peekTimestamp(buf, bodyStart);
        return false;
      }
      return true;
    });
    if (position === undefined) {
      // The record before `offset` is damaged: cut at the damage, which is before it.
      const damage = end.kind === 'corrupt' ? end.range : this.corruptionAt(offset - 1);
      if (damage === undefined) throw new LogStorageError('STORAGE_IO', `offset ${offset - 1} not found in ${segment.logPath}`);
      const message = `cannot cut at ${offset}: offset ${offset - 1} is damaged; truncate from ${damage.offset}`;
      throw new LogStorageError('STORAGE_CORRUPT', message, { offset: damage.offset });
    }
    return { position, lastTimestamp };
  }

  /**
   * Deletes every record and continues with an empty log starting at
   * `offset` (a Raft snapshot installed, or a replica rebuilt from a healthy
   * one). Not atomic across a crash: the log may then hold a suffix of the
   * old segments, or nothing; the caller, which knows where the log must
   * start, resets again.
   */
  reset(offset: number): Promise<void> {
    if (!Number.isSafeInteger(offset) || offset < 0) return Promise.reject(new RangeError(`reset(${offset}): offset must be a non-negative integer`));
    this.truncations++;
    return this.tasks.run(async () => {
      try {
        this.assertOpen();
        await this.joinBackgroundSync(false);
        this.backgroundFailure = undefined; // every record is dropped: nothing left that it concerns
        this.closeOpenBatch();
        this.pending = [];
        this.unsynced = [];
        this.unsyncedBytes = 0;
        while (this.segments.length > 0) await this.deleteSegment(this.segments[0] as Segment, 'reset', true);
        const segment = new Segment(this.dir, offset);
        this.attach(segment, await this.fs.open(segment.logPath, 'write'), true);
        await (segment.handle as FileHandle).truncate(0);
        await this.fs.syncDir(this.dir);
        segment.fileCreated = true;
        this.segments.push(segment);
        this.nextOffset = this.writtenEnd = this.durableEnd = offset;
        this.lastTimestamp = undefined;
        this.cache.reset(offset);
        this.corrupt.length = 0;
        if (this.writeError !== undefined) this.setWriteError(undefined);
        else this.emit({ kind: 'health', status: this.status(), error: undefined });
      } catch (err) {
        throw err instanceof LogStorageError ? err : ioError(err, `resetting ${this.dir}`);
      } finally {
        this.truncations--;
      }
    });
  }

  private async deleteSegment(segment: Segment, reason: 'retention' | 'truncate' | 'reset', allowLast = false): Promise<void> {
    if (this.segments.length === 1 && !allowLast) throw new Error('the active segment is never deleted');
    // Out of the log first, so no new read starts on it; reads in flight keep their handle.
    const at = this.segments.indexOf(segment);
    if (at >= 0) this.segments.splice(at, 1);
    segment.deleted = true;
    await this.dropHandle(segment);
    // The index files first: an index without its segment is cleaned up on open, the reverse would be rebuilt needlessly.
    await unlinkQuietly(this.fs, segment.idxPath);
    await unlinkQuietly(this.fs, segment.tixPath);
    await this.fs.unlink(segment.logPath).catch((err: unknown) => {
      if (errorCode(err) !== 'ENOENT') throw ioError(err, 'deleting a segment', segment.logPath);
    });
    this.emit({ kind: 'segment-deleted', segment: segment.logPath, reason });
    const before = this.corrupt.length;
    for (let i = this.corrupt.length - 1; i >= 0; i--) if ((this.corrupt[i] as CorruptRange).segment === segment.logPath) this.corrupt.splice(i, 1);
    if (this.corrupt.length !== before && this.corrupt.length === 0) this.emit({ kind: 'health', status: this.status(), error: this.writeError });
  }

  private forgetCorruptionFrom(offset: number): void {
    const before = this.corrupt.length;
    for (let i = this.corrupt.length - 1; i >= 0; i--) {
      const range = this.corrupt[i] as CorruptRange;
      if (range.offset >= offset) this.corrupt.splice(i, 1);
      else if (range.endOffset > offset) range.endOffset = offset;
    }
    if (this.corrupt.length !== before && this.corrupt.length === 0) this.emit({ kind: 'health', status: this.status(), error: this.writeError });
  }

  // ---- close ---------------------------------------------------------------------------

  /**
   * Writes and fsyncs what was appended (whatever the policy), then closes
   * every file. Rejects if that last flush failed (the records not durable
   * are then lost: they were never acknowledged). With `drop`, writes
   * nothing new, so that the log left is what a crash now would leave (a
   * Raft log reloading what it holds after a failed write): `unsynced` drops
   * every record not fsynced and cuts it from the file (a power loss);
   * `unwritten` drops only the records not written whole (never written, or
   * torn by the failed write), keeping those written before the failure,
   * fsynced or not (a killed process: what `interval` acknowledged). Rejects
   * when that cut fails.
   */
  async close(options: { drop?: 'unsynced' | 'unwritten' } = {}): Promise<void> {
    if (this.closed || this.closing) return;
    this.closing = true; // appends are refused from now on: none can slip past the last flush
    let failure: unknown;
    await this.tasks.run(async () => {
      try {
        await this.joinBackgroundSync(false);
        if (options.drop === undefined) await this.flushOnce(true);
        else {
          this.backgroundFailure = undefined; // what it concerns is dropped
          this.closeOpenBatch();
          await this.rewind(options.drop);
          this.pending = [];
        }
      } catch (err) {
        failure = err;
      }
      for (const timer of [this.syncTimer, this.retryTimer]) if (timer !== undefined) this.options.timers.clearTimeout(timer);
      this.syncTimer = this.retryTimer = undefined;
      for (const segment of this.segments) {
        const handle = this.detach(segment);
        const handles = [...segment.retired, ...(handle === undefined ? [] : [handle])];
        segment.retired = [];
        for (const h of handles) await h.close().catch(() => {});
      }
      this.openSealed = undefined;
      this.closed = true;
    });
    if (failure !== undefined) throw failure;
  }

  private emit(event: StorageEvent): void {
    try {
      this.options.onEvent(event);
    } catch {
      // A listener's failure is not the log's.
    }
  }
}

// ---- opening ----------------------------------------------------------------------------

async function loadActive(fs: FileSystem, segment: Segment, limits: ScanLimits, report: RecoveryReport, events: StorageEvent[], openSync: OpenSync): Promise<void> {
  const handle = await fs.open(segment.logPath, 'write');
  segment.handle = handle;
  segment.handleWritable = true;
  segment.fileCreated = true;
  let findings: ScanFindings;
  try {
    findings = await scanSegment(handle, await handle.size(), segment, true, limits);
    if (findings.tail !== undefined) {
      await handle.truncate(findings.validBytes);
      await handle.datasync();
    } else if (findings.validBytes > 0) {
      // Its bytes count as durable from now on: after an unclean stop they may be in the page cache only.
      await openSync.sync(handle);
    }
  } catch (err) {
    await handle.close().catch(() => {});
    throw err;
  }
  if (findings.tail !== undefined) {
    report.truncatedTail = { segment: segment.logPath, ...findings.tail };
    events.push({ kind: 'tail-truncated', segment: segment.logPath, ...findings.tail });
  }
  for (const c of findings.corruptions) {
    report.corruptions.push({ segment: segment.logPath, offset: c.offset, endOffset: c.endOffset ?? segment.end, position: c.position, reason: c.reason });
  }
  segment.size = segment.written = segment.durable = segment.intact = findings.validBytes;
  // The active segment's index lives in memory; files left from an earlier seal would go stale.
  await unlinkQuietly(fs, segment.idxPath);
  await unlinkQuietly(fs, segment.tixPath);
}

async function loadSealed(
  fs: FileSystem,
  segment: Segment,
  nextBase: number,
  verify: 'all' | 'active',
  limits: ScanLimits,
  report: RecoveryReport,
  events: StorageEvent[],
): Promise<void> {
  segment.sealed = true;
  segment.fileCreated = true;
  const fileBytes = (await fs.stat(segment.logPath))?.size ?? 0;
  segment.size = segment.written = segment.durable = segment.intact = fileBytes;
  const stored = await loadIndexFiles(fs, segment, fileBytes);
  if (verify === 'active' && stored !== undefined && segment.base + stored.lastRelOffset + 1 === nextBase) {
    segment.index = stored.index;
    segment.end = nextBase;
    segment.firstTimestamp = stored.index.timestampAt(0);
    segment.lastTimestamp = stored.lastTimestamp;
    segment.lastIndexedPosition = stored.index.positionAt(stored.index.length - 1);
    return;
  }
  const handle = await fs.open(segment.logPath, 'read');
  let findings: ScanFindings;
  try {
    findings = await scanSegment(handle, fileBytes, segment, false, limits);
  } finally {
    await handle.close();
  }
  for (const c of findings.corruptions) {
    report.corruptions.push({ segment: segment.logPath, offset: c.offset, endOffset: c.endOffset ?? nextBase, position: c.position, reason: c.reason });
    if (c.endOffset === undefined) segment.end = nextBase;
  }
  const consistent = stored !== undefined && segment.base + stored.lastRelOffset + 1 === segment.end;
  if (findings.corruptions.length === 0 && !consistent && segment.end > segment.base) {
    const reason = stored === undefined ? 'index files missing or invalid' : 'index files disagree with the log';
    report.rebuiltIndexes++;
    events.push({ kind: 'index-rebuilt', segment: segment.logPath, reason });
    try {
      await writeFileAt(fs, segment.idxPath, segment.index.encodeOffsets());
      await writeFileAt(fs, segment.tixPath, segment.index.encodeTimes(segment.end - 1 - segment.base, segment.lastTimestamp ?? 0));
    } catch (err) {
      events.push({ kind: 'index-write-failed', segment: segment.logPath, error: ioError(err, 'writing the index', segment.idxPath) });
    }
  }
}

async function loadIndexFiles(
  fs: FileSystem,
  segment: Segment,
  fileBytes: number,
): Promise<{ index: SparseIndex; lastRelOffset: number; lastTimestamp: number } | undefined> {
  try {
    const idx = await readWholeFile(fs, segment.idxPath, MAX_INDEX_FILE_BYTES);
    const tix = await readWholeFile(fs, segment.tixPath, MAX_INDEX_FILE_BYTES);
    if (idx === undefined || tix === undefined) return undefined;
    return SparseIndex.decode(idx, tix, fileBytes);
  } catch {
    return undefined;
  }
}

/** Replaces the file at `path` by `data` (no fsync: index files are checked on open and rebuilt when torn). */
async function writeFileAt(fs: FileSystem, path: string, data: Uint8Array): Promise<void> {
  const handle = await fs.open(path, 'write');
  try {
    await handle.truncate(0);
    await handle.write(data, 0);
  } finally {
    await handle.close();
  }
}

async function unlinkQuietly(fs: FileSystem, path: string): Promise<void> {
  await fs.unlink(path).catch(() => {});
}

function corruptError(range: CorruptRange): LogStorageError {
  return new LogStorageError(
    'STORAGE_CORRUPT',
    `offsets ${range.offset}..${range.endOffset - 1} are damaged in ${range.segment} (${range.reason}); read them from another replica`,
    { offset: range.offset, path: range.segment },
  );
}
