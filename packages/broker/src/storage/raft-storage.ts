import { RelayError } from '@relaymq/sdk/protocol';
import { MemoryStorage, type ConfState, type Entry, type HardState, type NodeId, type Snapshot, type Storage } from '../core/raft/index.js';
import type { OpenSync } from './clean-shutdown.js';
import type { FileSystem } from './fs.js';
import type { OpenFileCache } from './open-files.js';
import { RecordFile } from './record-file.js';
import { storageRelayError } from './segments/errors.js';

/** Records of a Raft log file, replayed in order on open. */
type RaftRecord<T, S> =
  | { r: 'bootstrap'; voters: NodeId[] }
  | { r: 'entries'; entries: Array<Entry<T>> }
  | { r: 'hard'; term: number; vote: NodeId | null; commit: number }
  | { r: 'snapshot'; snapshot: Snapshot<S> };

/** When the Raft log is fsynced. */
export interface RaftStorageOptions {
  /**
   * `always`: before any message that depends on a write leaves (the entry
   * is on disk before it counts toward a quorum). `interval`: entries are
   * written at once but fsynced every `fsyncIntervalMs`; a term or vote change
   * is still fsynced at once, since Raft is unsafe if a node forgets its vote.
   */
  fsync: 'always' | 'interval';
  fsyncIntervalMs: number;
  /** @defaultValue node's */
  fs?: FileSystem;
  /** The bound on open files the log's descriptor counts in (idle, it is closed beyond it and reopened on write). @defaultValue unbounded */
  openFiles?: OpenFileCache;
  /**
   * Whether opening fsyncs the log's file before taking what it holds as durable, and how many such fsyncs
   * run at once (see storage/clean-shutdown.ts). @defaultValue fsync at open
   */
  openSync?: OpenSync;
  /** A write or fsync failed (the group fences itself); `undefined` once one succeeds again. */
  onFailure?: (failure: RelayError | undefined) => void;
}

/**
 * A Raft group's stable storage as the broker uses it: the read side the
 * core consumes, the writer a `Ready` is persisted through, and the upkeep
 * (compaction, reload after a failure). Two implementations:
 * {@link DurableRaftStorage} (a record file) and `SegmentRaftStorage` (a
 * partition's segment log, layout `unified`).
 */
export interface RaftLogStorage<T, S> {
  /** The bootstrap voters this log started from (recorded on its first start). */
  readonly bootstrapVoters: readonly NodeId[];
  /** The configuration the stored log has in effect: its last `conf` entry, else its snapshot's, else the bootstrap one. */
  readonly confState: ConfState;
  /** The in-memory copy the core reads (replaced by {@link reload}). */
  readonly memory: MemoryStorage<T, S>;
  /** The read side the core consumes (a new one after {@link reload}). */
  readonly reader: Storage<T, S>;
  /** What was persisted before a restart (and written since). */
  readonly hardState: HardState;
  /** Bytes of the log on disk (0 in memory). */
  readonly fileBytes: number;
  /** The failure of the last write or fsync while the group is fenced by it. */
  readonly failure: RelayError | undefined;
  /** Observes every fsync's duration in seconds (metrics). */
  onFsync: ((seconds: number) => void) | undefined;
  /**
   * Whether writing a normal entry takes its body (storage/entry-bodies.ts),
   * which then is not kept: the group leaves bodies to its writes instead of
   * forgetting them once applied (a leader may apply an entry before its own
   * write of it, which would then encode the body again).
   */
  readonly takesEntryBodies?: boolean;
  applySnapshot(snapshot: Snapshot<S>): void;
  append(entries: readonly Entry<T>[]): void;
  setHardState(hardState: HardState): void;
  /** Makes what was written durable as the fsync policy says; rejects (the group fences itself) on a failure. */
  sync(): Promise<void>;
  /** Records a snapshot of the state machine at `index` (applied) and drops the entries it covers. */
  compact(index: number, data: S): Promise<void>;
  /**
   * After a failed write or fsync: what was never acknowledged is dropped, as
   * a restart would find the log. With `fsync: 'always'`, everything not
   * fsynced; with `interval` (an entry is acknowledged once written), only
   * what the failure kept from being written whole.
   */
  reload(): Promise<void>;
  /** Lines the log up with a state machine that holds everything up to `index` on its own. */
  resumeAt(index: number, term: number, data: S, conf?: ConfState): void;
  close(): Promise<void>;
  /**
   * Closed, and everything it wrote fsynced by then (a clean stop: a restart
   * may take its files as durable without an fsync, storage/clean-shutdown.ts).
   * False while open, or when the close's last write or fsync failed.
   */
  readonly closedDurably: boolean;
}

const ALWAYS: RaftStorageOptions = { fsync: 'always', fsyncIntervalMs: 1000 };

