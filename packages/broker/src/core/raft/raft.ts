/**
 * The Raft state machine (Ongaro's thesis, shaped like etcd-io/raft): leader
 * election with randomized timeouts, pre-vote and check-quorum; log
 * replication with fast backtracking; commitment by counting only entries of
 * the leader's own term; leadership transfer; snapshots for followers that
 * fell behind a compacted log.
 *
 * Pure and synchronous: inputs are `tick()`, `step(message)` and a few calls
 * from the application; outputs accumulate in `msgs` and in the log's
 * unstable tail, and `RaftNode` hands them out as a `Ready`. Each role has its
 * own step function, swapped by `become*`; an illegal transition throws.
 */
import type { RaftConfig } from './config.js';
import { RaftInvariantError, RaftLog, type IndexedConf } from './log.js';
import { applyConfChange, learnersOf } from './membership.js';
import { Progress } from './progress.js';
import { guardedVoteOutcome, majorityIndex, quorumActive, voteOutcome, type VoteAnswer } from './quorum.js';
import type { Storage } from './storage.js';
import type {
  AppendMessage,
  AppendResponse,
  ConfChange,
  ConfChangeResult,
  ConfState,
  Entry,
  HeartbeatMessage,
  HeartbeatResponse,
  Message,
  NodeId,
  ProgressStatus,
  ProposeResult,
  RandomSource,
  Role,
  SnapshotMessage,
  TransferResult,
  VoteRequest,
  VoteResponse,
} from './types.js';

/**
 * Deliberate bugs, for proving that the simulator's checkers are not
 * vacuous. TEST-ONLY: not exported from the package; every knob is off in
 * production and nothing else may switch one on.
 */
export interface RaftTestingKnobs {
  /** Commit an entry of an earlier term by counting replicas (breaks the Figure 8 rule). */
  commitEarlierTermByCounting: boolean;
  /** A follower grants a second vote in a term it already voted in. */
  grantTwoVotesPerTerm: boolean;
  /** Grant votes without checking that the candidate's log is up to date (§5.4.1). */
  skipLogUpToDateCheck: boolean;
  /** `Ready.mustSync` is always false: votes and entries may be acknowledged before they are durable. */
  neverSync: boolean;
  /** A leader appends a configuration change while an earlier one is not committed (overlapping single-server changes). */
  allowOverlappingConfChanges: boolean;
  /** A new leader changes the configuration before it committed an entry of its term (the single-server bug Ongaro found). */
  confChangeBeforeTermCommitted: boolean;
  /** A configuration entry truncated from the log is not undone: the node keeps using it. */
  keepTruncatedConf: boolean;
  /** Supporters elect a candidate of at most two voters without a win in the configurations one voter away (docs/raft.md, "Two voters beside three"). */
  skipElectionGuard: boolean;
}

export const NO_TESTING_KNOBS: Readonly<RaftTestingKnobs> = Object.freeze({
  commitEarlierTermByCounting: false,
  grantTwoVotesPerTerm: false,
  skipLogUpToDateCheck: false,
  neverSync: false,
  allowOverlappingConfChanges: false,
  confChangeBeforeTermCommitted: false,
  keepTruncatedConf: false,
  skipElectionGuard: false,
});

/** Counters for metrics: every message the core dropped on purpose is counted. */
export interface RaftCounters {
  /**
   * Messages for another node, from a non-member (e.g. the vote request of a
   * removed node whose log is behind ours), or that make no sense in the
   * current role.
   */
  messagesIgnored: number;
  /** Messages from an older term. */
  staleMessages: number;
  /** Vote requests ignored because this node heard from a leader within the election timeout. */
  votesIgnoredInLease: number;
  /** Elections (real, not pre-votes) this node started. */
  elections: number;
  /** Times this node became leader. */
  leaderships: number;
  /** Times a leader stepped down because a quorum was silent for an election timeout. */
  checkQuorumStepDowns: number;
  /** Snapshot messages sent to followers. */
  snapshotsSent: number;
  /** Snapshots installed from a leader. */
  snapshotsInstalled: number;
  /** Snapshots sent again because the follower answered heartbeats but never the snapshot. */
  snapshotsRetried: number;
  /** Leadership transfers aborted after an election timeout. */
  transfersAborted: number;
  /** Configuration changes this node appended as leader. */
  confChangesProposed: number;
  /** Times this node, as leader, stepped down because a committed change removed it. */
  removedStepDowns: number;
  /**
   * Of those, times no voter acknowledged the removal's commit within an election timeout (see
   * `HeartbeatResponse.commit`): it handed over on its `timeout-now` alone.
   */
  removalsUnacknowledged: number;
  /** Times this node quiesced (stopped its timers, idle and caught up). */
  quiesces: number;
  /** Times it woke from quiescence. */
  wakes: number;
  /** Times the failure detector's word that its leader is down ended the leader's lease here. */
  leaderDownSignals: number;
  /** Times this follower told its leader it lost entries it had acknowledged (`RaftConfig.unsyncedAcks`). */
  lostEntriesReported: number;
  /** Times this node stopped recovering (`RaftConfig.recoveringAtStart`): a leader of a later term caught it up. */
  recoveriesEnded: number;
  /** Elections this node started as leader because a follower could not stop recovering in its term. */
  recoveryElections: number;
  /** (Pre-)votes this node would have granted and, recovering, answered only with `wouldGrant`. */
  votesWithheld: number;
  /** Campaigns (pre-vote first) this node started as a learner whose log held entries above its commit. */
  learnerCampaigns: number;
}

type StepFn<T, S> = (m: Message<T, S>) => void;

/** See `Raft.electionGuardOf`: the voters of the configurations one voter away, where supporters must win too. */
interface ElectionGuard {
  /** The previous configuration's voters, when the latest change removed a voter and is not known committed. */
  readonly previous: readonly NodeId[] | undefined;
  /** That removal's entry. */
  readonly removal: { readonly index: number; readonly term: number } | undefined;
  /** Each learner's promotion: the voters and that learner. */
  readonly promotions: readonly (readonly NodeId[])[];
}

/** Whether a (pre-)vote answer supports the candidate: granted, or refused by a recovering voter that would have granted it. */
function supports(m: VoteResponse): boolean {
  return !m.reject || m.wouldGrant === true;
}

export interface RaftInit<T, S> {
  readonly id: NodeId;
  readonly config: Readonly<RaftConfig>;
  readonly storage: Storage<T, S>;
  readonly random: RandomSource;
  /** The configuration to start from when the storage holds none (a brand-new node). */
  readonly bootstrap: ConfState;
  readonly applied: number;
  readonly knobs: Readonly<RaftTestingKnobs>;
}

export class Raft<T, S> {
  readonly id: NodeId;
  readonly config: Readonly<RaftConfig>;
  readonly log: RaftLog<T, S>;
  readonly counters: RaftCounters = {
    messagesIgnored: 0,
    staleMessages: 0,
    votesIgnoredInLease: 0,
    elections: 0,
    leaderships: 0,
    checkQuorumStepDowns: 0,
    snapshotsSent: 0,
    snapshotsInstalled: 0,
    snapshotsRetried: 0,
    transfersAborted: 0,
    confChangesProposed: 0,
    removedStepDowns: 0,
    removalsUnacknowledged: 0,
    quiesces: 0,
    wakes: 0,
    leaderDownSignals: 0,
    lostEntriesReported: 0,
    recoveriesEnded: 0,
    recoveryElections: 0,
    votesWithheld: 0,
    learnerCampaigns: 0,
  };

  term = 0;
  vote: NodeId | null = null;
  role: Role = 'follower';
  leader: NodeId | null = null;
  /** The voters of the configuration in effect (the last one in the log). */
  voters: readonly NodeId[] = [];
  /** Its learners. */
  learners: readonly NodeId[] = [];
  /** Target of an ongoing leadership transfer. */
  transferee: NodeId | null = null;
  /** Idle and caught up: ticks do nothing, no heartbeat is sent (see `RaftConfig.quiesce`). */
  private isQuiesced = false;
  /** The failure detector suspects the leader this node follows: its lease no longer holds here (until it is heard again). */
  private leaderSuspected = false;
  /**
   * Peers the failure detector said were down and has not said recovered since ({@link peerUp}, {@link peerRecovered}):
   * their quiesce heartbeats do not quiesce this node. Hearing from one restores its lease, not this: its heartbeats
   * may have been sent before that word, and a leader gone for good would leave this node asleep, with no further word
   * to wake it. Absent while there are none (as {@link suspectedPeers}).
   */
  private reportedDown: Set<NodeId> | undefined;
  /**
   * Peers the failure detector suspects (see {@link peerDown}) and not heard
   * from since: a leader quiesces without waiting for them (see
   * {@link canQuiesce}). Any message from one, {@link peerUp} or
   * {@link peerRecovered} clears it. Absent while no peer is suspected (the
   * usual case: a Set per group costs memory at ten thousand groups).
   */
  private suspectedPeers: Set<NodeId> | undefined;
  /** The leader of this term that last reached this node, and at which tick (`now`); see {@link leaderContact}. */
  private lastLeaderContact: { leader: NodeId; at: number } | undefined;
  /** Outgoing messages since the last `takeMessages()`. */
  private msgs: Message<T, S>[] = [];

