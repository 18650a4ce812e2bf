import { FIELD_LIMITS, type Encoding } from '@relaymq/sdk/protocol';
import type { AppendOutcome, PartitionLog } from './partition.js';

/**
 * What a partition's replicated log carries: one batch of publishes from one
 * producer, as the leader accepted it. Every replica applies the same commands
 * in the same order, so offsets, timestamps and deduplication come out the same.
 */
export interface PublishCommand {
  producerId: string;
  /**
   * The clock of the broker that took the publish from the client, read before it
   * forwarded the batch to the leader (`ClusterEngine.append`), so not the leader's;
   * every replica stores the same timestamp (raised to the partition's last, so it never decreases).
   */
  timestampMs: number;
  /** False for `ack: none` publishes, which are never deduplicated. */
  dedupe: boolean;
  /** Seq of the first message; message `i` has `firstSeq + i`. */
  firstSeq: number;
  messages: Array<{ key?: string; headers?: Record<string, string>; data: Uint8Array; encoding: Encoding }>;
}

/** Applies a committed command; deterministic, so every replica gets the same outcomes. */
export function applyPublish(partition: PartitionLog, command: PublishCommand): AppendOutcome[] {
  return command.messages.map((message, i) => {
    const request = {
      producerId: command.producerId,
      seq: command.firstSeq + i,
      key: message.key,
      headers: message.headers,
      data: message.data,
      encoding: message.encoding,
    };
    return command.dedupe ? partition.append(request, command.timestampMs) : partition.appendUnchecked(request, command.timestampMs);
  });
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
  const messages: PublishCommand['messages'] = [];
  for (const raw of o.messages as unknown[]) {
    if (typeof raw !== 'object' || raw === null) return undefined;
    const m = raw as Record<string, unknown>;
    if (!(m.data instanceof Uint8Array) || (m.encoding !== 'raw' && m.encoding !== 'msgpack')) return undefined;
    const message: PublishCommand['messages'][number] = { data: m.data, encoding: m.encoding };
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
