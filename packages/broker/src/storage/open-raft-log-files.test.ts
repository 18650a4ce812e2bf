/**
 * Record files (Raft logs) sharing a bound on open files (`openFiles`): idle
 * descriptors are closed beyond the capacity and reopened by the next write,
 * a descriptor with bytes written and not fsynced, or whose write failed, is
 * never closed, and no descriptor is used after the bound closed it.
 */
import { describe, expect, it } from 'vitest';
import type { Entry } from '../core/raft/index.js';
import { CountingFileSystem } from '../../test/support/counting-fs.js';
import { FaultyFileSystem } from '../../test/support/faulty-fs.js';
import { MemoryFileSystem } from '../../test/support/memory-fs.js';
import { OpenFileCache } from './open-files.js';
import type { RaftLogStorage } from './raft-storage.js';
import { RAFT_STORAGES } from '../../test/support/raft-storages.js';
import { RecordFile } from './record-file.js';

const pathOf = (i: number): string => `/data/raft/g${i}.log`;

async function openFile(i: number, fs: CountingFileSystem | FaultyFileSystem, openFiles: OpenFileCache): Promise<RecordFile> {
  return (await RecordFile.open(pathOf(i), fs, openFiles)).file;
}

async function recordsOf(i: number, fs: CountingFileSystem | FaultyFileSystem): Promise<unknown[]> {
  const { file, recovered } = await RecordFile.open(pathOf(i), fs);
  await file.close();
  return recovered.records;
}

