/**
 * Deadlines that share one timer. A proposal's timeout (seconds) or a
 * publish's hedge delay almost never fires: each publish used to arm a timer
 * and clear it a millisecond later, a `Timeout` object and a timer-list
 * insertion per publish. Here every deadline waits in one set and a single
 * timer is armed for the earliest; when it fires, the due deadlines expire
 * and it is armed again for the earliest left. Each deadline still expires at
 * its own time (as late as a timer of its own would fire, at worst a
 * millisecond more), whatever order deadlines are added in.
 */

/** A deadline in a {@link DeadlineQueue}: `expire` runs once `atMs` (on the queue's clock) has passed, unless deleted before. */
export interface Deadline {
  /** Changed only while the deadline is in no queue. */
  atMs: number;
  expire(): void;
  /** The queue's links (a deadline is in one queue at most): a list, not a `Set`, which V8 reallocates each time it empties. */
  queuePrev?: Deadline | undefined;
  queueNext?: Deadline | undefined;
}

/** The longest delay a timer takes (2^31 - 1 ms, about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class DeadlineQueue {
  /** The deadlines in the order added (each fire looks at all of them: the proposals or publishes in flight), linked through their own fields. */
  private first: Deadline | undefined;
  private last: Deadline | undefined;
  private count = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** When the armed timer fires (Infinity: none armed). */
  private armedAtMs = Number.POSITIVE_INFINITY;

  /** `now`: a monotonic clock in ms, the one deadlines' `atMs` are on. */
  constructor(readonly now: () => number = () => performance.now()) {}

  get size(): number {
    return this.count;
  }

  add(deadline: Deadline): void {
    if (this.has(deadline)) return;
    deadline.queuePrev = this.last;
    deadline.queueNext = undefined;
    if (this.last === undefined) this.first = deadline;
    else this.last.queueNext = deadline;
    this.last = deadline;
    this.count++;
    if (deadline.atMs < this.armedAtMs) this.arm(deadline.atMs);
    else if (this.count === 1) this.timer?.ref();
  }

  /**
   * Forgets `deadline` (settled before it). The timer stays armed, even with
   * nothing left: clearing and arming it again for each of a stream of
   * publishes is the cost this queue saves; when it fires it finds nothing.
   * Meanwhile it keeps no process alive (as a timer cleared would not).
   */
  delete(deadline: Deadline): void {
    if (!this.has(deadline)) return;
    const { queuePrev: prev, queueNext: next } = deadline;
    if (prev === undefined) this.first = next;
    else prev.queueNext = next;
    if (next === undefined) this.last = prev;
    else next.queuePrev = prev;
    deadline.queuePrev = undefined;
    deadline.queueNext = undefined;
    if (--this.count === 0) this.timer?.unref();
  }

  /** Forgets every deadline and the timer (the owner stopped). */
  clear(): void {
    while (this.first !== undefined) this.delete(this.first);
    clearTimeout(this.timer);
    this.timer = undefined;
    this.armedAtMs = Number.POSITIVE_INFINITY;
  }

  private has(deadline: Deadline): boolean {
    return deadline.queuePrev !== undefined || this.first === deadline;
  }

  private arm(atMs: number): void {
    clearTimeout(this.timer);
    this.armedAtMs = atMs;
    // At least 1 ms: a timer's clock may run a little behind `now` (the event loop caches its time). At most what a
    // timer takes (Node fires a longer one after 1 ms): a deadline further away is armed for again when that fires.
    this.timer = setTimeout(this.fire, Math.min(MAX_TIMER_MS, Math.max(1, Math.ceil(atMs - this.now()))));
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    this.armedAtMs = Number.POSITIVE_INFINITY;
    const now = this.now();
    let next = Number.POSITIVE_INFINITY;
    const due: Deadline[] = [];
    for (let deadline = this.first; deadline !== undefined; deadline = deadline.queueNext) {
      if (deadline.atMs <= now) due.push(deadline);
      else if (deadline.atMs < next) next = deadline.atMs;
    }
    if (next !== Number.POSITIVE_INFINITY) this.arm(next);
    // After the bookkeeping: an `expire` may add or delete deadlines. Each due one leaves the queue just before its
    // own expire, so one that an earlier expire deleted (settled meanwhile), or deleted and added anew, is skipped.
    let i = 0;
    try {
      for (; i < due.length; i++) {
        const deadline = due[i] as Deadline;
        if (!this.has(deadline) || deadline.atMs > now) continue;
        this.delete(deadline);
        deadline.expire();
      }
    } finally {
      // An expire threw: the due ones after it are still queued, and expire at a fire in a millisecond.
      if (i < due.length - 1 && this.armedAtMs > now) this.arm(now);
    }
  };
}
