/**
 * The vocabulary of the Raft core: log entries, persistent and volatile
 * state, snapshots, messages, and the {@link Ready} batch with its
 * persistence contract.
 *
 * Everything here is plain data (msgpack- and JSON-encodable when the entry
 * and snapshot payloads are). Values handed out by the core are never mutated
 * by it afterwards, and values handed in must not be mutated by the caller:
 * entries are shared by reference between the log, messages and storage.
 */

/** A broker id, e.g. `"b1"`. The empty string is not a valid id. */
export type NodeId = string;

/** The four roles; `pre-candidate` is a follower asking whether it could win before it disturbs anyone. */
export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader';

interface EntryBase {
  /** Position in the log, from 1, dense. */
  readonly index: number;
  /** Term of the leader that created the entry. */
  readonly term: number;
}

/** An entry carrying an application payload. */
export interface NormalEntry<T> extends EntryBase {
  readonly type: 'normal';
  readonly data: T;
}

/**
 * The empty entry a new leader appends at the start of its term. Committing
 * it commits, indirectly, every entry of earlier terms before it (Raft §5.4.2,
 * "Figure 8"). The application skips it, but it occupies an index.
 */
export interface NoopEntry extends EntryBase {
  readonly type: 'noop';
}

/**
 * A change of membership, proposed with `RaftNode.proposeConfChange`:
 * - `add-learner`: a node outside the configuration starts receiving the log; it does not vote and does not count for any quorum;
 * - `promote`: a learner becomes a voter (catch it up first: a lagging new voter can cost the group its quorum);
 * - `remove`: a voter or a learner leaves (the leader itself included: it steps down once the change is committed).
 */
export interface ConfChange {
  readonly type: 'add-learner' | 'promote' | 'remove';
  readonly node: NodeId;
}

/**
 * An entry that changes the configuration. It carries the change and the
 * whole configuration it results in, so any one entry tells the
 * configuration from its index on. The configuration takes effect on every
 * node as soon as the entry is in its log (appended, not committed: Raft
 * thesis §4.1), and is undone if a new leader truncates the entry.
 */
export interface ConfEntry extends EntryBase {
  readonly type: 'conf';
  readonly change: ConfChange;
  readonly conf: ConfState;
}

/** A log entry. `T` is the payload type (e.g. a publish batch); the core never inspects it. */
export type Entry<T> = NormalEntry<T> | NoopEntry | ConfEntry;

/**
 * The state that must survive a crash, persisted before any message that
 * depends on it is sent.
 */
export interface HardState {
  /** Latest term this node has seen. */
  readonly term: number;
  /** Candidate this node voted for in `term`, or `null`. */
  readonly vote: NodeId | null;
  /**
   * Highest index known committed. Persisting it is an optimisation (it is
   * recomputed from the leader after a restart), so a change of `commit`
   * alone does not require an fsync.
   */
  readonly commit: number;
}

/** Volatile state, reported in a {@link Ready} when it changes. */
export interface SoftState {
  readonly role: Role;
  /** Leader of the current term as far as this node knows, or `null`. */
  readonly leader: NodeId | null;
}

/**
 * The cluster configuration: who votes and who only receives the log. It
 * changes one node at a time through {@link ConfEntry} entries (single-server
 * changes, no joint consensus: see docs/raft.md) and is carried in every
 * snapshot.
 */
export interface ConfState {
  /** The nodes that vote and count for quorums. */
  readonly voters: readonly NodeId[];
  /** Nodes that receive the log but neither vote nor count for any quorum. Absent means none (snapshots written before learners existed). */
  readonly learners?: readonly NodeId[];
}

export interface SnapshotMeta {
  /** Index of the last entry the snapshot covers. */
  readonly index: number;
  /** Term of that entry. */
  readonly term: number;
  readonly conf: ConfState;
}

/** A state-machine image covering the log up to `meta.index`; `S` is the application's payload. */
export interface Snapshot<S> {
  readonly meta: SnapshotMeta;
  readonly data: S;
}

interface MessageBase {
  readonly from: NodeId;
  readonly to: NodeId;
  /**
   * Sender's term; for `pre-vote` the term the sender would campaign in
   * (its term + 1), for a granted `pre-vote-resp` the term of that request.
   */
  readonly term: number;
}

