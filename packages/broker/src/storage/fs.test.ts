import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { errorCode, nodeFileSystem, readWholeFile } from './fs.js';
import { rejection } from '../../../../test/support/rejection.js';
import { tempDirs } from '../../../../test/support/temp-dirs.js';

const tempDir = tempDirs('relaymq-fs-');

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values);

describe('nodeFileSystem', () => {
  it('writes and reads at positions, truncates, lists, renames and removes', async () => {
    const dir = await tempDir();
    const fs = nodeFileSystem;
    await fs.mkdir(join(dir, 'a', 'b'));
    const path = join(dir, 'a', 'b', 'f');
    const handle = await fs.open(path, 'write');
    await handle.write(bytes(1, 2, 3, 4), 0);
    await handle.write(bytes(9, 9), 2); // positional, not appending
    await handle.datasync();
    expect(await handle.size()).toBe(4);
    const into = new Uint8Array(8);
    expect(await handle.read(into, 1)).toBe(3);
    expect([...into.subarray(0, 3)]).toEqual([2, 9, 9]);
    await handle.truncate(2);
    await handle.close();
    expect([...(await readFile(path))]).toEqual([1, 2]);
    expect(await fs.stat(path)).toEqual({ size: 2, isDirectory: false });
    expect(await fs.stat(join(dir, 'missing'))).toBeUndefined();
    await fs.rename(path, join(dir, 'a', 'b', 'g'));
    expect(await fs.readdir(join(dir, 'a', 'b'))).toEqual(['g']);
    await fs.syncDir(join(dir, 'a', 'b'));
    await fs.unlink(join(dir, 'a', 'b', 'g'));
    expect(await fs.readdir(join(dir, 'a', 'b'))).toEqual([]);
    expect(errorCode(await rejection(fs.open(path, 'read'), Error))).toBe('ENOENT');
  });

  it('reopening for write keeps the content', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'f'), bytes(5, 6, 7));
    const handle = await nodeFileSystem.open(join(dir, 'f'), 'write');
    expect(await handle.size()).toBe(3);
    await handle.close();
    expect([...((await readWholeFile(nodeFileSystem, join(dir, 'f'), 100)) ?? [])]).toEqual([5, 6, 7]);
    expect(await readWholeFile(nodeFileSystem, join(dir, 'none'), 100)).toBeUndefined();
  });
});
