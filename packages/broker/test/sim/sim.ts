/**
 * A deterministic Raft cluster simulator. One seed drives everything: the
 * fault profile (swarm testing), the network's losses, delays, duplicates
 * and partitions, crashes (some striking inside an fsync, losing unsynced
 * writes), restarts from what was durable, long pauses, clock skew, the
 * client workload, and each node's own random stream (derived from the seed,
 * the node id and its restart count).
 *
 * Events (node ticks, message deliveries, faults, proposals) sit in a
 * priority queue over a virtual millisecond clock; one event is one step.
 * Every node is driven through the one runner (`runReady`, the broker's own:
 * its handlers here all finish at once, so it runs synchronously), and what
 * counts as acknowledged is decided by the broker's own `ProposalTracker`.
 * The checkers (checkers.ts) observe every persist, commit, apply,
 * acknowledgement and role change as it happens.
 *
 * Two phases: `steps` events of faults, then everything heals and a leader
 * must be elected and every acknowledged value applied on every node within
 * a bounded number of ticks.
 */
import { formatMessage } from '../../src/core/raft/format.js';
import { formatConf, isMember } from '../../src/core/raft/membership.js';
import { RaftNode } from '../../src/core/raft/node.js';
import { NO_TESTING_KNOBS, type RaftTestingKnobs } from '../../src/core/raft/raft.js';
import { ProposalTracker, type ProposalAck } from '../../src/core/raft/proposals.js';
import { deriveRandom, type SeededRandom } from '../../src/core/raft/random.js';
import { runReadySync, type ReadyHandlers } from '../../src/core/raft/runner.js';
import type { ConfState, Entry, Message, NodeId, Role } from '../../src/core/raft/types.js';
import { pickConfChange } from './conf-changes.js';
import { ConfigChecker, SafetyChecker, SafetyViolation, type NodeView, type Value } from './checkers.js';
import { EventHeap, type Timed } from './heap.js';
import { SimStorage, SimulatedCrash } from './storage.js';
import { resolveReconfig, swarmParams, type ReconfigParams, type SwarmParams } from './swarm.js';
import { TraceRing } from './trace.js';

/** The simulated state machine's snapshot: the index and the digest of everything applied up to it. */
export interface SnapData {
  readonly index: number;
  readonly digest: number;
}
type Msg = Message<Value, SnapData>;

export interface SimOptions {
  seed: number;
  /** Events in the fault phase. */
  steps: number;
  /** TEST-ONLY deliberate bugs switched on in every node. */
  knobs?: Partial<RaftTestingKnobs>;
  /** Override the swarm's choices (tests). */
  params?: Partial<SwarmParams>;
  /** Events kept for the failure trace. @defaultValue 200 */
  traceCapacity?: number;
  /** Record a run's trace even without a failure (for `--trace`). */
  keepTrace?: boolean;
  /** TEST-ONLY: the proposal bookkeeping each node life uses (a deliberately wrong one proves the acknowledgement checks). @defaultValue the broker's {@link ProposalTracker} */
  proposalTracker?: () => ProposalTracker<Value, Value>;
}

export interface SimFailure {
  property: string;
  message: string;
  step: number;
  timeMs: number;
  trace: string[];
}

export interface SimStats {
  proposals: number;
  proposalsRefused: number;
  acked: number;
  /** Of them, acknowledged with ack level `all` (every node held them). */
  ackedAll: number;
  applied: number;
  leaders: number;
  crashes: number;
  crashesInSync: number;
  restarts: number;
  partitions: number;
  pauses: number;
  transfers: number;
  messagesSent: number;
  messagesLost: number;
  snapshotsSent: number;
  /** Membership changes a leader accepted (appended) and refused. */
  confChanges: number;
  confChangesRefused: number;
  /** Membership changes committed and applied (the history's conf entries). */
  confChangesApplied: number;
  /** Times a node quiesced (counted at its crash or at the end). */
  quiesces: number;
  /** Failure-detector signals delivered (true and false suspicions) and random wakes. */
  peerDownSignals: number;
  /** Suspicions the failure detector withdrew (the peer reachable again), and of them those that woke a quiesced leader. */
  peerRecoveries: number;
  recoveryWakes: number;
  wakes: number;
  /** With `recoveringRestarts`: recoveries that ended, and elections leaders started to end one (counted at a crash or at the end). */
  recoveriesEnded: number;
  recoveryElections: number;
  /** Campaigns of learners whose log held entries above their commit (counted at a crash or at the end). */
  learnerCampaigns: number;
  /** With `quiescedLeaderLoss`: ticks from the crash of the quiesced group's leader to a new leader every other node follows. */
  ticksToReplaceQuiescedLeader: number | undefined;
}

export interface SimResult {
  seed: number;
  params: SwarmParams;
  ok: boolean;
  failure: SimFailure | undefined;
  /** Events processed, both phases. */
  steps: number;
  /** Ticks from the heal until every node follows one leader (0 if a leader already held). */
  electionTicksAfterHeal: number | undefined;
  /** Ticks from the heal until every acknowledged value is applied everywhere. */
  convergeTicksAfterHeal: number | undefined;
  /** Whether every node already followed one leader at the heal. */
  leaderAtHeal: boolean;
  stats: SimStats;
  trace: string[] | undefined;
}

const enum Kind {
  Tick,
  Deliver,
  Fault,
  Propose,
  Restart,
  PartitionEnd,
  SnapshotReport,
  Unreachable,
  ConfChange,
  Detect,
}

interface Ev extends Timed {
  kind: Kind;
  node: number;
  life: number;
  msg: Msg | undefined;
  flag: boolean;
  gen: number;
}

interface SimNode {
  readonly id: NodeId;
  readonly index: number;
  life: number;
  up: boolean;
  raft: RaftNode<Value, SnapData> | undefined;
  readonly storage: SimStorage<Value, SnapData>;
  pausedUntilMs: number;
  tickMs: number;
  /** This life's proposals awaiting their outcome: the broker's bookkeeping, waiting with the proposed value. */
  proposals: ProposalTracker<Value, Value>;
  snapshotIndex: number;
  seenRole: Role;
  /** Peers the failure detector told this life's core are down, until it tells it they recovered. */
  suspects: Set<NodeId>;
  seenTerm: number;
  seenLeader: NodeId | null;
  seenCommit: number;
  view: NodeView;
  io: ReadyHandlers<Value, SnapData>;
}

