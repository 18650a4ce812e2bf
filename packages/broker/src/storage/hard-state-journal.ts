/**
 * The term, vote and commit of every unified partition group of a broker in
 * one journal file, so that many groups voting at once share one fsync.
 *
 * Raft requires a group's term and vote to be durable before it sends a vote
 * or campaigns. With a file per group, a broker whose peer died and whose
 * 4,000 groups elect at once pays 4,000 file replacements (each a write, an
 * fdatasync, a rename and a directory fsync) and opens as many descriptors.
 * Here a write is queued, every write queued within one turn of the event
 * loop leaves in one `write` and one `fdatasync`, and each caller is answered
 * after that fsync: the runner still sends nothing that depends on a vote
 * before the vote is durable (runner.ts), it only waits with the others.
 *
 * The file is a {@link RecordFile}: CRC-checked records, a torn tail cut on
 * open. A record is `[key, term, vote, commit]` (the last record of a key
 * wins) or `[key]` (the key was released: its replica's files were deleted).
 * When the file has grown well past its live records it is rewritten with
 * them, atomically (a temporary file renamed over it).
 */
import type { OpenSync } from './clean-shutdown.js';
import { nodeFileSystem, type FileSystem } from './fs.js';
import { OpenFileCache } from './open-files.js';
import { RecordFile } from './record-file.js';
import { LogStorageError } from './segments/errors.js';
import type { HardStateRecord } from './segments/meta.js';

/** Where a group's hard state is read at open and written on a term, vote or commit change. */
export interface HardStateStore {
  /** The last state written durably; `undefined` if none. */
  read(): Promise<HardStateRecord | undefined>;
  /** Records `state`; resolves once it is durable. */
  write(state: HardStateRecord): Promise<void>;
  /**
   * Writes take effect in the order they were made, whether or not the
   * earlier ones finished (a journal queues them): a caller that does not
   * need one durable may go on without waiting for it.
   */
  readonly ordered?: boolean;
}

/** Settings of a {@link HardStateJournal}. */
export interface HardStateJournalOptions {
  /** @defaultValue node's */
  fs?: FileSystem;
  /** The file is rewritten once it exceeds this many bytes and 4 times what its live records take. @defaultValue 1 MiB */
  compactBytes?: number;
  /** Whether the file is fsynced at open before its states count as durable (see storage/clean-shutdown.ts). @defaultValue it is */
  openSync?: OpenSync;
}

/** What a {@link HardStateJournal} did, for stats and tests. */
export interface HardStateJournalStats {
  /** Keys with a live record. */
  keys: number;
  /** States written since open (several writes of a key in one batch count once). */
  records: number;
  /** Batches written, each one `fdatasync`. */
  fsyncs: number;
  /** Rewrites of the file with its live records only. */
  compactions: number;
  /** Bytes of the file. */
  bytes: number;
}

type JournalRecord = [key: string, term: number, vote: string | null, commit: number] | [key: string];

/** A state waiting for the next batch, and whoever waits for it to be durable. */
interface Pending {
  state: HardStateRecord | undefined;
  waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }>;
}

/** Bytes of a record besides its key, about (msgpack array, term, vote, commit, frame header). */
const RECORD_OVERHEAD_BYTES = 40;

/** One file of hard states for many groups, written in batches (see the module's comment). */
export class HardStateJournal {
  /** The durable state of each key. */
  private readonly durable = new Map<string, HardStateRecord>();
  /** What the live records take in the file, about (see {@link RECORD_OVERHEAD_BYTES}). */
  private liveBytes = 0;
  /** What the next batch writes: a state, or `undefined` to release the key. */
  private pending = new Map<string, Pending>();
  private scheduled = false;
  /** The batches being written, until none is queued. */
  private running: Promise<void> | undefined;
  /** A write failed: the file is reloaded before the next batch (what it holds past its last fsync is unknown). */
  private broken = false;
  private closed = false;
  private readonly counts = { records: 0, fsyncs: 0, compactions: 0 };

  private constructor(
    private readonly file: RecordFile,
    private readonly path: string,
    private readonly compactBytes: number,
  ) {}

  /** Opens (creating) the journal at `path` and reads back every key's last durable state. */
  static async open(path: string, options: HardStateJournalOptions = {}): Promise<HardStateJournal> {
    // One descriptor, always open: it is written by every election.
    const { file, recovered } = await RecordFile.open(path, options.fs ?? nodeFileSystem, new OpenFileCache(1), options.openSync);
    const journal = new HardStateJournal(file, path, options.compactBytes ?? 1024 * 1024);
    journal.replay(recovered.records);
    return journal;
  }

  /** The last durable state of `key`; `undefined` when none was written (or it was released). */
  get(key: string): HardStateRecord | undefined {
    return this.durable.get(key);
  }