/**
 * A Raft group's stable storage: an in-memory copy the core reads, backed by
 * an append-only record file. Entries, hard state (term, vote) and snapshots
 * are written as records; `sync()` writes them out in one write and fsyncs,
 * so a broker that restarts never forgets a vote or an acknowledged entry.
 * Recovery replays the records: a later `entries` record overwrites a
 * conflicting suffix, exactly as the core's append did. {@link compact}
 * rewrites the file without the entries a snapshot covers.
 *
 * The voters given to {@link open} are a **bootstrap** configuration: they
 * are recorded the first time the log is created and the recorded ones are
 * used from then on, whatever a later start passes. Membership changes are
 * `conf` entries in the log (and snapshots carry the configuration they
 * cover), so after a change the stored configuration, not the broker's
 * command line, says who votes.
 */
export class DurableRaftStorage<T, S> implements RaftLogStorage<T, S> {
  private voteChanged = false;
  private closed = false;
  private failed: RelayError | undefined;
  private fsyncTimer: ReturnType<typeof setTimeout> | undefined;
  /** Observes every fsync's duration in seconds (metrics). */
  onFsync: ((seconds: number) => void) | undefined;

  private constructor(
    private current: MemoryStorage<T, S>,
    /** The bootstrap voters as recorded in the log (or given, in memory). */
    private readonly voters: readonly NodeId[],
    private readonly file: RecordFile | undefined,
    private readonly options: RaftStorageOptions,
  ) {}

  /**
   * Opens (or creates) the log at `path`; `undefined` keeps it in memory only
   * (tests, in-memory brokers). `bootstrapVoters` is the configuration of a
   * brand-new group: recorded (durably, with the first sync) when the log is
   * new, ignored when the log already recorded one.
   */
  static async open<T, S>(path: string | undefined, bootstrapVoters: readonly NodeId[], options: RaftStorageOptions = ALWAYS): Promise<DurableRaftStorage<T, S>> {
    if (path === undefined) return new DurableRaftStorage(new MemoryStorage<T, S>(bootstrapVoters), bootstrapVoters, undefined, options);
    const { file, recovered } = await RecordFile.open(path, options.fs, options.openFiles, options.openSync);
    const recorded = recordedBootstrap(recovered.records);
    const voters = recorded ?? bootstrapVoters;
    // A log from before bootstrap records (or a new one) records what it starts from, so a later start cannot change it.
    if (recorded === undefined) file.append({ r: 'bootstrap', voters: [...voters] } satisfies RaftRecord<T, S>);
    return new DurableRaftStorage(replay<T, S>(recovered.records, voters), voters, file, options);
  }

  /** The bootstrap voters this log started from (recorded on its first start). */
  get bootstrapVoters(): readonly NodeId[] {
    return this.voters;
  }

  /**
   * The configuration the stored log has in effect: its last `conf` entry,
   * else its snapshot's, else the bootstrap one. The Raft core derives the
   * same from this storage; this is for callers that need it without a core
   * (e.g. to tell whether this broker is still a member before starting one).
   */
  get confState(): ConfState {
    return this.current.confAt(this.current.lastIndex());
  }

  /** The in-memory copy (replaced by {@link reload}). */
  get memory(): MemoryStorage<T, S> {
    return this.current;
  }

  /** The read side the core consumes (a new one after {@link reload}). */
  get reader(): Storage<T, S> {
    return this.current;
  }

  /** What was persisted before a restart. */
  get hardState(): HardState {
    return this.memory.getHardState();
  }

  /** Bytes of the log file (0 in memory). */
  get fileBytes(): number {
    return this.file?.bytes ?? 0;
  }

  applySnapshot(snapshot: Snapshot<S>): void {
    this.memory.applySnapshot(snapshot);
    this.file?.append({ r: 'snapshot', snapshot } satisfies RaftRecord<T, S>);
  }

  append(entries: readonly Entry<T>[]): void {
    this.memory.append(entries);
    this.file?.append({ r: 'entries', entries: [...entries] } satisfies RaftRecord<T, S>);
  }

  setHardState(hardState: HardState): void {
    const before = this.memory.getHardState();
    if (before.term !== hardState.term || before.vote !== hardState.vote) this.voteChanged = true;
    this.memory.setHardState(hardState);
    this.file?.append({ r: 'hard', term: hardState.term, vote: hardState.vote, commit: hardState.commit } satisfies RaftRecord<T, S>);
  }

  /**
   * The failure of the last write or fsync while it is being retried (a full
   * disk: `STORAGE_FULL`), so new proposals can be refused with it.
   */
  get failure(): RelayError | undefined {
    return this.failed;
  }

  /**
   * Writes what was appended in one write and, as the fsync policy says,
   * fsyncs it. A failure is not retried here: its outcome is unknown (after a
   * failed fsync Linux may drop the dirty pages), so the group fences itself
   * and later {@link reload}s what is provably durable.
   */
  async sync(): Promise<void> {
    const file = this.file;
    if (file === undefined) return;
    const fsync = this.options.fsync === 'always' || this.voteChanged;
    this.voteChanged = false;
    const started = performance.now();
    try {
      await file.flush(fsync);
    } catch (err) {
      this.failed = storageRelayError(err, 'Raft log write failed');
      this.options.onFailure?.(this.failed);
      throw this.failed;
    }
    if (this.failed !== undefined) {
      this.failed = undefined;
      this.options.onFailure?.(undefined);
    }
    if (fsync) {
      this.onFsync?.((performance.now() - started) / 1000);
      return;
    }
    this.fsyncTimer ??= setTimeout(() => {
      this.fsyncTimer = undefined;
      this.file?.flush(true).catch(() => {}); // a failure shows on the next flush, which shares the file's chain
    }, this.options.fsyncIntervalMs).unref();
  }

