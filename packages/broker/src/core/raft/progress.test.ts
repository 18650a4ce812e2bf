import { describe, expect, it } from 'vitest';
import { Inflights, Progress } from './progress.js';

describe('Inflights', () => {
  it('is a bounded FIFO freed by acknowledgement', () => {
    const inflights = new Inflights(3);
    inflights.add(5);
    inflights.add(7);
    inflights.add(9);
    expect(inflights.full()).toBe(true);
    expect(() => inflights.add(11)).toThrow(/full/);
    inflights.freeLE(7);
    expect(inflights.size).toBe(1);
    inflights.add(11);
    inflights.add(13);
    expect(inflights.full()).toBe(true);
    inflights.freeFirstOne();
    expect(inflights.size).toBe(2);
    inflights.freeLE(100);
    expect(inflights.size).toBe(0);
  });

  it('allocates its ring as appends come, keeping their order across growth from a wrapped ring', () => {
    const inflights = new Inflights(256);
    expect(inflights.slots).toBe(0);
    for (const index of [1, 2, 3, 4]) inflights.add(index);
    expect(inflights.slots).toBe(4);
    inflights.freeLE(2);
    for (const index of [5, 6]) inflights.add(index); // wraps: slots 0 and 1
    inflights.add(7); // full at 4: grows to 8 from a ring starting at slot 2
    expect(inflights.slots).toBe(8);
    const freed: number[] = [];
    for (let index = 3; index <= 7; index++) {
      const before = inflights.size;
      inflights.freeLE(index);
      freed.push(before - inflights.size);
    }
    expect(freed).toEqual([1, 1, 1, 1, 1]);
    for (let index = 8; index < 8 + 256; index++) inflights.add(index);
    expect(inflights.full()).toBe(true);
    expect(inflights.slots).toBe(256);
  });

  it('rejects a zero capacity', () => {
    expect(() => new Inflights(0)).toThrow(RangeError);
  });
});

describe('Progress', () => {
  it('probe: one append at a time, unpaused by an answer', () => {
    const pr = new Progress(11, 4);
    expect(pr.state).toBe('probe');
    expect(pr.isPaused()).toBe(false);
    pr.sentEntries(2, 12);
    expect(pr.isPaused()).toBe(true);
    expect(pr.next).toBe(11);
    expect(pr.maybeUpdate(12)).toBe(true);
    expect(pr.isPaused()).toBe(false);
    expect(pr.next).toBe(13);
  });

  it('replicate: streams optimistically up to the inflight bound', () => {
    const pr = new Progress(1, 2);
    pr.maybeUpdate(5);
    pr.becomeReplicate();
    expect(pr.next).toBe(6);
    pr.sentEntries(3, 8);
    expect(pr.next).toBe(9);
    pr.sentEntries(2, 10);
    expect(pr.isPaused()).toBe(true);
    pr.maybeUpdate(8);
    pr.inflights.freeLE(8);
    expect(pr.isPaused()).toBe(false);
  });

  it.each([
    // state, match, next, rejected, hint → accepted, next after
    { state: 'probe', match: 0, next: 10, rejected: 9, hint: 4, ok: true, nextAfter: 5 },
    { state: 'probe', match: 0, next: 10, rejected: 9, hint: 20, ok: true, nextAfter: 9 },
    { state: 'probe', match: 6, next: 10, rejected: 9, hint: 2, ok: true, nextAfter: 7 },
    { state: 'probe', match: 0, next: 10, rejected: 5, hint: 2, ok: false, nextAfter: 10 },
    { state: 'replicate', match: 6, next: 20, rejected: 15, hint: 2, ok: true, nextAfter: 7 },
    { state: 'replicate', match: 6, next: 20, rejected: 6, hint: 2, ok: false, nextAfter: 20 },
  ] as const)('maybeDecrTo in $state (match $match next $next) of $rejected hint $hint', (c) => {
    const pr = new Progress(c.next, 8);
    pr.match = c.match;
    if (c.state === 'replicate') {
      pr.becomeReplicate();
      pr.next = c.next;
    }
    expect(pr.maybeDecrTo(c.rejected, c.hint)).toBe(c.ok);
    expect(pr.next).toBe(c.nextAfter);
  });

  it('snapshot: paused until reported, then probes after the snapshot', () => {
    const pr = new Progress(3, 8);
    pr.match = 2;
    pr.becomeSnapshot(40, 0);
    expect(pr.isPaused()).toBe(true);
    expect(() => pr.sentEntries(1, 3)).toThrow(/state snapshot/);
    pr.becomeProbe();
    expect(pr.next).toBe(41);
    pr.becomeSnapshot(40, 0);
    pr.pendingSnapshot = 0; // a failed snapshot
    pr.becomeProbe();
    expect(pr.next).toBe(3);
  });

  it('ignores stale acknowledgements', () => {
    const pr = new Progress(10, 8);
    pr.maybeUpdate(9);
    expect(pr.maybeUpdate(5)).toBe(false);
    expect(pr.match).toBe(9);
    expect(pr.next).toBe(10);
  });

  it('a follower that lost acknowledged entries lowers match below what was counted (a plain rejection there is stale); a report not below match changes nothing', () => {
    const pr = new Progress(1, 8);
    pr.maybeUpdate(20);
    pr.becomeReplicate();
    pr.sentEntries(5, 25);
    expect(pr.maybeDecrTo(20, 12)).toBe(false); // a plain rejection at or below match: stale
    expect(pr.lost(20)).toBe(false);
    expect(pr.lost(12)).toBe(true);
    expect(pr).toMatchObject({ match: 12, next: 13, state: 'probe', probeSent: false });
    expect(pr.inflights.size).toBe(0);
  });
});
