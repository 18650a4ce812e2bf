/**
 * Whether a group's leader counts as known, allowing for an election: once
 * a leader was known, losing it counts only after `graceMs` without a new
 * one. A broker's readiness rides on the metadata leader, and every broker
 * loses that leader for the moment of an election, not all at the same
 * moment: reporting each loss made clients move off one broker, then off the
 * next (chaos 3/3 seed 263, 2026-12-06: two moves and a 3.4 s wait while one
 * broker's links were slow). A leader never known counts as unknown at once
 * (a broker that has not joined is not ready).
 */
export class LeaderGrace {
  private everKnown = false;
  private lostAtMs: number | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;

  /** `expired` runs when a lost leader stops counting as known (readiness changes then, without a leader change). */
  constructor(
    private readonly graceMs: number,
    private readonly now: () => number,
    private readonly expired: () => void,
  ) {}

  /** The group's leader changed to `leader` (null: none known). */
  observe(leader: string | null): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (leader !== null) {
      this.everKnown = true;
      this.lostAtMs = undefined;
      return;
    }
    if (!this.everKnown || this.lostAtMs !== undefined) return;
    this.lostAtMs = this.now();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.expired();
    }, this.graceMs);
    this.timer.unref?.();
  }

  /** Whether `leader` (the group's leader now) counts as known: it is, or it was lost less than `graceMs` ago. */
  known(leader: string | null): boolean {
    if (leader !== null) return true;
    return this.lostAtMs !== undefined && this.now() - this.lostAtMs < this.graceMs;
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
