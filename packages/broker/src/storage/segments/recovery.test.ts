/**
 * Crash recovery and fault handling of the segment log, with an injected file
 * system (FaultyFileSystem) or bytes written straight into the files: torn
 * tail, garbage appended, damage in a sealed segment and in the active one,
 * lost unsynced writes, a failing fsync, a full disk.
 */
import { appendFile, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { StoredMessage } from '../../core/partition/partition.js';
import { nodeFileSystem, type FileSystem } from '../fs.js';
import { FaultyFileSystem } from '../../../test/support/faulty-fs.js';
import { LogStorageError } from './errors.js';
import type { SegmentLogOptions, StorageEvent } from './options.js';
import { SegmentLog } from './segment-log.js';
import { ManualTimers, TempDirs, indexOf, messages } from '../../../test/support/segments.js';
import { rejection } from '../../../../../test/support/rejection.js';

const temp = new TempDirs();
const logs: SegmentLog[] = [];
afterEach(async () => {
  await Promise.all(logs.splice(0).map((log) => log.close().catch(() => {})));
  await temp.cleanup();
});

/** Records of these tests: 20 bytes of data, no key: 8 (frame) + 18 (record header) + 20 = 46 bytes. */
const RECORD = 46;
const DATA = { size: 20 };
/** 10 records per segment. */
const SMALL: SegmentLogOptions = { segmentBytes: 10 * RECORD, indexIntervalBytes: 2 * RECORD };

interface Opened {
  log: SegmentLog;
  events: StorageEvent[];
  timers: ManualTimers;
}

async function open(dir: string, fs: FileSystem = nodeFileSystem, options: SegmentLogOptions = {}): Promise<Opened> {
  const events: StorageEvent[] = [];
  const timers = new ManualTimers();
  const log = await SegmentLog.open(dir, fs, { ...SMALL, timers, onEvent: (e) => events.push(e), ...options });
  logs.push(log);
  return { log, events, timers };
}

const offsets = (list: StoredMessage[]): number[] => list.map((m) => m.offset);
const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);
const segmentPath = (dir: string, base: number): string => join(dir, `${String(base).padStart(20, '0')}.log`);


function thrown(fn: () => unknown): LogStorageError {
  try {
    fn();
  } catch (err) {
    return err as LogStorageError;
  }
  throw new Error('expected a throw');
}

/** Every record of the log, read in pages, with the `i` its data carries. */
async function contents(log: SegmentLog): Promise<Array<[number, number]>> {
  const out: Array<[number, number]> = [];
  for (let next = log.startOffset, turns = 0; next < log.endOffset && turns < 10_000; turns++) {
    const page = await log.read(next, 7, 100_000);
    if (page.length === 0) break;
    for (const m of page) out.push([m.offset, indexOf(m.data)]);
    next = (page[page.length - 1] as StoredMessage).offset + 1;
  }
  return out;
}
const identity = (from: number, to: number): Array<[number, number]> => range(from, to).map((i) => [i, i]);

/** Flips one bit of the file at `position`. */
async function flipBit(path: string, position: number): Promise<void> {
  const bytes = await readFile(path);
  bytes[position] = (bytes[position] as number) ^ 0x10;
  await writeFile(path, bytes);
}

