/**
 * When the upkeep of a unified partition records a snapshot: by entries and
 * time as before, and by message bytes (what a restart after a crash reads
 * back and applies again), unless the idempotence table it would write is
 * large next to them. The clock is frozen, so the time trigger never fires.
 */
import { describe, expect, it, vi } from 'vitest';
import type { PublishCommand } from '../core/partition/command.js';
import type { Entry } from '../core/raft/index.js';
import { MemoryFileSystem } from '../../test/support/memory-fs.js';
import type { PartitionCheckpoint } from '../storage/disk-partition.js';
import { SegmentRaftStorage } from '../storage/segment-raft-storage.js';
import { StoredCounts } from '../storage/stored-counts.js';
import type { PartitionGroup } from './hosted-partition.js';
import { SNAPSHOT_BYTES, UnifiedPartition, UnifiedUpkeep, type UnifiedStorage, type UnifiedUpkeepContext } from './unified-partition.js';

const MIB = 1024 * 1024;

/** A partition replica alone in its group: entries appended, synced and applied at once; snapshots counted. */
async function replica(dedupeWindow: number) {
  let counts: StoredCounts | undefined;
  const storage = await SegmentRaftStorage.open<PublishCommand, PartitionCheckpoint>('/data/p0', ['a'], {
    fsync: 'always',
    fsyncIntervalMs: 1000,
    fs: new MemoryFileSystem(),
    snapshotEndOffset: (snapshot) => snapshot.data.endOffset,
    counts: { count: (entry) => (counts as StoredCounts).count(entry), truncated: (index) => counts?.truncated(index) },
  });
  const state = new UnifiedPartition(storage, dedupeWindow, 0);
  let applied = 0;
  /** The followers' progress as the (leader) group sees it. */
  const progress: Array<{ match: number }> = [];
  /** The learners' (a move's new replica). */
  const learnerProgress: Array<{ match: number }> = [];
  counts = new StoredCounts(state, dedupeWindow, { appliedIndex: () => applied, entries: (lo, hi) => storage.memory.entries(lo, hi, Number.MAX_SAFE_INTEGER) });
  const group = {
    get applied() {
      return applied;
    },
    fenceReason: undefined,
    termOf: () => 1,
    isLeader: () => true,
    status: () => ({ progress, learnerProgress }),
    compact: async (run: () => Promise<void>) => run(),
  } as unknown as PartitionGroup;
  const upkeep = new UnifiedUpkeep('p/t/0', 't', state, group, storage, { self: 'a', now: () => 0, log: () => {}, raftLogMaxBytes: 64 * MIB, retentionFor: () => ({}), connectedPeers: () => [], fetchRecords: vi.fn() });
  const snapshots: number[] = [];
  let recording: Promise<void> = Promise.resolve();
  const compact = storage.compact.bind(storage);
  storage.compact = (index, data) => {
    snapshots.push(index);
    recording = compact(index, data);
    return recording;
  };
  const next = new Map<string, number>();
  return {
    snapshots,
    upkeep,
    progress,
    learnerProgress,
    /** Publishes `count` messages of `bytes` bytes from `producerId` in one entry, and applies it. */
    async publish(producerId: string, count: number, bytes: number): Promise<void> {
      const firstSeq = next.get(producerId) ?? 0;
      next.set(producerId, firstSeq + count);
      const command: PublishCommand = { producerId, firstSeq, timestampMs: 0, dedupe: true, messages: Array.from({ length: count }, () => ({ data: new Uint8Array(bytes) })) };
      const entry: Entry<PublishCommand> = { type: 'normal', index: storage.memory.lastIndex() + 1, term: 1, data: command };
      storage.append([entry]);
      storage.setHardState({ term: 1, vote: 'a', commit: entry.index });
      await storage.sync();
      state.apply(command, entry.index);
      applied = entry.index;
    },
    /** Runs one round of upkeep (or its check after an apply); resolves once the snapshot it started (if any) is recorded. */
    async maintain(afterApply = false): Promise<void> {
      if (afterApply) upkeep.applied();
      else upkeep.maintain();
      await recording;
      await new Promise((resolve) => setImmediate(resolve)); // the upkeep's step ends in the microtasks after it
    },
    close: () => storage.close(),
  };
}

