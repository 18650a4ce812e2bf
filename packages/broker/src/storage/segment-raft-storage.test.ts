/**
 * The Raft log over a segment log (layout `unified`) at a crash: a torn tail,
 * a flipped bit, unsynced bytes lost, a crash between recording an installed
 * snapshot and resetting the log, a directory of the other layout; and a
 * property over random appends, conflicting suffixes, votes, commits,
 * compactions, injected write and fsync failures (then `reload`) and power
 * losses, checked against a model of what was synced. The contract it shares
 * with the record file is in raft-storage.test.ts and open-raft-log-files.test.ts.
 */
import { describe, expect, it, vi } from 'vitest';
import { applyPublish } from '../core/partition/apply.js';
import type { PublishCommand } from '../core/partition/command.js';
import { Partition } from '../core/partition/partition.js';
import { StoredCounts } from './stored-counts.js';
import type { Entry } from '../core/raft/index.js';
import { FaultyFileSystem } from '../../test/support/faulty-fs.js';
import { MemoryFileSystem } from '../../test/support/memory-fs.js';
import { DiskPartition } from './disk-partition.js';
import { readWholeFile } from './fs.js';
import type { RaftStorageOptions } from './raft-storage.js';
import { HardStateJournal } from './hard-state-journal.js';
import { SegmentRaftStorage } from './segment-raft-storage.js';
import { SegmentLog } from './segments/index.js';

const DIR = '/data/p0';
const SEGMENT = `${DIR}/log/00000000000000000001.log`;
const entry = (index: number, term: number, data = `e${index}t${term}`): Entry<string> => ({ type: 'normal', index, term, data });
const dataOf = (storage: SegmentRaftStorage<string, string>): string[] => {
  const r = storage.reader;
  return r.entries(r.firstIndex(), r.lastIndex() + 1, 1e9).map((e) => (e.type === 'normal' ? e.data : e.type));
};

function open(fs: FaultyFileSystem, options: Partial<RaftStorageOptions> = {}, report?: (m: string) => void): Promise<SegmentRaftStorage<string, string>> {
  return SegmentRaftStorage.open<string, string>(DIR, ['a', 'b', 'c'], {
    fsync: 'always',
    fsyncIntervalMs: 1000,
    fs,
    ...options,
    ...(report === undefined ? {} : { report: (m: string) => report(m) }),
  });
}

/** Flips one bit of the first occurrence of `needle` in the file at `path`. */
async function flipBitIn(fs: FaultyFileSystem, path: string, needle: string): Promise<void> {
  const bytes = Buffer.from((await readWholeFile(fs.inner, path, 1 << 30)) as Uint8Array);
  const at = bytes.indexOf(needle);
  expect(at).toBeGreaterThan(0);
  const handle = await fs.inner.open(path, 'write');
  await handle.write(Uint8Array.of((bytes[at] as number) ^ 0x04), at);
  await handle.close();
}

