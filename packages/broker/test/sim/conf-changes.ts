/**
 * The membership-change workload, shared by the simulator's `reconfig`
 * profile (sim.ts) and the interval profile's membership cases: which
 * single-server change to ask a leader for.
 */
import { isMember, learnersOf } from '../../src/core/raft/membership.js';
import type { SeededRandom } from '../../src/core/raft/random.js';
import type { ConfChange, ConfState, NodeId } from '../../src/core/raft/types.js';

/**
 * A random membership change for a leader whose configuration is `conf`,
 * over the nodes of `pool`: a node outside the configuration added as a
 * learner (a removed one comes back with its old log and term), a learner
 * promoted, a voter or learner removed (the leader itself included).
 * Usually one that applies; now and then any (the leader refuses what does
 * not apply, or what comes too early). `voterChange`: a change of voters
 * when there is one (the kind that can overlap, asked of a new leader).
 */
export function pickConfChange(random: SeededRandom, conf: ConfState, pool: readonly NodeId[], voterChange: boolean): ConfChange {
  const learners = learnersOf(conf);
  const outside = pool.filter((node) => !isMember(conf, node));
  const options: ConfChange[] = [
    ...outside.map((node): ConfChange => ({ type: 'add-learner', node })),
    ...learners.map((node): ConfChange => ({ type: 'promote', node })),
    ...learners.map((node): ConfChange => ({ type: 'remove', node })),
    ...(conf.voters.length > 1 ? conf.voters.map((node): ConfChange => ({ type: 'remove', node })) : []),
  ];
  const voterChanges = options.filter((c) => c.type === 'promote' || (c.type === 'remove' && conf.voters.includes(c.node)));
  if (voterChange && voterChanges.length > 0) options.splice(0, options.length, ...voterChanges);
  const anyNode = (): NodeId => random.pick(pool);
  return options.length === 0 || random.chance(0.05) ? { type: random.pick(['add-learner', 'promote', 'remove'] as const), node: anyNode() } : random.pick(options);
}