  private readonly random: RandomSource;
  readonly knobs: Readonly<RaftTestingKnobs>;
  /** The configuration in effect, as the log holds it (compared by identity to notice a change). */
  private conf: IndexedConf;
  /** Leader only: each member's replication state (empty in other roles). */
  private readonly progress = new Map<NodeId, Progress>();
  /** Votes answered in this node's current (pre-)election; absent outside one. */
  private votes: Map<NodeId, VoteAnswer> | undefined;
  /**
   * In a (pre-)election whose configuration has at most two voters: the configurations one voter away among which
   * supporters must win too. See {@link electionGuardOf}.
   */
  private electionGuard: ElectionGuard | undefined;
  /** Ticks since the last election timeout reset (followers: since hearing the leader). */
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout: number;
  /** Ticks since this node started. */
  private now = 0;
  /** The current role's handler: one of the step methods, shared by every node (called as `this.stepRole(m)`). */
  private stepRole: StepFn<T, S>;
  /** The term stored when this node started (see `RaftConfig.unsyncedAcksBeforeStart`). */
  private readonly startTerm: number;
  /**
   * The last index up to which this node's log is known, in this run, to hold the log of the leader of its term (an
   * append of that leader matched there); 0 after a term change. See {@link handleHeartbeat}.
   */
  private matchedIndex = 0;
  /**
   * Started with `RaftConfig.recoveringAtStart` and not caught up by a leader of a later term yet: its log may lack
   * entries it acknowledged, so it grants no vote (see {@link handleVoteRequest}, {@link endRecoveryIfCaughtUp}).
   */
  private isRecovering: boolean;
  /**
   * A leader whose removal committed, waiting (an election timeout at most) for a voter to acknowledge that commit
   * before it steps down: see {@link awaitRemovalAck}.
   */
  private awaitingRemovalAck = false;

  constructor(init: RaftInit<T, S>) {
    this.id = init.id;
    this.config = init.config;
    this.random = init.random;
    this.knobs = init.knobs;
    this.log = new RaftLog<T, S>(init.storage, init.bootstrap);
    this.conf = this.log.conf();
    this.setConf(this.conf.conf);
    if (new Set(this.voters).size !== this.voters.length) throw new RangeError(`duplicate voter in [${this.voters.join(', ')}]`);

    const { hardState } = init.storage.initialState();
    if (hardState.commit > this.log.lastIndex()) {
      throw new RaftInvariantError(`stored commit ${hardState.commit} is beyond the stored last index ${this.log.lastIndex()}`);
    }
    this.term = hardState.term;
    this.startTerm = hardState.term;
    // A node that never stored a term acknowledged nothing (a term is durable before any message of it leaves): a new group.
    this.isRecovering = this.config.recoveringAtStart && hardState.term > 0;
    this.vote = hardState.vote;
    this.log.commitTo(hardState.commit);
    if (init.applied > this.log.committed) throw new RangeError(`applied ${init.applied} is beyond commit ${this.log.committed}`);
    this.log.appliedTo(init.applied);

    this.randomizedElectionTimeout = this.config.electionTicks;
    this.stepRole = this.stepFollower;
    this.becomeFollower(this.term, null);
  }

  // ---- queries --------------------------------------------------------------

  /** See `Status.recovering`. */
  get recovering(): boolean {
    return this.isRecovering;
  }

  isVoter(id: NodeId): boolean {
    return this.voters.includes(id);
  }

  /** Index of the entry (or snapshot) whose configuration is in effect; 0 for the bootstrap one. */
  get confIndex(): number {
    return this.conf.index;
  }

  /** The configuration in effect. */
  get confState(): ConfState {
    return this.conf.conf;
  }

  /**
   * Whether this node may campaign: it is a voter, or its own removal is not
   * committed yet. A node that appended its removal holds the longest log
   * and may be the only one that can win: the others need its vote and it
   * refuses theirs (their logs are behind). So it campaigns among the voters
   * of its configuration (those it would leave behind), and if it wins it
   * leads until its removal commits, then steps down.
   *
   * A learner may campaign too, with pre-vote, while its log holds entries
   * above its commit (see {@link learnerMayCampaign}).
   */
  private promotable(): boolean {
    if (this.isVoter(this.id)) return true;
    if (this.conf.index > this.log.committed) {
      const previous = this.log.previousConf();
      if (previous !== undefined && previous.conf.voters.includes(this.id)) return true;
    }
    return this.learnerMayCampaign();
  }

  /**
   * A learner whose log holds entries above its commit may campaign among the
   * voters of its configuration, counted the way every candidate counts them (its
   * own answer counts for nothing); if it wins it leads until its no-op
   * commits, then hands over to a voter as a removed leader does. Without it
   * a group stalls where only the learner's log is up to date for every voter
   * and the voters are recovering: the supporters rule needs answers no voter
   * can gather (docs/raft.md, interval profile seed 2036). Only with pre-vote,
   * so a learner cut off raises no term; it campaigns two election timeouts
   * after a voter would (see {@link tickElection}).
   */
  private learnerMayCampaign(): boolean {
    return this.config.preVote && this.learners.includes(this.id) && this.log.lastIndex() > this.log.committed;
  }

  takeMessages(): Message<T, S>[] {
    const msgs = this.msgs;
    this.msgs = [];
    return msgs;
  }

  hasMessages(): boolean {
    return this.msgs.length > 0;
  }

  /** Leader only: the replication state of `ids` (voters, or learners). */
  progressStatus(ids: readonly NodeId[] = this.voters): ProgressStatus[] {
    if (this.role !== 'leader') return [];
    const out: ProgressStatus[] = [];
    for (const id of ids) {
      const pr = this.progress.get(id) as Progress;
      const status: ProgressStatus = { id, match: pr.match, next: pr.next, state: pr.state, recentActive: pr.recentActive, inflight: pr.inflights.size };
      out.push(pr.recovering ? { ...status, recovering: true } : status);
    }
    return out;
  }

  // ---- configuration ----------------------------------------------------------

  private setConf(conf: ConfState): void {
    this.voters = conf.voters;
    this.learners = learnersOf(conf);
  }

  /**
   * Whether `id` is a voter or a learner. Membership is looked up in the configuration's arrays (a group has a
   * handful of members), not in sets: two sets per group cost a broker hosting thousands of groups about 320 bytes
   * each (in a heap snapshot).
   */
  private isMember(id: NodeId): boolean {
    return this.voters.includes(id) || this.learners.includes(id);
  }

  /** Voters and learners: every node a leader replicates to. */
  private members(): readonly NodeId[] {
    return this.learners.length === 0 ? this.voters : [...this.voters, ...this.learners];
  }

  /**
   * Takes on the log's configuration if an append, a truncation or a
   * snapshot changed it. A leader starts tracking new members (optimistically
   * active, so a check-quorum round does not count them silent before they
   * could answer) and forgets removed ones.
   */
  private syncConf(): void {
    const current = this.log.conf();
    if (current === this.conf) return;
    if (this.knobs.keepTruncatedConf && current.index < this.conf.index) return;
    this.conf = current;
    this.setConf(current.conf);
    if (this.transferee !== null && !this.isVoter(this.transferee)) this.transferee = null;
    if (this.role !== 'leader') return;
    const lastIndex = this.log.lastIndex();
    for (const id of this.members()) {
      if (this.progress.has(id)) continue;
      const pr = new Progress(lastIndex + 1, this.config.maxInflightAppends);
      pr.recentActive = true;
      pr.lastContactTick = this.now;
      this.progress.set(id, pr);
    }
    for (const id of [...this.progress.keys()]) if (!this.isMember(id) && id !== this.id) this.progress.delete(id);
  }

  // ---- role transitions -----------------------------------------------------

  private reset(term: number): void {
    if (term !== this.term) {
      this.term = term;
      this.vote = null;
      this.lastLeaderContact = undefined;
      this.matchedIndex = 0;
    }
    this.leader = null;
    this.isQuiesced = false;
    this.leaderSuspected = false;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.transferee = null;
    this.awaitingRemovalAck = false;
    this.votes = undefined;
    this.electionGuard = undefined;
    // Only a leader tracks its members' progress (see becomeLeader): a follower's would be dead weight, and most groups follow.
    this.progress.clear();
  }

