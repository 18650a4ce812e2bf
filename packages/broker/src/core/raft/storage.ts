/**
 * Storage seen by the core: read-only. The core never writes it; the runner
 * writes it through a {@link StorageWriter} while honouring a {@link Ready}
 * (persist, fsync, then send). {@link MemoryStorage} implements both sides,
 * for tests and the simulator.
 */
import type { ConfState, Entry, HardState, NodeId, Snapshot } from './types.js';

/** What the core reads from stable storage. Every method is synchronous and cheap. */
export interface Storage<T, S> {
  /**
   * The persisted hard state and the configuration of the latest snapshot
   * (or the bootstrap one); configuration entries after it are in the log,
   * where the core finds them.
   */
  initialState(): { readonly hardState: HardState; readonly confState: ConfState };
  /**
   * Entries with indexes in `[lo, hi)`, at most `maxCount` of them.
   * Requires `firstIndex() <= lo <= hi <= lastIndex() + 1`; the core checks.
   */
  entries(lo: number, hi: number, maxCount: number): readonly Entry<T>[];
  /**
   * Term of the entry at `index` for `firstIndex() - 1 <= index <= lastIndex()`
   * (the first of these is the snapshot's, or 0 for an empty log);
   * `undefined` outside that range (compacted, or not written yet).
   */
  term(index: number): number | undefined;
  /** Index of the first entry still stored (snapshot index + 1 when compacted). */
  firstIndex(): number;
  /** Index of the last entry stored (the snapshot's when no entry follows it). */
  lastIndex(): number;
  /** The latest snapshot, covering at least up to `firstIndex() - 1`; `undefined` if none was ever taken. */
  snapshot(): Snapshot<S> | undefined;
}

/** How the runner writes what a {@link Ready} asks to persist. */
export interface StorageWriter<T, S> {
  /** Replaces the whole log and state by `snapshot` (entries after it are discarded). */
  applySnapshot(snapshot: Snapshot<S>): void;
  /** Appends `entries`, first discarding any stored entry at or after `entries[0].index`. */
  append(entries: readonly Entry<T>[]): void;
  setHardState(hardState: HardState): void;
  /** Makes every write so far durable (fsync). */
  sync(): void;
}

/** An error of the storage contract: a caller broke a precondition. */
export class StorageError extends Error {
  override readonly name = 'StorageError';
}

const EMPTY_HARD_STATE: HardState = Object.freeze({ term: 0, vote: null, commit: 0 });

/**
 * In-memory storage: an array of entries after a base (the last compacted
 * index and its term), the hard state, and the latest snapshot. Writes are
 * "durable" immediately (`sync` does nothing); the simulator models losing
 * unsynced writes on top of it.
 */
export class MemoryStorage<T, S> implements Storage<T, S>, StorageWriter<T, S> {
  private hardState: HardState = EMPTY_HARD_STATE;
  private conf: ConfState;
  private snap: Snapshot<S> | undefined;
  /** Index and term of the entry just before `entries[0]` (compacted or snapshotted). */
  private baseIndex = 0;
  private baseTerm = 0;
  private ents: Entry<T>[] = [];

  /** `voters` is the bootstrap configuration of a brand-new cluster. */
  constructor(voters: readonly NodeId[] = []) {
    this.conf = Object.freeze({ voters: Object.freeze([...voters]) });
  }

  initialState(): { readonly hardState: HardState; readonly confState: ConfState } {
    return { hardState: this.hardState, confState: this.conf };
  }

  firstIndex(): number {
    return this.baseIndex + 1;
  }

  lastIndex(): number {
    return this.baseIndex + this.ents.length;
  }

  term(index: number): number | undefined {
    if (index === this.baseIndex) return this.baseTerm;
    if (index < this.baseIndex || index > this.lastIndex()) return undefined;
    return (this.ents[index - this.baseIndex - 1] as Entry<T>).term;
  }

  entries(lo: number, hi: number, maxCount: number): readonly Entry<T>[] {
    if (lo < this.firstIndex() || hi > this.lastIndex() + 1 || lo > hi) {
      throw new StorageError(`entries [${lo}, ${hi}) outside [${this.firstIndex()}, ${this.lastIndex() + 1})`);
    }
    const end = Math.min(hi, lo + Math.max(0, maxCount));
    return this.ents.slice(lo - this.baseIndex - 1, end - this.baseIndex - 1);
  }

