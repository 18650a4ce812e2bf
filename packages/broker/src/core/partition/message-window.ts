import type { StoredMessage } from './message.js';

/**
 * A run of messages with dense offsets `[firstOffset, endOffset)` held in
 * memory: appended at the end, released from the front. The in-memory
 * partition keeps its whole log in one; the on-disk log keeps its newest
 * records in one. Released messages leave the array lazily, so releasing is
 * O(1).
 */
export class MessageWindow {
  /** Held messages are `messages[head…]`; the prefix is released lazily. */
  private messages: StoredMessage[] = [];
  private head = 0;
  private first: number;
  private heldBytes = 0;

  /**
   * @param firstOffset - offset of the first message to be pushed.
   * @param overheadBytes - bytes counted per message beyond its data (object, key, headers).
   */
  constructor(
    firstOffset: number,
    private readonly overheadBytes = 0,
  ) {
    this.first = firstOffset;
  }

  get firstOffset(): number {
    return this.first;
  }

  get endOffset(): number {
    return this.first + this.messages.length - this.head;
  }

  /** Data bytes held, plus the per-message overhead. */
  get bytes(): number {
    return this.heldBytes;
  }

  get size(): number {
    return this.messages.length - this.head;
  }

  /** Timestamp of the first message held, if any. */
  get firstTimestamp(): number | undefined {
    return this.messages[this.head]?.timestamp;
  }

  /** Timestamp of the last message held, if any. */
  get lastTimestamp(): number | undefined {
    return this.size > 0 ? this.messages[this.messages.length - 1]?.timestamp : undefined;
  }

  /** Appends the message with offset {@link endOffset}. */
  push(message: StoredMessage): void {
    this.messages.push(message);
    this.heldBytes += this.cost(message);
  }

  /** Releases the oldest message (there must be one). */
  dropOldest(): void {
    const message = this.messages[this.head] as StoredMessage;
    this.messages[this.head] = undefined as unknown as StoredMessage; // released for GC
    this.head++;
    this.first++;
    this.heldBytes -= this.cost(message);
    this.compact();
  }

  /** Releases messages below `offset`. */
  dropBefore(offset: number): void {
    while (this.first < offset && this.size > 0) this.dropOldest();
    if (this.size === 0) this.first = Math.max(this.first, offset);
  }

  /** Forgets messages at and after `offset`; an `offset` below the window empties it at `offset`. */
  truncateFrom(offset: number): void {
    if (offset <= this.first) {
      this.reset(offset);
      return;
    }
    const keep = this.head + (offset - this.first);
    for (let i = keep; i < this.messages.length; i++) this.heldBytes -= this.cost(this.messages[i] as StoredMessage);
    this.messages.length = Math.min(this.messages.length, keep);
  }

  /** Empties the window, the next message being `offset`. */
  reset(offset: number): void {
    this.messages = [];
    this.head = 0;
    this.first = offset;
    this.heldBytes = 0;
  }

  /**
   * Appends to `out` the messages from `offset` (from the first held when
   * `offset` was released) until `out` holds `maxCount`, stopping before
   * `maxBytes` of data unless `out` is empty; returns `bytes` plus the data
   * bytes added.
   */
  read(offset: number, maxCount: number, maxBytes: number, out: StoredMessage[], bytes = 0): number {
    const from = this.head + Math.max(offset - this.first, 0);
    const end = Math.min(this.messages.length, from + maxCount - out.length);
    for (let i = from; i < end; i++) {
      const message = this.messages[i] as StoredMessage;
      if (out.length > 0 && bytes + message.data.length > maxBytes) break;
      bytes += message.data.length;
      out.push(message);
    }
    return bytes;
  }

  /** First held offset with a timestamp at or after `timeMs` (timestamps never decrease), or {@link endOffset}. */
  offsetForTime(timeMs: number): number {
    let lo = this.head;
    let hi = this.messages.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.messages[mid] as StoredMessage).timestamp < timeMs) lo = mid + 1;
      else hi = mid;
    }
    return this.first + lo - this.head;
  }

  private cost(message: StoredMessage): number {
    return message.data.length + this.overheadBytes;
  }

  /** Reclaims the released prefix once it dominates the array. */
  private compact(): void {
    if (this.head > 4096 && this.head * 2 > this.messages.length) {
      this.messages = this.messages.slice(this.head);
      this.head = 0;
    }
  }
}
