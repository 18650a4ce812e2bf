/**
 * An in-memory {@link FileSystem} for storage tests that need many files and
 * no disk: POSIX enough for the segment log (an unlinked file stays readable
 * through the handles open on it; a closed handle fails with EBADF). Nothing
 * is ever lost: it models no crash (see `FaultyFileSystem` for that). Test
 * code, kept out of `src/` so it never ships.
 */
import { posix } from 'node:path';
import type { FileHandle, FileStat, FileSystem, OpenMode } from '../../src/storage/fs.js';
import { fsError } from './faulty-fs.js';

/** A file's content, shared by every handle open on it (an inode). */
class MemoryFile {
  bytes = new Uint8Array(0);
  size = 0;

  ensure(length: number): void {
    if (length <= this.bytes.length) return;
    const grown = new Uint8Array(Math.max(length, this.bytes.length * 2, 64));
    grown.set(this.bytes.subarray(0, this.size));
    this.bytes = grown;
  }
}

class MemoryHandle implements FileHandle {
  private closed = false;

  constructor(
    private readonly file: MemoryFile,
    private readonly path: string,
    private readonly writable: boolean,
  ) {}

  private check(op: string, write = false): void {
    if (this.closed) throw fsError('EBADF', op, this.path);
    if (write && !this.writable) throw fsError('EBADF', op, this.path);
  }

  async write(data: Uint8Array, position: number): Promise<void> {
    this.writeNow(data, position);
  }

  /** `write`, synchronously: not `FileHandle.writeSync` (storage would use it); a wrapper may offer it (FaultyFileSystem `modelOverwrites`). */
  writeNow(data: Uint8Array, position: number): void {
    this.check('write', true);
    const file = this.file;
    file.ensure(position + data.length);
    if (position > file.size) file.bytes.fill(0, file.size, position);
    file.bytes.set(data, position);
    file.size = Math.max(file.size, position + data.length);
  }

  async read(into: Uint8Array, position: number): Promise<number> {
    return this.readNow(into, position);
  }

  /** `read`, synchronously (see {@link writeNow}). */
  readNow(into: Uint8Array, position: number): number {
    this.check('read');
    const n = Math.max(0, Math.min(into.length, this.file.size - position));
    into.set(this.file.bytes.subarray(position, position + n));
    return n;
  }

  async size(): Promise<number> {
    this.check('fstat');
    return this.file.size;
  }

  async truncate(length: number): Promise<void> {
    this.check('ftruncate', true);
    const file = this.file;
    file.ensure(length);
    if (length > file.size) file.bytes.fill(0, file.size, length);
    file.size = length;
  }

  async datasync(): Promise<void> {
    this.check('fdatasync');
  }

  async close(): Promise<void> {
    this.check('close');
    this.closed = true;
  }
}

export class MemoryFileSystem implements FileSystem {
  private readonly files = new Map<string, MemoryFile>();
  private readonly dirs = new Set<string>(['/']);

  async open(path: string, mode: OpenMode): Promise<FileHandle> {
    let file = this.files.get(path);
    if (file === undefined) {
      if (mode === 'read' || !this.dirs.has(posix.dirname(path))) throw fsError('ENOENT', 'open', path);
      if (this.dirs.has(path)) throw fsError('EISDIR', 'open', path);
      file = new MemoryFile();
      this.files.set(path, file);
    }
    return new MemoryHandle(file, path, mode === 'write');
  }

  async readdir(dir: string): Promise<string[]> {
    if (!this.dirs.has(dir)) throw fsError('ENOENT', 'scandir', dir);
    const names: string[] = [];
    for (const path of [...this.files.keys(), ...this.dirs]) if (path !== dir && posix.dirname(path) === dir) names.push(posix.basename(path));
    return names;
  }

  async mkdir(dir: string): Promise<void> {
    for (let d = dir; !this.dirs.has(d); d = posix.dirname(d)) this.dirs.add(d);
  }

  async rename(from: string, to: string): Promise<void> {
    const file = this.files.get(from);
    if (file === undefined) throw fsError('ENOENT', 'rename', from);
    if (!this.dirs.has(posix.dirname(to))) throw fsError('ENOENT', 'rename', to);
    this.files.delete(from);
    this.files.set(to, file);
  }

  async unlink(path: string): Promise<void> {
    if (!this.files.delete(path)) throw fsError('ENOENT', 'unlink', path);
  }

  async stat(path: string): Promise<FileStat | undefined> {
    if (this.dirs.has(path)) return { size: 0, isDirectory: true };
    const file = this.files.get(path);
    return file === undefined ? undefined : { size: file.size, isDirectory: false };
  }

  async syncDir(dir: string): Promise<void> {
    if (!this.dirs.has(dir)) throw fsError('ENOENT', 'fsync', dir);
  }
}
