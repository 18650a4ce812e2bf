/**
 * A {@link FileSystem} that counts the handles open and records their misuse:
 * a `.log` file (a segment or a Raft log) closed with writes not fsynced, a
 * handle used after its close or closed during an operation. Test code: it
 * lives outside `src/` so that it never ships in @relaymq/broker.
 */
import type { FileHandle, FileStat, FileSystem, OpenMode } from '../../src/storage/fs.js';

/** Counts the handles open, and records misuse: a `.log` file closed with writes not fsynced, a handle used after its close. */
export class CountingFileSystem implements FileSystem {
  openNow = 0;
  opened = 0;
  readonly misuse: string[] = [];
  /** `.log` handles (segments, Raft logs) open now, by path. */
  readonly segmentHandles = new Map<string, number>();

  constructor(private readonly inner: FileSystem) {}

  async open(path: string, mode: OpenMode): Promise<FileHandle> {
    const handle = await this.inner.open(path, mode);
    this.opened++;
    this.openNow++;
    if (path.endsWith('.log')) this.segmentHandles.set(path, (this.segmentHandles.get(path) ?? 0) + 1);
    return new CountingHandle(handle, path, this);
  }

  closedOne(path: string): void {
    this.openNow--;
    if (!path.endsWith('.log')) return;
    const n = (this.segmentHandles.get(path) ?? 0) - 1;
    if (n <= 0) this.segmentHandles.delete(path);
    else this.segmentHandles.set(path, n);
  }

  /** `.log` files open now (in the segment tests: segment files). */
  get segmentFilesOpen(): number {
    let n = 0;
    for (const count of this.segmentHandles.values()) n += count;
    return n;
  }

  readdir(dir: string): Promise<string[]> {
    return this.inner.readdir(dir);
  }
  mkdir(dir: string): Promise<void> {
    return this.inner.mkdir(dir);
  }
  rename(from: string, to: string): Promise<void> {
    return this.inner.rename(from, to);
  }
  unlink(path: string): Promise<void> {
    return this.inner.unlink(path);
  }
  stat(path: string): Promise<FileStat | undefined> {
    return this.inner.stat(path);
  }
  syncDir(dir: string): Promise<void> {
    return this.inner.syncDir(dir);
  }
}

class CountingHandle implements FileHandle {
  private closed = false;
  /** Written since the last datasync. */
  private dirty = false;
  /** Operations running now. */
  private busy = 0;

  constructor(
    private readonly inner: FileHandle,
    private readonly path: string,
    private readonly fs: CountingFileSystem,
  ) {}

  private async run<T>(name: string, op: () => Promise<T>): Promise<T> {
    if (this.closed) this.fs.misuse.push(`${name} after close: ${this.path}`);
    this.busy++;
    try {
      return await op();
    } finally {
      this.busy--;
    }
  }

  write(data: Uint8Array, position: number): Promise<void> {
    this.dirty = true;
    return this.run('write', () => this.inner.write(data, position));
  }
  read(into: Uint8Array, position: number): Promise<number> {
    return this.run('read', () => this.inner.read(into, position));
  }
  size(): Promise<number> {
    return this.run('size', () => this.inner.size());
  }
  truncate(length: number): Promise<void> {
    return this.run('truncate', () => this.inner.truncate(length));
  }
  async datasync(): Promise<void> {
    const dirty = this.dirty;
    this.dirty = false;
    try {
      await this.run('datasync', () => this.inner.datasync());
    } catch (err) {
      this.dirty ||= dirty;
      throw err;
    }
  }
  async close(): Promise<void> {
    if (this.closed) return;
    // Index files are written without an fsync by design (rebuilt when torn); a segment or a Raft log must not be.
    if (this.path.endsWith('.log') && this.dirty) this.fs.misuse.push(`closed with writes not fsynced: ${this.path}`);
    if (this.busy > 0) this.fs.misuse.push(`closed during an operation: ${this.path}`);
    this.closed = true;
    this.fs.closedOne(this.path);
    await this.inner.close();
  }
}
