/**
 * Swarm testing: each seed draws its own fault profile, so some runs are
 * calm, some lose a third of their messages, some crash nodes every few
 * hundred milliseconds, some never partition. Varying the mix finds bugs a
 * single "average" profile hides. Everything here derives from the seed.
 */
import type { RaftConfigOptions } from '../../src/core/raft/config.js';
import { deriveRandom } from '../../src/core/raft/random.js';

export interface FaultWeights {
  crash: number;
  partition: number;
  oneWay: number;
  pause: number;
  transfer: number;
}

/**
 * Membership changes under the faults (`--profile reconfig`). A field left
 * out is drawn per seed (from a stream of its own, so the fault profile a
 * seed draws is the same with or without reconfiguration).
 */
export interface ReconfigParams {
  /** Nodes that exist, `n1..nP`; the first `initialVoters` bootstrap the cluster, the others wait to be added. */
  poolSize: number;
  initialVoters: number;
  /** Mean time between two membership changes the workload asks the leader for. */
  changeIntervalMs: number;
}

export interface SwarmParams {
  nodeCount: 3 | 5;
  /** Membership changes, or `null` for a static cluster of `nodeCount` voters. */
  reconfig: Partial<ReconfigParams> | null;
  raft: Required<
    Pick<
      RaftConfigOptions,
      'electionTicks' | 'heartbeatTicks' | 'preVote' | 'checkQuorum' | 'maxEntriesPerAppend' | 'maxInflightAppends' | 'maxUncommittedEntries' | 'quiesce'
    >
  >;
  /** Nominal tick period; each node's clock runs up to `clockSkew` faster or slower. */
  tickMs: number;
  clockSkew: number;
  lossRate: number;
  duplicateRate: number;
  minDelayMs: number;
  maxDelayMs: number;
  /** Mean time between two fault events (crash, partition, pause, transfer). */
  faultIntervalMs: number;
  weights: FaultWeights;
  maxDowntimeMs: number;
  /** Probability that a crash strikes inside the node's next fsync instead of between two batches. */
  crashInSyncRate: number;
  maxPartitionMs: number;
  maxPauseMs: number;
  /** Mean time between two client proposals. */
  proposeIntervalMs: number;
  maxBatch: number;
  /** Applied entries between two snapshots (0: never compact). */
  compactEvery: number;
  /** Entries kept before the snapshot index when compacting. */
  compactKeep: number;
  /** Probability that the transport reports a snapshot delivered although it was lost. */
  wrongSnapshotReportRate: number;
  /**
   * With `raft.quiesce`: the simulated failure detector, every election
   * timeout, tells each running node which peers it cannot hear from (down,
   * or the link cut); each time it also raises this many false suspicions
   * and random wakes (on average), at random nodes about random peers.
   */
  falseSuspicions: number;
  /**
   * With `raft.quiesce` and a static cluster: after the heal and convergence,
   * the group must quiesce, then its leader crashes for good and the others
   * must elect a new one within the liveness bound (the failure detector is
   * all that can wake them).
   */
  quiescedLeaderLoss: boolean;
  /**
   * Every restart starts with `RaftConfig.recoveringAtStart` (as the broker
   * does after an unclean stop under `fsync: interval`): the voting rule's
   * liveness under every fault, with any size, pre-vote and check-quorum on
   * or off. Not drawn (`--profile recovering`).
   */
  recoveringRestarts: boolean;
}

function weight(r: ReturnType<typeof deriveRandom>): number {
  // A third of the seeds switch a fault kind off entirely.
  return r.chance(0.33) ? 0 : r.between(1, 4);
}

