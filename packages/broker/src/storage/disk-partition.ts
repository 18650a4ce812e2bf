import { join } from 'node:path';
import { RelayError } from '@relaymq/sdk/protocol';
import type { BatchMessage, PartitionLog, StoredMessage } from '../core/partition/partition.js';
import { ProducerTable, type ProducerRecord } from '../core/partition/producers.js';
import { parseConf, type ConfState } from '../core/raft/index.js';
import { OpenSync } from './clean-shutdown.js';
import type { FileSystem } from './fs.js';
import { layoutError, MetaStore, SegmentLog, storageRelayError, type RetentionPolicy, type RetentionResult, type SegmentLogOptions } from './segments/index.js';
import type { NewMessage } from './segments/record.js';

/**
 * The state of a partition as of one Raft entry: written beside the segments
 * once they are fsynced up to `endOffset`, so that a restart resumes applying
 * after `index` instead of from the start of the Raft log, and the Raft log
 * up to `index` may be discarded. It is also the snapshot a follower that
 * needs discarded entries receives.
 */
export interface PartitionCheckpoint {
  /** Raft index of the last entry applied. */
  index: number;
  /** Raft term of that entry. */
  term: number;
  /** First offset retained when it was taken. */
  startOffset: number;
  /** Offset the next message gets. */
  endOffset: number;
  /** The idempotence table. */
  producers: ProducerRecord[];
  /**
   * The Raft configuration in effect at `index`: what a restart whose Raft log
   * does not hold this entry resumes with (that log's own configurations may
   * be stale). Absent in checkpoints written before it was recorded.
   */
  conf?: ConfState;
}

/** Settings of a {@link DiskPartition}. */
export interface DiskPartitionOptions {
  /** Recent seqs per producer answerable as duplicates. */
  dedupeWindow: number;
  /** The segment log's settings (its fsync policy is `interval`: the Raft log is the write-ahead log). */
  segments: SegmentLogOptions;
  /** Reports what opening found wrong. */
  report: (message: string, fields: Record<string, unknown>) => void;
}

const CHECKPOINT = 'checkpoint';
/**
 * Fetches of a copy (a snapshot install, a repair) in flight at once: one
 * fetched page was 40 ms at 4 MiB in the move bench, of which the leader's
 * read and send were 10-15, the rest the transfer and the two event loops.
 */
export const COPY_PAGES_IN_FLIGHT = 2;

/** Reads a partition from `offset` on a replica that holds it: its first retained offset and messages from there. */
export type Fetch = (offset: number) => Promise<{ startOffset: number; messages: StoredMessage[] }>;

/**
 * A partition log on disk: the messages in a {@link SegmentLog}, the
 * idempotence table in memory, both checkpointed together. Appends are the
 * state machine's (committed Raft entries, applied in order); a crash loses
 * at most what was applied after the last checkpoint, which the Raft log
 * still holds and applies again.
 */
export class DiskPartition implements PartitionLog {
  /** The idempotence table, checked and recorded by `applyPublish`; checkpointed with the messages. */
  readonly producers: ProducerTable;
  private lastCheckpoint: PartitionCheckpoint | undefined;
  /** A repair in progress: appends wait for it. */
  private repairing: Promise<void> | undefined;
  /** Checkpoints and rewinds, one at a time: a rewind must never read a checkpoint being written. */
  private chain: Promise<unknown> = Promise.resolve();
  /** Closed by a rewind and not opened again yet: reads find nothing meanwhile. */
  private rewinding = false;
  /** Installs of a leader's snapshot called and not finished: the state is neither the old one nor the snapshot's. */
  private installing = 0;
  /** Rewinds called and not finished. */
  private rewinds = 0;
  /**
   * Bumped when the state is replaced behind the appends (an install, a
   * rewind): a checkpoint captured before is not a state this log holds.
   */
  private generation = 0;
  /** The generation each checkpoint taken by {@link capture} was taken in. */
  private readonly captured = new WeakMap<PartitionCheckpoint, number>();

  private constructor(
    private segments: SegmentLog,
    private readonly meta: MetaStore,
    private readonly dir: string,
    private readonly fs: FileSystem,
    private readonly options: DiskPartitionOptions,
    checkpoint: PartitionCheckpoint | undefined,
  ) {
    this.producers = new ProducerTable(options.dedupeWindow);
    this.lastCheckpoint = checkpoint;
    if (checkpoint !== undefined) this.producers.restore(checkpoint.producers);
  }

