import type { Encoding } from '@relaymq/sdk/protocol';
import { ProducerTable, type SeqCheck } from './producers.js';

/** A message as stored in a partition log. */
export interface StoredMessage {
  offset: number;
  /** Append time, Unix ms; never decreases within a partition. */
  timestamp: number;
  key?: string;
  headers?: Record<string, string>;
  data: Uint8Array;
  encoding: Encoding;
}

/** A message to append, from producer `producerId` with sequence number `seq`. */
export interface AppendRequest {
  producerId: string;
  seq: number;
  key?: string;
  headers?: Record<string, string>;
  data: Uint8Array;
  encoding: Encoding;
}

/** The outcome of one append. */
export type AppendOutcome =
  | { kind: 'stored'; offset: number }
  | { kind: 'duplicate'; offset: number }
  | { kind: 'gap'; expectedSeq: number }
  | { kind: 'too-old'; expectedSeq: number };

/**
 * A partition's log as the replicated state machine sees it: appends are
 * synchronous (deterministic on every replica); reads may need the disk.
 * {@link Partition} keeps it in memory, the on-disk one lives in storage/.
 */
export interface PartitionLog {
  /** First offset still stored. */
  readonly startOffset: number;
  /** Offset the next message will get. */
  readonly endOffset: number;
  /** Appends unless the (producerId, seq) was seen before or skips ahead. */
  append(request: AppendRequest, nowMs: number): AppendOutcome;
  /** Appends without deduplication: for fire-and-forget (`ack: none`) publishes. */
  appendUnchecked(request: AppendRequest, nowMs: number): { kind: 'stored'; offset: number };
  /** Messages from `offset`; synchronous when they are in memory. See {@link Partition.read}. */
  read(offset: number, maxCount: number, maxBytes: number): StoredMessage[] | Promise<StoredMessage[]>;
  /** First offset stored at or after `timeMs` (the end offset if none). */
  offsetForTime(timeMs: number): number | Promise<number>;
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
  /** Retained messages are `messages[head…]`; the prefix is released lazily. */
  private messages: StoredMessage[] = [];
  private head = 0;
  private firstOffset = 0;
  private bytes = 0;
  private readonly producers: ProducerTable;

  constructor(private readonly limits: PartitionLimits) {
    this.producers = new ProducerTable(limits.dedupeWindow);
  }

  /** Offset the next message will get. */
  get endOffset(): number {
    return this.firstOffset + this.messages.length - this.head;
  }

  /** First offset still stored. */
  get startOffset(): number {
    return this.firstOffset;
  }

  /** Bytes of message data held. */
  get dataBytes(): number {
    return this.bytes;
  }

  /** Appends unless the (producerId, seq) was seen before or skips ahead. */
  append(request: AppendRequest, nowMs: number): AppendOutcome {
    const check: SeqCheck = this.producers.check(request.producerId, request.seq);
    if (check.kind !== 'new') return check;
    const outcome = this.appendUnchecked(request, nowMs);
    this.producers.record(request.producerId, request.seq, outcome.offset);
    return outcome;
  }

  /** Appends without deduplication: for fire-and-forget (`ack: none`) publishes. */
  appendUnchecked(request: AppendRequest, nowMs: number): { kind: 'stored'; offset: number } {
    const offset = this.endOffset;
    const last = this.messages[this.messages.length - 1];
    const message: StoredMessage = {
      offset,
      timestamp: last === undefined ? nowMs : Math.max(nowMs, last.timestamp),
      data: request.data,
      encoding: request.encoding,
    };
    if (request.key !== undefined) message.key = request.key;
    if (request.headers !== undefined) message.headers = request.headers;
    this.messages.push(message);
    this.bytes += request.data.length;
    this.retain();
    return { kind: 'stored', offset };
  }

  /**
   * Up to `maxCount` messages from `offset` (from the start offset when
   * `offset` was already removed), stopping early once `maxBytes` of data is
   * reached (at least one).
   */
  read(offset: number, maxCount: number, maxBytes: number): StoredMessage[] {
    const result: StoredMessage[] = [];
    let bytes = 0;
    const from = this.head + Math.max(offset - this.firstOffset, 0);
    const end = Math.min(this.messages.length, from + maxCount);
    for (let i = from; i < end; i++) {
      const message = this.messages[i] as StoredMessage;
      if (result.length > 0 && bytes + message.data.length > maxBytes) break;
      bytes += message.data.length;
      result.push(message);
    }
    return result;
  }

  /** First retained offset whose timestamp is at or after `timeMs` (the end offset if none). */
  offsetForTime(timeMs: number): number {
    let lo = this.head;
    let hi = this.messages.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.messages[mid] as StoredMessage).timestamp < timeMs) lo = mid + 1;
      else hi = mid;
    }
    return this.firstOffset + lo - this.head;
  }

  /** Drops the oldest messages beyond `retentionBytes`, keeping at least the newest. */
  private retain(): void {
    while (this.bytes > this.limits.retentionBytes && this.messages.length - this.head > 1) {
      const oldest = this.messages[this.head] as StoredMessage;
      this.messages[this.head] = undefined as unknown as StoredMessage; // released for GC
      this.head++;
      this.firstOffset++;
      this.bytes -= oldest.data.length;
    }
    // Reclaim the released prefix once it dominates the array.
    if (this.head > 4096 && this.head * 2 > this.messages.length) {
      this.messages = this.messages.slice(this.head);
      this.head = 0;
    }
  }
}