describe('SegmentRaftStorage at a crash', () => {
  it('keeps what sync() returned for and loses what was appended after it, vote included', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const storage = await open(fs);
    storage.setHardState({ term: 2, vote: 'b', commit: 0 });
    storage.append([entry(1, 1), entry(2, 2), entry(3, 2)]);
    await storage.sync();
    storage.append([entry(4, 2)]);
    storage.setHardState({ term: 3, vote: 'c', commit: 3 });
    await fs.crash();
    const again = await open(fs);
    expect(again.hardState).toEqual({ term: 2, vote: 'b', commit: 0 });
    expect(dataOf(again)).toEqual(['e1t1', 'e2t2', 'e3t2']);
    await again.close();
  });

  it('a torn tail (part of the last record reached the disk) is cut; appends go on after the last whole entry', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const storage = await open(fs, { fsync: 'interval', fsyncIntervalMs: 60_000 });
    storage.setHardState({ term: 1, vote: 'a', commit: 0 }); // a vote change: fsynced, entries included
    storage.append([entry(1, 1), entry(2, 1)]);
    await storage.sync();
    storage.append([entry(3, 1), entry(4, 1)]);
    await storage.sync(); // written, not fsynced
    const record = (await fs.inner.stat(SEGMENT))!.size / 4;
    await fs.crash({ keepUnsyncedBytes: Math.floor(record * 1.5) }); // entry 3 whole, half of entry 4
    const reports: string[] = [];
    const again = await open(fs, {}, (m) => reports.push(m));
    expect(dataOf(again)).toEqual(['e1t1', 'e2t1', 'e3t1']);
    again.append([entry(4, 2, 'new 4')]);
    await again.sync();
    await again.close();
    const third = await open(fs);
    expect(dataOf(third)).toEqual(['e1t1', 'e2t1', 'e3t1', 'new 4']);
    await third.close();
  });

  it('a flipped bit in an entry with whole entries after it cuts the log there and says so; the commit is clamped', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const storage = await open(fs);
    storage.append([1, 2, 3, 4, 5].map((i) => entry(i, 1, `payload-${i}`)));
    storage.setHardState({ term: 1, vote: 'a', commit: 5 });
    await storage.sync();
    await storage.close();
    await flipBitIn(fs, SEGMENT, 'payload-3');
    const reports: string[] = [];
    const again = await open(fs, {}, (m) => reports.push(m));
    expect(dataOf(again)).toEqual(['payload-1', 'payload-2']);
    expect(again.hardState).toEqual({ term: 1, vote: 'a', commit: 2 });
    expect(reports.some((m) => /damaged/.test(m))).toBe(true);
    // The leader's entries replace the cut ones.
    again.append([entry(3, 1, 'payload-3'), entry(4, 1, 'payload-4')]);
    await again.sync();
    await again.close();
    const third = await open(fs);
    expect(dataOf(third)).toEqual(['payload-1', 'payload-2', 'payload-3', 'payload-4']);
    expect(third.segments.health().status).toBe('ok');
    await third.close();
  });

  it('a conflicting suffix is cut on disk: a restart reads the new leader\'s entries, not the old ones', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const storage = await open(fs);
    storage.append([entry(1, 1), entry(2, 1), entry(3, 1), entry(4, 1)]);
    await storage.sync();
    storage.append([entry(3, 2), entry(4, 2), entry(5, 2)]);
    storage.append([entry(5, 3)]); // overwritten again before the sync: only the queue changes
    await storage.sync();
    await fs.crash();
    const again = await open(fs);
    expect(dataOf(again)).toEqual(['e1t1', 'e2t1', 'e3t2', 'e4t2', 'e5t3']);
    expect(again.reader.term(5)).toBe(3);
    await again.close();
  });

  // Under interval the commit index reaches the journal (fsynced with its batch) while the log's newest entries are
  // written only. A conflict repair must not let a power cut bring back the entries it replaced under that commit: the
  // cut is durable before the new entries are written (SegmentLog.truncateFrom), so they extend the log past its
  // durable end, never overwrite fsynced bytes; a cut loses them from the tail and opening clamps the commit.
  it.each([
    ['one segment', undefined, 0],
    ['one segment, part of the new entries reaching the disk', undefined, 40],
    ['a segment per entry or two', 64, 0],
  ] as const)("under interval, a commit recorded over a conflict repair's unsynced entries never makes the replaced ones committed after a power cut (%s)", async (_, segmentBytes, keepUnsyncedBytes) => {
    const fs = new FaultyFileSystem(new MemoryFileSystem(), { modelOverwrites: true });
    const never = { setTimeout: (): unknown => 0, clearTimeout: (): void => {} }; // the log's interval fsync never runs
    const options = (journal: HardStateJournal) =>
      ({
        fsync: 'interval',
        fsyncIntervalMs: 1, // the commit's timer
        fs,
        hardStates: { journal, key: 'p0' },
        segments: { timers: never, ...(segmentBytes === undefined ? {} : { segmentBytes, indexIntervalBytes: 32 }) },
      }) as const;
    const journal = await HardStateJournal.open('/data/hardstate.journal', { fs });
    const storage = await SegmentRaftStorage.open<string, string>(DIR, ['a', 'b', 'c'], options(journal));
    storage.setHardState({ term: 1, vote: 'a', commit: 0 });
    storage.append([1, 2, 3, 4, 5].map((i) => entry(i, 1)));
    await storage.sync(); // fsynced with the vote
    storage.setHardState({ term: 2, vote: null, commit: 0 });
    await storage.sync(); // the new term, fsynced before the new leader's entries arrive
    expect(storage.segments.durableOffset).toBe(6);
    // The new leader's entries replace 3..5 (same sizes: a stale log would have the right length) and commit them.
    storage.append([3, 4, 5].map((i) => entry(i, 2)));
    storage.setHardState({ term: 2, vote: null, commit: 5 });
    await storage.sync(); // written, not fsynced
    expect(storage.segments.durableOffset).toBeLessThan(6);
    // The commit's timer writes it to the journal, whose batch is fsynced (as is any other group's write to it).
    await vi.waitFor(() => expect(journal.get('p0')).toEqual({ term: 2, vote: null, commit: 5 }), { timeout: 5000, interval: 5 });
    await journal.write('p1', { term: 7, vote: 'b', commit: 3 });
    expect(storage.segments.durableOffset).toBeLessThan(6);
    await fs.crash({ keepUnsyncedBytes });
    const reopened = await HardStateJournal.open('/data/hardstate.journal', { fs });
    expect(reopened.get('p0')?.commit).toBe(5); // the commit survived the cut...
    const again = await SegmentRaftStorage.open<string, string>(DIR, ['a', 'b', 'c'], options(reopened));
    const committed = dataOf(again).slice(0, again.hardState.commit);
    // ...and covers only what this log holds of the new leader's (lost from the tail), never a replaced entry.
    expect(committed).toEqual(['e1t1', 'e2t1', 'e3t2', 'e4t2', 'e5t2'].slice(0, committed.length));
    expect(dataOf(again)).toEqual(committed);
    // In one segment nothing of them was fsynced (small segments: a sealed one was, with its entries).
    if (segmentBytes === undefined && keepUnsyncedBytes === 0) expect(dataOf(again)).toEqual(['e1t1', 'e2t1']);
    await again.close();
    await reopened.close();
  });

  it('compaction keeps the records on disk (they are the partition) and a restart starts its window after the snapshot', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const storage = await open(fs);
    storage.append([entry(1, 1), entry(2, 1), entry(3, 1), entry(4, 1)]);
    storage.setHardState({ term: 1, vote: 'a', commit: 3 });
    await storage.sync();
    await storage.compact(3, 'producers at 3');
    expect(storage.reader.firstIndex()).toBe(4);
    await fs.crash();
    const again = await open(fs);
    expect(again.reader.firstIndex()).toBe(4);
    expect(again.reader.term(3)).toBe(1);
    expect(again.reader.snapshot()?.data).toBe('producers at 3');
    expect(dataOf(again)).toEqual(['e4t1']);
    expect(again.segments.startOffset).toBe(1);
    expect((await again.segments.read(1, 10, 1 << 20)).map((r) => r.offset)).toEqual([1, 2, 3, 4]);
    await again.close();
  });

  it('a crash after recording an installed snapshot but before the log was reset: the log, not matching it, starts over after it', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const storage = await open(fs);
    storage.append([entry(1, 1), entry(2, 1), entry(3, 1)]);
    await storage.sync();
    // The leader's snapshot at 7 (term 4): this log holds no index 7 with term 4.
    storage.applySnapshot({ meta: { index: 7, term: 4, conf: { voters: ['a', 'b', 'c'] } }, data: 'leader state at 7' });
    fs.failNext('unlink', 'EIO', 3); // the reset fails after the snapshot was recorded (the index files' unlinks are quiet)
    await expect(storage.sync()).rejects.toMatchObject({ code: 'STORAGE_ERROR' });
    await fs.crash();
    const reports: string[] = [];
    const again = await open(fs, {}, (m) => reports.push(m));
    expect(again.reader.snapshot()?.meta.index).toBe(7);
    expect(again.reader.firstIndex()).toBe(8);
    expect(again.reader.lastIndex()).toBe(7);
    expect(again.segments.startOffset).toBe(8);
    expect(reports.some((m) => /does not match its snapshot/.test(m))).toBe(true);
    again.append([entry(8, 4)]);
    await again.sync();
    await again.close();
  });

  /** A storage on a crash-model file system holding e1t1, fsynced. */
  const withOneSynced = async (): Promise<{ fs: FaultyFileSystem; storage: SegmentRaftStorage<string, string> }> => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const storage = await open(fs);
    storage.setHardState({ term: 1, vote: 'a', commit: 0 });
    storage.append([entry(1, 1)]);
    await storage.sync();
    return { fs, storage };
  };

  /** What a restart reads back after a power cut. */
  const afterPowerCut = async (fs: FaultyFileSystem): Promise<string[]> => {
    await fs.crash();
    const again = await open(fs);
    const data = dataOf(again);
    await again.close();
    return data;
  };

  it('after a failed fsync under always, reload() drops the entries written and not fsynced (never acknowledged)', async () => {
    const { fs, storage } = await withOneSynced();
    storage.append([entry(2, 1)]);
    fs.failNext('datasync', 'EIO');
    await expect(storage.sync()).rejects.toMatchObject({ code: 'STORAGE_ERROR' });
    await storage.reload();
    expect(dataOf(storage)).toEqual(['e1t1']);
    expect(await afterPowerCut(fs)).toEqual(['e1t1']);
  });

  it('under always, reload() drops the entries not fsynced even when its close could not cut them (the file still holds them whole), and fsyncs what it keeps', async () => {
    const { fs, storage } = await withOneSynced();
    const record = (await fs.stat(SEGMENT))?.size ?? 0; // entries 2 and 3 take as many bytes each
    storage.append([entry(2, 1), entry(3, 1)]);
    fs.tearNextWrite(record + 5); // entry 2 whole, entry 3 torn: never acknowledged
    fs.failNext('truncate', 'EIO', 2); // the failed sync's cut, then the close's
    await expect(storage.sync()).rejects.toMatchObject({ code: 'STORAGE_ERROR' });
    await storage.reload();
    expect(dataOf(storage)).toEqual(['e1t1']);
    expect(await afterPowerCut(fs)).toEqual(['e1t1']);
  });

  it('a reload whose cut fails again fails (the group stays fenced), and the next reload cuts', async () => {
    const { fs, storage } = await withOneSynced();
    storage.append([entry(2, 1)]);
    const record = (await fs.stat(SEGMENT))?.size ?? 0;
    storage.append([entry(3, 1)]);
    fs.tearNextWrite(record); // entry 2 whole (written by this sync with entry 3, torn after it)
    fs.failNext('truncate', 'EIO', 2);
    await expect(storage.sync()).rejects.toMatchObject({ code: 'STORAGE_ERROR' });
    fs.failNext('datasync', 'EIO', 1); // the open's fsync of what the failed close left
    await expect(storage.reload()).rejects.toThrow();
    await storage.reload();
    expect(dataOf(storage)).toEqual(['e1t1']);
    storage.append([entry(2, 2)]);
    await storage.sync();
    expect(await afterPowerCut(fs)).toEqual(['e1t1', 'e2t2']);
  });

  it('a commit index recorded by its timer while a Ready\'s entries wait to be written is not: a reload (or restart) never reads disk entries their truncation replaces as committed', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const fs = new FaultyFileSystem(new MemoryFileSystem());
      const storage = await open(fs, { fsyncIntervalMs: 10 });
      storage.setHardState({ term: 1, vote: 'a', commit: 0 });
      storage.append([entry(1, 1), entry(2, 1), entry(3, 1)]);
      await storage.sync();
      storage.setHardState({ term: 1, vote: 'a', commit: 1 });
      await storage.sync(); // a commit alone: its timer is armed
      storage.append([entry(4, 1)]);
      const fsync = fs.pauseNext('datasync');
      const written = storage.sync();
      await fsync.reached;
      vi.advanceTimersByTime(20); // the commit's write queues behind that sync
      // The next Ready (a new leader's entry 2 replaces ours, committed at 2) before its sync runs; its truncation fails.
      storage.append([entry(2, 2)]);
      storage.setHardState({ term: 2, vote: null, commit: 2 });
      fs.failNext('truncate', 'EIO');
      const next = storage.sync();
      fsync.release();
      await written;
      await expect(next).rejects.toMatchObject({ code: 'STORAGE_ERROR' });
      await storage.reload();
      expect(dataOf(storage)).toEqual(['e1t1', 'e2t1', 'e3t1', 'e4t1']);
      expect(storage.hardState.commit).toBeLessThanOrEqual(1); // was 2: e2t1, replaced by the leader's e2t2, read as committed
      await storage.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('under interval (an entry is acknowledged once written), reload() after a failed write keeps the entries written before it, durably', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const storage = await open(fs, { fsync: 'interval', fsyncIntervalMs: 60_000 });
    storage.setHardState({ term: 1, vote: 'a', commit: 0 });
    storage.append([entry(1, 1)]);
    await storage.sync(); // fsynced with the vote
    storage.append([entry(2, 1), entry(3, 1)]);
    await storage.sync(); // written only: a follower acknowledges them now
    storage.append([entry(4, 1)]);
    fs.failNext('write', 'ENOSPC');
    await expect(storage.sync()).rejects.toMatchObject({ code: 'STORAGE_FULL' });
    await storage.reload();
    expect(dataOf(storage)).toEqual(['e1t1', 'e2t1', 'e3t1']);
    expect(storage.hardState).toEqual({ term: 1, vote: 'a', commit: 0 });
    // Made durable by the reload: a power loss now keeps them.
    await fs.crash();
    const again = await open(fs, { fsync: 'interval', fsyncIntervalMs: 60_000 });
    expect(dataOf(again)).toEqual(['e1t1', 'e2t1', 'e3t1']);
    again.append([entry(4, 1)]);
    await again.sync();
    expect(dataOf(again)).toEqual(['e1t1', 'e2t1', 'e3t1', 'e4t1']);
    await again.close();
  });

  it('under interval, after a failed fsync (the kernel dropped the pages) reload() writes the entries written again from memory; the vote not recorded stays the old one', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const storage = await open(fs, { fsync: 'interval', fsyncIntervalMs: 60_000 });
    storage.setHardState({ term: 1, vote: 'a', commit: 0 });
    storage.append([entry(1, 1)]);
    await storage.sync();
    storage.append([entry(2, 1)]);
    await storage.sync(); // written only
    storage.setHardState({ term: 2, vote: 'b', commit: 0 });
    storage.append([entry(3, 2)]); // written whole by the failing sync (its fsync fails): kept as a crash keeping the page cache would
    fs.failNext('datasync', 'EIO');
    await expect(storage.sync()).rejects.toMatchObject({ code: 'STORAGE_ERROR' });
    await storage.reload();
    expect(dataOf(storage)).toEqual(['e1t1', 'e2t1', 'e3t2']);
    expect(storage.hardState).toEqual({ term: 1, vote: 'a', commit: 0 });
    await fs.crash();
    const again = await open(fs);
    expect(dataOf(again)).toEqual(['e1t1', 'e2t1', 'e3t2']);
    await again.close();
  });

  it('while a reload has closed the log and not opened it again (it failed: the disk is full), reads find nothing instead of failing; the next reload serves them again', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const storage = await open(fs);
    storage.append([entry(1, 1), entry(2, 1)]);
    storage.setHardState({ term: 1, vote: 'a', commit: 2 });
    await storage.sync();
    expect((await storage.readCommitted(1, 10, 1 << 20)).map((e) => e.entry.index)).toEqual([1, 2]);
    fs.failNext('open', 'ENOSPC', 100);
    await expect(storage.reload()).rejects.toBeDefined();
    expect(await storage.readCommitted(1, 10, 1 << 20)).toEqual([]);
    expect((await storage.readRecords(1, 10, 1 << 20)).records).toEqual([]);
    expect(await storage.indexOfOffset(0)).toBeUndefined();
    fs.heal();
    await storage.reload();
    expect((await storage.readCommitted(1, 10, 1 << 20)).map((e) => e.entry.index)).toEqual([1, 2]);
    await storage.close();
  });

  it('refuses a partition directory of the split layout with STORAGE_LAYOUT, touching nothing', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const split = await SegmentLog.open(`${DIR}/log`, fs, { fsync: 'always' });
    split.append([{ timestamp: 1, data: Uint8Array.of(1), encoding: 'raw' }]);
    await split.close();
    await expect(open(fs)).rejects.toMatchObject({ code: 'STORAGE_LAYOUT', message: expect.stringMatching(/split layout.*storage\.layout/) });
    const reopened = await SegmentLog.open(`${DIR}/log`, fs, { fsync: 'always' });
    expect(reopened.endOffset).toBe(1);
    await reopened.close();
  });

  it('and the split layout (DiskPartition) refuses a unified directory: its records are Raft entries, not messages', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const storage = await open(fs);
    storage.append([entry(1, 1)]);
    await storage.sync();
    await storage.close();
    await expect(DiskPartition.open(DIR, fs, { dedupeWindow: 8, segments: {}, report: () => {} })).rejects.toMatchObject({
      code: 'STORAGE_LAYOUT',
      message: expect.stringMatching(/unified layout.*storage\.layout 'split'/),
    });
    const again = await open(fs);
    expect(dataOf(again)).toEqual(['e1t1']);
    await again.close();
  });
});

