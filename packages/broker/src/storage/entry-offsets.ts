/**
 * The partition offsets of the Raft entries after a snapshot (layout
 * `unified`, docs/storage.md): each entry stores `count` messages (0 for a
 * no-op, a configuration change or a command that stores none) at dense
 * offsets that follow the previous entry's, so the first offset of an entry
 * is a function of the log before it, the same on every replica. Pure.
 */
export class EntryOffsets {
  /** Index of the snapshot the window starts after, and the offset after its last message. */
  private baseIndex = 0;
  private baseEnd = 0;
  private firsts: number[] = [];
  private counts: number[] = [];

  /** Starts over after a snapshot at `index` whose messages end at `endOffset`. */
  reset(index: number, endOffset: number): void {
    this.baseIndex = index;
    this.baseEnd = endOffset;
    this.firsts = [];
    this.counts = [];
  }

  /** Index of the last entry known (the snapshot's without one after it). */
  get lastIndex(): number {
    return this.baseIndex + this.firsts.length;
  }

  /** The snapshot index the window starts after. */
  get base(): number {
    return this.baseIndex;
  }

  /** The offset after the snapshot's last message. */
  get baseEndOffset(): number {
    return this.baseEnd;
  }

  /**
   * Entries from `firstIndex` on store `counts[i]` messages each, replacing
   * any known at or after `firstIndex` (a conflicting suffix); returns their first offsets.
   */
  append(firstIndex: number, counts: readonly number[]): number[] {
    if (firstIndex <= this.baseIndex || firstIndex > this.lastIndex + 1) throw new RangeError(`entry ${firstIndex} outside (${this.baseIndex}, ${this.lastIndex + 1}]`);
    this.firsts.length = this.counts.length = firstIndex - this.baseIndex - 1;
    const assigned: number[] = [];
    let next = this.endAt(firstIndex - 1);
    for (const count of counts) {
      if (!Number.isSafeInteger(count) || count < 0) throw new RangeError(`message count ${count}`);
      assigned.push(next);
      this.firsts.push(next);
      this.counts.push(count);
      next += count;
    }
    return assigned;
  }

  /** Drops the entries up to `index` (a new snapshot there). */
  compact(index: number): void {
    if (index <= this.baseIndex) return;
    if (index > this.lastIndex) throw new RangeError(`compact(${index}) beyond the last entry ${this.lastIndex}`);
    const end = this.endAt(index);
    const drop = index - this.baseIndex;
    this.firsts = this.firsts.slice(drop);
    this.counts = this.counts.slice(drop);
    this.baseIndex = index;
    this.baseEnd = end;
  }

  /** The offset after the messages of every entry up to `index` (`base <= index <= lastIndex`). */
  endAt(index: number): number {
    if (index === this.baseIndex) return this.baseEnd;
    const k = index - this.baseIndex - 1;
    if (k < 0 || k >= this.firsts.length) throw new RangeError(`entry ${index} outside [${this.baseIndex}, ${this.lastIndex}]`);
    return (this.firsts[k] as number) + (this.counts[k] as number);
  }

  /** First offset and count of entry `index` of the window. */
  at(index: number): { firstOffset: number; count: number } {
    const k = index - this.baseIndex - 1;
    if (k < 0 || k >= this.firsts.length) throw new RangeError(`entry ${index} outside (${this.baseIndex}, ${this.lastIndex}]`);
    return { firstOffset: this.firsts[k] as number, count: this.counts[k] as number };
  }

  /**
   * The first entry of the window, up to `maxIndex`, whose messages end after
   * `offset` (the one holding it); `undefined` when `offset` is below the
   * window (before `baseEndOffset`) or at or after the end of `maxIndex`.
   */
  indexOf(offset: number, maxIndex = this.lastIndex): number | undefined {
    if (offset < this.baseEnd || maxIndex <= this.baseIndex || offset >= this.endAt(maxIndex)) return undefined;
    let lo = 0;
    let hi = maxIndex - this.baseIndex - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.firsts[mid] as number) + (this.counts[mid] as number) > offset) hi = mid;
      else lo = mid + 1;
    }
    return this.baseIndex + 1 + lo;
  }
}