  /** A new leader's progress of every member, itself included, from its last index. */
  private trackMembers(): void {
    const lastIndex = this.log.lastIndex();
    // A leader removing itself keeps its own progress (it holds its log) until it steps down.
    for (const id of new Set([...this.members(), this.id])) {
      const pr = new Progress(lastIndex + 1, this.config.maxInflightAppends);
      if (id === this.id) pr.match = lastIndex;
      pr.lastContactTick = this.now;
      this.progress.set(id, pr);
    }
  }

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.config.electionTicks + this.random.nextInt(this.config.electionTicks);
  }

  becomeFollower(term: number, leader: NodeId | null): void {
    this.stepRole = this.stepFollower;
    this.reset(term);
    this.leader = leader;
    this.role = 'follower';
  }

  becomePreCandidate(): void {
    if (this.role === 'leader') throw new RaftInvariantError('invalid transition [leader -> pre-candidate]');
    // Neither the term nor the vote changes: a failed pre-vote disturbs no one.
    this.stepRole = this.stepCandidate;
    this.votes = undefined;
    this.electionGuard = undefined;
    this.leader = null;
    this.isQuiesced = false;
    this.role = 'pre-candidate';
    this.electionElapsed = 0;
    this.resetRandomizedElectionTimeout();
  }

  becomeCandidate(): void {
    if (this.role === 'leader') throw new RaftInvariantError('invalid transition [leader -> candidate]');
    this.stepRole = this.stepCandidate;
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = 'candidate';
    this.counters.elections++;
  }

  becomeLeader(): void {
    if (this.role !== 'candidate') throw new RaftInvariantError(`invalid transition [${this.role} -> leader]`);
    // Voters whose grant elected it answered within this election timeout (see below).
    const granted: NodeId[] = [];
    for (const [id, grant] of this.votes ?? []) if (grant !== false && id !== this.id) granted.push(id);
    this.stepRole = this.stepLeader;
    this.reset(this.term);
    this.trackMembers();
    this.leader = this.id;
    this.role = 'leader';
    this.counters.leaderships++;
    const self = this.progress.get(this.id) as Progress;
    self.becomeReplicate();
    self.recentActive = true;
    // Check-quorum's first round counts the voters that just granted their vote: they answered in this term,
    // within the election timeout. Otherwise a leader whose followers, busy (thousands of groups electing at once
    // after a broker's loss), answer its first append a little later than one election timeout steps down at its
    // first check, and its group campaigns again, adding to the load. A leader cut off right after winning still
    // steps down, one election timeout later.
    for (const id of granted) {
      const pr = this.progress.get(id);
      if (pr === undefined) continue;
      pr.recentActive = true;
      pr.lastHeardTick = this.now;
    }
    // The no-op of this term: committing it commits every earlier entry (Figure 8).
    this.appendEntries([{ type: 'noop', index: this.log.lastIndex() + 1, term: this.term }]);
  }

  // ---- inputs ---------------------------------------------------------------

  tick(): void {
    // Quiesced: nothing is due until a message, a proposal or the failure detector wakes this node.
    if (this.isQuiesced) return;
    this.now++;
    if (this.role === 'leader') this.tickHeartbeat();
    else this.tickElection();
  }

  // ---- quiescence -------------------------------------------------------------

  get quiesced(): boolean {
    return this.isQuiesced;
  }

  /**
   * The leader of this node's term that last reached it (an append,
   * heartbeat or snapshot) and how many ticks ago, whatever this node made of
   * it since: the failure detector may suspect that leader, and this node
   * campaign, while the leader's bytes still arrive (a one-way fault).
   * Undefined when this node leads, heard no leader this term, or is
   * quiesced (its ticks stopped).
   */
  get leaderContact(): { leader: NodeId; ticksAgo: number } | undefined {
    const contact = this.lastLeaderContact;
    if (contact === undefined || this.role === 'leader' || this.isQuiesced) return undefined;
    return { leader: contact.leader, ticksAgo: this.now - contact.at };
  }

  /**
   * A leader may quiesce when nothing is in flight: its whole log is
   * committed, of its term, and durable here; every member (learners too)
   * holds all of it (and is not waiting for a snapshot) and answered
   * recently; and no transfer is under way.
   *
   * Members the failure detector suspects (and that were not heard from
   * since) are not waited for, as long as the others hold a quorum of the
   * voters: a group that lost a replica's broker would otherwise heartbeat
   * until that broker returns, and the survivors of a broker hosting
   * thousands of replicas would spend their time on those heartbeats (at
   * 10,000 partitions, enough to delay their own heartbeats past the
   * election timeout). Quiescence is about liveness only; a suspected member
   * that comes back (its link up again: {@link peerUp}; no longer suspected:
   * {@link peerRecovered}; or any message from it) wakes the leader or keeps
   * it awake until it has caught up.
   */
  private canQuiesce(): boolean {
    if (!this.config.quiesce || this.transferee !== null || this.awaitingRemovalAck) return false;
    const last = this.log.lastIndex();
    if (this.log.committed !== last || this.log.lastTerm() !== this.term || this.log.lastStableIndex() !== last) return false;
    for (const [id, pr] of this.progress) {
      if (id === this.id || this.isSuspected(id)) continue;
      if (pr.match !== last || pr.state === 'snapshot' || !pr.recentActive || pr.awaitingContact) return false;
    }
    return this.suspectedPeers === undefined || quorumActive(this.voters, (id) => !this.isSuspected(id));
  }

  private quiesce(): void {
    this.isQuiesced = true;
    this.counters.quiesces++;
    // Appends whose answers were lost: every follower holds them all, so none is in flight any more.
    if (this.role === 'leader') for (const pr of this.progress.values()) pr.inflights.freeLE(pr.match);
  }

  /**
   * Leaves quiescence. A follower woken by anything but its leader tells
   * the leader (a heartbeat answer without the quiesce mark), so the leader
   * heartbeats again before this follower's election timer could fire.
   */
  private unquiesce(pokeLeader: boolean): void {
    if (!this.isQuiesced) return;
    this.isQuiesced = false;
    this.counters.wakes++;
    // Its clock stood still: no one it heard from while quiesced (or before) counts as heard within an election timeout (noteRecovering).
    if (this.role === 'leader') for (const pr of this.progress.values()) pr.lastHeardTick = Number.NEGATIVE_INFINITY;
    if (pokeLeader && this.role !== 'leader' && this.leader !== null && this.leader !== this.id) {
      this.send(this.markRecovering<HeartbeatResponse>({ type: 'heartbeat-resp', from: this.id, to: this.leader, term: this.term }));
    }
  }

  /** Wakes this node (a leader resumes heartbeats, a follower its election timer and wakes its leader). */
  wake(): void {
    this.unquiesce(true);
  }

  /**
   * The failure detector suspects `peer`. A follower (quiesced or not) whose
   * leader it is wakes (and pokes it) and no longer honours that leader's
   * lease: it grants (pre-)votes again. With `campaignNow` it campaigns at
   * its next tick (pre-vote first; the others grant it only if their lease
   * ended too); otherwise its election timer runs as usual, so that when
   * every follower is told at once only one of them (the runtime picks it)
   * campaigns first instead of all splitting the vote. Hearing from the
   * leader again restores its lease; its quiesce heartbeats quiesce this
   * node again only once the detector says it recovered (see
   * {@link reportedDown}). A leader, now or later, quiesces
   * without waiting for `peer` until it hears from it (see
   * {@link canQuiesce}). Returns whether this node followed `peer`.
   */
  peerDown(peer: NodeId, campaignNow: boolean): boolean {
    if (peer !== this.id) {
      (this.suspectedPeers ??= new Set()).add(peer);
      (this.reportedDown ??= new Set()).add(peer);
    }
    if (this.role === 'leader' || this.leader !== peer) return false;
    // Poked: a leader that is alive and reachable after all heartbeats again, and keeps its lease.
    this.unquiesce(true);
    this.counters.leaderDownSignals++;
    this.leaderSuspected = true;
    if (campaignNow) this.electionElapsed = Math.max(this.electionElapsed, this.randomizedElectionTimeout - 1);
    return true;
  }

  /**
   * The link to `peer` came up (again): it may have restarted, and forgotten
   * who leads. A restarted learner, or any member that cannot campaign,
   * never reaches a quiesced leader by itself (it has no election to run and
   * no leader to poke), so a leader that counts `peer` wakes, and stops
   * quiescing until it answers: it heartbeats, rather than quiescing again
   * on `peer`'s word from before, until `peer` hears it. Check-quorum is not
   * touched (a link coming up never makes a leader step down). `peer` is no
   * longer suspected (see {@link peerDown}).
   * Returns whether this node leads a group `peer` belongs to.
   */
  peerUp(peer: NodeId): boolean {
    this.unsuspect(peer);
    this.reportedUp(peer);
    const pr = this.role === 'leader' && peer !== this.id ? this.progress.get(peer) : undefined;
    if (pr === undefined) return false;
    pr.awaitingContact = true;
    this.unquiesce(false);
    return true;
  }

  /**
   * The failure detector no longer suspects `peer` (it refuted a suspicion,
   * or came back): a leader that may have quiesced without it (see
   * {@link canQuiesce}) wakes if `peer` lacks part of its log, and heartbeats
   * until it has caught up; one it holds everything of stays quiesced.
   * Returns whether this node woke.
   */
  peerRecovered(peer: NodeId): boolean {
    this.reportedUp(peer);
    if (!this.unsuspect(peer) || this.role !== 'leader' || !this.isQuiesced) return false;
    const pr = this.progress.get(peer);
    if (pr === undefined || pr.match === this.log.lastIndex()) return false;
    this.unquiesce(false);
    return true;
  }

  /** Whether `m` leaves a quiesced node quiesced: its leader's quiesce heartbeat, or (to a leader) a quiesced follower's answer to it. */
  private keepsQuiesced(m: Message<T, S>): boolean {
    if (m.type === 'heartbeat') return m.quiesce === true && m.from === this.leader && m.term === this.term;
    if (m.type === 'heartbeat-resp') return m.quiesce === true && this.role === 'leader' && m.term === this.term;
    return false;
  }

  private tickElection(): void {
    this.electionElapsed++;
    const learnerCampaigns = this.learnerMayCampaign();
    if (!learnerCampaigns && this.promotable()) {
      if (this.electionElapsed >= this.randomizedElectionTimeout) {
        this.electionElapsed = 0;
        this.hup(false);
      }
      return;
    }
    // A learner that may campaign does so two election timeouts after a voter would, once two pokes of its leader
    // (below) went unanswered: a voter that can win wins first, and a learner that missed a quiesce heartbeat wakes
    // its leader before it wakes the group.
    if (learnerCampaigns && this.electionElapsed >= this.randomizedElectionTimeout + 2 * this.config.electionTicks) {
      this.electionElapsed = 0;
      this.counters.learnerCampaigns++;
      this.hup(false);
      return;
    }
    // A learner that missed its leader's quiesce heartbeat (and the commit it carried) has no election to wake
    // a quiesced leader with: once per election timeout without a word from it, it pokes it, and the leader
    // heartbeats the commit again. `electionElapsed` keeps counting: it also bounds the leader's lease here.
    if (this.leader !== null && this.leader !== this.id && this.electionElapsed % this.randomizedElectionTimeout === 0) {
      this.send(this.markRecovering<HeartbeatResponse>({ type: 'heartbeat-resp', from: this.id, to: this.leader, term: this.term }));
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.config.electionTicks) {
      this.electionElapsed = 0;
      if (this.awaitingRemovalAck) {
        // No voter said it knows: hand over on the timeout-now's commit alone, as before the wait (an older
        // broker's voters never say; a group whose voters are all cut off would otherwise keep this lease for ever).
        // Before check-quorum: with the voters' answers lost, it would step down mute, and they would wait out an
        // election timeout more.
        this.counters.removalsUnacknowledged++;
        this.stepDownRemoved();
        return;
      }
      if (this.config.checkQuorum) {
        const active = quorumActive(this.voters, (id) => id === this.id || (this.progress.get(id) as Progress).recentActive);
        if (!active) {
          this.counters.checkQuorumStepDowns++;
          this.becomeFollower(this.term, null);
          return;
        }
        for (const [id, pr] of this.progress) if (id !== this.id) pr.recentActive = false;
      }
      if (this.transferee !== null) {
        this.counters.transfersAborted++;
        this.transferee = null;
      }
    }
    if (this.heartbeatElapsed >= this.config.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      const quiesce = this.canQuiesce();
      this.bcastHeartbeat(quiesce);
      if (quiesce) this.quiesce();
    }
  }

  /** Starts an election now (pre-vote first, if enabled), unless leader. */
  campaign(): void {
    this.hup(false);
  }

  private hup(transfer: boolean): void {
    if (this.role === 'leader' || !this.promotable()) return;
    // A learner campaigns with pre-vote only (see learnerMayCampaign): a timeout-now, from a leader whose log makes
    // it a voter where its own does not, must not raise terms past the voters' leases.
    if (transfer && this.learners.includes(this.id)) return;
    this.unquiesce(false);
    this.electionElapsed = 0;
    if (this.config.preVote && !transfer) this.runCampaign('pre-vote', false);
    else this.runCampaign('vote', transfer);
  }

  private runCampaign(type: 'vote' | 'pre-vote', transfer: boolean): void {
    let term: number;
    if (type === 'pre-vote') {
      this.becomePreCandidate();
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      term = this.term;
    }
    this.electionGuard = this.electionGuardOf();
    // A recovering node may campaign (its log may be the longest), but its own vote is only a would-grant.
    if (this.poll(this.id, this.isRecovering ? 'would-grant' : true) === 'won') {
      // A single-voter cluster.
      if (type === 'pre-vote') this.runCampaign('vote', false);
      else {
        this.becomeLeader();
        this.bcastAppend();
      }
      return;
    }
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    const guard = this.electionGuard;
    if (guard === undefined) {
      for (const id of this.voters) {
        if (id === this.id) continue;
        this.send({ type, from: this.id, to: id, term, lastIndex, lastTerm, transfer });
      }
      return;
    }
    // The removed voter and the learners are asked too: their answers count in the configurations one voter away only.
    const asked = new Set([...this.voters, ...(guard.previous ?? []), ...this.learners]);
    asked.delete(this.id);
    const removal = guard.removal;
    for (const id of asked) {
      if (removal === undefined) this.send({ type, from: this.id, to: id, term, lastIndex, lastTerm, transfer });
      else this.send({ type, from: this.id, to: id, term, lastIndex, lastTerm, transfer, confIndex: removal.index, confTerm: removal.term });
    }
  }

  /**
   * The guard on this node's election, if its configuration has at most two voters: supporters (a would-grant among
   * them) then elect only with a win in each configuration one voter away that may have committed an entry this node
   * lacks — all of two supporters share only one voter with a quorum of such a configuration of three, and that one
   * may be the one that lost the entry in a power cut (docs/raft.md, "Two voters beside three"). A plain quorum of
   * this configuration still elects alone. Those configurations:
   *
   * - the previous one, if the latest change removed a voter and is above this node's commit: a committed removal
   *   needs no guard (every entry committed under the previous configuration lies below it and is held by whoever
   *   holds it: log matching, leader completeness), so none once a voter attests it (see {@link attestCommitted}). A
   *   later configuration entry means it committed (one change at a time), so only the last one matters;
   * - each learner promoted: a leader may have committed entries under it with the learner, in a log this node lacks
   *   (a learner it lacks the addition of is not one: the addition, committed under this configuration, is held by
   *   every voter that can support this node).
   */
  private electionGuardOf(): ElectionGuard | undefined {
    const conf = this.conf;
    const voters = conf.conf.voters;
    if (voters.length > 2 || this.knobs.skipElectionGuard) return undefined;
    let previous: readonly NodeId[] | undefined;
    let removal: ElectionGuard['removal'];
    if (conf.index > this.log.committed) {
      const before = this.log.previousConf();
      if (before !== undefined && before.conf.voters.length > voters.length) {
        previous = before.conf.voters;
        // Above the commit, hence in the log (0, which no entry has, only if a test knob kept a truncated configuration).
        removal = { index: conf.index, term: this.log.term(conf.index) ?? 0 };
      }
    }
    if (previous === undefined && this.learners.length === 0) return undefined;
    return { previous, removal, promotions: this.learners.map((id) => [...voters, id]) };
  }

  /** The configurations one voter away that `guard` names. */
  private static neighbours(guard: ElectionGuard): readonly (readonly NodeId[])[] {
    return guard.previous === undefined ? guard.promotions : [guard.previous, ...guard.promotions];
  }

  private isSuspected(peer: NodeId): boolean {
    return this.suspectedPeers?.has(peer) === true;
  }

  /** The failure detector says `peer` is up again: its quiesce heartbeats quiesce this node again (see {@link reportedDown}). */
  private reportedUp(peer: NodeId): void {
    if (this.reportedDown?.delete(peer) === true && this.reportedDown.size === 0) this.reportedDown = undefined;
  }

  /** `peer` is no longer suspected; returns whether it was. */
  private unsuspect(peer: NodeId): boolean {
    if (this.suspectedPeers?.delete(peer) !== true) return false;
    if (this.suspectedPeers.size === 0) this.suspectedPeers = undefined;
    return true;
  }

  private poll(id: NodeId, granted: VoteAnswer): ReturnType<typeof voteOutcome> {
    const votes = (this.votes ??= new Map());
    if (!votes.has(id)) votes.set(id, granted);
    const guard = this.electionGuard;
    return guard === undefined ? voteOutcome(this.voters, votes) : guardedVoteOutcome(this.voters, Raft.neighbours(guard), votes);
  }

  step(m: Message<T, S>): void {
    if (m.to !== this.id || m.from === this.id || !this.acceptsFrom(m)) {
      this.counters.messagesIgnored++;
      return;
    }
    // Heard from: no longer suspected (a leader waits for it again before quiescing).
    this.unsuspect(m.from);
    if (m.type === 'vote-resp' || m.type === 'pre-vote-resp') this.learnCommitted(m);
    if (this.isQuiesced && !this.keepsQuiesced(m)) this.unquiesce(m.from !== this.leader);
    if (m.term > this.term) {
      if (m.type === 'vote' || m.type === 'pre-vote') {
        const inLease = this.config.checkQuorum && this.leader !== null && !this.leaderSuspected && this.electionElapsed < this.config.electionTicks;
        if (inLease && !m.transfer) {
          // We heard from a leader recently: the candidate is the one cut off.
          this.counters.votesIgnoredInLease++;
          return;
        }
      }
      if (m.type === 'pre-vote') {
        // A pre-vote never changes our term.
      } else if (m.type === 'pre-vote-resp' && supports(m)) {
        // A granted (or would-grant) pre-vote carries the term we would campaign in; we move to it only by campaigning.
      } else if (m.type === 'app' || m.type === 'heartbeat' || m.type === 'snapshot') {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, null);
      }
    } else if (m.term < this.term) {
      this.counters.staleMessages++;
      // Whether our own vote requests will tell the sender our term: we campaign, and to it.
      const campaignsTo = this.isVoter(m.from) && this.promotable();
      const silent = !this.config.checkQuorum && !this.config.preVote && campaignsTo;
      if (!silent && (m.type === 'app' || m.type === 'heartbeat')) {
        // A leader from an older term (cut off, or paused): tell it our term so
        // it steps down instead of waiting forever; with pre-vote we would
        // otherwise never raise our term to its notice. Without pre-vote and
        // check-quorum our vote requests do, but only to the voters of our
        // configuration: a leader outside it (we lag behind the entry that
        // made it a voter) hears our term from this answer.
        this.send({ type: 'app-resp', from: this.id, to: m.from, term: this.term, index: 0, reject: false, hintIndex: 0, hintTerm: 0 });
      } else if (m.type === 'pre-vote') {
        // Let a lagging pre-candidate learn our term.
        this.send({ type: 'pre-vote-resp', from: this.id, to: m.from, term: this.term, reject: true });
      } else if (m.type === 'vote' && !campaignsTo) {
        // A lagging candidate learns our term from our own vote requests, if we campaign and it is one of
        // our voters; otherwise (we are a learner, or we lag behind the entry that made it a voter, or it
        // lags behind its removal) it would never hear of it, and campaign below our term for ever.
        this.send({ type: 'vote-resp', from: this.id, to: m.from, term: this.term, reject: true });
      }
      return;
    }

    if (m.type === 'vote' || m.type === 'pre-vote') {
      this.handleVoteRequest(m);
      return;
    }
    this.stepRole(m);
    if ((m.type === 'app' || m.type === 'heartbeat' || m.type === 'snapshot') && this.role === 'follower' && this.leader === m.from) {
      this.lastLeaderContact = { leader: m.from, at: this.now };
      this.endRecoveryIfCaughtUp();
    }
  }

  /**
   * A recovering node stops recovering once its commit reaches an entry of its term's leader, in a term above the one
   * it started in: it then holds that leader's log up to there, which holds every entry committed before that term
   * (leader completeness), and every acknowledgement it sent before its power cut was of a term up to the one stored
   * at its start (a term is durable before any message of it leaves). A leader of its start term is not enough: the
   * entries it acknowledged to it may lie beyond any commit it reached since.
   */
  private endRecoveryIfCaughtUp(): void {
    if (!this.isRecovering || this.term <= this.startTerm) return;
    const committed = this.log.committed;
    if (committed === 0 || this.log.term(committed) !== this.term) return;
    this.isRecovering = false;
    this.counters.recoveriesEnded++;
  }

  /**
   * Whom a message is taken from.
   *
   * Vote requests: from members of this node's configuration, and from
   * others only when the candidate's log is at least as up to date as ours.
   * A node removed without learning of it keeps campaigning; its log lacks
   * the committed entry that removed it, which every member that knows of
   * the removal holds, so it is always behind them and cannot even raise
   * their term. A candidate this node does not know as a member yet (it lags
   * behind the entry that made the candidate a voter) is ahead of it, and is
   * heard: a lagging voter must be able to elect the voters it has not heard
   * of, or a group whose voters mostly lag could never elect anyone. (A
   * learner is a member: it may have been added back after a removal with a
   * term raised by its campaigns, which, without pre-vote and check-quorum,
   * only its vote requests make known.)
   *
   * A leader's appends and snapshots: from anyone. A leader this node does
   * not know as a member yet must still be able to bring it up to date — the
   * term decides, as ever. Heartbeats and timeout-now (which carry no log)
   * and answers: from members, or from the leader this node follows.
   */
  private acceptsFrom(m: Message<T, S>): boolean {
    switch (m.type) {
      case 'vote':
      case 'pre-vote':
        return this.isMember(m.from) || this.log.isUpToDate(m.lastIndex, m.lastTerm);
      case 'app':
      case 'snapshot':
        return true;
      case 'heartbeat':
      case 'timeout-now':
        return this.isMember(m.from) || this.leader === m.from;
      case 'vote-resp':
      case 'pre-vote-resp':
        // The removed voter a guarded election asked beside its configuration's (see electionGuardOf).
        return this.isMember(m.from) || this.electionGuard?.previous?.includes(m.from) === true;
      default:
        return this.isMember(m.from);
    }
  }

  private handleVoteRequest(m: VoteRequest): void {
    const respType = m.type === 'vote' ? 'vote-resp' : 'pre-vote-resp';
    const attestation = this.attestCommitted(m);
    let canVote =
      this.vote === m.from ||
      (this.vote === null && this.leader === null) ||
      (m.type === 'pre-vote' && m.term > this.term);
    if (this.knobs.grantTwoVotesPerTerm && m.type === 'vote' && this.role === 'follower') canVote = true;
    const upToDate = this.knobs.skipLogUpToDateCheck || this.log.isUpToDate(m.lastIndex, m.lastTerm);
    if (canVote && upToDate) {
      // A recovering node grants nothing, but says it would have: the candidate counts it toward ⌊n/2⌋ + 2
      // supporters (quorum.ts). A real vote is recorded all the same (persisted before the answer leaves), so it
      // never supports two candidates of one term.
      if (this.isRecovering) {
        this.send({ type: respType, from: this.id, to: m.from, term: m.term, reject: true, recovering: true, wouldGrant: true, ...attestation });
        this.counters.votesWithheld++;
      } else this.send({ type: respType, from: this.id, to: m.from, term: m.term, reject: false, ...attestation });
      if (m.type === 'vote') {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else if (this.isRecovering) {
      this.send({ type: respType, from: this.id, to: m.from, term: this.term, reject: true, recovering: true, ...attestation });
    } else {
      this.send({ type: respType, from: this.id, to: m.from, term: this.term, reject: true, ...attestation });
    }
  }

  /**
   * To a guarded election's request (`VoteRequest.confIndex`): an entry this node knows committed that tells the
   * candidate its removal is committed, if its log holds it (see `VoteResponse.committedIndex`). None when the
   * commit is below the removal, or when this log holds another entry there (the removal conflicts with a committed
   * entry).
   */
  private attestCommitted(m: VoteRequest): { committedIndex: number; committedTerm: number } | undefined {
    const { confIndex, confTerm } = m;
    const committed = this.log.committed;
    if (confIndex === undefined || confTerm === undefined || confIndex > committed) return undefined;
    const term = this.log.term(confIndex);
    if (term !== undefined) return term === confTerm ? { committedIndex: confIndex, committedTerm: confTerm } : undefined;
    // Compacted past it: the entry at the commit, which a candidate holds only with the committed log up to there.
    const committedTerm = this.log.term(committed);
    return committedTerm === undefined ? undefined : { committedIndex: committed, committedTerm };
  }

  private stepFollower(m: Message<T, S>): void {
    switch (m.type) {
      case 'app':
        this.electionElapsed = 0;
        this.leader = m.from;
        this.leaderSuspected = false;
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.electionElapsed = 0;
        this.leader = m.from;
        this.leaderSuspected = false;
        this.handleHeartbeat(m);
        return;
      case 'snapshot':
        this.electionElapsed = 0;
        this.leader = m.from;
        this.leaderSuspected = false;
        this.handleSnapshot(m);
        return;
      case 'timeout-now': {
        // The leader hands over: campaign at once, skipping pre-vote and leases. Its commit first (TimeoutNowMessage.commit):
        // an entry of its log that this log holds with the same term has the same log before it (log matching).
        this.commitIfHeld(m.commit, m.commitTerm);
        this.hup(true);
        return;
      }
      default:
        this.counters.messagesIgnored++;
    }
  }

  private stepCandidate(m: Message<T, S>): void {
    switch (m.type) {
      case 'app':
        this.becomeFollower(m.term, m.from);
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case 'snapshot':
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case 'vote-resp':
      case 'pre-vote-resp': {
        const expected = this.role === 'pre-candidate' ? 'pre-vote-resp' : 'vote-resp';
        if (m.type !== expected) break;
        // A granted (or would-grant) pre-vote is for term + 1; anything else is left over from an earlier round.
        if (m.type === 'pre-vote-resp' && supports(m) && m.term !== this.term + 1) break;
        this.decide(this.poll(m.from, m.reject ? (m.wouldGrant === true ? 'would-grant' : false) : true));
        return;
      }
      default:
        break;
    }
    this.counters.messagesIgnored++;
  }

  /** Acts on a (pre-)election's outcome: campaigns for real after a pre-vote, leads, or gives up. */
  private decide(outcome: ReturnType<typeof voteOutcome>): void {
    if (outcome === 'won') {
      if (this.role === 'pre-candidate') this.runCampaign('vote', false);
      else {
        this.becomeLeader();
        this.bcastAppend();
      }
    } else if (outcome === 'lost') {
      this.becomeFollower(this.term, null);
    }
  }

  /**
   * A vote answer's attestation (`VoteResponse.committedIndex`): the entry it names is committed, so if this log holds
   * it, this log up to there is the committed one (log matching) and this node commits it — whatever the answer's
   * term (a refusal carries the voter's, often below a pre-candidate's). Only in a guarded election, the one kind that
   * asks for it. If its removal is now committed the guard goes, and the answers already in may win it.
   */
  private learnCommitted(m: VoteResponse): void {
    const index = m.committedIndex;
    const guard = this.electionGuard;
    if (guard?.removal === undefined || !this.commitIfHeld(index, m.committedTerm)) return;
    if (guard.removal.index > (index as number)) return;
    this.electionGuard = guard.promotions.length === 0 ? undefined : { previous: undefined, removal: undefined, promotions: guard.promotions };
    if ((this.role === 'candidate' || this.role === 'pre-candidate') && this.votes !== undefined) this.decide(this.poll(this.id, this.isRecovering ? 'would-grant' : true));
  }

  /**
   * Commits up to `index`, an entry another node knows committed, if this log holds it with `term` and has not
   * committed it yet: the log before it is then the same (log matching). Returns whether it committed.
   */
  private commitIfHeld(index: number | undefined, term: number | undefined): boolean {
    if (index === undefined || index <= this.log.committed || index > this.log.lastIndex() || this.log.term(index) !== term) return false;
    this.log.commitTo(index);
    return true;
  }

  private stepLeader(m: Message<T, S>): void {
    switch (m.type) {
      case 'app-resp': {
        const pr = this.progress.get(m.from);
        if (pr !== undefined) this.handleAppendResponse(m, pr);
        return;
      }
      case 'heartbeat-resp': {
        const pr = this.progress.get(m.from);
        if (pr === undefined) return;
        pr.recentActive = true;
        pr.awaitingContact = false;
        pr.lastContactTick = this.now;
        pr.lastHeardTick = this.now;
        pr.probeSent = false;
        if (this.awaitingRemovalAck && this.isVoter(m.from) && m.commit !== undefined && m.commit >= this.conf.index) {
          this.stepDownRemoved(m.from);
          return;
        }
        if (this.noteRecovering(m, pr)) return;
        // A full window may be waiting for acknowledgements of lost appends:
        // free one slot so the stream moves (a rejection then rewinds it).
        if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirstOne();
        // A follower that answers heartbeats an election timeout after its snapshot was sent, and never
        // answered the snapshot, did not get it (lost, or it restarted): without this the leader would wait
        // for that answer forever (snapshot state sends nothing) and the follower would never catch up.
        if (pr.state === 'snapshot' && this.now - pr.snapshotSentTick >= this.config.electionTicks) {
          this.counters.snapshotsRetried++;
          pr.pendingSnapshot = 0;
          pr.becomeProbe();
        }
        if (pr.match < this.log.lastIndex()) this.sendAppend(m.from);
        else if ((this.config.unsyncedAcks || m.unsynced === true) && pr.state === 'replicate' && pr.match > this.log.committed) this.sendMatchCheck(m.from, pr.match);
        return;
      }
      default:
        // Votes after winning, and messages of another leader of this term
        // (impossible while election safety holds).
        this.counters.messagesIgnored++;
    }
  }

  // ---- follower handlers ----------------------------------------------------

  private handleAppend(m: AppendMessage<T>): void {
    // A commit carrier (see `AppendMessage.commitOnly`) is answered only when rejected.
    const answer = m.commitOnly !== true || m.entries.length > 0;
    if (m.prevIndex < this.log.committed) {
      if (answer) this.sendAppendResponse(m.from, this.log.committed);
      return;
    }
    const lastNew = this.log.maybeAppend(m.prevIndex, m.prevTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      // The leader's log in its term only grows: what matched it stays matched.
      this.matchedIndex = Math.max(this.matchedIndex, lastNew);
      this.syncConf();
      if (answer) this.sendAppendResponse(m.from, lastNew);
      return;
    }
    const hint = this.log.findConflictByTerm(Math.min(m.prevIndex, this.log.lastIndex()), m.prevTerm);
    const rejection: AppendResponse = { type: 'app-resp', from: this.id, to: m.from, term: this.term, index: m.prevIndex, reject: true, hintIndex: hint.index, hintTerm: hint.term };
    this.send(this.markRecovering(this.mayLackAcknowledged() ? { ...rejection, unsynced: true } : rejection));
  }

  /** Marks a rejection or heartbeat answer of a recovering follower (see `HeartbeatResponse.recovering`). */
  private markRecovering<M extends AppendResponse | HeartbeatResponse>(answer: M): M {
    return this.isRecovering ? { ...answer, recovering: true, startTerm: this.startTerm } : answer;
  }

  private sendAppendResponse(to: NodeId, index: number): void {
    this.send({ type: 'app-resp', from: this.id, to, term: this.term, index, reject: false, hintIndex: 0, hintTerm: 0 });
  }

  private handleHeartbeat(m: HeartbeatMessage): void {
    // The heartbeat's commit is at most the leader's match for this node, which may count acknowledgements of entries
    // this log lost. Lost entries may also have been an overwrite: a record file that lost it gives back the older
    // entries it replaced, at the same indexes. So a log that may lack what it acknowledged commits on a heartbeat's
    // word only what it holds as the leader's (its commit, or what an append of this term matched), and reports the
    // rest; the appends that follow commit what they verify. Without that, it would apply the older entries as committed.
    const held = Math.max(this.log.committed, Math.min(this.matchedIndex, this.log.lastIndex()));
    if (m.commit > held && this.mayLackAcknowledged()) this.reportLostEntries(m.from, m.commit);
    else this.log.commitTo(m.commit);
    // Quiesce only holding exactly the leader's committed log; otherwise the unmarked answer wakes the leader.
    if (m.quiesce === true && this.config.quiesce && this.reportedDown?.has(m.from) !== true && this.log.lastIndex() === m.commit && this.log.committed === m.commit) {
      if (!this.isQuiesced) this.quiesce();
      this.sendHeartbeatResponse({ type: 'heartbeat-resp', from: this.id, to: m.from, term: this.term, quiesce: true });
      return;
    }
    const answer: HeartbeatResponse = { type: 'heartbeat-resp', from: this.id, to: m.from, term: this.term };
    // A leader outside our configuration removed itself: it hands over once a voter says it knows the removal committed.
    this.sendHeartbeatResponse(this.isVoter(m.from) ? answer : { ...answer, commit: this.log.committed });
  }

  private sendHeartbeatResponse(answer: HeartbeatResponse): void {
    this.send(this.markRecovering(this.mayLackAcknowledged() ? { ...answer, unsynced: true } : answer));
  }

  /**
   * Whether this node's log may end below entries it acknowledged to the
   * leader of its term: under `unsyncedAcks`, or in the term it started in
   * after a run that may have had it (`unsyncedAcksBeforeStart`). A leader
   * of a later term counts only answers of its own term, all sent by this
   * run; under `always` their entries are durable.
   */
  private mayLackAcknowledged(): boolean {
    return this.config.unsyncedAcks || (this.config.unsyncedAcksBeforeStart && this.term === this.startTerm);
  }

  /**
   * The leader's match for this follower (the heartbeat's `commit`) is beyond
   * its last index, or beyond what it holds as the leader's (see
   * {@link handleHeartbeat}): it may have lost entries it acknowledged, which
   * storage that acknowledges before its fsync may do
   * (`RaftConfig.unsyncedAcks`). What it holds after its commit is not known
   * to be the leader's (a lost write may have been an overwrite), so nothing
   * more is committed on this word: the leader is told to probe again from
   * this follower's commit, and the appends that follow commit what they
   * verify.
   */
  private reportLostEntries(leader: NodeId, commit: number): void {
    // Counted when the loss is certain (the commit is beyond the log); else it only cannot vouch for its entries (a restart).
    if (commit > this.log.lastIndex()) this.counters.lostEntriesReported++;
    this.send(this.markRecovering<AppendResponse>({ type: 'app-resp', from: this.id, to: leader, term: this.term, index: commit, reject: true, hintIndex: this.log.committed, hintTerm: 0, lost: true }));
  }

  private handleSnapshot(m: SnapshotMessage<S>): void {
    if (this.restore(m.snapshot)) {
      this.syncConf();
      this.counters.snapshotsInstalled++;
      this.sendAppendResponse(m.from, this.log.lastIndex());
    } else {
      // Stale (already committed here) or fast-forwarded (we held its last entry): report our commit.
      this.sendAppendResponse(m.from, this.log.committed);
    }
  }

  /** Installs `snapshot` unless it is stale; returns whether the log was replaced. */
  private restore(snapshot: SnapshotMessage<S>['snapshot']): boolean {
    const { index, term, conf } = snapshot.meta;
    if (index <= this.log.committed) return false;
    // A snapshot whose configuration lacks this node is installed all the same: a node added after the
    // snapshot was taken learns of its own membership from the entries that follow it.
    void conf;
    if (this.log.matchTerm(index, term)) {
      // We hold the snapshot's last entry: everything up to it is committed; keep the log.
      this.log.commitTo(index);
      return false;
    }
    this.log.restore(snapshot);
    return true;
  }

  // ---- leader ---------------------------------------------------------------

  private handleAppendResponse(m: AppendResponse, pr: Progress): void {
    pr.recentActive = true;
    pr.awaitingContact = false;
    pr.lastContactTick = this.now;
    pr.lastHeardTick = this.now;
    // Only rejections carry the mark (acceptances keep their one shape); the heartbeat answers carry it always.
    if (m.reject && this.noteRecovering(m, pr)) return;
    if (m.reject && (m.lost === true || ((this.config.unsyncedAcks || m.unsynced === true) && m.index <= pr.match))) {
      // It lost entries it acknowledged (`RaftConfig.unsyncedAcks`): it said so (`lost`, with its commit, which
      // matches ours), or it lacks an entry at or below its match, unless that rejection is stale. Taken as stale
      // (below), it would leave the match counted and the probe at the lost entry, rejected again at once, for as long
      // as no heartbeat's commit exceeds the follower's log (a leader whose commit waits for that follower: a
      // ping-pong and no commit). The match drops to the follower's hint when our entry there has its term (log
      // matching: the logs agree up to it), else to nothing; a stale rejection only costs a probe.
      const held = m.lost === true || (m.hintTerm > 0 && this.log.term(m.hintIndex) === m.hintTerm) ? m.hintIndex : 0;
      if (pr.lost(held)) this.sendAppend(m.from);
      return;
    }
    if (m.reject) {
      let nextProbe = m.hintIndex;
      if (m.hintTerm > 0) {
        // Skip every entry of ours above the follower's hint whose term is
        // higher than the follower's: none of them can match.
        nextProbe = this.log.findConflictByTerm(m.hintIndex, m.hintTerm).index;
      }
      if (pr.maybeDecrTo(m.index, nextProbe)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(m.from);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index) && !(pr.match === m.index && pr.state === 'probe')) return;
    if (pr.state === 'probe') {
      pr.becomeReplicate();
    } else if (pr.state === 'snapshot') {
      if (pr.match + 1 >= this.log.firstIndex()) {
        // Caught up through the snapshot (or otherwise): stream again.
        pr.becomeProbe();
        pr.becomeReplicate();
      }
    } else {
      pr.inflights.freeLE(m.index);
    }
    if (this.maybeCommit()) {
      if (this.role !== 'leader') return; // a committed change removed this leader
      this.bcastAppend(true);
    } else if (wasPaused) {
      this.sendAppend(m.from);
    }
    // Fill the window; bounded by the inflight capacity (each send adds one).
    for (let i = 0; i < this.config.maxInflightAppends; i++) {
      if (!this.maybeSendAppend(m.from, false)) break;
    }
    if (m.from === this.transferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
  }

  /**
   * Records whether the follower that answered is recovering, and returns whether this leader started an election
   * because of it. A follower recovering since a term up to this leader's (its term is this leader's, so its start
   * term is this one) cannot stop recovering under this leader: only a leader of a later term can end it (see
   * {@link endRecoveryIfCaughtUp}), and while it lasts every election of the group needs more supporters. So this
   * leader campaigns at once in the next term (a transfer to itself: leases do not block it, and its log is up to
   * date, so it wins as soon as its supporters answer) — but only if the voters it heard from within an election
   * timeout would elect it, or it would leave a working group leaderless. Once per term at most: it is no longer leader
   * of this term afterwards.
   *
   * A learner too: its acknowledgements count once it is promoted (this leader counts its match from the promote's
   * append on, and that match may be one it lost) and, before, in a guarded election's promoting configuration; this
   * leader cannot tell a match it lost from one it holds (a delayed answer sent before the cut raises it again), and a
   * leader of a later term counts only answers of its own term. Before, a learner restarted under the leader of its
   * start term stayed recovering until some other election.
   */
  private noteRecovering(m: AppendResponse | HeartbeatResponse, pr: Progress): boolean {
    pr.recovering = m.recovering === true;
    if (!pr.recovering || (m.startTerm ?? 0) < this.term || !this.isMember(m.from) || !this.isVoter(this.id)) return false;
    // Handing over already: the transferee's term ends the recovery; campaigning too would split the vote with it (its
    // timeout-now may be on its way). An aborted transfer leaves the next answer to start the election.
    if (this.transferee !== null) return false;
    // A guarded election needs answers this leader does not hear (a removed voter's), or that of learners too.
    const guard = this.electionGuardOf();
    const votes = new Map<NodeId, VoteAnswer>();
    for (const id of guard === undefined ? this.voters : this.members()) {
      const other = this.progress.get(id);
      if (id === this.id) votes.set(id, this.isRecovering ? 'would-grant' : true);
      // Heard from within an election timeout (recentActive never lapses without check-quorum), and not suspected down.
      else if (other !== undefined && !this.isSuspected(id) && this.now - other.lastHeardTick < this.config.electionTicks) votes.set(id, other.recovering ? 'would-grant' : true);
    }
    if ((guard === undefined ? voteOutcome(this.voters, votes) : guardedVoteOutcome(this.voters, Raft.neighbours(guard), votes)) !== 'won') return false;
    this.counters.recoveryElections++;
    this.becomeFollower(this.term, null);
    this.runCampaign('vote', true);
    return true;
  }

  /**
   * Commits the highest index a quorum of the voters in effect holds, if it
   * is of this term (older ones follow indirectly). A leader removing itself
   * is not among those voters: it manages a configuration it is no longer
   * part of until the change commits, then steps down.
   */
  private maybeCommit(): boolean {
    const index = majorityIndex(this.voters, (id) => this.progress.get(id)?.match);
    if (index <= this.log.committed) return false;
    if (!this.knobs.commitEarlierTermByCounting && this.log.term(index) !== this.term) return false;
    this.log.commitTo(index);
    this.endRecoveryIfCaughtUp();
    if (!this.isVoter(this.id) && this.log.committed >= this.conf.index) {
      // A learner elected hands over at once: it stays a member, and answers a guarded election as every member does.
      if (this.learners.includes(this.id)) this.stepDownRemoved();
      else this.awaitRemovalAck();
    }
    return true;
  }

  /**
   * The change that removed this leader committed. Its replica goes away once it stepped down (a replica move's last
   * step, a broker's decommission), and if no voter left knows that the removal committed, a group of one or two
   * voters with one recovering can elect only with the removed voter's answer (docs/raft.md, "Two voters beside
   * three"). The appends and the `timeout-now` that carry the commit may all be lost; so it goes on leading (refusing
   * proposals, not quiescing) and heartbeating, each heartbeat carrying the commit, until a voter answers with its
   * commit at or past the removal (`HeartbeatResponse.commit`; durable, since a commit passing a configuration entry
   * is fsynced before the answer leaves), then hands over. Bounded: after an election timeout it hands over anyway.
   */
  private awaitRemovalAck(): void {
    if (this.awaitingRemovalAck) return;
    this.awaitingRemovalAck = true;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.bcastHeartbeat();
  }

  /**
   * The change that removed this leader is committed (or, a learner elected, its no-op is: see
   * {@link learnerMayCampaign}): it tells the followers so (the commit index rides on the appends), hands over to a
   * voter that holds its whole log (timeout-now, so the cluster need not wait for an election timeout), and steps
   * down. A removed node never campaigns again, not being a voter; a learner, only once its log is ahead again.
   */
  private stepDownRemoved(acknowledged?: NodeId): void {
    this.bcastAppend();
    const lastIndex = this.log.lastIndex();
    const holds = (id: NodeId): boolean => (this.progress.get(id)?.match ?? 0) === lastIndex;
    // The voter that acknowledged the commit first: it holds the removal, and its answer just came.
    const successor = acknowledged !== undefined && holds(acknowledged) ? acknowledged : this.voters.find(holds);
    if (successor !== undefined) this.sendTimeoutNow(successor);
    if (!this.learners.includes(this.id)) this.counters.removedStepDowns++;
    this.becomeFollower(this.term, null);
  }

  private sendAppend(to: NodeId, commitCarrier = false): void {
    this.maybeSendAppend(to, true, commitCarrier);
  }

  /**
   * Sends `to` the entries after its `next`, or a snapshot when they were
   * compacted. Returns whether something was sent. `sendIfEmpty` sends an
   * empty append (a probe, or to carry the commit index); `commitCarrier`:
   * it is sent because the commit index advanced (see below).
   */
  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean, commitCarrier = false): boolean {
    const pr = this.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    const entries = prevTerm === undefined ? undefined : this.log.entriesFrom(pr.next, this.config.maxEntriesPerAppend);
    if (prevTerm === undefined || entries === undefined) {
      // The follower needs compacted entries: send the snapshot, to a follower that is listening.
      if (!pr.recentActive) return false;
      const snapshot = this.log.snapshot();
      if (snapshot === undefined) throw new RaftInvariantError(`entries from ${pr.next} are compacted but there is no snapshot`);
      this.send({ type: 'snapshot', from: this.id, to, term: this.term, snapshot });
      pr.becomeSnapshot(snapshot.meta.index, this.now);
      this.counters.snapshotsSent++;
      return true;
    }
    if (entries.length === 0 && !sendIfEmpty) return false;
    const commit = this.commitToAnnounce();
    // Nothing to send to a follower that acknowledged everything: only the commit index, which needs no answer.
    // Nor, when the commit index advanced, to one whose entries are still in flight: it answers their append
    // (an answer to this too cost every awaited publish one more message and leader wake-up, measured), and
    // rejects this, answered, if it lacks them. Other empty appends to it (after a heartbeat answer, when its
    // answer may have been lost) are answered, so the leader learns its match.
    if (entries.length === 0 && pr.state === 'replicate' && (pr.match === prevIndex || commitCarrier)) {
      this.send({ type: 'app', from: this.id, to, term: this.term, prevIndex, prevTerm, entries, commit, commitOnly: true });
    } else this.send({ type: 'app', from: this.id, to, term: this.term, prevIndex, prevTerm, entries, commit });
    pr.sentEntries(entries.length, prevIndex + entries.length);
    return true;
  }

  /**
   * The commit index this leader's appends and heartbeats carry. They may
   * leave before its own write (see the runner), so they must not announce
   * as committed what that write covers. With other voters that cannot
   * happen: their acknowledgements come after the write. A sole voter
   * commits its entries as it appends them: its learners hear of it once
   * they are durable here.
   */
  private commitToAnnounce(): number {
    const committed = this.log.committed;
    return this.voters.length === 1 && this.voters[0] === this.id ? Math.min(committed, this.log.lastStableIndex()) : committed;
  }

  private bcastAppend(commitCarrier = false): void {
    for (const id of this.progress.keys()) if (id !== this.id) this.sendAppend(id, commitCarrier);
  }

  private bcastHeartbeat(quiesce = false): void {
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      // Never tell a follower to commit beyond what it is known to hold.
      const commit = Math.min(pr.match, this.commitToAnnounce());
      if (quiesce) this.send({ type: 'heartbeat', from: this.id, to: id, term: this.term, commit, quiesce: true });
      else this.send({ type: 'heartbeat', from: this.id, to: id, term: this.term, commit });
      // A snapshot unanswered for an election timeout may be lost, to a follower that ignores our heartbeats too (its
      // configuration, behind ours, does not name us): only the probe's append reaches it, and its answer resends it.
      const snapshotLost = pr.state === 'snapshot' && this.now - pr.snapshotSentTick >= this.config.electionTicks;
      if ((pr.state !== 'snapshot' || snapshotLost) && this.now - pr.lastContactTick >= this.config.electionTicks && (pr.isPaused() || pr.match < this.log.lastIndex())) {
        if (snapshotLost) this.counters.snapshotsRetried++;
        this.sendContactProbe(id, pr);
      }
    }
  }

  /**
   * A follower behind us has not answered anything for an election timeout.
   * It may be down; or it may ignore our heartbeats (which are what unpauses
   * a stream whose append was lost, and marks a follower active enough to be
   * sent a snapshot) because it lags behind the entry that made this leader a
   * member, and does not know it. Only an append reaches such a follower, so
   * probe it with an empty one, at the compaction boundary if its next entry
   * was compacted; its answer, accept or reject, gets the stream going.
   */
  private sendContactProbe(to: NodeId, pr: Progress): void {
    pr.lastContactTick = this.now;
    pr.becomeProbe();
    let prevIndex = pr.next - 1;
    let prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined) {
      prevIndex = this.log.firstIndex() - 1;
      prevTerm = this.log.term(prevIndex) as number;
    }
    this.send({ type: 'app', from: this.id, to, term: this.term, prevIndex, prevTerm, entries: [], commit: Math.min(pr.match, this.commitToAnnounce()) });
    pr.probeSent = true;
  }

  /**
   * Under `RaftConfig.unsyncedAcks`: asks a follower whether it still holds
   * `match`, the leader's last entry, which it acknowledged and which is not
   * committed, so that no heartbeat (whose commit is at most the commit)
   * would tell it if it lost the entry, and with nothing new to send no
   * append would either, while the leader counts it (with five voters, a
   * commit may count it). An empty append at `match`, answered: a rejection
   * is taken as the loss it is (see {@link handleAppendResponse}); an
   * acceptance changes nothing.
   */
  private sendMatchCheck(to: NodeId, match: number): void {
    const prevTerm = this.log.term(match);
    if (prevTerm === undefined) return;
    this.send({ type: 'app', from: this.id, to, term: this.term, prevIndex: match, prevTerm, entries: [], commit: Math.min(match, this.commitToAnnounce()) });
  }

  private sendTimeoutNow(to: NodeId): void {
    const commit = this.commitToAnnounce();
    const commitTerm = this.log.term(commit);
    if (commit === 0 || commitTerm === undefined) this.send({ type: 'timeout-now', from: this.id, to, term: this.term });
    else this.send({ type: 'timeout-now', from: this.id, to, term: this.term, commit, commitTerm });
  }

  /** Appends entries of this term, numbered from `lastIndex + 1`, to the leader's own log. */
  private appendEntries(entries: readonly Entry<T>[]): void {
    this.log.append(entries);
    this.syncConf();
    (this.progress.get(this.id) as Progress).maybeUpdate(this.log.lastIndex());
    // A single-voter cluster commits at once.
    this.maybeCommit();
  }

  propose(data: readonly T[]): ProposeResult {
    if (this.role !== 'leader') return { ok: false, reason: 'not-leader', leader: this.leader };
    this.unquiesce(false);
    if (this.transferee !== null) return { ok: false, reason: 'transferring', leader: this.leader };
    // A leader that is no voter (a learner elected: see learnerMayCampaign; or one whose removal is in its log) leads
    // only to commit that and hand over (stepDownRemoved): an entry after it, lost on its way, would leave no voter
    // holding the whole log when it commits, and no one to hand over to, so the voters would wait out the lease.
    if (!this.isVoter(this.id)) return { ok: false, reason: 'transferring', leader: this.leader };
    if (data.length === 0) return { ok: false, reason: 'empty', leader: this.leader };
    const uncommitted = this.log.lastIndex() - this.log.committed;
    if (uncommitted + data.length > this.config.maxUncommittedEntries) return { ok: false, reason: 'overloaded', leader: this.leader };
    const firstIndex = this.log.lastIndex() + 1;
    const term = this.term;
    const entries: Array<Entry<T>> = new Array<Entry<T>>(data.length);
    for (let i = 0; i < data.length; i++) entries[i] = { type: 'normal', index: firstIndex + i, term, data: data[i] as T };
    this.appendEntries(entries);
    if (this.role === 'leader') this.bcastAppend();
    return { ok: true, term, firstIndex, lastIndex: firstIndex + data.length - 1 };
  }

  /**
   * Appends a configuration change (see `RaftNode.proposeConfChange`). One at
   * a time: refused while an earlier change is uncommitted, and until this
   * leader committed an entry of its own term.
   */
  proposeConfChange(change: ConfChange): ConfChangeResult {
    if (this.role !== 'leader') return { ok: false, reason: 'not-leader', leader: this.leader };
    this.unquiesce(false);
    if (this.transferee !== null) return { ok: false, reason: 'transferring', leader: this.leader };
    // A leader whose removal is in its log only commits it and hands over (as propose, below).
    if (!this.isVoter(this.id)) return { ok: false, reason: 'transferring', leader: this.leader };
    if (!this.knobs.allowOverlappingConfChanges && this.conf.index > this.log.committed) {
      return { ok: false, reason: 'change-pending', leader: this.leader, detail: `the change at ${this.conf.index} is not committed (commit ${this.log.committed})` };
    }
    if (!this.knobs.confChangeBeforeTermCommitted && this.log.term(this.log.committed) !== this.term) {
      return { ok: false, reason: 'term-not-committed', leader: this.leader, detail: `no entry of term ${this.term} is committed yet` };
    }
    const conf = applyConfChange(this.conf.conf, change);
    if (typeof conf === 'string') return { ok: false, reason: 'invalid', leader: this.leader, detail: conf };
    const index = this.log.lastIndex() + 1;
    const entry: Entry<T> = { type: 'conf', index, term: this.term, change: Object.freeze({ type: change.type, node: change.node }), conf };
    this.counters.confChangesProposed++;
    this.appendEntries([entry]);
    if (this.role === 'leader') this.bcastAppend();
    return { ok: true, term: this.term, index, conf };
  }

  transferLeadership(to: NodeId): TransferResult {
    if (this.role !== 'leader') return { ok: false, reason: 'not-leader', leader: this.leader };
    this.unquiesce(false);
    if (!this.isVoter(to)) return { ok: false, reason: 'unknown-node', leader: this.leader };
    if (to === this.id) {
      this.transferee = null;
      return { ok: true };
    }
    if (this.transferee === to) return { ok: true };
    // The transfer must complete within one election timeout, or it is aborted. A removed leader's wait keeps its
    // own bound (counted from the removal's commit), which hands over anyway.
    if (!this.awaitingRemovalAck) this.electionElapsed = 0;
    this.transferee = to;
    const pr = this.progress.get(to) as Progress;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.sendAppend(to);
    return { ok: true };
  }

  /**
   * The runtime's report on a snapshot message to `to`: delivered (`true`)
   * or failed. Either way the leader probes again; after a failure from the
   * follower's match, after a success from just past the snapshot.
   */
  reportSnapshot(to: NodeId, delivered: boolean): void {
    if (this.role !== 'leader') return;
    const pr = this.progress.get(to);
    if (pr === undefined || pr.state !== 'snapshot') return;
    if (!delivered) pr.pendingSnapshot = 0;
    pr.becomeProbe();
    // Wait for the follower's answer (or the next heartbeat) before probing.
    pr.probeSent = true;
  }

  /** The runtime could not reach `to`: stop streaming to it optimistically. */
  reportUnreachable(to: NodeId): void {
    if (this.role !== 'leader') return;
    const pr = this.progress.get(to);
    if (pr !== undefined && pr.state === 'replicate') pr.becomeProbe();
  }

  private send(m: Message<T, S>): void {
    this.msgs.push(m);
  }
}
