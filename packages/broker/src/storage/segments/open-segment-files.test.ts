/**
 * Segment logs sharing a bound on open files (`openFiles`): idle handles are
 * closed beyond the capacity and reopened on demand, a handle with bytes
 * written and not fsynced is never closed, and no handle is used after the
 * bound closed it.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { StoredMessage } from '../../core/partition/partition.js';
import type { FileSystem } from '../fs.js';
import { OpenFileCache } from '../open-files.js';
import type { SegmentLogOptions } from './options.js';
import { SegmentLog } from './segment-log.js';
import type { NewMessage } from './record.js';
import { CountingFileSystem } from '../../../test/support/counting-fs.js';
import { FaultyFileSystem } from '../../../test/support/faulty-fs.js';
import { MemoryFileSystem } from '../../../test/support/memory-fs.js';
import { ManualTimers } from '../../../test/support/segments.js';

const logs: SegmentLog[] = [];
afterEach(async () => {
  await Promise.all(logs.splice(0).map((log) => log.close().catch(() => {})));
});

const text = (log: number, i: number): string => `log ${log} message ${i} ${'x'.repeat(i % 40)}`;
const record = (body: string): NewMessage => ({ timestamp: 1000, data: new TextEncoder().encode(body), encoding: 'raw' });
const texts = (list: StoredMessage[]): string[] => list.map((m) => new TextDecoder().decode(m.data));

async function openLog(dir: string, fs: FileSystem, options: SegmentLogOptions): Promise<SegmentLog> {
  const log = await SegmentLog.open(dir, fs, options);
  logs.push(log);
  return log;
}

/** Reads the whole log from disk (the tail cache holds 1 byte). */
async function readAll(log: SegmentLog): Promise<StoredMessage[]> {
  const out: StoredMessage[] = [];
  let offset = log.startOffset;
  for (let turn = 0; turn < 10_000 && offset < log.endOffset; turn++) {
    const batch = await log.read(offset, 100, 1 << 20);
    if (batch.length === 0) break;
    out.push(...batch);
    offset = (batch[batch.length - 1] as StoredMessage).offset + 1;
  }
  return out;
}

