/**
 * Raft configuration: one documented object, frozen defaults, and
 * {@link resolveRaftConfig} that rejects invalid or conflicting settings by
 * name instead of resolving them silently.
 *
 * Time is in ticks: the core knows no milliseconds. The broker converts its
 * `raft` options (milliseconds) to ticks with its one ticker
 * (`runtime/ticker.ts`); the defaults are etcd's ratio, an election timeout of
 * ten heartbeats.
 */
import { RelayError } from '@relaymq/sdk/protocol';

export interface RaftConfig {
  /**
   * Ticks a follower waits without hearing from a leader before it
   * campaigns. The actual timeout is drawn per term, uniformly in
   * `[electionTicks, 2 × electionTicks)`, from the injected random source, so
   * nodes rarely time out together. It is also the check-quorum period and
   * the leader-lease length. Must exceed `heartbeatTicks`.
   * @defaultValue 10
   */
  electionTicks: number;
  /**
   * Ticks between two heartbeats of a leader.
   * @defaultValue 1
   */
  heartbeatTicks: number;
  /**
   * Ask for pre-votes (which do not raise anyone's term) before a real
   * election, so a node that was partitioned away cannot disrupt a healthy
   * leader when it comes back.
   * @defaultValue true
   */
  preVote: boolean;
  /**
   * A leader that has not heard from a quorum within `electionTicks` steps
   * down; a follower that heard from a leader within `electionTicks` ignores
   * (pre-)vote requests (the leader lease).
   * @defaultValue true
   */
  checkQuorum: boolean;
  /**
   * Entries in one append message.
   * @defaultValue 64
   */
  maxEntriesPerAppend: number;
  /**
   * Append messages in flight to one follower in the replicate state; the
   * leader pauses that follower's stream beyond it.
   * @defaultValue 256
   */
  maxInflightAppends: number;
  /**
   * Entries appended by this leader but not yet committed; proposals beyond
   * it are refused (`overloaded`) instead of growing memory without bound.
   * @defaultValue 8192
   */
  maxUncommittedEntries: number;
  /**
   * Committed entries handed out in one {@link Ready}; the rest follow in the
   * next ones.
   * @defaultValue 1024
   */
  maxCommittedEntriesPerReady: number;
  /**
   * Idle groups cost nothing: a leader whose followers all hold its whole,
   * committed log and that has nothing pending sends one last heartbeat
   * marked `quiesce` and stops ticking; followers that hold the same log
   * stop their election timers. Any proposal or message (but the quiesce
   * heartbeat and its answers) wakes a node, and a woken follower wakes its
   * leader. A quiesced follower no longer notices a dead leader by itself:
   * the runtime must call `RaftNode.peerDown` when its failure detector
   * (SWIM) suspects a peer, which ends the leader's lease on this follower
   * so that it campaigns (pre-vote first) within an election timeout.
   * @defaultValue false
   */
  quiesce: boolean;
  /**
   * The storage acknowledges entries once written, before their fsync
   * (the broker's `fsync: interval`), so a follower may lose entries it
   * acknowledged (a power cut) and its leader then counts them in its match.
   * A follower told to commit beyond its last index (a heartbeat's commit is
   * the leader's match for it), or beyond what an append of this term
   * matched in this run (a lost overwrite may have left older entries
   * there), then commits nothing on that word and answers a rejection
   * marked `lost` with its commit, from which the leader probes it again and
   * sends it what it lacks. Its rejections and
   * heartbeat answers say so (`unsynced`), and a leader takes such a
   * rejection at or below the follower's match as a loss too (not as stale),
   * lowering the match, whatever its own setting (`fsync` is set per broker:
   * an `always` leader may have `interval` followers). Without it (and outside
   * `unsyncedAcksBeforeStart`), that heartbeat means the log was lost or
   * truncated under a storage that promised not to (a bug): the core throws
   * `RaftInvariantError`.
   * @defaultValue false
   */
  unsyncedAcks: boolean;
  /**
   * The log this node starts from may have been written by a run that
   * acknowledged before fsync (`unsyncedAcks`: the broker's `fsync` may
   * have been `interval` before this start, and a data directory does not
   * say), so it may end below entries this node acknowledged. In the term it
   * starts in it then acts as a follower under `unsyncedAcks` does (reports
   * a commit beyond its log as `lost`, marks its rejections and heartbeat
   * answers `unsynced`); from the next term on it has acknowledged only
   * what this run wrote. Every acknowledgement of the previous run was sent
   * in a term up to the stored one: a term is made durable before any
   * message of it leaves, under either policy. Without it (and without
   * `unsyncedAcks`) a commit beyond the log throws, as for a storage that
   * never acknowledged before fsync (the simulator's).
   * @defaultValue false
   */
  unsyncedAcksBeforeStart: boolean;
  /**
   * The broker sets it when this start follows a power cut (an unclean stop)
   * of a run that acknowledged before fsync (`unsyncedAcks`, or the window of
   * `unsyncedAcksBeforeStart`): the log may lack entries this node helped
   * commit. The node is then *recovering*: it grants no vote or pre-vote,
   * answering the ones it would have granted with `wouldGrant` (and
   * recording such a vote as a grant), and a candidate needs plain grants
   * from a quorum of voters that are not recovering, or supporters from
   * `⌊n/2⌋ + 2` voters (see `quorum.ts`). It ends once a leader of a
   * term above the one stored at this start brought the node up to an entry
   * of that leader's term (`Status.recovering`).
   * @defaultValue false
   */
  recoveringAtStart: boolean;
}

