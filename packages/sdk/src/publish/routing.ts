/**
 * What the publisher does when a broker refuses a partition's publishes for
 * a reason that may pass (`NOT_LEADER`, `NO_QUORUM`, `NOT_READY`, ...): a
 * pure policy, no timers, no I/O; the publisher applies its decisions.
 *
 * Leader hints are followed, with growing pauses, at most
 * {@link ROUTING_LIMITS.maxHintsInRow} times in a row per partition; after
 * that the partition goes through the active broker, which forwards it.
 * Refusals may move the whole connection to another broker, but at most once
 * per hold, and the hold doubles while refusals go on without an ack: two
 * brokers that each point at the other can never make the client ping-pong.
 * An ack for the partition ends its streak.
 */

/** Bounds of the policy; times in milliseconds. */
export const ROUTING_LIMITS = {
  /** Leader hints followed in a row for one partition without an ack in between. */
  maxHintsInRow: 3,
  /** Pause before the second resend of a partition refused in a row; it doubles per refusal. */
  retryBaseMs: 50,
  /** Longest pause between two resends of a refused partition. */
  retryMaxMs: 2000,
  /** Least time between two failovers caused by refusals; it doubles while no publish is acknowledged. */
  failoverHoldMs: 1000,
  /** Longest hold between two failovers caused by refusals. */
  failoverHoldMaxMs: 30_000,
  /**
   * How long a partition whose refusal named a broker not pooled yet waits for
   * the pool to reach it before going through the active broker again (which
   * refused it, or could not reach that broker).
   */
  dialWaitMs: 1000,
  /**
   * Longest wait of a partition's newer publishes for its older ones, in
   * flight on the connection it is moving off, before it is resent on its
   * new route (see route-switch.ts).
   */
  switchWaitMs: 500,
} as const;

/** What to do with a refused partition. */
export type RefusalDecision =
  /** Send the partition to `leader` from now on (directly when pooled, otherwise through the active broker), after `delayMs`. */
  | { kind: 'follow'; leader: string; delayMs: number }
  /** Move the whole connection to another broker; the outbox is republished there. */
  | { kind: 'failover' }
  /** Send the partition again through the active broker (forgetting its leader) after `delayMs`; a failover is held off. */
  | { kind: 'retry'; delayMs: number };

/** One refusal as the policy needs to know it. */
export interface Refusal {
  /** The partition, as the publisher keys it. */
  partition: string;
  /** The leader the broker named, if any. */
  leader: string | undefined;
  /** Whether the refusal came from the active connection (a routed one is simply left). */
  fromActive: boolean;
  nowMs: number;
}

/** Per-client state of the policy: streaks per partition, and the failover hold. */
export class RefusalPolicy {
  /** Per partition: refusals and hints followed since its last ack. */
  private readonly streaks = new Map<string, { refusals: number; hints: number }>();
  /** Failovers caused by refusals since the last ack. */
  private failoversInRow = 0;
  private lastFailoverMs = Number.NEGATIVE_INFINITY;

  constructor(private readonly limits: typeof ROUTING_LIMITS = ROUTING_LIMITS) {}

  decide(refusal: Refusal): RefusalDecision {
    const streak = this.streaks.get(refusal.partition) ?? { refusals: 0, hints: 0 };
    this.streaks.set(refusal.partition, streak);
    streak.refusals++;
    // The first resend goes at once (a hint is usually right); later ones back off.
    const delayMs = streak.refusals <= 1 ? 0 : Math.min(this.limits.retryMaxMs, this.limits.retryBaseMs * 2 ** (streak.refusals - 2));
    if (refusal.leader !== undefined && streak.hints < this.limits.maxHintsInRow) {
      streak.hints++;
      return { kind: 'follow', leader: refusal.leader, delayMs };
    }
    if (refusal.fromActive && refusal.nowMs - this.lastFailoverMs >= this.holdMs()) {
      this.failoversInRow++;
      this.lastFailoverMs = refusal.nowMs;
      return { kind: 'failover' };
    }
    return { kind: 'retry', delayMs: Math.max(delayMs, this.limits.retryBaseMs) };
  }

  /** A publish of `partition` was acknowledged: its streak ends, and so does the failover backoff. */
  acknowledged(partition: string): void {
    this.streaks.delete(partition);
    this.failoversInRow = 0;
  }

  /** How long after the last refusal-caused failover the next may come. */
  holdMs(): number {
    if (this.failoversInRow === 0) return this.limits.failoverHoldMs;
    return Math.min(this.limits.failoverHoldMaxMs, this.limits.failoverHoldMs * 2 ** (this.failoversInRow - 1));
  }
}
