import { join } from 'node:path';
import { encodeValue, RelayError } from '@relaymq/sdk/protocol';
import { MemoryStorage, type ConfState, type Entry, type HardState, type NodeId, type Snapshot, type Storage } from '../core/raft/index.js';
import { OpenSync } from './clean-shutdown.js';
import { decodeEntryBody, takeNormalEntryBody, type EntryPayload } from './entry-bodies.js';
import { EntryOffsets } from './entry-offsets.js';
import { nodeFileSystem, type FileSystem } from './fs.js';
import type { HardStateJournal, HardStateStore } from './hard-state-journal.js';
import type { RaftLogStorage, RaftStorageOptions } from './raft-storage.js';
import { layoutError, LogStorageError, MetaStore, SegmentLog, storageRelayError, type HardStateRecord, type NewMessage, type RaftRecordHeader, type RetentionPolicy, type RetentionResult, type SegmentLogOptions, type StoredRecord } from './segments/index.js';

/** Records read back per read on open. */
const READ_PAGE = { count: 4096, bytes: 16 * 1024 * 1024 };

const BOOTSTRAP = 'bootstrap';
const SNAPSHOT = 'snapshot';
/** The layout a unified directory records; a split partition directory has a `checkpoint` instead. */
const LAYOUT = 'layout';
const UNIFIED = 'unified';

/** Settings of a {@link SegmentRaftStorage}: those of every Raft log, plus the segment log's. */
export interface SegmentRaftStorageOptions<T, S = unknown> extends RaftStorageOptions {
  /** The segment log's settings (its `fsync` is this storage's). */
  segments?: Omit<SegmentLogOptions, 'fsync' | 'fsyncIntervalMs' | 'initialOffset' | 'openFiles'>;
  /**
   * The timestamp a record of `entry` gets (a publish's time, for reads by
   * time); raised to the previous record's, as a partition raises its
   * messages' (entries that store no message get none). @defaultValue 0
   */
  timestampOf?: (entry: Entry<T>) => number;
  /** Reports what opening found and repaired (a log reset to its snapshot, damage cut off). */
  report?: (message: string, fields: Record<string, unknown>) => void;
  /**
   * How many messages each entry stores at the partition's next offsets,
   * asked once per entry as it is appended, in log order, and told when a
   * conflicting suffix is cut (`StoredCounts` in core/partition projects
   * each entry over the applied state, as the apply step will store it).
   * Offsets are assigned in log order, so they are dense and the same on
   * every replica. @defaultValue every entry stores none
   */
  counts?: EntryCounter<T>;
  /** The offset after the last message a leader's snapshot covers (from its data). @defaultValue 0 */
  snapshotEndOffset?: (snapshot: Snapshot<S>) => number;
  /**
   * The broker's journal of hard states and this log's key in it: the term,
   * vote and commit are written there, batched with the other groups' (one
   * fsync for the votes of many groups). @defaultValue a `hardstate` value
   * in the directory's meta store, replaced (and fsynced) on each change
   */
  hardStates?: { journal: HardStateJournal; key: string };
}

/** Decides how many messages an entry stores when it is appended (see {@link SegmentRaftStorageOptions.counts}). */
export interface EntryCounter<T> {
  count(entry: Entry<T>): number;
  /** The entries from `index` on were cut. */
  truncated(index: number): void;
}

/** A committed entry read back with the partition offsets of its messages. */
export interface StoredEntry<T> {
  entry: Entry<T>;
  firstOffset: number;
  count: number;
  /** Its messages' timestamp (never below an earlier message's). */
  timestamp: number;
}

/** A committed record as one replica copies it from another (a backfill below a snapshot): what a format 2 record holds. */
export interface RecordCopy {
  index: number;
  term: number;
  firstOffset: number;
  count: number;
  timestamp: number;
  /** The entry, encoded as the record stores it. */
  data: Uint8Array;
}

/** Committed records from a replica: the first index it still holds, and records from the one asked for. */
export interface RecordPage {
  startIndex: number;
  records: RecordCopy[];
}

/** The recorded snapshot: the core's, plus the offset after the messages it covers. */
interface RecordedSnapshot<S> {
  snapshot: Snapshot<S>;
  endOffset: number;
}

/**
 * A Raft group's stable storage over a segment log: one record per entry,
 * of format 2 (the record's offset is the Raft index; its header holds the
 * term and the partition offsets of the entry's messages), so a partition's
 * Raft log and its message log are one (layout `unified`, docs/storage.md). The bootstrap voters and the
 * latest snapshot are small values beside it (a `MetaStore`, each replaced
 * atomically); the hard state too, unless the broker's journal of hard
 * states keeps it (`hardStates`: the votes of many groups share an fsync).
 *
 * The core reads an in-memory window (the entries after the latest
 * snapshot); a compaction moves the snapshot and shrinks the window but
 * deletes nothing on disk (the records are the partition's messages: only
 * retention deletes them). Writes are queued synchronously, as the core's
 * `Ready` hands them over, and reach the segment log in order on
 * {@link sync}: a conflicting suffix is cut (`truncateFrom`), an installed
 * snapshot resets the log after it, the new records are appended and flushed
 * per the fsync policy (group commit), and a changed term or vote is then
 * recorded and fsynced. The same interface and contract as
 * `DurableRaftStorage`.
 */
