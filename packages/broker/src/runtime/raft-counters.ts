/**
 * The Raft core's counters (`RaftCounters`) summed over a broker's groups,
 * and what each one means, for the metrics (`relaymq_raft_*_total`,
 * observability/metrics.ts; docs/operations.md). A group keeps the counts of
 * the cores it replaced (a fenced group recovers with a fresh core) and the
 * engine those of the groups it dropped, so the sums only grow.
 */
import type { RaftCounters } from '../core/raft/index.js';

/** Each counter's metric name (without `relaymq_raft_` and `_total`) and HELP text. The record type makes it list every counter. */
export const RAFT_COUNTER_METRICS: Readonly<Record<keyof RaftCounters, { name: string; help: string }>> = Object.freeze({
  messagesIgnored: { name: 'messages_ignored', help: 'Raft messages dropped on purpose: from a non-member, for another node, or meaningless in the current role (summed over the groups here)' },
  staleMessages: { name: 'stale_messages', help: 'Raft messages from an older term, dropped (summed over the groups here)' },
  votesIgnoredInLease: { name: 'votes_ignored_in_lease', help: 'Vote requests ignored because a leader was heard within the election timeout (summed over the groups here)' },
  elections: { name: 'elections', help: 'Elections (not pre-votes) started by the groups here' },
  leaderships: { name: 'leaderships', help: 'Times a group here became leader' },
  checkQuorumStepDowns: { name: 'check_quorum_step_downs', help: 'Times a leader here stepped down because a quorum was silent for an election timeout' },
  snapshotsSent: { name: 'snapshots_sent', help: 'Snapshot messages sent to followers by the leaders here' },
  snapshotsInstalled: { name: 'snapshots_installed', help: "Snapshots installed here from a leader" },
  snapshotsRetried: { name: 'snapshots_retried', help: 'Snapshots sent again because the follower answered heartbeats but never the snapshot' },
  transfersAborted: { name: 'transfers_aborted', help: 'Leadership transfers aborted after an election timeout' },
  confChangesProposed: { name: 'conf_changes_proposed', help: 'Configuration changes appended by the leaders here' },
  removedStepDowns: { name: 'removed_step_downs', help: 'Times a leader here stepped down because a committed change removed it' },
  removalsUnacknowledged: {
    name: 'removals_unacknowledged',
    help: 'Of those, times no voter acknowledged the removal commit within an election timeout, so it handed over without knowing that a survivor knew',
  },
  quiesces: { name: 'quiesces', help: 'Times a group here quiesced (stopped its timers, idle and caught up)' },
  wakes: { name: 'wakes', help: 'Times a group here woke from quiescence' },
  leaderDownSignals: { name: 'leader_down_signals', help: "Times the failure detector's word that a leader is down ended its lease here" },
  lostEntriesReported: {
    name: 'lost_entries_reported',
    help: 'Times a follower here told its leader it lost entries it had acknowledged (fsync interval: a power cut or a dropped write); each is a window in which an acknowledged write depended on fewer copies',
  },
  recoveriesEnded: {
    name: 'recoveries_ended',
    help: 'Times a replica here stopped recovering after a power cut under fsync interval (a leader of a later term caught it up); until then it granted no plain votes',
  },
  recoveryElections: {
    name: 'recovery_elections',
    help: 'Elections a leader here started because a follower recovering since its term could not stop recovering under it',
  },
  votesWithheld: {
    name: 'votes_withheld',
    help: 'Votes and pre-votes a recovering replica here would have granted and answered only as would-grant (a candidate then needs more supporters to win)',
  },
  learnerCampaigns: {
    name: 'learner_campaigns',
    help: 'Campaigns started by a learner here whose log held entries above its commit (voters recovering after power cuts may need it to elect)',
  },
});

const KEYS = Object.keys(RAFT_COUNTER_METRICS) as Array<keyof RaftCounters>;

/** Counters all zero. */
export function zeroRaftCounters(): RaftCounters {
  const zero = {} as RaftCounters;
  for (const key of KEYS) zero[key] = 0;
  return zero;
}

/** Adds `from` into `into`, and returns `into`. */
export function addRaftCounters(into: RaftCounters, from: Readonly<RaftCounters>): RaftCounters {
  for (const key of KEYS) into[key] += from[key];
  return into;
}
