import { readdir, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { StoredMessage } from '../../core/partition/partition.js';
import { nodeFileSystem, type FileHandle, type FileSystem, type OpenMode } from '../fs.js';
import { FaultyFileSystem } from '../../../test/support/faulty-fs.js';
import { resolveSegmentLogOptions, type SegmentLogOptions, type StorageEvent } from './options.js';
import { SegmentLog } from './segment-log.js';
import { ManualTimers, TempDirs, indexOf, message, messages } from '../../../test/support/segments.js';

const temp = new TempDirs();
afterEach(() => temp.cleanup());

const logs: SegmentLog[] = [];
afterEach(async () => {
  await Promise.all(logs.splice(0).map((log) => log.close().catch(() => {})));
});

async function openLog(dir: string, options: SegmentLogOptions = {}, fs = nodeFileSystem): Promise<SegmentLog> {
  const log = await SegmentLog.open(dir, fs, options);
  logs.push(log);
  return log;
}

/**
 * The real file system, counting asynchronous and synchronous writes and
 * fsyncs; a synchronous write can be made to fail once (half written
 * first), and a synchronous fsync too.
 */
class SyncWriteFileSystem implements FileSystem {
  counts = { write: 0, writeSync: 0 };
  syncs = { datasync: 0, datasyncSync: 0 };
  failNextWriteSync: Error | undefined;
  failNextDatasyncSync: Error | undefined;
  readdir = nodeFileSystem.readdir;
  mkdir = nodeFileSystem.mkdir;
  rename = nodeFileSystem.rename;
  unlink = nodeFileSystem.unlink;
  stat = nodeFileSystem.stat;
  syncDir = nodeFileSystem.syncDir;

  async open(path: string, mode: OpenMode): Promise<FileHandle> {
    const inner = await nodeFileSystem.open(path, mode);
    const writeSync = inner.writeSync?.bind(inner) as NonNullable<FileHandle['writeSync']>;
    const datasyncSync = inner.datasyncSync?.bind(inner) as NonNullable<FileHandle['datasyncSync']>;
    return {
      write: (data, position) => {
        this.counts.write++;
        return inner.write(data, position);
      },
      writeSync: (data, position) => {
        this.counts.writeSync++;
        const error = this.failNextWriteSync;
        this.failNextWriteSync = undefined;
        if (error === undefined) return writeSync(data, position);
        writeSync(data.subarray(0, data.length >> 1), position);
        throw error;
      },
      read: (into, position) => inner.read(into, position),
      size: () => inner.size(),
      truncate: (length) => inner.truncate(length),
      datasync: () => {
        this.syncs.datasync++;
        return inner.datasync();
      },
      datasyncSync: () => {
        this.syncs.datasyncSync++;
        const error = this.failNextDatasyncSync;
        this.failNextDatasyncSync = undefined;
        if (error !== undefined) throw error;
        datasyncSync();
      },
      close: () => inner.close(),
    };
  }
}

/** Resolves after the current turn of the event loop (a new turn may fsync on the calling thread again). */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const offsets = (list: StoredMessage[]): number[] => list.map((m) => m.offset);
const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

/** Small segments: about 10 records of 50 bytes each. */
const SMALL: SegmentLogOptions = { segmentBytes: 800, indexIntervalBytes: 128 };

describe('SegmentLog: append, flush, read', () => {
  it('reads back what was appended, before and after reopening, with key, headers and encoding', async () => {
    const dir = join(await temp.make(), 'orders-0');
    const log = await openLog(dir);
    expect([log.startOffset, log.endOffset]).toEqual([0, 0]);
    const headers = { a: '1', 'content-type': 'application/json' };
    const first = log.append([
      { timestamp: 5, data: Uint8Array.of(1, 2, 3), encoding: 'raw' },
      { timestamp: 6, key: 'customer-é', headers, data: Uint8Array.of(0x92, 1, 2), encoding: 'msgpack' },
      { timestamp: 7, data: new Uint8Array(0), encoding: 'raw' },
    ]);
    expect(first).toBe(0);
    expect(log.endOffset).toBe(3);
    const expected: StoredMessage[] = [
      { offset: 0, timestamp: 5, data: Uint8Array.of(1, 2, 3), encoding: 'raw' },
      { offset: 1, timestamp: 6, key: 'customer-é', headers, data: Uint8Array.of(0x92, 1, 2), encoding: 'msgpack' },
      { offset: 2, timestamp: 7, data: new Uint8Array(0), encoding: 'raw' },
    ];
    expect(await log.read(0, 10, 1000)).toEqual(expected); // from memory, before any flush
    await log.flush();
    expect(log.durableOffset).toBe(3);
    await log.close();

    const again = await openLog(dir);
    expect(again.recovery).toEqual({ segments: 1, truncatedTail: undefined, corruptions: [], rebuiltIndexes: 0 });
    expect([again.startOffset, again.endOffset, again.durableOffset]).toEqual([0, 3, 3]);
    const read = await again.read(0, 10, 1000); // from disk
    expect(read).toEqual(expected);
    expect(Object.getPrototypeOf(read[1]?.headers)).toBe(Object.prototype);
    expect(again.append([message(3, { timestamp: 1 })])).toBe(3);
    // Timestamps never decrease: 1 is raised to 7.
    expect((await again.read(3, 1, 100))[0]?.timestamp).toBe(7);
  });

  it('copies appended data: the caller may reuse its buffer', async () => {
    const log = await openLog(await temp.make());
    const data = Uint8Array.of(1, 2, 3);
    log.append([{ timestamp: 1, data, encoding: 'raw' }]);
    data.fill(0);
    expect([...((await log.read(0, 1, 10))[0]?.data ?? [])]).toEqual([1, 2, 3]);
  });

  it('rolls segments at segmentBytes and replays by offset across segment boundaries, from disk and from memory', async () => {
    const dir = await temp.make();
    const log = await openLog(dir, SMALL);
    log.append(messages(0, 200, { size: 20 }));
    await log.flush();
    expect(log.segmentCount).toBeGreaterThan(10);
    const files = await readdir(dir);
    expect(files).toContain('00000000000000000000.log');
    expect(files).toContain('00000000000000000000.idx');
    expect(files).toContain('00000000000000000000.tix');
    const check = async (l: SegmentLog): Promise<void> => {
      for (const [from, count] of [[0, 200], [7, 31], [95, 10], [150, 1000], [199, 5], [200, 5]] as const) {
        const read = await l.read(from, count, 1_000_000);
        expect(offsets(read)).toEqual(range(from, Math.min(200, from + count)));
        expect(read.map((m) => indexOf(m.data))).toEqual(offsets(read));
      }
      // maxBytes bounds the data, but the first message is always returned.
      expect(offsets(await l.read(10, 100, 50))).toEqual([10, 11]);
      expect(offsets(await l.read(10, 100, 1))).toEqual([10]);
      expect(await l.read(10, 0, 100)).toEqual([]);
    };
    await check(log);
    await log.close();
    const again = await openLog(dir, { ...SMALL, tailCacheBytes: 1 });
    expect(again.recovery.rebuiltIndexes).toBe(0);
    await check(again);
    // Sequential replay in pages covers everything exactly once.
    const seen: number[] = [];
    for (let next = 0, turns = 0; next < again.endOffset && turns < 1000; turns++) {
      const page = await again.read(next, 17, 10_000);
      seen.push(...offsets(page));
      next = (page[page.length - 1]?.offset ?? next) + 1;
    }
    expect(seen).toEqual(range(0, 200));
  });

  it('replays by time across segments', async () => {
    const dir = await temp.make();
    const log = await openLog(dir, SMALL);
    log.append(messages(0, 100, { size: 20 })); // timestamps 1000, 1010, ...
    await log.flush();
    const check = async (l: SegmentLog): Promise<void> => {
      expect(await l.offsetForTime(0)).toBe(0);
      expect(await l.offsetForTime(1000)).toBe(0);
      expect(await l.offsetForTime(1001)).toBe(1);
      expect(await l.offsetForTime(1500)).toBe(50);
      expect(await l.offsetForTime(1505)).toBe(51);
      expect(await l.offsetForTime(1990)).toBe(99);
      expect(await l.offsetForTime(1991)).toBe(100);
      expect(await l.offsetForTime(99_999)).toBe(100);
      for (let t = 995; t < 2000; t += 37) expect(await l.offsetForTime(t)).toBe(Math.max(0, Math.ceil((t - 1000) / 10)));
    };
    await check(log);
    await log.close();
    await check(await openLog(dir, SMALL));
    await check(await openLog(dir, { ...SMALL, verifyOnOpen: 'active' }));
  });

  it('group commit: one write and one fsync cover every record appended before the flush; concurrent flushes share one', async () => {
    const fs = new FaultyFileSystem(nodeFileSystem);
    const log = await openLog(await temp.make(), {}, fs);
    const before = { ...fs.calls };
    for (let i = 0; i < 1000; i++) log.append([message(i)]);
    await log.flush();
    expect(fs.calls.write - before.write).toBe(1);
    expect(fs.calls.datasync - before.datasync).toBe(1);
    // A flush is in flight (held in its fsync); the callers arriving meanwhile all share the next one.
    log.append([message(1000)]);
    const gate = fs.pauseNext('datasync');
    const first = log.flush();
    await gate.reached;
    const waiting: Array<Promise<void>> = [];
    for (let i = 1001; i < 1100; i++) {
      log.append([message(i)]);
      waiting.push(log.flush());
    }
    expect(log.durableOffset).toBe(1000);
    gate.release();
    await Promise.all([first, ...waiting]);
    expect(fs.calls.datasync - before.datasync).toBe(3);
    expect(log.durableOffset).toBe(1100);
    // Nothing new: no fsync at all.
    await log.flush();
    expect(fs.calls.datasync - before.datasync).toBe(3);
  });

  it('readFromMemory serves the tail synchronously and says when the disk is needed', async () => {
    const dir = await temp.make();
    const log = await openLog(dir, { tailCacheBytes: 1 });
    log.append(messages(0, 5));
    expect(offsets(log.readFromMemory(2, 10, 1000) ?? [])).toEqual([2, 3, 4]); // not durable yet: always in memory
    await log.flush();
    expect(log.readFromMemory(2, 10, 1000)).toBeUndefined(); // evicted once durable (tailCacheBytes 1)
    expect(log.readFromMemory(5, 10, 1000)).toEqual([]);
    expect(offsets(await log.read(2, 10, 1000))).toEqual([2, 3, 4]);
  });

  it('the tail cache of a log written one small record per flush holds its records in one small buffer, not a 16 KiB arena per flush', async () => {
    const log = await openLog(await temp.make());
    for (let i = 0; i < 10; i++) {
      log.append([message(i)]);
      await log.flush();
    }
    const cached = log.readFromMemory(0, 10, 1 << 20) ?? [];
    expect(offsets(cached)).toEqual(range(0, 10));
    const buffers = new Set(cached.map((m) => m.data.buffer));
    expect(buffers.size).toBe(1);
    // From Node's shared pool (8 KiB slabs): an idle partition keeps no arena of its own alive.
    expect([...buffers][0]?.byteLength).toBeLessThanOrEqual(8 * 1024);
    // A batch of many records still takes a few arenas, doubling, not one per record.
    log.append(messages(10, 2000));
    await log.flush();
    const large = log.readFromMemory(10, 2000, 1 << 30) ?? [];
    expect(large).toHaveLength(1990);
    expect(new Set(large.map((m) => m.data.buffer)).size).toBeLessThan(16);
  });

  it('rejects bad appends whole: oversized record, bad timestamp', async () => {
    const log = await openLog(await temp.make(), { maxRecordBytes: 1024 });
    expect(() => log.append([message(0), message(1, { size: 2000 })])).toThrow(RangeError);
    expect(() => log.append([{ timestamp: -1, data: new Uint8Array(1), encoding: 'raw' }])).toThrow(RangeError);
    expect(() => log.append([{ timestamp: 1.5, data: new Uint8Array(1), encoding: 'raw' }])).toThrow(RangeError);
    expect(log.endOffset).toBe(0);
  });

  it('starts a brand-new log at initialOffset', async () => {
    const log = await openLog(await temp.make(), { initialOffset: 500 });
    expect(log.append([message(0)])).toBe(500);
    expect(offsets(await log.read(0, 10, 100))).toEqual([500]);
  });

  it('closes the new segment it opened when creating a log fails (a directory sync refused, as under EMFILE)', async () => {
    const fs = new FaultyFileSystem(nodeFileSystem);
    fs.failNext('syncDir', 'EMFILE');
    await expect(SegmentLog.open(await temp.make(), fs, {})).rejects.toMatchObject({ code: 'EMFILE' });
    expect(fs.openHandles).toBe(0);
  });

  it('refuses work once closed', async () => {
    const log = await openLog(await temp.make());
    await log.close();
    expect(() => log.append([message(0)])).toThrow(expect.objectContaining({ code: 'STORAGE_CLOSED' }));
    await expect(log.read(0, 1, 1)).rejects.toMatchObject({ code: 'STORAGE_CLOSED' });
    await expect(log.flush()).rejects.toMatchObject({ code: 'STORAGE_CLOSED' });
    await log.close(); // twice is fine
  });
});

describe('SegmentLog: fsync policy', () => {
  it("'interval': flush resolves once written; the timer fsyncs within fsyncIntervalMs", async () => {
    const fs = new FaultyFileSystem(nodeFileSystem);
    const timers = new ManualTimers();
    const dir = await temp.make();
    const log = await openLog(dir, { fsync: 'interval', fsyncIntervalMs: 200, timers }, fs);
    const syncs = fs.calls.datasync;
    log.append(messages(0, 10));
    await log.flush();
    expect(fs.calls.datasync).toBe(syncs);
    expect(log.durableOffset).toBe(0);
    expect(await log.read(0, 100, 10_000)).toHaveLength(10);
    timers.advance(199);
    await log.settled();
    expect(log.durableOffset).toBe(0);
    timers.advance(1);
    await log.settled();
    expect(fs.calls.datasync).toBe(syncs + 1);
    expect(log.durableOffset).toBe(10);
    // The documented loss window: written, not yet fsynced, lost to a power cut.
    log.append(messages(10, 15));
    await log.flush();
    await fs.crash();
    const again = await openLog(dir, {}, fs);
    expect(again.endOffset).toBe(10);
  });

  it("'interval': syncThrough fsyncs in the thread pool, beside the writes: never on the event loop's thread, and a flush asked for meanwhile is written without waiting for it", async () => {
    const fs = new SyncWriteFileSystem();
    const log = await openLog(await temp.make(), { fsync: 'interval', timers: new ManualTimers() }, fs);
    log.append(messages(0, 3));
    await log.flush();
    fs.syncs = { datasync: 0, datasyncSync: 0 };
    const synced = log.syncThrough(3);
    log.append(messages(3, 6));
    // The fdatasync runs in the pool: the flush behind it writes (writeSync) before it is back.
    const first = await Promise.race([log.flush().then(() => 'written'), synced.then(() => 'synced')]);
    expect(first).toBe('written');
    await synced;
    expect(fs.syncs).toEqual({ datasync: 1, datasyncSync: 0 });
    expect(log.durableOffset).toBeGreaterThanOrEqual(3);
    await log.syncThrough(3); // already durable: nothing to do
    expect(fs.syncs).toEqual({ datasync: 1, datasyncSync: 0 });
    await log.close();
  });

  it("'interval': fsyncs early once maxUnsyncedBytes are written", async () => {
    const fs = new FaultyFileSystem(nodeFileSystem);
    const log = await openLog(await temp.make(), { fsync: 'interval', maxUnsyncedBytes: 1000, timers: new ManualTimers() }, fs);
    const syncs = fs.calls.datasync;
    log.append(messages(0, 5, { size: 100 }));
    await log.flush();
    expect(fs.calls.datasync).toBe(syncs);
    log.append(messages(5, 10, { size: 100 }));
    await log.flush();
    expect(fs.calls.datasync).toBe(syncs + 1);
    expect(log.durableOffset).toBe(10);
  });

  it("'interval': a small batch is written on the calling thread (writeSync), so its flush settles within the turn; a large one goes through the thread pool", async () => {
    const fs = new SyncWriteFileSystem();
    const log = await openLog(await temp.make(), { fsync: 'interval', timers: new ManualTimers() }, fs);
    log.append(messages(0, 3));
    await log.flush(); // the first flush creates the file
    fs.counts = { write: 0, writeSync: 0 };
    log.append(messages(3, 6));
    // setImmediate runs only after the event loop polled I/O: a flush that waited for the thread pool loses the race.
    const first = await Promise.race([log.flush().then(() => 'written'), new Promise((resolve) => setImmediate(() => resolve('next turn')))]);
    expect(first).toBe('written');
    expect(fs.counts).toEqual({ write: 0, writeSync: 1 });
    log.append(messages(6, 7, { size: 300 * 1024 }));
    await log.flush();
    expect(fs.counts).toEqual({ write: 1, writeSync: 1 });
    expect(offsets(await log.read(0, 100, 10_000_000))).toEqual(range(0, 7));
  });

  it('a synchronous write that fails is handled like an asynchronous one: the flush rejects, the retry writes the records again', async () => {
    const fs = new SyncWriteFileSystem();
    const dir = await temp.make();
    const log = await openLog(dir, { fsync: 'always', timers: new ManualTimers() }, fs);
    log.append(messages(0, 2));
    await log.flush();
    fs.failNextWriteSync = Object.assign(new Error('no space'), { code: 'ENOSPC' });
    log.append(messages(2, 4));
    await expect(log.flush()).rejects.toMatchObject({ code: 'STORAGE_FULL' });
    expect(log.durableOffset).toBe(2);
    await log.sync(); // the retry: writes the records kept in memory again
    expect(log.durableOffset).toBe(4);
    await log.close();
    const again = await openLog(dir);
    expect(offsets(await again.read(0, 100, 10_000))).toEqual(range(0, 4));
  });

  it("'always': a small batch is fsynced on the calling thread, once per turn of the event loop; a second log in the same turn and a large batch go through the thread pool", async () => {
    const fs = new SyncWriteFileSystem();
    const [one, two] = [await openLog(await temp.make(), { fsync: 'always' }, fs), await openLog(await temp.make(), { fsync: 'always' }, fs)];
    one.append(messages(0, 1));
    two.append(messages(0, 1));
    await Promise.all([one.flush(), two.flush()]); // the first flushes create the files
    await nextTurn();
    fs.syncs = { datasync: 0, datasyncSync: 0 };
    one.append(messages(1, 3));
    // setImmediate runs only after the event loop polled I/O: a flush that waited for the thread pool loses the race.
    const first = await Promise.race([one.flush().then(() => 'durable'), nextTurn().then(() => 'next turn')]);
    expect(first).toBe('durable');
    expect(fs.syncs).toEqual({ datasync: 0, datasyncSync: 1 });
    expect(one.durableOffset).toBe(3);
    await nextTurn();
    one.append(messages(3, 4));
    two.append(messages(1, 2));
    await Promise.all([one.flush(), two.flush()]);
    expect(fs.syncs).toEqual({ datasync: 1, datasyncSync: 2 });
    await nextTurn();
    one.append(messages(4, 5, { size: 300 * 1024 }));
    await one.flush();
    expect(fs.syncs).toEqual({ datasync: 2, datasyncSync: 2 });
    expect([one.durableOffset, two.durableOffset]).toEqual([5, 2]);
  });

  it('a synchronous fsync that fails is handled like an asynchronous one: the flush rejects, nothing after the last fsync counts as durable, the retry writes and fsyncs again', async () => {
    const fs = new SyncWriteFileSystem();
    const dir = await temp.make();
    const log = await openLog(dir, { fsync: 'always', timers: new ManualTimers() }, fs);
    log.append(messages(0, 2));
    await log.flush();
    await nextTurn();
    fs.failNextDatasyncSync = Object.assign(new Error('I/O error'), { code: 'EIO' });
    log.append(messages(2, 4));
    await expect(log.flush()).rejects.toMatchObject({ code: 'STORAGE_IO' });
    expect(log.durableOffset).toBe(2);
    expect(log.health().status).not.toBe('healthy');
    await nextTurn();
    await log.sync(); // the retry: writes the records kept in memory again
    expect(log.durableOffset).toBe(4);
    await log.close();
    const again = await openLog(dir);
    expect(offsets(await again.read(0, 100, 10_000))).toEqual(range(0, 4));
  });

  it('sync() fsyncs whatever the policy', async () => {
    const log = await openLog(await temp.make(), { fsync: 'interval', timers: new ManualTimers() });
    log.append(messages(0, 3));
    await log.sync();
    expect(log.durableOffset).toBe(3);
  });

  it('rejects conflicting or invalid options by name', () => {
    expect(() => resolveSegmentLogOptions({ fsyncIntervalMs: 10 })).toThrow(/fsyncIntervalMs/);
    expect(() => resolveSegmentLogOptions({ maxUnsyncedBytes: 10 })).toThrow(/maxUnsyncedBytes/);
    expect(() => resolveSegmentLogOptions({ segmentBytes: 0 })).toThrow(/segmentBytes/);
    expect(() => resolveSegmentLogOptions({ segmentBytes: 4096, indexIntervalBytes: 8192 })).toThrow(/indexIntervalBytes/);
    expect(resolveSegmentLogOptions({}).fsync).toBe('always');
    expect(resolveSegmentLogOptions({ fsync: 'interval' }).fsyncIntervalMs).toBe(1000);
  });
});

describe('SegmentLog: retention', () => {
  /** 10 sealed segments of 10 records each (timestamps 1000 + 10 i), and an active one. */
  async function tenSegments(dir: string, events?: StorageEvent[]): Promise<SegmentLog> {
    const log = await openLog(dir, { ...SMALL, segmentBytes: 10 * 50, onEvent: (e) => events?.push(e) });
    log.append(messages(0, 105, { size: 20 }));
    await log.flush();
    expect(log.segmentBases()).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
    return log;
  }

  it('by age: deletes the sealed segments whose newest record is older than maxAgeMs', async () => {
    const dir = await temp.make();
    const events: StorageEvent[] = [];
    const log = await tenSegments(dir, events);
    // Now 2000, max age 700: records older than 1300 go; segment 20..29 holds 1200..1290, segment 30 holds 1300..
    const result = await log.applyRetention({ maxAgeMs: 700 }, 2000);
    expect(result).toEqual({ deletedSegments: 3, deletedBytes: expect.any(Number), startOffset: 30 });
    expect(log.startOffset).toBe(30);
    expect(events.filter((e) => e.kind === 'segment-deleted')).toHaveLength(3);
    expect(await readdir(dir)).not.toContain('00000000000000000020.log');
    expect(offsets(await log.read(0, 3, 10_000))).toEqual([30, 31, 32]); // reads below start begin at the start
    expect(await log.offsetForTime(0)).toBe(30);
    // Everything old: all sealed segments go, the active one stays.
    await log.applyRetention({ maxAgeMs: 0 }, 1_000_000);
    expect(log.segmentBases()).toEqual([100]);
    expect(offsets(await log.read(0, 100, 10_000))).toEqual(range(100, 105));
    await log.close();
    const again = await openLog(dir, SMALL);
    expect([again.startOffset, again.endOffset]).toEqual([100, 105]);
  });

  it('by bytes: deletes the oldest segments while the log is over maxBytes', async () => {
    const log = await tenSegments(await temp.make());
    const segmentBytes = log.sizeBytes / 10.5;
    await log.applyRetention({ maxBytes: Math.floor(segmentBytes * 4) }, 0);
    expect(log.sizeBytes).toBeLessThanOrEqual(segmentBytes * 4);
    expect(log.segmentBases()).toEqual([70, 80, 90, 100]);
  });

  it('by count: deletes the oldest segments while the log holds more than maxMessages', async () => {
    const log = await tenSegments(await temp.make());
    await log.applyRetention({ maxMessages: 50 }, 0);
    expect(log.startOffset).toBe(60);
    expect(log.endOffset - log.startOffset).toBeLessThanOrEqual(50);
    await log.applyRetention({ maxMessages: 0 }, 0);
    expect(log.segmentBases()).toEqual([100]); // never the active segment
  });

  it('keeps segments holding offsets at or after keepFrom, and does nothing without a limit', async () => {
    const log = await tenSegments(await temp.make());
    expect((await log.applyRetention({}, 1e12)).deletedSegments).toBe(0);
    await log.applyRetention({ maxMessages: 0 }, 0, 35);
    expect(log.startOffset).toBe(30);
    await expect(log.applyRetention({ maxBytes: -1 }, 0)).rejects.toThrow(RangeError);
  });

  it('a read in flight on a deleted segment completes', async () => {
    const log = await tenSegments(await temp.make());
    await log.close();
    const again = await openLog(log.dir, { ...SMALL, tailCacheBytes: 1 });
    const reading = again.read(0, 5, 10_000);
    const deleting = again.applyRetention({ maxMessages: 0 }, 0);
    expect(offsets(await reading)).toEqual(range(0, 5));
    await deleting;
    expect(again.startOffset).toBe(100);
  });
});

describe('SegmentLog: truncateFrom and reset', () => {
  it('cuts a suffix across segments, durably, and appends continue from there', async () => {
    const dir = await temp.make();
    const log = await openLog(dir, SMALL);
    log.append(messages(0, 100, { size: 20 }));
    await log.flush();
    log.append(messages(100, 110, { size: 20 })); // not even flushed
    await log.truncateFrom(35);
    expect(log.endOffset).toBe(35);
    expect(log.durableOffset).toBe(35);
    expect(offsets(await log.read(30, 100, 100_000))).toEqual(range(30, 35));
    expect(await log.offsetForTime(99_999)).toBe(35);
    expect(log.append([message(1000, { timestamp: 1 })])).toBe(35);
    // The timestamp floor is the cut log's last record (offset 34: 1340).
    expect((await log.read(35, 1, 100))[0]?.timestamp).toBe(1340);
    await log.flush();
    await log.close();
    const again = await openLog(dir, SMALL);
    expect(again.endOffset).toBe(36);
    expect((await again.read(30, 100, 100_000)).map((m) => indexOf(m.data))).toEqual([30, 31, 32, 33, 34, 1000]);
  });

  it('cuts at a segment base, at the start, and rejects offsets outside the log', async () => {
    const log = await openLog(await temp.make(), SMALL);
    log.append(messages(0, 50, { size: 20 }));
    await log.flush();
    const bases = log.segmentBases();
    const base = bases[2] as number;
    await log.truncateFrom(base);
    expect(log.segmentBases()).toEqual(bases.slice(0, 3));
    expect(log.endOffset).toBe(base);
    await expect(log.truncateFrom(base + 1)).rejects.toThrow(RangeError);
    await log.truncateFrom(base); // a no-op
    await log.truncateFrom(0);
    expect([log.startOffset, log.endOffset, log.segmentCount]).toEqual([0, 0, 1]);
    log.append(messages(0, 3));
    expect(offsets(await log.read(0, 10, 1000))).toEqual([0, 1, 2]);
  });

  it('reset drops everything and starts an empty log at an offset', async () => {
    const dir = await temp.make();
    const log = await openLog(dir, SMALL);
    log.append(messages(0, 50, { size: 20 }));
    await log.flush();
    await log.reset(1000);
    expect([log.startOffset, log.endOffset]).toEqual([1000, 1000]);
    expect(await readdir(dir)).toEqual(['00000000000000001000.log']);
    log.append(messages(0, 2));
    await log.flush();
    await log.close();
    const again = await openLog(dir, SMALL);
    expect(offsets(await again.read(0, 10, 1000))).toEqual([1000, 1001]);
  });
});

describe('SegmentLog: indexes', () => {
  it('rebuilds missing or damaged index files of sealed segments on open', async () => {
    const dir = await temp.make();
    const log = await openLog(dir, SMALL);
    log.append(messages(0, 60, { size: 20 }));
    await log.flush();
    await log.close();
    await unlink(join(dir, '00000000000000000000.idx'));
    const tix = join(dir, segmentTix(log.segmentBases()[1] as number));
    await writeFile(tix, Buffer.from('garbage'));
    for (const verifyOnOpen of ['active', 'all'] as const) {
      const again = await openLog(dir, { ...SMALL, verifyOnOpen });
      expect(again.recovery.rebuiltIndexes).toBe(verifyOnOpen === 'active' ? 2 : 0);
      expect(offsets(await again.read(0, 100, 100_000))).toEqual(range(0, 60));
      expect(await again.offsetForTime(1255)).toBe(26);
      await again.close();
    }
    expect((await stat(tix)).size).toBeGreaterThan(8);
  });
});

function segmentTix(base: number): string {
  return `${String(base).padStart(20, '0')}.tix`;
}

describe('SegmentLog: the interval fsync runs beside writes', () => {
  it("'interval': a flush issued while the timer's fsync is in flight is written and resolves before that fsync ends", async () => {
    const fs = new FaultyFileSystem(nodeFileSystem);
    const timers = new ManualTimers();
    const dir = await temp.make();
    const log = await openLog(dir, { fsync: 'interval', fsyncIntervalMs: 200, timers }, fs);
    log.append(messages(0, 10));
    await log.flush();
    const gate = fs.pauseNext('datasync');
    timers.advance(200);
    await gate.reached; // the interval fsync is held in its fdatasync
    log.append(messages(10, 20));
    let fsyncEnded = false;
    const flushed = log.flush().then(() => fsyncEnded);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const flushedOrTimeout = await Promise.race([flushed, new Promise<string>((resolve) => (timer = setTimeout(() => resolve('timed out'), 10_000)))]);
    clearTimeout(timer);
    if (flushedOrTimeout !== false) gate.release(); // let the log close
    expect(flushedOrTimeout).toBe(false); // resolved while the fsync was still held
    expect(log.durableOffset).toBe(0);
    expect(await log.read(10, 100, 10_000)).toHaveLength(10);
    fsyncEnded = true;
    gate.release();
    await log.settled();
    // The fsync covered what was written before it started; the rest waits for the next one.
    expect(log.durableOffset).toBe(10);
    timers.advance(200);
    await log.settled();
    expect(log.durableOffset).toBe(20);
    await fs.crash(); // both fsyncs together cover all 20
    const again = await openLog(dir, {}, fs);
    expect(again.endOffset).toBe(20);
  });

  /** A log under 'interval' with 10 records written, whose interval fsync is held in its fdatasync; 10 more written meanwhile. */
  async function heldIntervalSync(options: SegmentLogOptions = {}): Promise<{ log: SegmentLog; fs: FaultyFileSystem; timers: ManualTimers; dir: string; release: () => void; events: StorageEvent[] }> {
    const fs = new FaultyFileSystem(nodeFileSystem);
    const timers = new ManualTimers();
    const dir = await temp.make();
    const events: StorageEvent[] = [];
    const log = await openLog(dir, { fsync: 'interval', fsyncIntervalMs: 200, timers, onEvent: (e) => events.push(e), ...options }, fs);
    log.append(messages(0, 10));
    await log.flush();
    const gate = fs.pauseNext('datasync');
    timers.advance(200);
    await gate.reached;
    log.append(messages(10, 20));
    await log.flush();
    return { log, fs, timers, dir, release: gate.release, events };
  }

  it("'interval': a failed interval fsync is reported, records written during it are written again, and the retry makes them all durable", async () => {
    const { log, fs, timers, dir, release, events } = await heldIntervalSync({ retryDelayMs: 1000 });
    fs.failNext('datasync', 'EIO');
    release();
    await log.settled();
    expect(log.health()).toMatchObject({ status: 'degraded', writeError: { code: 'STORAGE_IO' } });
    expect(events.filter((e) => e.kind === 'health' && e.status === 'degraded')).toHaveLength(1);
    expect(log.durableOffset).toBe(0);
    expect(() => log.append(messages(20, 21))).toThrow(/appends refused/);
    expect(offsets(await log.read(0, 100, 100_000))).toEqual(range(0, 20));
    timers.advance(1000); // the retry rewrites and fsyncs
    await log.settled();
    expect(log.health().status).toBe('ok');
    expect(log.durableOffset).toBe(20);
    await fs.crash();
    const again = await openLog(dir, {}, fs);
    expect(offsets(await again.read(0, 100, 100_000))).toEqual(range(0, 20));
  });

  it("'interval': close, truncateFrom and sync issued during the interval fsync wait for it, then do their work without error", async () => {
    const closing = await heldIntervalSync();
    const closed = closing.log.close();
    closing.release();
    await closed;
    const reopened = await openLog(closing.dir, {}, closing.fs);
    expect(reopened.endOffset).toBe(20);

    const cutting = await heldIntervalSync();
    const cut = cutting.log.truncateFrom(5);
    const synced = cutting.log.sync();
    cutting.release();
    await Promise.all([cut, synced]);
    expect([cutting.log.endOffset, cutting.log.durableOffset]).toEqual([5, 5]);
    expect(offsets(await cutting.log.read(0, 100, 100_000))).toEqual(range(0, 5));
    await cutting.fs.crash();
    const after = await openLog(cutting.dir, {}, cutting.fs);
    expect(after.endOffset).toBe(5);
  });

  it("'interval': a timer that fires while the interval fsync is still running is not lost: what was written meanwhile is fsynced next", async () => {
    const { log, timers, release } = await heldIntervalSync();
    timers.advance(200); // fires during the held fsync
    await new Promise((resolve) => setImmediate(resolve)); // its task (microtasks on the chain) has run
    release();
    await log.settled();
    expect(log.durableOffset).toBe(10);
    timers.advance(200);
    await log.settled();
    expect(log.durableOffset).toBe(20);
  });
});
