/** One item's place in {@link Deadlines}; `item` is released once it is cancelled or expired. */
export interface DeadlineSlot<T> {
  item: T | undefined;
  readonly at: number;
  readonly queue: SlotQueue<T>;
}

/** Longest delay a timer takes (about 24.8 days); Node and browsers fire longer ones at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Slots of one timeout length: deadlines in insertion order are also in time order (internal to {@link Deadlines}). */
export class SlotQueue<T> {
  slots: Array<DeadlineSlot<T>> = [];
  head = 0;
  live = 0;

  /** Drops cancelled slots at the head; returns the first live one. */
  first(): DeadlineSlot<T> | undefined {
    while (this.head < this.slots.length) {
      const slot = this.slots[this.head] as DeadlineSlot<T>;
      if (slot.item !== undefined) return slot;
      this.head++;
    }
    this.slots = [];
    this.head = 0;
    return undefined;
  }

  /** Rebuilds the array when cancelled slots dominate it, so a stuck head pins no more than the live slots. */
  compact(): void {
    const length = this.slots.length - this.head;
    if (length < 1024 || this.live * 2 > length) return;
    this.slots = this.slots.slice(this.head).filter((slot) => slot.item !== undefined);
    this.head = 0;
  }
}

/**
 * Timeouts of many items on one timer. A `setTimeout` per publish cost more
 * client CPU than encoding the publish (a timer object, an insert into Node's
 * timer lists, a `clearTimeout` on the ack); here an item costs one small
 * slot, and the timer is armed only for the earliest deadline: with one
 * timeout length (the usual case), an awaited publish after another touches
 * no timer at all. An item expires at its deadline or a little after (never
 * before), on the monotonic clock (`performance.now()`), as timers do.
 */
export class Deadlines<T> {
  /** By timeout length. */
  private readonly queues = new Map<number, SlotQueue<T>>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private timerAt = Number.POSITIVE_INFINITY;

  constructor(private readonly expire: (item: T) => void) {}

  /**
   * Calls `expire(item)` `ms` from now, unless {@link cancel} is called with
   * the slot first. As `setTimeout`, a delay below 1 ms (or not a number) is
   * 1 ms; one above the longest timer is that timer's length.
   */
  add(item: T, ms: number): DeadlineSlot<T> {
    const delay = ms >= 1 ? Math.min(ms, MAX_TIMER_MS) : 1;
    let queue = this.queues.get(delay);
    if (queue === undefined) this.queues.set(delay, (queue = new SlotQueue()));
    const slot: DeadlineSlot<T> = { item, at: performance.now() + delay, queue };
    queue.slots.push(slot);
    queue.live++;
    if (slot.at < this.timerAt) this.arm(slot.at);
    return slot;
  }

  /** The item no longer expires (it settled); its slot keeps nothing. */
  cancel(slot: DeadlineSlot<T> | undefined): void {
    if (slot === undefined || slot.item === undefined) return;
    slot.item = undefined;
    slot.queue.live--;
    slot.queue.compact();
  }

  /** Forgets every item and stops the timer. */
  clear(): void {
    for (const queue of this.queues.values()) for (let i = queue.head; i < queue.slots.length; i++) (queue.slots[i] as DeadlineSlot<T>).item = undefined;
    this.queues.clear();
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
  }

  private arm(at: number): void {
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.sweep(), Math.max(0, at - performance.now()));
  }

  /** Expires every item due, then arms the timer for the earliest deadline left (none: the timer stays off). */
  private sweep(): void {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    const now = performance.now();
    const due: T[] = [];
    let next = Number.POSITIVE_INFINITY;
    for (const [ms, queue] of this.queues) {
      for (let slot = queue.first(); slot !== undefined; slot = queue.first()) {
        if (slot.at > now) {
          next = Math.min(next, slot.at);
          break;
        }
        due.push(slot.item as T);
        slot.item = undefined;
        queue.live--;
      }
      if (queue.live === 0) this.queues.delete(ms);
    }
    // Expired after the bookkeeping: an `expire` callback may add or cancel items.
    for (const item of due) this.expire(item);
    if (next < this.timerAt) this.arm(next);
  }
}
