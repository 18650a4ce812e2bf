/**
 * Whether this start follows a power cut that may have cost the broker's
 * replicas entries they acknowledged, so that they must not vote as if their
 * logs were whole (`RaftConfig.recoveringAtStart`, docs/raft.md "A replica
 * that may have lost acknowledged entries").
 *
 * Under `fsync: interval` a replica acknowledges an entry once written, before
 * its fsync. A process that dies (kill -9, a crash) loses nothing it wrote:
 * the bytes are in the page cache, and a start without the clean-shutdown
 * marker fsyncs them at open (storage/clean-shutdown.ts). Only a power cut or
 * an OS crash loses them, and that changes the machine's boot id. So each
 * start records the boot id and the fsync policy it runs with; the next start
 * without the marker compares. Where the boot id cannot be read (not Linux),
 * every unclean stop of an `interval` run counts as a power cut.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readWholeFile, replaceFile, type FileSystem } from './fs.js';

/** The record's name in the data directory. */
export const LAST_RUN_FILE = 'last-run.json';

/** Where Linux says which boot this is (a new random UUID at every boot). */
export const BOOT_ID_PATH = '/proc/sys/kernel/random/boot_id';

/** What a start records about itself for the next one. */
export interface LastRun {
  /** The machine's boot id while it ran; `null` where it cannot be read. */
  bootId: string | null;
  /** Its fsync policy: only `interval` acknowledges before fsync. */
  fsync: 'always' | 'interval';
  /** Its replicas had not all recovered yet (a start that may itself have lost acknowledged entries). */
  recovering: boolean;
}

/** What a start concluded about the entries its replicas acknowledged before it. */
export interface StartVerdict {
  /** Its replicas may lack entries they acknowledged: they vote only as `RaftConfig.recoveringAtStart` allows. */
  recovering: boolean;
  /** Why, in words for the log. */
  reason: string;
}

/**
 * Decides whether this start's replicas may lack acknowledged entries. Pure:
 * `previous` is the record the last start left (`undefined`: none, a data
 * directory from before it existed or a new one), `cleanStop` whether the
 * clean-shutdown marker was there, `bootId` this boot's (`undefined`: unknown),
 * `fresh` whether the data directory is new (it held no broker identity before this start).
 */
export function judgeStart(previous: LastRun | undefined, cleanStop: boolean, bootId: string | undefined, fresh = false): StartVerdict {
  if (fresh) return { recovering: false, reason: 'a new data directory' };
  // A clean stop does not undo a loss: a replica that had not caught up yet still lacks what it lost.
  if (previous?.recovering === true) return { recovering: true, reason: 'the replicas of an earlier start after a power cut had not all caught up' };
  if (cleanStop) return { recovering: false, reason: 'the last stop was clean' };
  if (previous === undefined) return { recovering: true, reason: 'no record of the last run (its fsync policy and boot are unknown)' };
  if (previous.fsync === 'always') return { recovering: false, reason: 'the last run acknowledged only what it had fsynced' };
  if (bootId !== undefined && previous.bootId === bootId) return { recovering: false, reason: 'the machine did not restart since the last run: what it wrote was in the page cache' };
  return { recovering: true, reason: bootId === undefined ? 'the boot id is unknown and the last run (fsync interval) did not stop cleanly' : 'the machine restarted (power cut or OS crash) during a run that acknowledged before fsync' };
}

/** The record the last start left in `dataDir`; `undefined` when there is none or it does not parse (then nothing is assumed from it). */
export async function readLastRun(dataDir: string, fs: FileSystem): Promise<LastRun | undefined> {
  const bytes = await readWholeFile(fs, join(dataDir, LAST_RUN_FILE), 4096);
  if (bytes === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(new TextDecoder().decode(bytes));
    return isLastRun(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Replaces the record in `dataDir`, durably, before anything this start writes can be acknowledged. */
export async function writeLastRun(dataDir: string, fs: FileSystem, run: LastRun): Promise<void> {
  const path = join(dataDir, LAST_RUN_FILE);
  await replaceFile(fs, path, `${path}.tmp`, new TextEncoder().encode(`${JSON.stringify(run)}\n`));
}

/** This boot's id (a test's file system may say the machine restarted: {@link FileSystem.bootId}); `undefined` where there is none. */
export async function readBootId(fs: FileSystem): Promise<string | undefined> {
  if (fs.bootId !== undefined) return fs.bootId();
  try {
    // Not through `fs`: a /proc file reports a size of 0.
    const id = (await readFile(BOOT_ID_PATH, 'utf8')).trim();
    return id === '' ? undefined : id;
  } catch {
    return undefined;
  }
}

function isLastRun(value: unknown): value is LastRun {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (v.bootId === null || typeof v.bootId === 'string') && (v.fsync === 'always' || v.fsync === 'interval') && typeof v.recovering === 'boolean';
}

/**
 * A start's record in its data directory: written at start with the
 * verdict, rewritten once every replica caught up ({@link LastRunRecord.watch}).
 */
export class LastRunRecord {
  private timer: ReturnType<typeof setInterval> | undefined;
  private writing: Promise<void> | undefined;

  private constructor(
    private readonly dataDir: string,
    private readonly fs: FileSystem,
    private readonly run: LastRun,
    /** What this start concluded. */
    readonly verdict: StartVerdict,
    /** Why the record could not be written (none is left then), if it could not. */
    readonly unrecorded?: unknown,
  ) {}

  /** Judges this start against the last one's record and replaces it, durably, before anything of this start is written. */
  static async begin(dataDir: string, fs: FileSystem, fsync: LastRun['fsync'], cleanStop: boolean, fresh: boolean): Promise<LastRunRecord> {
    const previous = await readLastRun(dataDir, fs);
    const bootId = await readBootId(fs);
    const verdict = judgeStart(previous, cleanStop, bootId, fresh);
    // What an interval run acknowledged and a kill left unsynced stays so until each log is opened (and fsynced) or a
    // clean stop fsyncs the whole directory: until then this run counts as one that acknowledged before fsync.
    const unsyncedLeft = !cleanStop && !fresh && previous?.fsync !== 'always';
    const run: LastRun = { bootId: bootId ?? null, fsync: unsyncedLeft ? 'interval' : fsync, recovering: verdict.recovering };
    let unrecorded: unknown;
    try {
      await writeLastRun(dataDir, fs, run);
    } catch (err) {
      // A full disk must not keep the broker from starting (it serves reads, and catches up once space returns).
      // Without a record the next unclean start assumes the worst, so the old one (which may say less) goes.
      await fs.unlink(join(dataDir, LAST_RUN_FILE)).catch(() => {});
      unrecorded = err;
    }
    return new LastRunRecord(dataDir, fs, run, verdict, unrecorded);
  }

  /**
   * While recovering: asks `recovered` every `everyMs`, and once it says every
   * replica caught up records that (a later unclean stop on this boot then
   * costs no recovery). `done` hears the outcome.
   */
  watch(recovered: () => boolean, done: (error?: unknown) => void, everyMs = 1000): void {
    if (!this.run.recovering || this.timer !== undefined) return;
    this.timer = setInterval(() => {
      if (this.writing !== undefined || !recovered()) return;
      clearInterval(this.timer);
      this.writing = writeLastRun(this.dataDir, this.fs, { ...this.run, recovering: false }).then(
        () => done(),
        (err: unknown) => done(err),
      );
    }, everyMs);
    this.timer.unref?.();
  }

  /** Stops watching; a record being written is written first. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.writing;
  }
}
