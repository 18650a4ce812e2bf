import { RelayError } from '@relaymq/sdk/protocol';

/**
 * What a (re)starting broker needs so that it neither refuses valid work nor
 * fails to start while its metadata is still being applied.
 *
 * The ordering at the root of issue 10's finding 4: peers may forward a
 * publish to a restarted broker (they still believe it leads) before it has
 * applied its own committed metadata. The partition lookup then found no
 * topic, answered `INVALID_PARTITION`, and the rejected creation stayed
 * cached: every later publish to that partition got the same answer, and
 * startup recovery awaited the cached rejection and exited with
 * `topic … has no partition …`.
 */

/** How long startup recovery may take in all before the broker serves anyway (the rest catches up). */
export const RECOVERY_TIMEOUT_MS = 30_000;

/**
 * Memoizes asynchronous creations by key (a partition's Raft group): callers
 * share one creation in flight, and a failed one is forgotten, so the next
 * call tries again rather than repeating the failure for ever.
 */
export class CreationCache<V> {
  private readonly entries = new Map<string, Promise<V>>();
  /** What each finished creation made, so the hot path reads it without awaiting a settled promise. */
  private readonly made = new Map<string, V>();

  get(key: string, create: () => Promise<V>): Promise<V> {
    const known = this.entries.get(key);
    if (known !== undefined) return known;
    const creating = create();
    this.entries.set(key, creating);
    creating.then(
      (value) => {
        if (this.entries.get(key) === creating) this.made.set(key, value);
      },
      () => {
        if (this.entries.get(key) === creating) this.entries.delete(key);
      },
    );
    return creating;
  }

  /** The value `key`'s creation made, once it finished (undefined while it runs, after it failed, or unknown). */
  now(key: string): V | undefined {
    return this.made.get(key);
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** Forgets `key` (a partition replica dropped), returning its creation if there was one. */
  take(key: string): Promise<V> | undefined {
    const known = this.entries.get(key);
    this.entries.delete(key);
    this.made.delete(key);
    return known;
  }

  entriesNow(): Array<[string, Promise<V>]> {
    return [...this.entries];
  }
}

/**
 * The answer for a partition of a topic this broker does not know yet (its
 * metadata lags, or it is starting): retriable, unlike `INVALID_PARTITION`,
 * which is only right once the topic is known and the partition is not in it.
 */
export function metadataLagging(self: string, topic: string, waitedMs: number): RelayError {
  return new RelayError('NOT_LEADER', `broker ${self} has not learned topic ${topic} yet (waited ${waitedMs} ms); try again`);
}

/** One named piece of startup recovery. */
export interface RecoveryTask {
  name: string;
  run: Promise<unknown>;
}

/**
 * Waits for every task at once, all under one bound, and returns the ones
 * that failed or did not finish in time (with why); never rejects.
 */
export async function settleWithin(tasks: readonly RecoveryTask[], timeoutMs: number): Promise<Array<{ name: string; error: string }>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<'expired'>((resolve) => {
    timer = setTimeout(() => resolve('expired'), Math.max(0, timeoutMs));
  });
  try {
    const outcomes = await Promise.all(
      tasks.map(async (task) => {
        try {
          const outcome = await Promise.race([task.run.then(() => 'done' as const), expired]);
          return outcome === 'done' ? undefined : { name: task.name, error: `not recovered within ${timeoutMs} ms` };
        } catch (err) {
          return { name: task.name, error: err instanceof Error ? err.message : String(err) };
        }
      }),
    );
    return outcomes.filter((o): o is { name: string; error: string } => o !== undefined);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `fn` at most once per `intervalMs` (retries that must not spin: hosting partitions whose creation failed). */
export function throttled(intervalMs: number, now: () => number, fn: () => void): () => void {
  let last = -Infinity;
  return () => {
    const t = now();
    if (t - last < intervalMs) return;
    last = t;
    fn();
  };
}
