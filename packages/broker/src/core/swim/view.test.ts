import { describe, expect, it } from 'vitest';
import { changesClusterView, clusterView } from './view.js';
import type { Member, MembershipEventType } from './types.js';

const member = (id: string, state: Member['state'], load?: { connections: number; partitionsLed: number }): Member => ({
  id,
  address: `${id}:7501`,
  meta: load === undefined ? { clientUrl: `ws://${id}:7401` } : { clientUrl: `ws://${id}:7401`, load },
  incarnation: 3,
  state,
});

describe('clusterView', () => {
  it('lists alive, suspect and dead members with their client URL and load, omits those that left, sorted by id', () => {
    const view = clusterView([member('b3', 'dead'), member('b1', 'alive', { connections: 7, partitionsLed: 2 }), member('b4', 'left'), member('b2', 'suspect')]);
    expect(view).toEqual({
      brokers: [
        { id: 'b1', url: 'ws://b1:7401', state: 'alive', load: { connections: 7, partitionsLed: 2 } },
        { id: 'b2', url: 'ws://b2:7401', state: 'suspect' },
        { id: 'b3', url: 'ws://b3:7401', state: 'dead' },
      ],
    });
  });
});

describe('changesClusterView', () => {
  it.each<[MembershipEventType, boolean]>([
    ['joined', true],
    ['updated', true],
    ['suspected', true],
    ['recovered', true],
    ['failed', true],
    ['left', true],
    ['reaped', true],
    ['refuted', false],
  ])('%s: %s', (type, changes) => {
    expect(changesClusterView({ type, member: member('b1', 'alive'), tick: 1 })).toBe(changes);
  });
});
