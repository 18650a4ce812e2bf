import type { PublishReceipt, RelayClient } from '@relaymq/sdk';
import { within } from './wait.js';

/**
 * Publishes messages numbered `from` .. `from + count - 1` to `topic`, message
 * `n` with key `k<n % keys>` and header `n`, `window` in flight at once;
 * records each receipt in `acked` by number. Read back, the header tells which
 * message a stored one is, and each key's numbers must rise.
 */
export async function publishNumbered(
  client: RelayClient,
  topic: string,
  range: { from: number; count: number; keys: number; window: number },
  acked: Map<number, PublishReceipt>,
  timeoutMs = 30_000,
): Promise<void> {
  let next = range.from;
  const lane = async (): Promise<void> => {
    while (next < range.from + range.count) {
      const n = next++;
      acked.set(n, await within(client.publish(topic, `m${n}`, { key: `k${n % range.keys}`, headers: { n: String(n) } }), `publish ${n}`, timeoutMs));
    }
  };
  await Promise.all(Array.from({ length: range.window }, lane));
}

/** A stored message as read back: where it is, and the key and header `n` {@link publishNumbered} gave it. */
export interface ReadBack {
  partition: number;
  offset: number;
  key?: string;
  headers?: Record<string, string>;
}

/**
 * What is wrong with `read` (each partition in offset order) against the
 * receipts of {@link publishNumbered}: a message read twice, a key's numbers
 * not rising, an acknowledged message missing or not where its ack said, one
 * read that was never acknowledged. Empty when every acknowledged message is
 * there once, in order.
 */
export function readBackProblems(read: readonly ReadBack[], acked: ReadonlyMap<number, PublishReceipt>): string[] {
  const problems: string[] = [];
  const seen = new Map<number, { partition: number; offset: number }>();
  const lastByKey = new Map<string, number>();
  for (const m of read) {
    const n = Number(m.headers?.n);
    if (seen.has(n)) problems.push(`message ${n} read twice`);
    seen.set(n, { partition: m.partition, offset: m.offset });
    const last = lastByKey.get(m.key ?? '') ?? -1;
    if (n <= last) problems.push(`key ${m.key}: message ${n} after ${last}`);
    lastByKey.set(m.key ?? '', n);
    if (!acked.has(n)) problems.push(`message ${n} read but never acknowledged`);
  }
  for (const [n, receipt] of acked) {
    const at = seen.get(n);
    if (at === undefined) problems.push(`message ${n} acknowledged but not read`);
    else if (at.partition !== receipt.partition || at.offset !== receipt.offset) {
      problems.push(`message ${n} acknowledged at ${receipt.partition}/${receipt.offset}, read at ${at.partition}/${at.offset}`);
    }
  }
  return problems;
}
