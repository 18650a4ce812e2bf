import { crc32 } from 'node:zlib';
import { dirname } from 'node:path';
import { decodeValue, encodeValue, type ScanLimits } from '@relaymq/sdk/protocol';
import { OpenSync } from './clean-shutdown.js';
import { nodeFileSystem, readWholeFile, replaceFile, type FileHandle, type FileSystem } from './fs.js';
import { FileTaskChain, OpenFileCache, type CachedFile } from './open-files.js';

/** Records are broker-written; they may hold Raft batches, so they nest deeper than client frames. */
const RECORD_SCAN_LIMITS: ScanLimits = { maxDepth: 16, maxElements: 16_000_000, allowTimestamp: false };
/** length (u32) + crc32 of the body (u32). */
const HEADER_BYTES = 8;
/** A record larger than this is corruption, not data. */
const MAX_RECORD_BYTES = 256 * 1024 * 1024;
/** A file larger than this is not read back whole (Raft logs are compacted long before). */
const MAX_FILE_BYTES = 2 * 1024 * 1024 * 1024 - 1;

/** What opening found. */
export interface Recovered {
  records: unknown[];
  /** Bytes cut off the end: a torn or corrupt tail from a crash mid-write. */
  truncatedBytes: number;
}

/**
 * An append-only file of length-prefixed, CRC-checked msgpack records. Writes
 * are buffered and leave in one `write` per `flush`, followed by one fsync when
 * asked: group commit. On open, the records are read back and a torn tail is
 * cut off, so a crash never leaves a half record behind. A failed write or
 * fsync (a full disk) loses nothing queued: the next flush writes the same
 * bytes again at the same place.
 *
 * Its descriptor counts in a broker-wide bound on open files (`openFiles`):
 * beyond the bound, an idle file's descriptor is closed (never while an
 * operation runs, bytes written through it are not fsynced, or a failure is
 * being recovered) and reopened by the next operation that needs it.
 */
export class RecordFile {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Written since the last fsync: lost if an fsync fails, so kept to write again. */
  private unsynced: Buffer[] = [];
  private durableSize: number;
  /**
   * Bytes at the start of the file holding whole records, fsynced or not:
   * what a process killed now would leave (see {@link reload}). At least
   * `durableSize`; above `size` while a failure's rewrite is pending.
   */
  private intactSize: number;
  /** Flush, rewrite, reload and close, each after the one before; while one runs, the bound does not close the handle. */
  private readonly tasks: FileTaskChain;
  /** A rewrite failed part way: the file at `path` may be the new one, and `handle` the old, unlinked one. */
  private stale = false;
  /** A write or fsync failed and nothing has been fsynced since: the retry goes through the descriptor that failed. */
  private failed = false;
  private closed = false;
  private closing: Promise<void> | undefined;
  /** The close wrote and fsynced everything (see {@link closedDurably}). */
  private durableAtClose = false;
  /** This file's entry in the bound on open files. */
  private readonly cached: CachedFile = { tryClose: () => this.closeIfIdle() };

  private constructor(
    /** Open, or `undefined` once the open-file bound closed it while idle (reopened on use). */
    private handle: FileHandle | undefined,
    /** Bytes of the file known to be written (and, after a sync, durable). */
    private size: number,
    private readonly path: string,
    private readonly fs: FileSystem,
    private readonly openFiles: OpenFileCache,
  ) {
    this.durableSize = size;
    this.intactSize = size;
    this.tasks = new FileTaskChain(openFiles);
    openFiles.opened(this.cached);
  }

  /**
   * Opens (creating) `path` and returns the records it holds. `openFiles` is
   * the bound its descriptor counts in (none: unbounded). The records read
   * back count as durable: `openSync` says whether the file is fsynced
   * first (after an unclean stop they may be in the page cache only; see
   * storage/clean-shutdown.ts; by default it is).
   */
  static async open(
    path: string,
    fs: FileSystem = nodeFileSystem,
    openFiles: OpenFileCache = new OpenFileCache(Number.MAX_SAFE_INTEGER),
    openSync: OpenSync = new OpenSync(true),
  ): Promise<{ file: RecordFile; recovered: Recovered }> {
    await fs.mkdir(dirname(path));
    const existed = (await fs.stat(path)) !== undefined;
    const handle = await fs.open(path, 'write');
    let parsed: { records: unknown[]; validBytes: number; bytes: number };
    try {
      // A new file's directory entry must be durable too, or a crash could lose the whole file.
      if (!existed) await fs.syncDir(dirname(path));
      const bytes = (await readWholeFile(fs, path, MAX_FILE_BYTES)) ?? new Uint8Array(0);
      parsed = { ...parseRecords(bytes), bytes: bytes.length };
      if (parsed.validBytes < bytes.length) await handle.truncate(parsed.validBytes);
      if (parsed.validBytes > 0) await openSync.sync(handle);
    } catch (err) {
      await handle.close().catch(() => {});
      throw err;
    }
    const file = new RecordFile(handle, parsed.validBytes, path, fs, openFiles);
    return { file, recovered: { records: parsed.records, truncatedBytes: parsed.bytes - parsed.validBytes } };
  }

