/**
 * Moving partition replicas between brokers, as the metadata leader drives
 * it. The moves themselves are metadata (core/metadata/moves.ts), so a new
 * metadata leader resumes every unfinished one; this module holds what runs:
 *
 * - {@link nextMoveStep}: on the partition's leader, the one Raft change that
 *   brings a move closer (add `to` as a learner; promote it once caught up;
 *   hand leadership away when the leader is `from`; remove `from`), decided
 *   from the group's configuration alone, so a step repeated after a lost
 *   answer or a leader change does no harm;
 * - {@link ReplicaMoveCoordinator}: on the metadata leader, asks the
 *   partition's leader for the next step of every move until it is done,
 *   then records `finish-move`; starts the moves that empty draining brokers
 *   (at most `maxMoves` at once), and takes an emptied broker out of the
 *   metadata group. A broker unreachable for longer than the replacement
 *   timeout is drained like a decommissioned one (self-healing): its
 *   replicas are re-created on the others, so every partition gets back to
 *   its replication factor. While rebalancing is asked for (or automatic),
 *   it moves replicas from the brokers holding the most to those holding
 *   the fewest, one wave of moves at a time; once counts are even, it evens
 *   out preferred leaders (each partition's first replica) in the metadata,
 *   then asks every partition's leader to hand leadership to its preferred
 *   leader — {@link preferredLeaderStep}.
 *
 * How far a move got, for operators: each step's answer carries the bytes
 * the new replica copied and the partition's size ({@link copiedEstimate},
 * counted by the partition's leader from the fetches it serves); the
 * coordinator keeps the last {@link COPY_RATE_WINDOW_MS} of readings for a
 * rate and the time left ({@link ReplicaMoveCoordinator.progress}).
 */
import { RelayError } from '@relaymq/sdk/protocol';
import { planDrainMoves, planPreferredLeaders, planRebalanceMoves, replicasOn, type MoveCommand, type MovableTopic, type PlannedMove, type ReplicaMove } from '../core/metadata/moves.js';
import type { NodeId, ProgressStatus } from '../core/raft/index.js';

/** The peer RPC method of one step of a move, answered by the partition's leader. */
export const MOVE_STEP_METHOD = 'replica.move-step';
/** The peer RPC method that carries a move command (a drain) to the metadata leader. */
export const MOVE_COMMAND_METHOD = 'meta.move';

/** One step of the move of a partition group's replica from `from` to `to`. */
export interface MoveStepRequest {
  /** `p/<topic>/<partition>`. */
  group: string;
  from: NodeId;
  to: NodeId;
  /**
   * Give the move up (its target is being drained: gone, or decommissioned):
   * a learner target is removed from the group; one that votes already
   * cannot be, and the move goes on (the target is then drained like any replica).
   */
  cancel?: boolean;
}

/** Where a move stands after a step, as the partition's leader saw it. */
export type MovePhase = 'catching-up' | 'promoted' | 'transferring' | 'removed' | 'done' | 'cancelled';

export interface MoveStepAnswer {
  phase: MovePhase;
  /** The leader that answered. */
  leader: NodeId;
  /** The new replica's match index and the leader's last index (what it has to catch up). */
  match: number;
  lastIndex: number;
  /**
   * Bytes the new replica has copied of the partition, and the partition's
   * size on the leader (see {@link copiedEstimate}). Absent from brokers
   * older than these fields, and while the leader does not know its size.
   */
  copiedBytes?: number;
  totalBytes?: number;
}

/**
 * The bytes a move's target holds of the partition, as its leader estimates
 * them: the message bytes it served to the target's fetches (the segment
 * copy of a snapshot install), or the share of `totalBytes` its Raft match
 * index stands for, whichever is more, at most `totalBytes`; all of it once
 * the target votes (it is caught up).
 */