export class SegmentRaftStorage<T, S> implements RaftLogStorage<T, S> {
  /** A record takes its entry's body (storage/entry-bodies.ts). */
  readonly takesEntryBodies = true;
  /** Entries appended in memory and not handed to the segment log yet, contiguous. */
  private queue: Array<Entry<T>> = [];
  /** The segment log must be cut from this index before the queue is appended. */
  private pendingTruncate: number | undefined;
  /** A snapshot applied and not recorded yet; the log is reset after it once recorded. */
  private pendingSnapshot: Snapshot<S> | undefined;
  private voteChanged = false;
  private commitChanged = false;
  private failed: RelayError | undefined;
  /** A repair cut the log here and is copying it back: reads from here fail meanwhile (see {@link repair}). */
  private repairingFrom: number | undefined;
  /** The log was closed by a reload and not opened again yet: reads find nothing (see {@link reload}). */
  private reloading = false;
  /**
   * Under `fsync: 'always'`, a reload's close failed to cut the log back to
   * its last fsynced entry: the log reopened is cut here (durably) before it
   * is read, and the reload fails until that cut succeeds.
   */
  private pendingCut: number | undefined;
  private commitTimer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  /** The close wrote and fsynced everything (see {@link closedDurably}). */
  private durableAtClose = false;
  /** Writes of this storage (sync, compact, reload, close), one at a time. */
  private chain: Promise<unknown> = Promise.resolve();
  /** Observes every fsync's duration in seconds (metrics). */
  onFsync: ((seconds: number) => void) | undefined;
  /** The last snapshot being recorded beside the writes (see {@link compactBesideWrites}); never rejects. */
  private snapshotRecording: Promise<void> | undefined;

  private constructor(
    private log: SegmentLog,
    private current: MemoryStorage<T, S>,
    /** The offsets of the entries in `current`'s window. */
    private offsets: EntryOffsets,
    private readonly meta: MetaStore,
    private readonly hard: HardStateStore,
    private readonly voters: readonly NodeId[],
    private readonly dir: string,
    private readonly fs: FileSystem,
    private readonly options: SegmentRaftStorageOptions<T, S>,
  ) {}

  /**
   * Opens (or creates) the log in the directory `path`. `bootstrapVoters` is
   * the configuration of a brand-new group: recorded when the directory is
   * new, ignored when it already recorded one. Refuses (`STORAGE_LAYOUT`) a
   * directory of the split layout.
   */
  static async open<T, S>(path: string, bootstrapVoters: readonly NodeId[], options: SegmentRaftStorageOptions<T, S> = { fsync: 'always', fsyncIntervalMs: 1000 }): Promise<SegmentRaftStorage<T, S>> {
    const fs = options.fs ?? nodeFileSystem;
    const meta = await MetaStore.open(join(path, 'meta'), fs);
    const layout = await meta.read(LAYOUT);
    // A directory that holds segments or a checkpoint but says no layout is a split one (format 1 records).
    if (layout === undefined && ((await fs.stat(join(path, 'log'))) !== undefined || (await meta.read('checkpoint')) !== undefined)) throw layoutError(path, 'split', UNIFIED);
    if (layout !== undefined && layout !== UNIFIED) throw layoutError(path, String(layout), UNIFIED);
    const recorded = await meta.read(BOOTSTRAP);
    const voters = isVoters(recorded) ? recorded : [...bootstrapVoters];
    const hard = hardStateStore(meta, options.hardStates);
    // A new directory starts from no hard state, whatever the journal holds under its key (a deleted replica's, if its
    // release was lost in a crash): reset before the layout is recorded, so a crash in between resets it again.
    if (layout === undefined && options.hardStates !== undefined) await hard.write({ term: 0, vote: null, commit: 0 });
    if (layout === undefined) await meta.write(LAYOUT, UNIFIED);
    if (recorded === undefined) await meta.write(BOOTSTRAP, voters);
    const { log, memory, offsets } = await load<T, S>(path, fs, meta, hard, voters, options);
    return new SegmentRaftStorage(log, memory, offsets, meta, hard, voters, path, fs, options);
  }

  get bootstrapVoters(): readonly NodeId[] {
    return this.voters;
  }

  get confState(): ConfState {
    return this.current.confAt(this.current.lastIndex());
  }

  get memory(): MemoryStorage<T, S> {
    return this.current;
  }

  get reader(): Storage<T, S> {
    return this.current;
  }

  get hardState(): HardState {
    return this.current.getHardState();
  }

  /** Bytes of the segment files (the partition's messages too). */
  get fileBytes(): number {
    return this.log.sizeBytes;
  }

  /** The segment log (the read path of a unified partition reads it; only this storage writes it). */
  get segments(): SegmentLog {
    return this.log;
  }

  get failure(): RelayError | undefined {
    return this.failed;
  }

  applySnapshot(snapshot: Snapshot<S>): void {
    this.current.applySnapshot(snapshot);
    this.offsets.reset(snapshot.meta.index, this.options.snapshotEndOffset?.(snapshot) ?? 0);
    this.pendingSnapshot = snapshot;
    this.pendingTruncate = undefined;
    this.queue = [];
  }

  append(entries: readonly Entry<T>[]): void {
    const lastBefore = this.current.lastIndex();
    this.current.append(entries);
    const base = this.current.firstIndex() - 1;
    const fresh = entries.filter((e) => e.index > base);
    const first = fresh[0];
    if (first === undefined) return;
    const counter = this.options.counts;
    if (first.index <= lastBefore) counter?.truncated(first.index);
    this.offsets.append(first.index, counter === undefined ? fresh.map(() => 0) : fresh.map((e) => counter.count(e)));
    const queued = this.queue[0];
    if (queued !== undefined && first.index >= queued.index) this.queue.length = first.index - queued.index;
    else {
      this.queue = [];
      if (this.pendingSnapshot === undefined && first.index < this.diskEnd()) this.pendingTruncate = first.index;
    }
    this.queue.push(...fresh);
  }