  /** Bytes in the file, written or queued. */
  get bytes(): number {
    return this.size + this.pendingBytes;
  }

  /** Queues a record; it reaches the file with the next `flush`. */
  append(record: unknown): void {
    const [header, body] = encodeRecord(record);
    this.pending.push(header, body);
    this.pendingBytes += header.length + body.length;
  }

  /**
   * Writes everything queued so far in one write and, with `sync`, fsyncs it.
   * Flushes run one after another, so a resolved flush covers every record
   * appended before it was called. On failure the bytes stay queued (ahead of
   * anything appended since) and the promise rejects with the file system's error.
   */
  flush(sync: boolean): Promise<void> {
    return this.tasks.run(async () => {
      const chunks = this.pending;
      const length = this.pendingBytes;
      this.pending = [];
      this.pendingBytes = 0;
      let written = false;
      try {
        if (length > 0) {
          // At `size`, not appended: a retry after a failed (maybe partial) write overwrites it.
          await (await this.openHandle()).write(Buffer.concat(chunks, length), this.size);
          this.size += length;
          this.intactSize = Math.max(this.intactSize, this.size);
          this.unsynced.push(...chunks);
          written = true;
        }
        // A handle closed while idle had nothing unsynced: everything written is durable already.
        if (sync && this.handle !== undefined) {
          await this.handle.datasync();
          this.unsynced = [];
          this.durableSize = this.size;
        }
      } catch (err) {
        // Linux may drop dirty pages after a failed writeback: everything not fsynced is written again.
        const again = written ? this.unsynced : [...this.unsynced, ...chunks];
        this.pending = [...again, ...this.pending];
        this.pendingBytes = this.pending.reduce((sum, chunk) => sum + chunk.length, 0);
        this.unsynced = [];
        this.size = this.durableSize;
        this.failed = true;
        throw err;
      }
      if (this.unsynced.length === 0) this.failed = false;
    });
  }

  /**
   * Replaces the whole file with `records` (compaction), atomically: they are
   * written to a temporary file, fsynced and renamed over this one, so a crash
   * leaves either file, never a mix. Records queued and not flushed are dropped:
   * call it when `records` already include them.
   */
  rewrite(records: readonly unknown[]): Promise<void> {
    return this.tasks.run(async () => {
      this.refuseIfClosed();
      this.pending = [];
      this.pendingBytes = 0;
      const chunks: Buffer[] = [];
      for (const record of records) chunks.push(...encodeRecord(record));
      const body = Buffer.concat(chunks);
      let handle: FileHandle;
      try {
        await replaceFile(this.fs, this.path, `${this.path}.tmp`, body);
        // Opening the new file may fail too (no descriptor left): then `path` is the new file and no handle is.
        handle = await this.fs.open(this.path, 'write');
      } catch (err) {
        this.stale = true;
        throw err;
      }
      const old = this.handle;
      this.attach(handle);
      this.size = this.durableSize = this.intactSize = body.length;
      this.unsynced = [];
      this.failed = false;
      await old?.close();
    });
  }

  /**
   * After a failed write, fsync or rewrite, whose outcome is unknown: forgets
   * everything queued and not written, cuts the file back, and reads the
   * records back as {@link open} does. What it returns is exactly what a
   * crash now would leave: with `keep` `durable`, a power loss (the file is
   * cut at its last fsynced length); with `written`, a killed process (the
   * records written whole before the failure stay, fsynced or not: what an
   * `interval` Raft log acknowledged), written again from memory first so
   * that the fsync after the cut covers them (a failed fsync may have
   * dropped their pages). A failure leaves the file to a later call.
   */
  reload(keep: 'durable' | 'written' = 'durable'): Promise<unknown[]> {
    return this.tasks.run(async () => {
      this.refuseIfClosed();
      const intact = keep === 'written' ? this.intactPrefix() : [];
      this.pending = [];
      this.pendingBytes = 0;
      this.unsynced = [];
      if (!this.stale) {
        // Both fsynced files of a failed rewrite are whole; otherwise only the fsynced (or whole) prefix counts.
        const current = await this.openHandle();
        let end = this.durableSize;
        if (intact.length > 0) {
          const bytes = Buffer.concat(intact);
          // Best effort: they are in the file already unless an fsync failed.
          await current.write(bytes, this.durableSize).catch(() => {});
          end += bytes.length;
        }
        await current.truncate(end);
        await current.datasync();
      }
      const handle = await this.fs.open(this.path, 'write');
      let records: unknown[];
      try {
        const bytes = (await readWholeFile(this.fs, this.path, MAX_FILE_BYTES)) ?? new Uint8Array(0);
        const parsed = parseRecords(bytes);
        if (parsed.validBytes < bytes.length) await handle.truncate(parsed.validBytes);
        // After a failed rewrite the file read may be the old one with a tail written and not fsynced: made durable
        // before it is returned, so that what a crash leaves is what this returns.
        if (parsed.validBytes < bytes.length || this.stale) await handle.datasync();
        records = parsed.records;
        this.size = this.durableSize = this.intactSize = parsed.validBytes;
      } catch (err) {
        await handle.close().catch(() => {});
        throw err;
      }
      const old = this.handle;
      this.attach(handle);
      this.stale = false;
      this.failed = false;
      await old?.close().catch(() => {});
      return records;
    });
  }