/** Leader → follower: entries after (`prevIndex`, `prevTerm`), and the leader's commit. Empty entries probe. */
export interface AppendMessage<T> extends MessageBase {
  readonly type: 'app';
  readonly prevIndex: number;
  readonly prevTerm: number;
  readonly entries: readonly Entry<T>[];
  readonly commit: number;
  /**
   * Set on an empty append that only carries the commit index to a follower
   * in replicate state, which holds or is being sent every entry up to
   * `prevIndex` (acknowledged, or in flight and answered when they arrive): a
   * follower that accepts it does not answer, since the answer would tell
   * the leader nothing new (a rejection is still answered). Saves the leader
   * one message per follower and commit.
   */
  readonly commitOnly?: boolean;
}

/**
 * Follower → leader. Accepted: `index` is the last index known to match the
 * leader. Rejected: `index` is the rejected `prevIndex`; (`hintIndex`,
 * `hintTerm`) is the follower's last entry with term ≤ the leader's
 * `prevTerm` at or below it, from which the leader skips a whole term per
 * round trip (fast backtracking).
 *
 * `lost` (rejected only; see `RaftConfig.unsyncedAcks`): the follower lost
 * entries it had acknowledged; its log ends before the commit `index` a
 * heartbeat told it, and `hintIndex` is its own commit, the last index it
 * is sure matches the leader. The leader lowers its match for it there,
 * even below what it counted (a plain rejection below the match is stale and
 * ignored).
 */
export interface AppendResponse extends MessageBase {
  readonly type: 'app-resp';
  readonly index: number;
  readonly reject: boolean;
  readonly hintIndex: number;
  readonly hintTerm: number;
  readonly lost?: boolean;
  /**
   * Set on rejections by a follower whose storage acknowledges before its
   * fsync (`RaftConfig.unsyncedAcks`): a rejection at or below its match is
   * then a loss, not stale, whatever the leader's own setting. Absent means false.
   */
  readonly unsynced?: boolean;
  /** Set on rejections by a recovering follower: see {@link HeartbeatResponse.recovering}. */
  readonly recovering?: boolean;
  /** With `recovering`: see {@link HeartbeatResponse.startTerm}. */
  readonly startTerm?: number;
}

/** Candidate → voter. `transfer` marks a campaign started by leadership transfer, which leases do not block. */
export interface VoteRequest extends MessageBase {
  readonly type: 'vote' | 'pre-vote';
  readonly lastIndex: number;
  readonly lastTerm: number;
  readonly transfer: boolean;
  /**
   * The candidate's configuration has at most two voters and was reached by
   * a removal whose entry, at `confIndex` in `confTerm`, is above its commit:
   * a voter whose log holds that entry at or below its own commit says so
   * (`VoteResponse.committedIndex`), and the candidate then needs no win
   * among the previous configuration's voters (docs/raft.md, "Two voters
   * beside three"). Both or neither; absent from an older broker.
   */
  readonly confIndex?: number;
  readonly confTerm?: number;
}

export interface VoteResponse extends MessageBase {
  readonly type: 'vote-resp' | 'pre-vote-resp';
  readonly reject: boolean;
  /**
   * The voter is recovering (`RaftConfig.recoveringAtStart`): it may have lost
   * entries it acknowledged, so it grants nothing (`reject` is true). Absent
   * means false (a voter of an older version is never recovering).
   */
  readonly recovering?: boolean;
  /**
   * With `recovering`: the voter would have granted this request (the
   * candidate's log is up to date, no other vote in the term), and for a
   * `vote-resp` it recorded the vote as a grant. The candidate counts it
   * toward `⌊n/2⌋ + 2` supporters (see `quorum.ts`); the term is then
   * the request's, as for a grant. Absent means false.
   */
  readonly wouldGrant?: boolean;
  /**
   * To a request with `confIndex`: an entry the voter knows committed, at or
   * above that index — the request's own entry when its log holds it at or
   * below its commit, else (compacted past it) its commit and that entry's
   * term. A candidate whose log holds that entry holds the committed log up
   * to it (log matching), its removal included. Any answer may carry it (a
   * refusal too). Both or neither; absent means no attestation.
   */
  readonly committedIndex?: number;
  readonly committedTerm?: number;
}

/** Leader → follower: liveness, and the commit index capped at what the follower is known to hold. */
export interface HeartbeatMessage extends MessageBase {
  readonly type: 'heartbeat';
  readonly commit: number;
  /**
   * The leader quiesces (see `RaftConfig.quiesce`): every follower holds its
   * whole log and it stops heartbeating; a follower whose log ends at
   * `commit` stops its election timer too. Absent means false.
   */
  readonly quiesce?: boolean;
}

