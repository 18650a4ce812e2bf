import { MessageWindow } from '../../core/partition/message-window.js';

/** Bytes counted per cached message beyond its data: the object, key and headers, roughly. */
const MESSAGE_OVERHEAD_BYTES = 96;

/**
 * The newest records of a log in memory, `[firstOffset, endOffset)`: readers
 * at the tail never touch the disk, and records not yet durable are always
 * here (so a failed fsync, which rewinds the file, never hides them from reads).
 */
export class TailCache extends MessageWindow {
  constructor(firstOffset: number) {
    super(firstOffset, MESSAGE_OVERHEAD_BYTES);
  }

  /** Releases the oldest messages while over `maxBytes`, but only those below `durableEnd`. */
  evict(maxBytes: number, durableEnd: number): void {
    while (this.bytes > maxBytes && this.firstOffset < durableEnd && this.size > 0) this.dropOldest();
  }
}
