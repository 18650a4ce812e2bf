import { appendFile, mkdtemp, readFile, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { nodeFileSystem } from './fs.js';
import { FaultyFileSystem } from '../../test/support/faulty-fs.js';
import { RecordFile } from './record-file.js';

const dirs: string[] = [];
async function tempFile(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'relaymq-record-'));
  dirs.push(dir);
  return join(dir, 'sub', 'log.bin');
}
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

describe('RecordFile', () => {
  it('reads back what was flushed, in order', async () => {
    const path = await tempFile();
    const { file } = await RecordFile.open(path);
    file.append({ term: 1, vote: 'b2' });
    file.append({ entries: [{ index: 1, data: new Uint8Array([7]) }] });
    await file.flush(true);
    file.append('third');
    await file.close();
    const { file: again, recovered } = await RecordFile.open(path);
    expect(recovered).toEqual({
      records: [{ term: 1, vote: 'b2' }, { entries: [{ index: 1, data: Buffer.from([7]) }] }, 'third'],
      truncatedBytes: 0,
    });
    await again.close();
  });

  it('cuts a torn tail (a crash mid-write) and keeps appending after it', async () => {
    const path = await tempFile();
    const { file } = await RecordFile.open(path);
    file.append({ n: 1 });
    file.append({ n: 2 });
    await file.close();
    const full = (await readFile(path)).length;
    await truncate(path, full - 3);
    const { file: reopened, recovered } = await RecordFile.open(path);
    expect(recovered.records).toEqual([{ n: 1 }]);
    expect(recovered.truncatedBytes).toBeGreaterThan(0);
    reopened.append({ n: 3 });
    await reopened.close();
    expect((await RecordFile.open(path)).recovered.records).toEqual([{ n: 1 }, { n: 3 }]);
  });

  it('stops at a record whose checksum fails, and at garbage appended', async () => {
    const path = await tempFile();
    const { file } = await RecordFile.open(path);
    file.append({ n: 1 });
    await file.close();
    await appendFile(path, Buffer.from([0, 0, 0, 2, 1, 2, 3, 4, 0x90, 0x90]));
    const { file: reopened, recovered } = await RecordFile.open(path);
    expect(recovered.records).toEqual([{ n: 1 }]);
    expect(recovered.truncatedBytes).toBe(10);
    await reopened.close();
  });

  it.each([
    ['a full disk (ENOSPC on write)', 'write', 'ENOSPC'],
    ['a failing fsync (after which Linux drops the unsynced pages)', 'datasync', 'EIO'],
  ] as const)('loses nothing to %s: the failed flush rejects, the next one writes it all again', async (_, op, code) => {
    const path = await tempFile();
    const fs = new FaultyFileSystem(nodeFileSystem);
    const { file } = await RecordFile.open(path, fs);
    file.append('before');
    await file.flush(true);
    file.append('during');
    fs.failNext(op, code);
    await expect(file.flush(true)).rejects.toMatchObject({ code });
    file.append('after');
    await file.flush(true);
    fs.crash();
    const { recovered } = await RecordFile.open(path, fs.inner);
    expect(recovered).toEqual({ records: ['before', 'during', 'after'], truncatedBytes: 0 });
  });
});
