/**
 * Whether a broker may be taken out of the cluster now (`relaymq cluster
 * remove`): pure, so the rules are tested without a cluster. Removal takes
 * the broker out of the metadata group; it is refused while that would
 * leave fewer brokers than the replication factor, would remove the last
 * metadata voter, or while the broker still holds partition replicas —
 * moving replicas off a broker (learner, catch-up, promote, remove) is not
 * built yet, and removing a broker that holds them would leave those
 * partitions under-replicated for good.
 */
import type { NodeId } from '../core/raft/index.js';

/** What the decision needs: the metadata group and where every replica lives. */
export interface RemovalView {
  broker: NodeId;
  voters: readonly NodeId[];
  learners: readonly NodeId[];
  /** Replication factor of topics created from now on (`replicationFactor`). */
  replicationFactor: number;
  topics: ReadonlyArray<{ topic: string; replicationFactor: number; partitions: ReadonlyArray<{ replicas: readonly NodeId[] }> }>;
}

/** Why a removal is refused: a stable code and one sentence that says what to do. */
export interface RemovalRefusal {
  code: 'INVALID_ARGUMENT' | 'FORBIDDEN';
  message: string;
}

/** At most this many replicas are named in a refusal. */
const NAMED_REPLICAS = 5;

/** `undefined` when `view.broker` may be removed now, else why not. */
export function removalRefusal(view: RemovalView): RemovalRefusal | undefined {
  const { broker } = view;
  const members = [...view.voters, ...view.learners];
  if (!members.includes(broker)) {
    return { code: 'INVALID_ARGUMENT', message: `broker ${broker} is not a member of the cluster (members: ${[...members].sort().join(', ')})` };
  }
  const remaining = members.length - 1;
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
  const held = view.topics.flatMap((t) => t.partitions.flatMap((p, partition) => (p.replicas.includes(broker) ? [`${t.topic}/${partition}`] : [])));
  if (held.length > 0) {
    const named = held.slice(0, NAMED_REPLICAS).join(', ') + (held.length > NAMED_REPLICAS ? `, and ${held.length - NAMED_REPLICAS} more` : '');
    return {
      code: 'FORBIDDEN',
      message:
        `broker ${broker} still holds ${held.length} partition replica${held.length === 1 ? '' : 's'} (${named}): ` +
        'moving replicas off a broker is not supported yet, and removing it would leave them under-replicated; only a broker that holds no replica can be removed',
    };
  }
  return undefined;
}