  /**
   * Opens the partition in `dir` and rewinds it to its checkpoint: messages
   * applied after it are cut (Raft applies them again). Without a checkpoint
   * the log starts over, since Raft still holds every entry.
   */
  static async open(dir: string, fs: FileSystem, options: DiskPartitionOptions): Promise<DiskPartition> {
    const meta = await MetaStore.open(join(dir, 'meta'), fs);
    // A unified partition (its segment log is its Raft log, records of format 2) is not messages of this layout.
    const layout = await meta.read('layout');
    if (layout !== undefined) throw layoutError(dir, String(layout), 'split');
    const { log, checkpoint } = await openAtCheckpoint(dir, fs, meta, options);
    return new DiskPartition(log, meta, dir, fs, options, checkpoint);
  }

  /** The messages (the segment log; a new one after {@link rewind}). */
  get log(): SegmentLog {
    return this.segments;
  }

  /**
   * Rewinds to what is provably durable, as a restart would, without one
   * (a Raft group fenced after a storage failure recovers with it): the
   * segment log is closed, dropping what was not fsynced, opened again and
   * cut back to the checkpoint on disk, and the idempotence table is
   * restored from that checkpoint. Returns it (`undefined`: none, start
   * over); Raft applies the entries after it again. Throws while the disk
   * still fails, leaving the partition to a later call.
   */
  rewind(): Promise<PartitionCheckpoint | undefined> {
    // Before and after: a checkpoint captured meanwhile (while it waits on the chain, or runs) is stale.
    this.generation++;
    this.rewinds++;
    return this.exclusive(async () => {
      this.rewinding = true;
      await this.segments.close().catch(() => {}); // whatever it could not write is not durable: dropped
      // Fsynced at open whatever the broker's start decided: the close may have failed with bytes written and not fsynced.
      const { log, checkpoint } = await openAtCheckpoint(this.dir, this.fs, this.meta, { ...this.options, segments: { ...this.options.segments, openSync: new OpenSync(true) } });
      this.segments = log;
      this.rewinding = false;
      this.producers.restore(checkpoint?.producers ?? []);
      // What was read back is on disk, not necessarily durable: a checkpoint write that failed after its rename
      // (the directory fsync) is readable yet lost by a crash. The caller records it in the Raft log (resumeAt,
      // a compaction later), so it is made durable first; while the disk still fails this throws and is retried.
      if (checkpoint !== undefined && !sameCheckpoint(checkpoint, this.lastCheckpoint)) {
        await this.log.sync();
        await this.meta.write(CHECKPOINT, checkpoint);
      }
      this.lastCheckpoint = checkpoint;
      return checkpoint;
    }).finally(() => {
      this.rewinds--;
      this.generation++;
    });
  }

  private exclusive<V>(task: () => Promise<V>): Promise<V> {
    const run = this.chain.then(task, task);
    this.chain = run.catch(() => {});
    return run;
  }

  get startOffset(): number {
    return this.log.startOffset;
  }

  get endOffset(): number {
    return this.log.endOffset;
  }

  /**
   * While the segment log cannot be written (it retries by itself), why;
   * `undefined` when appends work.
   */
  failure(): RelayError | undefined {
    if (this.rewinding) return new RelayError('STORAGE_ERROR', 'partition log is being rewound to its checkpoint');
    const writeError = this.log.writeFailure;
    return writeError === undefined ? undefined : storageRelayError(writeError, 'partition log write failed');
  }

  /** Whether records are damaged on disk (found on open or by a read): this replica must not lead until repaired. */
  get damaged(): boolean {
    return this.log.damaged;
  }

  /**
   * Repairs damage from a healthy replica: cuts the log at the first damaged
   * offset (never deleting anything the other replicas do not hold, since
   * they hold every committed message) and copies the rest back with
   * `fetch`. Appends wait meanwhile.
   */
  repair(fetch: Fetch): Promise<void> {
    this.repairing ??= (async () => {
      const end = this.log.endOffset;
      const from = Math.min(...this.log.health().corruptions.map((c) => c.offset));
      await this.log.truncateFrom(Math.max(from, this.log.startOffset));
      await this.copyUpTo(end, fetch);
      await this.log.sync();
    })().finally(() => {
      this.repairing = undefined;
    });
    return this.repairing;
  }

  /** The last checkpoint written (or restored), if any. */
  get checkpointed(): PartitionCheckpoint | undefined {
    return this.lastCheckpoint;
  }

  /** Stores `messages` at the next offsets (no checks: see `applyPublish`); returns the first. */
  store(messages: readonly BatchMessage[], timestampMs: number): number {
    return this.log.append(
      messages.map((m) => {
        const message: NewMessage = { timestamp: timestampMs, data: m.data, encoding: m.encoding ?? 'raw' };
        if (m.key !== undefined) message.key = m.key;
        if (m.headers !== undefined) message.headers = m.headers;
        return message;
      }),
    );
  }

  /** Bytes of the segment files. */
  get sizeBytes(): number {
    return this.segments.sizeBytes;
  }