/** Name and content of every file in `dir`. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const name of (await readdir(dir)).sort()) out.set(name, (await readFile(join(dir, name))).toString('base64'));
  return out;
}

describe('recovery: the tail', () => {
  it('torn write at the tail: a power cut during the fsync leaves part of a record; it is cut off, reported, and the log goes on', async () => {
    const dir = await temp.make();
    const fs = new FaultyFileSystem(nodeFileSystem);
    const { log } = await open(dir, fs, { segmentBytes: 1024 * 1024 });
    log.append(messages(0, 10, DATA));
    await log.flush(); // acknowledged
    log.append(messages(10, 20, DATA));
    const gate = fs.pauseNext('datasync');
    const flushing = log.flush().catch((err: unknown) => err);
    await gate.reached; // written, not yet durable
    await fs.crash({ keepUnsyncedBytes: 3 * RECORD + 20 }); // three records and a piece of the fourth reached the disk
    gate.release();
    expect(await flushing).toMatchObject({ code: 'STORAGE_IO' }); // the dead process's flush never succeeded

    const { log: again, events } = await open(dir, fs);
    expect(again.recovery.truncatedTail).toEqual({ segment: segmentPath(dir, 0), position: 13 * RECORD, bytes: 20, reason: 'record cut short by the end of the file' });
    expect(events).toContainEqual(expect.objectContaining({ kind: 'tail-truncated', bytes: 20 }));
    expect(again.health().status).toBe('ok');
    expect(await contents(again)).toEqual(identity(0, 13)); // the acknowledged ten, and three whole unacknowledged ones
    expect(again.append(messages(13, 15, DATA))).toBe(13);
    await again.close();
    const third = await open(dir, fs);
    expect(third.log.recovery.truncatedTail).toBeUndefined();
    expect(await contents(third.log)).toEqual(identity(0, 15));
  });

  it('garbage appended after the last record is cut off and reported', async () => {
    const dir = await temp.make();
    const { log } = await open(dir);
    log.append(messages(0, 25, DATA));
    await log.close();
    const active = segmentPath(dir, 20);
    const garbage = Buffer.from([0, 0, 0, 40, 0xde, 0xad, 0xbe, 0xef, ...Array.from({ length: 60 }, (_, i) => (i * 37) & 0xff)]);
    await appendFile(active, garbage);
    const { log: again, events } = await open(dir);
    expect(again.recovery.truncatedTail).toMatchObject({ segment: active, position: 5 * RECORD, bytes: garbage.length });
    expect(events.map((e) => e.kind)).toEqual(['tail-truncated']);
    expect(again.recovery.corruptions).toEqual([]);
    expect(await contents(again)).toEqual(identity(0, 25));
    expect((await readFile(active)).length).toBe(5 * RECORD);
  });

  it('a crash loses only what was not fsynced, across segment rolls', async () => {
    const dir = await temp.make();
    const fs = new FaultyFileSystem(nodeFileSystem);
    const { log } = await open(dir, fs);
    log.append(messages(0, 95, DATA)); // ten segments: each new file's directory entry is synced before records in it are acknowledged
    await log.flush();
    log.append(messages(95, 120, DATA)); // never flushed
    await fs.crash();
    const { log: again } = await open(dir, fs);
    expect(again.recovery.truncatedTail).toBeUndefined();
    expect(again.health().status).toBe('ok');
    expect(await contents(again)).toEqual(identity(0, 95));
  });
});

describe('recovery: damage in the middle', () => {
  it('a flipped bit in a sealed segment: opens corrupt, reports segment and offset, serves reads up to it, deletes nothing, repairs by truncation', async () => {
    const dir = await temp.make();
    const { log } = await open(dir);
    log.append(messages(0, 45, DATA));
    await log.close();
    const damaged = segmentPath(dir, 10);
    await flipBit(damaged, 3 * RECORD + 30); // in the data of offset 13
    const before = await snapshot(dir);

    const { log: again, events } = await open(dir);
    const expected = { segment: damaged, offset: 13, endOffset: 14, position: 3 * RECORD, reason: 'checksum mismatch' };
    expect(again.recovery.corruptions).toEqual([expected]);
    expect(events).toContainEqual({ kind: 'corruption', range: expected });
    expect(events).toContainEqual({ kind: 'health', status: 'corrupt', error: undefined });
    expect(again.health()).toMatchObject({ status: 'corrupt', corruptions: [expected] });
    expect([again.startOffset, again.endOffset]).toEqual([0, 45]);
    // Reads stop before the damage; a read of it fails loudly; what follows is served.
    expect(offsets(await again.read(0, 100, 100_000))).toEqual(range(0, 13));
    const error = await rejection(again.read(13, 10, 100_000), LogStorageError);
    expect(error).toMatchObject({ code: 'STORAGE_CORRUPT', details: { offset: 13, path: damaged } });
    expect(offsets(await again.read(14, 100, 100_000))).toEqual(range(14, 45));
    expect(await again.offsetForTime(1125)).toBe(13);
    // Nothing was changed on disk, and appends go on (a follower keeps replicating).
    expect(await snapshot(dir)).toEqual(before);
    expect(again.append(messages(45, 46, DATA))).toBe(45);
    await again.flush();
    await again.close();

    // Still reported after a restart: never silently healed.
    const { log: third } = await open(dir);
    expect(third.health().status).toBe('corrupt');
    // The repair: cut from the damage, then take the rest from a healthy replica.
    await third.truncateFrom(13);
    expect(third.health()).toMatchObject({ status: 'ok', corruptions: [] });
    third.append(messages(13, 46, DATA));
    await third.flush();
    expect(await contents(third)).toEqual(identity(0, 46));
    await third.close();
    const { log: fourth } = await open(dir);
    expect(fourth.recovery.corruptions).toEqual([]);
    expect(await contents(fourth)).toEqual(identity(0, 46));
  });

  it('a damaged length field in a sealed segment: the valid records after it are still found', async () => {
    const dir = await temp.make();
    const { log } = await open(dir);
    log.append(messages(0, 35, DATA));
    await log.close();
    await flipBit(segmentPath(dir, 20), 4 * RECORD + 1); // the length of offset 24
    const { log: again } = await open(dir);
    expect(again.recovery.corruptions).toMatchObject([{ offset: 24, endOffset: 25, position: 4 * RECORD }]);
    expect(offsets(await again.read(20, 100, 100_000))).toEqual([20, 21, 22, 23]);
    expect(offsets(await again.read(25, 100, 100_000))).toEqual(range(25, 35));
  });

  it('damage in the middle of the active segment is not mistaken for a torn tail: nothing is cut', async () => {
    const dir = await temp.make();
    const { log } = await open(dir, nodeFileSystem, { segmentBytes: 1024 * 1024 });
    log.append(messages(0, 30, DATA));
    await log.close();
    const active = segmentPath(dir, 0);
    await flipBit(active, 12 * RECORD + 9);
    const { log: again } = await open(dir, nodeFileSystem, { segmentBytes: 1024 * 1024 });
    expect(again.recovery.truncatedTail).toBeUndefined();
    expect(again.recovery.corruptions).toMatchObject([{ segment: active, offset: 12, endOffset: 13 }]);
    expect(again.endOffset).toBe(30);
    expect((await readFile(active)).length).toBe(30 * RECORD);
    expect(offsets(await again.read(13, 100, 100_000))).toEqual(range(13, 30));
  });

  it("with verifyOnOpen 'active', damage in a sealed segment is found by the read that meets it", async () => {
    const dir = await temp.make();
    const { log } = await open(dir);
    log.append(messages(0, 35, DATA));
    await log.close();
    await flipBit(segmentPath(dir, 10), 5 * RECORD + 30);
    const { log: again, events } = await open(dir, nodeFileSystem, { verifyOnOpen: 'active' });
    expect(again.health().status).toBe('ok'); // not looked at yet
    expect(offsets(await again.read(0, 100, 100_000))).toEqual(range(0, 15));
    expect(again.health()).toMatchObject({ status: 'corrupt', corruptions: [{ offset: 15, segment: segmentPath(dir, 10) }] });
    expect(events.map((e) => e.kind)).toEqual(['corruption', 'health']);
    await expect(again.read(15, 1, 1000)).rejects.toMatchObject({ code: 'STORAGE_CORRUPT' });
    expect(offsets(await again.read(20, 100, 100_000))).toEqual(range(20, 35)); // the next segments are fine
  });

  it('retention deleting an expired damaged segment clears the damage (judged by the next segment for age)', async () => {
    const dir = await temp.make();
    const { log } = await open(dir);
    log.append(messages(0, 35, DATA)); // timestamps 1000 + 10 i
    await log.close();
    await flipBit(segmentPath(dir, 0), 9 * RECORD + 30); // the newest record of segment 0
    const { log: again, events } = await open(dir);
    expect(again.health().status).toBe('corrupt');
    // Segment 10 starts at 1100: segment 0 is older than that, whatever its damaged record said.
    expect((await again.applyRetention({ maxAgeMs: 1000 }, 2099)).deletedSegments).toBe(0);
    expect((await again.applyRetention({ maxAgeMs: 1000 }, 2101)).deletedSegments).toBe(1);
    expect(again.health()).toMatchObject({ status: 'ok', corruptions: [] });
    expect(events[events.length - 1]).toEqual({ kind: 'health', status: 'ok', error: undefined });
    expect(await contents(again)).toEqual(identity(10, 35));
  });

  it('a missing segment in the middle is reported as a hole, never skipped silently', async () => {
    const dir = await temp.make();
    const { log } = await open(dir);
    log.append(messages(0, 35, DATA));
    await log.close();
    const { rm } = await import('node:fs/promises');
    await rm(segmentPath(dir, 10));
    const { log: again } = await open(dir);
    expect(again.recovery.corruptions).toMatchObject([{ offset: 10, endOffset: 20, reason: 'records 10..19 missing' }]);
    expect(offsets(await again.read(0, 100, 100_000))).toEqual(range(0, 10));
    await expect(again.read(10, 1, 1000)).rejects.toMatchObject({ code: 'STORAGE_CORRUPT' });
    expect(offsets(await again.read(20, 100, 100_000))).toEqual(range(20, 35));
  });
});

describe('write faults', () => {
  it('a failing fsync: the flush rejects, nothing is reported durable, appends are refused until a retry succeeds, and the rewrite repairs what the kernel dropped', async () => {
    const dir = await temp.make();
    const fs = new FaultyFileSystem(nodeFileSystem);
    const { log, events } = await open(dir, fs, { segmentBytes: 1024 * 1024 });
    log.append(messages(0, 10, DATA));
    await log.flush();
    log.append(messages(10, 20, DATA));
    fs.failNext('datasync', 'EIO');
    const error = await rejection(log.flush(), LogStorageError);
    expect(error).toMatchObject({ name: 'LogStorageError', code: 'STORAGE_IO', details: { errno: 'EIO' } });
    expect(error.retriable).toBe(true);
    expect(log.durableOffset).toBe(10);
    expect(log.health()).toMatchObject({ status: 'degraded', writeError: error });
    expect(events).toContainEqual({ kind: 'health', status: 'degraded', error });
    expect(thrown(() => log.append(messages(20, 21, DATA)))).toMatchObject({ code: 'STORAGE_IO' });
    // Reads go on, the records not yet durable included (from memory: on disk they were zeroed).
    expect(await contents(log)).toEqual(identity(0, 20));
    // The next flush writes them again from the last durable byte and fsyncs.
    await log.flush();
    expect(log.durableOffset).toBe(20);
    expect(log.health().status).toBe('ok');
    expect(events[events.length - 1]).toEqual({ kind: 'health', status: 'ok', error: undefined });
    log.append(messages(20, 22, DATA));
    await log.close();
    const { log: again } = await open(dir, nodeFileSystem, { segmentBytes: 1024 * 1024 });
    expect(again.recovery).toMatchObject({ truncatedTail: undefined, corruptions: [] });
    expect(await contents(again)).toEqual(identity(0, 22));
  });

  it('a failing fsync is retried automatically after retryDelayMs', async () => {
    const fs = new FaultyFileSystem(nodeFileSystem);
    const { log, timers } = await open(await temp.make(), fs, { retryDelayMs: 500 });
    log.append(messages(0, 5, DATA));
    fs.failNext('datasync', 'EIO', 2);
    await rejection(log.flush(), LogStorageError);
    timers.advance(500); // the first retry fails too
    await log.settled();
    expect(log.health().status).toBe('degraded');
    expect(timers.pending).toBe(1);
    timers.advance(500);
    await log.settled();
    expect(log.health().status).toBe('ok');
    expect(log.durableOffset).toBe(5);
  });

  it("'interval': a failed fsync keeps the log degraded until an fsync succeeds (a write alone proves nothing)", async () => {
    const fs = new FaultyFileSystem(nodeFileSystem);
    const { log, timers } = await open(await temp.make(), fs, { fsync: 'interval', fsyncIntervalMs: 100, retryDelayMs: 1000 });
    log.append(messages(0, 5, DATA));
    await log.flush();
    fs.failNext('datasync', 'EIO');
    timers.advance(100); // the interval fsync fails
    await log.settled();
    expect(log.health().status).toBe('degraded');
    expect(log.durableOffset).toBe(0);
    await log.flush(); // rewrites, does not fsync
    expect(log.health().status).toBe('degraded');
    timers.advance(1000); // the retry fsyncs
    await log.settled();
    expect(log.health().status).toBe('ok');
    expect(log.durableOffset).toBe(5);
    expect(await contents(log)).toEqual(identity(0, 5));
  });

  it('ENOSPC: publishes fail with STORAGE_FULL, acknowledged data stays readable, and the log recovers by itself when space returns', async () => {
    const dir = await temp.make();
    const fs = new FaultyFileSystem(nodeFileSystem);
    const { log, timers, events } = await open(dir, fs, { retryDelayMs: 1000 });
    log.append(messages(0, 15, DATA));
    await log.flush();
    fs.setCapacity(fs.usedBytes + 2 * RECORD + 7); // two records and a bit fit
    log.append(messages(15, 25, DATA));
    const error = await rejection(log.flush(), LogStorageError);
    expect(error).toMatchObject({ code: 'STORAGE_FULL', details: { errno: 'ENOSPC' } });
    expect(log.health().status).toBe('degraded');
    expect(log.durableOffset).toBe(15);
    expect(thrown(() => log.append(messages(25, 26, DATA)))).toMatchObject({ code: 'STORAGE_FULL' });
    expect(await contents(log)).toEqual(identity(0, 25));
    // Still full: the retry fails and is scheduled again.
    timers.advance(1000);
    await log.settled();
    expect(log.health().status).toBe('degraded');
    // Space returns: the next retry writes everything, with no one asking.
    fs.setCapacity(undefined);
    timers.advance(1000);
    await log.settled();
    expect(log.health()).toMatchObject({ status: 'ok', writeError: undefined });
    expect(log.durableOffset).toBe(25);
    expect(events.filter((e) => e.kind === 'health').map((e) => e.kind === 'health' && e.status)).toEqual(['degraded', 'degraded', 'ok']);
    log.append(messages(25, 30, DATA));
    await log.close();
    const { log: again } = await open(dir);
    expect(again.recovery).toMatchObject({ truncatedTail: undefined, corruptions: [] });
    expect(await contents(again)).toEqual(identity(0, 30));
  });

  it('ENOSPC then a crash before the cleanup: the partial write is cut on open, the acknowledged records are intact', async () => {
    const dir = await temp.make();
    const fs = new FaultyFileSystem(nodeFileSystem);
    const { log } = await open(dir, fs);
    log.append(messages(0, 12, DATA));
    await log.flush();
    fs.setCapacity(fs.usedBytes + RECORD + 11);
    fs.failNext('truncate', 'EIO'); // the rewind cannot cut the partial write either
    log.append(messages(12, 18, DATA));
    await rejection(log.flush(), LogStorageError);
    await fs.crash({ keepUnsyncedBytes: Number.MAX_SAFE_INTEGER }); // everything written reached the disk
    fs.heal();
    const { log: again } = await open(dir, fs);
    expect(again.recovery.truncatedTail).toMatchObject({ bytes: 11 });
    expect(await contents(again)).toEqual(identity(0, 13)); // 12 acknowledged, one whole unacknowledged
  });

  it('ENOSPC when sealing a segment and creating the next: the index is skipped (rebuilt on open), the roll retried, nothing lost', async () => {
    const dir = await temp.make();
    const fs = new FaultyFileSystem(nodeFileSystem);
    const { log, events } = await open(dir, fs);
    log.append(messages(0, 8, DATA));
    await log.flush();
    log.append(messages(8, 14, DATA)); // fills segment 0 and starts segment 10
    fs.failNext('open', 'ENOSPC', 2); // the index file of segment 0, then the file of segment 10
    expect(await rejection(log.flush(), LogStorageError)).toMatchObject({ code: 'STORAGE_FULL' });
    expect(events).toContainEqual(expect.objectContaining({ kind: 'index-write-failed', segment: segmentPath(dir, 0) }));
    expect(log.durableOffset).toBe(10); // segment 0 was sealed before the new file failed
    expect(await contents(log)).toEqual(identity(0, 14));
    await log.flush();
    expect(log.health().status).toBe('ok');
    expect(log.segmentBases()).toEqual([0, 10]);
    await log.close();
    const { log: again } = await open(dir);
    expect(again.recovery.rebuiltIndexes).toBe(1);
    expect(await contents(again)).toEqual(identity(0, 14));
  });
});

describe('close({ drop }): what a crash now would leave, without a crash', () => {
  it('under interval, records written and not fsynced are cut from the file and pending ones dropped; fsynced ones stay', async () => {
    const dir = await temp.make();
    const { log } = await open(dir, nodeFileSystem, { fsync: 'interval', fsyncIntervalMs: 60_000 });
    log.append(messages(0, 3, DATA));
    await log.sync();
    log.append(messages(3, 6, DATA));
    await log.flush(); // written, not fsynced
    log.append(messages(6, 8, DATA)); // not even written
    await log.close({ drop: 'unsynced' });
    expect((await readFile(segmentPath(dir, 0))).length).toBe(3 * RECORD);
    const { log: again } = await open(dir);
    expect(again.endOffset).toBe(3);
    expect(offsets(await again.read(0, 10, 1 << 20))).toEqual(range(0, 3));
  });
});

describe("'interval' acknowledges once written: a failure keeps the records written whole", () => {
  const INTERVAL: SegmentLogOptions = { fsync: 'interval', fsyncIntervalMs: 60_000, segmentBytes: 1024 * 1024 };

  it("a failed write leaves the records written before it in the file, and close({ drop: 'unwritten' }) keeps them", async () => {
    const dir = await temp.make();
    const fs = new FaultyFileSystem(nodeFileSystem);
    const { log } = await open(dir, fs, INTERVAL);
    log.append(messages(0, 3, DATA));
    await log.sync();
    log.append(messages(3, 6, DATA));
    await log.flush(); // written, not fsynced: acknowledged under 'interval'
    log.append(messages(6, 8, DATA));
    fs.failNext('write', 'ENOSPC');
    expect(await rejection(log.flush(), LogStorageError)).toMatchObject({ code: 'STORAGE_FULL' });
    // A process killed now keeps what was written whole: the file is not cut back to the last fsync.
    expect((await readFile(segmentPath(dir, 0))).length).toBe(6 * RECORD);
    await log.close({ drop: 'unwritten' });
    expect((await readFile(segmentPath(dir, 0))).length).toBe(6 * RECORD);
    const { log: again } = await open(dir);
    expect(again.recovery).toMatchObject({ truncatedTail: undefined, corruptions: [] });
    expect(await contents(again)).toEqual(identity(0, 6));
  });

  it('the torn tail of a failed write is cut; the records before it stay', async () => {
    const dir = await temp.make();
    const fs = new FaultyFileSystem(nodeFileSystem);
    const { log } = await open(dir, fs, INTERVAL);
    log.append(messages(0, 4, DATA));
    await log.flush();
    log.append(messages(4, 7, DATA));
    fs.tearNextWrite(RECORD + 10); // record 4 whole, record 5 torn
    await rejection(log.flush(), LogStorageError);
    expect((await readFile(segmentPath(dir, 0))).length).toBe(4 * RECORD);
    await log.close({ drop: 'unwritten' });
    const { log: again } = await open(dir);
    expect(again.recovery.truncatedTail).toBeUndefined();
    expect(await contents(again)).toEqual(identity(0, 4));
  });

  it('after a failed fsync (the kernel dropped the pages) the records written are written again from memory before the cut', async () => {
    const dir = await temp.make();
    const fs = new FaultyFileSystem(nodeFileSystem);
    const { log } = await open(dir, fs, INTERVAL);
    log.append(messages(0, 2, DATA));
    await log.sync();
    log.append(messages(2, 5, DATA));
    await log.flush();
    fs.failNext('datasync', 'EIO'); // the unsynced bytes now read back as zeros
    await rejection(log.sync(), LogStorageError);
    await log.close({ drop: 'unwritten' });
    const { log: again } = await open(dir);
    expect(again.recovery).toMatchObject({ truncatedTail: undefined, corruptions: [] });
    expect(await contents(again)).toEqual(identity(0, 5));
  });

  it("'always' acknowledges once fsynced: a failed write cuts the file back to the last fsync, whatever the drop", async () => {
    const dir = await temp.make();
    const fs = new FaultyFileSystem(nodeFileSystem);
    const { log } = await open(dir, fs, { segmentBytes: 1024 * 1024 });
    log.append(messages(0, 3, DATA));
    await log.flush();
    log.append(messages(3, 6, DATA));
    fs.failNext('datasync', 'EIO'); // written, never acknowledged
    await rejection(log.flush(), LogStorageError);
    expect((await readFile(segmentPath(dir, 0))).length).toBe(3 * RECORD);
    await log.close({ drop: 'unwritten' });
    const { log: again } = await open(dir);
    expect(await contents(again)).toEqual(identity(0, 3));
  });
});