describe('UnifiedUpkeep: when a snapshot is due', () => {
  it(`records one once ${SNAPSHOT_BYTES / MIB} MiB of messages were applied since the last, long before 2000 entries or 2 s`, async () => {
    const r = await replica(16_384);
    for (let i = 0; i < 7; i++) await r.publish('p', 4, MIB / 4);
    await r.maintain();
    expect(r.snapshots).toEqual([]);
    await r.publish('p', 4, MIB / 4);
    await r.maintain();
    expect(r.snapshots).toEqual([8]);
    // The count starts again from the snapshot.
    await r.publish('p', 4, MIB / 4);
    await r.maintain();
    expect(r.snapshots).toEqual([8]);
    await r.close();
  });

  it('starts one right after the apply that made it due by bytes (the group calls applied()), and only then', async () => {
    const r = await replica(16_384);
    for (let i = 0; i < 8; i++) {
      await r.publish('p', 4, MIB / 4);
      await r.maintain(true);
      expect(r.snapshots).toEqual(i < 7 ? [] : [8]);
    }
    await r.close();
  });

  it('waits for four times the idempotence table it would write when that table is big (many producers)', async () => {
    const r = await replica(1000);
    // 300 producers with 1000 seqs each: a table of about 2.7 MB, written by a first snapshot after 2000 entries.
    for (let p = 0; p < 300; p++) for (let i = 0; i < 7; i++) await r.publish(`p${p}`, i === 6 ? 400 : 100, 1);
    await r.maintain();
    expect(r.snapshots).toEqual([2100]);
    for (let i = 0; i < 9; i++) await r.publish('big', 4, MIB / 4);
    await r.maintain();
    expect(r.snapshots, 'snapshot after 9 MiB: the table is more than a quarter of it').toEqual([2100]);
    for (let i = 0; i < 3; i++) await r.publish('big', 4, MIB / 4);
    await r.maintain();
    expect(r.snapshots).toEqual([2100, 2112]);
    await r.close();
  });
});

describe('UnifiedUpkeep: settled (maintenance rounds leave it until its partition changes)', () => {
  it('is settled with nothing applied since its snapshot, and not once an entry is applied and no snapshot records it yet', async () => {
    const r = await replica(16_384);
    expect(r.upkeep.maintain()).toBe(true);
    await r.publish('p', 1, 10);
    expect(r.upkeep.maintain(), 'an applied entry: a snapshot is due within 2 s').toBe(false);
    await r.close();
  });

  it('is settled, snapshotting nothing, while it keeps the entries a lagging replica needs (only that replica catching up changes it)', async () => {
    const r = await replica(16_384);
    r.progress.push({ match: 0 });
    for (let i = 0; i < 2000; i++) await r.publish('p', 1, 10);
    expect(r.upkeep.maintain(), '2,000 entries due, kept for the replica at 0').toBe(true);
    await r.maintain();
    expect(r.snapshots).toEqual([]);
    (r.progress[0] as { match: number }).match = 2000;
    expect(r.upkeep.maintain(), 'caught up: the snapshot starts').toBe(false);
    await r.maintain();
    expect(r.snapshots).toEqual([2000]);
    expect(r.upkeep.maintain()).toBe(true);
    await r.close();
  });

  it('keeps the entries a learner (the new replica of a move) needs too: one slower to install a snapshot than the next is made would get another', async () => {
    const r = await replica(16_384);
    r.learnerProgress.push({ match: 0 });
    for (let i = 0; i < 2000; i++) await r.publish('p', 1, 10);
    await r.maintain();
    expect(r.snapshots, 'kept for the learner at 0').toEqual([]);
    (r.learnerProgress[0] as { match: number }).match = 2000;
    await r.maintain();
    expect(r.snapshots).toEqual([2000]);
    await r.close();
  });
});

