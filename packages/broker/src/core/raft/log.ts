/**
 * The Raft log as the core sees it: entries already in stable storage, plus
 * an unstable tail (and possibly a snapshot) handed to the runner in the next
 * {@link Ready} and not yet persisted. Also the commit and applied indexes.
 *
 * Indexes: `firstIndex() - 1` is the compacted (or snapshot) boundary whose
 * term is still known; `[firstIndex(), lastIndex()]` are the entries held.
 */
import type { Storage } from './storage.js';
import type { ConfState, Entry, Snapshot } from './types.js';

/** A configuration and where it comes from: a conf entry's index, a snapshot's (or the compaction point), or 0 for the bootstrap one. */
export interface IndexedConf {
  readonly index: number;
  readonly conf: ConfState;
}

/** Storage entries read per call while looking for configuration entries at startup. */
const CONF_SCAN_CHUNK = 1024;

/** The tail not yet in stable storage: an optional snapshot, then entries from `offset`. */
class Unstable<T, S> {
  snapshot: Snapshot<S> | undefined = undefined;
  entries: Entry<T>[] = [];
  /** Index of `entries[0]` (or where it would be). */
  offset: number;

  constructor(offset: number) {
    this.offset = offset;
  }

  /** Appends `entries`, first truncating any unstable entry at or after `entries[0].index`. */
  truncateAndAppend(entries: readonly Entry<T>[]): void {
    const first = (entries[0] as Entry<T>).index;
    if (first === this.offset + this.entries.length) {
      for (const entry of entries) this.entries.push(entry);
    } else if (first <= this.offset) {
      // Replaces the whole unstable tail (and hides stored entries from `first` on).
      this.offset = first;
      this.entries = entries.slice();
    } else {
      this.entries.length = first - this.offset;
      for (const entry of entries) this.entries.push(entry);
    }
  }
}

export interface IndexTerm {
  readonly index: number;
  readonly term: number;
}

/** Thrown when the log is asked to break a Raft invariant: a bug or corrupted storage. */
export class RaftInvariantError extends Error {
  override readonly name = 'RaftInvariantError';
}

export class RaftLog<T, S> {
  readonly storage: Storage<T, S>;
  private readonly unstable: Unstable<T, S>;
  /** Highest index known committed. */
  committed: number;
  /** Highest index applied by the state machine (advanced by the node on `advance()`). */
  applied: number;
  /**
   * The configuration from the snapshot (or bootstrap), then every conf entry
   * of the log after it, in index order: the last one is in effect. A
   * configuration takes effect when its entry is appended and is undone when
   * the entry is truncated, so this follows every append and restore.
   */
  private confs: IndexedConf[];

  /** `bootstrap` is the configuration to start from when the storage holds none (a brand-new node). */
  constructor(storage: Storage<T, S>, bootstrap?: ConfState) {
    this.storage = storage;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    if (last < first - 1) throw new RaftInvariantError(`storage lastIndex ${last} below firstIndex ${first} - 1`);
    this.unstable = new Unstable<T, S>(last + 1);
    // A snapshot only ever holds committed state.
    const snapshotIndex = storage.snapshot()?.meta.index ?? 0;
    if (snapshotIndex > last) throw new RaftInvariantError(`stored snapshot ${snapshotIndex} is beyond the stored last index ${last}`);
    this.committed = Math.max(first - 1, snapshotIndex);
    this.applied = first - 1;
    // The stored configuration (the snapshot's) holds at the compaction point too: a configuration entry
    // between the two, still in the log, is the snapshot's own and is found again below.
    const stored = storage.initialState().confState;
    this.confs = [{ index: first - 1, conf: stored.voters.length === 0 && bootstrap !== undefined ? bootstrap : stored }];
    for (let lo = first; lo <= last; lo += CONF_SCAN_CHUNK) {
      for (const entry of storage.entries(lo, Math.min(last + 1, lo + CONF_SCAN_CHUNK), CONF_SCAN_CHUNK)) {
        if (entry.type === 'conf') this.confs.push({ index: entry.index, conf: entry.conf });
      }
    }
  }

  /** The configuration before the one in effect, if the log still tells it. */
  previousConf(): IndexedConf | undefined {
    return this.confs[this.confs.length - 2];
  }