/** Bounds, named. */
const MAX_QUEUED_EVENTS = 2_000_000;
const MAX_READY_ROUNDS = 64;
/** Liveness: ticks allowed after the heal to elect a leader every node follows, as a multiple of the election timeout. */
const LIVENESS_BOUND_ELECTIONS = 40;
/**
 * Then, to apply every acknowledged value everywhere: ticks allowed per
 * window of entries a lagging node is behind (one window is
 * `maxEntriesPerAppend × maxInflightAppends` entries, one round trip, at
 * most 2 ticks on the healed network).
 */
const CATCH_UP_TICKS_PER_WINDOW = 4;
/** Delays after the heal are capped, so the network is healthy, not just connected. */
const HEALED_MAX_DELAY_MS = 10;

export class Simulation {
  params: SwarmParams;
  private readonly rng: SeededRandom;
  private readonly nodes: SimNode[] = [];
  private readonly indexOf = new Map<NodeId, number>();
  private readonly heap = new EventHeap<Ev>(MAX_QUEUED_EVENTS);
  private readonly checker = new SafetyChecker();
  private readonly configChecker = new ConfigChecker();
  /** Membership changes, or undefined for a static cluster. */
  readonly reconfig: ReconfigParams | undefined;
  /** The configuration every node starts from. */
  private readonly bootstrap: ConfState;
  private readonly trace: TraceRing;
  private readonly knobs: Readonly<RaftTestingKnobs>;
  /** blocked[from * n + to]: messages on that link are cut. */
  private blocked: boolean[];
  private partitionGen = 0;
  private now = 0;
  private seq = 0;
  private step = 0;
  private nextValue = 1;
  private healed = false;
  private lossRate: number;
  private duplicateRate: number;
  private maxDelayMs: number;
  readonly stats: SimStats = {
    proposals: 0,
    proposalsRefused: 0,
    acked: 0,
    ackedAll: 0,
    applied: 0,
    leaders: 0,
    crashes: 0,
    crashesInSync: 0,
    restarts: 0,
    partitions: 0,
    pauses: 0,
    transfers: 0,
    messagesSent: 0,
    messagesLost: 0,
    snapshotsSent: 0,
    confChanges: 0,
    confChangesRefused: 0,
    confChangesApplied: 0,
    quiesces: 0,
    peerDownSignals: 0,
    peerRecoveries: 0,
    recoveryWakes: 0,
    wakes: 0,
    recoveriesEnded: 0,
    recoveryElections: 0,
    learnerCampaigns: 0,
    ticksToReplaceQuiescedLeader: undefined,
  };
  /** Nodes crashed for good after the heal (`quiescedLeaderLoss`): no longer expected to follow or apply. */
  private readonly retired = new Set<SimNode>();
  /** The detector only tells the truth: no false suspicion or random wake rescues a node the core let sleep. */
  private detectorTruthful = false;

  constructor(private readonly options: SimOptions) {
    this.params = { ...swarmParams(options.seed), ...options.params };
    this.rng = deriveRandom(options.seed, 'world');
    this.trace = new TraceRing(options.traceCapacity ?? 200);
    this.knobs = { ...NO_TESTING_KNOBS, ...options.knobs };
    this.lossRate = this.params.lossRate;
    this.duplicateRate = this.params.duplicateRate;
    this.maxDelayMs = this.params.maxDelayMs;
    this.reconfig = this.params.reconfig === null ? undefined : resolveReconfig(options.seed, this.params.reconfig);
    // Membership changes need pre-vote (the broker always runs it): without it, a node removed and added back
    // as a learner before it learns of either keeps campaigning in its old configuration, raising the terms
    // of voters that must elect someone else, and can keep a group from electing anyone.
    if (this.reconfig !== undefined) this.params = { ...this.params, raft: { ...this.params.raft, preVote: true } };
    // Losing the leader of a quiesced group is about quiescence, in a static cluster: it switches quiescence
    // on, unless the caller fixed the Raft settings (the churn profile), whose choice stands.
    if (this.params.quiescedLeaderLoss) {
      if (this.reconfig !== undefined || (options.params?.raft !== undefined && !options.params.raft.quiesce)) this.params = { ...this.params, quiescedLeaderLoss: false };
      else this.params = { ...this.params, raft: { ...this.params.raft, quiesce: true } };
    }
    const n = this.reconfig?.poolSize ?? this.params.nodeCount;
    this.blocked = new Array<boolean>(n * n).fill(false);
    const ids: NodeId[] = [];
    for (let i = 0; i < n; i++) ids.push(`n${i + 1}`);
    // With reconfiguration, the nodes past the initial voters exist from the start, outside the configuration.
    this.bootstrap = Object.freeze({ voters: Object.freeze(ids.slice(0, this.reconfig?.initialVoters ?? n)) });
    for (let i = 0; i < n; i++) {
      const id = ids[i] as NodeId;
      this.indexOf.set(id, i);
      const node: SimNode = {
        id,
        index: i,
        life: 0,
        up: false,
        raft: undefined,
        storage: new SimStorage<Value, SnapData>(this.bootstrap.voters),
        pausedUntilMs: 0,
        tickMs: this.params.tickMs,
        proposals: this.newTracker(),
        snapshotIndex: 0,
        seenRole: 'follower',
        suspects: new Set(),
        seenTerm: 0,
        seenLeader: null,
        seenCommit: 0,
        view: undefined as unknown as NodeView,
        io: undefined as unknown as ReadyHandlers<Value, SnapData>,
      };
      node.view = this.makeView(node);
      node.io = this.makeIo(node);
      this.nodes.push(node);
    }
  }

  private newTracker(): ProposalTracker<Value, Value> {
    return this.options.proposalTracker?.() ?? new ProposalTracker<Value, Value>();
  }

