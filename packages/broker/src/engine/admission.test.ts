import { describe, expect, it } from 'vitest';
import type { ProgressStatus } from '../core/raft/index.js';
import { nextAdmission, type AdmissionView } from './admission.js';

const progress = (id: string, match: number): ProgressStatus => ({ id, match, next: match + 1, state: 'replicate', recentActive: true, inflight: 0 });
const view = (over: Partial<AdmissionView>): AdmissionView => ({
  conf: { voters: ['b1', 'b2', 'b3'], learners: [] },
  commit: 10,
  learnerProgress: [],
  connected: ['b2', 'b3'],
  excluded: new Set(),
  metadataVoters: 3,
  ...over,
});

describe('nextAdmission', () => {
  it.each([
    ['nothing to do in a full cluster', view({}), undefined],
    ['a connected newcomer becomes a learner', view({ connected: ['b2', 'b3', 'b4'] }), { type: 'add-learner', node: 'b4' }],
    ['newcomers are added by id, one at a time', view({ connected: ['b6', 'b5', 'b2'] }), { type: 'add-learner', node: 'b5' }],
    ['an excluded broker is never added', view({ connected: ['b4'], excluded: new Set(['b4']) }), undefined],
    [
      'a caught-up learner is promoted while voters are fewer than metadataVoters',
      view({ conf: { voters: ['b1', 'b2'], learners: ['b4'] }, learnerProgress: [progress('b4', 10)] }),
      { type: 'promote', node: 'b4' },
    ],
    [
      'a lagging learner is not promoted yet (another newcomer is added meanwhile)',
      view({ conf: { voters: ['b1', 'b2'], learners: ['b4'] }, learnerProgress: [progress('b4', 7)], connected: ['b2', 'b4', 'b5'] }),
      { type: 'add-learner', node: 'b5' },
    ],
    [
      'beyond metadataVoters a learner stays a learner',
      view({ conf: { voters: ['b1', 'b2', 'b3'], learners: ['b4'] }, learnerProgress: [progress('b4', 10)], connected: ['b2', 'b3', 'b4'] }),
      undefined,
    ],
    [
      'with five metadata voters the fourth and fifth brokers vote',
      view({ conf: { voters: ['b1', 'b2', 'b3'], learners: ['b4'] }, learnerProgress: [progress('b4', 10)], metadataVoters: 5 }),
      { type: 'promote', node: 'b4' },
    ],
  ])('%s', (_name, input, expected) => {
    expect(nextAdmission(input)).toEqual(expected);
  });
});