  /**
   * Records `state` for `key`; resolves once it is durable, with every write
   * made in the same turn (one fsync for all). A write of a key replaces one
   * of the same batch not written yet.
   */
  write(key: string, state: HardStateRecord): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(new Error('the hard state journal is closed'));
      const entry = this.pendingFor(key);
      entry.state = { term: state.term, vote: state.vote, commit: state.commit };
      entry.waiters.push({ resolve, reject });
      this.schedule();
    });
  }

  /** Forgets `key` (its replica's files are gone); a later open of the same key starts from no state. Durable with the next batch. */
  release(key: string): void {
    if (this.closed) return;
    this.forget(key);
    this.pendingFor(key).state = undefined;
    this.schedule();
  }

  /** A {@link HardStateStore} over the key `key`; `legacy` is read when the journal holds nothing for it (a directory from before the journal). */
  store(key: string, legacy?: HardStateStore): HardStateStore {
    return new JournalKey(this, key, legacy);
  }

  stats(): HardStateJournalStats {
    return { keys: this.durable.size, ...this.counts, bytes: this.file.bytes };
  }

  /** Closed, with every state written fsynced (a clean stop: storage/clean-shutdown.ts). */
  get closedDurably(): boolean {
    return this.closed && !this.broken && this.file.closedDurably;
  }

  /** Writes what is queued, then closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    while (this.running !== undefined || this.pending.size > 0) await (this.running ?? this.run());
    this.closed = true;
    await this.file.close();
  }

  private pendingFor(key: string): Pending {
    let entry = this.pending.get(key);
    if (entry === undefined) {
      entry = { state: undefined, waiters: [] };
      this.pending.set(key, entry);
    }
    return entry;
  }

  /** The next batch leaves after the current turn (every write of the turn joins it), or after the batch being written. */
  private schedule(): void {
    if (this.scheduled || this.running !== undefined) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.run();
    });
  }

  /** Writes batches until none is queued. */
  private run(): Promise<void> {
    this.running ??= this.drain().finally(() => {
      this.running = undefined;
      // Written between the last batch and now: they found the drain running and did not schedule one.
      if (this.pending.size > 0 && !this.closed) this.schedule();
    });
    return this.running;
  }

  private async drain(): Promise<void> {
    while (this.pending.size > 0) {
      const batch = this.pending;
      this.pending = new Map();
      try {
        await this.writeBatch(batch);
      } catch (err) {
        for (const entry of batch.values()) for (const waiter of entry.waiters) waiter.reject(err);
        continue;
      }
      for (const entry of batch.values()) for (const waiter of entry.waiters) waiter.resolve();
      if (this.file.bytes > Math.max(this.compactBytes, 4 * this.liveBytes)) await this.compact();
      // Writes made while this batch was being fsynced: one more turn for their companions to join them.
      if (this.pending.size > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  private async writeBatch(batch: Map<string, Pending>): Promise<void> {
    if (this.broken) await this.recover();
    for (const [key, { state }] of batch) this.file.append(state === undefined ? [key] : [key, state.term, state.vote, state.commit]);
    try {
      await this.file.flush(true);
      this.counts.fsyncs++;
      for (const [key, { state }] of batch) {
        if (state === undefined) this.forget(key);
        else this.remember(key, state);
        this.counts.records++;
      }
    } catch (err) {
      // The batch's writers hear of the failure (their groups fence and reload): its records must not reach the disk later.
      this.broken = true;
      await this.recover().catch(() => {}); // else before the next batch
      throw err;
    }
  }

  /** After a failed write or fsync: the file is cut back to what was fsynced (nothing queued is written again), as a restart would find it. */
  private async recover(): Promise<void> {
    const records = await this.file.reload();
    this.durable.clear();
    this.liveBytes = 0;
    this.replay(records);
    this.broken = false;
  }

  private remember(key: string, state: HardStateRecord): void {
    if (!this.durable.has(key)) this.liveBytes += key.length + RECORD_OVERHEAD_BYTES;
    this.durable.set(key, state);
  }

  private forget(key: string): void {
    if (this.durable.delete(key)) this.liveBytes -= key.length + RECORD_OVERHEAD_BYTES;
  }

  /** Rewrites the file with the live records only. A failure leaves it to the next batch, which first reloads the file. */
  private async compact(): Promise<void> {
    const records: JournalRecord[] = [];
    for (const [key, state] of this.durable) records.push([key, state.term, state.vote, state.commit]);
    try {
      await this.file.rewrite(records);
      this.counts.compactions++;
    } catch {
      this.broken = true;
    }
  }

  private replay(records: readonly unknown[]): void {
    for (const record of records) {
      const [key, term, vote, commit] = Array.isArray(record) ? (record as unknown[]) : [];
      if (typeof key === 'string' && (record as unknown[]).length === 1) this.forget(key);
      else if (typeof key === 'string' && isCount(term) && isCount(commit) && (vote === null || typeof vote === 'string')) this.remember(key, { term, vote, commit });
      // A checksummed record that is not one: never read as "no vote".
      else throw new LogStorageError('STORAGE_CORRUPT', `${this.path}: a record is not a hard state`, { path: this.path });
    }
  }
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** One key of a journal as a {@link HardStateStore} (an object with methods, not closures: a broker holds one per partition). */
class JournalKey implements HardStateStore {
  /** The journal queues each write in the turn it is made (see {@link HardStateJournal.write}). */
  readonly ordered = true;

  constructor(
    private readonly journal: HardStateJournal,
    private readonly key: string,
    private readonly legacy: HardStateStore | undefined,
  ) {}

  async read(): Promise<HardStateRecord | undefined> {
    return this.journal.get(this.key) ?? (await this.legacy?.read());
  }

  write(state: HardStateRecord): Promise<void> {
    return this.journal.write(this.key, state);
  }
}