  /**
   * Records a snapshot of the state machine at `index` (applied) and drops
   * the entries it covers, in memory and on disk (the file is rewritten with
   * the snapshot, the hard state and the entries after it). Call it between
   * two `Ready`s, never while one is being persisted.
   */
  async compact(index: number, data: S): Promise<void> {
    const snapshot = this.memory.createSnapshot(index, data);
    this.memory.compact(index);
    if (this.file === undefined) return;
    const hard = this.memory.getHardState();
    const first = this.memory.firstIndex();
    const last = this.memory.lastIndex();
    const records: Array<RaftRecord<T, S>> = [
      { r: 'bootstrap', voters: [...this.voters] },
      { r: 'snapshot', snapshot },
      { r: 'hard', term: hard.term, vote: hard.vote, commit: hard.commit },
    ];
    if (last >= first) records.push({ r: 'entries', entries: [...this.memory.entries(first, last + 1, Number.MAX_SAFE_INTEGER)] });
    await this.file.rewrite(records);
  }

  /**
   * After a failed write or fsync: replaces the in-memory copy with what the
   * file holds of what was acknowledged, read back, as a restart would find
   * it: with `fsync: 'always'`, its last fsynced prefix; with `interval`,
   * which acknowledges once written, the records written whole before the
   * failure too (a leader counted them). A core built on the new
   * {@link reader} acknowledges nothing the log lost. Throws (and may be
   * called again) while the disk still fails.
   */
  async reload(): Promise<void> {
    clearTimeout(this.fsyncTimer);
    this.fsyncTimer = undefined;
    this.voteChanged = false;
    if (this.file === undefined) return; // in memory: nothing was lost
    this.current = replay<T, S>(await this.file.reload(this.options.fsync === 'always' ? 'durable' : 'written'), this.voters);
  }

  /**
   * Lines the log up with a state machine that holds everything up to
   * `index` (term `term`) on its own: a state beyond the log becomes its
   * snapshot (`data`), and a persisted commit below it is raised (the state
   * machine only holds committed entries). The snapshot's configuration is
   * `conf`, the one the state machine recorded as in effect at `index`;
   * without it (a checkpoint from before it was recorded), the one the
   * stored log has in effect there (never the bootstrap one when the log
   * holds a change). The leader's later entries bring any change after it.
   */
  resumeAt(index: number, term: number, data: S, conf?: ConfState): void {
    const snapshotIndex = this.current.snapshot()?.meta.index ?? 0;
    if (index < snapshotIndex) throw new RelayError('STORAGE_ERROR', `state machine at ${index} is behind its Raft snapshot ${snapshotIndex}`);
    // A log holding `index` with another term is not the one the state machine applied: the checkpoint is fsynced
    // with the partition, not with this file, so under interval a power cut can keep it and lose the new leader's
    // entries it covers, bringing back the ones they replaced (never committed). As Raft does for a snapshot that
    // does not match the log, the log starts over after it; a log that holds (index, term) holds the applied
    // entries up to it (Log Matching: replay yields a prefix of the records, a log this node once had).
    const matches = index <= this.current.lastIndex() && (index === snapshotIndex || this.current.term(index) === term);
    // Not the log's latest configuration: a stale tail's may be one that was never committed.
    if (!matches) this.applySnapshot({ meta: { index, term, conf: conf ?? this.current.confAt(index) }, data });
    const hard = this.hardState;
    if (hard.commit < index) this.setHardState({ ...hard, commit: index });
  }

  async close(): Promise<void> {
    clearTimeout(this.fsyncTimer);
    await this.file?.close();
    this.closed = true;
  }

  get closedDurably(): boolean {
    return this.closed && (this.file?.closedDurably ?? true);
  }
}

/** The bootstrap voters a record file recorded, if it did (always its first record). */
function recordedBootstrap(records: readonly unknown[]): NodeId[] | undefined {
  for (const record of records as Array<RaftRecord<unknown, unknown>>) if (record.r === 'bootstrap') return record.voters;
  return undefined;
}

/** The in-memory copy a record file's records describe, replayed in order. */
function replay<T, S>(records: readonly unknown[], voters: readonly NodeId[]): MemoryStorage<T, S> {
  const memory = new MemoryStorage<T, S>(voters);
  for (const record of records as Array<RaftRecord<T, S>>) {
    if (record.r === 'entries') memory.append(record.entries);
    else if (record.r === 'hard') memory.setHardState({ term: record.term, vote: record.vote, commit: record.commit });
    else if (record.r === 'snapshot') memory.applySnapshot(record.snapshot);
  }
  return memory;
}
