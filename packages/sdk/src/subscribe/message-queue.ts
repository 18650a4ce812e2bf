import type { Message } from './message.js';

/**
 * The messages a subscription received and has not handed to its handler
 * yet, in order, each with the payload bytes the broker counted for it (its
 * `data` as stored, before any decoding), so credit can be given back in
 * messages and in bytes. Taking the first is O(1): a head index, compacted
 * now and then, rather than `Array.shift`.
 */
export class MessageQueue {
  private messages: Array<Message | undefined> = [];
  private sizes: number[] = [];
  private head = 0;
  /** Payload bytes of the queued messages. */
  bytes = 0;
  /** Payload bytes of the message {@link shift} returned last. */
  shiftedBytes = 0;

  get length(): number {
    return this.messages.length - this.head;
  }

  push(message: Message, bytes: number): void {
    this.messages.push(message);
    this.sizes.push(bytes);
    this.bytes += bytes;
  }

  /** Takes the first message (its bytes in {@link shiftedBytes}), or `undefined` when empty. */
  shift(): Message | undefined {
    if (this.head === this.messages.length) return undefined;
    const message = this.messages[this.head];
    this.shiftedBytes = this.sizes[this.head] as number;
    this.bytes -= this.shiftedBytes;
    this.messages[this.head] = undefined;
    this.head++;
    if (this.head === this.messages.length) this.clear();
    else if (this.head >= 1024 && this.head * 2 >= this.messages.length) this.compact();
    return message;
  }

  /** Calls `visit` with each queued message, in order. */
  forEach(visit: (message: Message) => void): void {
    for (let i = this.head; i < this.messages.length; i++) visit(this.messages[i] as Message);
  }

  /** Removes the messages `drop` picks; returns how many and their bytes. */
  remove(drop: (message: Message) => boolean): { count: number; bytes: number } {
    const messages: Message[] = [];
    const sizes: number[] = [];
    let count = 0;
    let bytes = 0;
    for (let i = this.head; i < this.messages.length; i++) {
      const message = this.messages[i] as Message;
      const size = this.sizes[i] as number;
      if (drop(message)) {
        count++;
        bytes += size;
      } else {
        messages.push(message);
        sizes.push(size);
      }
    }
    this.messages = messages;
    this.sizes = sizes;
    this.head = 0;
    this.bytes -= bytes;
    return { count, bytes };
  }

  clear(): void {
    this.messages = [];
    this.sizes = [];
    this.head = 0;
    this.bytes = 0;
  }

  private compact(): void {
    this.messages = this.messages.slice(this.head);
    this.sizes = this.sizes.slice(this.head);
    this.head = 0;
  }
}
