/**
 * Keeps a partition's publishes in order when its route changes: when they
 * start going to another connection (its leader's link opened, or fresher
 * leader information named another broker) while some are still in flight on
 * the old one, the newer ones wait until the older are answered. Sent at
 * once, they could reach the leader first (a direct link overtakes a
 * forwarded path), be refused as a sequence gap and be resent, with the
 * in-flight ones answered as duplicates. A wait is bounded
 * ({@link ROUTING_LIMITS.switchWaitMs}): then the partition is resent on its
 * new route from its oldest unacknowledged message (the copies already on
 * their way are deduplicated by producer id and seq).
 *
 * Pure bookkeeping plus one timer per waiting partition; the publisher
 * says what is in flight and applies the outcome.
 */
export class RouteSwitches {
  private readonly waiting = new Map<string, { topic: string; partition: number; timer: ReturnType<typeof setTimeout> }>();

  constructor(
    private readonly waitMs: number,
    /** The wait of a partition ran out: resend it on its new route. */
    private readonly expired: (topic: string, partition: number) => void,
  ) {}

  /**
   * Whether the partition may be sent on its route now: only when nothing of
   * it is in flight on another connection. Otherwise it waits (from the first
   * time asked) and false is returned.
   */
  maySend(key: string, topic: string, partition: number, inFlightElsewhere: boolean): boolean {
    if (!inFlightElsewhere) {
      this.cancel(key);
      return true;
    }
    if (!this.waiting.has(key)) {
      const timer = setTimeout(() => {
        this.waiting.delete(key);
        this.expired(topic, partition);
      }, this.waitMs);
      this.waiting.set(key, { topic, partition, timer });
    }
    return false;
  }

  /**
   * Partitions whose wait is over because nothing of them is in flight any
   * more (`inFlight` says, per partition): they are forgotten here and
   * returned, for the publisher to queue again.
   */
  release(inFlight: (topic: string, partition: number) => boolean): Array<{ topic: string; partition: number }> {
    const released: Array<{ topic: string; partition: number }> = [];
    for (const [key, waiting] of this.waiting) {
      if (inFlight(waiting.topic, waiting.partition)) continue;
      this.cancel(key);
      released.push({ topic: waiting.topic, partition: waiting.partition });
    }
    return released;
  }

  /** How many partitions wait. */
  get size(): number {
    return this.waiting.size;
  }

  /** Whether a partition waits for its route to change. */
  has(key: string): boolean {
    return this.waiting.has(key);
  }

  cancel(key: string): void {
    const waiting = this.waiting.get(key);
    if (waiting === undefined) return;
    clearTimeout(waiting.timer);
    this.waiting.delete(key);
  }

  clear(): void {
    for (const key of [...this.waiting.keys()]) this.cancel(key);
  }
}
