/**
 * Membership arithmetic, kept apart so it can be table-tested: what a
 * configuration change turns a configuration into, and which changes are
 * refused. Pure functions over {@link ConfState}; the rules of *when* a change
 * may be proposed (one at a time, after the leader committed an entry of its
 * term) live with the leader in `raft.ts`.
 *
 * Changes are single-server (Raft thesis §4.1): each one adds or removes at
 * most one voter, so any majority of the old voters and any majority of the
 * new ones share a node, and the configuration may take effect as soon as its
 * entry is in a log, without joint consensus. Learners never count for a
 * majority, so adding or removing one never changes any quorum.
 */
import type { ConfChange, ConfState, NodeId } from './types.js';

/** The learners of `conf` (none when the field is absent). */
export function learnersOf(conf: ConfState): readonly NodeId[] {
  return conf.learners ?? [];
}

/** Whether `id` votes in `conf`. */
export function isVoter(conf: ConfState, id: NodeId): boolean {
  return conf.voters.includes(id);
}

/** Whether `id` receives the log in `conf` (a voter or a learner). */
export function isMember(conf: ConfState, id: NodeId): boolean {
  return conf.voters.includes(id) || learnersOf(conf).includes(id);
}

/** Whether two configurations have the same voters and the same learners (in any order). */
export function sameConf(a: ConfState, b: ConfState): boolean {
  return sameSet(a.voters, b.voters) && sameSet(learnersOf(a), learnersOf(b));
}

function sameSet(a: readonly NodeId[], b: readonly NodeId[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return b.every((id) => set.has(id));
}

/** Renders `conf` for traces and errors: `voters=a,b learners=c`. */
export function formatConf(conf: ConfState): string {
  const learners = learnersOf(conf);
  return `voters=${conf.voters.join(',')}${learners.length > 0 ? ` learners=${learners.join(',')}` : ''}`;
}

/**
 * The configuration `change` turns `conf` into, or a sentence saying why it
 * does not apply. The result is frozen, with `learners` always present.
 */
export function applyConfChange(conf: ConfState, change: ConfChange): ConfState | string {
  const { node } = change;
  if (typeof node !== 'string' || node.length === 0) return 'the node id must be a non-empty string';
  const voters = conf.voters;
  const learners = learnersOf(conf);
  switch (change.type) {
    case 'add-learner':
      if (isMember(conf, node)) return `${node} is already a ${isVoter(conf, node) ? 'voter' : 'learner'}`;
      return freezeConf(voters, [...learners, node]);
    case 'promote':
      if (!learners.includes(node)) return `${node} is not a learner${isVoter(conf, node) ? ' (it already votes)' : ''}`;
      return freezeConf([...voters, node], learners.filter((id) => id !== node));
    case 'remove':
      if (!isMember(conf, node)) return `${node} is not a member`;
      if (voters.length === 1 && voters[0] === node) return `${node} is the last voter`;
      return freezeConf(
        voters.filter((id) => id !== node),
        learners.filter((id) => id !== node),
      );
    default:
      return `unknown change type ${String((change as { type: unknown }).type)}`;
  }
}

function freezeConf(voters: readonly NodeId[], learners: readonly NodeId[]): ConfState {
  return Object.freeze({ voters: Object.freeze([...voters]), learners: Object.freeze([...learners]) });
}

/** A configuration read from outside (a peer's message, a stored checkpoint): voters, and learners when there are any; `undefined` when malformed. */
export function parseConf(value: unknown): ConfState | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { voters, learners } = value as Record<string, unknown>;
  if (!isIdList(voters)) return undefined;
  if (learners === undefined) return { voters };
  return isIdList(learners) ? { voters, learners } : undefined;
}

/** A member id as the wire carries it: 1 to 64 characters. */
export function isNodeId(value: unknown): value is NodeId {
  return typeof value === 'string' && value.length > 0 && value.length <= 64;
}

function isIdList(value: unknown): value is NodeId[] {
  return Array.isArray(value) && value.length <= 64 && value.every(isNodeId);
}