describe('record files under a bound on open files', () => {
  it('keeps 30 files within 4 open descriptors between writes, and every file holds all its records after a reopen', async () => {
    const fs = new CountingFileSystem(new MemoryFileSystem());
    const openFiles = new OpenFileCache(4);
    const files: RecordFile[] = [];
    for (let i = 0; i < 30; i++) files.push(await openFile(i, fs, openFiles));
    expect(fs.segmentFilesOpen).toBeLessThanOrEqual(4);
    for (let round = 0; round < 5; round++) {
      for (const [i, file] of files.entries()) {
        file.append({ file: i, round });
        await file.flush(true);
        // Between operations every descriptor is idle: the bound holds exactly.
        expect(fs.segmentFilesOpen).toBeLessThanOrEqual(4);
      }
    }
    expect(openFiles.stats().evicted).toBeGreaterThan(100);
    expect(openFiles.stats().overCapacity).toBe(0);
    await Promise.all(files.map((file) => file.close()));
    expect(fs.openNow).toBe(0);
    expect(openFiles.stats().open).toBe(0);
    for (let i = 0; i < 30; i++) expect(await recordsOf(i, fs)).toEqual([0, 1, 2, 3, 4].map((round) => ({ file: i, round })));
    expect(fs.misuse).toEqual([]);
  });

  it('never closes a descriptor with bytes written and not fsynced: it stays open past the bound until its fsync', async () => {
    const fs = new CountingFileSystem(new MemoryFileSystem());
    const openFiles = new OpenFileCache(1);
    const a = await openFile(0, fs, openFiles);
    a.append('written, not fsynced');
    await a.flush(false);
    const b = await openFile(1, fs, openFiles);
    const c = await openFile(2, fs, openFiles);
    // b was closed for c; a had to stay open.
    expect(fs.segmentHandles.has(pathOf(0))).toBe(true);
    expect(fs.segmentHandles.has(pathOf(1))).toBe(false);
    expect(openFiles.stats().overCapacity).toBeGreaterThan(0);
    await a.flush(true);
    // Its fsync done, a is the most recently used; c is closed instead. The next write elsewhere closes a.
    expect(fs.segmentFilesOpen).toBe(1);
    b.append('b');
    await b.flush(true);
    expect(fs.segmentHandles.has(pathOf(0))).toBe(false);
    expect(fs.segmentFilesOpen).toBe(1);
    await Promise.all([a.close(), b.close(), c.close()]);
    expect(await recordsOf(0, fs)).toEqual(['written, not fsynced']);
    expect(await recordsOf(1, fs)).toEqual(['b']);
    expect(fs.misuse).toEqual([]);
  });

  it('an fsync with nothing written does not reopen a descriptor closed while idle', async () => {
    const fs = new CountingFileSystem(new MemoryFileSystem());
    const openFiles = new OpenFileCache(1);
    const a = await openFile(0, fs, openFiles);
    a.append('x');
    await a.flush(true);
    const b = await openFile(1, fs, openFiles);
    const opened = fs.opened;
    await a.flush(true);
    expect(fs.opened).toBe(opened);
    expect(fs.segmentHandles.has(pathOf(0))).toBe(false);
    await Promise.all([a.close(), b.close()]);
    expect(fs.misuse).toEqual([]);
  });

  it('a failed write keeps its descriptor until a retry fsyncs it, and a crash after keeps everything fsynced', async () => {
    const counting = new CountingFileSystem(new MemoryFileSystem());
    const fs = new FaultyFileSystem(counting);
    const openFiles = new OpenFileCache(1);
    const a = await openFile(0, fs, openFiles);
    a.append('first');
    await a.flush(true);
    fs.failNext('datasync', 'EIO');
    a.append('second');
    await expect(a.flush(true)).rejects.toThrow(/EIO/);
    const b = await openFile(1, fs, openFiles);
    b.append('b');
    await b.flush(true);
    // a failed: its descriptor stays open, over the bound, until its retry succeeds.
    expect(counting.segmentHandles.has(pathOf(0))).toBe(true);
    await a.flush(true); // the retry writes 'second' again and fsyncs it
    b.append('b2');
    await b.flush(true);
    expect(counting.segmentHandles.has(pathOf(0))).toBe(false);
    expect(counting.segmentFilesOpen).toBe(1);
    await fs.crash();
    expect(await recordsOf(0, fs)).toEqual(['first', 'second']);
    expect(await recordsOf(1, fs)).toEqual(['b', 'b2']);
    expect(counting.misuse).toEqual([]);
  });

  it('never closes a descriptor while a write through it runs', async () => {
    const counting = new CountingFileSystem(new MemoryFileSystem());
    const fs = new FaultyFileSystem(counting);
    const openFiles = new OpenFileCache(1);
    const a = await openFile(0, fs, openFiles);
    a.append('in flight');
    const gate = fs.pauseNext('write');
    const flushed = a.flush(true);
    await gate.reached;
    // Opening another file asks the bound to close a: the write running through it keeps it open.
    const b = await openFile(1, fs, openFiles);
    expect(counting.segmentHandles.has(pathOf(0))).toBe(true);
    gate.release();
    await flushed;
    b.append('b');
    await b.flush(true);
    expect(counting.segmentFilesOpen).toBe(1);
    await Promise.all([a.close(), b.close()]);
    expect(await recordsOf(0, fs)).toEqual(['in flight']);
    expect(counting.misuse).toEqual([]);
  });

  it('rewrites and reloads a file whose descriptor was closed while idle, and goes on appending', async () => {
    const fs = new CountingFileSystem(new MemoryFileSystem());
    const openFiles = new OpenFileCache(1);
    const a = await openFile(0, fs, openFiles);
    a.append('old');
    await a.flush(true);
    const b = await openFile(1, fs, openFiles);
    expect(fs.segmentHandles.has(pathOf(0))).toBe(false);
    await a.rewrite(['compacted']);
    a.append('after the rewrite');
    await a.flush(true);
    await b.flush(true);
    const c = await openFile(2, fs, openFiles);
    expect(fs.segmentHandles.has(pathOf(0))).toBe(false);
    expect(await a.reload()).toEqual(['compacted', 'after the rewrite']);
    a.append('after the reload');
    await a.flush(true);
    await Promise.all([a.close(), b.close(), c.close()]);
    expect(fs.openNow).toBe(0);
    expect(await recordsOf(0, fs)).toEqual(['compacted', 'after the rewrite', 'after the reload']);
    expect(fs.misuse).toEqual([]);
  });

  it('refuses to write after close, and closing twice is harmless', async () => {
    const fs = new CountingFileSystem(new MemoryFileSystem());
    const openFiles = new OpenFileCache(2);
    const a = await openFile(0, fs, openFiles);
    await a.close();
    await a.close();
    a.append('late');
    await expect(a.flush(true)).rejects.toThrow(/closed/);
    expect(fs.openNow).toBe(0);
    expect(openFiles.stats().open).toBe(0);
  });
});

