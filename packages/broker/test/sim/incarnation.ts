/**
 * One incarnation of a simulated node's process over its disk: the file
 * system it writes through and the timers it arms die with it, so nothing a
 * crashed process still runs reaches the disk (shared by the disk profiles).
 */
import type { FileHandle, FileStat, FileSystem, OpenMode } from '../../src/storage/fs.js';
import type { Timers } from '../../src/storage/segments/index.js';

/** The file system of one incarnation of a node: once it crashed, nothing it still runs reaches the disk. */
export class Incarnation implements FileSystem {
  alive = true;
  constructor(private readonly disk: FileSystem) {}
  private check(): void {
    if (!this.alive) throw Object.assign(new Error('EIO: the process crashed'), { code: 'EIO' });
  }
  async open(path: string, mode: OpenMode): Promise<FileHandle> {
    this.check();
    const handle = await this.disk.open(path, mode);
    const guard = <A extends unknown[], R>(f: (...args: A) => Promise<R>) => async (...args: A): Promise<R> => {
      this.check();
      return f(...args);
    };
    return {
      write: guard((data: Uint8Array, position: number) => handle.write(data, position)),
      read: guard((into: Uint8Array, position: number) => handle.read(into, position)),
      size: guard(() => handle.size()),
      truncate: guard((length: number) => handle.truncate(length)),
      datasync: guard(() => handle.datasync()),
      close: () => handle.close().catch(() => {}),
    };
  }
  async readdir(dir: string): Promise<string[]> {
    this.check();
    return this.disk.readdir(dir);
  }
  async mkdir(dir: string): Promise<void> {
    this.check();
    return this.disk.mkdir(dir);
  }
  async rename(from: string, to: string): Promise<void> {
    this.check();
    return this.disk.rename(from, to);
  }
  async unlink(path: string): Promise<void> {
    this.check();
    return this.disk.unlink(path);
  }
  async stat(path: string): Promise<FileStat | undefined> {
    this.check();
    return this.disk.stat(path);
  }
  async syncDir(dir: string): Promise<void> {
    this.check();
    return this.disk.syncDir(dir);
  }
}

/** Timers of one incarnation: a callback due after its process died never runs (a dead process fsyncs nothing). */
export function incarnationTimers(incarnation: Incarnation, timers: Timers): Timers {
  return {
    setTimeout: (callback, delayMs) =>
      timers.setTimeout(() => {
        if (incarnation.alive) callback();
      }, delayMs),
    clearTimeout: (handle) => timers.clearTimeout(handle),
  };
}