  snapshot(): Snapshot<S> | undefined {
    return this.snap;
  }

  /** The hard state as last written. */
  getHardState(): HardState {
    return this.hardState;
  }

  // ---- writer ---------------------------------------------------------------

  applySnapshot(snapshot: Snapshot<S>): void {
    const { index, term, conf } = snapshot.meta;
    if (this.snap !== undefined && index <= this.snap.meta.index) {
      throw new StorageError(`snapshot ${index} is not newer than the stored snapshot ${this.snap.meta.index}`);
    }
    this.snap = snapshot;
    this.conf = conf;
    this.baseIndex = index;
    this.baseTerm = term;
    this.ents = [];
  }

  append(entries: readonly Entry<T>[]): void {
    const first = entries[0];
    if (first === undefined) return;
    for (let i = 1; i < entries.length; i++) {
      if ((entries[i] as Entry<T>).index !== first.index + i) throw new StorageError('append: entries are not contiguous');
    }
    if (first.index > this.lastIndex() + 1) {
      throw new StorageError(`append: gap between last index ${this.lastIndex()} and ${first.index}`);
    }
    // Entries at or below the base are compacted: already committed, identical, skip them.
    const skip = Math.max(0, this.firstIndex() - first.index);
    if (skip >= entries.length) return;
    const keep = first.index + skip - this.baseIndex - 1;
    this.ents.length = keep;
    for (let i = skip; i < entries.length; i++) this.ents.push(entries[i] as Entry<T>);
  }

  setHardState(hardState: HardState): void {
    this.hardState = hardState;
  }

  sync(): void {
    // In memory: every write is as durable as it gets.
  }

  // ---- application side: snapshots and compaction ----------------------------

  /**
   * Records a snapshot of the state machine at `index` (which must be applied,
   * hence committed and stored). Does not discard entries: see {@link compact}.
   */
  createSnapshot(index: number, data: S): Snapshot<S> {
    if (this.snap !== undefined && index <= this.snap.meta.index) {
      throw new StorageError(`createSnapshot: ${index} is not newer than the stored snapshot ${this.snap.meta.index}`);
    }
    if (index > this.hardState.commit) throw new StorageError(`createSnapshot: ${index} is not committed (commit ${this.hardState.commit})`);
    const term = this.term(index);
    if (term === undefined) throw new StorageError(`createSnapshot: ${index} outside [${this.baseIndex}, ${this.lastIndex()}]`);
    const conf = this.confAt(index);
    const snapshot: Snapshot<S> = Object.freeze({ meta: Object.freeze({ index, term, conf }), data });
    this.snap = snapshot;
    // The configuration a restart starts from is the latest snapshot's: the entries that set it may be compacted next.
    this.conf = conf;
    return snapshot;
  }

  /** The configuration in effect at `index`: the last conf entry at or before it, else the snapshot's (or bootstrap) one. */
  confAt(index: number): ConfState {
    for (let i = Math.min(index, this.lastIndex()); i > this.baseIndex; i--) {
      const entry = this.ents[i - this.baseIndex - 1] as Entry<T>;
      if (entry.type === 'conf') return entry.conf;
    }
    return this.conf;
  }

  /**
   * Discards entries up to and including `index`, which a snapshot must
   * cover: a follower that needs them gets the snapshot instead.
   */
  compact(index: number): void {
    if (index <= this.baseIndex) return;
    const snapIndex = this.snap?.meta.index ?? 0;
    if (index > snapIndex) throw new StorageError(`compact: ${index} is beyond the latest snapshot (${snapIndex})`);
    const term = this.term(index) as number;
    this.ents = this.ents.slice(index - this.baseIndex);
    this.baseIndex = index;
    this.baseTerm = term;
  }

  /** An independent copy (entries are immutable and shared). */
  clone(): MemoryStorage<T, S> {
    const copy = new MemoryStorage<T, S>();
    copy.hardState = this.hardState;
    copy.conf = this.conf;
    copy.snap = this.snap;
    copy.baseIndex = this.baseIndex;
    copy.baseTerm = this.baseTerm;
    copy.ents = this.ents.slice();
    return copy;
  }
}
