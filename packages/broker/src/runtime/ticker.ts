/**
 * The broker's one clock for its protocol cores: every Raft group and SWIM
 * advance by one tick every {@link TICK_MS} milliseconds, and every timing
 * option (given in milliseconds) is converted to ticks of that length here.
 */
import { RelayError } from '@relaymq/sdk/protocol';

/** Length of one tick, in milliseconds: the Raft heartbeat of the default (`lan`) tuning. */
export const TICK_MS = 50;

/** Converts milliseconds to whole ticks (rounded up, at least 1) of `tickMs` milliseconds. */
export function ticksFromMs(ms: number, tickMs: number = TICK_MS): number {
  if (!(ms > 0) || !(tickMs > 0)) throw new RelayError('INVALID_ARGUMENT', `ms (${ms}) and tickMs (${tickMs}) must be positive`);
  return Math.max(1, Math.ceil(ms / tickMs));
}

/**
 * One interval timer shared by every tick-driven core of a broker. It runs
 * while something is registered, and never keeps the process alive.
 */
export class Ticker {
  private readonly handlers = new Set<() => void>();
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly tickMs: number = TICK_MS) {}

  /** Calls `handler` on every tick until the returned function is called. */
  add(handler: () => void): () => void {
    this.handlers.add(handler);
    if (this.timer === undefined) {
      this.timer = setInterval(() => {
        for (const tick of this.handlers) tick();
      }, this.tickMs);
      this.timer.unref();
    }
    return () => {
      this.handlers.delete(handler);
      if (this.handlers.size === 0 && this.timer !== undefined) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    };
  }
}