  setHardState(hardState: HardState, durable = false): void {
    const before = this.current.getHardState();
    // Written and fsynced as a vote is (after the entries, fsynced first: a restart never reads it beyond them).
    if (durable || before.term !== hardState.term || before.vote !== hardState.vote) this.voteChanged = true;
    else if (before.commit !== hardState.commit) this.commitChanged = true;
    this.current.setHardState(hardState);
  }

  /**
   * Writes what was queued, in order, and makes it as durable as the fsync
   * policy says (a term or vote change always). A failure is not retried
   * here: the group fences itself and later {@link reload}s what is durable.
   */
  sync(): Promise<void> {
    return this.exclusive(async () => {
      const voteChanged = this.voteChanged;
      this.voteChanged = false;
      const fsync = this.options.fsync === 'always' || voteChanged;
      const started = performance.now();
      try {
        await this.writeQueued(fsync);
        if (voteChanged) {
          this.commitChanged = false;
          await this.hard.write(this.current.getHardState());
        }
      } catch (err) {
        // Not recorded: a later sync (without a reload) must still write and fsync it.
        this.voteChanged ||= voteChanged;
        this.failed = storageRelayError(err, 'Raft log write failed');
        this.options.onFailure?.(this.failed);
        throw this.failed;
      }
      if (this.failed !== undefined) {
        this.failed = undefined;
        this.options.onFailure?.(undefined);
      }
      if (fsync) this.onFsync?.((performance.now() - started) / 1000);
      // A commit index alone needs no fsync (it is recomputed from the leader): recorded now and then.
      if (this.commitChanged) {
        this.commitTimer ??= setTimeout(() => {
          this.commitTimer = undefined;
          this.exclusive(() => this.writeCommit()).catch(() => {}); // a failure shows on the next sync
        }, this.options.fsyncIntervalMs).unref();
      }
    });
  }

  /** Hands the queued writes to the segment log and flushes it (fsyncs with `fsync`). */
  private async writeQueued(fsync: boolean): Promise<void> {
    if (this.repairingFrom !== undefined) throw new RelayError('STORAGE_ERROR', `${this.dir}: the log is being repaired from index ${this.repairingFrom}`);
    const snapshot = this.pendingSnapshot;
    if (snapshot !== undefined) {
      // Recorded before the log is reset: a crash between the two leaves a log that does not match the snapshot,
      // which opening resets again (see `load`).
      await this.meta.write(SNAPSHOT, { snapshot, endOffset: this.offsets.baseEndOffset } satisfies RecordedSnapshot<S>);
      // A log that holds the snapshot's last entry (backfilled from the leader: see `backfill`) keeps its records up to it.
      const s = snapshot.meta.index;
      if (await holdsEntry(this.log, s, snapshot.meta.term, this.offsets.baseEndOffset)) {
        if (this.log.endOffset > s + 1) await this.log.truncateFrom(s + 1);
      } else await this.log.reset(s + 1);
      this.pendingSnapshot = undefined;
    }
    if (this.pendingTruncate !== undefined) {
      await this.log.truncateFrom(this.pendingTruncate);
      this.pendingTruncate = undefined;
    }
    if (this.queue.length > 0) {
      this.log.append(this.queue.map((entry) => this.recordOf(entry)));
      this.queue = [];
    }
    await (fsync ? this.log.sync() : this.log.flush());
  }

  /** The record of an entry of the window, with its offsets. */
  private recordOf(entry: Entry<T>): NewMessage {
    const at = this.offsets.at(entry.index);
    // An entry that stores no message never raises the timestamps of the messages after it (0 is raised to the last).
    return toRecord(entry, at.count > 0 ? (this.options.timestampOf?.(entry) ?? 0) : 0, { term: entry.term, ...at });
  }

  private async writeCommit(): Promise<void> {
    if (!this.commitChanged) return;
    // Entries appended and not written yet (a Ready whose sync is queued behind this): the commit may name them, or
    // entries of the disk that their truncation will replace, which a restart would then read as committed. The
    // commit stays changed: the sync that writes them records it.
    if (this.queue.length > 0 || this.pendingTruncate !== undefined || this.pendingSnapshot !== undefined) return;
    this.commitChanged = false;
    const written = this.hard.write(this.current.getHardState());
    // A commit index needs no fsync: with a journal, which keeps the order of writes, the chain does not wait for
    // this one's, so a `sync` queued behind it (a publish's fsync) does not either. A failure shows on a later write.
    if (this.hard.ordered === true) written.catch(() => {});
    else await written;
  }

  /**
   * Records a snapshot at `index` (applied, hence committed and stored) and
   * drops the entries it covers from memory. Their records stay on disk: a
   * partition's segments are its messages; retention deletes them.
   */
  compact(index: number, data: S): Promise<void> {
    if (this.options.fsync !== 'always') return this.compactBesideWrites(index, data);
    return this.exclusive(async () => {
      const snapshot = this.current.createSnapshot(index, data);
      const endOffset = this.offsets.endAt(index);
      // The records up to `index` must be durable before a snapshot says they are the state.
      await this.writeQueued(true);
      this.current.compact(index);
      this.offsets.compact(index);
      await this.meta.write(SNAPSHOT, { snapshot, endOffset } satisfies RecordedSnapshot<S>);
    });
  }

