import { RelayError } from '@relaymq/sdk/protocol';
import {
  CompactionGate,
  createRaftNode,
  ProposalTracker,
  type ProposalAck,
  type Snapshot,
  runReady,
  type ConfChange,
  type ConfState,
  type Entry,
  type Message,
  type NodeId,
  type RaftConfigOptions,
  type RaftCounters,
  type RaftNode,
  type ReadyHandlers,
  type Settlement,
  type Status,
} from '../core/raft/index.js';
import type { PeerTransport } from '../net/peer-transport.js';
import type { BrokerObserver } from '../observability/observer.js';
import type { LogFunction } from '../observability/logger.js';
import { forgetNormalEntryBody } from '../storage/entry-bodies.js';
import type { RaftLogStorage } from '../storage/raft-storage.js';
import { storageRelayError } from '../storage/segments/errors.js';
import { DeadlineQueue, type Deadline } from './deadline-queue.js';
import type { GroupClock } from './group-clock.js';
import type { HeartbeatCoalescer } from './heartbeat-coalescer.js';
import { addRaftCounters, zeroRaftCounters } from './raft-counters.js';
import { ENTRY_BODIES, parseRaftMessage, withEntryBodies } from './raft-wire.js';


/** How many heartbeat intervals old a leader's last message may be for {@link RaftGroup.heardLeader}: a heartbeat lost or late under load is not silence. */
const HEARD_WITHIN_HEARTBEATS = 3;
/** Every group's source of randomness: the runtime may use real randomness, it only jitters election timeouts. */
const JITTER = { nextInt: (maxExclusive: number): number => Math.floor(Math.random() * maxExclusive) };
/** Settings of one group. */
export interface RaftGroupOptions<T, R, S = never> {
  /** Unique name of the group in the cluster, e.g. `meta` or `p/orders/0`. */
  id: string;
  /**
   * The peer-transport channel its messages travel on; `raft/<id>` unless
   * set. A partition of a topic deleted and created again under its name
   * has another (engine/group-factory.ts), so the old group and the new one
   * never exchange messages.
   */
  channel?: string;
  self: NodeId;
  /**
   * This broker may be outside the group's stored configuration: it waits to
   * be added as a learner (a new replica, started with an empty log), or it
   * was removed. It never campaigns until a configuration makes it a voter
   * (or a learner, whose log ahead of its commit may let it: docs/raft.md).
   * Without it, a broker absent from the stored configuration is refused.
   * @defaultValue false
   */
  joining?: boolean;
  transport: PeerTransport;
  /**
   * The group's Raft log. Its configuration is authoritative: the voters it
   * was opened with only bootstrap a brand-new group (see
   * `DurableRaftStorage.open`); changes since are `conf` entries in it.
   */
  storage: RaftLogStorage<T, S>;
  config?: RaftConfigOptions;
  /** Index the state machine already holds (its checkpoint): applying resumes after it. @defaultValue 0 */
  applied?: number;
  /** Validates an entry payload from a peer. */
  parseData: (data: unknown) => T | undefined;
  /** Applies a committed payload; its result goes to whoever proposed it here. */
  apply: (data: T, index: number) => R;
  /**
   * What applying an entry will return, known while it is still uncommitted:
   * lets a proposal with ack `leader` be answered once this leader's own
   * write of it is done (see {@link RaftGroup.propose}). Without it, ack
   * `leader` waits for the commit like `quorum`.
   */
  projection?: Projection<T, R>;
  /** Validates a snapshot payload from a peer; groups without snapshots leave it out (snapshots are then refused). */
  parseSnapshot?: (data: unknown) => S | undefined;
  /**
   * Replaces the state machine with a leader's snapshot, durably, before the
   * Raft log records it (so a crash in between leaves the state machine
   * ahead of the log, never behind it).
   */
  installSnapshot?: (snapshot: Snapshot<S>) => Promise<void>;
  /**
   * Why the state machine cannot take entries now (its storage failed), if it
   * cannot: applying then fences the group instead of applying.
   */
  stateFailure?: () => RelayError | undefined;
  /**
   * While fenced, after the Raft log was reloaded from what is durable, when
   * the state machine cannot simply go on from its applied index (an apply
   * failed part way, or the durable log no longer reaches that index): rewinds
   * it to what it provably holds (e.g. its last checkpoint, lined up with the
   * log by `storage.resumeAt`) and returns the index it holds. Without it,
   * such a group stays fenced (a restart recovers it).
   */
  recover?: () => Promise<number>;
  /** Delays between recovery attempts of a fenced group. @defaultValue {@link FENCE_RETRY} */
  fenceRetry?: { minDelayMs: number; maxDelayMs: number };
  /** The role or leader changed. */
  onLeaderChange?: (leader: NodeId | null) => void;
  /**
   * A leadership transfer of this leader began or ended (see
   * {@link RaftGroup.transferring}); when it ended with a new leader,
   * `onLeaderChange` is called too.
   */
  onTransferChange?: () => void;
  /**
   * The configuration in effect here changed: a `conf` entry reached this
   * broker's log (it takes effect then, committed or not), or a truncation
   * undid one. `index` is the entry's (0 for the bootstrap configuration).
   */
  onConfChange?: (conf: ConfState, index: number) => void;
  /** Told of fsync durations and leader changes (operations); optional. */
  observer?: Pick<BrokerObserver, 'fsync' | 'leaderChanged'>;
  /**
   * The broker's clock of its groups: this group is ticked on it while
   * awake and left out while quiesced, and counts its messages there.
   * Without it, whoever owns the group calls {@link RaftGroup.tick}.
   */
  clock?: GroupClock;
  /**
   * The broker's heartbeat coalescer: this group's heartbeats and answers to
   * peers that read them coalesced go through it (one message per peer and
   * tick for every group). Without it, every message goes on the group's channel.
   */
  heartbeats?: HeartbeatCoalescer;
  log: LogFunction;
}