/** Messages an entry of the model stores: 0 to 2, from its index and term. */
const countOf = (e: Entry<string>): number => (e.index * 7 + e.term) % 3;

/** A small deterministic random stream (mulberry32). */
function randomStream(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

/** What the storage holds as the model sees it: the log from its first index, the vote, the snapshot. */
interface Held {
  log: string[];
  first: number;
  term: number;
  vote: string | null;
  snapshot: number;
}

function held(s: SegmentRaftStorage<string, string>): Held {
  return { log: dataOf(s), first: s.reader.firstIndex(), term: s.hardState.term, vote: s.hardState.vote, snapshot: s.reader.snapshot()?.meta.index ?? 0 };
}

/** Entries (as `e<index>t<term>`) from index `first` on, by index. */
const byIndex = (h: Held): Map<number, string> => new Map(h.log.map((e, i) => [h.first + i, e]));

/**
 * Whether `found` is a state the storage may be in after a failed sync (then a
 * reload or a power loss): what the last successful sync made durable, or
 * part of the failed sync's work done: a log that agrees with the attempted
 * one up to its end and keeps every entry the durable and attempted logs
 * share (a truncation of the uncommitted suffix is durable once done).
 */
function allowedAfterFailure(found: Held, durable: Held, attempted: Held | undefined): boolean {
  const same = JSON.stringify(found) === JSON.stringify(durable);
  if (same || attempted === undefined) return same;
  const want = byIndex(attempted);
  const was = byIndex(durable);
  const got = byIndex(found);
  if (found.snapshot !== durable.snapshot || found.first !== durable.first) return false;
  for (const [index, e] of got) if (want.get(index) !== e) return false;
  for (const [index, e] of was) if (want.get(index) === e && got.get(index) !== e) return false;
  const voteOld = found.term === durable.term && found.vote === durable.vote;
  const voteNew = found.term === attempted.term && found.vote === attempted.vote;
  return voteOld || voteNew;
}

describe('SegmentRaftStorage under fsync interval: a snapshot beside the writes', () => {
  /** Whether `promise` settles within `ms` (bounded: a held write never settles while its gate is closed). */
  const settlesWithin = (promise: Promise<unknown>, ms: number): Promise<boolean> =>
    Promise.race([promise.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms))]);

  it("a snapshot's fsync holds no sync() of the next entries behind it; the snapshot is recorded only once its records are durable, and a power loss keeps both", async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const storage = await open(fs, { fsync: 'interval', fsyncIntervalMs: 60_000 });
    storage.setHardState({ term: 1, vote: 'a', commit: 0 });
    storage.append([entry(1, 1)]);
    await storage.sync(); // a vote: fsynced
    storage.append([entry(2, 1), entry(3, 1)]);
    storage.setHardState({ term: 1, vote: 'a', commit: 3 });
    await storage.sync(); // written, not fsynced
    const renames = fs.calls.rename;
    const fsync = fs.pauseNext('datasync');
    const compacted = storage.compact(3, 'state at 3');
    await fsync.reached;
    // The next publish's entry while the snapshot's fsync is in flight: written now (before, it waited for that fsync).
    storage.append([entry(4, 1)]);
    const next = storage.sync();
    const wentOn = await settlesWithin(next, 2000);
    const recordedEarly = fs.calls.rename !== renames; // the snapshot's file replaced before its records were durable
    fsync.release();
    await next;
    await compacted;
    expect(wentOn).toBe(true);
    expect(recordedEarly).toBe(false);
    expect(storage.reader.firstIndex()).toBe(4);
    expect(dataOf(storage)).toEqual(['e4t1']);
    await fs.crash();
    const again = await open(fs, { fsync: 'interval', fsyncIntervalMs: 60_000 });
    expect(again.reader.firstIndex()).toBe(4);
    expect(again.reader.term(3)).toBe(1);
    // The records the snapshot covers are the partition's messages: kept (a snapshot recorded before them would have been reset past them).
    expect(again.segments.startOffset).toBeLessThanOrEqual(1);
    expect(again.segments.endOffset).toBeGreaterThanOrEqual(4);
    await again.close();
  });

  it('a failed fsync of its records fails the snapshot, records nothing, and the next one succeeds', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const storage = await open(fs, { fsync: 'interval', fsyncIntervalMs: 60_000 });
    storage.setHardState({ term: 1, vote: 'a', commit: 0 });
    storage.append([entry(1, 1)]);
    await storage.sync();
    storage.append([entry(2, 1), entry(3, 1)]);
    storage.setHardState({ term: 1, vote: 'a', commit: 3 });
    await storage.sync();
    const renames = fs.calls.rename;
    fs.failNext('datasync', 'EIO');
    await expect(storage.compact(3, 'state at 3')).rejects.toBeDefined();
    expect(fs.calls.rename).toBe(renames);
    expect(storage.reader.firstIndex()).toBe(1);
    await storage.reload(); // as the group does after a failed write
    expect(dataOf(storage)).toEqual(['e1t1', 'e2t1', 'e3t1']); // written again from memory by the log's recovery
    storage.setHardState({ term: 1, vote: 'a', commit: 3 }); // the commit is recorded by a timer: the reload read it back older
    await storage.sync();
    await storage.compact(3, 'state at 3');
    expect(storage.reader.firstIndex()).toBe(4);
    await storage.close();
    const again = await open(fs, { fsync: 'interval', fsyncIntervalMs: 60_000 });
    expect(again.reader.firstIndex()).toBe(4);
    await again.close();
  });
});

