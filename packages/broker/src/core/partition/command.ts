import { FIELD_LIMITS } from '@relaymq/sdk/protocol';
import type { BatchMessage, ProducerBatch } from './batch.js';

/**
 * What a partition's replicated log carries: one {@link ProducerBatch} as the
 * leader accepted it, with the time and whether it is deduplicated. Every
 * replica applies the same commands in the same order (`applyPublish`,
 * apply.ts), so offsets, timestamps and deduplication come out the same.
 */
export interface PublishCommand extends ProducerBatch {
  /**
   * The clock of the broker that took the publish from the client, read before it
   * forwarded the batch to the leader (`ClusterEngine.append`), so not the leader's;
   * every replica stores the same timestamp (raised to the partition's last, so it never decreases).
   */
  timestampMs: number;
  /** False for `ack: none` publishes, which are never deduplicated. */
  dedupe: boolean;
}

/**
 * Checks a command that arrived from a peer (inside a Raft entry): peers are
 * other brokers, but a bug or a stray process must not crash this one.
 * Returns undefined when the value is not a well-formed command.
 */
export function parsePublishCommand(value: unknown): PublishCommand | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const o = value as Record<string, unknown>;
  if (typeof o.producerId !== 'string' || o.producerId.length > 256) return undefined;
  if (!isUint(o.timestampMs) || !isUint(o.firstSeq) || typeof o.dedupe !== 'boolean') return undefined;
  if (!Array.isArray(o.messages) || o.messages.length > FIELD_LIMITS.maxBatch) return undefined;
  const messages: BatchMessage[] = [];
  for (const raw of o.messages as unknown[]) {
    if (typeof raw !== 'object' || raw === null) return undefined;
    const m = raw as Record<string, unknown>;
    if (!(m.data instanceof Uint8Array)) return undefined;
    const message: BatchMessage = { data: m.data };
    // Absent means raw, as on the wire.
    if (m.encoding !== undefined && m.encoding !== null) {
      if (m.encoding !== 'raw' && m.encoding !== 'msgpack') return undefined;
      message.encoding = m.encoding;
    }
    if (m.key !== undefined && m.key !== null) {
      if (typeof m.key !== 'string') return undefined;
      message.key = m.key;
    }
    if (m.headers !== undefined && m.headers !== null) {
      if (typeof m.headers !== 'object' || Array.isArray(m.headers)) return undefined;
      const headers = m.headers as Record<string, unknown>;
      if (!Object.values(headers).every((v) => typeof v === 'string')) return undefined;
      message.headers = headers as Record<string, string>;
    }
    messages.push(message);
  }
  return { producerId: o.producerId, timestampMs: o.timestampMs, dedupe: o.dedupe, firstSeq: o.firstSeq, messages };
}

function isUint(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