export function copiedEstimate(input: { fetchedBytes: number; match: number; lastIndex: number; totalBytes: number; votes: boolean }): number {
  const { fetchedBytes, match, lastIndex, totalBytes, votes } = input;
  if (votes) return totalBytes;
  const byIndex = lastIndex > 0 ? Math.floor((totalBytes * Math.min(match, lastIndex)) / lastIndex) : 0;
  return Math.min(totalBytes, Math.max(fetchedBytes, byIndex));
}

/** A move's copy rate is measured over this much of its recent progress. */
export const COPY_RATE_WINDOW_MS = 10_000;

/** One reading of a move's copied bytes. */
export interface CopySample {
  atMs: number;
  bytes: number;
}

/**
 * Adds a reading to a move's recent ones (kept within {@link COPY_RATE_WINDOW_MS}
 * of the newest, plus one older reading to measure from). A reading below
 * the last (a new leader counting afresh) starts over.
 */
export function addCopySample(samples: readonly CopySample[], sample: CopySample): CopySample[] {
  const last = samples[samples.length - 1];
  if (last !== undefined && (sample.bytes < last.bytes || sample.atMs < last.atMs)) return [sample];
  const kept = [...samples, sample];
  // Keep the newest reading older than the window: the rate spans the whole window.
  let first = 0;
  while (first + 1 < kept.length && sample.atMs - (kept[first + 1] as CopySample).atMs >= COPY_RATE_WINDOW_MS) first++;
  return kept.slice(first);
}

/** Bytes per second over the readings (null with fewer than two, or none a second apart). */
export function copyRate(samples: readonly CopySample[]): number | null {
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (first === undefined || last === undefined || last.atMs - first.atMs < 1000) return null;
  return ((last.bytes - first.bytes) * 1000) / (last.atMs - first.atMs);
}

/** Milliseconds until `total` is copied at `rate` bytes per second: 0 when it is, null when unknown (no size, no rate, or stalled). */
export function timeLeftMs(copied: number | null, total: number | null, rate: number | null): number | null {
  if (copied === null || total === null) return null;
  if (copied >= total) return 0;
  if (rate === null || rate <= 0) return null;
  return Math.ceil(((total - copied) * 1000) / rate);
}

/** The peer RPC method that asks a partition's leader to hand leadership to the preferred leader. */
export const PREFER_LEADER_METHOD = 'replica.prefer-leader';

/** Asks the leader of `group` to hand leadership to `preferred` (its first replica) when that one is caught up. */
export interface PreferLeaderRequest {
  group: string;
  preferred: NodeId;
}

/** `preferred`: it leads already; `transferring`: handed over; `lagging`: not caught up (or not a voter), left as is. */
export type PreferLeaderState = 'preferred' | 'transferring' | 'lagging';

/**
 * On a partition's leader: whether to hand leadership to `preferred`. It
 * must vote and hold all but {@link CAUGHT_UP_ENTRIES} of the log, or the
 * transfer would stall publishing while it catches up.
 */
export function preferredLeaderStep(view: LeaderView, preferred: NodeId): PreferLeaderState {
  if (view.self === preferred) return 'preferred';
  if (!view.voters.includes(preferred)) return 'lagging';
  const match = view.progress.find((p) => p.id === preferred)?.match ?? 0;
  return match + CAUGHT_UP_ENTRIES >= view.lastIndex ? 'transferring' : 'lagging';
}

export function parsePreferLeaderRequest(body: unknown): PreferLeaderRequest {
  const o = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  if (typeof o.group !== 'string' || !o.group.startsWith('p/') || o.group.length > 300 || !isId(o.preferred)) {
    throw new RelayError('INVALID_ARGUMENT', `${PREFER_LEADER_METHOD} wants { group: 'p/<topic>/<partition>', preferred }`);
  }
  return { group: o.group, preferred: o.preferred };
}