describe("SegmentRaftStorage: the broker's journal of hard states", () => {
  it("a commit index being recorded in the journal (its fdatasync in flight) holds no sync() of the log behind it; it is recorded all the same", async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const journal = await HardStateJournal.open('/data/hardstate.journal', { fs });
    const storage = await SegmentRaftStorage.open<string, string>(DIR, ['a', 'b', 'c'], { fsync: 'always', fsyncIntervalMs: 1, fs, hardStates: { journal, key: 'p0' } });
    storage.setHardState({ term: 1, vote: 'a', commit: 0 });
    storage.append([entry(1, 1)]);
    await storage.sync();
    const journalSync = fs.pauseNext('datasync');
    storage.setHardState({ term: 1, vote: 'a', commit: 1 });
    await storage.sync(); // a commit alone: recorded by a timer, after fsyncIntervalMs
    await journalSync.reached;
    storage.append([entry(2, 1)]);
    // Bounded: before, this sync waited for the journal's fsync, released only after the race.
    const first = await Promise.race([storage.sync().then(() => 'synced'), new Promise((resolve) => setTimeout(() => resolve('held'), 5000))]);
    journalSync.release();
    expect(first).toBe('synced');
    expect(dataOf(storage)).toEqual(['e1t1', 'e2t1']);
    await storage.close();
    await journal.close();
    expect((await HardStateJournal.open('/data/hardstate.journal', { fs })).get('p0')).toEqual({ term: 1, vote: 'a', commit: 1 });
  });

  it.each([
    ['is durable', undefined],
    ['fails', 'EIO'],
  ] as const)('a term and vote written while a commit index not waited for is in the journal (its fsync in flight, then it %s) end there newer than it; no write is lost or reordered', async (_, failure) => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const journal = await HardStateJournal.open('/data/hardstate.journal', { fs });
    const storage = await SegmentRaftStorage.open<string, string>(DIR, ['a', 'b', 'c'], { fsync: 'always', fsyncIntervalMs: 1, fs, hardStates: { journal, key: 'p0' } });
    storage.setHardState({ term: 1, vote: 'a', commit: 0 });
    storage.append([entry(1, 1)]);
    await storage.sync();
    const commitSync = fs.pauseNext('datasync');
    storage.setHardState({ term: 1, vote: 'a', commit: 1 });
    await storage.sync(); // a commit alone: recorded by a timer, not waited for
    await commitSync.reached;
    // A new term and vote while the commit's batch is being fsynced: the next batch, after it.
    storage.setHardState({ term: 2, vote: 'b', commit: 1 });
    const voted = storage.sync();
    if (failure !== undefined) fs.failNext('datasync', failure);
    commitSync.release();
    await voted; // the vote's own batch succeeds either way: it resolves only once durable
    expect(journal.get('p0')).toEqual({ term: 2, vote: 'b', commit: 1 });
    await storage.close();
    await journal.close();
    expect((await HardStateJournal.open('/data/hardstate.journal', { fs })).get('p0')).toEqual({ term: 2, vote: 'b', commit: 1 });
  });
});