/**
 * A leader's view of its state machine as it will be once every entry in its
 * log is applied. The group hands it the entries after the applied index in
 * log order (its predecessors' uncommitted entries included, from its log),
 * and tells it what was applied; it must answer exactly what `apply` will.
 */
export interface Projection<T, R> {
  /** The result applying `data`, the entry at `index`, will have after every entry projected before it. */
  project(data: T, index: number): R;
  /** Every entry up to `index` was applied. */
  applied(index: number): void;
  /** Forgets what was projected: the next entry is projected on the state machine as applied. */
  reset(): void;
}

/** Whether `self` is the only voter (a standalone broker's groups): it leads at once, with nobody to wait for. */
function isAlone(conf: ConfState, self: NodeId): boolean {
  return conf.voters.length === 1 && conf.voters[0] === self;
}

/** A fenced group tries to recover after 100 ms, then doubling up to every 5 s while its storage still fails. */
export const FENCE_RETRY = Object.freeze({ minDelayMs: 100, maxDelayMs: 5000 });

/** Why and since when a group is fenced. */
interface Fence {
  reason: RelayError;
  /** The term when it was fenced: a leader heard from at this term or later leads now. */
  term: number;
  /** The leader heard from while fenced (forwarding goes there), if any. */
  leader: NodeId | null;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** Why a waiting proposal ended without its result: made only when it does (not a string per proposal). */
interface EntryEnds {
  expired(group: string, index: number, timeoutMs: number): string;
  displaced(group: string, index: number): string;
}

const PROPOSAL_ENDS: EntryEnds = {
  expired: (group, index, timeoutMs) => `entry ${index} of ${group} not acknowledged within ${timeoutMs} ms`,
  displaced: (group, index) => `entry ${index} of ${group}: its outcome is unknown (this broker's log was cut back and reused the index)`,
};

const CONF_CHANGE_ENDS: EntryEnds = {
  expired: (group, index, timeoutMs) => `configuration change ${index} of ${group} not committed within ${timeoutMs} ms`,
  displaced: (group, index) => `configuration change ${index} of ${group}: its outcome is unknown`,
};

/** The caller of one proposal, waiting (its timeout clears once it settles). */
interface Waiter<R> {
  resolve(result: R): void;
  reject(error: RelayError): void;
}

/**
 * A proposal waiting for entry `index` in its group's tracker, with its
 * deadline: one object with methods, where closures for each made four
 * objects more per proposal.
 */
class WaitingEntry<V> implements Waiter<V>, Deadline {
  readonly atMs: number;
  queuePrev: Deadline | undefined = undefined;
  queueNext: Deadline | undefined = undefined;

  constructor(
    private readonly done: (value: V) => void,
    private readonly failed: (error: RelayError) => void,
    private readonly deadlines: DeadlineQueue,
    private readonly tracker: ProposalTracker<Waiter<V>, V>,
    private readonly index: number,
    private readonly timeoutMs: number,
    private readonly group: string,
    private readonly ends: EntryEnds,
  ) {
    this.atMs = deadlines.now() + timeoutMs;
  }

  resolve(value: V): void {
    this.deadlines.delete(this);
    this.done(value);
  }

  reject(error: RelayError): void {
    this.deadlines.delete(this);
    this.failed(error);
  }

  expire(): void {
    if (this.tracker.expire(this.index, this)) this.failed(new RelayError('TIMEOUT', this.ends.expired(this.group, this.index, this.timeoutMs)));
  }
}

/**
 * Runs one Raft group on this broker: feeds the pure core its peer messages
 * and ticks, and honours every `Ready` through the one runner, `runReady`
 * (persist and fsync → send → apply → advance), the same code the simulator
 * and the scenario tests drive. Which proposal resolves or rejects when is
 * decided by the pure {@link ProposalTracker}: proposals resolve with their
 * applied result once committed (ack `all`: once every voter holds them); a
 * proposal overwritten by another leader's entry is rejected with
 * `NOT_LEADER`, so the client retries and deduplication keeps the retry from
 * being stored twice.
 */
export class RaftGroup<T, R, S = never> {
  private core: RaftNode<T, S>;
  /** The counters of the cores this group replaced (a recovery starts a fresh one); none until then. */
  private retiredCounters: RaftCounters | undefined;
  private readonly channel: string;
  private readonly proposals = new ProposalTracker<Waiter<R>, R>();
  /** Configuration changes proposed here, settled when their `conf` entry is applied (or replaced). */
  private readonly confProposals = new ProposalTracker<Waiter<ConfState>, ConfState>();
  /** The configuration last reported to `onConfChange` (by the core's identity, compared after each batch). */
  private knownConf: { conf: ConfState; index: number };
  private processing = false;
  private again = false;
  private stopped = false;
  /** Why the group stopped: proposals are refused with it. */
  private stopReason: RelayError | undefined;
  /** The leader last reported to `onLeaderChange`. */
  private knownLeader: NodeId | null = null;
  /** Ends of {@link handedOver} waits: called once this broker no longer leads (or the group stops). */
  private readonly leadershipEnds = new Set<() => void>();
  /** The transferee last reported to `onTransferChange`. */
  private knownTransferee: NodeId | null = null;
  /** Index of the last entry applied (or installed by a snapshot). */
  private appliedIndex: number;
  /** A compaction waiting for the gap between two Readys. */
  private readonly compaction = new CompactionGate<{ run: () => Promise<void>; done: (err?: unknown) => void }>();
  /** Set while the storage has failed and the durable state is not re-established: see {@link fence}. */
  private fenced: Fence | undefined;
  /** Recovery attempts since the group last wrote successfully (the backoff grows with them). */
  private failedRecoveries = 0;
  /** An apply started and did not return: the state machine may hold part of an entry. */
  private applyTorn = false;
  /** The term the projection was last built in (0: to build again), and the last log index it covers. */
  private projectedTerm = 0;
  private projectedThrough = 0;
  /** The last entry handed to the storage and not yet written (its write settles ack `leader`). */
  private unwritten: { index: number; term: number } | undefined;
  /** A Ready's appends to followers were handed to the transport: this leader's own write of them waits for them to leave (see `io.storage.append`). */
  private appendsSent = false;
  /** Messages held until the acknowledgements this Ready settles went out (see {@link holdsBack}), in order; undefined when none are. */
  private held: Message<T, S>[] | undefined;
  /** See {@link io}. */
  private handlers: ReadyHandlers<T, S> | undefined;
  /** See {@link continuations}. */
  private drainContinuations: { resumed: () => void; failed: (error: unknown) => void } | undefined;
  /** The timeouts of proposals waiting here (made with the first proposal: an idle replica needs none). */
  private deadlines: DeadlineQueue | undefined;

