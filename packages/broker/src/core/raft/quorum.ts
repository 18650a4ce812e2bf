/**
 * Majority arithmetic, kept apart so it can be table-tested: how many votes
 * win, which index a majority holds, whether an election is decided.
 */
import type { NodeId } from './types.js';

/** Votes (or acknowledgements) that make a majority of `voterCount`. */
export function quorumSize(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

/**
 * The highest index that a majority of `voters` hold, given each voter's
 * match index (`undefined` counts as 0). With 5 voters matching
 * `[9, 7, 7, 3, 0]`, that is 7. An empty voter set yields 0.
 */
export function majorityIndex(voters: readonly NodeId[], matchOf: (id: NodeId) => number | undefined): number {
  const n = voters.length;
  if (n === 0) return 0;
  // Insertion sort, descending: voter sets are small (3, 5, 7).
  const sorted: number[] = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const id = voters[i] as NodeId;
    const value = matchOf(id) ?? 0;
    let j = i;
    while (j > 0 && (sorted[j - 1] as number) < value) {
      sorted[j] = sorted[j - 1] as number;
      j--;
    }
    sorted[j] = value;
  }
  return sorted[quorumSize(n) - 1] as number;
}

export type VoteOutcome = 'won' | 'lost' | 'pending';

/**
 * One voter's answer: `true` granted, `false` refused, `'would-grant'` refused
 * by a recovering voter (`RaftConfig.recoveringAtStart`) that would have
 * granted it (the candidate's log is up to date, no other vote in the term).
 */
export type VoteAnswer = boolean | 'would-grant';

/**
 * Supporters (grants and would-grants) that elect a candidate without a
 * quorum of plain grants: `⌊n/2⌋ + 2` of `n` voters (3 of 3, 4 of 4, 4 of 5,
 * 5 of 6); all of 1 or 2.
 *
 * Why it is safe: under `fsync: interval` at most one holder of an
 * acknowledged entry lost it (two nodes are never cut within one fsync
 * interval), and its holders are a quorum of the configuration that
 * committed it — the candidate's, or one a single-server change away
 * (one voter more or fewer). `⌊n/2⌋ + 2` of the candidate's voters share
 * at least two voters with any such quorum, so one of them still holds the
 * entry and refuses a candidate that lacks it (`n − quorum + 2`, enough
 * within one configuration, is one short for an even `n` across a change:
 * 3 of 4 beside a quorum of 5 or of 3). A plain grant comes only from a
 * voter that is not recovering, so a quorum of them shares with the
 * holders one that is not the one that lost it. Groups of one or two
 * voters keep no second copy to protect: a would-grant of the other voter
 * counts, or a two-voter group with one recovering could never elect. Beside
 * a configuration of three one voter away, all of two share only one voter
 * with its quorums: a candidate of one or two voters then wins by supporters
 * only with a win there too ({@link guardedVoteOutcome}).
 */
export function supportersToElect(voterCount: number): number {
  // Never below a quorum (an empty voter set elects no one).
  if (voterCount <= 2) return Math.max(quorumSize(voterCount), voterCount);
  return Math.min(voterCount, Math.floor(voterCount / 2) + 2);
}

/**
 * Whether an election over `voters` is decided by the `votes` cast so far
 * (votes of non-voters are ignored): won with plain grants from a quorum, or
 * with supporters (grants and would-grants) from {@link supportersToElect}
 * voters; lost when even every voter yet to answer could bring neither.
 * Without would-grants this is the plain majority rule.
 */
export function voteOutcome(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, VoteAnswer>): VoteOutcome {
  let granted = 0;
  let wouldGrant = 0;
  let refused = 0;
  for (const id of voters) {
    const vote = votes.get(id);
    if (vote === true) granted++;
    else if (vote === 'would-grant') wouldGrant++;
    else if (vote === false) refused++;
  }
  const quorum = quorumSize(voters.length);
  const supporters = supportersToElect(voters.length);
  if (granted >= quorum || granted + wouldGrant >= supporters) return 'won';
  const outstanding = voters.length - granted - wouldGrant - refused;
  if (granted + outstanding < quorum && voters.length - refused < supporters) return 'lost';
  return 'pending';
}

/**
 * {@link voteOutcome} for a candidate whose configuration (`voters`, at most
 * two) is one voter away from configurations (`neighbours`: the previous one
 * across a removal not known committed, one per learner promoted) that may
 * have committed an entry it lacks: a quorum of plain grants of `voters`
 * still wins alone, but supporters of `voters` win only with a win in every
 * neighbour too (plain grants from a quorum, or supporters from
 * {@link supportersToElect}). All of two supporters share only one voter
 * with a quorum of three (docs/raft.md, "Two voters beside three"). Lost
 * once a plain quorum of `voters` cannot come and one of those wins cannot.
 */
export function guardedVoteOutcome(voters: readonly NodeId[], neighbours: readonly (readonly NodeId[])[], votes: ReadonlyMap<NodeId, VoteAnswer>): VoteOutcome {
  let granted = 0;
  let refused = 0;
  for (const id of voters) {
    const vote = votes.get(id);
    if (vote === true) granted++;
    else if (vote !== undefined) refused++;
  }
  const quorum = quorumSize(voters.length);
  if (granted >= quorum) return 'won';
  const current = voteOutcome(voters, votes);
  if (current === 'lost') return 'lost';
  let allWon = current === 'won';
  let oneLost = false;
  for (const other of neighbours) {
    const outcome = voteOutcome(other, votes);
    if (outcome !== 'won') allWon = false;
    if (outcome === 'lost') oneLost = true;
  }
  if (allWon) return 'won';
  // A would-grant is no plain grant: it counts as refused for the plain quorum.
  if (oneLost && voters.length - refused < quorum) return 'lost';
  return 'pending';
}

/** Whether the voters for which `isActive` holds form a majority. */
export function quorumActive(voters: readonly NodeId[], isActive: (id: NodeId) => boolean): boolean {
  let active = 0;
  for (const id of voters) if (isActive(id)) active++;
  return active >= quorumSize(voters.length);
}