describe.each([
  ['always', 'in its directory', false],
  ['always', 'in the broker\'s journal', true],
  // Under interval a sync returns once written (what a follower acknowledges then): no power loss here, its loss window.
  ['interval', 'in its directory', false],
  ['interval', 'in the broker\'s journal', true],
] as const)('SegmentRaftStorage (fsync %s) against a model of what was synced, hard state %s', (fsync, _, withJournal) => {
  // Overwrites modelled: storage writes synchronously (its inline path), and a power cut restores what an overwrite not fsynced replaced.
  const seeds = [1, 2, 3, 4, 5, 6, 7, 8, 1009, 65537];
  it.each([...seeds.map((seed) => [seed, false] as const), ...seeds.map((seed) => [seed, true] as const)])('seed %i (overwrites modelled: %s): after every power loss or reload the log is what sync() returned for, or part of a failed sync\'s work', async (seed, modelOverwrites) => {
    const random = randomStream(seed);
    const fs = new FaultyFileSystem(new MemoryFileSystem(), { modelOverwrites });
    /** The broker's journal of hard states, opened again at each power loss as a restarted broker would. */
    const openJournal = (): Promise<HardStateJournal | undefined> => (withJournal ? HardStateJournal.open('/data/hardstate.journal', { fs }) : Promise.resolve(undefined));
    let journal = await openJournal();
    // Small segments: appends, truncations and resets cross segment boundaries.
    const openStorage = (): Promise<SegmentRaftStorage<string, string>> =>
      SegmentRaftStorage.open<string, string>(DIR, ['a', 'b', 'c'], {
        fsync,
        fsyncIntervalMs: 3_600_000,
        fs,
        segments: { segmentBytes: 256, indexIntervalBytes: 64 },
        counts: { count: countOf, truncated: () => {} },
        ...(journal === undefined ? {} : { hardStates: { journal, key: 'p0' } }),
      });
    let storage = await openStorage();
    let durable = held(storage);
    /** The offset after the messages the snapshot covers. */
    let snapshotEnd = 0;
    /** Offsets follow the entries of the log: dense from the snapshot's end, whatever was cut or lost. */
    const checkOffsets = (): void => {
      const r = storage.reader;
      let end = snapshotEnd;
      expect(storage.endOffsetAt(r.firstIndex() - 1)).toBe(end);
      for (const e of r.entries(r.firstIndex(), r.lastIndex() + 1, 1e9)) {
        end += countOf(e);
        expect(storage.endOffsetAt(e.index)).toBe(end);
      }
    };
    /** The log a sync that failed was writing, until a sync succeeds. */
    let attempted: Held | undefined;
    let term = 1;
    let commit = 0;
    const recovered = (): void => {
      const found = held(storage);
      expect(allowedAfterFailure(found, durable, attempted), JSON.stringify({ found, durable, attempted })).toBe(true);
      expect(storage.hardState.commit).toBeLessThanOrEqual(storage.reader.lastIndex());
      // No committed entry is ever lost; the commit index itself may come back lower (the leader tells it again).
      expect(storage.reader.lastIndex()).toBeGreaterThanOrEqual(commit);
      storage.setHardState({ ...storage.hardState, commit });
      durable = found;
      attempted = undefined;
      term = Math.max(term, storage.hardState.term);
      checkOffsets();
    };
    let crashes = 0;
    let failures = 0;
    for (let step = 0; step < 150; step++) {
      const op = random(12);
      const first = storage.reader.firstIndex();
      const last = storage.reader.lastIndex();
      const floor = Math.max(commit, first - 1);
      if (op <= 3) {
        storage.append(Array.from({ length: 1 + random(3) }, (_, i) => entry(last + 1 + i, term)));
      } else if (op === 4 && last > floor) {
        // A new leader overwrites an uncommitted suffix.
        term++;
        const from = floor + 1 + random(last - floor);
        storage.append(Array.from({ length: 1 + random(3) }, (_, i) => entry(from + i, term)));
      } else if (op === 5) {
        term++;
        storage.setHardState({ term, vote: ['a', 'b', 'c'][random(3)] as string, commit });
      } else if (op <= 8) {
        const fault = random(6);
        if (fault === 0) fs.failNext('datasync', 'EIO');
        else if (fault === 1) fs.tearNextWrite(random(40));
        const wanted = held(storage);
        try {
          await storage.sync();
          durable = wanted;
          attempted = undefined;
          // Entries synced may commit now.
          if (random(2) === 0 && last > commit) {
            commit += 1 + random(last - commit);
            storage.setHardState({ ...storage.hardState, commit });
          }
        } catch {
          failures++;
          attempted = wanted;
          fs.heal();
          // A broker fences the group and reloads at once; under interval the reload keeps what the failed syncs since
          // the last success wrote whole, so a second failed sync before it would widen what it may keep.
          if (random(2) === 0 || fsync === 'interval') {
            await storage.reload();
            recovered();
          }
        }
        fs.heal();
      } else if (op === 9 && attempted === undefined && commit >= first && JSON.stringify(held(storage)) === JSON.stringify(durable)) {
        const index = first + random(commit - first + 1);
        snapshotEnd = storage.endOffsetAt(index);
        await storage.compact(index, `state at ${index}`);
        durable = held(storage);
      } else if (op >= 10 && fsync === 'always') {
        await fs.crash({ keepUnsyncedBytes: random(3) === 0 ? 0 : random(300) });
        crashes++;
        journal = await openJournal();
        storage = await openStorage();
        recovered();
        expect(storage.reader.snapshot()?.data ?? 'none').toBe(durable.snapshot === 0 ? 'none' : `state at ${durable.snapshot}`);
      }
    }
    await storage.sync();
    await storage.close();
    const final = await openStorage();
    expect(held(final)).toEqual(held(storage));
    await final.close();
    expect(crashes).toBeGreaterThan(fsync === 'always' ? 5 : -1);
    expect(failures).toBeGreaterThan(0);
  });
});