export function parsePreferLeaderAnswer(body: unknown): PreferLeaderState {
  if (body !== 'preferred' && body !== 'transferring' && body !== 'lagging') throw new RelayError('INTERNAL', `malformed answer to ${PREFER_LEADER_METHOD}`);
  return body;
}

/** A learner within this many entries of the leader's commit index is caught up (under load it never quite is). */
export const CAUGHT_UP_ENTRIES = 64;

/** What {@link nextMoveStep} reads of a partition group, on its leader. */
export interface LeaderView {
  self: NodeId;
  voters: readonly NodeId[];
  learners: readonly NodeId[];
  commit: number;
  lastIndex: number;
  progress: readonly ProgressStatus[];
  learnerProgress: readonly ProgressStatus[];
}

/** The Raft change a step makes. */
export type MoveAction =
  | { action: 'add-learner' }
  | { action: 'wait'; match: number }
  | { action: 'promote' }
  | { action: 'transfer'; target: NodeId }
  | { action: 'remove' }
  | { action: 'done' }
  | { action: 'remove-learner' }
  | { action: 'cancelled' };

/**
 * The next change of the move `from` → `to`, from the configuration of the
 * partition's group on its leader. `to` not yet a member: add it as a
 * learner. A learner: wait until it replicates within
 * {@link CAUGHT_UP_ENTRIES} of the commit index, then promote it. Both
 * voters: remove `from` — after handing leadership away when this leader is
 * `from` (the Raft core could remove a leader, but a transfer stalls
 * publishing for a heartbeat instead of an election): to the most caught-up
 * other voter that was one before the move, or to `to` when there is none.
 * `to` votes and `from` is out: done.
 */
export function nextMoveStep(view: LeaderView, move: { from: NodeId; to: NodeId; cancel?: boolean }): MoveAction {
  const { from, to } = move;
  const toVotes = view.voters.includes(to);
  const fromIn = view.voters.includes(from) || view.learners.includes(from);
  // Giving up: only a target that does not vote yet can be taken back out.
  if (move.cancel === true && !toVotes) return view.learners.includes(to) ? { action: 'remove-learner' } : { action: 'cancelled' };
  if (!toVotes && !view.learners.includes(to)) return { action: 'add-learner' };
  if (!toVotes) {
    const match = view.learnerProgress.find((p) => p.id === to)?.match ?? 0;
    return match + CAUGHT_UP_ENTRIES >= view.commit && match > 0 ? { action: 'promote' } : { action: 'wait', match };
  }
  if (!fromIn) return { action: 'done' };
  if (view.self !== from) return { action: 'remove' };
  const mostCaughtUp = (skip: readonly NodeId[]): ProgressStatus | undefined => {
    let best: ProgressStatus | undefined;
    for (const p of view.progress) {
      if (skip.includes(p.id) || !view.voters.includes(p.id)) continue;
      if (best === undefined || p.match > best.match) best = p;
    }
    return best;
  };
  // An established voter first: the new replica may not be linked to the other voters yet (a broker that just joined
  // meets them through gossip), and a transfer it cannot win costs an election — asked again at every step, the
  // leadership went back and forth for 3.5 s (elastic-cluster process test, load 17). The preferred-leader pass of
  // rebalancing gives new brokers their leaderships later.
  const established = mostCaughtUp([from, to]);
  if (established !== undefined) return { action: 'transfer', target: established.id };
  // Only the new replica: to it, when it is a voter this leader hears from; else (a group of one moving) the Raft core
  // removes a leader safely, and it hands over itself.
  return mostCaughtUp([from]) === undefined ? { action: 'remove' } : { action: 'transfer', target: to };
}

const isId = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 64;

export function parseMoveStepRequest(body: unknown): MoveStepRequest {
  const o = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  if (typeof o.group !== 'string' || !o.group.startsWith('p/') || o.group.length > 300 || !isId(o.from) || !isId(o.to) || o.from === o.to) {
    throw new RelayError('INVALID_ARGUMENT', `${MOVE_STEP_METHOD} wants { group: 'p/<topic>/<partition>', from, to, cancel? }`);
  }
  return o.cancel === true ? { group: o.group, from: o.from, to: o.to, cancel: true } : { group: o.group, from: o.from, to: o.to };
}

