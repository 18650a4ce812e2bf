import { describe, expect, it } from 'vitest';
import { ROUTING_LIMITS, RefusalPolicy, type RefusalDecision } from './routing.js';

/** `leader` null: a refusal without a hint. */
const refuse = (policy: RefusalPolicy, nowMs: number, leader: string | null = 'b2', partition = '0:t', fromActive = true): RefusalDecision =>
  policy.decide({ partition, leader: leader ?? undefined, fromActive, nowMs });

describe('RefusalPolicy', () => {
  it('follows a hint at once, then with doubling pauses, at most 3 in a row', () => {
    const policy = new RefusalPolicy();
    expect([0, 1, 2].map(() => refuse(policy, 0))).toEqual([
      { kind: 'follow', leader: 'b2', delayMs: 0 },
      { kind: 'follow', leader: 'b2', delayMs: 50 },
      { kind: 'follow', leader: 'b2', delayMs: 100 },
    ]);
    expect(refuse(policy, 0)).toEqual({ kind: 'failover' });
  });

  it('counts hints per partition, and an ack ends the streak', () => {
    const policy = new RefusalPolicy();
    for (let i = 0; i < 3; i++) refuse(policy, 0, 'b2', '0:t');
    expect(refuse(policy, 0, 'b3', '1:t')).toEqual({ kind: 'follow', leader: 'b3', delayMs: 0 });
    policy.acknowledged('0:t');
    expect(refuse(policy, 0, 'b2', '0:t')).toEqual({ kind: 'follow', leader: 'b2', delayMs: 0 });
  });

  it.each([
    // [refusals without an ack, time of each, expected decisions]
    ['the first failover is allowed, the next within the hold is not', [0, 10, 999], ['failover', 'retry', 'retry']],
    ['after the hold one more is allowed', [0, 1000, 2000, 2999, 3000], ['failover', 'failover', 'retry', 'retry', 'failover']],
  ] as const)('holds off failovers caused by refusals: %s', (_name, times, kinds) => {
    const policy = new RefusalPolicy();
    expect(times.map((t) => refuse(policy, t, null).kind)).toEqual(kinds);
  });

  it('doubles the hold up to its bound while nothing is acknowledged, and an ack resets it', () => {
    const policy = new RefusalPolicy();
    const holds: number[] = [];
    let now = 0;
    for (let i = 0; i < 8; i++) {
      expect(refuse(policy, now, null).kind).toBe('failover');
      holds.push(policy.holdMs());
      now += policy.holdMs();
    }
    expect(holds).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    policy.acknowledged('0:t');
    expect(policy.holdMs()).toBe(ROUTING_LIMITS.failoverHoldMs);
  });

  it('never fails over for a refusal from a routed (non-active) connection: it retries through the active one', () => {
    const policy = new RefusalPolicy();
    expect(refuse(policy, 0, null, '0:t', false)).toEqual({ kind: 'retry', delayMs: 50 });
  });

  it('bounds the pause between resends', () => {
    const policy = new RefusalPolicy();
    let last: RefusalDecision = { kind: 'failover' };
    for (let i = 0; i < 20; i++) last = refuse(policy, 0, null, '0:t', false);
    expect(last).toEqual({ kind: 'retry', delayMs: ROUTING_LIMITS.retryMaxMs });
  });
});