describe('SegmentRaftStorage: partition offsets of its entries', () => {
  /** Entries whose data says how many messages they store (`m<count>`), as a resolved publish would. */
  const messages = (index: number, term: number, count: number): Entry<string> => ({ type: 'normal', index, term, data: `m${count}@${index}` });
  const openCounting = (fs: FaultyFileSystem, segmentBytes = 64 * 1024): Promise<SegmentRaftStorage<string, string>> =>
    SegmentRaftStorage.open<string, string>(DIR, ['a', 'b', 'c'], {
      fsync: 'always',
      fsyncIntervalMs: 1000,
      fs,
      segments: { segmentBytes, indexIntervalBytes: Math.min(4096, segmentBytes) },
      counts: { count: (e) => (e.type === 'normal' ? Number(/^m(\d+)@/.exec(e.data)?.[1] ?? 0) : 0), truncated: () => {} },
      snapshotEndOffset: (snapshot) => Number(snapshot.data.split(' ')[1]),
    });

  it('records carry dense offsets across no-ops and conf entries, a conflicting suffix gives its offsets back, and a restart reads them', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const storage = await openCounting(fs);
    storage.append([
      { type: 'noop', index: 1, term: 1 },
      messages(2, 1, 3),
      { type: 'conf', index: 3, term: 1, change: { type: 'add-learner', node: 'd' }, conf: { voters: ['a', 'b', 'c'], learners: ['d'] } },
      messages(4, 1, 2),
    ]);
    storage.setHardState({ term: 1, vote: 'a', commit: 2 });
    await storage.sync();
    expect(storage.committedEndOffset).toBe(3); // entry 4 is not committed: offsets 3 and 4 are not visible
    expect(await storage.indexOfOffset(2)).toBe(2);
    expect(await storage.indexOfOffset(3)).toBeUndefined();
    storage.append([messages(4, 2, 1)]); // a new leader replaced entry 4
    storage.setHardState({ term: 2, vote: 'b', commit: 4 });
    await storage.sync();
    await fs.crash();
    const again = await openCounting(fs);
    expect(again.committedEndOffset).toBe(4);
    expect((await again.readCommitted(1, 10, 1 << 20)).map(({ entry, firstOffset, count }) => [entry.index, entry.type, firstOffset, count])).toEqual([
      [1, 'noop', 0, 0],
      [2, 'normal', 0, 3],
      [3, 'conf', 3, 0],
      [4, 'normal', 3, 1],
    ]);
    again.append([messages(5, 2, 2)]);
    await again.sync();
    expect(again.endOffsetAt(5)).toBe(6);
    expect((await again.readCommitted(4, 10, 1 << 20)).map((e) => e.entry.index)).toEqual([4]); // 5 is not committed
    await again.close();
  });

  it('finds the entry holding an offset below the in-memory window by searching the records on disk, across segments', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const storage = await openCounting(fs, 512);
    const counts = Array.from({ length: 60 }, (_, i) => i % 3); // 0, 1, 2, 0, 1, 2, ...
    storage.append(counts.map((c, i) => messages(i + 1, 1, c)));
    storage.setHardState({ term: 1, vote: 'a', commit: 60 });
    await storage.sync();
    await storage.compact(50, 'compacted at 50');
    expect(storage.segments.segmentCount).toBeGreaterThan(3);
    await storage.close();
    const again = await openCounting(fs, 512);
    expect(again.reader.firstIndex()).toBe(51);
    expect(again.committedEndOffset).toBe(60);
    // Each three entries store 3 messages: entry 3k+1 none, entry 3k+2 offset 3k, entry 3k+3 offsets 3k+1 and 3k+2.
    for (let offset = 0; offset < 60; offset++) {
      const index = (await again.indexOfOffset(offset)) as number;
      const [held] = await again.readCommitted(index, 1, 1);
      expect(held?.entry.index).toBe(index);
      expect(index).toBe(offset % 3 === 0 ? offset + 2 : offset + 2 - ((offset % 3) - 1));
      expect(held!.firstOffset <= offset && offset < held!.firstOffset + held!.count).toBe(true);
    }
    expect(await again.indexOfOffset(60)).toBeUndefined();
    await again.close();
  });

  it('retention deletes old segments by bytes but never a record after the snapshot; reads then start at the first offset held', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const storage = await openCounting(fs, 512);
    storage.append(Array.from({ length: 60 }, (_, i) => messages(i + 1, 1, 1)));
    storage.setHardState({ term: 1, vote: 'a', commit: 60 });
    await storage.sync();
    await storage.compact(50, 'compacted at 50');
    const result = await storage.applyRetention({ maxBytes: 0 }, 0);
    expect(result.deletedSegments).toBeGreaterThan(1);
    expect(storage.segments.startOffset).toBeGreaterThan(1);
    expect(storage.segments.startOffset).toBeLessThanOrEqual(51);
    const first = await storage.firstHeldOffset();
    expect(first).toBe(storage.segments.startOffset - 1); // entry i holds offset i - 1
    expect(await storage.indexOfOffset(0)).toBe(storage.segments.startOffset); // gone: the first entry held
    await storage.close();
    const again = await openCounting(fs, 512);
    expect(again.reader.firstIndex()).toBe(51);
    expect(dataOf(again)).toEqual(Array.from({ length: 10 }, (_, i) => `m1@${51 + i}`));
    await again.close();
  });

  it('retention by message count keeps the entries holding the newest messages, counted by whole entries, never one after the snapshot', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const storage = await openCounting(fs, 512);
    // 60 entries of 2 messages: entry i holds offsets 2i - 2 and 2i - 1.
    storage.append(Array.from({ length: 60 }, (_, i) => messages(i + 1, 1, 2)));
    storage.setHardState({ term: 1, vote: 'a', commit: 60 });
    await storage.sync();
    await storage.compact(50, 'compacted at 50');
    expect((await storage.applyRetention({ maxMessages: 120 }, 0)).deletedSegments).toBe(0);
    const result = await storage.applyRetention({ maxMessages: 40 }, 0);
    expect(result.deletedSegments).toBeGreaterThan(0);
    // The newest 40 messages (offsets 80-119, entries 41-60) are all still held; only segments wholly before them went.
    const first = await storage.firstHeldOffset();
    expect(first).toBeLessThanOrEqual(80);
    expect(first).toBeGreaterThan(0);
    expect(storage.segments.startOffset).toBeLessThanOrEqual(41);
    expect(await storage.applyRetention({ maxMessages: 40 }, 0)).toMatchObject({ deletedSegments: 0 });
    // Asking for none keeps the records after the snapshot anyway (the window the Raft core reads).
    await storage.applyRetention({ maxMessages: 0 }, 0);
    expect(storage.segments.startOffset).toBeGreaterThan(41);
    expect(storage.segments.startOffset).toBeLessThanOrEqual(51);
    expect(dataOf(storage)).toEqual(Array.from({ length: 10 }, (_, i) => `m2@${51 + i}`));
    await storage.close();
  });

  it('an installed snapshot starts the offsets at its end; its records below come from the leader, never from a guess', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const storage = await openCounting(fs);
    storage.append([messages(1, 1, 2)]);
    await storage.sync();
    storage.applySnapshot({ meta: { index: 9, term: 3, conf: { voters: ['a', 'b', 'c'] } }, data: 'end 17' });
    storage.append([messages(10, 3, 4)]);
    storage.setHardState({ term: 3, vote: null, commit: 10 });
    await storage.sync();
    await fs.crash();
    const again = await openCounting(fs);
    expect(again.endOffsetAt(9)).toBe(17);
    expect(again.committedEndOffset).toBe(21);
    expect(await again.indexOfOffset(18)).toBe(10);
    // Offsets the snapshot covers are not held here: the first entry held is the answer (a reader sees a gap).
    expect(await again.indexOfOffset(3)).toBe(10);
    await again.close();
  });
});

describe('SegmentRaftStorage with StoredCounts: the partition a reader sees is the one apply builds', () => {
  it('offsets in the records equal those applyPublish assigns, through duplicates, a gap, a cut suffix and a restart; the stored messages are each entry\'s last `count`', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const applied = new Partition({ dedupeWindow: 16, retentionBytes: Number.MAX_SAFE_INTEGER });
    let appliedIndex = 0;
    let storage: SegmentRaftStorage<PublishCommand, string> | undefined;
    const counts = new StoredCounts(applied, 16, { appliedIndex: () => appliedIndex, entries: (lo, hi) => (storage as SegmentRaftStorage<PublishCommand, string>).reader.entries(lo, hi, 1e9) });
    const openIt = (): Promise<SegmentRaftStorage<PublishCommand, string>> =>
      SegmentRaftStorage.open<PublishCommand, string>(DIR, ['a'], { fsync: 'always', fsyncIntervalMs: 1000, fs, counts, timestampOf: (e) => (e.type === 'normal' ? e.data.timestampMs : 0) });
    storage = await openIt();
    const publish = (index: number, term: number, firstSeq: number, n: number): Entry<PublishCommand> => ({
      type: 'normal',
      index,
      term,
      data: { producerId: 'p', firstSeq, timestampMs: 100 + index, dedupe: true, messages: Array.from({ length: n }, (_, i) => ({ data: Uint8Array.of(firstSeq + i) })) },
    });
    const applyUpTo = (index: number): void => {
      for (const entry of (storage as SegmentRaftStorage<PublishCommand, string>).reader.entries(appliedIndex + 1, index + 1, 1e9)) {
        const outcomes = entry.type === 'normal' ? applyPublish(applied, entry.data) : [];
        const { firstOffset, count } = { firstOffset: storage!.endOffsetAt(entry.index - 1), count: storage!.endOffsetAt(entry.index) - storage!.endOffsetAt(entry.index - 1) };
        // The apply step stores exactly where the record says.
        expect(outcomes.filter((o) => o.kind === 'stored').map((o) => (o as { offset: number }).offset)).toEqual(Array.from({ length: count }, (_, i) => firstOffset + i));
        appliedIndex = entry.index;
        counts.appliedUpTo(entry.index);
      }
    };
    storage.append([publish(1, 1, 0, 3), { type: 'noop', index: 2, term: 1 }, publish(3, 1, 1, 4), publish(4, 1, 9, 1)]); // 3 new; 1..2 dup + 3..4 new; a gap
    storage.setHardState({ term: 1, vote: 'a', commit: 2 });
    await storage.sync();
    applyUpTo(2);
    storage.append([publish(3, 2, 3, 2), publish(4, 2, 4, 3)]); // a new leader: seqs 3..4 new; 4 dup + 5..6 new
    storage.setHardState({ term: 2, vote: 'a', commit: 4 });
    await storage.sync();
    applyUpTo(4);
    expect(storage.committedEndOffset).toBe(7);
    await fs.crash();
    storage = await openIt();
    // A reader from offset 4: the entry holding it, and its last `count` messages from there.
    const index = (await storage.indexOfOffset(4)) as number;
    const read = await storage.readCommitted(index, 10, 1 << 20);
    const messages = read.flatMap(({ entry, firstOffset, count }) =>
      entry.type === 'normal' ? entry.data.messages.slice(entry.data.messages.length - count).map((m, i) => ({ offset: firstOffset + i, data: [...m.data] })) : [],
    );
    expect(messages.filter((m) => m.offset >= 4)).toEqual([4, 5, 6].map((offset) => ({ offset, data: [offset] })));
    expect((applied.read(0, 10, 1 << 20) as Array<{ offset: number; data: Uint8Array }>).map((m) => [m.offset, m.data[0]])).toEqual([0, 1, 2, 3, 4, 5, 6].map((o) => [o, o]));
    await storage.close();
  });
});

