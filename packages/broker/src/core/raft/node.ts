/**
 * `RaftNode`: the API the broker drives. Inputs (`tick`, `step`, `propose`,
 * `transferLeadership`, reports) change the state machine; `ready()` collects
 * what must be persisted, sent and applied, and `advance()` acknowledges that
 * the runner did it (see the contract on {@link Ready}).
 */
import { resolveRaftConfig, type RaftConfig, type RaftConfigOptions } from './config.js';
import { NO_TESTING_KNOBS, Raft, type RaftCounters, type RaftTestingKnobs } from './raft.js';
import type { Storage } from './storage.js';
import { isMember } from './membership.js';
import type {
  ConfChange,
  ConfChangeResult,
  ConfState,
  Entry,
  HardState,
  Message,
  NodeId,
  ProposeResult,
  RandomSource,
  Ready,
  Role,
  SoftState,
  Status,
  TransferResult,
} from './types.js';

export interface RaftNodeInit<T, S> {
  /** This node's id; must be a member of the configuration (a voter or a learner) unless `joining`. */
  readonly id: NodeId;
  /** Stable storage as of the last run (empty for a new node). Read-only for the core. */
  readonly storage: Storage<T, S>;
  /** Election-timeout jitter. In simulation, derive one stream per node from the seed and the id. */
  readonly random: RandomSource;
  /**
   * The voters of a brand-new cluster (this node included), its bootstrap
   * configuration. Omit when the storage already holds a configuration; if
   * both are given they must agree with the storage's snapshot (or
   * bootstrap) configuration. Changes made since are read from the log.
   */
  readonly voters?: readonly NodeId[];
  /**
   * The node may be outside the configuration it finds: a node waiting to be
   * added as a learner (started with the cluster's bootstrap configuration
   * and an empty log, which the leader fills once it is added), or one that
   * was removed. Such a node never campaigns; it follows whichever leader
   * sends it appends. Without it, a node absent from the configuration is
   * refused as a misconfiguration.
   * @defaultValue false
   */
  readonly joining?: boolean;
  readonly config?: RaftConfigOptions;
  /**
   * Highest index the state machine already applied, for a state machine
   * that survives restarts on its own. Defaults to the stored snapshot's
   * index (an in-memory state machine restored from that snapshot).
   */
  readonly applied?: number;
}

interface PendingReady {
  readonly lastEntryIndex: number;
  readonly lastEntryTerm: number;
  readonly snapshotIndex: number;
  readonly appliedTo: number;
}