  // ---- events ---------------------------------------------------------------

  private schedule(timeMs: number, kind: Kind, node: number, life: number, msg?: Msg, flag = false, gen = 0): void {
    this.heap.push({ timeMs, seq: this.seq++, kind, node, life, msg, flag, gen });
  }

  private record(node: string, kind: string, detail: unknown): void {
    this.trace.record(this.now, this.step, node, kind, detail);
  }

  run(): SimResult {
    let failure: SimFailure | undefined;
    let electionTicks: number | undefined;
    let convergeTicks: number | undefined;
    let leaderAtHeal = false;
    const p = this.params;
    try {
      for (const node of this.nodes) this.start(node);
      this.schedule(this.rng.between(1, 2 * p.faultIntervalMs), Kind.Fault, -1, 0);
      this.schedule(this.rng.between(1, 2 * p.proposeIntervalMs), Kind.Propose, -1, 0);
      if (this.reconfig !== undefined) this.schedule(this.rng.between(1, 2 * this.reconfig.changeIntervalMs), Kind.ConfChange, -1, 0);
      if (p.raft.quiesce) this.schedule(this.detectIntervalMs(), Kind.Detect, -1, 0);
      this.record('-', 'swarm', JSON.stringify({ ...p, reconfig: this.reconfig ?? null }));

      while (this.step < this.options.steps) {
        if (!this.processNext()) break;
      }

      this.heal();
      const healAt = this.now;
      leaderAtHeal = this.leaderAgreed();
      const electionBoundMs = LIVENESS_BOUND_ELECTIONS * p.raft.electionTicks * p.tickMs;
      const window = p.raft.maxEntriesPerAppend * p.raft.maxInflightAppends;
      const windows = Math.ceil(this.maxLag() / window);
      const boundMs = electionBoundMs + windows * CATCH_UP_TICKS_PER_WINDOW * p.tickMs;
      let electedAt: number | undefined;
      while (this.now - healAt <= boundMs) {
        if (electedAt === undefined) {
          if (this.leaderAgreed()) electedAt = this.now;
          else if (this.now - healAt > electionBoundMs) break;
        }
        // Recovering nodes (`recoveringRestarts`) must also be brought out of recovery within the bound.
        if (electedAt !== undefined && this.allApplied() && this.recoveringMembers().length === 0) break;
        if (!this.processNext()) break;
      }
      if (electedAt === undefined) {
        throw new SafetyViolation('liveness', `${electionBoundMs / p.tickMs} ticks after the heal no leader is followed by every node (${this.describeNodes()})`);
      }
      if (!this.allApplied()) {
        throw new SafetyViolation(
          'liveness',
          `${Math.round((this.now - healAt) / p.tickMs)} ticks after the heal (bound: ${boundMs / p.tickMs}, for ${windows} windows of backlog), not every acknowledged value is applied everywhere (${this.describeNodes()})`,
        );
      }
      const recovering = this.recoveringMembers();
      if (recovering.length > 0) {
        throw new SafetyViolation('liveness', `${Math.round((this.now - healAt) / p.tickMs)} ticks after the heal ${recovering.join(', ')} still recovering (${this.describeNodes()})`);
      }
      this.checker.checkAllApplied(this.members().map((n) => n.id));
      electionTicks = Math.round((electedAt - healAt) / p.tickMs);
      convergeTicks = Math.round((this.now - healAt) / p.tickMs);
      if (p.quiescedLeaderLoss) this.loseQuiescedLeader();
    } catch (error) {
      const property = error instanceof SafetyViolation ? error.property : 'exception';
      const message = error instanceof Error ? (error instanceof SafetyViolation ? error.message : `${error.name}: ${error.message}`) : String(error);
      this.record('-', 'FAILED', message);
      failure = { property, message, step: this.step, timeMs: this.now, trace: this.renderTrace() };
    }
    this.stats.leaders = this.checker.leadersSeen;
    this.stats.applied = this.checker.entriesApplied;
    this.stats.acked = this.checker.acked.size;
    this.stats.ackedAll = this.checker.ackedAll;
    this.stats.confChangesApplied = this.checker.confEntriesApplied;
    for (const node of this.nodes) this.countQuiesces(node);
    return {
      seed: this.options.seed,
      params: this.params,
      ok: failure === undefined,
      failure,
      steps: this.step,
      electionTicksAfterHeal: electionTicks,
      convergeTicksAfterHeal: convergeTicks,
      leaderAtHeal,
      stats: this.stats,
      trace: failure === undefined && this.options.keepTrace === true ? this.renderTrace() : failure?.trace,
    };
  }

  private renderTrace(): string[] {
    return this.trace.render((detail) => formatMessage(detail as Msg));
  }

  private describeNodes(): string {
    return this.nodes
      .map((n) => {
        const r = n.raft;
        if (r === undefined) return `${n.id}: down`;
        const conf = this.reconfig === undefined ? '' : ` last=${r.lastIndex} conf=${r.status().confIndex}:{${formatConf(r.confState)}}`;
        return `${n.id}: ${r.role} term=${r.term} leader=${r.leader ?? '-'} commit=${r.commitIndex} applied=${this.checker.appliedIndex(n.id)}${conf}`;
      })
      .join('; ');
  }