/** The defaults, in ticks: an election timeout of ten heartbeats. */
export const RAFT_DEFAULTS: Readonly<RaftConfig> = Object.freeze({
  electionTicks: 10,
  heartbeatTicks: 1,
  preVote: true,
  checkQuorum: true,
  maxEntriesPerAppend: 64,
  maxInflightAppends: 256,
  maxUncommittedEntries: 8192,
  maxCommittedEntriesPerReady: 1024,
  quiesce: false,
  unsyncedAcks: false,
  unsyncedAcksBeforeStart: false,
  recoveringAtStart: false,
});

export type RaftConfigOptions = Partial<RaftConfig>;

/** A setting that is invalid or conflicts with another: an `INVALID_ARGUMENT` naming the field. */
function invalid(field: string, message: string): RelayError {
  return new RelayError('INVALID_ARGUMENT', `raft option ${field}: ${message}`);
}

const FIELDS = Object.keys(RAFT_DEFAULTS) as Array<keyof RaftConfig>;
const BOOLEAN_FIELDS: ReadonlySet<keyof RaftConfig> = new Set(['preVote', 'checkQuorum', 'quiesce', 'unsyncedAcks', 'unsyncedAcksBeforeStart', 'recoveringAtStart']);

/** Defaults, then the given fields; throws an `INVALID_ARGUMENT` {@link RelayError} naming the first bad field. */
export function resolveRaftConfig(options: RaftConfigOptions = {}): Readonly<RaftConfig> {
  for (const key of Object.keys(options)) {
    if (!(FIELDS as string[]).includes(key)) throw invalid(key, `unknown option "${key}"`);
  }
  const config: RaftConfig = { ...RAFT_DEFAULTS };
  const writable = config as unknown as Record<keyof RaftConfig, number | boolean>;
  for (const key of FIELDS) {
    const value = options[key];
    if (value !== undefined) writable[key] = value;
  }
  for (const key of FIELDS) {
    const value = config[key];
    if (BOOLEAN_FIELDS.has(key)) {
      if (typeof value !== 'boolean') throw invalid(key, `${key} must be a boolean, got ${String(value)}`);
    } else if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
      throw invalid(key, `${key} must be an integer >= 1, got ${String(value)}`);
    }
  }
  if (config.electionTicks <= config.heartbeatTicks) {
    throw invalid(
      'electionTicks',
      `electionTicks (${config.electionTicks}) must exceed heartbeatTicks (${config.heartbeatTicks}): followers would time out between two heartbeats`,
    );
  }
  if (config.maxUncommittedEntries < config.maxEntriesPerAppend) {
    throw invalid(
      'maxUncommittedEntries',
      `maxUncommittedEntries (${config.maxUncommittedEntries}) must be at least maxEntriesPerAppend (${config.maxEntriesPerAppend}): an append could never be full`,
    );
  }
  return Object.freeze(config);
}
