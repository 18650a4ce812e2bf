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
 * One partition in memory: a dense log of messages starting at offset 0 and
 * the idempotence table. Pure: time is passed in, nothing is scheduled.
 */
export class Partition {
  private readonly messages: StoredMessage[] = [];
  private readonly producers: ProducerTable;
  private bytes = 0;

  constructor(dedupeWindow: number) {
    this.producers = new ProducerTable(dedupeWindow);
  }

  /** Offset the next message will get. */
  get endOffset(): number {
    return this.messages.length;
  }

  /** First offset still stored. */
  get startOffset(): number {
    return 0;
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
    const offset = this.messages.length;
    const last = this.messages[offset - 1];
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
    return { kind: 'stored', offset };
  }

  /** Up to `maxCount` messages from `offset`, stopping early once `maxBytes` of data is reached (at least one). */
  read(offset: number, maxCount: number, maxBytes: number): StoredMessage[] {
    const result: StoredMessage[] = [];
    let bytes = 0;
    const end = Math.min(this.messages.length, offset + maxCount);
    for (let i = Math.max(offset, 0); i < end; i++) {
      const message = this.messages[i] as StoredMessage;
      if (result.length > 0 && bytes + message.data.length > maxBytes) break;
      bytes += message.data.length;
      result.push(message);
    }
    return result;
  }

  /** First offset whose timestamp is at or after `timeMs` (the end offset if none). */
  offsetForTime(timeMs: number): number {
    let lo = 0;
    let hi = this.messages.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.messages[mid] as StoredMessage).timestamp < timeMs) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
