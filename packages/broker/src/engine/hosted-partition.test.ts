import { describe, expect, it, vi } from 'vitest';
import type { DiskPartition } from '../storage/disk-partition.js';
import { HostedPartition, type PartitionGroup, type UpkeepContext } from './hosted-partition.js';

/** A damaged partition replica on broker `a` of voters a, b, c, with fakes for its group and log. */
function damagedReplica(role: { leader: string | null }) {
  const transferLeadership = vi.fn(() => true);
  const repair = vi.fn(async () => {});
  const group = {
    isLeader: () => role.leader === 'a',
    status: () => ({ voters: ['a', 'b', 'c'], progress: [] }),
    transferLeadership,
    get leader() {
      return role.leader;
    },
    fenceReason: undefined,
    applied: 10,
    termOf: () => 1,
  } as unknown as PartitionGroup;
  const partition = {
    damaged: true,
    repair,
    log: { health: () => ({ status: 'corrupt', writeError: undefined, corruptions: [{ offset: 5 }] }) },
  } as unknown as DiskPartition;
  const log = vi.fn();
  const fetchFromLeader = vi.fn();
  const ctx: UpkeepContext = {
    self: 'a',
    now: () => 0,
    log,
    raftLogMaxBytes: 0,
    retentionFor: () => ({}),
    connectedPeers: () => ['c'],
    fetchFromLeader,
  };
  const hosted = new HostedPartition('p/t/0', 't', partition, group, {} as never, ctx); // no checkpoint is due: storage unused
  return { hosted, transferLeadership, repair, log, fetchFromLeader };
}

describe('a hosted partition whose log is damaged', () => {
  it('does not keep leading: it hands leadership to a connected healthy voter, and reports the damage once', () => {
    const { hosted, transferLeadership, repair, log } = damagedReplica({ leader: 'a' });
    hosted.maintain();
    hosted.maintain();
    expect(transferLeadership).toHaveBeenCalledWith('c'); // b is not connected
    expect(repair).not.toHaveBeenCalled(); // it never repairs from itself
    expect(log.mock.calls.filter(([level]) => level === 'error')).toHaveLength(1);
  });

  it('repairs itself from the leader once another broker leads', async () => {
    const role = { leader: null as string | null };
    const { hosted, transferLeadership, repair, fetchFromLeader } = damagedReplica(role);
    hosted.maintain();
    expect(repair).not.toHaveBeenCalled(); // no leader to copy from yet
    role.leader = 'b';
    hosted.maintain();
    expect(transferLeadership).not.toHaveBeenCalled();
    expect(repair).toHaveBeenCalledWith(fetchFromLeader);
    await hosted.finish();
  });
});

describe('a hosted partition checkpointing while a leader snapshot is installed', () => {
  // Chaos logs showed "createSnapshot: 56 is not newer than the stored snapshot 65": the snapshot landed between
  // the checkpoint's capture and its compaction, and the compaction failed.
  it('does not compact to an index the installed snapshot already covers', async () => {
    let snapshotIndex = 0;
    const compactStorage = vi.fn(async () => {});
    const storage = { memory: { snapshot: () => (snapshotIndex === 0 ? undefined : { meta: { index: snapshotIndex } }), confAt: () => ({ voters: ['a', 'b', 'c'] }) }, fileBytes: 0, compact: compactStorage };
    const group = {
      isLeader: () => false,
      status: () => ({ voters: ['a', 'b', 'c'], progress: [] }),
      fenceReason: undefined,
      applied: 2500,
      termOf: () => 1,
      // The leader's snapshot at 3000 is installed before the compaction runs, between two Readys.
      compact: async (step: () => Promise<void>) => {
        snapshotIndex = 3000;
        await step();
      },
    } as unknown as PartitionGroup;
    const partition = { damaged: false, capturable: true, checkpointed: undefined, capture: (index: number) => ({ index }), writeCheckpoint: vi.fn(async () => true) } as unknown as DiskPartition;
    const log = vi.fn();
    const ctx: UpkeepContext = { self: 'a', now: () => 0, log, raftLogMaxBytes: 0, retentionFor: () => ({}), connectedPeers: () => [], fetchFromLeader: vi.fn() };
    const hosted = new HostedPartition('p/t/0', 't', partition, group, storage as never, ctx);
    hosted.maintain(); // 2500 entries applied since no checkpoint: one is due
    await hosted.finish();
    expect(partition.writeCheckpoint).toHaveBeenCalled();
    expect(compactStorage).not.toHaveBeenCalled();
    expect(log).not.toHaveBeenCalledWith('warn', expect.anything(), expect.anything());
  });
});