const PHASES: readonly MovePhase[] = ['catching-up', 'promoted', 'transferring', 'removed', 'done', 'cancelled'];

export function parseMoveStepAnswer(body: unknown): MoveStepAnswer {
  const o = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const uint = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (!PHASES.includes(o.phase as MovePhase) || !isId(o.leader) || !uint(o.match) || !uint(o.lastIndex)) {
    throw new RelayError('INTERNAL', `malformed answer to ${MOVE_STEP_METHOD}`);
  }
  const answer: MoveStepAnswer = { phase: o.phase as MovePhase, leader: o.leader, match: o.match, lastIndex: o.lastIndex };
  // Optional (older brokers send neither); both or none.
  if (uint(o.copiedBytes) && uint(o.totalBytes)) {
    answer.copiedBytes = o.copiedBytes;
    answer.totalBytes = o.totalBytes;
  }
  return answer;
}

/** A move as operators see it: the metadata's record and, on the metadata leader, its last step. */
export interface MoveProgress extends ReplicaMove {
  /** The last step's answer (`pending` before the first, or off the metadata leader). */
  phase: MovePhase | 'pending';
  /** Raft entries the new replica holds, and the leader's last index (0 when unknown). */
  match: number;
  lastIndex: number;
  /** Bytes the new replica holds of the partition, and the partition's size (null when unknown: before a step answered, or an older leader). */
  copiedBytes: number | null;
  totalBytes: number | null;
  /** Recent copy rate (bytes per second) and the time left at it (null when unknown). */
  bytesPerSecond: number | null;
  timeLeftMs: number | null;
  /** The last step's failure, while it is retried. */
  error?: string;
}

/** The peer RPC method that asks the metadata leader how its moves stand (only it steps them). */
export const MOVE_PROGRESS_METHOD = 'meta.move-progress';

/** The moves in progress, the brokers being drained, and whether a rebalance is under way. */
export interface MovesReport {
  moves: MoveProgress[];
  draining: string[];
  rebalancing: boolean;
}

const nullableUint = (v: unknown): v is number | null => v === null || (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0);
const nullableRate = (v: unknown): v is number | null => v === null || (typeof v === 'number' && Number.isFinite(v) && v >= 0);

/** A {@link MovesReport} from a peer, checked field by field. */
export function parseMovesReport(body: unknown): MovesReport {
  const malformed = (): RelayError => new RelayError('INTERNAL', `malformed answer to ${MOVE_PROGRESS_METHOD}`);
  const o = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  if (!Array.isArray(o.moves) || !Array.isArray(o.draining) || !o.draining.every(isId) || typeof o.rebalancing !== 'boolean') throw malformed();
  const moves = o.moves.map((raw: unknown): MoveProgress => {
    const m = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
    const phase = m.phase as MoveProgress['phase'];
    if (
      typeof m.topic !== 'string' || !Number.isSafeInteger(m.partition) || !isId(m.from) || !isId(m.to) || !Number.isFinite(m.startedAtMs) ||
      (phase !== 'pending' && !PHASES.includes(phase)) || !nullableUint(m.match) || m.match === null || !nullableUint(m.lastIndex) || m.lastIndex === null ||
      !nullableUint(m.copiedBytes) || !nullableUint(m.totalBytes) || !nullableRate(m.bytesPerSecond) || !nullableUint(m.timeLeftMs) ||
      (m.error !== undefined && typeof m.error !== 'string')
    ) {
      throw malformed();
    }
    const move: MoveProgress = {
      topic: m.topic,
      partition: m.partition as number,
      from: m.from,
      to: m.to,
      startedAtMs: m.startedAtMs as number,
      phase,
      match: m.match,
      lastIndex: m.lastIndex,
      copiedBytes: m.copiedBytes,
      totalBytes: m.totalBytes,
      bytesPerSecond: m.bytesPerSecond,
      timeLeftMs: m.timeLeftMs,
    };
    if (typeof m.error === 'string') move.error = m.error;
    return move;
  });
  return { moves, draining: o.draining, rebalancing: o.rebalancing };
}