export function swarmParams(seed: number): SwarmParams {
  const r = deriveRandom(seed, 'swarm');
  // From a stream of its own, so every other choice of a seed is what it was before quiescence existed.
  const q = deriveRandom(seed, 'quiesce');
  const quiesce = q.chance(0.5);
  const electionTicks = r.between(6, 15);
  const minDelayMs = r.between(0, 5);
  const weights: FaultWeights = {
    crash: weight(r),
    partition: weight(r),
    oneWay: weight(r),
    pause: weight(r),
    transfer: weight(r),
  };
  return {
    nodeCount: r.chance(0.5) ? 3 : 5,
    reconfig: null,
    raft: {
      electionTicks,
      heartbeatTicks: Math.min(electionTicks - 1, r.pick([1, 1, 2, 3])),
      preVote: r.chance(0.85),
      checkQuorum: r.chance(0.85),
      maxEntriesPerAppend: r.pick([1, 2, 4, 16, 64]),
      maxInflightAppends: r.pick([1, 2, 8, 256]),
      maxUncommittedEntries: r.pick([64, 1024, 8192]),
      quiesce,
    },
    tickMs: 10,
    clockSkew: r.pick([0, 0.05, 0.2]),
    lossRate: r.chance(0.3) ? 0 : r.nextFloat() * 0.3,
    duplicateRate: r.chance(0.5) ? 0 : r.nextFloat() * 0.1,
    minDelayMs,
    maxDelayMs: minDelayMs + r.pick([0, 3, 10, 30, 80, 200]),
    faultIntervalMs: r.pick([50, 150, 400, 1000]),
    weights,
    maxDowntimeMs: r.pick([20, 300, 1500]),
    crashInSyncRate: r.pick([0, 0.2, 0.5]),
    maxPartitionMs: r.pick([100, 500, 3000]),
    maxPauseMs: r.pick([50, 300, 1000]),
    proposeIntervalMs: r.pick([2, 5, 20, 60]),
    maxBatch: r.pick([1, 1, 3, 8]),
    compactEvery: r.pick([0, 8, 30, 200]),
    compactKeep: r.pick([0, 2, 10]),
    wrongSnapshotReportRate: r.pick([0, 0, 0.3]),
    falseSuspicions: q.pick([0, 0.2, 1]),
    quiescedLeaderLoss: quiesce && q.chance(0.5),
    recoveringRestarts: false,
  };
}

/**
 * Named overrides of the swarm's choices. `churn` is a harsh, leader-hostile
 * profile (no pre-vote or check-quorum, a third of the messages lost, a
 * crash or pause every 50 ms on average, one entry per append): it makes the
 * rare interleavings of Raft's Figure 8 likely enough to be found in a few
 * hundred seeds.
 */
export const SWARM_PROFILES: Readonly<Record<string, Partial<SwarmParams>>> = Object.freeze({
  /**
   * Every fault of the swarm (drawn per seed as usual), plus random
   * membership changes: learners added, promoted, voters and learners
   * removed (the leader too), nodes added back after their removal.
   */
  reconfig: { reconfig: {} },
  /**
   * Quiescence under every fault of the swarm: groups quiesce whenever the
   * workload pauses (proposals are sparse), false suspicions and random
   * wakes, and after the heal the leader of the quiesced group dies for
   * good (see `quiescedLeaderLoss`).
   */
  quiesce: { proposeIntervalMs: 150, falseSuspicions: 0.5, quiescedLeaderLoss: true },
  /**
   * Every fault of the swarm, every restarted node recovering (see
   * `recoveringRestarts`). No leader lost for good after the heal: with a
   * recovering voter among the rest, electing needs every voter, which is
   * the rule's documented cost.
   */
  recovering: { recoveringRestarts: true, quiescedLeaderLoss: false },
  /**
   * Membership changes (as `reconfig`) with every restarted node recovering
   * (as `recovering`): changes between three voters and two or one, with a
   * voter recovering, are where the supporters rule must hold without
   * stalling (docs/raft.md, "Two voters beside three").
   */
  'reconfig-recovering': { reconfig: {}, recoveringRestarts: true, quiescedLeaderLoss: false },
  churn: {
    nodeCount: 3,
    raft: {
      electionTicks: 10,
      heartbeatTicks: 2,
      preVote: false,
      checkQuorum: false,
      maxEntriesPerAppend: 1,
      maxInflightAppends: 1,
      maxUncommittedEntries: 1024,
      quiesce: false,
    },
    lossRate: 0.3,
    faultIntervalMs: 50,
    weights: { crash: 4, partition: 2, oneWay: 0, pause: 2, transfer: 0 },
    maxDowntimeMs: 300,
    compactEvery: 0,
  },
});

/** The membership-change parameters of `seed`: the given fields, the others drawn. */
export function resolveReconfig(seed: number, given: Partial<ReconfigParams>): ReconfigParams {
  const r = deriveRandom(seed, 'reconfig');
  const initialVoters = given.initialVoters ?? r.pick([1, 2, 3, 3, 3, 4, 5]);
  const poolSize = given.poolSize ?? Math.min(7, initialVoters + r.between(1, 3));
  const changeIntervalMs = given.changeIntervalMs ?? r.pick([20, 60, 200, 600]);
  if (initialVoters < 1 || poolSize < initialVoters) throw new RangeError(`reconfig: ${initialVoters} initial voters in a pool of ${poolSize}`);
  return { poolSize, initialVoters, changeIntervalMs };
}
