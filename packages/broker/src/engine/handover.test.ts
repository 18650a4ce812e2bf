import { describe, expect, it } from 'vitest';
import { handOverLeadership, nextTarget, rankTargets, type HandoverGroup } from './handover.js';

/** A group led here; a transfer to a target in `accepting` moves leadership at once, any other target never answers. */
function group(id: string, targets: string[], accepting: ReadonlySet<string>): HandoverGroup & { transfers: string[]; leader: string } {
  const g = {
    id,
    leader: 'self',
    transfers: [] as string[],
    isLeader: () => g.leader === 'self',
    targets: () => targets,
    transferLeadership: (to: string) => {
      if (g.leader !== 'self') return false;
      g.transfers.push(to);
      if (accepting.has(to)) g.leader = to;
      return true;
    },
  };
  return g;
}

const quiet = { now: Date.now, log: () => {} };

describe('handOverLeadership', () => {
  it('tries another target when the first never takes over (a paused or lagging replica)', async () => {
    const stuck = group('p/t/0', ['paused', 'b2'], new Set(['b2']));
    const fine = group('p/t/1', ['b3', 'paused'], new Set(['b3']));
    const result = await handOverLeadership(() => [stuck, fine], { ...quiet, timeoutMs: 2000, attemptMs: 30 });
    expect(result.kept).toEqual([]);
    expect(result.handedOver.sort()).toEqual(['p/t/0', 'p/t/1']);
    expect(stuck.transfers).toEqual(['paused', 'b2']);
    expect(fine.transfers).toEqual(['b3']);
  });

  it('logs which groups it could not hand over, with the targets tried, once the budget is spent', async () => {
    const lines: Array<{ message: string; fields?: Record<string, unknown> }> = [];
    const hopeless = group('p/t/2', ['x', 'y'], new Set());
    const started = Date.now();
    let clockMs = 0; // a clock that advances 5 ms per reading: the number of attempts does not depend on the machine's load
    const result = await handOverLeadership(() => [hopeless], {
      now: () => (clockMs += 5),
      timeoutMs: 200,
      attemptMs: 40,
      log: (_level, message, fields) => lines.push({ message, fields }),
    });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(result.kept).toEqual([{ group: 'p/t/2', tried: ['x', 'y'] }]);
    // Round robin over the targets, not the same one again and again.
    expect(hopeless.transfers.slice(0, 4)).toEqual(['x', 'y', 'x', 'y']);
    expect(lines).toEqual([{ message: 'some groups kept their leader at shutdown', fields: expect.objectContaining({ groups: ['p/t/2'] }) }]);
  });

  it('also hands over a group that became led here during the handover', async () => {
    const slow = group('p/t/4', ['paused', 'b3'], new Set(['b3']));
    const late = group('p/t/3', ['b2'], new Set(['b2']));
    late.leader = 'b2';
    let checks = 0;
    const result = await handOverLeadership(
      () => {
        if (++checks === 3) late.leader = 'self';
        return [slow, late];
      },
      { ...quiet, timeoutMs: 2000, attemptMs: 30 },
    );
    expect(result.kept).toEqual([]);
    expect(result.handedOver.sort()).toEqual(['p/t/3', 'p/t/4']);
    expect(late.transfers).toEqual(['b2']);
  });

  it('returns at once when nothing is led', async () => {
    expect(await handOverLeadership(() => [], { ...quiet, timeoutMs: 5000, attemptMs: 30 })).toEqual({ handedOver: [], kept: [], alone: [] });
  });

  it("does not wait for groups without another voter (a standalone broker: a cluster of one), nor warn that they kept their leader", async () => {
    const lines: Array<{ level: string; message: string }> = [];
    const meta = group('meta', [], new Set());
    const partition = group('p/orders/0', [], new Set());
    let checks = 0;
    let clockMs = 0; // advances 5 ms per reading: a handover that waited would check 40 times within its 200 ms budget
    const result = await handOverLeadership(
      () => {
        checks++;
        return [meta, partition];
      },
      { now: () => (clockMs += 5), timeoutMs: 200, attemptMs: 40, log: (level, message) => lines.push({ level, message }) },
    );
    expect(checks).toBe(1);
    expect(result).toEqual({ handedOver: [], kept: [], alone: ['meta', 'p/orders/0'] });
    expect(lines.filter((l) => l.level === 'warn')).toEqual([]);
  });

  it('still hands over the groups that have another voter when some have none (a topic of replication factor 1 in a cluster)', async () => {
    const single = group('p/rf1/0', [], new Set());
    const replicated = group('p/rf3/0', ['b2'], new Set(['b2']));
    const result = await handOverLeadership(() => [single, replicated], { ...quiet, timeoutMs: 2000, attemptMs: 30 });
    expect(result).toEqual({ handedOver: ['p/rf3/0'], kept: [], alone: ['p/rf1/0'] });
  });
});

describe('targets', () => {
  it('ranks connected voters first, then the most caught up, never this broker', () => {
    const progress = [
      { id: 'self', match: 9 },
      { id: 'b2', match: 5 },
      { id: 'b3', match: 9 },
      { id: 'b4', match: 9 },
    ];
    expect(rankTargets('self', progress, new Set(['b2', 'b3']))).toEqual(['b3', 'b2', 'b4']);
  });

  it('goes round robin once every target was tried', () => {
    expect(nextTarget(['a', 'b'], { target: undefined, tried: [] })).toBe('a');
    expect(nextTarget(['a', 'b'], { target: 'a', tried: ['a'] })).toBe('b');
    expect(nextTarget(['a', 'b'], { target: 'b', tried: ['a', 'b'] })).toBe('a');
    expect(nextTarget([], { target: undefined, tried: [] })).toBeUndefined();
  });
});
