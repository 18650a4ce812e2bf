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

  it('an older grant than the one held (a broker that forgot the group: an in-memory one restarted) is taken: start over from its position', () => {
    const started: Array<[number, number]> = [];
    const assigned: number[] = [];
    const membership = new GroupMembership('g', 3000, {
      request: async () => {},
      dropPartition: () => {},
      startPartition: (_topic, partition, offset) => started.push([partition, offset]),
      idle: async () => {},
      rejoin: () => {},
      assigned: (event) => assigned.push(...event.partitions.map((p) => p.partition)),
      revoked: () => {},
    });
    membership.onAssignment({ type: 'assignment', subscription: 1, partitions: [{ topic: 't', partition: 0, epoch: 9, offset: 100 }] });
    membership.onAssignment({ type: 'assignment', subscription: 1, partitions: [{ topic: 't', partition: 0, epoch: 5, offset: 40 }] });
    expect(started).toEqual([[0, 100], [0, 40]]);
    expect(assigned).toEqual([0, 0]);
    expect(membership.grantOf('t', 0)).toBe(5);
  });

  describe('its broker names another log (an in-memory broker restarted: groups and epochs started over)', () => {
    /** A membership recording what it asks of its subscription. */
    function recording() {
      const calls: string[] = [];
      const requests: Array<Parameters<MembershipHooks['request']>[0]> = [];
      const membership = new GroupMembership('g', 3000, {
        request: async (frame) => void requests.push(frame),
        dropPartition: (_topic, partition) => void calls.push(`drop ${partition}`),
        startPartition: (_topic, partition, offset) => void calls.push(`start ${partition}@${offset}`),
        reset: (_topic, partition, expected, first) => void calls.push(`reset ${partition} ${expected}->${first}`),
        idle: async () => {},
        rejoin: () => {},
        assigned: (event) => void calls.push(`assigned ${event.partitions.map((p) => p.partition).join(',')}`),
        revoked: (event) => void calls.push(`revoked ${event.reason} ${event.partitions.map((p) => p.partition).join(',')}`),
      });
      const frame = (partitions: AssignedPartition[]): void => membership.onAssignment({ type: 'assignment', subscription: 1, partitions });
      return { membership, calls, requests, frame };
    }

    it('a grant under the epoch it held is a new one: it starts over at the grant, reports the reset, and commits nothing of the old log', () => {
      const { membership, calls, frame } = recording();
      frame([{ topic: 't', partition: 0, epoch: 1, offset: 0 }]);
      membership.handled('t', 0, 2);
      calls.length = 0;
      membership.logLost();
      expect(calls).toEqual(['drop 0', 'revoked lost 0']);
      expect(membership.owns('t', 0)).toBe(false);
      expect(membership.fence([{ topic: 't', partition: 0, offset: 3 }])).toEqual([]);
      calls.length = 0;
      frame([{ topic: 't', partition: 0, epoch: 1, offset: 0 }]);
      expect(calls).toEqual(['reset 0 3->0', 'start 0@0', 'assigned 0']);
      expect(membership.fence([{ topic: 't', partition: 0, offset: 1 }])).toEqual([{ topic: 't', partition: 0, offset: 1, epoch: 1 }]);
      // Reported once: the same grant seen again (a rejoin to the same log) keeps going.
      calls.length = 0;
      frame([{ topic: 't', partition: 0, epoch: 1, offset: 0 }]);
      expect(calls).toEqual([]);
    });

    it('a grant under an epoch it released in the old log is taken (on the same log it stays stale)', async () => {
      const { membership, calls, requests, frame } = recording();
      frame([{ topic: 't', partition: 0, epoch: 3, offset: 0 }]);
      frame([{ topic: 't', partition: 0, epoch: 3, revoking: true }]);
      for (let i = 0; i < 5; i++) await Promise.resolve();
      expect(requests).toMatchObject([{ type: 'group-commit', release: true, positions: [{ epoch: 3 }] }]);
      expect(membership.owns('t', 0)).toBe(false);
      frame([{ topic: 't', partition: 0, epoch: 2, offset: 0 }]);
      expect(membership.owns('t', 0)).toBe(false);
      membership.logLost();
      calls.length = 0;
      frame([{ topic: 't', partition: 0, epoch: 2, offset: 0 }]);
      expect(membership.grantOf('t', 0)).toBe(2);
      // It was not held when the log was lost: nothing of it to report.
      expect(calls).toEqual(['start 0@0', 'assigned 0']);
    });

    it('a revocation under a lower epoch than the one it held, of a grant it never saw, is released at the offset named (on the same log it is ignored)', async () => {
      const { membership, requests, frame } = recording();
      frame([{ topic: 't', partition: 0, epoch: 4, offset: 0 }]);
      frame([{ topic: 't', partition: 0, epoch: 1, offset: 0, revoking: true }]);
      expect(membership.grantOf('t', 0)).toBe(4);
      membership.logLost();
      frame([{ topic: 't', partition: 0, epoch: 1, offset: 0, revoking: true }]);
      for (let i = 0; i < 5; i++) await Promise.resolve();
      expect(requests).toEqual([{ type: 'group-commit', group: 'g', member: membership.member, positions: [{ topic: 't', partition: 0, epoch: 1, offset: 0 }], release: true }]);
    });
  });

  it('a join refused twice in a row with NOT_READY moves the member off its broker; a refusal of another kind, or a join confirmed between, does not', () => {
    const moves: Array<[string, number]> = [];
    const membership = new GroupMembership('g', 3000, {
      request: async () => {},
      dropPartition: () => {},
      startPartition: () => {},
      idle: async () => {},
      rejoin: () => {},
      assigned: () => {},
      revoked: () => {},
      moveAway: (reason, settledMs) => void moves.push([reason.code, settledMs]),
    });
    membership.joinRefused(new RelayError('NOT_READY', 'behind'));
    membership.joined(Date.now());
    membership.joinRefused(new RelayError('NOT_READY', 'behind'));
    membership.joinRefused(new RelayError('RATE_LIMITED', 'other'));
    expect(moves).toEqual([]);
    membership.joinRefused(new RelayError('NOT_READY', 'behind'));
    expect(moves).toEqual([['NOT_READY', 1000]]);
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

  it('moves only once heartbeats have failed twice in a row (one failure is an election), before the session expires; in-flight ones failing after a move do not move again; FENCED rejoins where it is; stop leaves no timer', async () => {
    vi.useFakeTimers({ now: 0 });
    try {
      const pending: Array<{ resolve: () => void; reject: (error: RelayError) => void }> = [];
      const moves: Array<{ code: string; atMs: number }> = [];
      let rejoins = 0;
      const membership = new GroupMembership('g', 3000, {
        request: () => new Promise<void>((resolve, reject) => pending.push({ resolve, reject })),
        dropPartition: () => {},
        startPartition: () => {},
        idle: async () => {},
        rejoin: () => rejoins++,
        assigned: () => {},
        revoked: () => {},
        moveAway: (reason) => moves.push({ code: reason.code, atMs: Date.now() }),
      }, () => Date.now());
      membership.joined(0);
      membership.start(); // a heartbeat every 1000 ms
      // 1000: refused NOT_LEADER (an election under way, every broker says the same); 2000: answered after 100 ms
      // (the election is over): no move.
      await vi.advanceTimersByTimeAsync(1000);
      pending.shift()?.reject(new RelayError('NOT_LEADER', 'electing'));
      await vi.advanceTimersByTimeAsync(1100);
      pending.shift()?.resolve();
      // 3000: answered after 400 ms, past the quarter interval: it had failed, but its answer ends the streak, so
      // 4000 refused is the first failure again: no move.
      await vi.advanceTimersByTimeAsync(1300);
      pending.shift()?.resolve();
      await vi.advanceTimersByTimeAsync(600);
      pending.shift()?.reject(new RelayError('NO_QUORUM', 'cut off'));
      await vi.advanceTimersByTimeAsync(0);
      expect(moves).toEqual([]);
      // 5000 refused: the second failure in a row moves, two intervals after the last acknowledged heartbeat (3000)
      // was sent, one before the coordinator could expire the member (6000).
      await vi.advanceTimersByTimeAsync(1000);
      pending.shift()?.reject(new RelayError('NO_QUORUM', 'cut off'));
      await vi.advanceTimersByTimeAsync(0);
      expect(moves).toEqual([{ code: 'NO_QUORUM', atMs: 5000 }]);
      membership.joined(5000); // the rejoin through the new broker, confirmed
      // 6000 and 7000 unanswered: a heartbeat unanswered for a quarter interval has failed; the move comes at 7250,
      // 750 ms before the session (from the join at 5000) would expire.
      await vi.advanceTimersByTimeAsync(2249);
      expect(moves).toHaveLength(1);
      await vi.advanceTimersByTimeAsync(1);
      expect(moves).toEqual([{ code: 'NO_QUORUM', atMs: 5000 }, { code: 'TIMEOUT', atMs: 7250 }]);
      // The move closed the connection those two went on: they fail now, and count for nothing.
      for (const request of pending.splice(0)) request.reject(new RelayError('TIMEOUT', 'moved'));
      await vi.advanceTimersByTimeAsync(0);
      // 8000: FENCED (the group forgot the member): it joins again where it is; 9000: refused once: no move.
      await vi.advanceTimersByTimeAsync(750);
      pending.shift()?.reject(new RelayError('FENCED', 'expired'));
      await vi.advanceTimersByTimeAsync(1000);
      pending.shift()?.reject(new RelayError('NO_QUORUM', 'cut off'));
      await vi.advanceTimersByTimeAsync(0);
      expect(rejoins).toBe(1);
      expect(moves).toHaveLength(2);
      // 10000: in flight when the membership stops: nothing left to fire, no move.
      await vi.advanceTimersByTimeAsync(1000);
      expect(pending).toHaveLength(1);
      membership.stop();
      expect(vi.getTimerCount()).toBe(0);
      pending.shift()?.reject(new RelayError('NO_QUORUM', 'cut off'));
      await vi.advanceTimersByTimeAsync(5000);
      expect(moves).toHaveLength(2);
    } finally {
      vi.useRealTimers();
    }
  });

  it('does not move when every heartbeat is answered, however late up to 1.2 intervals (a slow metadata commit everywhere): an answer ends the streak', async () => {
    // The unanswered timer fires a quarter interval after each send, but the first failure of a streak only stays
    // counted until its answer: two in a row need one heartbeat still unanswered 1.25 intervals after it was sent.
    for (const latencyMs of [260, 500, 900, 1200, 1240]) {
      vi.useFakeTimers({ now: 0 });
      try {
        const moves: number[] = [];
        const membership = new GroupMembership('g', 3000, {
          request: () => new Promise<void>((resolve) => setTimeout(resolve, latencyMs)),
          dropPartition: () => {},
          startPartition: () => {},
          idle: async () => {},
          rejoin: () => {},
          assigned: () => {},
          revoked: () => {},
          moveAway: () => moves.push(Date.now()),
        }, () => Date.now());
        membership.joined(0);
        membership.start();
        await vi.advanceTimersByTimeAsync(30_000);
        expect(moves, `${latencyMs} ms`).toEqual([]);
        expect(membership.leaseHeld(), `${latencyMs} ms`).toBe(true);
        membership.stop();
      } finally {
        vi.useRealTimers();
      }
    }
  });
});
