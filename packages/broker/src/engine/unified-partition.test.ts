import { describe, expect, it, vi } from 'vitest';
import type { PartitionGroup } from './hosted-partition.js';
import { UnifiedUpkeep, type UnifiedPartition, type UnifiedStorage, type UnifiedUpkeepContext } from './unified-partition.js';

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
    expect(repair).toHaveBeenCalledWith(fetchRecords);
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
