/**
 * Storage of a simulated node: what the node reads (everything written) and
 * what survives a crash (everything synced, plus a random prefix of what was
 * written after the last sync, as with a write-ahead file the kernel flushed
 * partly). A crash can also be armed to strike inside the next `sync()`,
 * after the writes and before they are durable: the runner then never sends
 * the messages that depended on them.
 */
import { MemoryStorage } from '../../src/core/raft/storage.js';
import type { Storage, StorageWriter } from '../../src/core/raft/storage.js';
import type { ConfState, Entry, HardState, NodeId, Snapshot } from '../../src/core/raft/types.js';

/** Thrown from `sync()` when a crash strikes there. */
export class SimulatedCrash extends Error {
  override readonly name = 'SimulatedCrash';
}

type Op<T, S> =
  | { readonly kind: 'append'; readonly entries: readonly Entry<T>[] }
  | { readonly kind: 'hard'; readonly hardState: HardState }
  | { readonly kind: 'install'; readonly snapshot: Snapshot<S> }
  | { readonly kind: 'snapshot'; readonly index: number; readonly data: S }
  | { readonly kind: 'compact'; readonly index: number };

function replay<T, S>(target: MemoryStorage<T, S>, op: Op<T, S>): void {
  switch (op.kind) {
    case 'append':
      target.append(op.entries);
      return;
    case 'hard':
      target.setHardState(op.hardState);
      return;
    case 'install':
      target.applySnapshot(op.snapshot);
      return;
    case 'snapshot':
      target.createSnapshot(op.index, op.data);
      return;
    case 'compact':
      target.compact(op.index);
      return;
  }
}

export class SimStorage<T, S> implements Storage<T, S>, StorageWriter<T, S> {
  private visible: MemoryStorage<T, S>;
  private durable: MemoryStorage<T, S>;
  private pending: Op<T, S>[] = [];
  /** Strike a crash inside the next `sync()`. */
  crashOnNextSync = false;
  /** Counters for the run summary. */
  syncs = 0;

  constructor(voters: readonly NodeId[]) {
    this.durable = new MemoryStorage<T, S>(voters);
    this.visible = this.durable.clone();
  }

  // ---- Storage (reads see every write) -------------------------------------
  initialState(): { readonly hardState: HardState; readonly confState: ConfState } {
    return this.visible.initialState();
  }
  entries(lo: number, hi: number, maxCount: number): readonly Entry<T>[] {
    return this.visible.entries(lo, hi, maxCount);
  }
  term(index: number): number | undefined {
    return this.visible.term(index);
  }
  firstIndex(): number {
    return this.visible.firstIndex();
  }
  lastIndex(): number {
    return this.visible.lastIndex();
  }
  snapshot(): Snapshot<S> | undefined {
    return this.visible.snapshot();
  }
  getHardState(): HardState {
    return this.visible.getHardState();
  }

  // ---- writes ----------------------------------------------------------------
  private write(op: Op<T, S>): void {
    replay(this.visible, op);
    this.pending.push(op);
  }
  applySnapshot(snapshot: Snapshot<S>): void {
    this.write({ kind: 'install', snapshot });
  }
  append(entries: readonly Entry<T>[]): void {
    this.write({ kind: 'append', entries });
  }
  setHardState(hardState: HardState): void {
    this.write({ kind: 'hard', hardState });
  }
  /** The application snapshots its state machine at `index` and discards the log up to `compactIndex`. */
  snapshotAndCompact(index: number, data: S, compactIndex: number): void {
    this.write({ kind: 'snapshot', index, data });
    if (compactIndex > this.visible.firstIndex() - 1) this.write({ kind: 'compact', index: compactIndex });
  }

  sync(): void {
    if (this.crashOnNextSync) {
      this.crashOnNextSync = false;
      throw new SimulatedCrash('crash inside fsync');
    }
    this.syncs++;
    for (const op of this.pending) replay(this.durable, op);
    this.pending = [];
  }

  /**
   * The process dies: the first `keepUnsynced` unsynced writes happen to reach
   * the disk, the rest are lost. What the node sees after restart is the disk.
   */
  crash(keepUnsynced: number): void {
    const keep = Math.max(0, Math.min(keepUnsynced, this.pending.length));
    for (let i = 0; i < keep; i++) replay(this.durable, this.pending[i] as Op<T, S>);
    this.pending = [];
    this.crashOnNextSync = false;
    this.visible = this.durable.clone();
  }

  unsyncedWrites(): number {
    return this.pending.length;
  }

  /** Whether a crash now would keep entry (`index`, `term`): in the synced log, or covered by a synced snapshot. */
  durablyHolds(index: number, term: number): boolean {
    return index < this.durable.firstIndex() || this.durable.term(index) === term;
  }
}