  /**
   * {@link compact} under `interval`, where the records are written, not
   * fsynced, when the entries are acknowledged: the fsync that makes the
   * records up to `index` durable, and the recording of the snapshot (a file
   * replaced: two more fsyncs), hold neither this storage's writes (the
   * `sync` of the next entries, on the path of every acknowledgement) nor
   * the event loop. The records are fsynced by the segment log's background
   * fsync, in the thread pool; the snapshot is then taken and its recording
   * started in order with the other writes, and waited for outside them.
   * A snapshot installed or taken meanwhile, or a reload, supersedes it.
   */
  private async compactBesideWrites(index: number, data: S): Promise<void> {
    const log = await this.exclusive(async () => {
      await this.writeQueued(false);
      return this.log;
    });
    await log.syncThrough(index + 1); // a record's offset is its entry's index
    const recording = await this.exclusive(async () => {
      if (this.log !== log || this.reloading || this.closed || this.pendingSnapshot !== undefined || index <= (this.current.snapshot()?.meta.index ?? 0)) return undefined;
      // The records up to `index` must be durable before a snapshot says they are the state (a failed fsync rewound them).
      if (log.durableOffset <= index) await this.writeQueued(true);
      const snapshot = this.current.createSnapshot(index, data);
      const endOffset = this.offsets.endAt(index);
      this.current.compact(index);
      this.offsets.compact(index);
      // The meta store writes in call order: a snapshot installed after this one is recorded after it.
      const written = this.meta.write(SNAPSHOT, { snapshot, endOffset } satisfies RecordedSnapshot<S>);
      this.snapshotRecording = written.catch(() => {});
      return { written };
    });
    await recording?.written;
  }

  /**
   * After a failed write or fsync: drops what was never acknowledged (the
   * segment log is closed without writing) and reads back what is left, as a
   * restart would. With `fsync: 'always'` that is everything not fsynced;
   * with `interval`, which acknowledges an entry once written, only what the
   * failed write did not write whole: the records written before the
   * failure stay (a process killed now would keep them too), or a leader
   * that counted them would find them gone. From the close until a reload
   * succeeds (a failed one leaves the log closed: the group stays fenced and
   * tries again), reads find nothing, as the split layout's do while its
   * partition is rewound.
   *
   * The close cuts the file; when that cut fails, the file still holds the
   * entries it should have dropped (readable: after a failed fsync Linux may
   * keep the pages in its cache), and reading it back as it is would return
   * them, against this contract. So the log reopened is cut where the close
   * meant to cut (under `always`, after the last fsynced entry), durably,
   * before it is read; a failure of that cut fails the reload, and the next
   * one cuts again. The reopened log is fsynced at open either way: what
   * the failed close left written is durable before it is reported.
   */
  reload(): Promise<void> {
    return this.exclusive(async () => {
      await this.snapshotRecording; // read back as recorded
      // Cut for a repair: reading it back now would lose the entries after the cut; the repair completes it.
      if (this.repairingFrom !== undefined) throw new RelayError('STORAGE_ERROR', `${this.dir}: the log is being repaired from index ${this.repairingFrom}`);
      clearTimeout(this.commitTimer);
      this.commitTimer = undefined;
      this.voteChanged = this.commitChanged = false;
      this.queue = [];
      this.pendingTruncate = undefined;
      this.pendingSnapshot = undefined;
      const always = this.options.fsync === 'always';
      // Read before the close (a closed log's, after a failed reload, is where that reload's close left it).
      const durableEnd = this.log.durableOffset;
      this.reloading = true;
      await this.log.close({ drop: always ? 'unsynced' : 'unwritten' }).catch(() => {
        if (always) this.pendingCut = Math.min(this.pendingCut ?? durableEnd, durableEnd);
      });
      const { log, memory, offsets } = await load<T, S>(this.dir, this.fs, this.meta, this.hard, this.voters, { ...this.options, openSync: new OpenSync(true) }, this.pendingCut);
      this.pendingCut = undefined;
      this.log = log;
      this.current = memory;
      this.offsets = offsets;
      this.reloading = false;
    });
  }

  resumeAt(index: number, term: number, data: S, conf?: ConfState): void {
    const snapshotIndex = this.current.snapshot()?.meta.index ?? 0;
    if (index < snapshotIndex) throw new RelayError('STORAGE_ERROR', `state machine at ${index} is behind its Raft snapshot ${snapshotIndex}`);
    if (index > this.current.lastIndex()) this.applySnapshot({ meta: { index, term, conf: conf ?? this.confState }, data });
    const hard = this.hardState;
    if (hard.commit < index) this.setHardState({ ...hard, commit: index });
  }

  close(): Promise<void> {
    return this.exclusive(async () => {
      await this.snapshotRecording;
      clearTimeout(this.commitTimer);
      this.commitTimer = undefined;
      let durable = this.failed === undefined && !this.reloading;
      try {
        await this.writeQueued(true);
        if (this.voteChanged || this.commitChanged) await this.hard.write(this.current.getHardState());
      } catch {
        // Not durable, never acknowledged: lost like at a crash.
        durable = false;
      }
      await this.log.close().catch(() => (durable = false));
      this.durableAtClose = durable;
      this.closed = true;
    });
  }

  get closedDurably(): boolean {
    return this.closed && this.durableAtClose;
  }

