import type { ApplyTarget } from './apply.js';
import type { BatchMessage } from './batch.js';
import type { EncodedMessages, StoredMessage } from './message.js';
import { MessageWindow } from './message-window.js';
import { ProducerTable } from './producers.js';

export type { EncodedMessages, StoredMessage } from './message.js';
export type { AppendOutcome, BatchMessage, ProducerBatch } from './batch.js';

/**
 * A partition's log as the replicated state machine sees it: publishes are
 * applied to it by `applyPublish` (apply.ts), synchronously (deterministic
 * on every replica), through its idempotence table and `store`; reads may
 * need the disk. {@link Partition} keeps it in memory, the on-disk one lives
 * in storage/.
 */
export interface PartitionLog extends ApplyTarget {
  /** First offset still stored. */
  readonly startOffset: number;
  /** Offset the next message will get. */
  readonly endOffset: number;
  /** Messages from `offset`; synchronous when they are in memory. See {@link Partition.read}. */
  read(offset: number, maxCount: number, maxBytes: number): StoredMessage[] | Promise<StoredMessage[]>;
  /**
   * Like {@link read}, the messages encoded for a delivery frame straight
   * from their stored bytes; only logs that store their messages encoded
   * (layout `unified`) have it.
   */
  readEncoded?(offset: number, maxCount: number, maxBytes: number): Promise<EncodedMessages>;
  /** First offset stored at or after `timeMs` (the end offset if none). */
  offsetForTime(timeMs: number): number | Promise<number>;
  /** Bytes it holds (segment files on disk; message data in memory): what a new replica copies. */
  readonly sizeBytes: number;
}

/** Limits of one partition. */
export interface PartitionLimits {
  /** Recent seqs per producer answerable as duplicates. */
  dedupeWindow: number;
  /** Data bytes kept; the oldest messages go first (the newest is always kept). */
  retentionBytes: number;
}

/**
 * One partition in memory: a log of messages with dense offsets, of which the
 * newest `retentionBytes` are kept, and the idempotence table. Pure: time is
 * passed in, nothing is scheduled.
 */
export class Partition implements PartitionLog {
  private readonly window = new MessageWindow(0);
  /** The idempotence table, checked and recorded by `applyPublish`. */
  readonly producers: ProducerTable;

  constructor(private readonly limits: PartitionLimits) {
    this.producers = new ProducerTable(limits.dedupeWindow);
  }

  /** Offset the next message will get. */
  get endOffset(): number {
    return this.window.endOffset;
  }

  /** First offset still stored. */
  get startOffset(): number {
    return this.window.firstOffset;
  }

  /** Bytes of message data held. */
  get dataBytes(): number {
    return this.window.bytes;
  }

  get sizeBytes(): number {
    return this.window.bytes;
  }

  /** Stores `messages` at the next offsets (no checks: see `applyPublish`); returns the first. */
  store(messages: readonly BatchMessage[], timestampMs: number): number {
    const first = this.endOffset;
    for (const m of messages) {
      const last = this.window.lastTimestamp;
      const message: StoredMessage = {
        offset: this.endOffset,
        timestamp: last === undefined ? timestampMs : Math.max(timestampMs, last),
        data: m.data,
        encoding: m.encoding ?? 'raw',
      };
      if (m.key !== undefined) message.key = m.key;
      if (m.headers !== undefined) message.headers = m.headers;
      this.window.push(message);
    }
    // The oldest go first, down to `retentionBytes`; the newest always stays.
    while (this.window.bytes > this.limits.retentionBytes && this.window.size > 1) this.window.dropOldest();
    return first;
  }

  /**
   * Up to `maxCount` messages from `offset` (from the start offset when
   * `offset` was already removed), stopping early once `maxBytes` of data is
   * reached (at least one).
   */
  read(offset: number, maxCount: number, maxBytes: number): StoredMessage[] {
    const result: StoredMessage[] = [];
    this.window.read(offset, maxCount, maxBytes, result);
    return result;
  }

  /** First retained offset whose timestamp is at or after `timeMs` (the end offset if none). */
  offsetForTime(timeMs: number): number {
    return this.window.offsetForTime(timeMs);
  }
}
