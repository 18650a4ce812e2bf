import { describe, expect, it } from 'vitest';
import { applyConfChange, formatConf, isMember, isVoter, learnersOf, sameConf } from './membership.js';
import type { ConfChange, ConfState } from './types.js';

const abc: ConfState = { voters: ['a', 'b', 'c'] };
const withLearner: ConfState = { voters: ['a', 'b', 'c'], learners: ['d'] };

describe('applyConfChange', () => {
  it.each<{ conf: ConfState; change: ConfChange; expected: ConfState | RegExp }>([
    { conf: abc, change: { type: 'add-learner', node: 'd' }, expected: { voters: ['a', 'b', 'c'], learners: ['d'] } },
    { conf: withLearner, change: { type: 'promote', node: 'd' }, expected: { voters: ['a', 'b', 'c', 'd'], learners: [] } },
    { conf: withLearner, change: { type: 'remove', node: 'd' }, expected: { voters: ['a', 'b', 'c'], learners: [] } },
    { conf: withLearner, change: { type: 'remove', node: 'a' }, expected: { voters: ['b', 'c'], learners: ['d'] } },
    { conf: { voters: ['a', 'b'] }, change: { type: 'remove', node: 'a' }, expected: { voters: ['b'], learners: [] } },
    { conf: abc, change: { type: 'add-learner', node: 'a' }, expected: /a is already a voter/ },
    { conf: withLearner, change: { type: 'add-learner', node: 'd' }, expected: /d is already a learner/ },
    { conf: abc, change: { type: 'promote', node: 'a' }, expected: /a is not a learner \(it already votes\)/ },
    { conf: abc, change: { type: 'promote', node: 'z' }, expected: /z is not a learner$/ },
    { conf: abc, change: { type: 'remove', node: 'z' }, expected: /z is not a member/ },
    { conf: { voters: ['a'], learners: ['b'] }, change: { type: 'remove', node: 'a' }, expected: /a is the last voter/ },
    { conf: abc, change: { type: 'add-learner', node: '' }, expected: /non-empty/ },
    { conf: abc, change: { type: 'demote', node: 'a' } as unknown as ConfChange, expected: /unknown change type demote/ },
  ])('$change.type $change.node on {$conf.voters | $conf.learners}', ({ conf, change, expected }) => {
    const result = applyConfChange(conf, change);
    if (expected instanceof RegExp) expect(result).toMatch(expected);
    else {
      expect(result).toEqual(expected);
      expect(Object.isFrozen(result)).toBe(true);
    }
  });

  it('changes at most one voter, so old and new majorities always overlap', () => {
    const confs: ConfState[] = [abc, withLearner, { voters: ['a', 'b', 'c', 'd'] }, { voters: ['a'] }];
    const changes: ConfChange[] = ['a', 'b', 'd', 'e'].flatMap((node) => (['add-learner', 'promote', 'remove'] as const).map((type) => ({ type, node })));
    for (const conf of confs) {
      for (const change of changes) {
        const next = applyConfChange(conf, change);
        if (typeof next === 'string') continue;
        const added = next.voters.filter((v) => !conf.voters.includes(v)).length;
        const removed = conf.voters.filter((v) => !next.voters.includes(v)).length;
        expect(added + removed).toBeLessThanOrEqual(1);
        expect(next.voters.length).toBeGreaterThan(0);
      }
    }
  });
});

describe('configuration queries', () => {
  it('tells voters, learners and members apart', () => {
    expect(isVoter(withLearner, 'a')).toBe(true);
    expect(isVoter(withLearner, 'd')).toBe(false);
    expect(isMember(withLearner, 'd')).toBe(true);
    expect(isMember(withLearner, 'z')).toBe(false);
    expect(learnersOf(abc)).toEqual([]);
    expect(sameConf(abc, { voters: ['c', 'b', 'a'], learners: [] })).toBe(true);
    expect(sameConf(abc, withLearner)).toBe(false);
    expect(formatConf(withLearner)).toBe('voters=a,b,c learners=d');
    expect(formatConf(abc)).toBe('voters=a,b,c');
  });
});