  /** Handles the next event; false when nothing is left. */
  private processNext(): boolean {
    const ev = this.heap.pop();
    if (ev === undefined) return false;
    this.now = ev.timeMs;
    this.step++;
    switch (ev.kind) {
      case Kind.Tick:
        this.onTick(ev);
        break;
      case Kind.Deliver:
        this.onDeliver(ev);
        break;
      case Kind.Fault:
        if (!this.healed) {
          this.injectFault();
          this.schedule(this.now + this.rng.between(1, 2 * this.params.faultIntervalMs), Kind.Fault, -1, 0);
        }
        break;
      case Kind.ConfChange:
        if (!this.healed && this.reconfig !== undefined) {
          if (ev.node >= 0) {
            // A change asked of a new leader at once (see observe); it refuses it until its no-op commits.
            const node = this.nodes[ev.node] as SimNode;
            if (node.up && node.life === ev.life && node.raft?.role === 'leader') this.changeMembership(node);
            break;
          }
          this.changeMembership();
          this.schedule(this.now + this.rng.between(1, 2 * this.reconfig.changeIntervalMs), Kind.ConfChange, -1, 0);
        }
        break;
      case Kind.Propose:
        if (!this.healed) {
          this.propose();
          this.schedule(this.now + this.rng.between(1, 2 * this.params.proposeIntervalMs), Kind.Propose, -1, 0);
        }
        break;
      case Kind.Restart: {
        const node = this.nodes[ev.node] as SimNode;
        if (!node.up && node.life === ev.life) this.start(node);
        break;
      }
      case Kind.Detect:
        this.detect();
        this.schedule(this.now + this.detectIntervalMs(), Kind.Detect, -1, 0);
        break;
      case Kind.PartitionEnd:
        if (ev.gen === this.partitionGen) {
          this.blocked.fill(false);
          this.record('-', 'heal-net', `partition ${ev.gen} over`);
        }
        break;
      case Kind.SnapshotReport: {
        const node = this.nodes[ev.node] as SimNode;
        const to = ev.msg?.to;
        if (node.up && node.life === ev.life && node.raft !== undefined && to !== undefined) {
          this.record(node.id, 'snap-rep', `snapshot to ${to} ${ev.flag ? 'delivered' : 'failed'}`);
          node.raft.reportSnapshot(to, ev.flag);
          this.afterNodeEvent(node);
        }
        break;
      }
      case Kind.Unreachable: {
        const node = this.nodes[ev.node] as SimNode;
        const to = ev.msg?.to;
        if (node.up && node.life === ev.life && node.raft !== undefined && to !== undefined) {
          node.raft.reportUnreachable(to);
          this.afterNodeEvent(node);
        }
        break;
      }
    }
    return true;
  }

  // ---- nodes ----------------------------------------------------------------

  private makeView(node: SimNode): NodeView {
    return {
      id: node.id,
      termAt: (index) => node.raft?.termAt(index),
      get firstIndex() {
        return node.raft?.firstIndex ?? 1;
      },
      get lastIndex() {
        return node.raft?.lastIndex ?? 0;
      },
    };
  }

  private makeIo(node: SimNode): ReadyHandlers<Value, SnapData> {
    const checker = this.checker;
    const storage = node.storage;
    return {
      storage: {
        applySnapshot: (snapshot) => storage.applySnapshot(snapshot),
        append: (entries) => {
          checker.onPersist(node.id, entries, node.view);
          storage.append(entries);
        },
        setHardState: (hardState) => storage.setHardState(hardState),
        sync: () => storage.sync(),
      },
      send: (messages) => this.send(node, messages),
      restore: (snapshot) => {
        checker.onRestore(node.id, snapshot.meta.index, snapshot.data.digest);
        node.snapshotIndex = snapshot.meta.index;
        this.record(node.id, 'restore', `snapshot ${snapshot.meta.index}/${snapshot.meta.term}`);
      },
      apply: (entries) => this.apply(node, entries),
    };
  }

  private start(node: SimNode): void {
    node.life++;
    node.up = true;
    node.pausedUntilMs = 0;
    node.proposals = this.newTracker(); // a new life: the old one's callers never hear back
    const skew = this.params.clockSkew;
    node.tickMs = Math.max(1, Math.round(this.params.tickMs * (1 + skew * (2 * this.rng.nextFloat() - 1))));
    // `joining`: a node may restart outside the configuration (not added yet, or removed).
    const raft = new RaftNode<Value, SnapData>(
      {
        id: node.id,
        storage: node.storage,
        random: deriveRandom(this.options.seed, `${node.id}/${node.life}`),
        config: this.params.recoveringRestarts && node.life > 1 ? { ...this.params.raft, recoveringAtStart: true } : this.params.raft,
        joining: true,
      },
      this.knobs,
    );
    node.raft = raft;
    node.suspects.clear();
    const snapshot = node.storage.snapshot();
    node.snapshotIndex = snapshot?.meta.index ?? 0;
    this.checker.onStart(node.id, node.snapshotIndex, snapshot?.data.digest ?? 0, raft.term);
    this.configChecker.onStart(node.id);
    node.seenRole = raft.role;
    node.seenTerm = raft.term;
    node.seenLeader = raft.leader;
    node.seenCommit = node.snapshotIndex;
    if (node.life > 1) this.stats.restarts++;
    this.record(node.id, 'start', `life ${node.life}: term=${raft.term} commit=${raft.commitIndex} log=${raft.firstIndex}..${raft.lastIndex}`);
    this.observe(node);
    this.schedule(this.now + 1 + this.rng.nextInt(node.tickMs), Kind.Tick, node.index, node.life);
  }

  private crash(node: SimNode, reason: string): void {
    this.countQuiesces(node);
    const unsynced = node.storage.unsyncedWrites();
    const kept = this.rng.between(0, unsynced);
    node.storage.crash(kept);
    node.up = false;
    node.raft = undefined;
    node.proposals = this.newTracker(); // a new life: the old one's callers never hear back
    this.stats.crashes++;
    this.record(node.id, 'crash', `${reason}; ${unsynced - kept} of ${unsynced} unsynced writes lost`);
    if (!this.healed) this.schedule(this.now + this.rng.between(1, this.params.maxDowntimeMs), Kind.Restart, node.index, node.life);
  }

  private onTick(ev: Ev): void {
    const node = this.nodes[ev.node] as SimNode;
    if (!node.up || node.life !== ev.life || node.raft === undefined) return;
    if (node.pausedUntilMs > this.now) {
      // A paused process: its timers fire late, once.
      this.schedule(node.pausedUntilMs, Kind.Tick, node.index, node.life);
      return;
    }
    node.raft.tick();
    this.afterNodeEvent(node);
    if (node.up && node.life === ev.life) this.schedule(this.now + node.tickMs, Kind.Tick, node.index, node.life);
  }

