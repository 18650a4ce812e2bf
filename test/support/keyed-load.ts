import { expect } from 'vitest';
import type { Message, RelayClient } from '@relaymq/sdk';
import { within } from './wait.js';

/** A keyed publishing load: per key, `n` counts up; `acked` lists `key:n` of each acknowledged publish. */
export interface KeyedLoad {
  readonly acked: string[];
  /** Stops publishing and resolves once the publishes in flight settled. */
  stop(): Promise<void>;
}

/** Publishes `{ key, n }` to `topic` with `key` as the message key, one message per key at a time, until stopped. */
export function startKeyedLoad(client: RelayClient, topic: string, keys: readonly string[]): KeyedLoad {
  const next = new Map(keys.map((k) => [k, 0]));
  const acked: string[] = [];
  let stopped = false;
  const running = (async () => {
    while (!stopped) {
      await Promise.all(
        keys.map(async (key) => {
          const n = next.get(key) as number;
          next.set(key, n + 1);
          await client.publish(topic, { key, n }, { key });
          acked.push(`${key}:${n}`);
        }),
      );
    }
  })();
  return {
    acked,
    stop: async () => {
      stopped = true;
      await within(running, 'the keyed publishing load to end', 60_000);
    },
  };
}

/** What a subscriber to a {@link startKeyedLoad} topic saw: `key:n` in arrival order, and per key the `n`s. */
export interface KeyedSeen {
  readonly seen: string[];
  readonly perKey: Map<string, number[]>;
  handler: (m: Message<{ key: string; n: number }>) => void;
}

export function keyedSeen(): KeyedSeen {
  const seen: string[] = [];
  const perKey = new Map<string, number[]>();
  return {
    seen,
    perKey,
    handler: (m) => {
      seen.push(`${m.data.key}:${m.data.n}`);
      perKey.set(m.data.key, [...(perKey.get(m.data.key) ?? []), m.data.n]);
    },
  };
}

/** Asserts that `got` holds each message once, per key in publish order (n = 0, 1, ...), and every one of `acked`. */
export function expectEachOnceInKeyOrder(got: KeyedSeen, acked: readonly string[]): void {
  expect(new Set(got.seen).size).toBe(got.seen.length);
  for (const [, ns] of got.perKey) expect(ns).toEqual(ns.map((_, i) => i));
  const seen = new Set(got.seen);
  expect(acked.filter((a) => !seen.has(a))).toEqual([]);
}
