/**
 * Whether a broker may be taken out of the cluster now (`relaymq cluster
 * remove`): pure, so the rules are tested without a cluster. Removal first
 * moves every replica off the broker (it drains: engine/replica-moves.ts),
 * then takes it out of the metadata group. It is refused while that would
 * leave fewer brokers (not draining) than the replication factor, or would
 * remove the last metadata voter.
 */
import type { NodeId } from '../core/raft/index.js';

/** What the decision needs: the metadata group and where every replica lives. */
export interface RemovalView {
  broker: NodeId;
  voters: readonly NodeId[];
  learners: readonly NodeId[];
  /** Brokers being drained already (they count as gone). */
  draining?: readonly NodeId[];
  /** Replication factor of topics created from now on (`replicationFactor`). */
  replicationFactor: number;
  topics: ReadonlyArray<{ topic: string; replicationFactor: number; partitions: ReadonlyArray<{ replicas: readonly NodeId[] }> }>;
}

/** Why a removal is refused: a stable code and one sentence that says what to do. */
export interface RemovalRefusal {
  code: 'INVALID_ARGUMENT' | 'FORBIDDEN';
  message: string;
}

/** `undefined` when `view.broker` may be removed now, else why not. */
export function removalRefusal(view: RemovalView): RemovalRefusal | undefined {
  const { broker } = view;
  const members = [...view.voters, ...view.learners];
  if (!members.includes(broker)) {
    return { code: 'INVALID_ARGUMENT', message: `broker ${broker} is not a member of the cluster (members: ${[...members].sort().join(', ')})` };
  }
  const leaving = new Set([...(view.draining ?? []), broker]);
  const remaining = members.filter((id) => !leaving.has(id)).length;
  const widest = view.topics.reduce<{ factor: number; topic?: string }>((w, t) => (t.replicationFactor > w.factor ? { factor: t.replicationFactor, topic: t.topic } : w), { factor: view.replicationFactor });
  if (remaining < widest.factor) {
    const of = widest.topic === undefined ? 'the replication factor' : `the replication factor of topic ${widest.topic}`;
    return {
      code: 'FORBIDDEN',
      message: `removing broker ${broker} would leave ${remaining} broker${remaining === 1 ? '' : 's'}, fewer than ${of} (${widest.factor}): add a broker first`,
    };
  }
  if (view.voters.length === 1 && view.voters[0] === broker) {
    return { code: 'FORBIDDEN', message: `broker ${broker} is the only metadata voter: let another broker be promoted first` };
  }
  return undefined;
}
