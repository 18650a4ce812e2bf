/**
 * Whether a broker's last stop was clean, and what a start does about it.
 *
 * Opening a log takes the bytes its files hold as durable. After `kill -9`
 * between a write and its fsync they are in the page cache only: a
 * follower under `fsync: always` that took them as fsynced could acknowledge
 * entries (or count them in its match) that a later power cut still loses.
 * An fdatasync of every such file at open makes them durable, but costs
 * ~0.6 ms a file (seconds at 10,000 partitions). So, as Kafka does, a clean
 * stop leaves a marker in the data directory once its last fsyncs are done;
 * a start takes it (reads it and removes it, durably, before anything is
 * written), and fsyncs the files it opens only when there was none
 * ({@link OpenSync}). docs/storage.md, "Clean shutdown".
 */
import { join } from 'node:path';
import { replaceFile, type FileHandle, type FileSystem } from './fs.js';

/** The marker's name in the data directory. */
export const CLEAN_SHUTDOWN_FILE = 'clean-shutdown';

/** fdatasyncs at open run at most this many at once (the thread pool has 4 threads; more only queue ahead of reads). */
export const OPEN_SYNC_PARALLELISM = 8;

/**
 * Whether the last stop of the broker on `dataDir` was clean: its marker is
 * there. The marker is removed, and the removal made durable, before this
 * returns: a broker killed from now on left no marker behind.
 */
export async function takeCleanShutdownMarker(dataDir: string, fs: FileSystem): Promise<boolean> {
  const path = join(dataDir, CLEAN_SHUTDOWN_FILE);
  // A temporary file left by a stop cut short between its write and rename is no marker.
  await fs.unlink(`${path}.tmp`).catch(() => {});
  if ((await fs.stat(path)) === undefined) return false;
  await fs.unlink(path);
  await fs.syncDir(dataDir);
  return true;
}

/** Leaves the marker of a clean stop in `dataDir` (fsynced, its directory too): call it once every log is closed and fsynced. */
export async function writeCleanShutdownMarker(dataDir: string, fs: FileSystem, now: Date = new Date()): Promise<void> {
  const path = join(dataDir, CLEAN_SHUTDOWN_FILE);
  await replaceFile(fs, path, `${path}.tmp`, new TextEncoder().encode(`${now.toISOString()}\n`));
}

/** Files {@link syncDataDirectory} leaves alone: nothing trusts their bytes at open. */
const SKIPPED_SUFFIXES = ['.idx', '.tix', '.tmp'];

/**
 * Fsyncs every file under `dataDir` (and each directory, for the entries in
 * it), `OPEN_SYNC_PARALLELISM` at a time. A start without the marker fsyncs
 * the logs it opens, not those it leaves closed (a partition whose group that
 * run never created, whose open failed, files left by a drop cut short): its
 * clean stop calls this before {@link writeCleanShutdownMarker}, since the
 * marker makes the next start trust every file as it finds it. Files closed
 * durably cost a syscall each (~0.4 ms measured: 4,000 files 1.5 s at load 16).
 * Returns how many were fsynced; rejects with the first failure (no marker then).
 */
export async function syncDataDirectory(dataDir: string, fs: FileSystem): Promise<number> {
  const files: string[] = [];
  const dirs: string[] = [dataDir];
  // Bounded by the tree: each directory is listed once.
  for (let i = 0; i < dirs.length; i++) {
    const dir = dirs[i] as string;
    for (const name of await fs.readdir(dir).catch(skipDeleted)) {
      const path = join(dir, name);
      const stat = await fs.stat(path);
      if (stat === undefined) continue; // deleted meanwhile
      if (stat.isDirectory) dirs.push(path);
      // Index files are checked against their segment at open (rebuilt when torn), temporary files never read.
      else if (!SKIPPED_SUFFIXES.some((suffix) => name.endsWith(suffix))) files.push(path);
    }
  }
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const path = files[next++] as string;
      let handle: FileHandle;
      try {
        handle = await fs.open(path, 'read');
      } catch (err) {
        skipDeleted(err);
        continue;
      }
      try {
        await handle.datasync();
      } finally {
        await handle.close().catch(() => {});
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(OPEN_SYNC_PARALLELISM, files.length) }, worker));
  for (const dir of dirs) await fs.syncDir(dir).catch(skipDeleted);
  return files.length;
}

/** A file or directory deleted meanwhile (a drop's files) has nothing to keep: nothing, else the error again. */
function skipDeleted(err: unknown): never[] {
  if ((err as { code?: unknown }).code === 'ENOENT') return [];
  throw err;
}

/** What an {@link OpenSync} did. */
export interface OpenSyncStats {
  /** Whether files are fsynced at open (no clean-stop marker). */
  required: boolean;
  /** Files fsynced at open. */
  files: number;
  /** Time spent in those fsyncs, in seconds (summed: they run in parallel). */
  seconds: number;
}

/**
 * Decides whether the files a log takes as durable at open (a segment log's
 * active segment, a record file) are fsynced first, and bounds how many such
 * fsyncs run at once. One per broker start, shared by every log it opens;
 * `required` is false only after a clean stop.
 */
export class OpenSync {
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  private files = 0;
  private seconds = 0;

  constructor(
    readonly required: boolean,
    private readonly parallelism = OPEN_SYNC_PARALLELISM,
  ) {
    if (!Number.isSafeInteger(parallelism) || parallelism < 1) throw new RangeError(`open sync parallelism must be a positive integer, got ${parallelism}`);
  }

  /** Makes what `handle`'s file holds durable, if this start requires it. Rejects with the file system's error. */
  async sync(handle: FileHandle): Promise<void> {
    if (!this.required) return;
    // A slot: free now, or handed over by an fsync that ends.
    if (this.running < this.parallelism) this.running++;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    const started = performance.now();
    try {
      await handle.datasync();
      this.files++;
    } finally {
      this.seconds += (performance.now() - started) / 1000;
      const next = this.waiting.shift();
      if (next === undefined) this.running--;
      else next();
    }
  }

  stats(): OpenSyncStats {
    return { required: this.required, files: this.files, seconds: this.seconds };
  }
}
