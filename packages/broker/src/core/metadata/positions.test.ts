import { describe, expect, it } from 'vitest';
import { DurablePositions, POSITION_LIMITS, parseCommitPositions } from './positions.js';

const at = (topic: string, partition: number, offset: number): { topic: string; partition: number; offset: number } => ({ topic, partition, offset });

describe('DurablePositions', () => {
  it('stores positions per durable name and partition', () => {
    const table = new DurablePositions();
    table.commit('billing', [at('orders', 0, 5), at('orders', 1, 2)]);
    table.commit('audit', [at('orders', 0, 1)]);
    expect(table.get('billing')).toEqual([at('orders', 0, 5), at('orders', 1, 2)]);
    expect(table.get('audit')).toEqual([at('orders', 0, 1)]);
    expect(table.get('nobody')).toEqual([]);
  });

  it('never moves a position back: a stale commit is ignored, a newer one wins', () => {
    const table = new DurablePositions();
    table.commit('billing', [at('orders', 0, 10)]);
    expect(table.commit('billing', [at('orders', 0, 7)])).toEqual({ kind: 'positions', positions: [at('orders', 0, 10)] });
    expect(table.commit('billing', [at('orders', 0, 10)])).toEqual({ kind: 'positions', positions: [at('orders', 0, 10)] });
    expect(table.commit('billing', [at('orders', 0, 12)])).toEqual({ kind: 'positions', positions: [at('orders', 0, 12)] });
  });

  it('an empty commit reads without creating an entry', () => {
    const table = new DurablePositions();
    expect(table.commit('billing', [])).toEqual({ kind: 'positions', positions: [] });
    expect(table.size).toBe(0);
  });

  it('hands out copies: callers cannot change stored positions', () => {
    const table = new DurablePositions();
    table.commit('billing', [at('orders', 0, 3)]);
    const [position] = table.get('billing');
    if (position !== undefined) position.offset = 0;
    expect(table.get('billing')).toEqual([at('orders', 0, 3)]);
  });

  it('refuses, all or nothing, a commit beyond the per-durable limit', () => {
    const table = new DurablePositions();
    const full = Array.from({ length: POSITION_LIMITS.maxPositionsPerDurable }, (_, p) => at('t', p, 1));
    expect(table.commit('big', full).kind).toBe('positions');
    const more = table.commit('big', [at('t', 0, 2), at('u', 0, 1)]);
    expect(more).toMatchObject({ kind: 'limit' });
    expect(table.get('big')[0]).toEqual(at('t', 0, 1));
    // Raising existing positions needs no room.
    expect(table.commit('big', [at('t', 0, 2)]).kind).toBe('positions');
  });

  it('refuses a new durable name once maxDurables names hold positions', () => {
    const table = new DurablePositions();
    for (let i = 0; i < POSITION_LIMITS.maxDurables; i++) table.commit(`d${i}`, [at('t', 0, 1)]);
    expect(table.commit('one-more', [at('t', 0, 1)])).toMatchObject({ kind: 'limit' });
    expect(table.commit('one-more', [])).toEqual({ kind: 'positions', positions: [] });
    expect(table.commit('d0', [at('t', 0, 5)]).kind).toBe('positions');
  });
});

describe('parseCommitPositions', () => {
  it('accepts a well-formed command and copies only known fields', () => {
    const parsed = parseCommitPositions({ type: 'commit-positions', durable: 'billing', positions: [{ ...at('a.b', 1, 2), extra: 1 }], junk: true });
    expect(parsed).toEqual({ type: 'commit-positions', durable: 'billing', positions: [at('a.b', 1, 2)] });
  });

  it.each([
    ['not a map', 'commit'],
    ['another type', { type: 'create-topic', durable: 'd', positions: [] }],
    ['a bad durable name', { type: 'commit-positions', durable: 'a b', positions: [] }],
    ['positions not a list', { type: 'commit-positions', durable: 'd', positions: {} }],
    ['a wildcard topic', { type: 'commit-positions', durable: 'd', positions: [at('a.*', 0, 0)] }],
    ['a negative offset', { type: 'commit-positions', durable: 'd', positions: [at('a', 0, -1)] }],
    ['a fractional partition', { type: 'commit-positions', durable: 'd', positions: [at('a', 0.5, 0)] }],
  ])('rejects %s', (_name, value) => {
    expect(parseCommitPositions(value)).toBeUndefined();
  });
});
