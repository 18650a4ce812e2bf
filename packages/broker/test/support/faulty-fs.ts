/**
 * A fault-injecting {@link FileSystem} for tests: failed and torn writes, a
 * full disk, lost fsyncs and power loss. Test code: it lives outside
 * `src/` so that it never ships in @relaymq/broker.
 */
import { dirname } from 'node:path';
import { readBootId } from '../../src/storage/last-run.js';
import { readWholeFile, type FileHandle, type FileStat, type FileSystem, type OpenMode } from '../../src/storage/fs.js';

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
  /**
   * With `modelOverwrites`: bytes overwritten below `syncedSize` since the last fdatasync, with what they held
   * before (oldest first): a power cut restores them, as it would blocks never written back.
   */
  overwritten?: Array<{ position: number; previous: Uint8Array; seq: number }>;
}

/** Options of a {@link FaultyFileSystem}. */
export interface FaultyOptions {
  /**
   * Model overwrites of fsynced bytes: a power cut (or a failed fdatasync) restores what they held unless an
   * fdatasync covered them; and offer `writeSync` over a wrapped handle that can (the memory file system's
   * `writeNow`), so storage takes its synchronous path.
   */
  modelOverwrites?: boolean;
}

/** A handle of the memory file system, with its synchronous calls. */
interface SyncCapable {
  writeNow(data: Uint8Array, position: number): void;
  readNow(into: Uint8Array, position: number): number;
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

  /** Orders overwrites (see `Tracked.overwritten`) against the fdatasyncs that cover them. */
  private seq = 0;

  constructor(
    readonly inner: FileSystem,
    readonly options: FaultyOptions = {},
  ) {}

  /** @internal */
  nextSeq(): number {
    return ++this.seq;
  }

  /** Handles opened through this wrapper and not closed (nor lost to a {@link crash}). */
  get openHandles(): number {
    return this.handles.size;
  }

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

  /** Power cuts so far: each is a new boot of the machine this disk belongs to. */
  private boots = 0;

  /** The machine's boot, a new one after each {@link crash} (storage/last-run.ts). */
  async bootId(): Promise<string | undefined> {
    return `${(await readBootId(this.inner)) ?? 'unknown'}+${this.boots}`;
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
    this.boots++;
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
      const overwritten = file.overwritten ?? [];
      file.overwritten = undefined;
      if (overwritten.length === 0) continue;
      const handle = await this.inner.open(path, 'write');
      // The first `keep` bytes from the lowest one overwritten reached the disk (a torn write); the rest did not.
      const from = Math.min(...overwritten.map((o) => o.position));
      const kept = new Uint8Array(Math.max(0, Math.min(keep, file.size - from)));
      if (kept.length > 0) await handle.read(kept, from);
      for (const o of [...overwritten].reverse()) {
        const length = Math.min(o.previous.length, file.size - o.position);
        if (length > 0) await handle.write(o.previous.subarray(0, length), o.position);
      }
      if (kept.length > 0) await handle.write(kept, from);
      await handle.close();
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
  ) {
    if (owner.options.modelOverwrites === true && typeof (handle as unknown as Partial<SyncCapable>).writeNow === 'function') {
      this.writeSync = (data, position) => this.writeNow(data, position);
    }
  }

  private alive(syscall: string): void {
    if (this.dead) throw fsError('EBADF', syscall, this.path);
  }

  async write(data: Uint8Array, position: number): Promise<void> {
    this.alive('write');
    await this.owner.gate('write');
    this.alive('write');
    const { bytes, error } = this.owner.beforeWrite(this.path, this.file, data, position);
    if (bytes > 0) {
      if (this.owner.options.modelOverwrites === true) {
        const previous = new Uint8Array(Math.max(0, Math.min(position + bytes, this.file.syncedSize) - position));
        if (previous.length > 0) {
          await this.handle.read(previous, position);
          (this.file.overwritten ??= []).push({ position, previous, seq: this.owner.nextSeq() });
        }
      }
      await this.handle.write(data.subarray(0, bytes), position);
      this.file.size = Math.max(this.file.size, position + bytes);
    }
    if (error !== undefined) throw error;
  }

  /** Offered with `modelOverwrites` over a handle that can (see {@link FaultyOptions}). */
  readonly writeSync?: (data: Uint8Array, position: number) => void;

  private writeNow(data: Uint8Array, position: number): void {
    this.alive('write');
    const inner = this.handle as unknown as SyncCapable;
    const { bytes, error } = this.owner.beforeWrite(this.path, this.file, data, position);
    if (bytes > 0) {
      const previous = new Uint8Array(Math.max(0, Math.min(position + bytes, this.file.syncedSize) - position));
      if (previous.length > 0) {
        inner.readNow(previous, position);
        (this.file.overwritten ??= []).push({ position, previous, seq: this.owner.nextSeq() });
      }
      inner.writeNow(data.subarray(0, bytes), position);
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
    if (this.file.overwritten !== undefined) {
      // Cut bytes are gone whatever they held; the restores below the cut stay.
      this.file.overwritten = this.file.overwritten
        .filter((o) => o.position < length)
        .map((o) => (o.position + o.previous.length <= length ? o : { ...o, previous: o.previous.subarray(0, length - o.position) }));
    }
    this.file.size = length;
    this.file.syncedSize = Math.min(this.file.syncedSize, length);
  }

  async datasync(): Promise<void> {
    this.alive('fdatasync');
    // What was written before the call; writes made while it runs are not counted as synced (the next fsync covers them).
    const covered = this.file.size;
    const coveredSeq = this.owner.nextSeq();
    await this.owner.gate('datasync');
    this.alive('fdatasync');
    try {
      this.owner.failIfRuled('datasync', this.path);
    } catch (err) {
      // The kernel dropped the dirty pages: what was not synced reads back as zeros.
      const lost = this.file.size - this.file.syncedSize;
      if (lost > 0) await this.handle.write(new Uint8Array(lost), this.file.syncedSize);
      // Overwritten pages dropped too: they read back as the disk holds them.
      const overwritten = this.file.overwritten ?? [];
      this.file.overwritten = undefined;
      for (const o of [...overwritten].reverse()) await this.handle.write(o.previous, o.position);
      throw err;
    }
    await this.handle.datasync();
    if (this.file.overwritten !== undefined) this.file.overwritten = this.file.overwritten.filter((o) => o.seq > coveredSeq);
    this.file.syncedSize = Math.max(this.file.syncedSize, Math.min(covered, this.file.size));
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
