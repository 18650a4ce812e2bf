/**
 * What a leader knows about one follower's log, and how it paces the stream
 * of appends to it (etcd's progress tracker):
 *
 * - `probe`: the leader does not know where the follower's log diverges. It
 *   sends one append at a time and waits for the answer (or the next
 *   heartbeat) before sending another, walking `next` back on rejections.
 * - `replicate`: the follower is known to match up to `match`; the leader
 *   streams appends optimistically, advancing `next` as it sends, with at
 *   most `maxInflightAppends` unacknowledged.
 * - `snapshot`: the entries the follower needs were compacted; a snapshot
 *   is on its way and nothing else is sent until it is reported done or
 *   failed, or the follower shows it caught up.
 */
import type { ProgressStatus } from './types.js';

export type ProgressState = ProgressStatus['state'];

/**
 * A bounded FIFO of the last index of each append in flight. Its ring grows
 * as appends are added, by doubling up to `capacity` (etcd does the same):
 * every replica keeps a progress per voter, and most groups of a broker
 * hosting thousands are idle with nothing in flight, so a ring allocated at
 * full capacity up front (256 slots, 2 KiB) cost 6 KiB per group of three.
 */
export class Inflights {
  private buffer: number[] = [];
  private start = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError(`inflight capacity must be >= 1, got ${capacity}`);
  }

  get size(): number {
    return this.count;
  }

  /** Ring slots allocated now: 0 until the first append, at most `capacity`. */
  get slots(): number {
    return this.buffer.length;
  }

  full(): boolean {
    return this.count === this.capacity;
  }

  /** Records an append whose last entry is `lastIndex`; indexes must increase. */
  add(lastIndex: number): void {
    if (this.full()) throw new Error('inflights: add() while full');
    if (this.count === this.buffer.length) this.grow();
    this.buffer[(this.start + this.count) % this.buffer.length] = lastIndex;
    this.count++;
  }

  /** Frees every append whose last index is ≤ `index` (they are acknowledged). */
  freeLE(index: number): void {
    while (this.count > 0 && (this.buffer[this.start] as number) <= index) {
      this.start = (this.start + 1) % this.buffer.length;
      this.count--;
    }
  }

  /** Frees the oldest append in flight (a heartbeat answered: the stream may be stuck behind a lost append). */
  freeFirstOne(): void {
    if (this.count === 0) return;
    this.start = (this.start + 1) % this.buffer.length;
    this.count--;
  }

  reset(): void {
    this.start = 0;
    this.count = 0;
  }

  /** Doubles the ring (up to `capacity`), its entries moved to the front in order. */
  private grow(): void {
    const size = Math.min(this.capacity, Math.max(4, this.buffer.length * 2));
    const grown = new Array<number>(size).fill(0);
    for (let i = 0; i < this.count; i++) grown[i] = this.buffer[(this.start + i) % this.buffer.length] as number;
    this.buffer = grown;
    this.start = 0;
  }
}

export class Progress {
  /** Highest index known to match the leader's log (0: nothing known). */
  match = 0;
  /** Next index to send. Invariant: `match < next`. */
  next: number;
  state: ProgressState = 'probe';
  /** In `snapshot` state: index of the snapshot sent. */
  pendingSnapshot = 0;
  /** Heard from since the last check-quorum round (the leader itself always is). */
  recentActive = false;
  /**
   * Its link came up again and it has not answered since: it may have
   * restarted and know no leader, so the leader does not quiesce until it
   * answers (kept apart from {@link recentActive}, which check-quorum counts).
   */
  awaitingContact = false;
  /** Its last heartbeat answer or rejection said it is recovering (`RaftConfig.recoveringAtStart`). */
  recovering = false;
  /** In `probe` state: one append sent and not yet answered. */
  probeSent = false;
  /** Tick (leader's clock) at which the snapshot was sent. */
  snapshotSentTick = 0;
  /** Tick (leader's clock) of the follower's last answer, or of the leader's last forced probe. */
  lastContactTick = 0;
  /** Tick (leader's clock) of the follower's last answer or vote for it in this term; never heard: -Infinity. */
  lastHeardTick = Number.NEGATIVE_INFINITY;
  readonly inflights: Inflights;

  constructor(next: number, maxInflight: number) {
    this.next = next;
    this.inflights = new Inflights(maxInflight);
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    // After a snapshot, resume right after it (or after match, if higher).
    const from = this.state === 'snapshot' ? Math.max(this.match, this.pendingSnapshot) : this.match;
    this.resetState('probe');
    this.next = from + 1;
  }

  becomeReplicate(): void {
    this.resetState('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number, nowTick: number): void {
    this.resetState('snapshot');
    this.pendingSnapshot = snapshotIndex;
    this.snapshotSentTick = nowTick;
  }

  /**
   * An append was sent with `entryCount` entries ending at `lastIndex`:
   * stream on (replicate) or wait for the answer (probe).
   */
  sentEntries(entryCount: number, lastIndex: number): void {
    if (this.state === 'replicate') {
      if (entryCount > 0) {
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex);
      }
    } else if (this.state === 'probe') {
      this.probeSent = true;
    } else {
      throw new Error(`progress: sending entries in state ${this.state}`);
    }
  }

  /**
   * The follower acknowledged up to `index`. Returns whether `match` grew
   * (a stale or duplicated acknowledgement changes nothing).
   */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    if (this.next < index + 1) this.next = index + 1;
    return updated;
  }

  /**
   * The follower rejected an append whose previous index was `rejected`;
   * its log has nothing matching above `hintIndex`. Returns false when the
   * rejection is stale (an answer to an append sent before `next` moved).
   */
  maybeDecrTo(rejected: number, hintIndex: number): boolean {
    if (this.state === 'replicate') {
      // Appends at or below match were accepted before; a rejection of one is stale.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // Probe (or snapshot): only the answer to the latest probe counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, hintIndex + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /**
   * The follower lost entries it had acknowledged (see
   * `RaftConfig.unsyncedAcks`) and its log is known to match the leader's
   * only up to `matched` (its commit, or an entry of the same term as the
   * leader's): `match` drops there and the leader probes from after it.
   * Returns false when `match` is not above it (a stale report: nothing
   * counted is missing).
   */
  lost(matched: number): boolean {
    if (matched >= this.match) return false;
    this.resetState('probe');
    this.match = matched;
    this.next = matched + 1;
    return true;
  }

  /** Whether the leader must hold further appends to this follower. */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }
}
