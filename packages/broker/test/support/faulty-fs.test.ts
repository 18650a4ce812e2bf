/** The fault-injecting file system models what it claims: failed and torn writes, a full disk, lost fsyncs, power loss. */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { errorCode, nodeFileSystem } from '../../src/storage/fs.js';
import { FaultyFileSystem } from './faulty-fs.js';
import { MemoryFileSystem } from './memory-fs.js';
import { rejection } from '../../../../test/support/rejection.js';
import { tempDirs } from '../../../../test/support/temp-dirs.js';

const tempDir = tempDirs('relaymq-fs-');

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values);

describe('FaultyFileSystem', () => {
  it('fails the next N calls of an operation with the given code, then works', async () => {
    const dir = await tempDir();
    const fs = new FaultyFileSystem(nodeFileSystem);
    const handle = await fs.open(join(dir, 'f'), 'write');
    fs.failNext('write', 'ENOSPC', 2);
    expect(errorCode(await rejection(handle.write(bytes(1), 0), Error))).toBe('ENOSPC');
    expect(errorCode(await rejection(handle.write(bytes(1), 0), Error))).toBe('ENOSPC');
    await handle.write(bytes(1), 0);
    fs.failNext('datasync', 'EIO');
    expect(errorCode(await rejection(handle.datasync(), Error))).toBe('EIO');
    await handle.close();
  });

  it('tears a write: only a prefix reaches the file', async () => {
    const dir = await tempDir();
    const fs = new FaultyFileSystem(nodeFileSystem);
    const handle = await fs.open(join(dir, 'f'), 'write');
    fs.tearNextWrite(2);
    expect(errorCode(await rejection(handle.write(bytes(1, 2, 3, 4), 0), Error))).toBe('EIO');
    await handle.close();
    expect([...(await readFile(join(dir, 'f')))]).toEqual([1, 2]);
  });

  it('models a full disk: a write that does not fit writes what fits, then ENOSPC until space returns', async () => {
    const dir = await tempDir();
    const fs = new FaultyFileSystem(nodeFileSystem);
    fs.setCapacity(5);
    const a = await fs.open(join(dir, 'a'), 'write');
    await a.write(bytes(1, 2, 3), 0);
    const b = await fs.open(join(dir, 'b'), 'write');
    expect(errorCode(await rejection(b.write(bytes(4, 5, 6), 0), Error))).toBe('ENOSPC');
    expect(fs.usedBytes).toBe(5);
    await a.truncate(0); // space returns
    await b.write(bytes(4, 5, 6), 0);
    await a.close();
    await b.close();
    expect([...(await readFile(join(dir, 'b')))]).toEqual([4, 5, 6]);
  });

  it('a failed datasync loses the unsynced bytes (they read back as zeros)', async () => {
    const dir = await tempDir();
    const fs = new FaultyFileSystem(nodeFileSystem);
    const handle = await fs.open(join(dir, 'f'), 'write');
    await handle.write(bytes(1, 2), 0);
    await handle.datasync();
    await handle.write(bytes(3, 4), 2);
    fs.failNext('datasync', 'EIO');
    await rejection(handle.datasync(), Error);
    await handle.close();
    expect([...(await readFile(join(dir, 'f')))]).toEqual([1, 2, 0, 0]);
  });

  it('a crash keeps what was fsynced, drops the rest (or keeps a torn prefix), and kills open handles', async () => {
    const dir = await tempDir();
    const fs = new FaultyFileSystem(nodeFileSystem);
    const handle = await fs.open(join(dir, 'f'), 'write');
    await fs.syncDir(dir);
    await handle.write(bytes(1, 2, 3), 0);
    await handle.datasync();
    await handle.write(bytes(4, 5, 6), 3);
    await fs.crash({ keepUnsyncedBytes: 1 });
    expect(errorCode(await rejection(handle.write(bytes(7), 0), Error))).toBe('EBADF');
    expect([...(await readFile(join(dir, 'f')))]).toEqual([1, 2, 3, 4]);
    const again = await fs.open(join(dir, 'f'), 'write');
    await again.write(bytes(9), 4);
    await fs.crash();
    expect([...(await readFile(join(dir, 'f')))]).toEqual([1, 2, 3, 4]);
  });

  it('a crash removes files whose directory entry was never synced, and undoes unsynced renames', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'target'), bytes(1));
    const fs = new FaultyFileSystem(nodeFileSystem);
    const fresh = await fs.open(join(dir, 'fresh'), 'write');
    await fresh.write(bytes(1), 0);
    await fresh.datasync(); // data synced, but the entry is not
    const tmp = await fs.open(join(dir, 'tmp'), 'write');
    await tmp.write(bytes(2), 0);
    await tmp.datasync();
    await fs.rename(join(dir, 'tmp'), join(dir, 'target'));
    await fs.crash();
    const names = (await nodeFileSystem.readdir(dir)).sort();
    expect(names).toEqual(['target', 'tmp']);
    expect([...(await readFile(join(dir, 'target')))]).toEqual([1]);
    // With the directory synced, the rename survives.
    await fs.rename(join(dir, 'tmp'), join(dir, 'target'));
    await fs.syncDir(dir);
    await fs.crash();
    expect(await nodeFileSystem.readdir(dir)).toEqual(['target']);
    expect([...(await readFile(join(dir, 'target')))]).toEqual([2]);
  });

  it('heal stops every injected fault', async () => {
    const dir = await tempDir();
    const fs = new FaultyFileSystem(nodeFileSystem);
    const handle = await fs.open(join(dir, 'f'), 'write');
    fs.failNext('write', 'EIO', Number.POSITIVE_INFINITY);
    fs.setCapacity(0);
    await rejection(handle.write(bytes(1), 0), Error);
    fs.heal();
    await handle.write(bytes(1), 0);
    await handle.close();
    expect(fs.calls.write).toBe(1);
  });
});