const entry = (index: number, term: number, data: string): Entry<string> => ({ type: 'normal', index, term, data });

describe('RecordFile.reload after a failed rewrite', () => {
  it('makes the records it returns durable, a tail written and not fsynced included', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const { file } = await RecordFile.open(pathOf(0), fs);
    file.append('fsynced');
    await file.flush(true);
    file.append('written only');
    await file.flush(false);
    fs.failNext('rename', 'EIO');
    await expect(file.rewrite(['compacted'])).rejects.toThrow(/EIO/);
    // The old file is still at the path, with its unsynced tail: reload returns it, so it must survive a crash.
    expect(await file.reload()).toEqual(['fsynced', 'written only']);
    await fs.crash();
    expect(await recordsOf(0, fs)).toEqual(['fsynced', 'written only']);
  });
});

describe.each(RAFT_STORAGES)('Raft logs over a $name under a bound on open files', ({ open: openStorage }) => {
  it('20 groups write, compact and restart through 3 open descriptors, and each holds its own log and vote', async () => {
    const fs = new CountingFileSystem(new MemoryFileSystem());
    const openFiles = new OpenFileCache(3);
    const open = (g: number): Promise<RaftLogStorage<string, string>> =>
      openStorage<string, string>(pathOf(g), ['a', 'b', 'c'], { fsync: 'always', fsyncIntervalMs: 1000, fs, openFiles });
    const groups: Array<RaftLogStorage<string, string>> = [];
    for (let g = 0; g < 20; g++) groups.push(await open(g));
    for (let index = 1; index <= 6; index++) {
      for (const [g, storage] of groups.entries()) {
        storage.setHardState({ term: 1, vote: 'b', commit: index - 1 });
        storage.append([entry(index, 1, `g${g}/${index}`)]);
        await storage.sync();
        expect(fs.segmentFilesOpen).toBeLessThanOrEqual(3);
        if (index === 4 && g % 2 === 0) await storage.compact(3, `state of g${g} at 3`);
      }
    }
    await Promise.all(groups.map((storage) => storage.close()));
    expect(fs.openNow).toBe(0);
    for (let g = 0; g < 20; g++) {
      const again = await open(g);
      expect(again.hardState).toEqual({ term: 1, vote: 'b', commit: 5 });
      expect(again.reader.lastIndex()).toBe(6);
      const first = g % 2 === 0 ? 4 : 1;
      expect(again.reader.firstIndex()).toBe(first);
      expect(again.reader.entries(first, 7, 100).map((e) => (e.type === 'normal' ? e.data : ''))).toEqual(
        Array.from({ length: 7 - first }, (_, i) => `g${g}/${first + i}`),
      );
      if (g % 2 === 0) expect(again.reader.snapshot()?.data).toBe(`state of g${g} at 3`);
      await again.close();
    }
    expect(fs.misuse).toEqual([]);
  });
});

