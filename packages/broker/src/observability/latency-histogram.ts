/**
 * Publish latencies as counts per bucket, so brokers' samples can be added
 * into a cluster-wide distribution: percentiles of several brokers cannot be
 * combined, bucket counts can. Buckets grow geometrically by
 * {@link BUCKET_GROWTH} from {@link FIRST_BUCKET_MS}, so a percentile read
 * from them is within that factor of the true value.
 */

/** Upper bound of the first bucket, ms. */
export const FIRST_BUCKET_MS = 0.05;
/** Each bucket's upper bound is this factor of the previous one's (about 10 % resolution). */
export const BUCKET_GROWTH = 1.1;
/** Buckets: the last one ends above 60 s and collects everything slower. */
export const BUCKET_COUNT = 150;

/** Sparse counts: bucket index → latencies in it. */
export type LatencyCounts = Record<number, number>;

/** Upper bound (ms) of bucket `index`. */
export function bucketUpperMs(index: number): number {
  return FIRST_BUCKET_MS * BUCKET_GROWTH ** index;
}

/** Bucket of a latency in ms. */
export function bucketOf(ms: number): number {
  if (!(ms > FIRST_BUCKET_MS)) return 0;
  const index = Math.ceil(Math.log(ms / FIRST_BUCKET_MS) / Math.log(BUCKET_GROWTH) - 1e-9);
  return Math.min(BUCKET_COUNT - 1, index);
}

/** Counts of `latenciesMs`. */
export function countLatencies(latenciesMs: readonly number[]): LatencyCounts {
  const counts: LatencyCounts = {};
  for (const ms of latenciesMs) {
    const b = bucketOf(ms);
    counts[b] = (counts[b] ?? 0) + 1;
  }
  return counts;
}

/** Sum of several counts (brokers' samples of one second). */
export function addCounts(all: readonly LatencyCounts[]): LatencyCounts {
  const sum: LatencyCounts = {};
  for (const counts of all) for (const [b, n] of Object.entries(counts)) sum[Number(b)] = (sum[Number(b)] ?? 0) + n;
  return sum;
}

/**
 * The `q` quantile (0–1) of counted latencies as the upper bound of the
 * bucket holding it (nearest rank), rounded to µs; null when nothing was counted.
 */
export function countsQuantile(counts: LatencyCounts, q: number): number | null {
  const entries = Object.entries(counts)
    .map(([b, n]) => [Number(b), n] as const)
    .filter(([, n]) => n > 0)
    .sort((a, b) => a[0] - b[0]);
  const total = entries.reduce((s, [, n]) => s + n, 0);
  if (total === 0) return null;
  const rank = Math.min(total, Math.max(1, Math.ceil(q * total)));
  let seen = 0;
  for (const [b, n] of entries) {
    seen += n;
    if (seen >= rank) return Math.round(bucketUpperMs(b) * 1000) / 1000;
  }
  return null;
}

/** Checks counts received from a peer: small non-negative integers under valid bucket indexes. */
export function parseCounts(value: unknown): LatencyCounts | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const counts: LatencyCounts = {};
  for (const [b, n] of Object.entries(value as Record<string, unknown>)) {
    const index = Number(b);
    if (!Number.isInteger(index) || index < 0 || index >= BUCKET_COUNT || !Number.isSafeInteger(n) || (n as number) < 0) return undefined;
    counts[index] = n as number;
  }
  return counts;
}