  constructor(private readonly options: RaftGroupOptions<T, R, S>) {
    this.channel = options.channel ?? `raft/${options.id}`;
    const hard = options.storage.hardState;
    this.appliedIndex = options.applied ?? 0;
    this.core = this.createCore();
    this.knownConf = { conf: this.core.confState, index: this.core.status().confIndex };
    options.clock?.wake(this);
    if (hard.term > 0) this.log('debug', 'raft group recovered', { term: hard.term, vote: hard.vote });
  }

  /** Logs a line of this group: every line carries its id (`group`). */
  private log(...[level, message, fields]: Parameters<LogFunction>): void {
    this.options.log(level, message, fields === undefined ? { group: this.options.id } : { group: this.options.id, ...fields });
  }

  /** Tells the clock whether the core needs ticks (it quiesced, or something woke it). */
  private syncClock(): void {
    const clock = this.options.clock;
    if (clock === undefined || this.stopped) return;
    if (this.fenced === undefined && this.core.quiesced) clock.sleep(this);
    else clock.wake(this);
  }

  /** A core over the storage as it is now, resuming after `appliedIndex`. */
  private createCore(): RaftNode<T, S> {
    // No voters passed: the stored configuration (bootstrap, snapshot, conf entries) decides, never the caller's list.
    const core = createRaftNode<T, S>({
      id: this.options.self,
      storage: this.options.storage.reader,
      joining: this.options.joining === true,
      random: JITTER,
      config: this.options.config,
      applied: this.appliedIndex,
    });
    // Alone in its group (a standalone broker): nobody to wait for, lead at once.
    if (isAlone(core.confState, this.options.self)) {
      core.campaign();
      queueMicrotask(() => this.process());
    }
    return core;
  }

  private get alone(): boolean {
    return isAlone(this.core.confState, this.options.self);
  }

  /** The configuration in effect here: the last one in this broker's log, committed or not. */
  get confState(): ConfState {
    return this.core.confState;
  }

  /**
   * Proposes a membership change (add a learner, promote one, remove a
   * member) and resolves with the resulting configuration once its entry is
   * committed and applied here. Rejects at once with `NOT_LEADER` (with a
   * leader hint) when this broker does not lead, with `NOT_READY` when the
   * core refuses it for now (another change pending, the leader's term not
   * committed yet, a leadership transfer: retriable), and for good (`INVALID_ARGUMENT`: the change does not
   * apply to the configuration). `TIMEOUT` when not committed in time
   * (outcome unknown: read {@link confState} before proposing again).
   *
   * A leader removing itself resolves only once it handed over too, within
   * `timeoutMs` more at most: its core waits (an election timeout at most)
   * for a voter to acknowledge that the removal committed, and a caller that
   * goes on to drop this replica or stop this broker must not cut that word
   * off (docs/raft.md, "Two voters beside three").
   */
  proposeConfChange(change: ConfChange, timeoutMs: number): Promise<ConfState> {
    if (this.stopReason !== undefined) return Promise.reject(this.stopReason);
    const fence = this.fenced;
    if (fence !== undefined) {
      const hint = fence.leader === null ? {} : { leader: fence.leader };
      return Promise.reject(new RelayError('NOT_LEADER', `broker ${this.options.self} is fenced from ${this.options.id}: ${fence.reason.message}`, hint));
    }
    const result = this.core.proposeConfChange(change);
    if (!result.ok) {
      const detail = `${change.type} ${change.node} in ${this.options.id}: ${result.reason}${result.detail === undefined ? '' : ` (${result.detail})`}`;
      if (result.reason === 'not-leader') {
        const hint = result.leader === null ? {} : { leader: result.leader };
        return Promise.reject(new RelayError('NOT_LEADER', `broker ${this.options.self} does not lead ${this.options.id}`, hint));
      }
      if (result.reason === 'invalid') return Promise.reject(new RelayError('INVALID_ARGUMENT', detail));
      return Promise.reject(new RelayError('NOT_READY', detail));
    }
    const { index, term } = result;
    this.noticeConf(); // in effect on the leader from now (it is in its log)
    const promise = this.awaitEntry(this.confProposals, index, term, 'quorum', timeoutMs, CONF_CHANGE_ENDS);
    this.process();
    if (change.type !== 'remove' || change.node !== this.options.self) return promise;
    return promise.then(async (conf) => {
      await this.handedOver(timeoutMs);
      return conf;
    });
  }