  private onDeliver(ev: Ev): void {
    const msg = ev.msg as Msg;
    const node = this.nodes[ev.node] as SimNode;
    const from = this.indexOf.get(msg.from) as number;
    if (!node.up || node.raft === undefined) {
      this.lose(msg, 'down');
      return;
    }
    if (this.blocked[from * this.nodes.length + node.index] === true) {
      this.lose(msg, 'cut');
      return;
    }
    if (node.pausedUntilMs > this.now) {
      this.schedule(node.pausedUntilMs + this.rng.nextInt(3), Kind.Deliver, node.index, 0, msg);
      return;
    }
    this.record(node.id, 'recv', msg);
    node.raft.step(msg);
    this.afterNodeEvent(node);
  }

  private lose(msg: Msg, reason: string): void {
    this.stats.messagesLost++;
    this.record(msg.to, reason, msg);
    if (msg.type === 'snapshot') this.reportSnapshotLater(msg, false);
  }

  /** The sender's transport learns how a snapshot message fared (sometimes wrongly), after a while. */
  private reportSnapshotLater(msg: Msg, delivered: boolean): void {
    const sender = this.nodes[this.indexOf.get(msg.from) as number] as SimNode;
    const reported = delivered || this.rng.chance(this.params.wrongSnapshotReportRate);
    this.schedule(this.now + this.rng.between(1, 50), Kind.SnapshotReport, sender.index, sender.life, msg, reported);
  }

  /** Runs the node's Ready batches through the one runner, then observes it. */
  private afterNodeEvent(node: SimNode): void {
    const raft = node.raft;
    if (raft === undefined) return;
    try {
      for (let i = 0; i < MAX_READY_ROUNDS; i++) {
        if (!runReadySync(raft, node.io)) break;
      }
    } catch (error) {
      if (!(error instanceof SimulatedCrash)) throw error;
      this.stats.crashesInSync++;
      this.crash(node, 'crashed inside fsync');
      return;
    }
    this.observe(node);
    // As RaftGroup does once its Readys are drained: `all` proposals every voter now holds are acknowledged.
    if (node.proposals.waitingForAllReplicas) {
      for (const settled of node.proposals.onProgress(raft.status())) {
        if (settled.outcome === 'acknowledged') this.acknowledged(node, settled.waiter, settled.index, settled.term);
      }
    }
    // A node that no longer leads gives up on its proposals (outcome unknown): none of them counts as acknowledged.
    node.proposals.onRole(raft.status());
  }

  /** The proposer's bookkeeping acknowledged `value` at (`index`, `term`): the checker judges it by the ack level the client asked for. */
  private acknowledged(node: SimNode, value: Value, index: number, term: number): void {
    if (ackLevelOf(value) === 'quorum') {
      this.checker.onAck(value, index);
      this.record(node.id, 'ack', `value ${value} committed at ${index}/${term}`);
      return;
    }
    // Every voter of the acknowledging leader's configuration (all nodes, in a static cluster).
    const voters = new Set(node.raft?.status().voters ?? []);
    const missing = this.nodes.filter((n) => voters.has(n.id) && !n.storage.durablyHolds(index, term)).map((n) => n.id);
    this.checker.onAckAll(value, index, missing);
    this.record(node.id, 'ack', `value ${value} on every node at ${index}/${term}`);
  }

  /** Reports role, term and commit changes to the checker. O(1) unless something changed. */
  private observe(node: SimNode): void {
    const raft = node.raft;
    if (raft === undefined) return;
    const storage = node.storage;
    this.configChecker.check(node.id, raft.confState, raft.status().confIndex, {
      firstIndex: storage.firstIndex(),
      lastIndex: storage.lastIndex(),
      entryAt: (index) => storage.entries(index, index + 1, 1)[0],
      baseConf: storage.initialState().confState,
    });
    if (raft.role !== node.seenRole || raft.term !== node.seenTerm || raft.leader !== node.seenLeader) {
      node.seenRole = raft.role;
      node.seenTerm = raft.term;
      node.seenLeader = raft.leader;
      this.record(node.id, 'role', `${raft.role} term=${raft.term} leader=${raft.leader ?? '-'} last=${raft.lastIndex} commit=${raft.commitIndex}`);
      this.checker.onRole(node.id, raft.term, raft.role === 'leader', node.view);
      // Half the new leaders are asked for a change before their no-op can commit: the window of Ongaro's bug.
      if (raft.role === 'leader' && this.reconfig !== undefined && !this.healed && this.rng.chance(0.5)) {
        this.schedule(this.now + this.rng.between(0, 3), Kind.ConfChange, node.index, node.life);
      }
    }
    if (raft.commitIndex !== node.seenCommit) {
      this.checker.onCommit(node.id, raft.commitIndex, node.view, raft.role === 'leader' ? raft.term : undefined);
      node.seenCommit = raft.commitIndex;
    }
  }

  private apply(node: SimNode, entries: readonly Entry<Value>[]): void {
    const raft = node.raft as RaftNode<Value, SnapData>;
    // Record the commit before compaction can hide the entries' terms.
    if (raft.commitIndex !== node.seenCommit) {
      this.checker.onCommit(node.id, raft.commitIndex, node.view, raft.role === 'leader' ? raft.term : undefined);
      node.seenCommit = raft.commitIndex;
    }
    for (const entry of entries) {
      this.checker.onApply(node.id, entry);
      // The broker's decision, checked: an acknowledged value must be the one the history holds at its index.
      const settled = entry.type === 'normal' ? node.proposals.onApplied(entry.index, entry.term, entry.data) : node.proposals.onNoopApplied(entry.index);
      if (settled?.outcome === 'acknowledged') {
        this.acknowledged(node, settled.waiter, settled.index, settled.term);
      } else if (settled !== undefined) {
        this.record(node.id, 'lost', `proposal ${settled.waiter} at ${entry.index}/${settled.term} was replaced (not acknowledged)`);
      }
    }
    const every = this.params.compactEvery;
    const applied = this.checker.appliedIndex(node.id);
    if (every > 0 && applied - node.snapshotIndex >= every) {
      const compactTo = Math.max(0, applied - this.params.compactKeep);
      node.storage.snapshotAndCompact(applied, { index: applied, digest: this.checker.digest(node.id) }, compactTo);
      node.storage.sync();
      node.snapshotIndex = applied;
      this.record(node.id, 'compact', `snapshot at ${applied}, log discarded up to ${Math.min(compactTo, applied)}`);
    }
  }