export interface HeartbeatResponse extends MessageBase {
  readonly type: 'heartbeat-resp';
  /**
   * Set in the answer to a quiesce heartbeat by a follower that quiesced: a
   * quiesced leader takes it without waking. Any other answer (or message)
   * wakes it, which is how a follower that cannot quiesce, or that woke,
   * brings its leader back.
   */
  readonly quiesce?: boolean;
  /**
   * The follower acknowledges before its fsync (`RaftConfig.unsyncedAcks`):
   * a leader with nothing new to send it checks that it still holds its
   * match. Absent means false.
   */
  readonly unsynced?: boolean;
  /**
   * The follower is recovering (`RaftConfig.recoveringAtStart`), until a
   * leader of a term above `startTerm` brought it up to an entry of that
   * term. A leader whose term is not above `startTerm` would keep it
   * recovering for ever, so it starts a new election (docs/raft.md,
   * "recovering"). Absent means false (a follower of an older version is
   * never recovering).
   */
  readonly recovering?: boolean;
  /** With `recovering`: the term the follower's storage held when it started. */
  readonly startTerm?: number;
  /**
   * The follower's commit index, on an answer to a leader that is no voter in the follower's configuration (its log
   * holds the leader's removal): a leader that removed itself hands over only once a voter says it knows the removal
   * committed (docs/raft.md, "Two voters beside three"). Absent otherwise, and from an older broker.
   */
  readonly commit?: number;
}

/** Leader → follower whose next entry was compacted away. */
export interface SnapshotMessage<S> extends MessageBase {
  readonly type: 'snapshot';
  readonly snapshot: Snapshot<S>;
}

/** Leader → transfer target, once it is caught up: campaign now, skipping pre-vote. */
export interface TimeoutNowMessage extends MessageBase {
  readonly type: 'timeout-now';
  /**
   * The leader's commit index and the term of its entry there (absent from an older broker): the target, which holds
   * the leader's whole log, commits up to it before campaigning. A leader that removed itself steps down right after
   * sending this (once a voter acknowledged the removal's commit, `HeartbeatResponse.commit`, or an election timeout
   * after it committed); without it, if the appends carrying that commit were lost, no survivor might know the removal
   * committed, and a guarded election (docs/raft.md, "Two voters beside three") would need the removed voter.
   */
  readonly commit?: number;
  readonly commitTerm?: number;
}

/** Every message nodes exchange, discriminated by `type`. */
export type Message<T, S> =
  | AppendMessage<T>
  | AppendResponse
  | VoteRequest
  | VoteResponse
  | HeartbeatMessage
  | HeartbeatResponse
  | SnapshotMessage<S>
  | TimeoutNowMessage;

export type MessageType = Message<unknown, unknown>['type'];

/**
 * One batch of work the core hands to its runner: `node.ready()`, then the
 * runner does, **in this order**:
 *
 * 1. **Persist** `snapshot` (if any), then `entriesToPersist` (replacing any
 *    stored entries at the same or higher indexes), then `hardState` (if any).
 *    If `mustSync`, make them durable (fsync) before step 2. A vote or an
 *    acknowledged entry that is sent before it is durable can be forgotten by
 *    a crash, and a forgotten vote or entry breaks Raft's safety.
 * 2. **Send** `messages`. Any order, any loss, duplication or delay is
 *    tolerated; nothing is sent before step 1 is durable — except a
 *    leader's `app` and `heartbeat` messages, which may leave before step 1
 *    (nothing they carry is applied or announced committed before the next
 *    `Ready`; see docs/raft.md).
 * 3. **Apply** `snapshot` to the state machine (if any), then
 *    `committedEntries`, in order. They are committed: a quorum has them.
 * 4. **Advance**: `node.advance()`. Only then may `ready()` be called again.
 *
 * `runReady` in `runner.ts` is the one implementation of this contract,
 * used alike by the broker's `RaftGroup` (whose fsync is asynchronous), the
 * simulator and the scenario tests (whose handlers finish at once).
 */
export interface Ready<T, S> {
  /** Role or leader changed since the previous `Ready` (informational). */
  readonly softState: SoftState | undefined;
  /** Term, vote or commit changed since the previous `Ready`: persist it. */
  readonly hardState: HardState | undefined;
  /** New log entries to append to stable storage (a suffix; may overwrite a conflicting tail). */
  readonly entriesToPersist: readonly Entry<T>[];
  /** A snapshot received from the leader, to persist and then restore the state machine from. */
  readonly snapshot: Snapshot<S> | undefined;
  /** Committed entries to apply, in index order, after persisting. */
  readonly committedEntries: readonly Entry<T>[];
  /** Messages to send, after persisting (a leader's appends and heartbeats may go before). */
  readonly messages: readonly Message<T, S>[];
  /** Whether step 1 must reach durable storage (fsync) before step 2. */
  readonly mustSync: boolean;
  /**
   * `hardState`'s commit passed a configuration entry: the hard state must be
   * durable in step 1 (with `mustSync`) even where a storage records commits
   * lazily. A candidate whose commit reached a removal needs no win among the
   * previous voters (docs/raft.md, "Two voters beside three"); after a power
   * cut it must still know, or a group whose removed voter is gone could
   * elect only once another voter tells it. Absent means false.
   */
  readonly commitPassedConf?: boolean;
}

