import { describe, expect, it, vi } from 'vitest';
import { RelayError } from '../protocol/index.js';
import type { AssignedPartition } from '../protocol/index.js';
import { GroupMembership, type MembershipHooks, type RevokedEvent } from './group-membership.js';

/** A membership whose requests wait until the test answers them. */
function harness() {
  const pending: Array<{ frame: Parameters<MembershipHooks['request']>[0]; answer: () => void }> = [];
  const revoked: RevokedEvent[] = [];
  const membership = new GroupMembership('g', 3000, {
    request: (frame) => new Promise<void>((resolve) => pending.push({ frame, answer: resolve })),
    dropPartition: () => {},
    startPartition: () => {},
    idle: async () => {},
    rejoin: () => {},
    assigned: () => {},
    revoked: (event) => revoked.push(event),
  });
  const frame = (partitions: AssignedPartition[]): void => membership.onAssignment({ type: 'assignment', subscription: 1, partitions });
  /** Lets the release (which first waits for the partition to be idle) send its request. */
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };
  return { membership, pending, revoked, frame, settle };
}

describe('GroupMembership', () => {
  it('a revocation withdrawn while the release is in flight: the member stays off the partition, drops it once released, ignores that epoch after, and takes the new grant', async () => {
    const { membership, pending, revoked, frame, settle } = harness();
    frame([{ topic: 't', partition: 0, epoch: 5, offset: 0 }]);
    frame([{ topic: 't', partition: 0, epoch: 5, revoking: true }]);
    await settle();
    expect(pending.map((p) => p.frame)).toEqual([{ type: 'group-commit', group: 'g', member: membership.member, positions: [{ topic: 't', partition: 0, epoch: 5, offset: 0 }], release: true }]);
    // The revocation is withdrawn (another member expired) and the broker grants it again before the release is
    // answered: the coordinator will honour the release, so handling it now would only hand its messages out twice.
    frame([{ topic: 't', partition: 0, epoch: 5, offset: 0 }]);
    expect(membership.owns('t', 0)).toBe(false);
    pending[0]?.answer();
    await settle();
    expect(membership.owns('t', 0)).toBe(false);
    expect(revoked).toEqual([{ group: 'g', partitions: [{ topic: 't', partition: 0 }], reason: 'rebalance' }]);
    // A broker that applies the release after answering it may still show the released epoch: stale, ignored.
    frame([{ topic: 't', partition: 0, epoch: 5, offset: 0 }]);
    expect(membership.owns('t', 0)).toBe(false);
    // The coordinator grants it anew under a new epoch: the member handles it again.
    frame([{ topic: 't', partition: 0, epoch: 9, offset: 0 }]);
    expect(membership.owns('t', 0)).toBe(true);
  });

  it('a release answered after a newer grant keeps that grant and reports nothing revoked', async () => {
    const { membership, pending, revoked, frame, settle } = harness();
    frame([{ topic: 't', partition: 0, epoch: 5, offset: 0 }]);
    frame([{ topic: 't', partition: 0, epoch: 5, revoking: true }]);
    await settle();
    expect(pending).toHaveLength(1);
    frame([{ topic: 't', partition: 0, epoch: 9, offset: 4 }]);
    pending[0]?.answer();
    await settle();
    expect(membership.owns('t', 0)).toBe(true);
    expect(revoked).toEqual([]);
  });

  it('a revocation of a partition never granted to it (granted and revoked before its first frame) is released at once at the offset the broker names, silently', async () => {
    const { membership, pending, revoked, frame, settle } = harness();
    frame([
      { topic: 't', partition: 0, epoch: 1, offset: 0 },
      { topic: 't', partition: 4, epoch: 5, offset: 7, revoking: true },
    ]);
    await settle();
    expect(pending.map((p) => p.frame)).toEqual([{ type: 'group-commit', group: 'g', member: membership.member, positions: [{ topic: 't', partition: 4, epoch: 5, offset: 7 }], release: true }]);
    expect(membership.owns('t', 4)).toBe(false);
    // The same frame again (no change) sends no second release.
    frame([
      { topic: 't', partition: 0, epoch: 1 },
      { topic: 't', partition: 4, epoch: 5, offset: 7, revoking: true },
    ]);
    await settle();
    expect(pending).toHaveLength(1);
    pending[0]?.answer();
    await settle();
    expect(membership.owns('t', 4)).toBe(false);
    expect(membership.owns('t', 0)).toBe(true);
    // The app was never told of partition 4, so it hears of no revocation either.
    expect(revoked).toEqual([]);
    // A broker still showing the released epoch as revoking: already released, nothing sent.
    frame([
      { topic: 't', partition: 0, epoch: 1 },
      { topic: 't', partition: 4, epoch: 5, offset: 7, revoking: true },
    ]);
    await settle();
    expect(pending).toHaveLength(1);
  });

  it('a revocation without an offset of a partition it does not own is ignored (an older broker: nothing to release at)', async () => {
    const { pending, frame, settle } = harness();
    frame([{ topic: 't', partition: 4, epoch: 5, revoking: true }]);
    await settle();
    expect(pending).toEqual([]);
  });

  it('a heartbeat failing or unanswered on a broker cut off from the coordinator moves the client, at most once per heartbeat interval; FENCED rejoins instead', async () => {
    vi.useFakeTimers();
    try {
      const pending: Array<{ resolve: () => void; reject: (error: RelayError) => void }> = [];
      const moves: string[] = [];
      let rejoins = 0;
      const membership = new GroupMembership('g', 3000, {
        request: () => new Promise<void>((resolve, reject) => pending.push({ resolve, reject })),
        dropPartition: () => {},
        startPartition: () => {},
        idle: async () => {},
        rejoin: () => rejoins++,
        assigned: () => {},
        revoked: () => {},
        moveAway: (reason) => moves.push(reason.code),
      }, () => Date.now());
      membership.start();
      await vi.advanceTimersByTimeAsync(1999); // heartbeat 1 sent at 1000 ms (every third of the session)
      pending.shift()?.reject(new RelayError('NO_QUORUM', 'cut off'));
      await vi.advanceTimersByTimeAsync(1); // heartbeat 2 at 2000 ms
      pending.shift()?.reject(new RelayError('TIMEOUT', 'no answer'));
      await vi.advanceTimersByTimeAsync(0);
      // Two failures 1 ms apart: one move.
      expect(moves).toEqual(['NO_QUORUM']);
      // Heartbeat 3 (3000 ms) unanswered for an interval: a move without waiting for the request timeout.
      await vi.advanceTimersByTimeAsync(1999);
      expect(moves).toEqual(['NO_QUORUM']);
      await vi.advanceTimersByTimeAsync(1);
      expect(moves).toEqual(['NO_QUORUM', 'TIMEOUT']);
      // FENCED: the group forgot the member; it joins again where it is, no move.
      pending.shift()?.reject(new RelayError('FENCED', 'expired'));
      pending.shift()?.resolve();
      await vi.advanceTimersByTimeAsync(0);
      expect(moves).toEqual(['NO_QUORUM', 'TIMEOUT']);
      expect(rejoins).toBe(1);
      membership.stop();
    } finally {
      vi.useRealTimers();
    }
  });
});
