import type { Encoding } from '@relaymq/sdk/protocol';
import type { StoredMessage } from './message.js';
import { MessageWindow } from './message-window.js';
import { ProducerTable, type SeqCheck } from './producers.js';

export type { StoredMessage } from './message.js';

/**
 * A message to append, from producer `producerId` with sequence number `seq`.
 *
 * @internal Exported for tests and tools in this repository; not a stable API.
 */
export interface AppendRequest {
  producerId: string;
  seq: number;
  key?: string;
  headers?: Record<string, string>;
  data: Uint8Array;
  encoding: Encoding;
}

/**
 * The outcome of one append.
 *
 * @internal Exported for tests and tools in this repository; not a stable API.
 */
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
  private readonly window = new MessageWindow(0);
  private readonly producers: ProducerTable;

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
    const last = this.window.lastTimestamp;
    const message: StoredMessage = {
      offset,
      timestamp: last === undefined ? nowMs : Math.max(nowMs, last),
      data: request.data,
      encoding: request.encoding,
    };
    if (request.key !== undefined) message.key = request.key;
    if (request.headers !== undefined) message.headers = request.headers;
    this.window.push(message);
    // The oldest go first, down to `retentionBytes`; the newest always stays.
    while (this.window.bytes > this.limits.retentionBytes && this.window.size > 1) this.window.dropOldest();
    return { kind: 'stored', offset };
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
