import { describe, expect, it } from 'vitest';
import { homeBroker } from './placement.js';

describe('homeBroker', () => {
  it.each([
    { leaders: undefined, current: undefined, home: undefined, why: 'no cluster metadata' },
    { leaders: [], current: 'a', home: undefined, why: 'no partition' },
    { leaders: ['', ''], current: 'a', home: undefined, why: 'no leader known' },
    { leaders: ['b'], current: undefined, home: 'b', why: 'one partition: its leader' },
    { leaders: ['b'], current: 'a', home: 'b', why: 'the leader moved' },
    { leaders: ['', 'c'], current: undefined, home: 'c', why: 'an unknown leader is skipped' },
    { leaders: ['a', 'b', 'b'], current: undefined, home: 'b', why: 'the broker leading the most partitions' },
    { leaders: ['a', 'b'], current: undefined, home: 'a', why: 'a tie: the lowest partition' },
    { leaders: ['a', 'b', 'b', 'a'], current: undefined, home: 'a', why: 'a tie: the lowest partition, not the first to reach the count' },
    { leaders: ['a', 'b'], current: 'b', home: 'b', why: 'a tie: the current one stays (no move)' },
    { leaders: ['a', 'a', 'b'], current: 'b', home: 'a', why: 'the current one leads fewer: move' },
  ])('$why', ({ leaders, current, home }) => {
    expect(homeBroker(leaders, current)).toBe(home);
  });
});
