import { describe, expect, it } from 'vitest';
import { guardedVoteOutcome, majorityIndex, quorumActive, quorumSize, supportersToElect, voteOutcome, type VoteAnswer } from './quorum.js';

describe('quorumSize', () => {
  it.each([
    [1, 1],
    [2, 2],
    [3, 2],
    [4, 3],
    [5, 3],
    [7, 4],
  ])('%i voters need %i', (n, q) => {
    expect(quorumSize(n)).toBe(q);
  });
});

describe('majorityIndex', () => {
  const ids = ['a', 'b', 'c', 'd', 'e'];
  it.each([
    { matches: [], expected: 0 },
    { matches: [5], expected: 5 },
    { matches: [5, 3], expected: 3 },
    { matches: [5, 3, 1], expected: 3 },
    { matches: [1, 3, 5], expected: 3 },
    { matches: [2, 2, 9], expected: 2 },
    { matches: [9, 7, 7, 3, 0], expected: 7 },
    { matches: [0, 0, 0, 9, 9], expected: 0 },
    { matches: [4, 4, 4, 4], expected: 4 },
    { matches: [8, 6, 4, 2], expected: 4 },
  ])('$matches → $expected', ({ matches, expected }) => {
    const voters = ids.slice(0, matches.length);
    const match = new Map(voters.map((id, i) => [id, matches[i] as number]));
    expect(majorityIndex(voters, (id) => match.get(id))).toBe(expected);
  });

  it('counts an unknown voter as 0', () => {
    expect(majorityIndex(['a', 'b', 'c'], (id) => (id === 'a' ? 5 : undefined))).toBe(0);
  });
});

describe('voteOutcome', () => {
  const voters = ['a', 'b', 'c', 'd', 'e'];
  it.each([
    { votes: {}, expected: 'pending' },
    { votes: { a: true }, expected: 'pending' },
    { votes: { a: true, b: true }, expected: 'pending' },
    { votes: { a: true, b: true, c: true }, expected: 'won' },
    { votes: { a: true, b: false, c: false }, expected: 'pending' },
    { votes: { a: true, b: false, c: false, d: false }, expected: 'lost' },
    { votes: { a: true, b: true, c: false, d: false, e: true }, expected: 'won' },
    { votes: { x: true, y: true, z: true, a: true }, expected: 'pending' },
  ])('$votes → $expected', ({ votes, expected }) => {
    expect(voteOutcome(voters, new Map(Object.entries(votes)))).toBe(expected);
  });

  it('a single voter wins with its own vote', () => {
    expect(voteOutcome(['a'], new Map([['a', true]]))).toBe('won');
  });
});

describe('supportersToElect: ⌊n/2⌋ + 2 (two shared with a quorum of a configuration one change away), all of 1 or 2', () => {
  it.each([
    [0, 1],
    [1, 1],
    [2, 2],
    [3, 3],
    [4, 4],
    [5, 4],
    [6, 5],
    [7, 5],
  ])('%i voters → %i', (n, expected) => {
    expect(supportersToElect(n)).toBe(expected);
  });
});

