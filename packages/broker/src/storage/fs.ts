/**
 * The file system as storage sees it: the few asynchronous operations an
 * append-only log needs, so that tests can put a fault-injecting double
 * (`FaultyFileSystem`, in packages/broker/test/support/faulty-fs.ts: test code,
 * not shipped) between the log and the disk. {@link nodeFileSystem} is the real
 * thing over `node:fs/promises`.
 *
 * Writes and reads are positional (`pwrite`/`pread`): a write that failed half
 * way is simply written again at the same position.
 */
import { constants, fdatasyncSync, writeSync } from 'node:fs';
import { mkdir, open, readdir, rename, stat, unlink, type FileHandle as NodeFileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * An open file.
 *
 * @internal Exported for tests and tools in this repository; not a stable API.
 */
export interface FileHandle {
  /** Writes all of `data` at byte `position`, extending the file as needed. */
  write(data: Uint8Array, position: number): Promise<void>;
  /**
   * {@link write}, done before returning (a `pwrite` into the page cache on
   * the calling thread: as durable as an asynchronous write, a killed process
   * loses nothing, without a hop through the thread pool). Optional: a file
   * system without it gets asynchronous writes only.
   */
  writeSync?(data: Uint8Array, position: number): void;
  /** Reads up to `into.length` bytes at `position` into `into`; returns how many were read (fewer only at the end of the file). */
  read(into: Uint8Array, position: number): Promise<number>;
  /** Current length of the file in bytes. */
  size(): Promise<number>;
  /** Cuts (or extends with zeros) the file to `length` bytes. */
  truncate(length: number): Promise<void>;
  /** Makes the file's data durable (`fdatasync`). */
  datasync(): Promise<void>;
  /**
   * {@link datasync}, done before returning (`fdatasync` on the calling
   * thread, without a hop through the thread pool). Optional: a file system
   * without it gets asynchronous fsyncs only. Callers bound its use with
   * {@link takeInlineSync}.
   */
  datasyncSync?(): void;
  close(): Promise<void>;
}

/**
 * How {@link FileSystem.open} opens a file.
 *
 * @internal Exported for tests and tools in this repository; not a stable API.
 */
export type OpenMode =
  /** Read only; the file must exist. */
  | 'read'
  /** Read and write, creating the file when missing (never truncating it). */
  | 'write';

/**
 * What {@link FileSystem.stat} reports.
 *
 * @internal Exported for tests and tools in this repository; not a stable API.
 */
export interface FileStat {
  size: number;
  isDirectory: boolean;
}

/**
 * The file operations storage uses. Errors are Node-style: an `Error` with a `code` such as `ENOENT`, `ENOSPC` or `EIO`.
 *
 * @internal Exported for tests and tools in this repository; not a stable API.
 */
export interface FileSystem {
  open(path: string, mode: OpenMode): Promise<FileHandle>;
  /** Names (not paths) of the entries of `dir`. */
  readdir(dir: string): Promise<string[]>;
  /** Creates `dir` and its missing parents; no error when it exists. */
  mkdir(dir: string): Promise<void>;
  /** Atomically replaces `to` by `from`. */
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** `undefined` when nothing exists at `path`. */
  stat(path: string): Promise<FileStat | undefined>;
  /** Makes the entries of `dir` durable (fsync of the directory): needed after creating, renaming or removing files in it. */
  syncDir(dir: string): Promise<void>;
  /**
   * The boot whose page cache holds what was written and not fsynced (storage/last-run.ts):
   * a test's file system that models a power cut says the machine restarted. Absent: the machine's (`/proc`).
   */
  bootId?(): Promise<string | undefined>;
}

/** The `code` of a Node-style error, if any. */
export function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null || !('code' in err)) return undefined;
  const code = (err as { code: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Replaces the file at `path` with `data`, atomically across a crash: writes
 * `tmp`, fdatasyncs it, renames it over `path`, fsyncs the directory. A
 * reader (or a restart) sees the old content or the new, never a mix. On
 * failure `tmp` is removed and the error thrown.
 */
export async function replaceFile(fs: FileSystem, path: string, tmp: string, data: Uint8Array): Promise<void> {
  try {
    const handle = await fs.open(tmp, 'write');
    try {
      await handle.truncate(0);
      await handle.write(data, 0);
      await handle.datasync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, path);
    await fs.syncDir(dirname(path));
  } catch (err) {
    await fs.unlink(tmp).catch(() => {});
    throw err;
  }
}

/** Reads a whole (small) file; `undefined` when it does not exist. */
export async function readWholeFile(fs: FileSystem, path: string, maxBytes: number): Promise<Uint8Array | undefined> {
  let handle: FileHandle;
  try {
    handle = await fs.open(path, 'read');
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const size = await handle.size();
    if (size > maxBytes) throw new RangeError(`${path}: ${size} bytes exceeds the limit of ${maxBytes}`);
    const bytes = new Uint8Array(size);
    let read = 0;
    while (read < size) {
      const n = await handle.read(bytes.subarray(read), read);
      if (n === 0) break;
      read += n;
    }
    return bytes.subarray(0, read);
  } finally {
    await handle.close();
  }
}

class NodeHandle implements FileHandle {
  constructor(private readonly handle: NodeFileHandle) {}

  async write(data: Uint8Array, position: number): Promise<void> {
    let done = 0;
    // pwrite may write less than asked; a bounded loop (each turn writes at least one byte or throws).
    while (done < data.length) {
      const { bytesWritten } = await this.handle.write(data, done, data.length - done, position + done);
      if (bytesWritten <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
      done += bytesWritten;
    }
  }

  writeSync(data: Uint8Array, position: number): void {
    let done = 0;
    while (done < data.length) {
      const written = writeSync(this.handle.fd, data, done, data.length - done, position + done);
      if (written <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
      done += written;
    }
  }

  async read(into: Uint8Array, position: number): Promise<number> {
    let done = 0;
    while (done < into.length) {
      const { bytesRead } = await this.handle.read(into, done, into.length - done, position + done);
      if (bytesRead === 0) break; // end of file
      done += bytesRead;
    }
    return done;
  }

  async size(): Promise<number> {
    return (await this.handle.stat()).size;
  }

  truncate(length: number): Promise<void> {
    return this.handle.truncate(length);
  }

  datasync(): Promise<void> {
    return this.handle.datasync();
  }

  datasyncSync(): void {
    fdatasyncSync(this.handle.fd);
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/** An fsync ran on the event loop's thread in this turn of the loop (see {@link takeInlineSync}). */
let inlineSyncThisTurn = false;

/**
 * Whether an fdatasync may run on the event loop's thread now
 * (`FileHandle.datasyncSync`); if so, the caller takes this turn's one.
 *
 * Through the thread pool an fdatasync of a few KiB took 340 µs at the
 * median on this 2-core machine alone and 560–720 µs with three processes
 * doing it, against 66–134 µs on the calling thread: the pool's wake-up and the
 * completion's way back cost more than the disk (a write + fdatasync per
 * acknowledgement sits on every `fsync: always` publish, on the leader and
 * on each follower). But an inline fsync blocks everything else the
 * process does, and fsyncs through the pool run in parallel: so at most
 * one per turn of the event loop runs inline (a broker with many
 * partitions fsyncing at once sends the others to the pool).
 */
export function takeInlineSync(): boolean {
  if (inlineSyncThisTurn) return false;
  inlineSyncThisTurn = true;
  setImmediate(() => {
    inlineSyncThisTurn = false;
  });
  return true;
}

/** The real file system, over `node:fs/promises`. */
export const nodeFileSystem: FileSystem = Object.freeze({
  async open(path: string, mode: OpenMode): Promise<FileHandle> {
    // Not O_APPEND: Linux ignores the position of pwrite on such files.
    const flags = mode === 'read' ? constants.O_RDONLY : constants.O_RDWR | constants.O_CREAT;
    return new NodeHandle(await open(path, flags, 0o644));
  },
  readdir(dir: string): Promise<string[]> {
    return readdir(dir);
  },
  async mkdir(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true });
  },
  rename(from: string, to: string): Promise<void> {
    return rename(from, to);
  },
  unlink(path: string): Promise<void> {
    return unlink(path);
  },
  async stat(path: string): Promise<FileStat | undefined> {
    try {
      const s = await stat(path);
      return { size: s.size, isDirectory: s.isDirectory() };
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return undefined;
      throw err;
    }
  },
  async syncDir(dir: string): Promise<void> {
    const handle = await open(dir, constants.O_RDONLY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
});