describe('SegmentRaftStorage.backfill: installing a leader snapshot copies the records below it', () => {
  /** A log where every entry stores one message: entry `i`'s first offset is `i - 1`. */
  const openOne = (fs: FaultyFileSystem, dir: string): Promise<SegmentRaftStorage<string, string>> =>
    SegmentRaftStorage.open<string, string>(dir, ['a', 'b', 'c'], {
      fsync: 'always',
      fsyncIntervalMs: 1000,
      fs,
      counts: { count: () => 1, truncated: () => {} },
      snapshotEndOffset: (snapshot) => snapshot.meta.index,
    });
  const held = async (storage: SegmentRaftStorage<string, string>): Promise<Array<[number, number, string, number]>> =>
    (await storage.readCommitted(1, 100, 1 << 20)).map(({ entry, firstOffset }) => [entry.index, entry.term, entry.type === 'normal' ? entry.data : entry.type, firstOffset]);

  it('keeps the committed prefix, cuts the uncommitted suffix, copies the rest page by page, and keeps them through the snapshot and a crash', async () => {
    const leaderFs = new FaultyFileSystem(new MemoryFileSystem());
    const leader = await openOne(leaderFs, '/leader/p0');
    leader.setHardState({ term: 2, vote: 'a', commit: 0 });
    leader.append([1, 2, 3, 4].map((i) => entry(i, 1)));
    leader.append([5, 6, 7, 8, 9, 10].map((i) => entry(i, 2)));
    leader.setHardState({ term: 2, vote: 'a', commit: 10 });
    await leader.sync();
    await leader.compact(8, 'state at 8');
    const snapshot = leader.memory.snapshot()!;

    // The follower holds 1-4 committed and 5-6 of an old term, never committed.
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const follower = await openOne(fs, DIR);
    follower.setHardState({ term: 1, vote: 'b', commit: 0 });
    follower.append([1, 2, 3, 4, 5, 6].map((i) => entry(i, 1)));
    follower.setHardState({ term: 1, vote: 'b', commit: 4 });
    await follower.sync();

    const asked: number[] = [];
    await follower.backfill(snapshot, 8, (from) => {
      asked.push(from);
      return leader.readRecords(from, 2, 1 << 20);
    });
    expect(asked).toEqual([5, 7]); // from after its commit, two records a page, up to the snapshot's index
    follower.applySnapshot(snapshot);
    follower.setHardState({ term: 2, vote: 'b', commit: 8 });
    await follower.sync();
    const expected = (await held(leader)).filter(([index]) => index <= 8);
    expect(expected.map(([index, term, data, first]) => [index, term, data, first])).toEqual([
      [1, 1, 'e1t1', 0], [2, 1, 'e2t1', 1], [3, 1, 'e3t1', 2], [4, 1, 'e4t1', 3],
      [5, 2, 'e5t2', 4], [6, 2, 'e6t2', 5], [7, 2, 'e7t2', 6], [8, 2, 'e8t2', 7],
    ]);
    expect(await held(follower)).toEqual(expected);
    expect(await follower.firstHeldOffset()).toBe(0);

    await fs.crash();
    const again = await openOne(fs, DIR);
    expect(again.memory.snapshot()?.meta.index).toBe(8);
    expect(await held(again)).toEqual(expected);
    await Promise.all([again.close(), leader.close()]);
  });

  it('starts at the leader\'s first held record when its retention deleted the ones before', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const follower = await openOne(fs, DIR);
    const snapshot = { meta: { index: 6, term: 2, conf: { voters: ['a', 'b', 'c'] } }, data: 'state at 6' };
    const record = (index: number) => ({ index, term: 2, firstOffset: index - 1, count: 1, timestamp: 0, data: new Uint8Array() });
    // The leader holds from 4 on; records' bodies do not matter below the window (only their headers are checked here).
    const pages: number[] = [];
    await follower.backfill(snapshot, 6, async (from) => {
      pages.push(from);
      return from < 4 ? { startIndex: 4, records: [] } : { startIndex: 4, records: [4, 5, 6].filter((i) => i >= from).map(record) };
    });
    expect(pages).toEqual([1, 4]);
    follower.applySnapshot(snapshot);
    follower.setHardState({ term: 2, vote: null, commit: 6 });
    await follower.sync();
    expect(follower.segments.startOffset).toBe(4);
    expect(await follower.firstHeldOffset()).toBe(3);
    await follower.close();
  });
});

describe('SegmentRaftStorage.backfill when the leader\'s retention deleted the snapshot\'s own record', () => {
  it('installs the snapshot with no record below it (the leader holds none either), instead of failing every install', async () => {
    // Tiny segments: a record fills one, so the leader's sealed segments end right at its snapshot's index.
    const open = (fs: FaultyFileSystem, dir: string): Promise<SegmentRaftStorage<string, string>> =>
      SegmentRaftStorage.open<string, string>(dir, ['a', 'b', 'c'], {
        fsync: 'always',
        fsyncIntervalMs: 1000,
        fs,
        counts: { count: () => 1, truncated: () => {} },
        snapshotEndOffset: (snapshot) => snapshot.meta.index,
        segments: { segmentBytes: 64, indexIntervalBytes: 64 },
      });
    const leader = await open(new FaultyFileSystem(new MemoryFileSystem()), '/leader/p0');
    leader.append([1, 2, 3, 4, 5, 6, 7, 8, 9].map((i) => entry(i, 1)));
    leader.setHardState({ term: 1, vote: 'a', commit: 9 });
    await leader.sync();
    await leader.compact(8, 'state at 8');
    // Retention by age deletes every sealed segment up to the snapshot (its window starts after it).
    await leader.applyRetention({ maxAgeMs: 0 }, Date.now() + 1000);
    expect(leader.segments.startOffset).toBe(9);
    const snapshot = leader.memory.snapshot()!;

    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const follower = await open(fs, DIR);
    await follower.backfill(snapshot, 8, (from) => leader.readRecords(from, 2, 1 << 20));
    follower.applySnapshot(snapshot);
    follower.setHardState({ term: 1, vote: null, commit: 8 });
    await follower.sync();
    expect(follower.segments.startOffset).toBe(9);
    expect(await follower.firstHeldOffset()).toBe(8);
    await Promise.all([follower.close(), leader.close()]);
  });
});