  read(offset: number, maxCount: number, maxBytes: number): StoredMessage[] | Promise<StoredMessage[]> {
    if (this.rewinding) return []; // for a moment; readers wait for the next append
    return this.log.readFromMemory(offset, maxCount, maxBytes) ?? this.log.read(offset, maxCount, maxBytes);
  }

  offsetForTime(timeMs: number): Promise<number> {
    return this.log.offsetForTime(timeMs);
  }

  /**
   * The state as of Raft entry `index` (the last one applied), with the
   * configuration in effect there (`conf`), taken now; {@link writeCheckpoint}
   * makes it durable.
   */
  capture(index: number, term: number, conf?: ConfState): PartitionCheckpoint {
    const checkpoint: PartitionCheckpoint = { index, term, startOffset: this.log.startOffset, endOffset: this.log.endOffset, producers: this.producers.toRecords(), ...(conf === undefined ? {} : { conf }) };
    this.captured.set(checkpoint, this.generation);
    return checkpoint;
  }

  /**
   * Whether a checkpoint can be captured now: not while a leader's snapshot
   * is being installed or the state rewound (the messages and the
   * idempotence table are then a mix of two states, and the applied index
   * the caller knows is the old one).
   */
  get capturable(): boolean {
    return this.installing === 0 && this.rewinds === 0 && !this.damaged;
  }

  /**
   * Fsyncs the segments up to the checkpoint, then records it (atomically).
   * Resolves `false`, writing nothing, when the checkpoint is stale: below
   * the one recorded, or captured before an install or rewind replaced the
   * state. A stale checkpoint must never be written: it would move the
   * durable state back below a Raft snapshot recorded since (the leader's,
   * installed meanwhile), and a restart could then never line the two up.
   */
  writeCheckpoint(checkpoint: PartitionCheckpoint): Promise<boolean> {
    return this.exclusive(() => this.persistCheckpoint(checkpoint));
  }

  /** {@link writeCheckpoint}'s work; runs on the chain. */
  private async persistCheckpoint(checkpoint: PartitionCheckpoint): Promise<boolean> {
    const generation = this.captured.get(checkpoint);
    if (generation !== undefined && generation !== this.generation) return false;
    if (checkpoint.index < (this.lastCheckpoint?.index ?? 0)) return false;
    await this.log.sync();
    await this.meta.write(CHECKPOINT, checkpoint);
    this.lastCheckpoint = checkpoint;
    return true;
  }

  /**
   * Replaces this replica's state with a leader's snapshot: messages it lacks
   * are copied with `fetch` (from the leader, which holds them), older ones it
   * can no longer get are skipped by starting the log at the leader's first
   * retained offset. Resolves once the state is checkpointed at the snapshot.
   */
  install(snapshot: PartitionCheckpoint, fetch: Fetch): Promise<void> {
    // At once, and again when done: a checkpoint captured meanwhile would mix the two states (see `capturable`).
    this.installing++;
    this.generation++;
    // On the chain: a checkpoint captured before is written first, never after the snapshot's.
    return this.exclusive(async () => {
      if (this.log.endOffset < snapshot.startOffset || this.log.startOffset > snapshot.endOffset) await this.log.reset(snapshot.startOffset);
      else if (this.log.endOffset > snapshot.endOffset) await this.log.truncateFrom(snapshot.endOffset);
      await this.copyUpTo(snapshot.endOffset, fetch);
      this.producers.restore(snapshot.producers);
      if (!(await this.persistCheckpoint(snapshot))) {
        throw new RelayError('STORAGE_ERROR', `snapshot at ${snapshot.index} is older than the checkpoint at ${this.lastCheckpoint?.index ?? 0}`);
      }
    }).finally(() => {
      this.installing--;
      this.generation++;
    });
  }

