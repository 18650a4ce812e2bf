/**
 * Local health (Lifeguard "local health aware probe"): a node that misses
 * acks and nacks, or hears that others suspect it, is more likely slow itself
 * than surrounded by failures. It raises a score and scales its own probe
 * timeout and probe interval by `score + 1`, so it probes less often, waits
 * longer, and stops accusing healthy members. Each successful probe lowers the
 * score again.
 *
 * The deltas the state machine applies (as in memberlist):
 * - probe acked: −1;
 * - probe failed: +1 per expected nack that did not arrive (+1 if none were expected);
 * - this node had to refute a suspicion or death about itself: +1.
 */
export class Awareness {
  private current = 0;

  /** @param maxMultiplier - the largest factor timeouts are scaled by; the score stays in `[0, maxMultiplier − 1]`. */
  constructor(private readonly maxMultiplier: number) {
    if (!Number.isSafeInteger(maxMultiplier) || maxMultiplier < 1) {
      throw new RangeError(`awareness maxMultiplier must be an integer >= 1, got ${maxMultiplier}`);
    }
  }

  /** The health score: 0 is healthy. */
  get score(): number {
    return this.current;
  }

  applyDelta(delta: number): void {
    this.current = Math.min(this.maxMultiplier - 1, Math.max(0, this.current + delta));
  }

  /** `ticks × (score + 1)`. */
  scale(ticks: number): number {
    return ticks * (this.current + 1);
  }
}