describe('segment logs under a bound on open files', () => {
  it('keeps 40 logs (several segments each) within 6 open segment files, reads every one back from disk, and again after a reopen', async () => {
    const root = '/data';
    const fs = new CountingFileSystem(new MemoryFileSystem());
    const openFiles = new OpenFileCache(6);
    const options: SegmentLogOptions = { segmentBytes: 1024, indexIntervalBytes: 128, tailCacheBytes: 1, openFiles };
    const count = 40;
    const perLog = 60;
    const opened = [];
    for (let l = 0; l < count; l++) opened.push(await openLog(join(root, `p${l}`), fs, options));
    for (let i = 0; i < perLog; i += 10) {
      for (const [l, log] of opened.entries()) {
        log.append(Array.from({ length: 10 }, (_, k) => record(text(l, i + k))));
        await log.flush();
        // Between operations every handle is idle: the bound holds exactly.
        expect(fs.segmentFilesOpen).toBeLessThanOrEqual(6);
      }
    }
    for (const [l, log] of opened.entries()) {
      expect(texts(await readAll(log))).toEqual(Array.from({ length: perLog }, (_, i) => text(l, i)));
      expect(fs.segmentFilesOpen).toBeLessThanOrEqual(6);
    }
    expect(openFiles.stats().evicted).toBeGreaterThan(count);
    // Reads of every log at once: each read holds its handle, the bound closes the others as they end.
    const all = await Promise.all(opened.map((log) => readAll(log)));
    expect(all.map((list) => list.length)).toEqual(opened.map(() => perLog));
    openFiles.trim();
    expect(fs.segmentFilesOpen).toBeLessThanOrEqual(6);

    await Promise.all(logs.splice(0).map((log) => log.close()));
    expect(fs.openNow).toBe(0);
    expect(openFiles.stats().open).toBe(0);
    const again = [];
    for (let l = 0; l < count; l++) again.push(await openLog(join(root, `p${l}`), fs, options));
    for (const [l, log] of again.entries()) {
      expect(log.recovery.corruptions).toEqual([]);
      expect(texts(await readAll(log))).toEqual(Array.from({ length: perLog }, (_, i) => text(l, i)));
      // And they go on appending through a reopened handle.
      log.append([record(text(l, perLog))]);
      await log.flush();
    }
    expect(fs.segmentFilesOpen).toBeLessThanOrEqual(6);
    expect(fs.misuse).toEqual([]);
  });

  it('never closes a handle with bytes written and not fsynced (fsync interval): it stays open past the bound until its fsync, then closes', async () => {
    const root = '/data';
    const fs = new CountingFileSystem(new MemoryFileSystem());
    const openFiles = new OpenFileCache(2);
    const timers = new ManualTimers();
    const busy = await openLog(join(root, 'busy'), fs, { fsync: 'interval', fsyncIntervalMs: 1000, timers, tailCacheBytes: 1, openFiles });
    busy.append([record(text(0, 0)), record(text(0, 1))]);
    await busy.flush(); // written, not fsynced
    expect(busy.durableOffset).toBe(0);
    const busyFile = join(root, 'busy', '00000000000000000000.log');
    const others = [];
    for (let l = 1; l <= 5; l++) {
      const log = await openLog(join(root, `idle${l}`), fs, { tailCacheBytes: 1, openFiles });
      log.append([record(text(l, 0))]);
      await log.flush();
      others.push(log);
    }
    // Five logs opened past a bound of 2: the idle ones were closed, the unsynced one was not.
    expect(fs.segmentHandles.has(busyFile)).toBe(true);
    expect(fs.segmentFilesOpen).toBe(2);
    // Its fsync (the interval timer) goes through the handle the bytes were written through.
    timers.advance(1000);
    await busy.flush();
    for (let turn = 0; turn < 100 && busy.durableOffset < 2; turn++) await new Promise((resolve) => setImmediate(resolve));
    expect(busy.durableOffset).toBe(2);
    // Idle now: the next open closes it, and a read reopens it.
    await openLog(join(root, 'late'), fs, { tailCacheBytes: 1, openFiles });
    expect(fs.segmentHandles.has(busyFile)).toBe(false);
    expect(texts(await readAll(busy))).toEqual([text(0, 0), text(0, 1)]);
    expect(fs.misuse).toEqual([]);
  });

  it('a full disk under the bound: the degraded log keeps its handle until its retry succeeds, and a crash after keeps everything acknowledged', async () => {
    const root = '/data';
    const counting = new CountingFileSystem(new MemoryFileSystem());
    const fs = new FaultyFileSystem(counting);
    const openFiles = new OpenFileCache(1);
    const timers = new ManualTimers();
    const full = await openLog(join(root, 'full'), fs, { tailCacheBytes: 1, openFiles, timers, retryDelayMs: 1000 });
    full.append([0, 1, 2].map((i) => record(text(0, i))));
    await full.flush();
    fs.setCapacity(fs.usedBytes + 10); // the next write does not fit
    full.append([3, 4].map((i) => record(text(0, i))));
    await expect(full.flush()).rejects.toMatchObject({ code: 'STORAGE_FULL' });
    expect(full.health().status).toBe('degraded');
    const fullFile = join(root, 'full', '00000000000000000000.log');
    // Other logs come and go past the bound of 1: the degraded log's handle stays.
    fs.setCapacity(undefined);
    fs.setCapacity(fs.usedBytes + 10_000);
    const others = [];
    for (let l = 1; l <= 4; l++) {
      const log = await openLog(join(root, `other${l}`), fs, { tailCacheBytes: 1, openFiles });
      log.append([record(text(l, 0))]);
      await log.flush();
      others.push(log);
    }
    expect(counting.segmentHandles.has(fullFile)).toBe(true);
    // Space returns: the retry rewrites and fsyncs through that handle, then it may close like any other.
    fs.setCapacity(undefined);
    timers.advance(1000);
    await full.settled();
    expect(full.health().status).toBe('ok');
    expect(full.durableOffset).toBe(5);
    openFiles.trim();
    expect(counting.segmentFilesOpen).toBeLessThanOrEqual(1);
    expect(counting.misuse).toEqual([]);

    await fs.crash();
    logs.splice(0);
    const again = await openLog(join(root, 'full'), fs, { tailCacheBytes: 1, openFiles: new OpenFileCache(1) });
    expect(texts(await readAll(again))).toEqual([0, 1, 2, 3, 4].map((i) => text(0, i)));
    for (const [i, log] of others.entries()) {
      const reopened = await openLog(log.dir, fs, { tailCacheBytes: 1, openFiles: new OpenFileCache(1) });
      expect(texts(await readAll(reopened))).toEqual([text(i + 1, 0)]);
    }
  });

  it.each([7, 11, 23, 101, 4242])(
    'property (seed %i): random appends, flushes, reads, truncations, retention and timed fsyncs over 12 logs with a bound of 3 read back the model, before and after a restart; no handle is misused',
    async (initialSeed) => {
      const root = '/data';
      const fs = new CountingFileSystem(new MemoryFileSystem());
      const openFiles = new OpenFileCache(3);
      const timers = new ManualTimers();
      // Half the logs fsync on a timer: their handles stay open, written and not fsynced, until it fires.
      const optionsOf = (l: number): SegmentLogOptions => ({
        segmentBytes: 512,
        indexIntervalBytes: 64,
        tailCacheBytes: 1,
        openFiles,
        ...(l % 2 === 0 ? {} : { fsync: 'interval' as const, fsyncIntervalMs: 100, timers }),
      });
      let seed = initialSeed;
      const random = (n: number): number => {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        return seed % n;
      };
      const count = 12;
      const opened: SegmentLog[] = [];
      const model: string[][] = [];
      for (let l = 0; l < count; l++) {
        opened.push(await openLog(join(root, `p${l}`), fs, optionsOf(l)));
        model.push([]);
      }
      let next = 0;
      for (let step = 0; step < 300; step++) {
        const l = random(count);
        const log = opened[l] as SegmentLog;
        const held = model[l] as string[];
        const op = random(7);
        if (op <= 1) {
          const batch = Array.from({ length: 1 + random(5) }, () => `m${next++}`);
          log.append(batch.map(record));
          held.push(...batch);
          // A flush with reads of other logs (or this one) alongside.
          await Promise.all([log.flush(), readAll(opened[random(count)] as SegmentLog)]);
        } else if (op === 2) {
          await Promise.all([0, 1, 2].map(() => readAll(opened[random(count)] as SegmentLog)));
        } else if (op === 3 && held.length > log.startOffset) {
          // A truncation with a read of the same log in flight (what it returns is not checked: it races the cut).
          const cut = log.startOffset + random(held.length - log.startOffset + 1);
          await Promise.all([log.truncateFrom(cut), readAll(log).catch(() => [])]);
          held.length = cut;
        } else if (op === 4) {
          await log.flush();
          await log.applyRetention({ maxMessages: 20 }, 0);
        } else if (op === 5) {
          timers.advance(100); // the interval logs' fsyncs
          await Promise.all(opened.map((x) => x.flush()));
        } else {
          expect(texts(await readAll(log))).toEqual(held.slice(log.startOffset));
        }
        // Between steps nothing is read or written: only handles with bytes not fsynced may stay open past the bound.
        openFiles.trim();
        const unsynced = opened.filter((x) => x.durableOffset < x.endOffset).length;
        expect(fs.segmentFilesOpen).toBeLessThanOrEqual(3 + unsynced);
      }
      for (const [l, log] of opened.entries()) expect(texts(await readAll(log))).toEqual((model[l] as string[]).slice(log.startOffset));
      expect(fs.misuse).toEqual([]);

      const starts = opened.map((log) => log.startOffset);
      await Promise.all(logs.splice(0).map((log) => log.close()));
      expect([fs.openNow, openFiles.stats().open]).toEqual([0, 0]);
      for (let l = 0; l < count; l++) {
        const log = await openLog(join(root, `p${l}`), fs, optionsOf(l));
        expect(log.recovery.corruptions).toEqual([]);
        expect(log.startOffset).toBe(starts[l]);
        expect(texts(await readAll(log))).toEqual((model[l] as string[]).slice(log.startOffset));
      }
      expect(fs.segmentFilesOpen).toBeLessThanOrEqual(3);
      expect(fs.misuse).toEqual([]);
    },
  );
});
