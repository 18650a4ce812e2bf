/**
 * Small state persisted beside a partition's segments: the Raft hard state
 * and the idempotence table. Each value is one file, `<name>.meta`, holding
 * one frame (`frame.ts`) of msgpack (the pinned codec), replaced atomically:
 * write `<name>.meta.tmp`, fdatasync, rename over, fsync the directory. A
 * reader sees the old value or the new one, never a mix, across any crash.
 */
import { join } from 'node:path';
import { decodeValue, encodeValue, type ScanLimits } from '@relaymq/sdk/protocol';
import { readWholeFile, replaceFile, type FileSystem } from '../fs.js';
import { LogStorageError, ioError } from './errors.js';
import { asBuffer, checkFrame, frame, FRAME_HEADER_BYTES } from './frame.js';

const META_EXT = '.meta';
const TMP_EXT = '.meta.tmp';
const NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,63}$/;
/** Values are broker-written; the idempotence table holds many entries. */
const META_SCAN_LIMITS: ScanLimits = { maxDepth: 8, maxElements: 64_000_000, allowTimestamp: false };
const MAX_META_BYTES = 256 * 1024 * 1024;

/** Raft's hard state, as persisted; the same shape as the Raft core's `HardState`. */
export interface HardStateRecord {
  term: number;
  vote: string | null;
  commit: number;
}

/** One producer's row of the idempotence table. */
export interface ProducerRecord {
  producerId: string;
  /** The seq the producer sends next. */
  nextSeq: number;
  /** Offsets of its most recent seqs, oldest first: `recent[i]` is the offset of seq `nextSeq - recent.length + i`. */
  recent: number[];
}

/** The idempotence table as of an offset: replaying the log from `offset` brings it up to date. */
export interface IdempotenceSnapshot {
  /** The table reflects every message below this offset. */
  offset: number;
  producers: ProducerRecord[];
}

const HARD_STATE = 'hardstate';
const IDEMPOTENCE = 'idempotence';

/** Atomically replaced small values in one directory. */
export class MetaStore {
  /** Writes run one at a time (they share temp files). */
  private chain: Promise<void> = Promise.resolve();

  private constructor(
    readonly dir: string,
    private readonly fs: FileSystem,
  ) {}

  /** Opens `dir` (creating it) and removes temp files a crash left behind. */
  static async open(dir: string, fs: FileSystem): Promise<MetaStore> {
    try {
      await fs.mkdir(dir);
      for (const name of await fs.readdir(dir)) if (name.endsWith(TMP_EXT)) await fs.unlink(join(dir, name)).catch(() => {});
    } catch (err) {
      throw ioError(err, `opening ${dir}`, dir);
    }
    return new MetaStore(dir, fs);
  }

  /**
   * The value stored under `name`, or `undefined` if none. Throws
   * `STORAGE_CORRUPT` when the file fails its checksum: a Raft node must not
   * start having forgotten its vote, so this is never treated as "no value".
   */
  async read(name: string): Promise<unknown> {
    const path = this.path(name);
    let bytes: Uint8Array | undefined;
    try {
      bytes = await readWholeFile(this.fs, path, MAX_META_BYTES);
    } catch (err) {
      throw ioError(err, `reading ${path}`, path);
    }
    if (bytes === undefined) return undefined;
    const buf = asBuffer(bytes);
    const check = checkFrame(buf, 0, MAX_META_BYTES);
    if (check.kind !== 'ok' || check.bodyEnd !== buf.length) {
      const reason = check.kind === 'bad' ? check.reason : check.kind === 'incomplete' ? 'truncated' : 'trailing bytes';
      throw new LogStorageError('STORAGE_CORRUPT', `${path} is damaged (${reason})`, { path });
    }
    try {
      return decodeValue(buf.subarray(FRAME_HEADER_BYTES, check.bodyEnd), META_SCAN_LIMITS);
    } catch (err) {
      throw new LogStorageError('STORAGE_CORRUPT', `${path} does not decode: ${(err as Error).message}`, { path, cause: err });
    }
  }

  /** Replaces the value under `name`, durably and atomically; resolves once it is on disk. */
  write(name: string, value: unknown): Promise<void> {
    const path = this.path(name);
    const data = frame(encodeValue(value));
    const run = this.chain.then(async () => {
      try {
        await replaceFile(this.fs, path, path.slice(0, -META_EXT.length) + TMP_EXT, data);
      } catch (err) {
        throw ioError(err, `writing ${path}`, path);
      }
    });
    this.chain = run.catch(() => {});
    return run;
  }

  async readHardState(): Promise<HardStateRecord | undefined> {
    const value = await this.read(HARD_STATE);
    if (value === undefined) return undefined;
    if (!isHardState(value)) throw new LogStorageError('STORAGE_CORRUPT', `${this.path(HARD_STATE)} is not a hard state`);
    return { term: value.term, vote: value.vote, commit: value.commit };
  }

  writeHardState(state: HardStateRecord): Promise<void> {
    return this.write(HARD_STATE, { term: state.term, vote: state.vote, commit: state.commit });
  }

  async readIdempotence(): Promise<IdempotenceSnapshot | undefined> {
    const value = await this.read(IDEMPOTENCE);
    if (value === undefined) return undefined;
    if (!isIdempotenceSnapshot(value)) throw new LogStorageError('STORAGE_CORRUPT', `${this.path(IDEMPOTENCE)} is not an idempotence table`);
    return value;
  }

  writeIdempotence(snapshot: IdempotenceSnapshot): Promise<void> {
    return this.write(IDEMPOTENCE, snapshot);
  }

  private path(name: string): string {
    if (!NAME_PATTERN.test(name)) throw new RangeError(`meta name ${JSON.stringify(name)} must match ${NAME_PATTERN}`);
    return join(this.dir, name + META_EXT);
  }
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isHardState(value: unknown): value is HardStateRecord {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return isCount(v.term) && isCount(v.commit) && (v.vote === null || typeof v.vote === 'string');
}

function isIdempotenceSnapshot(value: unknown): value is IdempotenceSnapshot {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  if (!isCount(v.offset) || !Array.isArray(v.producers)) return false;
  return v.producers.every((p: unknown) => {
    if (typeof p !== 'object' || p === null) return false;
    const r = p as Record<string, unknown>;
    return typeof r.producerId === 'string' && isCount(r.nextSeq) && Array.isArray(r.recent) && r.recent.every(isCount) && r.recent.length <= r.nextSeq;
  });
}
