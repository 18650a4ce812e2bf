/**
 * The bytes-per-second throttle of replica moves (`moveBytesPerSecond`): a
 * new replica copying a partition's segments from its leader (a snapshot
 * install while it is a Raft learner) waits after each fetched batch so that
 * the copies into this broker average at most the rate, leaving the disks
 * and links to the traffic the cluster serves. One throttle per broker,
 * shared by every move into it. Raft's own appends are never throttled.
 */

/**
 * How much of the time since the last batch may pay for the next one: the
 * fetch of a batch takes time, and that time counts toward the rate (a copy
 * slower than the rate never waits), but a long idle spell is not saved up
 * as a burst of more than this.
 */
export const MOVE_THROTTLE_CREDIT_MS = 1000;

export class MoveThrottle {
  /** When the bytes taken so far have been paid for at the rate. */
  private paidUntil = 0;
  /** When the last call returned (the next batch was fetched since), `undefined` before the first. */
  private lastReturn: number | undefined;

  /**
   * @param bytesPerSecond - the rate; 0 does not throttle.
   * @param now - clock in ms; `sleep` waits (injected so the arithmetic is tested without waiting).
   */
  constructor(
    private readonly bytesPerSecond: number,
    private readonly now: () => number = Date.now,
    private readonly sleep: (ms: number) => Promise<void> = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  ) {}

  /** Counts `bytes` just copied and resolves once the copies so far fit the rate (at once when unthrottled). */
  async took(bytes: number): Promise<void> {
    if (this.bytesPerSecond <= 0 || bytes <= 0) return;
    const now = this.now();
    const credit = Math.min(now - (this.lastReturn ?? now), MOVE_THROTTLE_CREDIT_MS);
    this.paidUntil = Math.max(this.paidUntil, now - credit) + (bytes * 1000) / this.bytesPerSecond;
    const wait = this.paidUntil - now;
    if (wait >= 1) await this.sleep(Math.ceil(wait));
    this.lastReturn = this.now();
  }
}

/** The bytes of a fetched batch, as the throttle counts them: the payloads. */
export function fetchedBytes(messages: ReadonlyArray<{ data: Uint8Array }>): number {
  let bytes = 0;
  for (const m of messages) bytes += m.data.byteLength;
  return bytes;
}