  /**
   * The queued chunks (written again from the last fsynced length after a
   * failure) that the file held whole before it: the first
   * `intactSize - durableSize` bytes of them.
   */
  private intactPrefix(): Buffer[] {
    const chunks: Buffer[] = [];
    let bytes = this.durableSize;
    for (const chunk of [...this.unsynced, ...this.pending]) {
      if (bytes + chunk.length > this.intactSize) break;
      chunks.push(chunk);
      bytes += chunk.length;
    }
    return chunks;
  }

  /** Flushes and fsyncs what is queued (a failure is ignored), then closes the file. Later writes, rewrites and reloads fail. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const stale = this.stale;
      await this.flush(true).then(
        () => (this.durableAtClose = !stale && !this.stale),
        () => {},
      );
      await this.tasks.run(async () => {
        this.closed = true;
        const handle = this.handle;
        this.handle = undefined;
        this.openFiles.closed(this.cached);
        await handle?.close();
      });
    })();
    return this.closing;
  }

  /**
   * Closed, and everything written to the file fsynced by then: a restart may
   * take what it holds as durable without an fsync (see
   * storage/clean-shutdown.ts). False while open, or when the close's last
   * flush failed.
   */
  get closedDurably(): boolean {
    return this.closed && this.durableAtClose;
  }

  /** The handle, reopened if the open-file bound closed it while idle. */
  private async openHandle(): Promise<FileHandle> {
    this.refuseIfClosed();
    if (this.handle !== undefined) {
      this.openFiles.used(this.cached);
      return this.handle;
    }
    const handle = await this.fs.open(this.path, 'write');
    this.attach(handle);
    return handle;
  }

  /** After {@link close}, nothing opens the file again (a write after it fails, as on a closed descriptor). */
  private refuseIfClosed(): void {
    if (this.closed) throw new Error(`record file ${this.path} is closed`);
  }

  /** `handle` is now the file's: counted in the open-file bound as just used. */
  private attach(handle: FileHandle): void {
    this.handle = handle;
    this.openFiles.opened(this.cached);
  }

  /**
   * For the open-file bound: closes the handle unless something needs it. Kept
   * open while an operation runs, while bytes written through it are not
   * fsynced (an fsync must go through the descriptor they were written
   * through, or a write-back error could be missed), and after a failure
   * until it is recovered (the retry goes through the descriptor that failed).
   */
  private closeIfIdle(): boolean {
    const handle = this.handle;
    if (handle === undefined) return true;
    if (this.tasks.busy || this.unsynced.length > 0 || this.size !== this.durableSize || this.failed || this.stale) return false;
    this.handle = undefined;
    handle.close().catch(() => {});
    return true;
  }
}

/** A record as its header (length, crc32) and body. */
function encodeRecord(record: unknown): [Buffer, Buffer] {
  const body = encodeValue(record);
  const header = Buffer.allocUnsafe(HEADER_BYTES);
  header.writeUInt32BE(body.length, 0);
  header.writeUInt32BE(crc32(body), 4);
  return [header, Buffer.from(body.buffer, body.byteOffset, body.byteLength)];
}

/** Reads records until the end or the first that is truncated or fails its checksum. */
export function parseRecords(bytes: Uint8Array): { records: unknown[]; validBytes: number } {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records: unknown[] = [];
  let pos = 0;
  while (pos + HEADER_BYTES <= view.length) {
    const length = view.readUInt32BE(pos);
    const checksum = view.readUInt32BE(pos + 4);
    if (length > MAX_RECORD_BYTES || pos + HEADER_BYTES + length > view.length) break;
    const body = view.subarray(pos + HEADER_BYTES, pos + HEADER_BYTES + length);
    if (crc32(body) !== checksum) break;
    try {
      records.push(decodeValue(body, RECORD_SCAN_LIMITS));
    } catch {
      break;
    }
    pos += HEADER_BYTES + length;
  }
  return { records, validBytes: pos };
}