  /**
   * Appends the messages from this log's end up to `end`, copied with `fetch`
   * from a replica that holds them; where that replica no longer has them
   * (retention), this log skips ahead to its first retained offset.
   *
   * Pipelined, since each fetch is mostly waiting (the leader's read, the
   * transfer): {@link COPY_PAGES_IN_FLIGHT} pages are asked for at once, the
   * next one from where the previous should end (its offset plus the last
   * page's message count), while the page in hand is written to the segment
   * files (`flush`: to the OS, fsynced every `maxUnsyncedBytes`, not per
   * page). A page asked from a wrong guess is used from this log's end when
   * it covers it, else dropped and asked again from the end. Nothing copied
   * is vouched for until the caller's checkpoint: a crash mid-copy reopens
   * at the previous checkpoint and the copy starts again from there.
   */
  private async copyUpTo(end: number, fetch: Fetch): Promise<void> {
    let writing: Promise<void> = Promise.resolve();
    /** Pages asked for and not used yet, in the order asked, each with the offset it was asked from. */
    const asked: Array<{ from: number; page: ReturnType<Fetch> }> = [];
    const ask = (from: number): void => {
      const page = fetch(from);
      page.catch(() => {}); // a page dropped unread when the copy fails is no unhandled rejection
      asked.push({ from, page });
    };
    try {
      // Bounded: every round appends at least one message, moves the start forward, or drops guessed pages
      // (then the next round asks from this log's end, which appends or throws).
      while (this.log.endOffset < end) {
        const at = this.log.endOffset;
        if (asked.length === 0) ask(at);
        const { from, page } = asked.shift() as (typeof asked)[number];
        const { startOffset, messages } = await page;
        if (startOffset > at) {
          asked.length = 0;
          await writing;
          await this.log.reset(Math.min(startOffset, end));
          continue;
        }
        const wanted = messages.filter((m) => m.offset >= at && m.offset < end);
        if (wanted.length === 0 || (wanted[0] as StoredMessage).offset !== at) {
          if (from === at) throw new Error(`fetch from ${at} returned no usable messages`);
          asked.length = 0; // guessed wrong: asked again from this log's end
          continue;
        }
        this.log.append(wanted.map(({ offset: _offset, ...message }) => message));
        let next = asked.length === 0 ? this.log.endOffset : (asked[asked.length - 1] as (typeof asked)[number]).from + messages.length;
        for (; asked.length < COPY_PAGES_IN_FLIGHT && next < end; next += messages.length) ask(next);
        await writing;
        writing = this.log.flush();
      }
    } finally {
      await writing.catch(() => {}); // a failed write is the segment log's to retry; the caller's checkpoint sync reports it
    }
  }

  applyRetention(policy: RetentionPolicy, nowMs: number): Promise<RetentionResult> {
    return this.log.applyRetention(policy, nowMs);
  }

  close(): Promise<void> {
    return this.log.close();
  }
}

/** Checks a checkpoint read back from disk (or received in a snapshot). */
export function parseCheckpoint(value: unknown): PartitionCheckpoint | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const o = value as Record<string, unknown>;
  if (![o.index, o.term, o.startOffset, o.endOffset].every(isUint) || !Array.isArray(o.producers)) return undefined;
  if ((o.startOffset as number) > (o.endOffset as number)) return undefined;
  const producers: ProducerRecord[] = [];
  for (const raw of o.producers as unknown[]) {
    if (typeof raw !== 'object' || raw === null) return undefined;
    const p = raw as Record<string, unknown>;
    if (typeof p.producerId !== 'string' || !isUint(p.nextSeq) || !Array.isArray(p.recent) || !p.recent.every(isUint)) return undefined;
    producers.push({ producerId: p.producerId, nextSeq: p.nextSeq, recent: p.recent as number[] });
  }
  const conf = o.conf === undefined ? undefined : parseConf(o.conf);
  if (o.conf !== undefined && conf === undefined) return undefined;
  return {
    index: o.index as number,
    term: o.term as number,
    startOffset: o.startOffset as number,
    endOffset: o.endOffset as number,
    producers,
    ...(conf === undefined ? {} : { conf }),
  };
}

/** Whether two checkpoints describe the same state (one read back from disk, one held in memory). */
function sameCheckpoint(a: PartitionCheckpoint, b: PartitionCheckpoint | undefined): boolean {
  return b !== undefined && a.index === b.index && a.term === b.term && a.startOffset === b.startOffset && a.endOffset === b.endOffset;
}

function isUint(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Opens the segment log in `dir` cut back to the checkpoint on disk (see {@link DiskPartition.open}). */
async function openAtCheckpoint(
  dir: string,
  fs: FileSystem,
  meta: MetaStore,
  options: DiskPartitionOptions,
): Promise<{ log: SegmentLog; checkpoint: PartitionCheckpoint | undefined }> {
  const log = await SegmentLog.open(join(dir, 'log'), fs, { ...options.segments, fsync: 'interval' });
  try {
    const checkpoint = parseCheckpoint(await meta.read(CHECKPOINT));
    const end = checkpoint?.endOffset ?? 0;
    if (log.endOffset > end && log.startOffset <= end) await log.truncateFrom(end);
    else if (log.endOffset !== end) {
      // Segments missing below the checkpoint (deleted by hand, a lost file): only a reset keeps offsets
      // aligned; this replica then serves from `end`, and subscribers that needed more get a gap event.
      options.report('partition segments do not reach their checkpoint; starting this replica over at the checkpoint', {
        dir,
        segmentsEnd: log.endOffset,
        checkpointEnd: end,
      });
      await log.reset(end);
    }
    return { log, checkpoint };
  } catch (err) {
    await log.close().catch(() => {});
    throw err;
  }
}
