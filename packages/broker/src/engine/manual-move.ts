/**
 * Whether an operator's replica move (`relaymq cluster move <topic>
 * <partition> --from <broker> --to <broker>`) may start now: pure, so the
 * rules are tested without a cluster. The broker asked checks them against
 * its applied metadata; the metadata leader's state machine checks again
 * what a stale view could get wrong (core/metadata/moves.ts), and the move
 * then runs as any other (engine/replica-moves.ts).
 */
import { RelayError, type ErrorCode } from '@relaymq/sdk/protocol';
import type { MovableTopic, ReplicaMove } from '../core/metadata/moves.js';
import type { NodeId } from '../core/raft/index.js';

/**
 * Why a move is refused: stable, machine-readable, sent as the admin error's
 * `reason` next to its `code` (the codes are coarser: several reasons share
 * `INVALID_ARGUMENT`).
 */
export const MOVE_REFUSAL_REASONS = {
  /** No such topic. */
  'unknown-topic': 'INVALID_TOPIC',
  /** The topic has no such partition. */
  'unknown-partition': 'INVALID_PARTITION',
  /** `from` or `to` is not a member of the metadata group. */
  'unknown-broker': 'INVALID_ARGUMENT',
  /** `from` and `to` are the same broker. */
  'same-broker': 'INVALID_ARGUMENT',
  /** A move of this partition is in progress already. */
  'moving-already': 'FORBIDDEN',
  /** `from` holds no replica of the partition. */
  'source-not-replica': 'INVALID_ARGUMENT',
  /** `to` holds a replica of the partition already (or receives one). */
  'target-is-replica': 'INVALID_ARGUMENT',
  /** `to` is being decommissioned or replaced: the partition would be a replica short once it leaves. */
  'replication-factor': 'FORBIDDEN',
  /** As many moves as `maxConcurrentMoves` are in progress. */
  'moves-at-cap': 'LIMIT_EXCEEDED',
} as const satisfies Record<string, ErrorCode>;

/** A stable reason a move is refused (see {@link MOVE_REFUSAL_REASONS}). */
export type MoveRefusalReason = keyof typeof MOVE_REFUSAL_REASONS;

/** A refused replica move: the error's `code` is the reason's, `reason` says which rule refused it. */
export class MoveRefusedError extends RelayError {
  constructor(
    readonly reason: MoveRefusalReason,
    message: string,
  ) {
    super(MOVE_REFUSAL_REASONS[reason], message);
  }
}

/** `maxConcurrentMoves` unset: moves in progress at once (decommission, replacement, rebalance, an operator's). */
export const DEFAULT_MAX_CONCURRENT_MOVES = 4;

/** What the decision needs: the move asked for and the cluster as the broker asked knows it. */
export interface ManualMoveView {
  topic: string;
  partition: number;
  from: NodeId;
  to: NodeId;
  topics: readonly MovableTopic[];
  /** The metadata group's voters and learners. */
  members: readonly NodeId[];
  /** Brokers being decommissioned or replaced. */
  draining: readonly NodeId[];
  /** Moves in progress. */
  moves: readonly ReplicaMove[];
  /** Most moves in progress at once (`maxConcurrentMoves`). */
  maxMoves: number;
}

/** `undefined` when the move may start now, else the refusal (the first rule it breaks, in the order of {@link MOVE_REFUSAL_REASONS}). */
export function manualMoveRefusal(view: ManualMoveView): MoveRefusedError | undefined {
  const { topic, partition, from, to } = view;
  const name = `${topic}/${partition}`;
  const assigned = view.topics.find((t) => t.topic === topic);
  if (assigned === undefined) return new MoveRefusedError('unknown-topic', `no topic "${topic}"`);
  const assignment = assigned.partitions[partition];
  if (assignment === undefined) {
    return new MoveRefusedError('unknown-partition', `topic ${topic} has no partition ${partition} (it has ${assigned.partitions.length}: 0 to ${assigned.partitions.length - 1})`);
  }
  const members = [...view.members].sort();
  for (const broker of [from, to]) {
    if (!members.includes(broker)) return new MoveRefusedError('unknown-broker', `broker ${broker} is not a member of the cluster (members: ${members.join(', ')})`);
  }
  if (from === to) return new MoveRefusedError('same-broker', `--from and --to name the same broker (${from}): a replica moves to another broker`);
  const moving = view.moves.find((m) => m.topic === topic && m.partition === partition);
  if (moving !== undefined) return new MoveRefusedError('moving-already', `${name} is moving already (${moving.from} to ${moving.to}): wait until relaymq cluster moves no longer lists it`);
  const replicas = assignment.replicas.join(', ');
  if (!assignment.replicas.includes(from)) return new MoveRefusedError('source-not-replica', `broker ${from} holds no replica of ${name} (replicas: ${replicas})`);
  if (assignment.replicas.includes(to) || (assignment.learners ?? []).includes(to)) {
    return new MoveRefusedError('target-is-replica', `broker ${to} holds a replica of ${name} already (replicas: ${replicas}): pick a broker without one`);
  }
  if (view.draining.includes(to)) {
    return new MoveRefusedError('replication-factor', `broker ${to} is being decommissioned: ${name} would be a replica short once it leaves (relaymq cluster add ${to} calls the decommission off)`);
  }
  if (view.moves.length >= view.maxMoves) {
    return new MoveRefusedError('moves-at-cap', `${view.moves.length} replica moves are in progress, the most at once (--max-concurrent-moves ${view.maxMoves}): try again once one is done (relaymq cluster moves)`);
  }
  return undefined;
}
