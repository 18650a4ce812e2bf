/**
 * A bound on the files a broker keeps open for its partitions' segments.
 * Each partition keeps its active segment (and recently read sealed ones)
 * open; ten thousand mostly idle partitions would need more descriptors than
 * a default `ulimit -n` allows. The logs register every handle they open
 * here; beyond the capacity the least recently used handles are closed, each
 * by its owner and only if the owner says nothing needs it (no read in
 * flight, no write or fsync running, nothing written and not yet fsynced).
 * A closed handle is reopened by its owner when next needed.
 *
 * The bound is soft: handles that must stay open stay open, so the count may
 * exceed the capacity by the handles busy at that moment.
 */

/** An open file as the cache sees it: its owner decides whether it may be closed now. */
export interface CachedFile {
  /**
   * Closes the file now if nothing needs it open, and returns true (also
   * when it was closed already); returns false to keep it open. Must not
   * call back into the cache.
   */
  tryClose(): boolean;
}

/** Busy files a trim may pass over (it closes as many idle ones as the excess asks). */
export const TRIM_SLACK = 64;

/** What an {@link OpenFileCache} did, for stats and tests. */
export interface OpenFileStats {
  /** Files open now (registered and not closed). */
  open: number;
  /** The capacity. */
  capacity: number;
  /** Files closed by the cache to stay within its capacity, since it was made. */
  evicted: number;
  /** Times the cache was over capacity and every candidate had to stay open (busy). */
  overCapacity: number;
}

/**
 * Least recently used open files, closed beyond a capacity. One per broker,
 * shared by every segment log. Synchronous and I/O-free: closing is the
 * owner's business ({@link CachedFile.tryClose}).
 */
export class OpenFileCache {
  /** Open files, least recently used first (a Map keeps insertion order). */
  private readonly files = new Map<CachedFile, true>();
  private evicted = 0;
  private overCapacity = 0;

  /** @param capacity - files kept open at most, when none of them is busy; at least 1. */
  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError(`open file capacity must be a positive integer, got ${capacity}`);
  }

  /** `file` was opened (or reopened): counted as most recently used, and older idle files closed beyond the capacity. */
  opened(file: CachedFile): void {
    this.files.delete(file);
    this.files.set(file, true);
    this.trim(file);
  }

  /** `file` was used: most recently used. A file not registered (closed) is ignored. */
  used(file: CachedFile): void {
    if (!this.files.delete(file)) return;
    this.files.set(file, true);
  }

  /** The owner closed `file` itself (deleted, log closed). Idempotent. */
  closed(file: CachedFile): void {
    this.files.delete(file);
  }

  /**
   * Closes idle files beyond the capacity, if some are: after a busy spell,
   * files that had to stay open may be closable now. Passes over
   * {@link TRIM_SLACK} busy files at most (each moves to the end, as just
   * used), whatever the excess, so that a trim costs little even while
   * thousands are busy; the next trims go on from there. (It used to look at
   * the excess plus that many: with 4,000 groups electing at once after a
   * broker's loss, 3,000 Raft log files over the bound and busy, every
   * finished write looked at 3,000 files, a third of the survivors' CPU.)
   */
  trim(keep?: CachedFile): void {
    if (this.files.size <= this.capacity) return;
    let passes = TRIM_SLACK;
    let looks = this.files.size; // each file looked at once at most
    // A Map iterates the entries moved to its end too: `looks` and `passes` bound the loop.
    for (const file of this.files.keys()) {
      if (this.files.size <= this.capacity || looks-- <= 0) break;
      if (file === keep) {
        this.used(file); // just opened: the newest, whatever was passed over before it
        continue;
      }
      if (file.tryClose()) {
        this.files.delete(file);
        this.evicted++;
      } else {
        this.used(file);
        if (--passes <= 0) break;
      }
    }
    if (this.files.size > this.capacity) this.overCapacity++;
  }

  stats(): OpenFileStats {
    return { open: this.files.size, capacity: this.capacity, evicted: this.evicted, overCapacity: this.overCapacity };
  }
}

/**
 * One owner's file operations, run one at a time in order (whether the one
 * before failed or not). After each, the cache trims: handles that had to
 * stay open while it ran may be closable now.
 */
export class FileTaskChain {
  private tail: Promise<void> = Promise.resolve();
  private running = 0;

  constructor(private readonly cache: OpenFileCache) {}

  /** A task is running now: its owner keeps every handle open. */
  get busy(): boolean {
    return this.running > 0;
  }

  /** Resolves once every task started so far has finished. Never rejects. */
  settled(): Promise<void> {
    return this.tail;
  }

  /** Runs `task` after every earlier one. */
  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(async () => {
      this.running++;
      try {
        return await task();
      } finally {
        this.running--;
      }
    });
    const trim = (): void => {
      try {
        this.cache.trim();
      } catch {
        // A handle that could not be closed now is closed by a later trim.
      }
    };
    this.tail = result.then(trim, trim);
    return result;
  }
}
