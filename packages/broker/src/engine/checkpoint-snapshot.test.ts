/**
 * The segment log's durable checkpoint and the partition's Raft snapshot
 * (chaos seed 380: a replica restarted with "state machine at 2111 is behind
 * its Raft snapshot 2146" and never came back). The Raft log must never be
 * compacted (nor given a snapshot) beyond what the segment log has made
 * durable, whatever fails and wherever the broker crashes; and a data dir
 * already in that state must catch up instead of refusing forever.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { applyPublish } from '../core/partition/apply.js';
import type { PublishCommand } from '../core/partition/command.js';
import type { StoredMessage } from '../core/partition/message.js';
import type { Entry, Snapshot } from '../core/raft/index.js';
import type { PeerTransport } from '../net/peer-transport.js';
import type { LogFunction } from '../observability/logger.js';
import { GroupClock } from '../runtime/group-clock.js';
import { DiskPartition, type PartitionCheckpoint } from '../storage/disk-partition.js';
import { nodeFileSystem, type FileSystem } from '../storage/fs.js';
import { DurableRaftStorage } from '../storage/raft-storage.js';
import { FaultyFileSystem } from '../../test/support/faulty-fs.js';
import { GroupFactory } from './group-factory.js';
import { HostedPartition, type PartitionGroup, type UpkeepContext } from './hosted-partition.js';

const dirs: string[] = [];
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

const OPTIONS = { dedupeWindow: 100, segments: { segmentBytes: 64 * 1024 }, report: () => {} };
const text = (seq: number): Uint8Array => new TextEncoder().encode(`m${seq}`);
const command = (seq: number): PublishCommand => ({ producerId: 'p1', firstSeq: seq, messages: [{ data: text(seq) }], timestampMs: 1000 + seq, dedupe: true });
/** Raft entry `index` publishes seq `index - 1` (offset `index - 1`). */
const entry = (index: number): Entry<PublishCommand> => ({ type: 'normal', index, term: 1, data: command(index - 1) });
const stored = (offset: number): StoredMessage => ({ offset, timestamp: 1000 + offset, data: text(offset), encoding: 'raw' });

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'relaymq-checkpoint-snapshot-'));
  dirs.push(dir);
  return dir;
}

async function openReplica(dir: string, fs: FaultyFileSystem) {
  const disk = await DiskPartition.open(join(dir, 'partitions', 'p~t~0'), fs, OPTIONS);
  const storage = await DurableRaftStorage.open<PublishCommand, PartitionCheckpoint>(join(dir, 'raft', 'p~t~0.log'), ['a', 'b', 'c'], { fsync: 'always', fsyncIntervalMs: 1000, fs });
  cleanups.push(() => disk.close(), () => storage.close());
  return { disk, storage };
}

/** Applies Raft entries `from..to` to both logs, as a follower that received and applied them. */
async function applyEntries(disk: DiskPartition, storage: DurableRaftStorage<PublishCommand, PartitionCheckpoint>, from: number, to: number): Promise<void> {
  const entries: Entry<PublishCommand>[] = [];
  for (let index = from; index <= to; index++) entries.push(entry(index));
  storage.append(entries);
  storage.setHardState({ ...storage.hardState, term: 1, commit: to });
  await storage.sync();
  for (const e of entries) if (e.type === 'normal') applyPublish(disk, e.data);
}

/** What a restart finds: the checkpoint (segment log) and the Raft snapshot (Raft log). */
async function reopen(dir: string, fs: FaultyFileSystem): Promise<{ checkpoint: number; snapshot: number; endOffset: number }> {
  const { disk, storage } = await openReplica(dir, fs);
  return { checkpoint: disk.checkpointed?.index ?? 0, snapshot: storage.memory.snapshot()?.meta.index ?? 0, endOffset: disk.endOffset };
}


