/**
 * The measurements of the consumer-group benchmark (bench/groups.ts), pure
 * so they have table tests (test/bench-group-pauses.test.ts): when a group
 * has settled, the longest gap between handler calls, and the longest wait
 * from a message's acknowledgement to its handler call.
 */

/** Every handler call and ownership event, timestamped here. */
export interface Trace {
  handled: Array<{ member: string; partition: number; t: number }>;
  /** Per message id: its partition, when its publish was acknowledged, and when it was first handled. */
  messages: Map<number, { partition: number; ackedAt?: number; handledAt?: number }>;
  ownership: Array<{ member: string; partition: number; t: number; ev: 'assigned' | 'revoked' }>;
}

/** Every partition owned by exactly one member, and the shares even (they differ by at most one). */
export function settled(members: ReadonlyArray<{ owned: ReadonlySet<number> }>, partitions: number): boolean {
  const owners = new Map<number, number>();
  for (const m of members) for (const p of m.owned) owners.set(p, (owners.get(p) ?? 0) + 1);
  if (owners.size !== partitions || [...owners.values()].some((n) => n !== 1)) return false;
  const sizes = members.map((m) => m.owned.size);
  return Math.max(...sizes) - Math.min(...sizes) <= 1;
}

/** Longest gap between consecutive handler calls of `member` on `partition` within [from, to]. */
export function longestGap(trace: Trace, member: string | undefined, partition: number, from: number, to: number): number {
  const times = trace.handled.filter((h) => h.partition === partition && (member === undefined || h.member === member)).map((h) => h.t);
  // The last call before the window counts as the start of the first gap; the window's end closes the last one.
  const before = times.filter((t) => t < from).at(-1) ?? from;
  const inside = times.filter((t) => t >= from && t <= to);
  let longest = 0;
  let previous = before;
  for (const t of inside) {
    longest = Math.max(longest, t - previous);
    previous = t;
  }
  return Math.max(longest, to - previous);
}

/** Longest wait from acknowledgement to first handler call of the messages of `partition` acknowledged within [from, to]. */
export function longestWait(trace: Trace, partition: number, from: number, to: number): number {
  let longest = 0;
  for (const m of trace.messages.values()) {
    if (m.partition !== partition || m.ackedAt === undefined || m.ackedAt < from || m.ackedAt > to) continue;
    // Handled before its acknowledgement reached the publisher: no wait.
    longest = Math.max(longest, (m.handledAt ?? Number.POSITIVE_INFINITY) - m.ackedAt);
  }
  return longest;
}
