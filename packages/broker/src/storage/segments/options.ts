import { OpenSync } from '../clean-shutdown.js';
import { OpenFileCache } from '../open-files.js';
import type { LogStorageError } from './errors.js';

/** When appended records are fsynced. */
export type FsyncPolicy =
  /** `flush()` resolves only after the records are on disk (fdatasync); one fsync covers every record appended before it (group commit). */
  | 'always'
  /**
   * `flush()` resolves once the records are written to the OS; a timer fsyncs every `fsyncIntervalMs`.
   * An OS crash or power loss may lose the last interval; a process crash loses nothing.
   */
  | 'interval';

/** Timer functions, injected so tests control time. */
export interface Timers {
  setTimeout(callback: () => void, delayMs: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Node's timers, unref'd: a pending fsync timer never keeps the process alive. */
export const nodeTimers: Timers = Object.freeze({
  setTimeout(callback: () => void, delayMs: number): unknown {
    const handle = setTimeout(callback, delayMs);
    handle.unref();
    return handle;
  },
  clearTimeout(handle: unknown): void {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
});

/** The health of a log. */
export type LogHealthStatus =
  /** Appends and reads work. */
  | 'ok'
  /** The last write or fsync failed: appends are refused (reads work) until a retry succeeds. */
  | 'degraded'
  /** Records are damaged on disk: reads of them fail, and this replica must not lead until repaired. Appends still work. */
  | 'corrupt';

/** A damaged range of offsets, found on open or by a read. */
export interface CorruptRange {
  /** The segment file. */
  segment: string;
  /** First damaged offset. */
  offset: number;
  /** First offset after the damage (readable again, if stored). */
  endOffset: number;
  /** Byte position of the damage in the segment file. */
  position: number;
  reason: string;
}

/** What happened inside a log, for logs and metrics. */
export type StorageEvent =
  | { kind: 'tail-truncated'; segment: string; position: number; bytes: number; reason: string }
  | { kind: 'corruption'; range: CorruptRange }
  | { kind: 'index-rebuilt'; segment: string; reason: string }
  | { kind: 'index-write-failed'; segment: string; error: LogStorageError }
  | { kind: 'segment-rolled'; segment: string; baseOffset: number }
  | { kind: 'segment-deleted'; segment: string; reason: 'retention' | 'truncate' | 'reset' }
  | { kind: 'health'; status: LogHealthStatus; error: LogStorageError | undefined };

/** Options of a {@link SegmentLog}. */
export interface SegmentLogOptions {
  /** @defaultValue `'always'` */
  fsync?: FsyncPolicy;
  /** With `fsync: 'interval'` only: most time between a write and its fsync. @defaultValue 1000 */
  fsyncIntervalMs?: number;
  /**
   * With `fsync: 'interval'` only: written but unsynced bytes that force an fsync early
   * (they are kept in memory to survive a failed fsync). @defaultValue 64 MiB
   */
  maxUnsyncedBytes?: number;
  /** A segment is sealed and a new one started once it would grow past this. At most 1 GiB. @defaultValue 64 MiB */
  segmentBytes?: number;
  /** Bytes of records between two entries of the sparse index. @defaultValue 4096 */
  indexIntervalBytes?: number;
  /** Largest record (frame) accepted; a length field above it on disk is corruption. At most 256 MiB. @defaultValue 16 MiB */
  maxRecordBytes?: number;
  /** Recent records kept in memory for readers at the tail (records not yet fsynced are always kept). @defaultValue 8 MiB */
  tailCacheBytes?: number;
  /** Largest single read from a segment file. @defaultValue 1 MiB */
  readChunkBytes?: number;
  /** Read handles of sealed segments kept open. @defaultValue 8 */
  maxOpenSegments?: number;
  /**
   * The bound on open segment files shared by every log of a broker: beyond its capacity the least
   * recently used idle handles (no read in flight, nothing written and not fsynced) are closed, and
   * reopened when next needed. @defaultValue a bound of this log's own, without limit
   */
  openFiles?: OpenFileCache;
  /**
   * Whether opening fsyncs the active segment before taking its bytes as durable (they may be in the page
   * cache only, after a process killed between a write and its fsync), and how many such fsyncs run at once
   * over the broker's logs. A broker passes one that skips them after a clean stop (storage/clean-shutdown.ts).
   * @defaultValue fsync at open
   */
  openSync?: OpenSync;
  /**
   * On open, check every record of every segment (`'all'`), or only the active segment's and trust
   * sealed segments' index files, checking their records as they are read (`'active'`). @defaultValue `'all'`
   */
  verifyOnOpen?: 'all' | 'active';
  /** While degraded, delay between automatic retries of the failed write. @defaultValue 1000 */
  retryDelayMs?: number;
  /** Offset of the first record of a brand-new log. @defaultValue 0 */
  initialOffset?: number;
  /** @defaultValue Node's timers, unref'd */
  timers?: Timers;
  /** Receives what happens (recovery findings, health changes, rolls, deletions). @defaultValue ignore */
  onEvent?: (event: StorageEvent) => void;
}

export type ResolvedSegmentLogOptions = Required<SegmentLogOptions>;

const MiB = 1024 * 1024;

/** The defaults, in one place. */
export const SEGMENT_LOG_DEFAULTS: Readonly<Omit<ResolvedSegmentLogOptions, 'timers' | 'onEvent' | 'openFiles' | 'openSync'>> = Object.freeze({
  fsync: 'always',
  fsyncIntervalMs: 1000,
  maxUnsyncedBytes: 64 * MiB,
  segmentBytes: 64 * MiB,
  indexIntervalBytes: 4096,
  maxRecordBytes: 16 * MiB,
  tailCacheBytes: 8 * MiB,
  readChunkBytes: MiB,
  maxOpenSegments: 8,
  verifyOnOpen: 'all',
  retryDelayMs: 1000,
  initialOffset: 0,
});

function positiveInt(name: string, value: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isSafeInteger(value) || value <= 0 || value > max) throw new RangeError(`${name} must be an integer in [1, ${max}], got ${value}`);
}

/** Fills in defaults and rejects invalid or conflicting options by name. */
export function resolveSegmentLogOptions(options: SegmentLogOptions = {}): ResolvedSegmentLogOptions {
  const fsync = options.fsync ?? SEGMENT_LOG_DEFAULTS.fsync;
  if (fsync !== 'always' && fsync !== 'interval') throw new RangeError(`fsync must be 'always' or 'interval', got ${String(fsync)}`);
  if (fsync === 'always' && options.fsyncIntervalMs !== undefined) throw new RangeError("fsyncIntervalMs is only meaningful with fsync: 'interval'");
  if (fsync === 'always' && options.maxUnsyncedBytes !== undefined) throw new RangeError("maxUnsyncedBytes is only meaningful with fsync: 'interval'");
  const verifyOnOpen = options.verifyOnOpen ?? SEGMENT_LOG_DEFAULTS.verifyOnOpen;
  if (verifyOnOpen !== 'all' && verifyOnOpen !== 'active') throw new RangeError(`verifyOnOpen must be 'all' or 'active', got ${String(verifyOnOpen)}`);
  const resolved: ResolvedSegmentLogOptions = {
    ...SEGMENT_LOG_DEFAULTS,
    ...definedOnly(options),
    fsync,
    verifyOnOpen,
    timers: options.timers ?? nodeTimers,
    onEvent: options.onEvent ?? (() => {}),
    openFiles: options.openFiles ?? new OpenFileCache(Number.MAX_SAFE_INTEGER),
    openSync: options.openSync ?? new OpenSync(true),
  };
  positiveInt('fsyncIntervalMs', resolved.fsyncIntervalMs);
  positiveInt('maxUnsyncedBytes', resolved.maxUnsyncedBytes);
  positiveInt('segmentBytes', resolved.segmentBytes, 1024 * MiB);
  positiveInt('indexIntervalBytes', resolved.indexIntervalBytes, resolved.segmentBytes);
  positiveInt('maxRecordBytes', resolved.maxRecordBytes, 256 * MiB);
  positiveInt('tailCacheBytes', resolved.tailCacheBytes);
  positiveInt('readChunkBytes', resolved.readChunkBytes, 256 * MiB);
  positiveInt('maxOpenSegments', resolved.maxOpenSegments, 4096);
  positiveInt('retryDelayMs', resolved.retryDelayMs);
  if (!Number.isSafeInteger(resolved.initialOffset) || resolved.initialOffset < 0) {
    throw new RangeError(`initialOffset must be a non-negative integer, got ${resolved.initialOffset}`);
  }
  return resolved;
}

function definedOnly(options: SegmentLogOptions): Partial<SegmentLogOptions> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) if (value !== undefined) out[key] = value;
  return out as Partial<SegmentLogOptions>;
}