describe('voteOutcome with would-grants (recovering voters)', () => {
  const W = 'would-grant';
  it.each<{ voters: string[]; votes: Record<string, VoteAnswer>; expected: string }>([
    { voters: ['a', 'b', 'c'], votes: { a: true, b: W }, expected: 'pending' },
    { voters: ['a', 'b', 'c'], votes: { a: true, b: W, c: W }, expected: 'won' },
    { voters: ['a', 'b', 'c'], votes: { a: W, b: true, c: true }, expected: 'won' },
    { voters: ['a', 'b', 'c'], votes: { a: W, b: true }, expected: 'pending' },
    { voters: ['a', 'b', 'c'], votes: { a: true, b: W, c: false }, expected: 'lost' },
    { voters: ['a', 'b', 'c'], votes: { a: W, b: W, c: false }, expected: 'lost' },
    { voters: ['a', 'b', 'c', 'd', 'e'], votes: { a: true, b: W, c: W }, expected: 'pending' },
    { voters: ['a', 'b', 'c', 'd', 'e'], votes: { a: true, b: W, c: W, d: W }, expected: 'won' },
    { voters: ['a', 'b', 'c', 'd', 'e'], votes: { a: true, b: true, c: W, d: false }, expected: 'pending' },
    { voters: ['a', 'b', 'c', 'd', 'e'], votes: { a: true, b: true, c: W, d: false, e: false }, expected: 'lost' },
    { voters: ['a', 'b', 'c', 'd', 'e'], votes: { a: true, b: W, c: W, d: false }, expected: 'pending' },
    { voters: ['a', 'b', 'c', 'd', 'e'], votes: { a: true, b: W, c: false, d: false }, expected: 'lost' },
    { voters: ['a'], votes: { a: W }, expected: 'won' },
    { voters: ['a', 'b'], votes: { a: true, b: W }, expected: 'won' },
    { voters: ['a', 'b', 'c', 'd'], votes: { a: true, b: W, c: true }, expected: 'pending' },
    { voters: ['a', 'b', 'c', 'd'], votes: { a: true, b: W, c: true, d: true }, expected: 'won' },
    { voters: ['a', 'b', 'c', 'd'], votes: { a: true, b: W, c: W }, expected: 'pending' },
    { voters: ['a', 'b', 'c', 'd'], votes: { a: true, b: W, c: W, d: W }, expected: 'won' },
    { voters: ['a', 'b', 'c', 'd'], votes: { a: true, b: W, c: W, d: false }, expected: 'lost' },
  ])('$voters: $votes → $expected', ({ voters, votes, expected }) => {
    expect(voteOutcome(voters, new Map(Object.entries(votes)))).toBe(expected);
  });
});

describe('guardedVoteOutcome: supporters of at most two voters win only with a win one voter away too', () => {
  const W = 'would-grant';
  const C = ['a', 'c'];
  const P = ['a', 'b', 'c'];
  it.each<{ neighbours: string[][]; votes: Record<string, VoteAnswer>; expected: string }>([
    // A plain quorum of the two wins alone.
    { neighbours: [P], votes: { a: true, c: true }, expected: 'won' },
    // All of two supporters: pending until the previous voters decide.
    { neighbours: [P], votes: { a: W, c: true }, expected: 'pending' },
    { neighbours: [P], votes: { a: W, c: true, b: true }, expected: 'won' },
    { neighbours: [P], votes: { a: W, c: true, b: W }, expected: 'won' },
    // b refuses: 2 plain of 3 can no longer come, nor 3 supporters, nor a plain quorum of the two.
    { neighbours: [P], votes: { a: W, c: true, b: false }, expected: 'lost' },
    { neighbours: [P], votes: { a: W, c: false }, expected: 'lost' },
    // One neighbour per learner promoted: each must be won.
    { neighbours: [P, ['a', 'c', 'd']], votes: { a: W, c: true, b: true }, expected: 'pending' },
    { neighbours: [P, ['a', 'c', 'd']], votes: { a: W, c: true, b: true, d: true }, expected: 'won' },
    { neighbours: [['a', 'c', 'd']], votes: { a: W, c: true, d: false }, expected: 'lost' },
    // One voter: its own would-grant wins only with the other neighbour voter.
    { neighbours: [['a', 'b']], votes: { a: W }, expected: 'pending' },
    { neighbours: [['a', 'b']], votes: { a: W, b: W }, expected: 'won' },
    { neighbours: [['a', 'b']], votes: { a: W, b: false }, expected: 'lost' },
  ])('$neighbours: $votes → $expected', ({ neighbours, votes, expected }) => {
    const voters = neighbours[0]?.length === 2 ? ['a'] : C;
    expect(guardedVoteOutcome(voters, neighbours, new Map(Object.entries(votes)))).toBe(expected);
  });
});

describe('quorumActive', () => {
  it.each([
    { active: ['a'], voters: ['a', 'b', 'c'], expected: false },
    { active: ['a', 'c'], voters: ['a', 'b', 'c'], expected: true },
    { active: ['a', 'b'], voters: ['a', 'b', 'c', 'd', 'e'], expected: false },
    { active: ['a', 'b', 'e'], voters: ['a', 'b', 'c', 'd', 'e'], expected: true },
  ])('$active of $voters → $expected', ({ active, voters, expected }) => {
    expect(quorumActive(voters, (id) => active.includes(id))).toBe(expected);
  });
});