  private send(node: SimNode, messages: readonly Msg[]): void {
    const n = this.nodes.length;
    for (const msg of messages) {
      this.stats.messagesSent++;
      if (msg.type === 'snapshot') this.stats.snapshotsSent++;
      const to = this.indexOf.get(msg.to);
      if (to === undefined) throw new Error(`message to unknown node ${msg.to}`);
      if (this.blocked[node.index * n + to] === true) {
        this.lose(msg, 'cut');
        // The transport notices the broken link now and then.
        if (this.rng.chance(0.3)) this.schedule(this.now + 1, Kind.Unreachable, node.index, node.life, msg);
        continue;
      }
      if (this.rng.chance(this.lossRate)) {
        this.lose(msg, 'loss');
        continue;
      }
      this.schedule(this.now + this.rng.between(this.params.minDelayMs, this.maxDelayMs), Kind.Deliver, to, 0, msg);
      if (msg.type === 'snapshot') this.reportSnapshotLater(msg, true);
      if (this.rng.chance(this.duplicateRate)) {
        this.schedule(this.now + this.rng.between(this.params.minDelayMs, this.maxDelayMs), Kind.Deliver, to, 0, msg);
      }
    }
  }

  // ---- workload and faults -----------------------------------------------------

  private propose(): void {
    const candidates: SimNode[] = [];
    const up: SimNode[] = [];
    for (const node of this.nodes) {
      if (!node.up || node.raft === undefined || node.pausedUntilMs > this.now) continue;
      up.push(node);
      if (node.raft.role === 'leader') candidates.push(node);
    }
    const target = candidates.length > 0 ? this.rng.pick(candidates) : up.length > 0 ? this.rng.pick(up) : undefined;
    if (target === undefined || target.raft === undefined) return;
    const count = this.rng.between(1, this.params.maxBatch);
    const values: Value[] = [];
    for (let i = 0; i < count; i++) values.push(this.nextValue++);
    const result = count === 1 ? target.raft.propose(values[0] as Value) : target.raft.proposeBatch(values);
    this.stats.proposals += count;
    if (!result.ok) {
      this.stats.proposalsRefused += count;
      this.record(target.id, 'refused', `${values.join(',')}: ${result.reason}`);
      return;
    }
    for (let i = 0; i < count; i++) target.proposals.track(result.firstIndex + i, result.term, ackLevelOf(values[i] as Value), values[i] as Value);
    this.record(target.id, 'propose', `${values.join(',')} at ${result.firstIndex}..${result.lastIndex} term ${result.term}`);
    this.afterNodeEvent(target);
  }

  /** Asks the leader (or `target`, a new leader: a change of voters) for a random membership change (conf-changes.ts). */
  private changeMembership(target?: SimNode): void {
    const leaders = target !== undefined ? [target] : this.nodes.filter((node) => node.up && node.raft?.role === 'leader' && node.pausedUntilMs <= this.now);
    if (leaders.length === 0) return;
    const leader = this.rng.pick(leaders);
    const raft = leader.raft as RaftNode<Value, SnapData>;
    const change = pickConfChange(this.rng, raft.confState, this.nodes.map((node) => node.id), target !== undefined);
    const result = raft.proposeConfChange(change);
    if (result.ok) {
      this.stats.confChanges++;
      this.record(leader.id, 'conf', `${change.type} ${change.node} at ${result.index} term ${result.term}: ${formatConf(result.conf)}`);
    } else {
      this.stats.confChangesRefused++;
      this.record(leader.id, 'conf', `${change.type} ${change.node} refused: ${result.reason}${result.detail === undefined ? '' : ` (${result.detail})`}`);
    }
    this.afterNodeEvent(leader);
  }

