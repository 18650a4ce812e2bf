/**
 * The file system as storage sees it: the few asynchronous operations an
 * append-only log needs, so that tests can put a fault-injecting double
 * ({@link FaultyFileSystem}) between the log and the disk. {@link nodeFileSystem}
 * is the real thing over `node:fs/promises`.
 *
 * Writes and reads are positional (`pwrite`/`pread`): a write that failed half
 * way is simply written again at the same position.
 */
import { constants } from 'node:fs';
import { mkdir, open, readdir, rename, stat, unlink, type FileHandle as NodeFileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

/** An open file. */
export interface FileHandle {
  /** Writes all of `data` at byte `position`, extending the file as needed. */
  write(data: Uint8Array, position: number): Promise<void>;
  /** Reads up to `into.length` bytes at `position` into `into`; returns how many were read (fewer only at the end of the file). */
  read(into: Uint8Array, position: number): Promise<number>;
  /** Current length of the file in bytes. */
  size(): Promise<number>;
  /** Cuts (or extends with zeros) the file to `length` bytes. */
  truncate(length: number): Promise<void>;
  /** Makes the file's data durable (`fdatasync`). */
  datasync(): Promise<void>;
  close(): Promise<void>;
}

/** How {@link FileSystem.open} opens a file. */
export type OpenMode =
  /** Read only; the file must exist. */
  | 'read'
  /** Read and write, creating the file when missing (never truncating it). */
  | 'write';

/** What {@link FileSystem.stat} reports. */
export interface FileStat {
  size: number;
  isDirectory: boolean;
}

/** The file operations storage uses. Errors are Node-style: an `Error` with a `code` such as `ENOENT`, `ENOSPC` or `EIO`. */
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

  close(): Promise<void> {
    return this.handle.close();
  }
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

// ---- fault injection -----------------------------------------------------------

/** Operations {@link FaultyFileSystem} can make fail. */
export type FaultOp = 'open' | 'write' | 'read' | 'datasync' | 'truncate' | 'rename' | 'unlink' | 'syncDir';

/** An `Error` shaped like the ones `node:fs` throws. */
export function fsError(code: string, syscall: string, path?: string): Error & { code: string; syscall: string } {
  return Object.assign(new Error(`${code}: injected fault, ${syscall}${path === undefined ? '' : ` '${path}'`}`), {
    code,
    syscall,
    ...(path === undefined ? {} : { path }),
  });
}

/** What the crash model knows of one file. */
interface Tracked {
  /** Length of the file in the wrapped file system now. */
  size: number;
  /** Length that survives a crash: set by `datasync`, lowered by `truncate`. */
  syncedSize: number;
  /** Created (or renamed here) since its directory was last synced: a crash removes it. */
  entryDurable: boolean;
  /** For a rename whose directory was not synced yet: how to undo it at a crash. */
  renamedFrom?: { path: string; previous: Uint8Array | undefined };
}

/** How {@link FaultyFileSystem.crash} treats bytes written but not fsynced. */
export interface CrashOptions {
  /**
   * Bytes of each file's unsynced tail that did reach the disk (page cache
   * written back in part): a torn write. Default 0: all unsynced bytes are lost.
   */
  keepUnsyncedBytes?: number;
}

interface Rule {
  code: string;
  remaining: number;
}

/**
 * A test double over another {@link FileSystem} that injects faults:
 *
 * - `failNext(op, code, count)`: the next `count` calls of `op` throw `code` (ENOSPC, EIO, ...)
 *   without doing anything; `count` may be `Infinity` until {@link heal}.
 * - `tearNextWrite(keepBytes)`: the next write writes only its first `keepBytes` bytes, then throws EIO.
 * - `setCapacity(bytes)`: a disk of that many bytes (counting files this wrapper wrote): a write
 *   that does not fit writes what fits, then throws ENOSPC; space returns when files shrink or
 *   the capacity is raised.
 * - A failed `datasync` models Linux after a writeback error: the unsynced bytes are gone
 *   (they read back as zeros), so retrying the fsync alone would make garbage durable.
 * - `crash()` models a power loss: every open handle dies, each file keeps only what was
 *   fsynced (plus `keepUnsyncedBytes` of its unsynced tail), files created since their
 *   directory was last synced disappear, and renames not followed by a directory sync are undone.
 *   Truncations and unlinks are treated as immediately durable.
 */
export class FaultyFileSystem implements FileSystem {
  private readonly rules = new Map<FaultOp, Rule>();
  private readonly gates = new Map<FaultOp, { reached: () => void; released: Promise<void> }>();
  private tear: number | undefined;
  private capacityBytes: number | undefined;
  private readonly files = new Map<string, Tracked>();
  private readonly handles = new Set<FaultyHandle>();
  /** Counters of calls that reached the wrapped file system, by operation. */
  readonly calls: Record<FaultOp, number> = {
    open: 0,
    write: 0,
    read: 0,
    datasync: 0,
    truncate: 0,
    rename: 0,
    unlink: 0,
    syncDir: 0,
  };

  constructor(readonly inner: FileSystem) {}

  /** The next `count` calls of `op` fail with `code` (e.g. `ENOSPC`, `EIO`). */
  failNext(op: FaultOp, code = 'EIO', count = 1): void {
    this.rules.set(op, { code, remaining: count });
  }

  /** The next write writes only its first `keepBytes` bytes, then throws `EIO`. */
  tearNextWrite(keepBytes: number): void {
    this.tear = keepBytes;
  }

  /** Limits the bytes of files written through this wrapper; `undefined` lifts the limit. */
  setCapacity(bytes: number | undefined): void {
    this.capacityBytes = bytes;
  }

  /**
   * The next call of `op` (`write` or `datasync`) waits until `release()`;
   * `reached` resolves once it is waiting. For tests of what happens while an
   * fsync is in flight.
   */
  pauseNext(op: 'write' | 'datasync'): { reached: Promise<void>; release: () => void } {
    let reached!: () => void;
    let release!: () => void;
    const reachedPromise = new Promise<void>((resolve) => (reached = resolve));
    const released = new Promise<void>((resolve) => (release = resolve));
    this.gates.set(op, { reached, released });
    return { reached: reachedPromise, release };
  }

  /** @internal Waits at a gate set by {@link pauseNext}. */
  async gate(op: FaultOp): Promise<void> {
    const gate = this.gates.get(op);
    if (gate === undefined) return;
    this.gates.delete(op);
    gate.reached();
    await gate.released;
  }

  /** Stops every injected fault (failures, tears, capacity). */
  heal(): void {
    this.rules.clear();
    this.tear = undefined;
    this.capacityBytes = undefined;
  }

  /** Bytes of the files this wrapper has seen. */
  get usedBytes(): number {
    let total = 0;
    for (const file of this.files.values()) total += file.size;
    return total;
  }

  /** Throws if a rule says `op` fails now. */
  private check(op: FaultOp, path?: string): void {
    const rule = this.rules.get(op);
    if (rule === undefined || rule.remaining <= 0) return;
    rule.remaining--;
    if (rule.remaining <= 0) this.rules.delete(op);
    throw fsError(rule.code, op, path);
  }

  private async track(path: string, handle: FileHandle, existed: boolean): Promise<Tracked> {
    let file = this.files.get(path);
    if (file === undefined) {
      const size = await handle.size();
      file = { size, syncedSize: existed ? size : 0, entryDurable: existed };
      this.files.set(path, file);
    }
    return file;
  }

  async open(path: string, mode: OpenMode): Promise<FileHandle> {
    this.check('open', path);
    this.calls.open++;
    const existed = (await this.inner.stat(path)) !== undefined;
    const handle = await this.inner.open(path, mode);
    const wrapped = new FaultyHandle(this, path, handle, await this.track(path, handle, existed));
    this.handles.add(wrapped);
    return wrapped;
  }

  readdir(dir: string): Promise<string[]> {
    return this.inner.readdir(dir);
  }

  mkdir(dir: string): Promise<void> {
    return this.inner.mkdir(dir);
  }

  async rename(from: string, to: string): Promise<void> {
    this.check('rename', from);
    this.calls.rename++;
    const previous = await readWholeFile(this.inner, to, Number.MAX_SAFE_INTEGER);
    await this.inner.rename(from, to);
    const moved = this.files.get(from);
    this.files.delete(from);
    const size = (await this.inner.stat(to))?.size ?? 0;
    this.files.set(to, {
      size,
      syncedSize: moved?.syncedSize ?? size,
      entryDurable: false,
      renamedFrom: { path: from, previous },
    });
    for (const handle of this.handles) if (handle.path === from) handle.path = to;
  }

  async unlink(path: string): Promise<void> {
    this.check('unlink', path);
    this.calls.unlink++;
    await this.inner.unlink(path);
    this.files.delete(path);
  }

  stat(path: string): Promise<FileStat | undefined> {
    return this.inner.stat(path);
  }

  async syncDir(dir: string): Promise<void> {
    this.check('syncDir', dir);
    this.calls.syncDir++;
    await this.inner.syncDir(dir);
    for (const [path, file] of this.files) {
      if (dirname(path) === dir) {
        file.entryDurable = true;
        delete file.renamedFrom;
      }
    }
  }

  /**
   * A power loss. Open handles become unusable (as if the process died), then
   * the files are cut back to what the disk would hold. The wrapper can be
   * used again afterwards, as the restarted process would.
   */
  async crash(options: CrashOptions = {}): Promise<void> {
    const keep = options.keepUnsyncedBytes ?? 0;
    for (const handle of this.handles) await handle.kill();
    this.handles.clear();
    // Undo renames first (they restore the content `to` had), then cut files.
    for (const [path, file] of [...this.files]) {
      if (file.renamedFrom === undefined) continue;
      const { path: from, previous } = file.renamedFrom;
      await this.inner.rename(path, from);
      this.files.delete(path);
      this.files.set(from, { ...file, entryDurable: true, renamedFrom: undefined });
      if (previous !== undefined) {
        const restored = await this.inner.open(path, 'write');
        await restored.truncate(0);
        await restored.write(previous, 0);
        await restored.close();
        this.files.set(path, { size: previous.length, syncedSize: previous.length, entryDurable: true });
      }
    }
    for (const [path, file] of [...this.files]) {
      if (!file.entryDurable) {
        await this.inner.unlink(path).catch(() => {});
        this.files.delete(path);
        continue;
      }
      const survive = Math.min(file.size, file.syncedSize + keep);
      if (survive < file.size) {
        const handle = await this.inner.open(path, 'write');
        await handle.truncate(survive);
        await handle.close();
        file.size = survive;
      }
      file.syncedSize = file.size;
    }
  }

  // ---- used by FaultyHandle ----

  /** @internal */
  beforeWrite(path: string, file: Tracked, data: Uint8Array, position: number): { bytes: number; error?: Error } {
    this.check('write', path);
    this.calls.write++;
    let bytes = data.length;
    let error: Error | undefined;
    if (this.tear !== undefined) {
      bytes = Math.min(bytes, this.tear);
      this.tear = undefined;
      error = fsError('EIO', 'write', path);
    }
    if (this.capacityBytes !== undefined) {
      const growth = Math.max(0, position + bytes - file.size);
      const free = Math.max(0, this.capacityBytes - this.usedBytes);
      if (growth > free) {
        bytes = Math.max(0, file.size + free - position);
        bytes = Math.min(bytes, data.length);
        error = fsError('ENOSPC', 'write', path);
      }
    }
    return error === undefined ? { bytes } : { bytes, error };
  }

  /** @internal */
  failIfRuled(op: FaultOp, path: string): void {
    this.check(op, path);
    this.calls[op]++;
  }

  /** @internal */
  forget(handle: FaultyHandle): void {
    this.handles.delete(handle);
  }
}

class FaultyHandle implements FileHandle {
  private dead = false;

  constructor(
    private readonly owner: FaultyFileSystem,
    public path: string,
    private readonly handle: FileHandle,
    private readonly file: Tracked,
  ) {}

  private alive(syscall: string): void {
    if (this.dead) throw fsError('EBADF', syscall, this.path);
  }

  async write(data: Uint8Array, position: number): Promise<void> {
    this.alive('write');
    await this.owner.gate('write');
    this.alive('write');
    const { bytes, error } = this.owner.beforeWrite(this.path, this.file, data, position);
    if (bytes > 0) {
      await this.handle.write(data.subarray(0, bytes), position);
      this.file.size = Math.max(this.file.size, position + bytes);
    }
    if (error !== undefined) throw error;
  }

  async read(into: Uint8Array, position: number): Promise<number> {
    this.alive('read');
    this.owner.failIfRuled('read', this.path);
    return this.handle.read(into, position);
  }

  async size(): Promise<number> {
    this.alive('fstat');
    return this.handle.size();
  }

  async truncate(length: number): Promise<void> {
    this.alive('ftruncate');
    this.owner.failIfRuled('truncate', this.path);
    await this.handle.truncate(length);
    this.file.size = length;
    this.file.syncedSize = Math.min(this.file.syncedSize, length);
  }

  async datasync(): Promise<void> {
    this.alive('fdatasync');
    await this.owner.gate('datasync');
    this.alive('fdatasync');
    try {
      this.owner.failIfRuled('datasync', this.path);
    } catch (err) {
      // The kernel dropped the dirty pages: what was not synced reads back as zeros.
      const lost = this.file.size - this.file.syncedSize;
      if (lost > 0) await this.handle.write(new Uint8Array(lost), this.file.syncedSize);
      throw err;
    }
    await this.handle.datasync();
    this.file.syncedSize = this.file.size;
  }

  async close(): Promise<void> {
    if (this.dead) return;
    this.dead = true;
    this.owner.forget(this);
    await this.handle.close();
  }

  /** @internal The process died: the descriptor is gone. */
  async kill(): Promise<void> {
    if (this.dead) return;
    this.dead = true;
    await this.handle.close();
  }
}
