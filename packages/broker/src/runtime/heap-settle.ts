/**
 * Full garbage collection once a burst of Raft group creations (or
 * removals) has settled. Creating thousands of partition groups (a bulk topic
 * creation, or a restart hosting them again) leaves far more garbage than live
 * state, and an idle broker allocates too little for V8 to collect it: the
 * heap it reserved for the burst stays, and so does the process's RSS
 * (measured at 2,000 partitions on three brokers: 221-226 MiB idle, heap
 * 138-148 MiB reserved for 51-110 MiB in use; with two collections once the
 * groups quiesced, 152-172 MiB; see docs/benchmarks.md).
 *
 * The collections are V8's incremental ones (`execution: 'async'`): marking
 * runs in steps and on helper threads, so the event loop stops for a fraction
 * of a blocking collection. And they wait while more than a tenth of the
 * groups are awake (`busy`): a pause then could delay heartbeats that
 * elections and leases count on.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** How many group changes make a burst worth a collection, by default. */
export const HEAP_SETTLE_MIN_CHANGES = 256;
/** How long no group may have changed before the collection runs, by default (ms). */
export const HEAP_SETTLE_QUIET_MS = 5000;

export interface HeapSettleOptions {
  /** Runs one full collection; `undefined` disables settling (see {@link fullCollection}). */
  collect: (() => void | Promise<void>) | undefined;
  /**
   * Whether the groups are still settling (elections, catching up): the
   * collection then waits another `quietMs`, and again, until they are not,
   * so that it neither pauses them nor misses the elections' garbage.
   */
  busy?: () => boolean;
  /**
   * Whether (nearly) every group is idle. A settle that ran while some were
   * still awake (under the `busy` threshold: their elections and catch-up
   * still allocate) is followed by one more once they are, checked every
   * `quietMs` up to {@link HEAP_SETTLE_FOLLOW_UP_CHECKS} times.
   */
  idle?: () => boolean;
  minChanges?: number;
  quietMs?: number;
}

/** How many times a follow-up settle checks for idle groups before giving up. */
export const HEAP_SETTLE_FOLLOW_UP_CHECKS = 24;

/** Decides when a burst of group changes has settled, and then collects the heap (see the module's comment). */
export class HeapSettle {
  private changes = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private settled = 0;
  /** Checks left before a follow-up settle gives up; 0: none is pending. */
  private followUpChecks = 0;
  private collecting = false;
  private closed = false;
  private readonly minChanges: number;
  private readonly quietMs: number;

  constructor(private readonly options: HeapSettleOptions) {
    this.minChanges = options.minChanges ?? HEAP_SETTLE_MIN_CHANGES;
    this.quietMs = options.quietMs ?? HEAP_SETTLE_QUIET_MS;
  }

  /** A group was created or removed: the collection waits until none was for `quietMs`. */
  changed(): void {
    if (this.options.collect === undefined || this.closed) return;
    this.changes++;
    if (this.changes >= this.minChanges) {
      this.followUpChecks = 0; // a new burst: its own settle comes first
      this.arm();
    }
  }

  /** Settles finished so far (each two collections). */
  get settles(): number {
    return this.settled;
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.settle(), this.quietMs);
    this.timer.unref();
  }

  private async settle(): Promise<void> {
    this.timer = undefined;
    const collect = this.options.collect;
    if (collect === undefined || this.closed) return;
    if (this.collecting || this.options.busy?.() === true) {
      this.arm();
      return;
    }
    const followUp = this.followUpChecks > 0;
    if (followUp && this.options.idle?.() === false) {
      if (--this.followUpChecks > 0) this.arm();
      return;
    }
    this.changes = 0;
    this.followUpChecks = 0;
    this.collecting = true;
    try {
      // Two: the first frees the garbage, the second releases the pages the first left nearly empty
      // (measured at 2,000 partitions: old space committed 85-96 MiB for 33.5 MiB live before, 81-91 after one, 45-53 after two).
      await collect();
      await collect();
      this.settled++;
    } catch {
      // Only an optimisation: the heap stays as it was (and a rejection here would be unhandled).
    } finally {
      this.collecting = false;
    }
    // Groups still awake keep allocating (elections, catch-up): once they are idle, one more settle takes that too.
    if (!followUp && !this.closed && this.options.idle?.() === false) {
      this.followUpChecks = HEAP_SETTLE_FOLLOW_UP_CHECKS;
      this.arm();
    }
  }
}

type GcFunction = (options?: { type: 'major'; execution: 'async' }) => void | Promise<void>;

let collector: GcFunction | null | undefined;

/**
 * V8's full collection, incremental (resolves when done): `globalThis.gc`
 * when node runs with `--expose-gc`, otherwise the same function taken from
 * a fresh context after turning the flag on at run time (as jest's leak
 * detector does; the flag only makes `gc` visible to contexts created
 * afterwards). `undefined` if neither works.
 */
export function fullCollection(): (() => Promise<void>) | undefined {
  if (collector === undefined) {
    const exposed = (globalThis as { gc?: unknown }).gc;
    if (typeof exposed === 'function') collector = exposed as GcFunction;
    else {
      try {
        setFlagsFromString('--expose-gc');
        const gc: unknown = runInNewContext('gc');
        collector = typeof gc === 'function' ? (gc as GcFunction) : null;
      } catch {
        collector = null;
      }
    }
  }
  const gc = collector;
  return gc === null ? undefined : async () => void (await gc({ type: 'major', execution: 'async' }));
}