/** A broker's group factory over `dir` (broker `a`, no peers linked), logging to `log`. */
function factoryOn(dir: string, fs: FileSystem, log: LogFunction): GroupFactory {
  return new GroupFactory({
    self: 'a',
    transport: { send: () => {}, understands: () => false, connectedPeers: () => [] } as unknown as PeerTransport,
    dataDir: dir,
    dedupeWindow: 100,
    retentionBytes: 0,
    fsync: 'always',
    fsyncIntervalMs: 1000,
    segmentBytes: 64 * 1024,
    maxOpenSegmentFiles: 64,
    maxOpenRaftLogFiles: 64,
    raftLogMaxBytes: 1 << 20,
    storage: { layout: 'split' }, // checkpoints are the split layout's
    fileSystem: fs,
    raftConfig: {},
    clock: new GroupClock(),
    now: () => 0,
    log,
  });
}

describe('the Raft snapshot never gets ahead of the durable checkpoint', () => {
  it('a checkpoint taken while a leader snapshot is installed is not written over it, even when the disk fills before the next one and the broker crashes', async () => {
    const dir = await tempDir();
    const fs = new FaultyFileSystem(nodeFileSystem);
    const { disk, storage } = await openReplica(dir, fs);
    await applyEntries(disk, storage, 1, 10); // applied 10, no checkpoint yet

    let now = 0;
    let applied = 10;
    const group = {
      isLeader: () => false,
      status: () => ({ voters: ['a', 'b', 'c'], progress: [] }),
      fenceReason: undefined,
      get applied() {
        return applied;
      },
      termOf: () => 1,
      compact: async (step: () => Promise<void>) => step(),
    } as unknown as PartitionGroup;
    const log = vi.fn();
    const ctx: UpkeepContext = { self: 'a', now: () => now, log, raftLogMaxBytes: 0, retentionFor: () => ({}), connectedPeers: () => [], fetchFromLeader: vi.fn() };
    const hosted = new HostedPartition('p/t/0', 't', disk, group, storage, ctx);

    // The leader's snapshot at 20 (messages 0..19), installed as RaftGroup does: the partition first, then the Raft log.
    const data: PartitionCheckpoint = { index: 20, term: 1, startOffset: 0, endOffset: 20, producers: [{ producerId: 'p1', nextSeq: 20, recent: [] }] };
    const snapshot: Snapshot<PartitionCheckpoint> = { meta: { index: 20, term: 1, conf: storage.confState }, data };
    const fetch = async (offset: number) => ({ startOffset: 0, messages: Array.from({ length: 20 - offset }, (_, i) => stored(offset + i)) });
    const paused = fs.pauseNext('datasync'); // the install's checkpoint: its segments' fsync
    const installing = (async () => {
      await disk.install(data, fetch);
      storage.applySnapshot(snapshot);
      await storage.sync();
      applied = 20;
    })();
    await paused.reached;
    // Meanwhile the upkeep finds a checkpoint due: `applied` is still 10, the messages already the snapshot's.
    now = 10_000;
    hosted.maintain();
    paused.release();
    await installing;
    // Entries after the snapshot are applied, then the disk fills: the next checkpoint (the last chance to line
    // the two up) fails with ENOSPC, and the broker dies.
    await applyEntries(disk, storage, 21, 25);
    applied = 25;
    fs.setCapacity(fs.usedBytes);
    await hosted.finish();
    expect(log).toHaveBeenCalledWith('warn', 'final checkpoint failed', expect.objectContaining({ error: expect.stringContaining('ENOSPC') }));
    await fs.crash();
    fs.heal();

    const after = await reopen(dir, fs);
    expect(after.snapshot).toBe(20);
    expect(after.checkpoint).toBeGreaterThanOrEqual(after.snapshot); // 10 before the fix: "state machine at 10 is behind its Raft snapshot 20"
    expect(after.endOffset).toBe(20);
  });

  it('a checkpoint whose directory fsync failed is made durable by the rewind that reads it back, before the Raft log records it', async () => {
    const dir = await tempDir();
    const fs = new FaultyFileSystem(nodeFileSystem);
    const { disk, storage } = await openReplica(dir, fs);
    await applyEntries(disk, storage, 1, 10);
    await disk.writeCheckpoint(disk.capture(10, 1));
      expect(disk.checkpointed?.index).toBe(10);
    for (let seq = 10; seq < 15; seq++) applyPublish(disk, command(seq)); // applied from entries the Raft log lost (fsync interval)

    // The checkpoint at 15 is renamed into place, then the directory fsync fails (a full disk): the write
    // failed, yet the file reads back as the new one until a crash undoes the rename.
    fs.failNext('syncDir', 'ENOSPC');
    await expect(disk.writeCheckpoint(disk.capture(15, 1))).rejects.toThrow(/ENOSPC/);
    // The group fences and recovers: the partition rewinds to the checkpoint it reads back, and the Raft log lines up with it.
    const rewound = await disk.rewind();
    expect(rewound?.index).toBe(15);
    storage.resumeAt(rewound!.index, rewound!.term, rewound!); // beyond the Raft log's last entry: becomes its snapshot
    await storage.sync();
    await fs.crash();

    const after = await reopen(dir, fs);
    expect(after.snapshot).toBe(15);
    expect(after.checkpoint).toBeGreaterThanOrEqual(after.snapshot); // 10 before the fix
    expect(after.endOffset).toBe(15);
  });

  it('a checkpoint or compaction that hits ENOSPC never leaves the Raft snapshot ahead after a crash', async () => {
    const dir = await tempDir();
    const fs = new FaultyFileSystem(nodeFileSystem);
    const { disk, storage } = await openReplica(dir, fs);
    await applyEntries(disk, storage, 1, 10);
    let applied = 10;
    const group = {
      isLeader: () => false,
      status: () => ({ voters: ['a', 'b', 'c'], progress: [] }),
      fenceReason: undefined,
      get applied() {
        return applied;
      },
      termOf: () => 1,
      compact: async (step: () => Promise<void>) => step(),
    } as unknown as PartitionGroup;
    let now = 0;
    const log = vi.fn();
    const ctx: UpkeepContext = { self: 'a', now: () => now, log, raftLogMaxBytes: 0, retentionFor: () => ({}), connectedPeers: () => [], fetchFromLeader: vi.fn() };
    const hosted = new HostedPartition('p/t/0', 't', disk, group, storage, ctx);
    now = 10_000;
    hosted.maintain(); // checkpoint and compaction at 10
    await hosted.finish();
    expect(storage.memory.snapshot()?.meta.index).toBe(10);
    // The checkpoint records the configuration in effect at its index: a restart whose Raft log lost that entry resumes with it.
    expect(disk.checkpointed?.conf).toEqual(storage.memory.confAt(10));
    expect(disk.checkpointed?.conf?.voters).toHaveLength(3);

    // The disk is full at the next checkpoint: its segment fsync, then its file, fail; nothing may be compacted.
    await applyEntries(disk, storage, 11, 20);
    applied = 20;
    fs.failNext('write', 'ENOSPC', 2);
    now += 10_000;
    hosted.maintain();
    await hosted.finish();
    expect(storage.memory.snapshot()?.meta.index).toBe(10);
    expect(disk.checkpointed?.index).toBe(10);
    await disk.log.sync(); // space again: the segment log takes appends
    // The checkpoint is written, then the Raft log's rewrite fails with ENOSPC: the checkpoint is ahead, which is safe.
    await applyEntries(disk, storage, 21, 30);
    applied = 30;
    fs.setCapacity(fs.usedBytes + 450); // measured: room for the segments and the checkpoint file, not for the Raft log's rewrite
    now += 10_000;
    hosted.maintain();
    await hosted.finish();
    expect(disk.checkpointed?.index).toBe(30);
    expect(log).toHaveBeenCalledWith('warn', 'partition maintenance failed', expect.objectContaining({ error: expect.stringContaining('ENOSPC') }));
    await fs.crash();
    fs.heal();

    const after = await reopen(dir, fs);
    expect(after).toMatchObject({ checkpoint: 30, snapshot: 10, endOffset: 30 });
  });
});

