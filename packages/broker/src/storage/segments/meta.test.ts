import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { nodeFileSystem } from '../fs.js';
import { FaultyFileSystem } from '../../../test/support/faulty-fs.js';
import { MetaStore, type IdempotenceSnapshot } from './meta.js';
import { TempDirs } from '../../../test/support/segments.js';

const temp = new TempDirs();
afterEach(() => temp.cleanup());

const TABLE: IdempotenceSnapshot = {
  offset: 120,
  producers: [
    { producerId: 'p-1', nextSeq: 7, recent: [110, 111, 115] },
    { producerId: '__proto__', nextSeq: 1, recent: [3] },
  ],
};

describe('MetaStore', () => {
  it('stores the hard state and the idempotence table, and reads them back after reopening', async () => {
    const dir = join(await temp.make(), 'p0');
    const store = await MetaStore.open(dir, nodeFileSystem);
    expect(await store.readHardState()).toBeUndefined();
    expect(await store.readIdempotence()).toBeUndefined();
    await store.writeHardState({ term: 3, vote: 'b2', commit: 40 });
    await store.writeHardState({ term: 4, vote: null, commit: 41 });
    await store.writeIdempotence(TABLE);
    const again = await MetaStore.open(dir, nodeFileSystem);
    expect(await again.readHardState()).toEqual({ term: 4, vote: null, commit: 41 });
    expect(await again.readIdempotence()).toEqual(TABLE);
    expect((await readdir(dir)).sort()).toEqual(['hardstate.meta', 'idempotence.meta']);
  });

  it('concurrent writes land in order, the last one wins', async () => {
    const store = await MetaStore.open(await temp.make(), nodeFileSystem);
    await Promise.all(Array.from({ length: 20 }, (_, term) => store.writeHardState({ term, vote: null, commit: 0 })));
    expect(await store.readHardState()).toMatchObject({ term: 19 });
  });

  it('a crash at any step of a write leaves the old value or the new one, never a mix', async () => {
    const dir = await temp.make();
    const fs = new FaultyFileSystem(nodeFileSystem);
    const store = await MetaStore.open(dir, fs);
    await store.writeHardState({ term: 1, vote: 'a', commit: 0 });
    for (const op of ['write', 'datasync', 'rename', 'syncDir'] as const) {
      fs.failNext(op, 'EIO');
      await expect(store.writeHardState({ term: 2, vote: 'b', commit: 0 })).rejects.toMatchObject({ code: 'STORAGE_IO' });
      await fs.crash();
      const reopened = await MetaStore.open(dir, fs);
      expect(await reopened.readHardState()).toEqual({ term: 1, vote: 'a', commit: 0 });
    }
    // A write that resolved survives the crash.
    await store.writeHardState({ term: 3, vote: 'c', commit: 0 });
    await fs.crash();
    expect(await (await MetaStore.open(dir, fs)).readHardState()).toEqual({ term: 3, vote: 'c', commit: 0 });
  });

  it('a damaged file is an error, never "no value": a node must not forget its vote', async () => {
    const dir = await temp.make();
    const store = await MetaStore.open(dir, nodeFileSystem);
    await store.writeHardState({ term: 5, vote: 'b3', commit: 9 });
    const path = join(dir, 'hardstate.meta');
    const bytes = await readFile(path);
    bytes[bytes.length - 2] = (bytes[bytes.length - 2] as number) ^ 1;
    await writeFile(path, bytes);
    await expect(store.readHardState()).rejects.toMatchObject({ code: 'STORAGE_CORRUPT' });
    await writeFile(path, bytes.subarray(0, 5));
    await expect(store.readHardState()).rejects.toMatchObject({ code: 'STORAGE_CORRUPT' });
    await store.write('hardstate', { term: 'x' });
    await expect(store.readHardState()).rejects.toMatchObject({ code: 'STORAGE_CORRUPT' });
  });

  it('removes temp files left by a crash, and rejects bad names', async () => {
    const dir = await temp.make();
    await writeFile(join(dir, 'hardstate.meta.tmp'), 'half');
    const store = await MetaStore.open(dir, nodeFileSystem);
    expect(await readdir(dir)).toEqual([]);
    expect(() => store.write('../escape', 1)).toThrow(RangeError);
    expect(() => store.write('', 1)).toThrow(RangeError);
  });
});
