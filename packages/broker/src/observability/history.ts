/** Recent events kept for the dashboard. */
export const MAX_RECENT_EVENTS = 100;
/** Points of the live charts (one per sample interval: 2 minutes at 1 s). */
export const MAX_SERIES_POINTS = 120;

/** Something an operator wants to see on the dashboard. */
export interface ClusterEvent {
  timeMs: number;
  kind: 'leader-changed' | 'member-state' | 'alert';
  message: string;
}

import type { LatencyCounts } from './latency-histogram.js';

/** One point of the live charts. */
export interface SeriesPoint {
  /** The whole second the interval ends at, so brokers' points of one second line up. */
  timeMs: number;
  /** Messages per second accepted from publishers over the last interval. */
  inPerSec: number;
  /** Messages per second delivered to subscribers. */
  outPerSec: number;
  /** Publish latency percentiles over the interval, ms (null: no publish acknowledged). */
  p50Ms: number | null;
  p99Ms: number | null;
  /** The interval's publish latencies by bucket, to add into cluster-wide percentiles (latency-histogram.ts). */
  latency: LatencyCounts;
}

/**
 * The whole second a sampler firing at `nowMs` closes, or undefined when it
 * closes none after `lastMs` (the previous sample's second, or the start).
 * A timer may fire a little before the second it was set for (Date.now and
 * the timers' monotonic clock drift apart); sampling then would give a second
 * point for the same second over an interval of about a millisecond, and a
 * rate a thousand times too high.
 */
export function closedSecond(nowMs: number, lastMs: number, intervalMs: number): number | undefined {
  const second = Math.floor(nowMs / intervalMs) * intervalMs;
  return second > lastMs ? second : undefined;
}

/** A bounded ring of recent items, oldest dropped first. */
export class Ring<T> {
  private readonly items: T[] = [];

  constructor(private readonly capacity: number) {}

  push(item: T): void {
    this.items.push(item);
    if (this.items.length > this.capacity) this.items.splice(0, this.items.length - this.capacity);
  }

  /** Oldest first. */
  toArray(): T[] {
    return [...this.items];
  }
}

/** The `q` quantile (0–1) of `values`, nearest rank; null when empty. */
export function quantile(values: readonly number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] as number;
}
