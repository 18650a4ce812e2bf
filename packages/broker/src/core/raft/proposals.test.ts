import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CompactionGate, ProposalTracker, type Settlement } from './proposals.js';
import type { ProgressStatus, Role } from './types.js';

/** A status with these match indexes, as `RaftNode.status()` reports them (progress only while leading). */
function status(role: Role, ...matches: number[]): { role: Role; progress: ProgressStatus[] } {
  return {
    role,
    progress: role === 'leader' ? matches.map((match, i) => ({ id: `n${i}`, match, next: match + 1, state: 'replicate', recentActive: true, inflight: 0 })) : [],
  };
}

describe('ProposalTracker', () => {
  it('acknowledges a proposal once its entry is applied with its term, with the applied result', () => {
    const tracker = new ProposalTracker<string, number>();
    expect(tracker.track(3, 2, 'quorum', 'p3')).toBeUndefined();
    expect(tracker.onApplied(2, 2, 20)).toBeUndefined(); // nobody waits there
    expect(tracker.onApplied(3, 2, 30)).toEqual({ outcome: 'acknowledged', waiter: 'p3', index: 3, term: 2, result: 30 });
    expect(tracker.size).toBe(0);
    expect(tracker.onApplied(3, 2, 30)).toBeUndefined(); // settles once
  });

  it('rejects as replaced a proposal whose index another leader filled (another term, or its no-op)', () => {
    const tracker = new ProposalTracker<string, number>();
    tracker.track(3, 2, 'quorum', 'p3');
    tracker.track(4, 2, 'all', 'p4');
    expect(tracker.onApplied(3, 3, 99)).toEqual({ outcome: 'replaced', waiter: 'p3', index: 3, term: 2 });
    expect(tracker.onNoopApplied(4)).toEqual({ outcome: 'replaced', waiter: 'p4', index: 4, term: 2 });
    expect(tracker.size).toBe(0);
  });

  it('acknowledges a `leader` proposal with its early result once this node wrote it, before any commit', () => {
    const tracker = new ProposalTracker<string, number>();
    tracker.track(3, 2, 'leader', 'p3', 30);
    tracker.track(4, 2, 'quorum', 'p4');
    tracker.track(5, 2, 'leader', 'p5', 50);
    expect(tracker.onWritten(2, 2)).toEqual([]); // written below it: not yet
    expect(tracker.onWritten(4, 2)).toEqual([{ outcome: 'acknowledged', waiter: 'p3', index: 3, term: 2, result: 30 }]);
    expect(tracker.onWritten(5, 2)).toEqual([{ outcome: 'acknowledged', waiter: 'p5', index: 5, term: 2, result: 50 }]);
    // A `quorum` proposal is never settled by the write; applying it is.
    expect(tracker.size).toBe(1);
    expect(tracker.onApplied(3, 2, 30)).toBeUndefined(); // settled once, already
    expect(tracker.onApplied(4, 2, 40)).toEqual({ outcome: 'acknowledged', waiter: 'p4', index: 4, term: 2, result: 40 });
  });

  it('settles a `leader` proposal at its apply when that comes first (a single voter), and never twice', () => {
    const tracker = new ProposalTracker<string, number>();
    tracker.track(1, 1, 'leader', 'p1', 10);
    expect(tracker.onApplied(1, 1, 10)).toEqual({ outcome: 'acknowledged', waiter: 'p1', index: 1, term: 1, result: 10 });
    expect(tracker.onWritten(1, 1)).toEqual([]);
  });

  it('treats a `leader` proposal without an early result as `quorum`, and a write of another term acknowledges nothing', () => {
    const tracker = new ProposalTracker<string, number>();
    tracker.track(1, 1, 'leader', 'no-result');
    tracker.track(2, 1, 'leader', 'p2', 20);
    expect(tracker.onWritten(2, 3)).toEqual([]); // another leader's entries written here: p2 was cut back
    expect(tracker.onApplied(1, 1, 10)).toEqual({ outcome: 'acknowledged', waiter: 'no-result', index: 1, term: 1, result: 10 });
    expect(tracker.onApplied(2, 3, 99)).toEqual({ outcome: 'replaced', waiter: 'p2', index: 2, term: 1 });
  });

  it('forgets a `leader` proposal that timed out or was displaced, so a later write acknowledges only the one at that index now', () => {
    const tracker = new ProposalTracker<string, number>();
    tracker.track(4, 1, 'leader', 'a', 1);
    tracker.track(5, 1, 'leader', 'b', 2);
    expect(tracker.expire(4, 'a')).toBe(true);
    // A later term reuses index 5: b is displaced (outcome unknown), c waits for its own write.
    expect(tracker.track(5, 2, 'leader', 'c', 3)).toEqual({ outcome: 'unknown', waiter: 'b', index: 5, term: 1, committed: false });
    expect(tracker.onWritten(5, 2)).toEqual([{ outcome: 'acknowledged', waiter: 'c', index: 5, term: 2, result: 3 }]);
    expect(tracker.size).toBe(0);
  });

  it('acknowledges an `all` proposal only once every voter holds it, seen while leading', () => {
    const tracker = new ProposalTracker<string, number>();
    tracker.track(5, 1, 'all', 'p5');
    tracker.track(6, 1, 'all', 'p6');
    expect(tracker.onApplied(5, 1, 50)).toBeUndefined();
    expect(tracker.onApplied(6, 1, 60)).toBeUndefined();
    expect(tracker.waitingForAllReplicas).toBe(true);
    expect(tracker.onProgress(status('leader', 6, 6, 4))).toEqual([]);
    // A follower knows no match index: nothing settles (its timeout still applies).
    expect(tracker.onProgress(status('follower'))).toEqual([]);
    expect(tracker.onProgress(status('leader', 6, 5, 7))).toEqual([{ outcome: 'acknowledged', waiter: 'p5', index: 5, term: 1, result: 50 }]);
    expect(tracker.onProgress(status('leader', 6, 6, 7))).toEqual([{ outcome: 'acknowledged', waiter: 'p6', index: 6, term: 1, result: 60 }]);
    expect(tracker.waitingForAllReplicas).toBe(false);
  });

  it('forgets a proposal that timed out, whether it waited for its commit or for every replica', () => {
    const tracker = new ProposalTracker<string, number>();
    tracker.track(1, 1, 'quorum', 'a');
    tracker.track(2, 1, 'all', 'b');
    tracker.onApplied(2, 1, 20);
    expect(tracker.expire(1, 'a')).toBe(true);
    expect(tracker.expire(2, 'b')).toBe(true);
    expect(tracker.expire(2, 'b')).toBe(false);
    expect(tracker.onApplied(1, 1, 10)).toBeUndefined();
    expect(tracker.onProgress(status('leader', 9, 9, 9))).toEqual([]);
  });

  it('gives up on everything when storage fails or the group stops: committed-but-not-on-all is told apart', () => {
    const tracker = new ProposalTracker<string, number>();
    tracker.track(1, 1, 'quorum', 'a');
    tracker.track(2, 1, 'all', 'b');
    tracker.onApplied(2, 1, 20);
    expect(tracker.abandonAll()).toEqual([
      { outcome: 'unknown', waiter: 'a', index: 1, term: 1, committed: false },
      { outcome: 'unknown', waiter: 'b', index: 2, term: 1, committed: true },
    ]);
    expect(tracker.size).toBe(0);
  });

  it('ends every proposal (outcome unknown) once the node no longer leads, instead of leaving it to its timeout; a leader keeps them', () => {
    const tracker = new ProposalTracker<string, number>();
    tracker.track(1, 2, 'quorum', 'a');
    tracker.track(2, 2, 'all', 'b');
    tracker.onApplied(2, 2, 20);
    expect(tracker.onRole({ role: 'leader' })).toEqual([]);
    expect(tracker.size).toBe(2);
    // Check-quorum stepped it down (a minority): nothing it proposed can commit here.
    expect(tracker.onRole({ role: 'follower' })).toEqual([
      { outcome: 'unknown', waiter: 'a', index: 1, term: 2, committed: false },
      { outcome: 'unknown', waiter: 'b', index: 2, term: 2, committed: true },
    ]);
    expect(tracker.size).toBe(0);
    // Settled once: a later commit by another leader answers nobody here.
    expect(tracker.onApplied(1, 2, 10)).toBeUndefined();
    tracker.track(3, 3, 'quorum', 'c');
    expect(tracker.onRole({ role: 'candidate' })).toMatchObject([{ outcome: 'unknown', waiter: 'c' }]);
  });

  it('hands back a proposal whose index this node reused in a later term (its log was cut back): its outcome is unknown', () => {
    const tracker = new ProposalTracker<string, number>();
    tracker.track(4, 1, 'quorum', 'old');
    expect(tracker.track(4, 3, 'quorum', 'new')).toEqual({ outcome: 'unknown', waiter: 'old', index: 4, term: 1, committed: false });
    expect(tracker.onApplied(4, 3, 40)).toMatchObject({ outcome: 'acknowledged', waiter: 'new' });
  });

  it('property: every proposal settles at most once, acknowledged only with its own entry (and, for `all`, once every voter held it), and nothing is left after abandonAll', () => {
    const entryArb = fc.record({ termStep: fc.integer({ min: 0, max: 1 }), noop: fc.boolean() });
    const opArb = fc.oneof(
      // Mostly the term the log will hold there (`termShift` 0), sometimes another leader's.
      fc.record({
        kind: fc.constant('track' as const),
        /** How far after this node's applied index it appends. */
        ahead: fc.integer({ min: 1, max: 4 }),
        termShift: fc.oneof(fc.constant(0), fc.integer({ min: -2, max: 2 })),
        all: fc.boolean(),
      }),
      fc.record({ kind: fc.constant('apply' as const) }),
      // Each voter's match index, around what this node applied.
      fc.record({ kind: fc.constant('progress' as const), leader: fc.boolean(), matches: fc.array(fc.integer({ min: -2, max: 2 }), { minLength: 1, maxLength: 5 }) }),
      fc.record({ kind: fc.constant('expire' as const), pick: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(entryArb, { minLength: 1, maxLength: 12 }), fc.array(opArb, { maxLength: 60, size: 'medium' }), (entryShapes, ops) => {
        // The committed log, applied in order: terms never go down.
        let term = 1;
        const log = entryShapes.map((shape, i) => {
          term += shape.termStep;
          return { index: i + 1, term, noop: shape.noop };
        });
        const tracker = new ProposalTracker<number, string>();
        const tracked = new Map<number, { index: number; term: number; all: boolean }>();
        const settledAt = new Map<number, string>();
        let applied = 0;
        /** Highest index every voter holds, in the progress being reported now while leading (0 otherwise). */
        let heldByAll = 0;
        const settle = (s: Settlement<number, string>): void => {
          expect(settledAt.has(s.waiter), `waiter ${s.waiter} settled twice`).toBe(false);
          settledAt.set(s.waiter, s.outcome);
          const proposal = tracked.get(s.waiter);
          expect(proposal).toBeDefined();
          if (s.outcome !== 'acknowledged') return;
          const entry = log[s.index - 1];
          // Acknowledged: its own entry (index and term), normal, applied, with that entry's result.
          expect(entry !== undefined && !entry.noop && entry.term === proposal?.term && s.index <= applied).toBe(true);
          expect(s.result).toBe(`r${s.index}`);
          if (proposal?.all === true) expect(s.index).toBeLessThanOrEqual(heldByAll);
        };
        let nextWaiter = 0;
        for (const op of ops) {
          heldByAll = 0;
          if (op.kind === 'track') {
            const index = applied + op.ahead;
            const waiter = nextWaiter++;
            const proposedTerm = Math.max(1, (log[index - 1]?.term ?? term) + op.termShift);
            tracked.set(waiter, { index, term: proposedTerm, all: op.all });
            const displaced = tracker.track(index, proposedTerm, op.all ? 'all' : 'quorum', waiter);
            if (displaced !== undefined) settle(displaced);
          } else if (op.kind === 'apply') {
            const entry = log[applied];
            if (entry === undefined) continue;
            applied++;
            const s = entry.noop ? tracker.onNoopApplied(entry.index) : tracker.onApplied(entry.index, entry.term, `r${entry.index}`);
            if (s !== undefined) settle(s);
          } else if (op.kind === 'progress') {
            const matches = op.matches.map((offset) => Math.max(0, applied + offset));
            if (op.leader) heldByAll = Math.min(...matches);
            for (const s of tracker.onProgress(status(op.leader ? 'leader' : 'follower', ...matches))) settle(s);
          } else {
            const open = [...tracked.entries()].filter(([w]) => !settledAt.has(w));
            const picked = open[op.pick % Math.max(1, open.length)];
            if (picked === undefined) continue;
            const [waiter, { index }] = picked;
            if (tracker.expire(index, waiter)) settledAt.set(waiter, 'expired');
          }
        }
        heldByAll = 0;
        for (const s of tracker.abandonAll()) settle(s);
        // Nothing hangs: every proposal ended one way or another.
        expect(settledAt.size).toBe(tracked.size);
        expect(tracker.size).toBe(0);
      }),
      { numRuns: 500 },
    );
  });
});

describe('CompactionGate', () => {
  it('holds one compaction at a time until the group takes it between two Readys', () => {
    const gate = new CompactionGate<string>();
    expect(gate.take()).toBeUndefined();
    expect(gate.request('first')).toBe(true);
    expect(gate.request('second')).toBe(false);
    expect(gate.isPending).toBe(true);
    expect(gate.take()).toBe('first');
    expect(gate.isPending).toBe(false);
    expect(gate.request('third')).toBe(true);
  });
});