  /** Resolves once this broker no longer leads the group (at once if it does not), the group stopped, or after `timeoutMs`. */
  private handedOver(timeoutMs: number): Promise<void> {
    if (this.stopped || this.fenced !== undefined || this.core.leader !== this.options.self) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const end = (): void => {
        clearTimeout(timer);
        this.leadershipEnds.delete(end);
        resolve();
      };
      const timer = setTimeout(end, timeoutMs);
      this.leadershipEnds.add(end);
    });
  }

  /**
   * The Raft core. Replaced by a fresh one when a fenced group recovers;
   * while fenced it is frozen (use {@link leader} and {@link isFenced}).
   */
  get node(): RaftNode<T, S> {
    return this.core;
  }

  /** The Raft counters of this group since it was created, over every core it had (metrics). */
  raftCounters(): Readonly<RaftCounters> {
    return this.retiredCounters === undefined ? this.core.counters : addRaftCounters({ ...this.retiredCounters }, this.core.counters);
  }

  /**
   * The leader as this broker knows it. While fenced: the leader heard from
   * since (so requests are forwarded there), or none yet; a group alone
   * names itself, so proposals meet the storage error instead of waiting.
   */
  get leader(): NodeId | null {
    const fence = this.fenced;
    if (fence === undefined) return this.core.leader;
    return this.alone ? this.options.self : fence.leader;
  }

  /** Why the group is fenced (its storage failed and it has not recovered yet), if it is. */
  get fenceReason(): RelayError | undefined {
    return this.fenced?.reason;
  }

  get id(): string {
    return this.options.id;
  }

  /** Index of the last entry the state machine applied. */
  get applied(): number {
    return this.appliedIndex;
  }

  /** The term of entry `index`, while the log still holds it. */
  termOf(index: number): number | undefined {
    return this.options.storage.reader.term(index);
  }

  /**
   * Runs `compact` (which may rewrite the Raft log) between two Readys, so it
   * never races a write; resolves once it ran.
   */
  compact(compact: () => Promise<void>): Promise<void> {
    if (this.stopReason !== undefined) return Promise.reject(this.stopReason);
    if (this.fenced !== undefined) return Promise.reject(this.fenced.reason);
    if (this.compaction.isPending) return Promise.reject(new Error(`group ${this.options.id}: a compaction is already pending`));
    return new Promise((resolve, reject) => {
      this.compaction.request({ run: compact, done: (err) => (err === undefined ? resolve() : reject(err)) });
      this.process();
    });
  }

  /** The peer-transport channel of this group. */
  get channelName(): string {
    return this.channel;
  }

  /**
   * The leader of the term that reached this replica within
   * {@link HEARD_WITHIN_HEARTBEATS} heartbeat intervals, if any (suspected by
   * gossip or not): proof that the leader is up and its bytes reach this
   * broker, though not that this broker's reach it.
   */
  heardLeader(): NodeId | undefined {
    const contact = this.fenced === undefined ? this.core.leaderContact : undefined;
    if (contact === undefined || contact.ticksAgo > HEARD_WITHIN_HEARTBEATS * this.core.config.heartbeatTicks) return undefined;
    return contact.leader;
  }

  isLeader(): boolean {
    return this.fenced === undefined && this.core.role === 'leader';
  }

  status(): Status {
    const status = this.core.status();
    // Fenced: neither leading nor following anyone this broker could vouch for.
    return this.fenced === undefined ? status : { ...status, role: 'follower', leader: this.leader, progress: [] };
  }

  tick(): void {
    if (this.stopped || this.fenced !== undefined) return;
    this.core.tick();
    this.process();
    this.syncClock();
  }

  /**
   * The failure detector suspects broker `peer`: if this group follows it,
   * the leader's lease ends here and the group campaigns within an election
   * timeout unless the leader shows up (see `RaftNode.peerDown`).
   */
  peerDown(peer: NodeId): void {
    if (this.stopped || this.fenced !== undefined) return;
    if (!this.core.peerDown(peer, firstToCampaign(this.options.id, this.core.status().voters, peer) === this.options.self)) return;
    this.process();
    this.syncClock();
  }

  /**
   * The link to broker `peer` came up (again): if this group leads it, it
   * wakes and heartbeats until `peer` answers (see `RaftNode.peerUp`), so a
   * restarted learner learns its leader from a quiesced group too.
   */
  peerUp(peer: NodeId): void {
    if (this.stopped || this.fenced !== undefined) return;
    if (!this.core.peerUp(peer)) return;
    this.process();
    this.syncClock();
  }

  /**
   * The failure detector no longer suspects broker `peer` (gossip: a refuted
   * suspicion, or the broker back): a quiesced leader here that quiesced
   * without it wakes if it lacks entries (see `RaftNode.peerRecovered`).
   */
  peerRecovered(peer: NodeId): void {
    if (this.stopped || this.fenced !== undefined) return;
    if (!this.core.peerRecovered(peer)) return;
    this.process();
    this.syncClock();
  }

  /** A message for this group from a peer. */
  receive(from: string, payload: unknown): void {
    if (this.stopped) return;
    const message = parseRaftMessage(payload, this.options.parseData, this.options.parseSnapshot);
    if (message === undefined || message.from !== from || message.to !== this.options.self) {
      this.log('warn', 'dropping malformed raft message', { from, term: this.core.status().term });
      return;
    }
    const fence = this.fenced;
    if (fence !== undefined) {
      // Fenced: no answer at all (no ack, no vote). Only remember who leads, to forward requests there.
      if ((message.type === 'app' || message.type === 'heartbeat') && message.term >= fence.term && fence.leader !== message.from) {
        fence.term = message.term;
        fence.leader = message.from;
        this.noticeLeader();
      }
      return;
    }
    this.core.step(message);
    this.process();
    this.syncClock();
  }

  /**
   * Proposes `data` and resolves with its applied result: with ack `quorum`
   * (the default) once committed, `all` once every voter holds it too, and
   * `leader` as soon as this leader's own write of it is done (as durable as
   * the storage's fsync policy makes it), before any other replica has it,
   * with the result its {@link RaftGroupOptions.projection} foresees (no
   * projection: at commit). A `leader` acknowledgement is lost if this
   * broker fails before the entry reaches a quorum and another leader's log
   * replaces it. Rejects at once with `NOT_LEADER` (with a leader hint) when
   * this broker does not lead the group, or `LIMIT_EXCEEDED` when too much
   * is uncommitted.
   */
  propose(data: T, timeoutMs: number, ack: ProposalAck = 'quorum'): Promise<R> {
    if (this.stopReason !== undefined) return Promise.reject(this.stopReason);
    const fence = this.fenced;
    if (fence !== undefined) {
      // Never stored: a definite refusal. Others may lead meanwhile: send the client there.
      if (this.alone) return Promise.reject(fence.reason);
      const hint = fence.leader === null ? {} : { leader: fence.leader };
      return Promise.reject(new RelayError('NOT_LEADER', `broker ${this.options.self} is fenced from ${this.options.id}: ${fence.reason.message}`, hint));
    }
    const result = this.core.propose(data);
    if (!result.ok) {
      if (result.reason === 'overloaded') return Promise.reject(new RelayError('LIMIT_EXCEEDED', `group ${this.options.id} has too much uncommitted`));
      const hint = result.leader ?? undefined;
      return Promise.reject(
        new RelayError('NOT_LEADER', `broker ${this.options.self} does not lead ${this.options.id}`, hint === undefined ? {} : { leader: hint }),
      );
    }
    const index = result.lastIndex;
    this.syncClock(); // a proposal wakes a quiesced leader
    const early = ack === 'leader' ? this.project(data, index, result.term) : undefined;
    // A leader cut off from its quorum cannot commit; the caller learns it in bounded time (outcome unknown).
    const promise = this.awaitEntry(this.proposals, index, result.term, ack, timeoutMs, PROPOSAL_ENDS, early);
    this.process();
    return promise;
  }

  /**
   * The result entry `index` (`data`, appended by this leader in `term`)
   * will have once applied, from the projection; undefined without one (or
   * when the log it needs is gone), and the proposal then waits for its
   * commit. The projection is built lazily, so groups that never see ack
   * `leader` pay nothing: on first use in a term, from the applied state;
   * then each use first projects the entries appended since the last (other
   * ack levels, a predecessor's uncommitted entries), read from the log.
   */
  private project(data: T, index: number, term: number): R | undefined {
    const projection = this.options.projection;
    if (projection === undefined) return undefined;
    try {
      if (this.projectedTerm !== term || this.projectedThrough < this.appliedIndex) {
        projection.reset();
        this.projectedTerm = term;
        this.projectedThrough = this.appliedIndex;
      }
      if (this.projectedThrough < index - 1) {
        for (const entry of this.core.entries(this.projectedThrough + 1, index)) {
          if (entry.type === 'normal') projection.project(entry.data, entry.index);
        }
      }
      const result = projection.project(data, index);
      this.projectedThrough = index;
      return result;
    } catch (err) {
      // Never a wrong answer: this proposal waits for its commit, and the next one builds the projection anew.
      this.projectedTerm = 0;
      this.log('warn', 'could not project an uncommitted entry; acknowledging it at commit', { index, error: String(err) });
      return undefined;
    }
  }

  /**
   * Waits for entry `index` (of `term`) to be settled by `tracker`, or ends
   * it with `TIMEOUT` after `timeoutMs`; an entry it displaces (the log was
   * cut back and the index reused) ends with `TIMEOUT` at once.
   */
  private awaitEntry<V>(
    tracker: ProposalTracker<Waiter<V>, V>,
    index: number,
    term: number,
    ack: ProposalAck,
    timeoutMs: number,
    ends: EntryEnds,
    early?: V,
  ): Promise<V> {
    // One timer for all of this group's proposals (deadline-queue.ts), not one per proposal.
    const deadlines = (this.deadlines ??= new DeadlineQueue());
    return new Promise<V>((resolve, reject) => {
      const waiter = new WaitingEntry(resolve, reject, deadlines, tracker, index, timeoutMs, this.options.id, ends);
      deadlines.add(waiter);
      const displaced = tracker.track(index, term, ack, waiter, early);
      displaced?.waiter.reject(new RelayError('TIMEOUT', ends.displaced(this.options.id, displaced.index)));
    });
  }

  /** Hands leadership to `to` (graceful shutdown); false when this broker does not lead. */
  transferLeadership(to: NodeId): boolean {
    if (this.fenced !== undefined) return false;
    const result = this.core.transferLeadership(to);
    this.process();
    this.syncClock();
    return result.ok;
  }

  stop(reason = new RelayError('SHUTTING_DOWN', `group ${this.options.id} stopped`)): void {
    this.stopReason = reason;
    this.stopped = true;
    this.options.clock?.remove(this);
    this.held = undefined;
    clearTimeout(this.fenced?.timer);
    for (const abandoned of this.proposals.abandonAll()) abandoned.waiter.reject(reason);
    for (const abandoned of this.confProposals.abandonAll()) abandoned.waiter.reject(reason);
    this.deadlines?.clear();
    for (const end of [...this.leadershipEnds]) end();
    this.compaction.take()?.done(reason);
  }

  /**
   * Drains every Ready, one at a time (the runner's order must never
   * interleave): synchronously while a Ready's handlers finish at once (a
   * commit, an apply), from the settlement of a handler's promise when one
   * does not (a write, an fsync, a compaction). No promise is made for a
   * Ready that needs none: an `await` of each cost a leader 1–2 KB per
   * publish. What leaves, and in which order, is the runner's and `send`'s
   * business (held commit messages still follow the acks: see {@link hold}).
   */
  private process(): void {
    if (this.processing) {
      this.again = true;
      return;
    }
    this.processing = true;
    this.drain(false);
  }

  /** {@link process}'s loop, entered anew after each handler's promise (`resumed`: a Ready just finished). */
  private drain(resumed: boolean): void {
    try {
      if (resumed) this.noticeConf();
      const io = this.io();
      do {
        this.again = false;
        while (!this.stopped && this.fenced === undefined) {
          const handled = runReady(this.core, io);
          if (handled === false) break;
          if (handled !== true) {
            const { resumed, failed } = this.continuations();
            handled.then(resumed, failed);
            return;
          }
          // Before anyone awaiting a change hears of it: observers see the configuration first.
          this.noticeConf();
        }
        const compaction = this.stopped || this.fenced !== undefined ? undefined : this.compaction.take();
        if (compaction !== undefined) {
          let run: Promise<void>;
          try {
            run = compaction.run();
          } catch (err) {
            run = Promise.reject(err);
          }
          run.then(
            () => {
              compaction.done();
              this.again = true;
              this.drain(false);
            },
            (error: unknown) => {
              compaction.done(error);
              // A rewrite of the log that failed part way: what the file holds is unknown.
              this.drained({ error });
            },
          );
          return;
        }
      } while (this.again && !this.stopped && this.fenced === undefined);
    } catch (error) {
      this.drained({ error });
      return;
    }
    this.drained();
  }

  /** The end of a drain: a `failure` (a handler's error) fences the group, unless it stopped (shutdown aborts a write). */
  private drained(failure?: { error: unknown }): void {
    if (failure !== undefined && !this.stopped) this.fence(failure.error);
    this.processing = false;
    if (this.core.quiesced) {
      // Made again when it wakes (see {@link io}).
      this.handlers = undefined;
      this.drainContinuations = undefined;
      if (this.deadlines?.size === 0) {
        // Made again with the next proposal: a quiesced replica keeps no queue (nor its armed timer).
        this.deadlines.clear();
        this.deadlines = undefined;
      }
    }
    this.noticeLeader();
    this.noticeConf();
    this.checkAllReplicas();
    this.endProposalsOfLostLeadership();
  }

  /**
   * A write or fsync failed, or the state machine could not take a committed
   * entry: this replica can no longer prove what it holds, and the core (whose
   * Ready was not advanced) must be discarded. Until {@link recover} has
   * re-established the durable state, the group sends nothing — no
   * acknowledgement, no vote, no campaign, no heartbeat — so the other
   * replicas go on without it (a leader is replaced within an election
   * timeout). Proposals waiting here may still be committed by another
   * leader: they end with TIMEOUT (outcome unknown), and their clients
   * republish them, deduplicated.
   */
  private fence(err: unknown): void {
    const reason = err instanceof RelayError && (err.code === 'STORAGE_FULL' || err.code === 'STORAGE_ERROR') ? err : storageRelayError(err, `group ${this.options.id}: storage failed`);
    this.log('error', 'raft group fenced after a storage failure: no acknowledgements, votes or leadership until its durable state is re-established', {
      term: this.core.status().term,
      code: reason.code,
      error: reason.message,
    });
    this.fenced = { reason, term: this.core.status().term, leader: null, timer: undefined };
    // The state machine is rewound and the log reloaded: nothing projected or unwritten holds any more.
    this.projectedTerm = 0;
    this.unwritten = undefined;
    this.held = undefined; // a fenced group sends nothing
    for (const { waiter, index, committed } of this.proposals.abandonAll()) {
      // Committed, but not known to be on every replica: ack `all` cannot be promised.
      const message = committed ? `entry ${index} of ${this.options.id} is committed; whether every replica holds it is unknown` : `entry ${index} of ${this.options.id}: its outcome is unknown (${reason.message})`;
      waiter.reject(new RelayError('TIMEOUT', message));
    }
    for (const { waiter, index } of this.confProposals.abandonAll()) {
      waiter.reject(new RelayError('TIMEOUT', `configuration change ${index} of ${this.options.id}: its outcome is unknown (${reason.message})`));
    }
    this.compaction.take()?.done(reason);
    this.scheduleRecovery();
  }

  private scheduleRecovery(): void {
    const fence = this.fenced;
    if (fence === undefined || this.stopped) return;
    const { minDelayMs, maxDelayMs } = this.options.fenceRetry ?? FENCE_RETRY;
    const delay = Math.min(maxDelayMs, minDelayMs * 2 ** Math.min(this.failedRecoveries, 30));
    this.failedRecoveries++;
    // Jitter, so the groups of one broker do not all hit the disk at once.
    fence.timer = setTimeout(() => void this.recover(), delay * (0.5 + Math.random() / 2));
    fence.timer.unref?.();
  }

  /**
   * Re-establishes the durable state of a fenced group, as a restart would,
   * without one: the Raft log is reloaded from what is fsynced, the state
   * machine rewound to what it provably holds, and a fresh core starts from
   * there as a follower; the leader then repairs it like any lagging replica.
   * While the disk still fails this throws and is tried again later (or the
   * fresh core's first write fails and fences the group again).
   */
  private async recover(): Promise<void> {
    const fence = this.fenced;
    if (fence === undefined || this.stopped) return;
    fence.timer = undefined;
    try {
      const storage = this.options.storage;
      await storage.reload();
      if (this.stopped) return;
      let applied = this.appliedIndex;
      if (!this.applyTorn && storage.reader.term(applied) !== undefined) {
        // The state machine holds exactly the entries up to `applied`, all committed (so durable on a quorum):
        // it goes on from there (and keeps serving them meanwhile).
        if (storage.hardState.commit < applied) storage.setHardState({ ...storage.hardState, commit: applied });
      } else {
        if (this.options.recover === undefined) throw new RelayError('STORAGE_ERROR', `group ${this.options.id} cannot rewind its state machine in place; a restart recovers it`);
        applied = await this.options.recover();
        this.applyTorn = false;
      }
      if (this.stopped) return;
      this.appliedIndex = applied;
      this.retiredCounters = addRaftCounters(this.retiredCounters ?? zeroRaftCounters(), this.core.counters);
      this.core = this.createCore();
    } catch (err) {
      this.log('warn', 'fenced raft group could not recover yet; retrying', { error: String(err) });
      this.scheduleRecovery();
      return;
    }
    this.fenced = undefined;
    this.log('info', 'fenced raft group recovered its durable state and rejoins', { applied: this.appliedIndex, lastIndex: this.core.lastIndex });
    this.noticeLeader();
    this.process();
    this.syncClock();
  }

  /** What goes on with a drain after a handler's promise: made once while the group is awake, not twice per Ready. */
  private continuations(): { resumed: () => void; failed: (error: unknown) => void } {
    return (this.drainContinuations ??= { resumed: () => this.drain(true), failed: (error: unknown) => this.drained({ error }) });
  }

  /**
   * The handlers of this group's Readys, made when it first needs them and
   * dropped when a drain of its Readys ends with the group quiesced: a broker hosting thousands of quiesced groups
   * kept, for each, two objects and seven closures (about 500 bytes in a heap
   * snapshot) that only an awake group uses.
   */
  private io(): ReadyHandlers<T, S> {
    return (this.handlers ??= this.readyHandlers());
  }

  private readyHandlers(): ReadyHandlers<T, S> {
    return {
      storage: {
        applySnapshot: async (snapshot: Snapshot<S>): Promise<void> => {
          if (this.options.installSnapshot === undefined) throw new Error(`group ${this.options.id} cannot install snapshots`);
          // An install that fails part way leaves the state machine neither at `applied` nor at the snapshot: recovery rewinds it.
          this.applyTorn = true;
          await this.options.installSnapshot(snapshot);
          this.applyTorn = false;
          this.options.storage.applySnapshot(snapshot);
          this.appliedIndex = Math.max(this.appliedIndex, snapshot.meta.index);
          this.projectedTerm = 0; // the state machine was replaced
        },
        append: (entries: readonly Entry<T>[]): void | Promise<void> => {
          if (!this.appendsSent) return this.appendToStorage(entries);
          this.appendsSent = false;
          // The transport writes what was sent in this turn of the event loop in a setImmediate (a batch frame per
          // peer; a peer without batch frames: at the end of the tick, peer-transport.ts). This leader's own write
          // (encoding its records, writing them, starting an fsync) waits for that, queued behind it, so the appends
          // reach the followers first and their round trip runs alongside this write instead of after it. With
          // process.nextTick the write ran before a batch frame left. The runner's order is unchanged.
          return new Promise<void>((resolve, reject) =>
            setImmediate(() => {
              try {
                this.appendToStorage(entries);
                resolve();
              } catch (err) {
                reject(err);
              }
            }),
          );
        },
        setHardState: (hardState: Parameters<RaftLogStorage<T, S>['setHardState']>[0], durable?: boolean): void => this.options.storage.setHardState(hardState, durable),
        // A `then`, not an async function: its frame, kept across the fsync, cost more on every proposal's Ready.
        sync: (): Promise<void> => {
          const started = performance.now();
          return this.options.storage.sync().then(() => this.synced(started));
        },
      },
      send: (messages: readonly Message<T, S>[]): void => {
        this.options.clock?.sent(messages.length);
        if (this.held !== undefined || this.holdsBack(messages)) this.hold(messages);
        else this.transmit(messages);
      },
      restore: (): void => {
        // installSnapshot already replaced the state machine, before the log recorded the snapshot.
      },
      apply: (entries: readonly Entry<T>[]): void => {
        for (const entry of entries) {
          // The state machine cannot take it (its disk failed): fence rather than skip it.
          const failure = this.options.stateFailure?.();
          if (failure !== undefined) throw failure;
          if (entry.type !== 'normal') {
            this.appliedIndex = entry.index;
            this.settle(this.proposals.onNoopApplied(entry.index));
            this.settleConf(entry.type === 'conf' ? this.confProposals.onApplied(entry.index, entry.term, entry.conf) : this.confProposals.onNoopApplied(entry.index));
            continue;
          }
          this.settleConf(this.confProposals.onNoopApplied(entry.index));
          this.applyTorn = true;
          const result = this.options.apply(entry.data, entry.index);
          this.applyTorn = false;
          // Sent: not kept for the rest of the window (a log of records took it when it wrote the entry).
          if (this.options.storage.takesEntryBodies !== true) forgetNormalEntryBody(entry.data);
          // Only now: a checkpoint taken at `applied` must hold this entry (one that throws is not applied).
          this.appliedIndex = entry.index;
          this.options.projection?.applied(entry.index);
          this.settle(this.proposals.onApplied(entry.index, entry.term, result));
        }
      },
    };
  }

  /** A sync that `started` (performance.now()) finished. */
  private synced(started: number): void {
    this.failedRecoveries = 0; // the disk takes writes again
    this.options.observer?.fsync((performance.now() - started) / 1000);
    // Written as the fsync policy promises: ack `leader` needs nothing more (the runner's order keeps this before any apply of it).
    const written = this.unwritten;
    this.unwritten = undefined;
    if (written !== undefined) for (const settlement of this.proposals.onWritten(written.index, written.term)) this.settle(settlement);
  }

  private appendToStorage(entries: readonly Entry<T>[]): void {
    this.options.storage.append(entries);
    const last = entries[entries.length - 1];
    if (last !== undefined) this.unwritten = { index: last.index, term: last.term };
  }

  /**
   * Whether `messages` wait until the acknowledgements of this Ready went
   * out: a leader's messages that carry no entries (its commit index, to the
   * followers: a heartbeat, an empty append) while proposals wait here. The
   * Ready that commits a proposal sends them before applying it, and the
   * transport writes them at the end of the tick, before the promise
   * callbacks that answer the client run: two socket writes (and, on a busy
   * machine, the followers they wake) ahead of every acknowledgement. Held
   * until those callbacks ran (the end of the current microtask queue: see
   * {@link hold}), they follow it instead, in the same turn of the event
   * loop, so followers that serve subscribers learn the commit index only
   * microseconds later. Holding a message is a network delay, which Raft
   * tolerates.
   */
  private holdsBack(messages: readonly Message<T, S>[]): boolean {
    return this.proposals.size > 0 && messages.length > 0 && messages.every((m) => m.type === 'heartbeat' || (m.type === 'app' && m.entries.length === 0));
  }

  /** Holds `messages` behind those held already (a peer gets them in order); entries to send flush them all at once. */
  private hold(messages: readonly Message<T, S>[]): void {
    const carriesEntries = messages.some((m) => m.type === 'app' && m.entries.length > 0);
    if (this.held === undefined) {
      this.held = [];
      // A tick queued from a microtask runs once the microtask queue is drained, and the promise chain that
      // writes the acks drains with it, whether this runs in an I/O callback or in a microtask already.
      queueMicrotask(() => process.nextTick(() => this.releaseHeld()));
    }
    this.held.push(...messages);
    // New entries for the followers do not wait: they leave now, after what was held (their round trip is on the way to an ack).
    if (carriesEntries) this.releaseHeld();
  }

  private releaseHeld(): void {
    const held = this.held;
    if (held === undefined) return;
    this.held = undefined;
    this.transmit(held);
  }

  private transmit(messages: readonly Message<T, S>[]): void {
    const { transport, heartbeats } = this.options;
    for (const message of messages) {
      // A heartbeat to a peer that takes them coalesced goes with the other groups' (heartbeat-coalescer.ts).
      if (heartbeats?.send(this.channel, message) === true) continue;
      // Entries go as their bodies, encoded once for every follower and this leader's record, to a peer that reads them.
      const entries = message.type === 'app' && message.entries.length > 0;
      transport.send(message.to, this.channel, entries && transport.understands(message.to, ENTRY_BODIES) ? withEntryBodies(message) : message);
      if (entries) this.appendsSent = true;
    }
  }

  /** Answers the caller of a proposal that the tracker settled (applied or replaced). */
  private settle(settlement: Settlement<Waiter<R>, R> | undefined): void {
    if (settlement === undefined) return;
    const { waiter, index } = settlement;
    switch (settlement.outcome) {
      case 'acknowledged':
        return waiter.resolve(settlement.result);
      case 'replaced':
        return waiter.reject(new RelayError('NOT_LEADER', `entry ${index} of ${this.options.id} was replaced by another leader`));
      case 'unknown':
        return waiter.reject(new RelayError('TIMEOUT', `entry ${index} of ${this.options.id}: its outcome is unknown`));
    }
  }

  private settleConf(settlement: Settlement<Waiter<ConfState>, ConfState> | undefined): void {
    if (settlement === undefined) return;
    const { waiter, index } = settlement;
    if (settlement.outcome === 'acknowledged') waiter.resolve(settlement.result);
    else if (settlement.outcome === 'replaced') waiter.reject(new RelayError('NOT_LEADER', `configuration change ${index} of ${this.options.id} was replaced by another leader`));
    else waiter.reject(new RelayError('TIMEOUT', `configuration change ${index} of ${this.options.id}: its outcome is unknown`));
  }

  /**
   * This broker stopped leading (a minority's leader steps down by
   * check-quorum): its waiting proposals cannot commit here, so their callers
   * hear TIMEOUT (outcome unknown) now instead of after their whole timeout,
   * and the client retries where a leader is.
   */
  private endProposalsOfLostLeadership(): void {
    if (this.stopped || this.fenced !== undefined || this.proposals.size + this.confProposals.size === 0) return;
    // The core answers `role` itself: its status() builds every field and the progress lists, after every drain.
    const status = this.core;
    for (const { waiter, index } of this.confProposals.onRole(status)) {
      waiter.reject(new RelayError('TIMEOUT', `configuration change ${index} of ${this.options.id}: its outcome is unknown (broker ${this.options.self} no longer leads)`));
    }
    for (const { waiter, index, committed } of this.proposals.onRole(status)) {
      const message = committed
        ? `entry ${index} of ${this.options.id} is committed; whether every replica holds it is unknown (broker ${this.options.self} no longer leads)`
        : `entry ${index} of ${this.options.id}: its outcome is unknown (broker ${this.options.self} no longer leads)`;
      waiter.reject(new RelayError('TIMEOUT', message));
    }
  }

  /** Resolves `all` acknowledgements whose entry every voter now holds (their timeout still applies). */
  private checkAllReplicas(): void {
    if (!this.proposals.waitingForAllReplicas) return;
    for (const settlement of this.proposals.onProgress(this.status())) this.settle(settlement);
  }

  /** Reports a configuration change (one taking effect, or one undone by a truncation) to `onConfChange`. */
  private noticeConf(): void {
    if (this.fenced !== undefined) return;
    const conf = this.core.confState;
    if (conf === this.knownConf.conf) return;
    const index = this.core.status().confIndex;
    this.knownConf = { conf, index };
    this.log('info', 'raft group configuration changed', { voters: conf.voters, learners: conf.learners ?? [], index });
    this.options.onConfChange?.(conf, index);
  }

  /**
   * The voter this leader is handing leadership to, while it does (it
   * refuses proposals meanwhile, `NOT_LEADER` naming itself); null when none.
   * A transfer ends within an election timeout: with the transferee leading,
   * or aborted (this broker leads on).
   */
  get transferring(): NodeId | null {
    return this.fenced === undefined ? this.core.transferee : null;
  }

  private noticeLeader(): void {
    if (this.leadershipEnds.size > 0 && (this.fenced !== undefined || this.core.leader !== this.options.self)) for (const end of [...this.leadershipEnds]) end();
    const transferee = this.transferring;
    if (transferee !== this.knownTransferee) {
      this.knownTransferee = transferee;
      this.options.onTransferChange?.();
    }
    const leader = this.leader;
    if (leader === this.knownLeader) return;
    this.knownLeader = leader;
    const term = this.fenced?.term ?? this.core.status().term;
    this.log('info', leader === null ? 'raft group lost its leader' : 'raft group has a new leader', { leader, term });
    this.options.observer?.leaderChanged(this.options.id, leader, term);
    this.options.onLeaderChange?.(leader);
  }
}

/**
 * Which voter of group `groupId` campaigns at once when `lost` (its leader)
 * is suspected: every replica computes the same one, so they do not all
 * campaign together and split the vote, and hashing the group id spreads
 * the new leaders of a lost broker's groups over the survivors.
 */
export function firstToCampaign(groupId: string, voters: readonly NodeId[], lost: NodeId): NodeId | undefined {
  const candidates = voters.filter((v) => v !== lost).sort();
  if (candidates.length === 0) return undefined;
  // FNV-1a: stable across processes and versions (a Math.random pick would not agree).
  let hash = 0x811c9dc5;
  for (let i = 0; i < groupId.length; i++) hash = Math.imul(hash ^ groupId.charCodeAt(i), 0x01000193) >>> 0;
  return candidates[hash % candidates.length];
}
