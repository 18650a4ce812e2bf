import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkDataLayout } from './data-layout.js';
import { LogStorageError } from './segments/errors.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});
async function dataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'relaymq-layout-'));
  dirs.push(dir);
  return dir;
}

describe('checkDataLayout', () => {
  it('records the layout of a new data directory and accepts it again', async () => {
    for (const layout of ['split', 'unified'] as const) {
      const dir = await dataDir();
      await expect(checkDataLayout(dir, layout)).resolves.toBe(layout);
      expect(await readFile(join(dir, 'storage-layout'), 'utf8')).toBe(`${layout}\n`);
      await expect(checkDataLayout(dir, layout)).resolves.toBe(layout);
      await expect(checkDataLayout(dir, undefined)).resolves.toBe(layout); // given none: the recorded one
    }
  });

  it('gives a new data directory the default layout, unified, when the broker is given none', async () => {
    const dir = await dataDir();
    await expect(checkDataLayout(dir, undefined)).resolves.toBe('unified');
    expect(await readFile(join(dir, 'storage-layout'), 'utf8')).toBe('unified\n');
    await expect(checkDataLayout(dir, 'split')).rejects.toThrow("holds storage.layout 'unified'");
  });

  it('refuses the other layout with STORAGE_LAYOUT, naming both, and touches nothing', async () => {
    const dir = await dataDir();
    await checkDataLayout(dir, 'unified');
    const err = await checkDataLayout(dir, 'split').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LogStorageError);
    expect((err as LogStorageError).code).toBe('STORAGE_LAYOUT');
    expect((err as Error).message).toContain("holds storage.layout 'unified', and this broker was started with storage.layout 'split'");
    expect(await readFile(join(dir, 'storage-layout'), 'utf8')).toBe('unified\n');
  });

  it('takes a directory from before the record that holds partitions or Raft logs for split', async () => {
    for (const sub of ['partitions', 'raft']) {
      const dir = await dataDir();
      await mkdir(join(dir, sub));
      await writeFile(join(dir, sub, 'x'), '');
      await expect(checkDataLayout(dir, 'unified')).rejects.toThrow("holds storage.layout 'split'");
      expect(await readdir(dir)).not.toContain('storage-layout');
      // Given no layout (the default is unified for new directories), it stays split: no silent conversion.
      await expect(checkDataLayout(dir, undefined)).resolves.toBe('split');
      expect(await readFile(join(dir, 'storage-layout'), 'utf8')).toBe('split\n');
      await expect(checkDataLayout(dir, 'split')).resolves.toBe('split');
    }
    // Empty directories hold nothing of either layout.
    const empty = await dataDir();
    await mkdir(join(empty, 'partitions'));
    await expect(checkDataLayout(empty, undefined)).resolves.toBe('unified');
  });

  it('refuses a record it does not know, touching nothing', async () => {
    const dir = await dataDir();
    await writeFile(join(dir, 'storage-layout'), 'columnar\n');
    await expect(checkDataLayout(dir, undefined)).rejects.toMatchObject({ code: 'STORAGE_LAYOUT' });
    expect(await readFile(join(dir, 'storage-layout'), 'utf8')).toBe('columnar\n');
  });
});