describe('FaultyFileSystem with modelOverwrites', () => {
  it('offers writeSync over the memory file system; a power cut restores fsynced bytes overwritten since, except a torn prefix; an fdatasync makes overwrites durable', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem(), { modelOverwrites: true });
    await fs.mkdir('/d');
    const handle = await fs.open('/d/f', 'write');
    await fs.syncDir('/d');
    expect(handle.writeSync).toBeDefined();
    handle.writeSync?.(new Uint8Array(8), 0); // bytes a later write overwrites
    await handle.datasync();
    handle.writeSync?.(bytes(1, 2, 3), 0);
    await handle.write(bytes(4, 5), 3);
    await fs.crash({ keepUnsyncedBytes: 2 });
    const read = async (): Promise<number[]> => {
      const h = await fs.open('/d/f', 'write');
      const into = new Uint8Array(8);
      const n = await h.read(into, 0);
      await h.close();
      return [...into.subarray(0, n)];
    };
    expect(await read()).toEqual([1, 2, 0, 0, 0, 0, 0, 0]);
    const again = await fs.open('/d/f', 'write');
    again.writeSync?.(bytes(9, 9), 4);
    await again.datasync();
    await fs.crash();
    expect(await read()).toEqual([1, 2, 0, 0, 9, 9, 0, 0]);
  });

  it('a failed fdatasync drops overwritten pages: they read back as before', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem(), { modelOverwrites: true });
    await fs.mkdir('/d');
    const handle = await fs.open('/d/f', 'write');
    await handle.write(bytes(7, 7, 7, 7), 0);
    await handle.datasync();
    await handle.write(bytes(1, 1), 1);
    fs.failNext('datasync', 'EIO');
    expect(errorCode(await rejection(handle.datasync(), Error))).toBe('EIO');
    const into = new Uint8Array(4);
    await handle.read(into, 0);
    expect([...into]).toEqual([7, 7, 7, 7]);
    await handle.close();
  });
});