/** What the coordinator reads and asks of the engine. */
export interface MoveCoordinatorContext {
  /** Whether this broker leads the metadata group. */
  isLeader: () => boolean;
  topics: () => readonly MovableTopic[];
  moves: () => readonly ReplicaMove[];
  draining: () => readonly NodeId[];
  /** Brokers replicas may move to: members of the metadata group that are linked to this broker (or are it). */
  targets: () => readonly NodeId[];
  /** Whether `broker` is still in the metadata group. */
  isMetadataMember: (broker: NodeId) => boolean;
  /** Members of the metadata group (other than this broker) not linked to this broker now. */
  unlinked: () => readonly NodeId[];
  /** Why `broker` may not be taken out now (decommission.ts), `undefined` when it may. */
  removalRefusal: (broker: NodeId) => string | undefined;
  /** A member unlinked this long is replaced (drained); 0 never replaces one. */
  replacementTimeoutMs: number;
  /** Whether an operator asked for a rebalance (`relaymq cluster rebalance`), recorded in the metadata until done. */
  rebalanceAsked: () => boolean;
  /** Rebalance whenever counts are uneven, asked or not. */
  autoRebalance: boolean;
  /** Proposes a move command in the metadata group (this broker leads it). */
  propose: (command: MoveCommand) => Promise<unknown>;
  /** Runs one step of a move on the partition's leader. */
  step: (request: MoveStepRequest) => Promise<MoveStepAnswer>;
  /** Asks a partition's leader to hand leadership to its preferred leader. */
  preferLeader: (request: PreferLeaderRequest) => Promise<PreferLeaderState>;
  /** Takes an emptied broker out of the metadata group. */
  removeFromMetadata: (broker: NodeId) => Promise<unknown>;
  /** Moves in progress at once, in all. */
  maxMoves: number;
  now: () => number;
  log: (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
}

/** A move's next step waits this long after an answer, and after a failure. */
const STEP_MS = 200;
const RETRY_MS = 1000;
/** Rounds of the preferred-leader pass before a rebalance gives up on the partitions left. */
const LEADER_ROUNDS = 10;

interface Driving {
  inFlight: boolean;
  nextAt: number;
  last: MoveStepAnswer | undefined;
  error: string | undefined;
  failures: number;
  /** Recent readings of the bytes copied, for the rate. */
  copied: CopySample[];
}

const keyOf = (m: { topic: string; partition: number }): string => `${m.topic}\u0000${m.partition}`;

export class ReplicaMoveCoordinator {
  private readonly driving = new Map<string, Driving>();
  private planning = false;
  private readonly removing = new Set<NodeId>();
  /** When each unlinked member was first seen unlinked, by this leader. */
  private readonly unlinkedSince = new Map<NodeId, number>();
  private readonly replacing = new Set<NodeId>();
  /** Members whose replacement was refused, so it is logged once. */
  private readonly refusedReplacement = new Set<NodeId>();
  /** The preferred-leader pass of a rebalance: partitions still to ask, and how many answers are owed. */
  private leaderPass: { queue: PreferLeaderRequest[]; owed: number; again: PreferLeaderRequest[]; round: number; nextAt: number } | undefined;
  /** A move finished since the last preferred-leader pass (automatic rebalancing runs one then). */
  private leadersUneven = false;
  private stopped = false;

  constructor(private readonly ctx: MoveCoordinatorContext) {}