  /**
   * Committed records from `fromIndex` (from the first held when it is
   * gone), at most `maxCount` and about `maxBytes` (at least one), as stored:
   * what a replica backfilling below a snapshot copies (see {@link backfill}).
   */
  async readRecords(fromIndex: number, maxCount: number, maxBytes: number): Promise<RecordPage> {
    const startIndex = this.log.startOffset;
    const from = Math.max(fromIndex, startIndex);
    const commit = this.readableFrom(from);
    if (from > commit || this.reloading) return { startIndex, records: [] };
    const records = await this.log.read(from, Math.min(maxCount, commit - from + 1), maxBytes);
    return {
      startIndex,
      records: records.map((record) => {
        const { raft } = record;
        if (raft === undefined) throw new LogStorageError('STORAGE_CORRUPT', `record ${record.offset} is not a Raft entry`, { offset: record.offset });
        return { index: record.offset, term: raft.term, firstOffset: raft.firstOffset, count: raft.count, timestamp: record.timestamp, data: record.data };
      }),
    };
  }

  /**
   * Before a leader's snapshot at `(s, t)` is applied: makes this log hold
   * the leader's records up to `s`, with their index, term and offsets, so
   * that this replica serves the messages below the snapshot too. What this
   * log holds up to its commit is committed, hence the leader's too, and is
   * kept; the rest is cut, then the records from there to `s` are copied
   * with `fetch` (from a replica that holds them; where it no longer does,
   * retention, the log starts at its first held record). Applying the
   * snapshot then keeps these records (see `writeQueued`). A crash midway
   * leaves committed records after the recorded snapshot, which opening
   * reads back as entries; the install is asked for again.
   */
  backfill(snapshot: Snapshot<S>, endOffset: number, fetch: (fromIndex: number) => Promise<RecordPage>): Promise<void> {
    return this.exclusive(async () => {
      const { index: s, term: t } = snapshot.meta;
      const log = this.log;
      if (await holdsEntry(log, s, t, endOffset)) return;
      const from = Math.max(Math.min(this.current.getHardState().commit, s) + 1, log.startOffset);
      if (log.endOffset > from) await log.truncateFrom(from);
      await this.copyRecords(s, fetch, 'backfill');
      // The leader's retention may have deleted every record up to the snapshot's own (its window starts after it): the log then starts after it, holding none.
      if (log.startOffset <= s && !(await holdsEntry(log, s, t, endOffset))) throw new LogStorageError('STORAGE_CORRUPT', `backfill: the copied record ${s} is not the snapshot's (term ${t}, end offset ${endOffset})`);
      await log.sync();
    });
  }

  /**
   * Repairs the records a read found damaged, from a healthy replica, as
   * the split layout's `DiskPartition.repair` does: writes what is queued,
   * cuts the log at the first damaged index, copies the committed records
   * from there through the snapshot's index with `fetch` (what this log held
   * there was committed, so the healthy replica holds the same records;
   * where its retention deleted them, this log starts at its first held
   * record too), writes the entries of the in-memory window after them
   * again from memory, and fsyncs. Then it verifies: each copied record's
   * messages follow the previous one's, the log holds the snapshot's entry
   * with its term and end offset, and no damage remains; else it throws
   * `STORAGE_CORRUPT`.
   *
   * From the cut until a repair succeeds, reads from the cut index fail
   * (`STORAGE_CORRUPT`, as they did before), and so do `sync` and `reload`
   * (`STORAGE_ERROR`): the log is shorter than the entries this replica
   * acknowledged, so its group is fenced (no acknowledgement, no vote) until
   * a later call of `repair` completes it. A crash meanwhile leaves a log
   * that does not reach its snapshot, which opening resets after it: the
   * leader then sends this replica the snapshot and the entries after it
   * again, as to a replica whose damaged tail was cut on open.
   */
  repair(fetch: (fromIndex: number) => Promise<RecordPage>): Promise<void> {
    return this.exclusive(async () => {
      const log = this.log;
      if (this.repairingFrom === undefined) {
        if (!log.damaged) return;
        await this.writeQueued(true);
        this.repairingFrom = Math.max(log.startOffset, Math.min(...log.health().corruptions.map((c) => c.offset)));
      }
      const from = this.repairingFrom;
      const base = this.offsets.base;
      const end = this.current.lastIndex() + 1;
      if (log.endOffset > from) await log.truncateFrom(from);
      await this.copyRecords(Math.min(base, end - 1), fetch, 'repair');
      // The window (and whatever the core appended meanwhile): the same records as before, from memory.
      this.queue = [...this.current.entries(log.endOffset, end, Number.MAX_SAFE_INTEGER)];
      this.pendingTruncate = undefined;
      if (this.queue.length > 0) log.append(this.queue.map((entry) => this.recordOf(entry)));
      this.queue = [];
      await log.sync();
      const term = this.current.snapshot()?.meta.term ?? 0;
      if (base >= log.startOffset && !(await holdsEntry(log, base, term, this.offsets.baseEndOffset))) {
        throw new LogStorageError('STORAGE_CORRUPT', `repair: the record ${base} is not the snapshot's (term ${term}, end offset ${this.offsets.baseEndOffset})`, { offset: base });
      }
      if (log.endOffset !== end || log.damaged) throw new LogStorageError('STORAGE_CORRUPT', `repair: the log ends at ${log.endOffset} (expected ${end}), damaged: ${log.damaged}`, { offset: from });
      this.repairingFrom = undefined;
    });
  }

  /** Whether a repair cut the log and has not completed yet (see {@link repair}). */
  get repairPending(): boolean {
    return this.repairingFrom !== undefined;
  }

