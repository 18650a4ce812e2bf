/**
 * Which broker serves a subscription (issue 12, publish → deliver): a pure
 * policy, no timers, no I/O; the subscriber applies it.
 *
 * Any replica can serve committed messages, but a follower learns that an
 * entry is committed only from the leader's next message, after the leader
 * answered the publisher: one more hop and one more process wake-up on the
 * way to every delivery (about 80–200 µs on the 2-core bench machine). So a
 * subscription to one topic is served by the broker that leads the most of
 * its partitions; Kafka consumers fetch from the leader by default, and
 * JetStream push consumers deliver from the stream leader. A wildcard
 * subscription, or a consumer-group member, stays on the active broker.
 *
 * A subscription is one pattern on one connection, so for a topic whose
 * partitions are led by different brokers the others are still served from a
 * follower.
 */

/** Bounds of the placement; times in milliseconds. */
export interface PlacementLimits {
  readonly refreshMs: number;
  readonly retryBaseMs: number;
  readonly retryAttempts: number;
  readonly refusingAvoidMs: number;
}

/** The placement's bounds. */
export const PLACEMENT_LIMITS: PlacementLimits = {
  /**
   * How often the leaders of placed topics are looked up again (one metadata
   * request per subscription): a leader that moved without closing a
   * connection (a transfer, a rejoin) is followed within this long, and the
   * pool keeps the links to leaders in use open.
   */
  refreshMs: 10_000,
  /** First pause before looking the leader up again after the connection to it closed; it doubles per attempt. */
  retryBaseMs: 250,
  /** Lookups after a lost leader (an election takes about a second) before waiting for the next refresh. */
  retryAttempts: 5,
  /**
   * How long a broker that refused a durable subscription twice in a row
   * (`NOT_READY`: its metadata stays behind the metadata leader's) is not
   * where the subscription is placed, nor moved back to, once it moved to
   * another broker: three refreshes, so a broker lagging for good costs one
   * move (and two refusals) per this long at most, and one that caught up
   * serves the subscription again (its leader: the fewest hops) soon after.
   */
  refusingAvoidMs: 30_000,
};

/**
 * The broker to serve a subscription to one topic from: the one leading the
 * most of its partitions (`leaders[p]`, `""` when unknown); on a tie the
 * current one if it is among them, else the leader of the lowest partition.
 * `undefined` when no leader is known (the subscription stays where it is).
 */
export function homeBroker(leaders: readonly string[] | undefined, current: string | undefined): string | undefined {
  if (leaders === undefined) return undefined;
  const led = new Map<string, number>();
  let most = 0;
  for (const leader of leaders) {
    if (leader === '') continue;
    const count = (led.get(leader) ?? 0) + 1;
    led.set(leader, count);
    most = Math.max(most, count);
  }
  if (most === 0) return undefined;
  if (current !== undefined && led.get(current) === most) return current;
  // A Map iterates in insertion order: the first leader seen is the lowest partition's.
  for (const [leader, count] of led) if (count === most) return leader;
  return undefined;
}