describe('SegmentRaftStorage.repair: damage a read finds is repaired from a healthy replica', () => {
  /** Every entry stores one message (`m1@<index>`); 512-byte segments; sealed segments are checked by reads only, as the broker opens them. */
  const openSmall = (fs: FaultyFileSystem, dir: string): Promise<SegmentRaftStorage<string, string>> =>
    SegmentRaftStorage.open<string, string>(dir, ['a', 'b', 'c'], {
      fsync: 'always',
      fsyncIntervalMs: 1000,
      fs,
      segments: { segmentBytes: 512, indexIntervalBytes: 512, verifyOnOpen: 'active' },
      counts: { count: () => 1, truncated: () => {} },
      snapshotEndOffset: (snapshot) => snapshot.meta.index,
    });
  const one = (index: number): Entry<string> => ({ type: 'normal', index, term: 1, data: `m1@${index}` });
  /** A replica holding entries 1..60, committed, with a snapshot at `snapshotAt`, closed and opened again. */
  async function replica(fs: FaultyFileSystem, dir: string, snapshotAt: number): Promise<SegmentRaftStorage<string, string>> {
    const storage = await openSmall(fs, dir);
    storage.append(Array.from({ length: 60 }, (_, i) => one(i + 1)));
    storage.setHardState({ term: 1, vote: 'a', commit: 60 });
    await storage.sync();
    await storage.compact(snapshotAt, `state at ${snapshotAt}`);
    await storage.close();
    return openSmall(fs, dir);
  }
  /** Every committed entry, page by page from index 1 (a read that meets damage throws). */
  const readAll = async (storage: SegmentRaftStorage<string, string>): Promise<Array<[number, string, number]>> => {
    const out: Array<[number, string, number]> = [];
    for (let next = 1; ; ) {
      const page = await storage.readCommitted(next, 7, 1 << 20);
      if (page.length === 0) return out;
      for (const { entry, firstOffset } of page) out.push([entry.index, entry.type === 'normal' ? entry.data : entry.type, firstOffset]);
      next = page[page.length - 1]!.entry.index + 1;
    }
  };
  /** Flips a bit in the record of entry `index`, in whichever segment file holds it. */
  async function damage(fs: FaultyFileSystem, dir: string, index: number): Promise<string> {
    for (const name of await fs.inner.readdir(`${dir}/log`)) {
      if (!name.endsWith('.log')) continue;
      const bytes = Buffer.from((await readWholeFile(fs.inner, `${dir}/log/${name}`, 1 << 30)) as Uint8Array);
      if (bytes.includes(`m1@${index}`)) {
        await flipBitIn(fs, `${dir}/log/${name}`, `m1@${index}`);
        return name;
      }
    }
    throw new Error(`no segment holds entry ${index}`);
  }

  it('below the snapshot: reads fail, then the damaged index and what follows are copied from the other replica, verified, and served again (also after a restart)', async () => {
    const leaderFs = new FaultyFileSystem(new MemoryFileSystem());
    const leader = await replica(leaderFs, '/leader/p0', 50);
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    await (await replica(fs, DIR, 50)).close();
    const segment = await damage(fs, DIR, 23);
    const storage = await openSmall(fs, DIR);
    expect(storage.segments.segmentBases().map((b) => b.toString().padStart(20, '0') + '.log')).toContain(segment);
    await expect(readAll(storage)).rejects.toMatchObject({ code: 'STORAGE_CORRUPT' });
    expect(storage.segments.damaged).toBe(true);
    const firstDamaged = storage.segments.health().corruptions[0]!.offset;
    expect(firstDamaged).toBeLessThanOrEqual(23);

    const asked: number[] = [];
    await storage.repair((from) => {
      asked.push(from);
      return leader.readRecords(from, 8, 1 << 20);
    });
    expect(asked[0]).toBe(firstDamaged);
    expect(Math.max(...asked)).toBeLessThanOrEqual(50); // the window after the snapshot is written from memory
    expect(storage.segments.damaged).toBe(false);
    const expected = await readAll(leader);
    expect(expected).toEqual(Array.from({ length: 60 }, (_, i) => [i + 1, `m1@${i + 1}`, i]));
    expect(await readAll(storage)).toEqual(expected);

    // Durable: a restart that checks every segment finds nothing wrong.
    await fs.crash();
    const reports: string[] = [];
    const again = await SegmentRaftStorage.open<string, string>(DIR, ['a', 'b', 'c'], {
      fsync: 'always',
      fsyncIntervalMs: 1000,
      fs,
      segments: { segmentBytes: 512, indexIntervalBytes: 512, verifyOnOpen: 'all' },
      counts: { count: () => 1, truncated: () => {} },
      snapshotEndOffset: (snapshot) => snapshot.meta.index,
      report: (m) => reports.push(m),
    });
    expect(again.segments.damaged).toBe(false);
    expect(reports).toEqual([]);
    expect(await readAll(again)).toEqual(expected);
    await Promise.all([again.close(), leader.close()]);
  });

  it('in the window after the snapshot (bit rot while open): rewritten from memory, nothing fetched', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    await (await replica(fs, DIR, 10)).close();
    // No tail cache: every read goes to the segment files.
    const storage = await SegmentRaftStorage.open<string, string>(DIR, ['a', 'b', 'c'], {
      fsync: 'always',
      fsyncIntervalMs: 1000,
      fs,
      segments: { segmentBytes: 512, indexIntervalBytes: 512, verifyOnOpen: 'active', tailCacheBytes: 1 },
      counts: { count: () => 1, truncated: () => {} },
      snapshotEndOffset: (snapshot) => snapshot.meta.index,
    });
    const expected = await readAll(storage);
    expect(storage.reader.firstIndex()).toBe(11);
    await damage(fs, DIR, 33);
    await expect(readAll(storage)).rejects.toMatchObject({ code: 'STORAGE_CORRUPT' });
    expect(storage.segments.damaged).toBe(true);
    await storage.repair(() => Promise.reject(new Error('nothing to fetch: the window is in memory')));
    expect(storage.segments.damaged).toBe(false);
    expect(await readAll(storage)).toEqual(expected);
    await fs.crash();
    const again = await openSmall(fs, DIR);
    expect(await readAll(again)).toEqual(expected);
    await again.close();
  });

  it('a copied record whose offsets do not follow the previous record is refused (STORAGE_CORRUPT); until a repair completes, reads of the cut range, writes and reloads fail', async () => {
    const leaderFs = new FaultyFileSystem(new MemoryFileSystem());
    const leader = await replica(leaderFs, '/leader/p0', 50);
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    await (await replica(fs, DIR, 50)).close();
    await damage(fs, DIR, 23);
    const storage = await openSmall(fs, DIR);
    await expect(readAll(storage)).rejects.toMatchObject({ code: 'STORAGE_CORRUPT' });
    const wrong = async (from: number) => {
      const page = await leader.readRecords(from, 8, 1 << 20);
      return { ...page, records: page.records.map((r) => ({ ...r, firstOffset: r.firstOffset + 1 })) };
    };
    await expect(storage.repair(wrong)).rejects.toMatchObject({ code: 'STORAGE_CORRUPT' });
    // Cut short and not complete: reads from the cut fail, and so do writes (the group is fenced) and a reload.
    expect(storage.repairPending).toBe(true);
    await expect(readAll(storage)).rejects.toMatchObject({ code: 'STORAGE_CORRUPT' });
    storage.append([one(61)]);
    await expect(storage.sync()).rejects.toMatchObject({ code: 'STORAGE_ERROR' });
    await expect(storage.reload()).rejects.toMatchObject({ code: 'STORAGE_ERROR' });
    await storage.repair((from) => leader.readRecords(from, 8, 1 << 20));
    expect(storage.repairPending).toBe(false);
    expect(await storage.segments.read(61, 1, 1 << 20)).toMatchObject([{ offset: 61 }]); // the entry appended meanwhile, written by the repair
    expect(await readAll(storage)).toEqual(await readAll(leader));
    await Promise.all([storage.close(), leader.close()]);
  });
});