/** Per-follower replication state as the leader sees it. */
export interface ProgressStatus {
  readonly id: NodeId;
  /** Highest index known replicated (and durable) on the follower. */
  readonly match: number;
  /** Next index the leader will send. */
  readonly next: number;
  readonly state: 'probe' | 'replicate' | 'snapshot';
  /** Heard from the follower since the last check-quorum round. */
  readonly recentActive: boolean;
  /** Present (true) while its last heartbeat answer or rejection said it is recovering (see {@link Status.recovering}). */
  readonly recovering?: true;
  /** Appends in flight (replicate state). */
  readonly inflight: number;
}

/** A snapshot of the node for metrics and debugging; cheap but allocating. */
export interface Status {
  readonly id: NodeId;
  readonly term: number;
  readonly vote: NodeId | null;
  readonly role: Role;
  readonly leader: NodeId | null;
  readonly commit: number;
  readonly applied: number;
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly voters: readonly NodeId[];
  /** Members that receive the log without voting. */
  readonly learners: readonly NodeId[];
  /** Index of the entry (or snapshot) whose configuration is in effect; 0 for the bootstrap configuration. */
  readonly confIndex: number;
  /** Target of an ongoing leadership transfer (leader only). */
  readonly transferee: NodeId | null;
  /**
   * Started with `RaftConfig.recoveringAtStart` and not recovered yet: it
   * grants no vote (it answers `wouldGrant`), and a candidate needs more
   * supporters (see `quorum.ts`). Ends once a leader of a term above the one
   * stored at the start brought it up to an entry of that term.
   */
  readonly recovering: boolean;
  /**
   * Leader only (empty otherwise): every voter's match index, the leader's
   * own included. An index is stored on the leader when ≤ its `lastIndex`,
   * on a quorum when ≤ `commit`, on all when ≤ every `match`.
   */
  readonly progress: readonly ProgressStatus[];
  /** Leader only (empty otherwise): every learner's replication state. */
  readonly learnerProgress: readonly ProgressStatus[];
}

/** Why a proposal was refused; nothing was appended. */
export type ProposeRefusal =
  /** Only the leader appends; `leader` hints where to go. */
  | 'not-leader'
  /** A leadership transfer is in progress (or a leader that is no voter, a learner elected or one being removed, hands over: docs/raft.md); retry on the new leader. */
  | 'transferring'
  /** `maxUncommittedEntries` would be exceeded; back off. */
  | 'overloaded'
  /** An empty batch. */
  | 'empty';

export type ProposeResult =
  | { readonly ok: true; readonly term: number; readonly firstIndex: number; readonly lastIndex: number }
  | { readonly ok: false; readonly reason: ProposeRefusal; readonly leader: NodeId | null };

/**
 * Why a configuration change was refused; nothing was appended.
 * - `not-leader`, `transferring`: as for {@link ProposeRefusal};
 * - `change-pending`: an earlier change is not committed yet (one change at a time, or two overlapping
 *   single-server changes could let two disjoint majorities form);
 * - `term-not-committed`: this leader has not committed an entry of its own term yet (until then a change
 *   appended by a deposed leader of an earlier term may still be in the log and be committed later: the
 *   single-server bug Ongaro found and fixed this way);
 * - `invalid`: the change does not apply to the configuration (adding a member, promoting a non-learner,
 *   removing a non-member or the last voter); `detail` says why.
 */
export type ConfChangeRefusal = 'not-leader' | 'transferring' | 'change-pending' | 'term-not-committed' | 'invalid';

export type ConfChangeResult =
  | { readonly ok: true; readonly term: number; readonly index: number; readonly conf: ConfState }
  | { readonly ok: false; readonly reason: ConfChangeRefusal; readonly leader: NodeId | null; readonly detail?: string };

export type TransferResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: 'not-leader' | 'unknown-node'; readonly leader: NodeId | null };

/** Randomness injected into the core: election timeout jitter only. */
export interface RandomSource {
  /** A uniformly distributed integer in `[0, maxExclusive)`. */
  nextInt(maxExclusive: number): number;
}