  /**
   * Appends committed records from this log's end through index `last`,
   * copied page by page with `fetch` from a replica that holds them; where
   * that replica no longer does (retention), this log starts over at its
   * first held record. Throws `STORAGE_CORRUPT` when a record's messages do
   * not follow the previous record's.
   */
  private async copyRecords(last: number, fetch: (fromIndex: number) => Promise<RecordPage>, what: string): Promise<void> {
    const log = this.log;
    // The offset after the previous record's messages (unknown when there is none, or it cannot be read).
    const [previous] = log.endOffset > log.startOffset ? await log.read(log.endOffset - 1, 1, 1).catch((): StoredRecord[] => []) : [];
    let next = previous?.raft === undefined ? undefined : previous.raft.firstOffset + previous.raft.count;
    // Bounded: each round appends at least one record or moves the log's start forward (or throws).
    while (log.endOffset <= last) {
      const at = log.endOffset;
      const { startIndex, records } = await fetch(at);
      if (startIndex > at) {
        await log.reset(Math.min(startIndex, last + 1));
        next = undefined;
        continue;
      }
      const wanted = records.filter((r) => r.index >= at && r.index <= last);
      if (wanted.length === 0 || wanted.some((r, i) => r.index !== at + i)) throw new LogStorageError('STORAGE_IO', `${what} from ${at}: the replica returned no usable records`);
      for (const r of wanted) {
        if (next !== undefined && r.firstOffset !== next) throw new LogStorageError('STORAGE_CORRUPT', `${what}: the copied record ${r.index} starts at offset ${r.firstOffset}, expected ${next}`, { offset: r.index });
        next = r.firstOffset + r.count;
      }
      log.append(wanted.map((r) => ({ timestamp: r.timestamp, raft: { term: r.term, firstOffset: r.firstOffset, count: r.count }, encoding: 'msgpack', data: r.data })));
      await log.flush();
    }
  }

  /** The partition offsets recorded for entry `index` of the window (after the snapshot): its first and how many it stores. */
  offsetsOf(index: number): { firstOffset: number; count: number } {
    return this.offsets.at(index);
  }

  /** The offset after the messages of every entry up to `index` (from the snapshot's index to the last). */
  endOffsetAt(index: number): number {
    return this.offsets.endAt(index);
  }

  /** The offset after the last committed message: readers see the offsets below it. */
  get committedEndOffset(): number {
    return this.offsets.endAt(Math.max(this.offsets.base, this.readableIndex()));
  }

  /**
   * The last index readers may see: committed, and already in the segment
   * log as this log holds it. A follower's `Ready` appends a new leader's
   * entries over a conflicting suffix and raises the commit over them before
   * `sync` cuts the old records and writes the new ones: until then the
   * records at those indexes are the cut entries' (other messages at the same
   * offsets), and reading them would serve messages that were never committed.
   */
  private readableIndex(): number {
    let last = Math.min(this.current.getHardState().commit, this.current.lastIndex());
    if (this.pendingTruncate !== undefined) last = Math.min(last, this.pendingTruncate - 1);
    const queued = this.queue[0];
    if (queued !== undefined) last = Math.min(last, queued.index - 1);
    return last;
  }

  /**
   * The last index a read from `from` may return ({@link readableIndex}),
   * short of a range being repaired; a read starting in that range throws
   * `STORAGE_CORRUPT`, as it did before the repair began (the engine reads
   * another replica).
   */
  private readableFrom(from: number): number {
    const last = this.readableIndex();
    const repairing = this.repairingFrom;
    if (repairing === undefined) return last;
    if (from >= repairing) throw new LogStorageError('STORAGE_CORRUPT', `${this.dir}: records from ${repairing} are being repaired from another replica`, { offset: repairing });
    return Math.min(last, repairing - 1);
  }