  private injectFault(): void {
    const w = this.params.weights;
    const total = w.crash + w.partition + w.oneWay + w.pause + w.transfer;
    if (total === 0) return;
    let roll = this.rng.nextInt(total);
    const n = this.nodes.length;
    const upNodes = this.nodes.filter((node) => node.up);
    if ((roll -= w.crash) < 0) {
      if (upNodes.length === 0) return;
      const node = this.rng.pick(upNodes);
      if (this.rng.chance(this.params.crashInSyncRate)) {
        node.storage.crashOnNextSync = true;
        this.record(node.id, 'arm', 'will crash inside its next fsync');
      } else {
        this.crash(node, 'crashed');
      }
    } else if ((roll -= w.partition) < 0) {
      this.newPartition();
      if (this.rng.chance(0.4)) {
        // Isolate one node, both ways.
        const victim = this.rng.nextInt(n);
        for (let other = 0; other < n; other++) {
          if (other === victim) continue;
          this.blocked[victim * n + other] = true;
          this.blocked[other * n + victim] = true;
        }
        this.record(this.nodes[victim]?.id ?? '?', 'partition', 'isolated');
      } else {
        // A random split into two non-empty sides.
        const side: boolean[] = [];
        for (let i = 0; i < n; i++) side.push(this.rng.chance(0.5));
        side[this.rng.nextInt(n)] = true;
        side[this.rng.nextInt(n)] = false;
        for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) if (side[a] !== side[b]) this.blocked[a * n + b] = true;
        const left = this.nodes.filter((_, i) => side[i]).map((x) => x.id);
        const right = this.nodes.filter((_, i) => !side[i]).map((x) => x.id);
        this.record('-', 'partition', `${left.join(' ')} | ${right.join(' ')}`);
      }
    } else if ((roll -= w.oneWay) < 0) {
      this.newPartition();
      const links = this.rng.between(1, n);
      const cut: string[] = [];
      for (let k = 0; k < links; k++) {
        const a = this.rng.nextInt(n);
        const b = this.rng.nextInt(n);
        if (a === b) continue;
        this.blocked[a * n + b] = true;
        cut.push(`${this.nodes[a]?.id}->${this.nodes[b]?.id}`);
      }
      this.record('-', 'partition', `one-way cut ${cut.join(' ')}`);
    } else if ((roll -= w.pause) < 0) {
      if (upNodes.length === 0) return;
      const node = this.rng.pick(upNodes);
      node.pausedUntilMs = Math.max(node.pausedUntilMs, this.now + this.rng.between(1, this.params.maxPauseMs));
      this.stats.pauses++;
      this.record(node.id, 'pause', `until ${node.pausedUntilMs}ms`);
    } else {
      const leaders = upNodes.filter((node) => node.raft?.role === 'leader' && node.pausedUntilMs <= this.now);
      if (leaders.length === 0) return;
      const leader = this.rng.pick(leaders);
      const others = this.nodes.filter((x) => x !== leader);
      const to = this.rng.pick(others);
      const result = leader.raft?.transferLeadership(to.id);
      this.stats.transfers++;
      this.record(leader.id, 'transfer', `to ${to.id}: ${result?.ok === true ? 'started' : 'refused'}`);
      this.afterNodeEvent(leader);
    }
  }

  private newPartition(): void {
    this.blocked.fill(false);
    this.partitionGen++;
    this.stats.partitions++;
    this.schedule(this.now + this.rng.between(10, this.params.maxPartitionMs), Kind.PartitionEnd, -1, 0, undefined, false, this.partitionGen);
  }

  // ---- quiescence -----------------------------------------------------------------

  /** The failure detector's period: one nominal election timeout. */
  private detectIntervalMs(): number {
    return this.params.raft.electionTicks * this.params.tickMs;
  }

  private countQuiesces(node: SimNode): void {
    if (node.raft === undefined) return;
    this.stats.quiesces += node.raft.counters.quiesces;
    this.stats.recoveriesEnded += node.raft.counters.recoveriesEnded;
    this.stats.recoveryElections += node.raft.counters.recoveryElections;
    this.stats.learnerCampaigns += node.raft.counters.learnerCampaigns;
  }

  /**
   * The failure detector (SWIM in the broker): every running node hears
   * which peers it cannot hear from (down, or that link cut), plus false
   * suspicions and random wakes. It tells of a peer going down once, until
   * it hears it recovered: the broker's gossip says it at most twice (the
   * peer suspected, then declared dead), not every period, so a node the
   * core let sleep through that word may never wake.
   */
  private detect(): void {
    const n = this.nodes.length;
    for (const node of this.nodes) {
      if (!node.up || node.raft === undefined || node.pausedUntilMs > this.now) continue;
      for (const peer of this.nodes) {
        if (peer === node) continue;
        if (peer.up && this.blocked[peer.index * n + node.index] !== true) this.signalPeerRecovered(node, peer.id);
        else if (!node.suspects.has(peer.id)) this.signalPeerDown(node, peer.id, 'detector');
      }
    }
    let noise = this.detectorTruthful ? 0 : this.params.falseSuspicions;
    while (noise > 0 && this.rng.chance(Math.min(1, noise))) {
      noise -= 1;
      const node = this.rng.pick(this.nodes);
      if (!node.up || node.raft === undefined || node.pausedUntilMs > this.now) continue;
      if (this.rng.chance(0.5)) {
        const peer = this.rng.pick(this.nodes.filter((x) => x !== node));
        this.signalPeerDown(node, peer.id, 'false suspicion');
      } else {
        this.stats.wakes++;
        this.record(node.id, 'wake', 'random wake');
        node.raft.wake();
        this.afterNodeEvent(node);
      }
    }
  }

  private signalPeerDown(node: SimNode, peer: NodeId, why: string): void {
    const raft = node.raft as RaftNode<Value, SnapData>;
    node.suspects.add(peer);
    // The broker picks one follower per group to campaign at once; here either may be told to.
    if (!raft.peerDown(peer, this.rng.chance(0.5))) return;
    this.stats.peerDownSignals++;
    this.record(node.id, 'peer-down', `${peer} (${why}): lease ended`);
    this.afterNodeEvent(node);
  }

  /**
   * A peer the detector suspected is reachable again: the broker hears it
   * from gossip (a refuted suspicion: `peerRecovered`) or from its link
   * coming up (`peerUp`); either is told here.
   */
  private signalPeerRecovered(node: SimNode, peer: NodeId): void {
    if (!node.suspects.delete(peer)) return;
    const raft = node.raft as RaftNode<Value, SnapData>;
    this.stats.peerRecoveries++;
    const woke = this.rng.chance(0.5) ? raft.peerUp(peer) : raft.peerRecovered(peer);
    if (!woke) return;
    this.stats.recoveryWakes++;
    this.record(node.id, 'peer-up', `${peer}: suspicion withdrawn`);
    this.afterNodeEvent(node);
  }

  /**
   * After convergence: the idle group must quiesce (every node), then its
   * leader crashes for good; the failure detector alone can wake the others,
   * and they must elect a new leader within the liveness bound.
   */
  private loseQuiescedLeader(): void {
    const p = this.params;
    const electionBoundMs = LIVENESS_BOUND_ELECTIONS * p.raft.electionTicks * p.tickMs;
    // A leader of a new term may still be replicating a long backlog of older entries (one window per round trip).
    let longest = 0;
    let lowest = Number.MAX_SAFE_INTEGER;
    for (const node of this.members()) {
      longest = Math.max(longest, node.raft?.lastIndex ?? 0);
      lowest = Math.min(lowest, node.raft?.commitIndex ?? 0);
    }
    const window = p.raft.maxEntriesPerAppend * p.raft.maxInflightAppends;
    const quiesceBoundMs = electionBoundMs + Math.ceil(Math.max(0, longest - lowest) / window) * CATCH_UP_TICKS_PER_WINDOW * p.tickMs;
    const started = this.now;
    while (!this.members().every((node) => node.raft?.quiesced === true)) {
      if (this.now - started > quiesceBoundMs || !this.processNext()) {
        throw new SafetyViolation('liveness', `${quiesceBoundMs / p.tickMs} ticks after converging, the idle group is not quiesced (${this.describeNodes()})`);
      }
    }
    const leader = this.currentLeader();
    if (leader === undefined) throw new SafetyViolation('liveness', `quiesced without a leader (${this.describeNodes()})`);
    // Half the time the leader dies just after quiescing its group again, and the detector says so before its
    // quiesce heartbeats land: they reach followers that already heard it suspected.
    const racesDetector = deriveRandom(this.options.seed, 'leader-loss').chance(0.5);
    if (racesDetector) {
      (leader.raft as RaftNode<Value, SnapData>).wake();
      this.afterNodeEvent(leader);
      while (leader.raft?.quiesced !== true) {
        if (this.now - started > 2 * quiesceBoundMs || !this.processNext()) {
          throw new SafetyViolation('liveness', `${(2 * quiesceBoundMs) / p.tickMs} ticks after converging, the woken leader ${leader.id} did not quiesce again (${this.describeNodes()})`);
        }
      }
    }
    this.record('-', 'LEADER-LOSS', `${leader.id} crashes for good while the group is quiesced${racesDetector ? ', its quiesce heartbeats still on their way' : ''}`);
    this.crash(leader, 'crashed for good (quiesced leader)');
    if (racesDetector) {
      this.detectorTruthful = true;
      this.detect();
    }
    this.retired.add(leader);
    const crashedAt = this.now;
    // Detection takes up to one detector period; then the usual election bound.
    const boundMs = this.detectIntervalMs() + electionBoundMs;
    while (!(this.leaderAgreed() && this.currentLeader() !== leader)) {
      if (this.now - crashedAt > boundMs || !this.processNext()) {
        throw new SafetyViolation('liveness', `${boundMs / p.tickMs} ticks after the quiesced leader ${leader.id} died, no new leader is followed by every other node (${this.describeNodes()})`);
      }
    }
    this.stats.ticksToReplaceQuiescedLeader = Math.round((this.now - crashedAt) / p.tickMs);
  }

  /** End of the fault phase: the network becomes reliable, every node runs. */
  private heal(): void {
    this.healed = true;
    this.blocked.fill(false);
    this.partitionGen++;
    this.lossRate = 0;
    this.duplicateRate = 0;
    this.maxDelayMs = Math.max(this.params.minDelayMs, Math.min(this.maxDelayMs, HEALED_MAX_DELAY_MS));
    this.record('-', 'HEAL', 'no more faults: network reliable, every node up and running');
    for (const node of this.nodes) {
      node.storage.crashOnNextSync = false;
      node.pausedUntilMs = 0;
      if (!node.up) this.start(node);
    }
  }

  /**
   * Entries the most lagging node is behind the longest log, at the heal.
   * With reconfiguration, every node counts: one outside the configuration
   * at the heal may be in the one the leader elected after it holds.
   */
  private maxLag(): number {
    let longest = 0;
    let lowest = Number.MAX_SAFE_INTEGER;
    for (const node of this.nodes) {
      const raft = node.raft;
      if (raft === undefined) continue;
      longest = Math.max(longest, raft.lastIndex);
      lowest = Math.min(lowest, this.checker.appliedIndex(node.id));
    }
    return Math.max(0, longest - lowest);
  }

  /**
   * The leader of the highest term, if any. With reconfiguration, a node cut
   * off while it was removed may still think it leads an older term: nobody
   * answers it, it harms no one, and it does not count.
   */
  private currentLeader(): SimNode | undefined {
    let leader: SimNode | undefined;
    for (const node of this.nodes) {
      if (node.raft?.role !== 'leader') continue;
      if (leader === undefined || node.raft.term > (leader.raft as RaftNode<Value, SnapData>).term) leader = node;
    }
    return leader;
  }

  /** The nodes that must follow the leader and apply everything: all of them, or with reconfiguration the members of the leader's configuration. */
  private members(): SimNode[] {
    if (this.reconfig === undefined) return this.retired.size === 0 ? this.nodes : this.nodes.filter((node) => !this.retired.has(node));
    const conf = this.currentLeader()?.raft?.confState;
    return conf === undefined ? this.nodes.filter((node) => isMember(node.raft?.confState ?? this.bootstrap, node.id)) : this.nodes.filter((node) => isMember(conf, node.id));
  }

  private leaderAgreed(): boolean {
    const leader = this.currentLeader();
    if (leader?.raft === undefined) return false;
    const { id, term } = leader.raft;
    for (const node of this.nodes) {
      // Another leader: only, with reconfiguration, of an older term (a member stuck there fails below).
      if (node !== leader && node.raft?.role === 'leader' && (this.reconfig === undefined || node.raft.term === term)) return false;
    }
    for (const node of this.members()) {
      if (node.raft === undefined || node.raft.leader !== id || node.raft.term !== term) return false;
    }
    return true;
  }

  /** Members still recovering (`RaftConfig.recoveringAtStart`): none unless `recoveringRestarts`. */
  private recoveringMembers(): string[] {
    return this.members()
      .filter((node) => node.raft?.status().recovering === true)
      .map((node) => node.id);
  }

  private allApplied(): boolean {
    const target = this.checker.maxAckedIndex;
    for (const node of this.members()) {
      if (!node.up || this.checker.appliedIndex(node.id) < target) return false;
    }
    return true;
  }
}

/** Every fourth value waits for every node (ack `all`): chosen without a draw, so the run's random stream is unchanged. */
function ackLevelOf(value: Value): ProposalAck {
  return value % 4 === 0 ? 'all' : 'quorum';
}

export function runSimulation(options: SimOptions): SimResult {
  return new Simulation(options).run();
}

/** The command that replays a run. */
export function replayCommand(seed: number, steps: number, bug?: string, profile?: string): string {
  return `npm run sim -- --seed ${seed} --steps ${steps}${profile === undefined ? '' : ` --profile ${profile}`}${bug === undefined ? '' : ` --bug ${bug}`}`;
}