describe('a data dir whose checkpoint is behind its Raft snapshot', () => {
  it('catches up from another replica before its group starts, keeping term and vote, and says so once', async () => {
    const dir = await tempDir();
    const fs = new FaultyFileSystem(nodeFileSystem);
    {
      // Built by hand: checkpoint at 10 (messages 0..9), Raft log compacted to a snapshot at 20 (messages 0..19), vote for b in term 3.
      const { disk, storage } = await openReplica(dir, fs);
      await applyEntries(disk, storage, 1, 10);
      await disk.writeCheckpoint(disk.capture(10, 1));
      expect(disk.checkpointed?.index).toBe(10);
      await applyEntries(disk, storage, 11, 20); // not checkpointed: a restart cuts them
      storage.setHardState({ term: 3, vote: 'b', commit: 20 });
      await storage.compact(20, { index: 20, term: 1, startOffset: 0, endOffset: 20, producers: [{ producerId: 'p1', nextSeq: 20, recent: [17, 18, 19] }] });
      await disk.close();
      await storage.close();
      cleanups.splice(0);
    }

    const logged: Array<{ level: string; message: string; fields: Record<string, unknown> | undefined }> = [];
    const factory = factoryOn(dir, fs, (level, message, fields) => void logged.push({ level, message, fields }));
    cleanups.push(() => factory.close());
    // b is down (its fetches fail), c serves what it holds.
    const fetchFromLeader = vi.fn(async ({ leader }: { leader: string | null }, offset: number) => {
      if (leader === 'b') throw new Error('b is unreachable');
      return { startOffset: 0, messages: Array.from({ length: Math.min(5, 20 - offset) }, (_, i) => stored(offset + i)) };
    });
    const hooks = { appended: () => {}, applied: () => {}, leaderChanged: () => {}, confChanged: () => {}, fetchFromLeader, fetchRecords: () => Promise.reject(new Error('split layout')), retentionFor: () => ({}) };

    const opened = await factory.partition('t', 0, ['a', 'b', 'c'], hooks);
    cleanups.push(async () => opened.group.stop());
    const disk = opened.log as DiskPartition;
    expect(disk.checkpointed?.index).toBe(20);
    expect(disk.endOffset).toBe(20);
    expect(opened.group.applied).toBe(20);
    expect(opened.group.status().term).toBe(3); // term and vote kept: the Raft log was not touched
    const read = await disk.read(0, 100, 1 << 20);
    expect(read.map((m) => new TextDecoder().decode(m.data))).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
    // The idempotence table is the snapshot's: seq 19 is a duplicate, 20 new.
    expect(applyPublish(disk, command(19))[0]).toEqual({ kind: 'duplicate', offset: 19 });
    expect(fetchFromLeader).toHaveBeenCalledWith(expect.objectContaining({ id: 'p/t/0', leader: 'c' }), 10);
    const warnings = logged.filter((l) => l.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.fields).toMatchObject({ group: 'p/t/0', checkpointIndex: 10, snapshotIndex: 20 });
  });

  it('without a replica to copy from, is not hosted (retried later), and warns only once', async () => {
    const dir = await tempDir();
    const fs = new FaultyFileSystem(nodeFileSystem);
    {
      const { disk, storage } = await openReplica(dir, fs);
      await applyEntries(disk, storage, 1, 10);
      await disk.writeCheckpoint(disk.capture(10, 1));
      expect(disk.checkpointed?.index).toBe(10);
      await applyEntries(disk, storage, 11, 20); // not checkpointed: a restart cuts them
      await storage.compact(20, { index: 20, term: 1, startOffset: 0, endOffset: 20, producers: [] });
      await disk.close();
      await storage.close();
      cleanups.splice(0);
    }
    const logged: string[] = [];
    const factory = factoryOn(dir, fs, (level) => void logged.push(level));
    cleanups.push(() => factory.close());
    const hooks = {
      appended: () => {},
      applied: () => {},
      leaderChanged: () => {},
      confChanged: () => {},
      fetchFromLeader: async () => {
        throw new Error('nobody serves');
      },
      fetchRecords: () => Promise.reject(new Error('split layout')),
      retentionFor: () => ({}),
    };
    for (let attempt = 0; attempt < 3; attempt++) {
      await expect(factory.partition('t', 0, ['a', 'b', 'c'], hooks)).rejects.toThrow(/behind its Raft snapshot 20/);
    }
    expect(logged.filter((level) => level === 'warn')).toHaveLength(1);
    // The data dir is as it was: the checkpoint still at 10, the Raft log's snapshot at 20.
    const after = await reopen(dir, fs);
    expect(after).toMatchObject({ checkpoint: 10, snapshot: 20 });
  });
});