  /** Called often (the engine's maintenance): drives what is due, on the metadata leader only. */
  tick(): void {
    if (this.stopped) return;
    if (!this.ctx.isLeader()) {
      // A later leadership starts over from the metadata, and times unreachable brokers afresh.
      this.driving.clear();
      this.unlinkedSince.clear();
      this.leaderPass = undefined;
      return;
    }
    const moves = this.ctx.moves();
    const live = new Set(moves.map(keyOf));
    for (const key of this.driving.keys()) if (!live.has(key) && this.driving.get(key)?.inFlight !== true) this.driving.delete(key);
    for (const move of moves) this.drive(move);
    this.replaceLost();
    this.plan(moves);
    this.retireDrained();
  }

  /** Every move in progress with what this broker knows of it. */
  progress(): MoveProgress[] {
    return this.ctx.moves().map((move) => {
      const d = this.driving.get(keyOf(move));
      const last = d?.last;
      const copiedBytes = last?.copiedBytes ?? null;
      const totalBytes = last?.totalBytes ?? null;
      const bytesPerSecond = d === undefined ? null : copyRate(d.copied);
      const progress: MoveProgress = {
        ...move,
        phase: last?.phase ?? 'pending',
        match: last?.match ?? 0,
        lastIndex: last?.lastIndex ?? 0,
        copiedBytes,
        totalBytes,
        bytesPerSecond: bytesPerSecond === null ? null : Math.round(bytesPerSecond),
        timeLeftMs: timeLeftMs(copiedBytes, totalBytes, bytesPerSecond),
      };
      if (d?.error !== undefined) progress.error = d.error;
      return progress;
    });
  }

  /**
   * Whether a rebalance is under way: asked for and not done, or, when
   * automatic, while replica counts differ by more than one or this
   * (metadata leader) broker evens out leaderships after a move.
   */
  rebalancing(): boolean {
    if (this.ctx.rebalanceAsked()) return true;
    if (!this.ctx.autoRebalance) return false;
    return this.leaderPass !== undefined || planRebalanceMoves({ topics: this.ctx.topics(), members: this.ctx.targets(), maxMoves: 1 }).length > 0;
  }

  stop(): void {
    this.stopped = true;
    this.driving.clear();
  }

  private drive(move: ReplicaMove): void {
    const key = keyOf(move);
    let d = this.driving.get(key);
    if (d === undefined) {
      d = { inFlight: false, nextAt: 0, last: undefined, error: undefined, failures: 0, copied: [] };
      this.driving.set(key, d);
    }
    const now = this.ctx.now();
    if (d.inFlight || now < d.nextAt) return;
    d.inFlight = true;
    const state = d;
    // A target being drained (gone past the replacement timeout, or decommissioned) is given up while it does not vote.
    const cancel = this.ctx.draining().includes(move.to);
    const request: MoveStepRequest = { group: `p/${move.topic}/${move.partition}`, from: move.from, to: move.to, ...(cancel ? { cancel } : {}) };
    this.ctx
      .step(request)
      .then(async (answer) => {
        const before = state.last?.phase;
        state.last = answer;
        if (answer.copiedBytes !== undefined) state.copied = addCopySample(state.copied, { atMs: this.ctx.now(), bytes: answer.copiedBytes });
        state.error = undefined;
        state.failures = 0;
        if (answer.phase !== before) this.ctx.log('info', 'replica move step', { group: request.group, from: move.from, to: move.to, phase: answer.phase, leader: answer.leader });
        if (answer.phase === 'done') {
          await this.ctx.propose({ type: 'finish-move', topic: move.topic, partition: move.partition, from: move.from, to: move.to });
          this.leadersUneven = true;
          this.ctx.log('info', 'replica moved', { group: request.group, from: move.from, to: move.to, ms: this.ctx.now() - move.startedAtMs });
        }
        if (answer.phase === 'cancelled') {
          await this.ctx.propose({ type: 'cancel-move', topic: move.topic, partition: move.partition, to: move.to });
          this.ctx.log('warn', 'replica move given up: its target is being drained', { group: request.group, from: move.from, to: move.to });
        }
      })
      .catch((err: unknown) => {
        state.error = err instanceof Error ? err.message : String(err);
        state.failures++;
        // Retried for ever: a leader change or a pending change of the group is expected; say so now and then.
        if (state.failures === 1 || state.failures % 10 === 0) this.ctx.log('warn', 'replica move step failed; retrying', { group: request.group, failures: state.failures, error: state.error });
      })
      .finally(() => {
        state.inFlight = false;
        state.nextAt = this.ctx.now() + (state.error === undefined ? STEP_MS : RETRY_MS);
      });
  }

