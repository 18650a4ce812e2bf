import type { StoredMessage } from '../../core/partition/partition.js';

/** Bytes counted per cached message beyond its data: the object, key and headers, roughly. */
const MESSAGE_OVERHEAD_BYTES = 96;

/**
 * The newest records of a log in memory, `[firstOffset, endOffset)`: readers
 * at the tail never touch the disk, and records not yet durable are always
 * here (so a failed fsync, which rewinds the file, never hides them from reads).
 */
export class TailCache {
  /** Cached messages are `messages[head…]`; the prefix is released lazily. */
  private messages: StoredMessage[] = [];
  private head = 0;
  private first: number;
  private heldBytes = 0;

  constructor(firstOffset: number) {
    this.first = firstOffset;
  }

  get firstOffset(): number {
    return this.first;
  }

  get endOffset(): number {
    return this.first + this.messages.length - this.head;
  }

  get bytes(): number {
    return this.heldBytes;
  }

  get size(): number {
    return this.messages.length - this.head;
  }

  /** Timestamp of the first cached message, if any. */
  get firstTimestamp(): number | undefined {
    return this.messages[this.head]?.timestamp;
  }

  /** Appends the message with offset {@link endOffset}. */
  push(message: StoredMessage): void {
    this.messages.push(message);
    this.heldBytes += message.data.length + MESSAGE_OVERHEAD_BYTES;
  }

  /** Releases the oldest messages while over `maxBytes`, but only those below `durableEnd`. */
  evict(maxBytes: number, durableEnd: number): void {
    while (this.heldBytes > maxBytes && this.first < durableEnd && this.head < this.messages.length) this.dropFirst();
    this.compact();
  }

  /** Releases messages below `offset`. */
  dropBefore(offset: number): void {
    while (this.first < offset && this.head < this.messages.length) this.dropFirst();
    if (this.head === this.messages.length) this.first = Math.max(this.first, offset);
    this.compact();
  }

  /** Forgets messages at and after `offset`; an `offset` below the cache empties it at `offset`. */
  truncateFrom(offset: number): void {
    if (offset <= this.first) {
      this.reset(offset);
      return;
    }
    const keep = this.head + (offset - this.first);
    for (let i = keep; i < this.messages.length; i++) this.heldBytes -= (this.messages[i] as StoredMessage).data.length + MESSAGE_OVERHEAD_BYTES;
    this.messages.length = Math.min(this.messages.length, keep);
  }

  /** Empties the cache, the next message being `offset`. */
  reset(offset: number): void {
    this.messages = [];
    this.head = 0;
    this.first = offset;
    this.heldBytes = 0;
  }

  /** Appends to `out` the messages from `offset` within the limits; returns the data bytes added to `bytes`. */
  read(offset: number, maxCount: number, maxBytes: number, out: StoredMessage[], bytes: number): number {
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

  /** First cached offset with a timestamp at or after `timeMs`, or {@link endOffset}. */
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

  private dropFirst(): void {
    const message = this.messages[this.head] as StoredMessage;
    this.messages[this.head] = undefined as unknown as StoredMessage; // released for GC
    this.head++;
    this.first++;
    this.heldBytes -= message.data.length + MESSAGE_OVERHEAD_BYTES;
  }

  /** Reclaims the released prefix once it dominates the array. */
  private compact(): void {
    if (this.head > 4096 && this.head * 2 > this.messages.length) {
      this.messages = this.messages.slice(this.head);
      this.head = 0;
    }
  }
}