/** A unified partition replica on broker `a` of voters a, b, c whose log a read found damaged, with fakes for its group and storage. */
function damagedReplica(role: { leader: string | null }, fenced = false) {
  const transferLeadership = vi.fn(() => true);
  const state = { pending: false, damaged: true };
  const repair = vi.fn(async () => {
    state.damaged = false;
  });
  const group = {
    isLeader: () => role.leader === 'a',
    status: () => ({ voters: ['a', 'b', 'c'], progress: [] }),
    transferLeadership,
    get leader() {
      return role.leader;
    },
    fenceReason: fenced ? 'a repair cut the log' : undefined,
    applied: 10,
    termOf: () => 1,
  } as unknown as PartitionGroup;
  const storage = {
    segments: {
      get damaged() {
        return state.damaged;
      },
      health: () => ({ status: 'corrupt', writeError: undefined, corruptions: [{ offset: 5 }] }),
    },
    get repairPending() {
      return state.pending;
    },
    repair,
    memory: { snapshot: () => ({ meta: { index: 10 } }) },
  } as unknown as UnifiedStorage;
  const refreshStart = vi.fn(async () => {});
  const partition = { refreshStart } as unknown as UnifiedPartition;
  const log = vi.fn();
  const fetchRecords = vi.fn();
  const ctx: UnifiedUpkeepContext = { self: 'a', now: () => 0, log, raftLogMaxBytes: 0, retentionFor: () => ({}), connectedPeers: () => ['c'], fetchRecords };
  const upkeep = new UnifiedUpkeep('p/t/0', 't', partition, group, storage, ctx);
  return { upkeep, transferLeadership, repair, log, fetchRecords, refreshStart, state };
}

describe('a unified partition whose log a read found damaged (as a hosted split partition)', () => {
  it('does not keep leading: it hands leadership to a connected healthy voter, and reports the damage once', () => {
    const { upkeep, transferLeadership, repair, log } = damagedReplica({ leader: 'a' });
    upkeep.maintain();
    upkeep.maintain();
    expect(transferLeadership).toHaveBeenCalledWith('c'); // b is not connected
    expect(repair).not.toHaveBeenCalled(); // it never repairs from itself
    expect(log.mock.calls.filter(([level]) => level === 'error')).toHaveLength(1);
  });

  it('repairs its records from the leader once another broker leads, then serves from its first held offset again', async () => {
    const role = { leader: null as string | null };
    const { upkeep, transferLeadership, repair, fetchRecords, refreshStart, log } = damagedReplica(role);
    upkeep.maintain();
    expect(repair).not.toHaveBeenCalled(); // no leader to copy from yet
    role.leader = 'b';
    upkeep.maintain();
    expect(transferLeadership).not.toHaveBeenCalled();
    expect(repair).toHaveBeenCalledTimes(1);
    // The repair's fetch reaches the context's fetchRecords (called on the context: a UnifiedReplica's is a method).
    const fetch = (repair.mock.calls as unknown as Array<[(fromIndex: number) => Promise<unknown>]>)[0]?.[0];
    await fetch?.(7);
    expect(fetchRecords).toHaveBeenCalledWith(7);
    await upkeep.finish();
    expect(refreshStart).toHaveBeenCalled();
    expect(log).toHaveBeenCalledWith('info', 'partition log repaired from the leader', { group: 'p/t/0', leader: 'b' });
  });

  it('completes a repair cut short even while its group is fenced (the short log fenced it)', async () => {
    const { upkeep, repair, state } = damagedReplica({ leader: 'b' }, true);
    state.damaged = false;
    state.pending = true;
    upkeep.maintain();
    expect(repair).toHaveBeenCalledTimes(1);
    await upkeep.finish();
  });
});
