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
 * Whether an election over `voters` is decided by the `votes` cast so far
 * (`true` granted, `false` refused; votes of non-voters are ignored).
 */
export function voteOutcome(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteOutcome {
  let granted = 0;
  let refused = 0;
  for (const id of voters) {
    const vote = votes.get(id);
    if (vote === true) granted++;
    else if (vote === false) refused++;
  }
  const quorum = quorumSize(voters.length);
  if (granted >= quorum) return 'won';
  if (voters.length - refused < quorum) return 'lost';
  return 'pending';
}

/** Whether the voters for which `isActive` holds form a majority. */
export function quorumActive(voters: readonly NodeId[], isActive: (id: NodeId) => boolean): boolean {
  let active = 0;
  for (const id of voters) if (isActive(id)) active++;
  return active >= quorumSize(voters.length);
}
