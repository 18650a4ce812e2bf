/**
 * Suspicion timeouts (memberlist / Lifeguard "local health aware suspicion").
 *
 * A suspected member gets a timeout between `min` and `max`. It starts at
 * `max` and shrinks toward `min` logarithmically as independent members
 * confirm the suspicion: one slow or badly connected accuser alone waits the
 * longest, giving the accused the most time to refute.
 */
import type { SwimConfig } from './config.js';
import type { MemberId } from './types.js';

export interface SuspicionBounds {
  /** Timeout once every expected confirmation arrived, in ticks. */
  minTicks: number;
  /** Timeout with no confirmation, in ticks. */
  maxTicks: number;
}

/** `min = suspicionMult × max(1, log10(n)) × probeInterval`, `max = suspicionMaxTimeoutMult × min`, for a cluster of `n`. */
export function suspicionBounds(
  config: Pick<SwimConfig, 'suspicionMult' | 'suspicionMaxTimeoutMult' | 'probeIntervalTicks'>,
  n: number,
): SuspicionBounds {
  const nodeScale = Math.max(1, Math.log10(Math.max(1, n)));
  const minTicks = Math.ceil(config.suspicionMult * nodeScale * config.probeIntervalTicks);
  return { minTicks, maxTicks: config.suspicionMaxTimeoutMult * minTicks };
}

/**
 * Independent confirmations expected before the timeout reaches its minimum:
 * `suspicionMult − 2`, or 0 when the cluster is too small to provide them
 * (`n − 2` members other than the accused and this node).
 */
export function expectedConfirmations(suspicionMult: number, n: number): number {
  const k = suspicionMult - 2;
  return n - 2 < k ? 0 : Math.max(0, k);
}

/** `max − (max − min) × log(c + 1) / log(k + 1)`, floored and never below `min`; `min` when no confirmation is expected. */
export function suspicionTimeoutTicks(bounds: SuspicionBounds, expected: number, confirmations: number): number {
  if (expected < 1) return bounds.minTicks;
  const fraction = Math.log(Math.min(confirmations, expected) + 1) / Math.log(expected + 1);
  const raw = bounds.maxTicks - fraction * (bounds.maxTicks - bounds.minTicks);
  return Math.max(bounds.minTicks, Math.floor(raw));
}

/** One running suspicion of one member, as seen by this node. */
export class Suspicion {
  /** Who accused (the first accuser included, so it cannot confirm itself). Holds at most `expected + 1` ids. */
  private readonly accusers = new Set<MemberId>();

  constructor(
    /** Tick at which this node started suspecting. */
    readonly startTick: number,
    readonly bounds: SuspicionBounds,
    readonly expected: number,
    firstAccuser: MemberId,
  ) {
    this.accusers.add(firstAccuser);
  }

  /** Independent confirmations counted so far (capped at `expected`). */
  get confirmations(): number {
    return this.accusers.size - 1;
  }

  /** Records an accusation; true if it was a new, counted confirmation. */
  confirm(from: MemberId): boolean {
    if (this.confirmations >= this.expected || this.accusers.has(from)) return false;
    this.accusers.add(from);
    return true;
  }

  /** The tick at which the member is declared dead unless it refutes first. */
  deadlineTick(): number {
    return this.startTick + suspicionTimeoutTicks(this.bounds, this.expected, this.confirmations);
  }
}