  /** Whether a configuration entry (or a snapshot's configuration) lies in (`after`, `upTo`]: a few configurations are held. */
  holdsConfIn(after: number, upTo: number): boolean {
    for (let i = this.confs.length - 1; i >= 0; i--) {
      const index = (this.confs[i] as IndexedConf).index;
      if (index <= after) return false;
      if (index <= upTo) return true;
    }
    return false;
  }

  /** The configuration in effect: the last one in the log (committed or not), else the snapshot's or bootstrap one. */
  conf(): IndexedConf {
    return this.confs[this.confs.length - 1] as IndexedConf;
  }


  firstIndex(): number {
    const snapshot = this.unstable.snapshot;
    return snapshot !== undefined ? snapshot.meta.index + 1 : this.storage.firstIndex();
  }

  lastIndex(): number {
    const { entries, offset, snapshot } = this.unstable;
    if (entries.length > 0) return offset + entries.length - 1;
    if (snapshot !== undefined) return snapshot.meta.index;
    return this.storage.lastIndex();
  }

  /** Term of the entry at `index`, or `undefined` when compacted or beyond the end. */
  term(index: number): number | undefined {
    const { entries, offset, snapshot } = this.unstable;
    if (entries.length > 0 && index >= offset) {
      const entry = entries[index - offset];
      return entry?.term;
    }
    if (snapshot !== undefined) return index === snapshot.meta.index ? snapshot.meta.term : undefined;
    if (index >= offset) return undefined;
    return this.storage.term(index);
  }