describe('record files under a bound on open files, against a model', () => {
  it.each([1, 15839, 47515, 79191, 475141, 3, 9001])(
    'property (seed %i): random appends, flushes (some concurrent), rewrites, failed writes and fsyncs with their reloads, and crashes over 8 files with a bound of 3 keep every fsynced record; no descriptor is misused',
    async (initialSeed) => {
      const counting = new CountingFileSystem(new MemoryFileSystem());
      const fs = new FaultyFileSystem(counting);
      let seed = initialSeed;
      /** mulberry32: the low bits of a plain LCG repeat too soon for `% n`. */
      const random = (n: number): number => {
        seed = (seed + 0x6d2b79f5) | 0;
        let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
        t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
        return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * n | 0;
      };
      const count = 8;
      const capacity = 3;
      let openFiles = new OpenFileCache(capacity);
      const files: RecordFile[] = [];
      /** Per file: every record appended since the last reload, and how many of them are known fsynced. */
      const model: Array<{ appended: string[]; durable: number }> = [];
      for (let i = 0; i < count; i++) {
        files.push(await openFile(i, fs, openFiles));
        model.push({ appended: [], durable: 0 });
      }
      let next = 0;
      /** After a failed operation, as a fenced group does: reload until it works; it returns exactly the fsynced records. */
      const recover = async (i: number, accept: string[][]): Promise<void> => {
        fs.heal();
        const records = (await (files[i] as RecordFile).reload()) as string[];
        expect(accept).toContainEqual(records);
        model[i] = { appended: [...records], durable: records.length };
      };
      const flush = async (i: number, sync: boolean): Promise<void> => {
        const m = model[i] as { appended: string[]; durable: number };
        const target = m.appended.length;
        try {
          await (files[i] as RecordFile).flush(sync);
          if (sync) m.durable = target;
        } catch {
          await recover(i, [m.appended.slice(0, m.durable)]);
        }
      };
      for (let step = 0; step < 400; step++) {
        const i = random(count);
        const m = model[i] as { appended: string[]; durable: number };
        const op = random(12);
        if (op <= 3) {
          const record = `r${next++}`;
          (files[i] as RecordFile).append(record);
          m.appended.push(record);
        } else if (op <= 5) {
          if (random(6) === 0) fs.failNext(random(2) === 0 ? 'write' : 'datasync', 'EIO');
          await flush(i, op === 4);
        } else if (op === 6) {
          // Several files flush at once: trims run while other files' writes are in flight.
          await Promise.all([0, 1, 2].map(() => random(count)).filter((f, k, all) => all.indexOf(f) === k).map((f) => flush(f, true)));
        } else if (op === 7) {
          // A compaction: the whole log rewritten (as DurableRaftStorage.compact does, with every record so far),
          // after an fsync as between two Readys under fsync `always` (a rewrite replaces the file: an old
          // descriptor's unsynced bytes would be moot, but the misuse check could not tell them from the bound's).
          await flush(i, true);
          const now = model[i] as { appended: string[]; durable: number }; // a failed flush recovered to a new model
          const records = [...now.appended];
          if (random(5) === 0) fs.failNext(random(2) === 0 ? 'rename' : 'open', 'EIO');
          try {
            await (files[i] as RecordFile).rewrite(records);
            now.durable = records.length;
          } catch {
            // Either file may be at the path: the old one's fsynced records, or all of them.
            await recover(i, [now.appended.slice(0, now.durable), records]);
          }
        } else if (op === 8 && random(4) === 0) {
          // Power loss: each file keeps its fsynced records and maybe more of what was written after them, in order.
          const misused = counting.misuse.length;
          await fs.crash({ keepUnsyncedBytes: random(2) === 0 ? 0 : 64 });
          counting.misuse.splice(misused); // handles the crash killed were not closed by the bound
          openFiles = new OpenFileCache(capacity);
          for (let f = 0; f < count; f++) {
            const { file, recovered } = await RecordFile.open(pathOf(f), fs, openFiles);
            const mf = model[f] as { appended: string[]; durable: number };
            const records = recovered.records as string[];
            expect(records.slice(0, mf.durable)).toEqual(mf.appended.slice(0, mf.durable));
            expect(mf.appended.slice(0, records.length)).toEqual(records);
            files[f] = file;
            model[f] = { appended: [...records], durable: records.length };
          }
        } else {
          // Every file fsynced: nothing needs a descriptor, and the bound holds exactly.
          fs.heal();
          for (let f = 0; f < count; f++) await flush(f, true);
          expect(counting.segmentFilesOpen).toBeLessThanOrEqual(capacity);
        }
      }
      fs.heal();
      await Promise.all(files.map((file) => file.close()));
      expect(counting.openNow).toBe(0);
      for (let f = 0; f < count; f++) expect(await recordsOf(f, fs)).toEqual((model[f] as { appended: string[] }).appended);
      expect(counting.misuse).toEqual([]);
      expect(openFiles.stats().evicted).toBeGreaterThan(0);
    },
  );
});
