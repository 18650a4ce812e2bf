/**
 * A token bucket: `ratePerSecond` tokens flow in, at most `burst` are kept.
 * Pure: the caller passes the clock.
 */
export class TokenBucket {
  private tokens: number;
  private lastMs: number;

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    nowMs: number,
  ) {
    this.tokens = burst;
    this.lastMs = nowMs;
  }

  /**
   * Takes `count` tokens if the bucket holds them (or is full, for a request
   * larger than the burst: it then runs into debt, repaid before the next).
   */
  take(count: number, nowMs: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((nowMs - this.lastMs) * this.ratePerSecond) / 1000);
    this.lastMs = nowMs;
    if (this.tokens < Math.min(count, this.burst)) return false;
    this.tokens -= count;
    return true;
  }
}