  lastTerm(): number {
    const term = this.term(this.lastIndex());
    if (term === undefined) throw new RaftInvariantError(`no term for the last index ${this.lastIndex()}`);
    return term;
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Whether a log ending at (`lastIndex`, `lastTerm`) is at least as up to date as this one (Raft §5.4.1). */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ownTerm = this.lastTerm();
    return lastTerm > ownTerm || (lastTerm === ownTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Index of the first of `entries` that is not in this log with the same
   * term (a conflict, or simply new), or 0 if all are already here.
   */
  findConflict(entries: readonly Entry<T>[]): number {
    for (const entry of entries) {
      if (!this.matchTerm(entry.index, entry.term)) return entry.index;
    }
    return 0;
  }

  /**
   * The last entry at or below `index` whose term is ≤ `term`: every entry
   * above it has a higher term, so a log whose entry at `index` has term
   * `term` cannot match this one above it. Walks one entry per step, bounded
   * by the log length; returns term 0 if it walks into the compacted prefix.
   */
  findConflictByTerm(index: number, term: number): IndexTerm {
    let i = Math.min(index, this.lastIndex());
    const floor = this.firstIndex() - 1;
    while (i >= floor) {
      const t = this.term(i);
      if (t === undefined) break;
      if (t <= term) return { index: i, term: t };
      i--;
    }
    return { index: Math.max(i, 0), term: 0 };
  }

  /**
   * Follower side of an append: if this log holds (`prevIndex`, `prevTerm`),
   * writes `entries` after it (truncating a conflicting tail), commits up to
   * `min(commit, last new index)` and returns the last new index; otherwise
   * `undefined`.
   */
  maybeAppend(prevIndex: number, prevTerm: number, commit: number, entries: readonly Entry<T>[]): number | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined;
    const lastNew = prevIndex + entries.length;
    const conflict = this.findConflict(entries);
    if (conflict !== 0) {
      if (conflict <= this.committed) {
        throw new RaftInvariantError(`entry ${conflict} conflicts with a committed entry (commit ${this.committed})`);
      }
      this.append(entries.slice(conflict - prevIndex - 1));
    }
    this.commitTo(Math.min(commit, lastNew));
    return lastNew;
  }

  /** Appends `entries` to the unstable tail; they must not overwrite committed entries. Returns the new last index. */
  append(entries: readonly Entry<T>[]): number {
    const first = entries[0];
    if (first === undefined) return this.lastIndex();
    if (first.index - 1 < this.committed) {
      throw new RaftInvariantError(`append at ${first.index} would overwrite committed entries (commit ${this.committed})`);
    }
    if (first.index > this.lastIndex() + 1) {
      throw new RaftInvariantError(`append at ${first.index} leaves a gap after ${this.lastIndex()}`);
    }
    this.unstable.truncateAndAppend(entries);
    // Configurations of truncated entries are undone; appended ones take effect now.
    while (this.confs.length > 1 && (this.confs[this.confs.length - 1] as IndexedConf).index >= first.index) this.confs.pop();
    for (const entry of entries) if (entry.type === 'conf') this.confs.push({ index: entry.index, conf: entry.conf });
    return this.lastIndex();
  }

  /**
   * Up to `maxCount` entries from `lo` to the end, or `undefined` if `lo` was
   * compacted (the caller sends a snapshot instead).
   */
  entriesFrom(lo: number, maxCount: number): readonly Entry<T>[] | undefined {
    if (lo < this.firstIndex()) return undefined;
    return this.slice(lo, this.lastIndex() + 1, maxCount);
  }

  /** Entries in `[lo, hi)`, at most `maxCount`; requires `firstIndex() <= lo <= hi <= lastIndex() + 1`. */
  slice(lo: number, hi: number, maxCount: number): readonly Entry<T>[] {
    if (lo < this.firstIndex() || hi > this.lastIndex() + 1 || lo > hi) {
      throw new RaftInvariantError(`slice [${lo}, ${hi}) outside [${this.firstIndex()}, ${this.lastIndex() + 1})`);
    }
    hi = Math.min(hi, lo + maxCount);
    if (lo === hi) return [];
    const { offset, entries } = this.unstable;
    if (lo >= offset) return entries.slice(lo - offset, hi - offset);
    const stored = this.storage.entries(lo, Math.min(hi, offset), hi - lo);
    if (hi <= offset || stored.length < Math.min(hi, offset) - lo) return stored;
    return stored.concat(entries.slice(0, hi - offset));
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    if (index > this.lastIndex()) {
      throw new RaftInvariantError(`commit ${index} is beyond the last index ${this.lastIndex()}: was the log lost or truncated?`);
    }
    this.committed = index;
  }

  appliedTo(index: number): void {
    if (index === 0 || index <= this.applied) return;
    if (index > this.committed) throw new RaftInvariantError(`applied ${index} is beyond commit ${this.committed}`);
    this.applied = index;
  }

  /** Whether committed entries await application (none while a snapshot is pending). */
  hasNextCommittedEntries(): boolean {
    return this.unstable.snapshot === undefined && this.committed > this.applied;
  }

  /** The next committed entries to apply, at most `maxCount`. */
  nextCommittedEntries(maxCount: number): readonly Entry<T>[] {
    if (!this.hasNextCommittedEntries()) return [];
    const lo = Math.max(this.applied + 1, this.firstIndex());
    return this.slice(lo, this.committed + 1, maxCount);
  }

  /** A copy of the unstable entries, for a {@link Ready}. */
  unstableEntries(): readonly Entry<T>[] {
    return this.unstable.entries.slice();
  }

  unstableSnapshot(): Snapshot<S> | undefined {
    return this.unstable.snapshot;
  }

  /** The last index in stable storage (entries after it are still to be persisted). */
  lastStableIndex(): number {
    return this.unstable.entries.length > 0 ? this.unstable.offset - 1 : this.lastIndex();
  }

  hasUnstable(): boolean {
    return this.unstable.entries.length > 0 || this.unstable.snapshot !== undefined;
  }

  /** Entries up to (`index`, `term`) were persisted: drop them from the unstable tail unless rewritten since. */
  stableTo(index: number, term: number): void {
    const { entries, offset } = this.unstable;
    if (index < offset || index >= offset + entries.length) return;
    if ((entries[index - offset] as Entry<T>).term !== term) return;
    this.unstable.entries = entries.slice(index + 1 - offset);
    this.unstable.offset = index + 1;
  }

  /** The snapshot at `index` was persisted. */
  stableSnapTo(index: number): void {
    if (this.unstable.snapshot !== undefined && this.unstable.snapshot.meta.index === index) this.unstable.snapshot = undefined;
  }

  /** Replaces the whole log by `snapshot` (received from a leader). */
  restore(snapshot: Snapshot<S>): void {
    this.committed = snapshot.meta.index;
    this.unstable.snapshot = snapshot;
    this.unstable.entries = [];
    this.unstable.offset = snapshot.meta.index + 1;
    this.confs = [{ index: snapshot.meta.index, conf: snapshot.meta.conf }];
  }

  /** The latest snapshot: the pending one, else the stored one. */
  snapshot(): Snapshot<S> | undefined {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }
}