  /** Drains a member unreachable for longer than the replacement timeout (self-healing). */
  private replaceLost(): void {
    const { replacementTimeoutMs } = this.ctx;
    if (replacementTimeoutMs <= 0) return;
    const now = this.ctx.now();
    const unlinked = new Set(this.ctx.unlinked());
    for (const id of [...this.unlinkedSince.keys()]) {
      if (unlinked.has(id)) continue;
      this.unlinkedSince.delete(id);
      this.refusedReplacement.delete(id);
    }
    const draining = new Set(this.ctx.draining());
    for (const id of unlinked) {
      const since = this.unlinkedSince.get(id) ?? now;
      this.unlinkedSince.set(id, since);
      if (now - since < replacementTimeoutMs || draining.has(id) || this.replacing.has(id)) continue;
      const refusal = this.ctx.removalRefusal(id);
      if (refusal !== undefined) {
        if (!this.refusedReplacement.has(id)) this.ctx.log('warn', 'a broker unreachable past the replacement timeout cannot be replaced', { broker: id, reason: refusal });
        this.refusedReplacement.add(id);
        continue;
      }
      this.replacing.add(id);
      this.ctx.log('warn', 'replacing a broker unreachable past the replacement timeout: its replicas are re-created on the other brokers', { broker: id, unreachableMs: now - since });
      this.ctx
        .propose({ type: 'drain-broker', broker: id, draining: true })
        .catch((err: unknown) => this.ctx.log('warn', 'could not start replacing a broker; retrying', { broker: id, error: String(err) }))
        .finally(() => this.replacing.delete(id));
    }
  }

  private plan(moves: readonly ReplicaMove[]): void {
    if (this.planning) return;
    const topics = this.ctx.topics();
    let planned: PlannedMove[] = [];
    // Draining brokers that still hold replicas come first; emptied ones stay recorded (nothing is placed on them again).
    const draining = this.ctx.draining();
    if (draining.some((id) => replicasOn(id, topics).length > 0)) {
      planned = planDrainMoves({ topics, moves, draining, members: this.ctx.targets(), maxMoves: this.ctx.maxMoves });
    } else if (moves.length === 0 && (this.ctx.autoRebalance || this.ctx.rebalanceAsked())) {
      // One wave at a time: counts are planned again once the last wave finished.
      planned = planRebalanceMoves({ topics, members: this.ctx.targets(), maxMoves: this.ctx.maxMoves });
      // Replica counts are even: preferred leaders next (evened out in the metadata), then leaderships, then it is done.
      if (planned.length === 0 && (this.ctx.rebalanceAsked() || this.leadersUneven || this.leaderPass !== undefined)) {
        const preferences = this.leaderPass === undefined ? planPreferredLeaders({ topics, members: this.ctx.targets() }) : [];
        if (preferences.length > 0) {
          this.planning = true;
          Promise.all(preferences.map((p) => this.ctx.propose({ type: 'prefer-replica', ...p }).catch(() => {}))).finally(() => {
            this.planning = false;
          });
          return;
        }
        if (this.preferLeaders(topics)) return;
        this.leadersUneven = false;
        if (!this.ctx.rebalanceAsked()) return;
        this.planning = true;
        this.ctx
          .propose({ type: 'rebalance', on: false })
          .catch(() => {}) // asked again next tick
          .finally(() => {
            this.planning = false;
          });
        return;
      }
    }
    if (planned.length === 0) return;
    this.planning = true;
    const atMs = Math.max(0, Math.floor(this.ctx.now()));
    Promise.all(
      planned.map((m) =>
        this.ctx.propose({ type: 'move-replica', ...m, atMs }).then(
          (result) => this.ctx.log('info', 'replica move started', { group: `p/${m.topic}/${m.partition}`, from: m.from, to: m.to, result: (result as { kind?: string } | undefined)?.kind }),
          (err: unknown) => this.ctx.log('warn', 'could not start a replica move', { group: `p/${m.topic}/${m.partition}`, error: String(err) }),
        ),
      ),
    ).finally(() => {
      this.planning = false;
    });
  }

