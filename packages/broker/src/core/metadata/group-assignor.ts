/**
 * Which member of a consumer group should own each partition: a pure,
 * deterministic function of the partitions, the live members and who owns
 * what now. The result is sticky (a member keeps what it owns unless it holds
 * more than its fair share) and balanced (owned counts differ by at most one),
 * so a member joining or leaving moves only the partitions it must: the
 * members that keep theirs never pause.
 */

/**
 * The target owner of every partition (`partitions` and `members` are
 * identifiers; the order they come in does not matter). With no members,
 * every partition maps to `undefined`.
 *
 * @param current - the owner of each partition now; owners not among `members` are ignored.
 */
export function targetAssignment(
  partitions: readonly string[],
  members: readonly string[],
  current: ReadonlyMap<string, string | undefined>,
): Map<string, string | undefined> {
  const sortedPartitions = [...new Set(partitions)].sort();
  const sortedMembers = [...new Set(members)].sort();
  const target = new Map<string, string | undefined>(sortedPartitions.map((p) => [p, undefined]));
  if (sortedMembers.length === 0) return target;

  const base = Math.floor(sortedPartitions.length / sortedMembers.length);
  // Members allowed one more than `base`: exactly as many as the remainder.
  let extraSlots = sortedPartitions.length % sortedMembers.length;
  const owned = new Map<string, string[]>(sortedMembers.map((m) => [m, []]));
  for (const partition of sortedPartitions) {
    const owner = current.get(partition);
    if (owner !== undefined) owned.get(owner)?.push(partition);
  }
  // Keep what each member owns up to its quota; the members owning most get the extra slots first, so fewest partitions move.
  const byOwned = [...sortedMembers].sort((a, b) => (owned.get(b) as string[]).length - (owned.get(a) as string[]).length || (a < b ? -1 : 1));
  const counts = new Map<string, number>();
  for (const member of byOwned) {
    const mine = owned.get(member) as string[];
    let quota = base;
    if (mine.length > base && extraSlots > 0) {
      quota = base + 1;
      extraSlots--;
    }
    const kept = mine.slice(0, quota);
    for (const partition of kept) target.set(partition, member);
    counts.set(member, kept.length);
  }
  // The rest go, in partition order, to the member owning fewest (ties: smallest id), within its quota.
  for (const partition of sortedPartitions) {
    if (target.get(partition) !== undefined) continue;
    let best: string | undefined;
    for (const member of sortedMembers) {
      const count = counts.get(member) as number;
      if (count > base || (count === base && extraSlots === 0)) continue;
      if (best === undefined || count < (counts.get(best) as number)) best = member;
    }
    // Cannot happen while counts sum to the partitions assigned so far; fall back to the first member rather than leave a partition idle.
    const chosen = best ?? (sortedMembers[0] as string);
    const count = counts.get(chosen) as number;
    if (count === base) extraSlots--;
    counts.set(chosen, count + 1);
    target.set(partition, chosen);
  }
  return target;
}