function sameVoters(a: readonly NodeId[], b: readonly NodeId[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return b.every((id) => set.has(id));
}

/**
 * One member of one Raft group. Not thread-safe, not re-entrant; every
 * method is synchronous and does no I/O.
 */
export class RaftNode<T, S = unknown> {
  private readonly raft: Raft<T, S>;
  private prevSoft: SoftState;
  private prevHard: HardState;
  private pending: PendingReady | undefined;

  /** @param knobs TEST-ONLY deliberate bugs (see `RaftTestingKnobs`); never pass in production. */
  constructor(init: RaftNodeInit<T, S>, knobs: Readonly<RaftTestingKnobs> = NO_TESTING_KNOBS) {
    const config = resolveRaftConfig(init.config);
    if (typeof init.id !== 'string' || init.id.length === 0) throw new RangeError('raft node id must be a non-empty string');
    const { confState, hardState } = init.storage.initialState();
    let voters = confState.voters;
    if (init.voters !== undefined) {
      if (voters.length > 0 && !sameVoters(voters, init.voters)) {
        throw new RangeError(`voters [${init.voters.join(', ')}] conflict with the stored configuration [${voters.join(', ')}]`);
      }
      voters = init.voters;
    }
    if (voters.length === 0) throw new RangeError('no voters: pass `voters` for a new cluster, or a storage with a configuration');
    const bootstrap: ConfState = voters === confState.voters ? confState : { voters };
    // An in-memory state machine restarts from the stored snapshot, which may lie past the compaction point.
    const applied = init.applied ?? Math.max(init.storage.firstIndex() - 1, init.storage.snapshot()?.meta.index ?? 0);
    if (!Number.isSafeInteger(applied) || applied < 0) throw new RangeError(`applied must be a non-negative integer, got ${applied}`);
    this.raft = new Raft<T, S>({ id: init.id, config, storage: init.storage, random: init.random, bootstrap, applied, knobs });
    // The configuration in effect is the log's last one (conf entries after the snapshot), not only the stored one.
    if (init.joining !== true && !isMember(this.raft.confState, init.id)) {
      throw new RangeError(`node ${init.id} is not among the voters [${this.raft.voters.join(', ')}] nor the learners (pass joining: true for a node waiting to be added)`);
    }
    this.prevHard = hardState;
    this.prevSoft = { role: this.raft.role, leader: this.raft.leader };
  }

  // ---- cheap accessors (no allocation) ----------------------------------------

  get id(): NodeId {
    return this.raft.id;
  }
  get config(): Readonly<RaftConfig> {
    return this.raft.config;
  }
  get term(): number {
    return this.raft.term;
  }
  get role(): Role {
    return this.raft.role;
  }
  get leader(): NodeId | null {
    return this.raft.leader;
  }
  /** The voter a leadership transfer of this leader goes to, while one is under way (as `status().transferee`). */
  get transferee(): NodeId | null {
    return this.raft.transferee;
  }
  get commitIndex(): number {
    return this.raft.log.committed;
  }
  get appliedIndex(): number {
    return this.raft.log.applied;
  }
  get firstIndex(): number {
    return this.raft.log.firstIndex();
  }
  get lastIndex(): number {
    return this.raft.log.lastIndex();
  }
  /** Counters for metrics. */
  get counters(): Readonly<RaftCounters> {
    return this.raft.counters;
  }

  /** Term of the entry at `index` in this node's log (stable or not), or `undefined` if compacted or absent. */
  termAt(index: number): number | undefined {
    return this.raft.log.term(index);
  }

  /**
   * Entries in `[lo, hi)` of this node's log, stable or not (a leader's own
   * appends before they are persisted included). Throws when the range is
   * compacted or beyond the last index.
   */
  entries(lo: number, hi: number): readonly Entry<T>[] {
    return this.raft.log.slice(lo, hi, Number.MAX_SAFE_INTEGER);
  }

  // ---- inputs -------------------------------------------------------------------

  /** Advances logical time by one tick (election and heartbeat timers). */
  tick(): void {
    this.raft.tick();
  }

  /**
   * Processes a message from a peer. Ignored: messages for another node, vote
   * requests from non-members whose log is behind this node's (a removed node
   * must not disrupt the group), and heartbeats and answers from non-members
   * other than the leader this node follows. A leader's appends and snapshots are taken from any node: the
   * term decides, and a node that lags behind the entry adding a new leader
   * learns of it only from them.
   */
  step(message: Message<T, S>): void {
    this.raft.step(message);
  }

  /**
   * Whether this node is quiesced (see `RaftConfig.quiesce`): idle, caught
   * up, its timers stopped. The runtime need not tick it until it wakes,
   * which any `step`, proposal, transfer, `campaign`, {@link wake} or
   * {@link peerDown} does.
   */
  get quiesced(): boolean {
    return this.raft.quiesced;
  }

  /** See {@link Raft.leaderContact}. */
  get leaderContact(): { leader: NodeId; ticksAgo: number } | undefined {
    return this.raft.leaderContact;
  }

  /** Wakes a quiesced node: a leader heartbeats again, a follower runs its election timer and wakes its leader. */
  wake(): void {
    this.raft.wake();
  }

  /**
   * The broker's failure detector suspects `peer` (its broker is suspect,
   * dead or gone). If this node follows `peer`, it wakes and the leader's
   * lease no longer holds here (it grants votes again) until it hears from
   * the leader. With `campaignNow` (the runtime asks one follower per group
   * so the others do not split the vote) it campaigns at its next tick,
   * pre-vote first; the others campaign when their election timer runs
   * out, within two election timeouts. Returns whether this node followed `peer`.
   */
  peerDown(peer: NodeId, campaignNow = true): boolean {
    return this.raft.peerDown(peer, campaignNow);
  }

  /**
   * The link to broker `peer` came up (again), perhaps after a restart: a
   * leader that counts it wakes and heartbeats until it answers (see
   * {@link Raft.peerUp}). Returns whether this node leads a group `peer` belongs to.
   */
  peerUp(peer: NodeId): boolean {
    return this.raft.peerUp(peer);
  }

  /**
   * The failure detector no longer suspects `peer` (see
   * {@link Raft.peerRecovered}): a quiesced leader that lacks it in its
   * quorum wakes to catch it up. Returns whether this node woke.
   */
  peerRecovered(peer: NodeId): boolean {
    return this.raft.peerRecovered(peer);
  }

  /** Starts an election now (pre-vote first if enabled). A leader ignores it. */
  campaign(): void {
    this.raft.campaign();
  }

  /**
   * Appends one entry, if this node is the leader. The entry is committed
   * when it shows up in `Ready.committedEntries` with the returned index and
   * term; another entry at that index means it was lost with a leader change.
   */
  propose(data: T): ProposeResult {
    return this.raft.propose([data]);
  }

  /** Appends several entries at consecutive indexes, all or none. */
  proposeBatch(data: readonly T[]): ProposeResult {
    return this.raft.propose(data);
  }

  /**
   * Proposes a change of membership, if this node is the leader: adds a
   * learner, promotes a learner to voter, or removes a voter or learner
   * (this leader included). The change is a log entry; it takes effect on
   * each node as soon as the entry is in its log, and is committed by a
   * majority of the voters of the *new* configuration. Like a proposal, it
   * is done when a `conf` entry shows up in `Ready.committedEntries` with the
   * returned index and term; another entry there means it was lost with a
   * leader change (propose it again, if it still applies).
   *
   * One change at a time: refused (`change-pending`) until the previous one
   * committed, and (`term-not-committed`) until this leader committed an
   * entry of its own term, which a new leader does once its no-op commits.
   * A leader that removes itself goes on leading (without counting itself
   * for any majority) until the change commits, then hands over to a voter
   * holding its whole log and steps down.
   *
   * Promote a learner only once it has caught up (see
   * `status().learnerProgress`): until then the larger quorum waits for it.
   */
  proposeConfChange(change: ConfChange): ConfChangeResult {
    return this.raft.proposeConfChange(change);
  }

  /** The configuration in effect on this node: the last one in its log, committed or not. */
  get confState(): ConfState {
    return this.raft.confState;
  }

  /**
   * Hands leadership to `to`: proposals are refused meanwhile, `to` is caught
   * up, then told to campaign at once. Aborted if not done within an election
   * timeout. Transferring to itself cancels a transfer.
   */
  transferLeadership(to: NodeId): TransferResult {
    return this.raft.transferLeadership(to);
  }

  /**
   * Reports the outcome of a snapshot message this leader sent to `to`. The
   * runtime must report every snapshot message, delivered or failed: until
   * then the leader sends nothing else to that follower.
   */
  reportSnapshot(to: NodeId, delivered: boolean): void {
    this.raft.reportSnapshot(to, delivered);
  }

  /** Reports that the transport could not reach `to` (the leader stops streaming to it and probes). */
  reportUnreachable(to: NodeId): void {
    this.raft.reportUnreachable(to);
  }

  // ---- output -------------------------------------------------------------------

  private softState(): SoftState {
    return { role: this.raft.role, leader: this.raft.leader };
  }

  private hardStateChanged(): boolean {
    const r = this.raft;
    return r.term !== this.prevHard.term || r.vote !== this.prevHard.vote || r.log.committed !== this.prevHard.commit;
  }

  /** Whether `ready()` has anything to hand out. */
  hasReady(): boolean {
    if (this.pending !== undefined) return false;
    const r = this.raft;
    return (
      r.hasMessages() ||
      r.log.hasUnstable() ||
      r.log.hasNextCommittedEntries() ||
      this.hardStateChanged() ||
      r.role !== this.prevSoft.role ||
      r.leader !== this.prevSoft.leader
    );
  }

  /**
   * The next batch of work; honour it as documented on {@link Ready}, then
   * call {@link advance}. Throws if the previous batch was not advanced.
   */
  ready(): Ready<T, S> {
    if (this.pending !== undefined) throw new Error('raft: ready() called again before advance()');
    const r = this.raft;
    const log = r.log;
    const soft = this.softState();
    const softChanged = soft.role !== this.prevSoft.role || soft.leader !== this.prevSoft.leader;
    const hard: HardState = { term: r.term, vote: r.vote, commit: log.committed };
    const hardChanged = this.hardStateChanged();
    const voteChanged = hard.term !== this.prevHard.term || hard.vote !== this.prevHard.vote;
    const entriesToPersist = log.unstableEntries();
    const snapshot = log.unstableSnapshot();
    const committedEntries = log.nextCommittedEntries(r.config.maxCommittedEntriesPerReady);
    const messages = r.takeMessages();
    // Configuration changes are rare: the commit that passes one is made durable at once (see Ready.commitPassedConf).
    const commitPassedConf = hard.commit > this.prevHard.commit && log.holdsConfIn(this.prevHard.commit, hard.commit);
    const mustSync = !r.knobs.neverSync && (entriesToPersist.length > 0 || snapshot !== undefined || voteChanged || commitPassedConf);

    const lastEntry = entriesToPersist[entriesToPersist.length - 1];
    const lastCommitted = committedEntries[committedEntries.length - 1];
    this.pending = {
      lastEntryIndex: lastEntry?.index ?? 0,
      lastEntryTerm: lastEntry?.term ?? 0,
      snapshotIndex: snapshot?.meta.index ?? 0,
      appliedTo: lastCommitted?.index ?? 0,
    };
    if (softChanged) this.prevSoft = soft;
    if (hardChanged) this.prevHard = hard;
    return {
      softState: softChanged ? soft : undefined,
      hardState: hardChanged ? hard : undefined,
      entriesToPersist,
      snapshot,
      committedEntries,
      messages,
      mustSync,
      ...(commitPassedConf ? { commitPassedConf } : {}),
    };
  }

  /** The last `Ready` was persisted, sent and applied. */
  advance(): void {
    const pending = this.pending;
    if (pending === undefined) throw new Error('raft: advance() without a ready()');
    const log = this.raft.log;
    if (pending.snapshotIndex > 0) {
      log.stableSnapTo(pending.snapshotIndex);
      log.appliedTo(pending.snapshotIndex);
    }
    if (pending.lastEntryIndex > 0) log.stableTo(pending.lastEntryIndex, pending.lastEntryTerm);
    if (pending.appliedTo > 0) log.appliedTo(pending.appliedTo);
    this.pending = undefined;
  }

  /** Everything a dashboard or metric wants; allocates, call it at metric frequency. */
  status(): Status {
    const r = this.raft;
    return {
      id: r.id,
      term: r.term,
      vote: r.vote,
      role: r.role,
      leader: r.leader,
      commit: r.log.committed,
      applied: r.log.applied,
      firstIndex: r.log.firstIndex(),
      lastIndex: r.log.lastIndex(),
      voters: r.voters,
      learners: r.learners,
      confIndex: r.confIndex,
      transferee: r.transferee,
      recovering: r.recovering,
      progress: r.progressStatus(),
      learnerProgress: r.role === 'leader' ? r.progressStatus(r.learners) : [],
    };
  }
}

/** Creates a node: resolves and validates the configuration, loads the stored state. */
export function createRaftNode<T, S = unknown>(init: RaftNodeInit<T, S>): RaftNode<T, S> {
  return new RaftNode<T, S>(init);
}