  /**
   * One tick of the preferred-leader pass: asks up to `maxMoves` partition
   * leaders to hand over to their first replica. A partition whose leader
   * did not say `preferred` (it handed over, its preferred one lags, or the
   * request failed) is asked again a second later, up to
   * {@link LEADER_ROUNDS} rounds. True while the pass runs.
   */
  private preferLeaders(topics: readonly MovableTopic[]): boolean {
    if (this.leaderPass === undefined) {
      const queue = topics.flatMap((t) => t.partitions.flatMap((a, partition) => (a.replicas[0] === undefined ? [] : [{ group: `p/${t.topic}/${partition}`, preferred: a.replicas[0] }])));
      this.leaderPass = { queue, owed: 0, again: [], round: 1, nextAt: 0 };
    }
    const pass = this.leaderPass;
    if (this.ctx.now() < pass.nextAt) return true;
    while (pass.owed < this.ctx.maxMoves && pass.queue.length > 0) {
      const request = pass.queue.shift() as PreferLeaderRequest;
      pass.owed++;
      this.ctx
        .preferLeader(request)
        .then(
          (state) => {
            if (state === 'transferring') this.ctx.log('info', 'leadership handed to the preferred leader', { group: request.group, leader: request.preferred });
            if (state !== 'preferred') pass.again.push(request);
          },
          (err: unknown) => {
            pass.again.push(request);
            this.ctx.log('debug', 'could not ask for the preferred leader', { group: request.group, error: String(err) });
          },
        )
        .finally(() => {
          pass.owed--;
        });
    }
    if (pass.queue.length > 0 || pass.owed > 0) return true;
    if (pass.again.length > 0 && pass.round < LEADER_ROUNDS) {
      // A transfer takes a heartbeat or two: look again a second later.
      this.leaderPass = { queue: pass.again, owed: 0, again: [], round: pass.round + 1, nextAt: this.ctx.now() + RETRY_MS };
      return true;
    }
    if (pass.again.length > 0) this.ctx.log('warn', 'some partitions are not led by their preferred leader after a rebalance', { groups: pass.again.slice(0, 10).map((r) => r.group) });
    this.leaderPass = undefined;
    return false;
  }

  /** A draining broker that holds nothing any more leaves the metadata group (it can then be stopped). */
  private retireDrained(): void {
    const topics = this.ctx.topics();
    for (const broker of this.ctx.draining()) {
      if (this.removing.has(broker) || !this.ctx.isMetadataMember(broker) || replicasOn(broker, topics).length > 0) continue;
      this.removing.add(broker);
      this.ctx
        .removeFromMetadata(broker)
        .then(
          () => this.ctx.log('info', 'decommissioned broker left the metadata group', { broker }),
          (err: unknown) => this.ctx.log('warn', 'could not take a drained broker out of the metadata group; retrying', { broker, error: String(err) }),
        )
        .finally(() => this.removing.delete(broker));
    }
  }
}