  /**
   * The first entry whose messages end after `offset` (the one holding it,
   * or the first held when `offset` is below what this log retains);
   * `undefined` when `offset` is at or after {@link committedEndOffset}.
   * Below the in-memory window it searches the records on disk (a binary
   * search over Raft indexes: records carry their first offset and count).
   */
  async indexOfOffset(offset: number): Promise<number | undefined> {
    if (offset >= this.committedEndOffset || this.reloading) return undefined;
    const commit = this.readableIndex();
    const inWindow = this.offsets.indexOf(offset, commit);
    if (inWindow !== undefined) return inWindow;
    // Below the window: the entries up to the snapshot's index, on disk only. Their ends never decrease.
    let lo = this.log.startOffset;
    let hi = this.offsets.base;
    if (hi < lo) return this.offsets.base + 1;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      const [record] = await this.log.read(mid, 1, 1);
      const header = record?.raft;
      if (record?.offset !== mid || header === undefined) throw new LogStorageError('STORAGE_CORRUPT', `${this.dir}: no Raft record at index ${mid}`, { offset: mid });
      if (header.firstOffset + header.count > offset) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /**
   * Committed entries from `fromIndex` (from the first retained when it was
   * deleted), at most `maxCount` and about `maxBytes` of payload (at least
   * one), with their offsets: what the read path serves. Never an entry past
   * the commit index.
   */
  async readCommitted(fromIndex: number, maxCount: number, maxBytes: number): Promise<Array<StoredEntry<T>>> {
    const from = Math.max(fromIndex, this.log.startOffset);
    const commit = this.readableFrom(from);
    if (from > commit || this.reloading) return [];
    const records = await this.log.read(from, Math.min(maxCount, commit - from + 1), maxBytes);
    return records.map((record) => {
      const { raft } = record;
      if (raft === undefined) throw new LogStorageError('STORAGE_CORRUPT', `record ${record.offset} is not a Raft entry`, { offset: record.offset });
      return { entry: fromRecord<T>(record), firstOffset: raft.firstOffset, count: raft.count, timestamp: record.timestamp };
    });
  }

  /**
   * Deletes whole sealed segments, oldest first, by age and bytes, and by
   * message count: records are entries, so a segment goes by count when all
   * its records are older than the entry holding the oldest of the newest
   * `maxMessages` committed messages (at least `maxMessages` stay). Never a
   * segment holding a record after the snapshot (the window the Raft core
   * reads).
   */
  async applyRetention(policy: RetentionPolicy, nowMs: number): Promise<RetentionResult> {
    const { maxMessages, ...rest } = policy;
    if (maxMessages !== undefined && (!Number.isSafeInteger(maxMessages) || maxMessages < 0)) throw new RangeError(`retention maxMessages must be a non-negative integer, got ${String(maxMessages)}`);
    const window = this.offsets.base + 1;
    const byAgeOrBytes = Object.values(rest).some((limit) => limit !== undefined);
    const first = byAgeOrBytes ? await this.exclusive(() => this.log.applyRetention(rest, nowMs, window)) : { deletedSegments: 0, deletedBytes: 0, startOffset: this.log.startOffset };
    if (maxMessages === undefined) return first;
    const keepOffset = this.committedEndOffset - maxMessages;
    // The entry holding the oldest message to keep (none held below it: nothing to delete by count).
    const keepIndex = keepOffset <= 0 ? this.log.startOffset : ((await this.indexOfOffset(keepOffset)) ?? this.log.endOffset);
    const second = await this.exclusive(() => this.log.applyRetention({ maxMessages: 0 }, nowMs, Math.min(window, keepIndex)));
    return { deletedSegments: first.deletedSegments + second.deletedSegments, deletedBytes: first.deletedBytes + second.deletedBytes, startOffset: second.startOffset };
  }

  /** The offset of the first message this log still holds (the snapshot's end when it holds none below the window). */
  async firstHeldOffset(): Promise<number> {
    if (this.log.startOffset > this.offsets.base) return this.offsets.baseEndOffset;
    const [record] = await this.log.read(this.log.startOffset, 1, 1);
    return record?.raft?.firstOffset ?? this.offsets.baseEndOffset;
  }

  /** Where the segment log ends once the queued truncation ran. */
  private diskEnd(): number {
    return Math.min(this.pendingTruncate ?? Number.POSITIVE_INFINITY, this.log.endOffset);
  }

  private exclusive<V>(task: () => Promise<V>): Promise<V> {
    const run = this.chain.then(task, task);
    this.chain = run.catch(() => {});
    return run;
  }
}

/** The record of `entry`: its index is the record's offset, its term in the header, the rest in the body. */
function toRecord<T>(entry: Entry<T>, timestamp: number, raft: RaftRecordHeader): NewMessage {
  // A normal entry's body is encoded once, for this record and the leader's appends to followers (entry-bodies.ts).
  const data =
    entry.type === 'normal'
      ? takeNormalEntryBody(entry.data)
      : encodeValue((entry.type === 'conf' ? { t: 'conf', change: entry.change, conf: entry.conf } : { t: 'noop' }) satisfies EntryPayload<T>);
  return { timestamp, raft, encoding: 'msgpack', data };
}

/**
 * The entry a record holds; throws `STORAGE_CORRUPT` for a record that is
 * not one (format 1, a bad body). Its messages' bytes are views into the
 * buffer read (never reused), not copies: a copy per message was most of
 * the cost of reading entries back (a restart's tail, a replay).
 */
function fromRecord<T>(record: StoredRecord): Entry<T> {
  const { offset: index } = record;
  const term = record.raft?.term;
  if (term === undefined) throw new LogStorageError('STORAGE_CORRUPT', `record ${index} is a message record (format 1), not a Raft entry`, { offset: index });
  let payload: EntryPayload<T>;
  try {
    payload = decodeEntryBody(record.data) as EntryPayload<T>;
  } catch (err) {
    throw new LogStorageError('STORAGE_CORRUPT', `record ${index}: undecodable entry (${(err as Error).message})`, { offset: index });
  }
  switch (payload?.t) {
    case 'normal':
      return { type: 'normal', index, term, data: payload.d };
    case 'noop':
      return { type: 'noop', index, term };
    case 'conf':
      return { type: 'conf', index, term, change: payload.change, conf: payload.conf };
    default:
      throw new LogStorageError('STORAGE_CORRUPT', `record ${index}: not an entry`, { offset: index });
  }
}

/**
 * Opens the segment log and lines it up with the recorded snapshot `(s, t)`:
 * a log holding index `s` with term `t`, or starting right after `s`, keeps
 * its entries after `s` (Raft's rule for a log that matches a snapshot);
 * any other (a crash between recording an installed snapshot and the reset)
 * is reset to start at `s + 1`. The entries after `s` are read back; damage
 * among them cuts the log at the first damaged index. The commit is clamped
 * to the last index.
 */
async function load<T, S>(
  dir: string,
  fs: FileSystem,
  meta: MetaStore,
  hardStates: HardStateStore,
  voters: readonly NodeId[],
  options: SegmentRaftStorageOptions<T, S>,
  /** Entries from this index on are cut (durably) before anything is read: see {@link SegmentRaftStorage.reload}. */
  cutFrom?: number,
): Promise<{ log: SegmentLog; memory: MemoryStorage<T, S>; offsets: EntryOffsets }> {
  const report = options.report ?? (() => {});
  const stored = await meta.read(SNAPSHOT);
  if (stored !== undefined && !isRecordedSnapshot(stored)) throw new LogStorageError('STORAGE_CORRUPT', `${dir}: the recorded Raft snapshot is not one`, { path: dir });
  const recorded = stored as RecordedSnapshot<S> | undefined;
  const hard = await hardStates.read();
  const log = await SegmentLog.open(join(dir, 'log'), fs, {
    ...options.segments,
    ...(options.fsync === 'always' ? { fsync: 'always' as const } : { fsync: 'interval' as const, fsyncIntervalMs: options.fsyncIntervalMs }),
    initialOffset: 1,
    ...(options.openFiles === undefined ? {} : { openFiles: options.openFiles }),
    ...(options.openSync === undefined ? {} : { openSync: options.openSync }),
  });
  try {
    if (cutFrom !== undefined && log.endOffset > Math.max(cutFrom, log.startOffset)) await log.truncateFrom(Math.max(cutFrom, log.startOffset));
    const s = recorded?.snapshot.meta.index ?? 0;
    const t = recorded?.snapshot.meta.term ?? 0;
    const memory = new MemoryStorage<T, S>(voters);
    if (recorded !== undefined) memory.applySnapshot(recorded.snapshot);
    const offsets = new EntryOffsets();
    offsets.reset(s, recorded?.endOffset ?? 0);
    const matches = (log.startOffset === s + 1 && log.endOffset >= s + 1) || (await holdsEntry(log, s, t, offsets.baseEndOffset));
    if (!matches) {
      if (log.endOffset > log.startOffset) report('Raft log does not match its snapshot; starting it over after the snapshot', { dir, snapshot: s, start: log.startOffset, end: log.endOffset });
      await log.reset(s + 1);
    }
    const entries: Array<Entry<T>> = [];
    const counts: number[] = [];
    let next = s + 1;
    let end = offsets.baseEndOffset;
    while (next < log.endOffset) {
      let records: StoredRecord[];
      let damage: unknown;
      try {
        records = await log.read(next, READ_PAGE.count, READ_PAGE.bytes);
      } catch (err) {
        records = [];
        damage = err;
      }
      for (const record of records) {
        if (record.offset !== next) break;
        try {
          const entry = fromRecord<T>(record);
          const raft = record.raft as RaftRecordHeader;
          // Offsets are dense: an entry's messages follow the previous entry's.
          if (raft.firstOffset !== end) throw new LogStorageError('STORAGE_CORRUPT', `record ${next}: first offset ${raft.firstOffset}, expected ${end}`, { offset: next });
          entries.push(entry);
          counts.push(raft.count);
          end += raft.count;
        } catch (err) {
          damage = err;
          break;
        }
        next++;
      }
      if (damage !== undefined || records.length === 0) {
        report('Raft log damaged; cutting it at the first damaged entry', { dir, index: next, end: log.endOffset, error: String(damage) });
        await log.truncateFrom(next);
        break;
      }
    }
    memory.append(entries);
    if (entries.length > 0) offsets.append(s + 1, counts);
    if (hard !== undefined) memory.setHardState({ term: hard.term, vote: hard.vote, commit: Math.min(hard.commit, memory.lastIndex()) });
    return { log, memory, offsets };
  } catch (err) {
    await log.close().catch(() => {});
    throw err;
  }
}

/** Whether `log` holds the entry `index` with `term`, its messages ending at `endOffset` (a snapshot's last entry). */
async function holdsEntry(log: SegmentLog, index: number, term: number, endOffset: number): Promise<boolean> {
  if (index < log.startOffset || index >= log.endOffset) return false;
  const [record] = await log.read(index, 1, 1).catch((): StoredRecord[] => []);
  const raft = record?.raft;
  return record?.offset === index && raft?.term === term && raft.firstOffset + raft.count === endOffset;
}

/** Where the hard state of a log in `meta`'s directory is kept: the broker's journal when it has one, else `meta`. */
function hardStateStore(meta: MetaStore, journal: SegmentRaftStorageOptions<unknown>['hardStates']): HardStateStore {
  const own = new MetaHardState(meta);
  // A directory from before the journal holds its state in `meta` until its first write to the journal.
  return journal === undefined ? own : journal.journal.store(journal.key, own);
}

/** The hard state kept in a log's own `meta` (an object with methods, not closures: a broker holds one per partition). */
class MetaHardState implements HardStateStore {
  constructor(private readonly meta: MetaStore) {}

  read(): Promise<HardStateRecord | undefined> {
    return this.meta.readHardState();
  }

  write(state: HardStateRecord): Promise<void> {
    return this.meta.writeHardState(state);
  }
}

function isRecordedSnapshot(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const { snapshot, endOffset } = value as { snapshot?: unknown; endOffset?: unknown };
  if (!Number.isSafeInteger(endOffset) || (endOffset as number) < 0 || typeof snapshot !== 'object' || snapshot === null) return false;
  const meta = (snapshot as { meta?: unknown }).meta;
  if (typeof meta !== 'object' || meta === null) return false;
  const m = meta as Record<string, unknown>;
  return Number.isSafeInteger(m.index) && Number.isSafeInteger(m.term) && typeof m.conf === 'object' && m.conf !== null;
}

function isVoters(value: unknown): value is NodeId[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}
