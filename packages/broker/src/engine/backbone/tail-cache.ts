import type { StoredMessage } from '../../core/partition/partition.js';

/**
 * What a gateway holds of one partition stream it tails: the newest
 * messages (up to a byte budget) for live subscribers, and per producer the
 * last seq seen with the offsets of its recent seqs, so an append's outcome
 * (and a republish's original offset) can be answered from the stream
 * itself. Pure: fed in stream order by partition-stream.ts.
 *
 * Offsets rise but may have holes (each new stream segment starts with a
 * tracking chunk that takes an offset and is never delivered), so nothing
 * here computes a position from an offset: reads binary-search.
 */
export class TailCache {
  private readonly messages: StoredMessage[] = [];
  private head = 0;
  private bytes = 0;
  /** First offset stored in the stream (what retention left) as this gateway saw or probed it; the end until known. */
  private first: number | undefined;
  private next = 0;
  /** Offset the tail began reading at: every message from here on was added (the stream's start unless {@link startAt}). */
  private readFrom: number | undefined;
  private readonly producers = new Map<string, { nextSeq: number; offsets: Map<number, number> }>();
  /**
   * The holes read past since the first message, as ranges `[start, end)`
   * in offset order, and before each the number of hole offsets in the
   * ranges before it (so counting over any span is two binary searches).
   * One range per stream segment: retention drops those below the start.
   */
  private readonly holes: Array<{ start: number; end: number; before: number }> = [];

  constructor(
    private readonly budgetBytes: number,
    /** Recent seqs per producer whose offsets are kept. */
    private readonly window: number,
  ) {}

  /** Offset the next message will get, as far as this gateway has read. */
  get endOffset(): number {
    return this.next;
  }

  /** First offset still stored, as far as this gateway knows. */
  get startOffset(): number {
    return this.first ?? this.next;
  }

  /** First offset held in memory. */
  get cachedFrom(): number {
    return this.messages[this.head]?.offset ?? this.next;
  }

  /** Adds the next message read from the stream, with the producer and seq it was published with (absent for ack `none`). */
  add(message: StoredMessage, producer?: { id: string; seq: number }): void {
    if (message.offset < this.next) return;
    this.readFrom ??= message.offset;
    if (this.first === undefined) this.first = message.offset;
    else this.hole(this.next, message.offset);
    this.next = message.offset + 1;
    this.messages.push(message);
    this.bytes += message.data.byteLength;
    while (this.bytes > this.budgetBytes && this.messages.length - this.head > 1) {
      this.bytes -= (this.messages[this.head] as StoredMessage).data.byteLength;
      this.messages[this.head++] = undefined as unknown as StoredMessage;
    }
    if (this.head > 1024 && this.head * 2 > this.messages.length) {
      this.messages.splice(0, this.head);
      this.head = 0;
    }
    if (producer !== undefined) this.record(producer.id, producer.seq, message.offset);
  }

  /** Learns from a read of the backbone that retention removed everything below `offset`. */
  retainedFrom(offset: number): void {
    if (this.first === undefined || offset <= this.first) return;
    this.first = Math.min(offset, this.next);
    const below = this.holes.findIndex((h) => h.end > this.startOffset);
    this.holes.splice(0, below < 0 ? this.holes.length : below);
  }

  /**
   * Before anything was added: the stream holds messages from `storedFrom`
   * but the tail reads from `readFrom` on (a starting gateway tails the
   * stream's newest messages only). Offsets below `readFrom` are read from
   * the backbone; holes among them are not known (and count as none).
   */
  startAt(storedFrom: number, readFrom: number): void {
    if (this.first !== undefined || this.next !== 0) return;
    this.first = storedFrom;
    this.next = readFrom;
    this.readFrom = readFrom;
  }

  /**
   * Offset below which the seqs of `producerId` this cache does not hold
   * must be looked for: the oldest offset held for it, or where the tail
   * began reading when it holds none (every later message was added).
   */
  searchBelow(producerId: string): number {
    const oldest = this.producers.get(producerId)?.offsets.values().next().value;
    return oldest ?? this.readFrom ?? this.next;
  }

  /** Learns that the stream continues at `offset` (its first offset, when nothing was read yet). */
  skipTo(offset: number): void {
    if (offset > this.next) {
      if (this.first !== undefined) this.hole(this.next, offset);
      this.next = offset;
      this.first ??= offset;
    }
  }

  /**
   * Offsets in `[from, to)` that hold no message (holes), as far as this
   * gateway has read: consumer lag is `to - from` minus these. Holes below
   * the first message it read are not known (and count as none).
   */
  holesBetween(from: number, to: number): number {
    return to <= from ? 0 : this.holesBelow(to) - this.holesBelow(from);
  }

  /** Hole offsets below `offset`, counted as `before` counts them (from the first range ever recorded). */
  private holesBelow(offset: number): number {
    // The last range starting below `offset`.
    let lo = 0;
    let hi = this.holes.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.holes[mid] as { start: number }).start < offset) lo = mid + 1;
      else hi = mid;
    }
    const range = this.holes[lo - 1];
    if (range === undefined) return this.holes[0]?.before ?? 0;
    return range.before + Math.min(range.end, offset) - range.start;
  }

  /** Records that `[start, end)` holds no message. */
  private hole(start: number, end: number): void {
    if (end <= start) return;
    const last = this.holes[this.holes.length - 1];
    this.holes.push({ start, end, before: last === undefined ? 0 : last.before + last.end - last.start });
  }

  /**
   * Messages from `offset` (the first at or after it: `offset` may be a
   * hole) when they are held, `undefined` when `offset` is older than what
   * is held.
   */
  read(offset: number, maxCount: number, maxBytes: number): StoredMessage[] | undefined {
    if (offset >= this.next) return [];
    if (offset < this.cachedFrom) return undefined;
    const out: StoredMessage[] = [];
    let bytes = 0;
    for (let i = this.indexAtOrAfter(offset); i < this.messages.length && out.length < maxCount; i++) {
      const m = this.messages[i] as StoredMessage;
      if (out.length > 0 && bytes + m.data.byteLength > maxBytes) break;
      bytes += m.data.byteLength;
      out.push(m);
    }
    return out;
  }

  /** First held offset with a timestamp at or after `timeMs`: a number, `end` when none, `undefined` when older messages would have to be read. */
  offsetForTime(timeMs: number): number | undefined {
    const first = this.messages[this.head];
    if (first === undefined) return this.first === undefined ? this.next : undefined;
    if (first.timestamp > timeMs) return first.offset === this.startOffset ? first.offset : undefined;
    let lo = this.head;
    let hi = this.messages.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.messages[mid] as StoredMessage).timestamp >= timeMs) hi = mid;
      else lo = mid + 1;
    }
    return lo < this.messages.length ? (this.messages[lo] as StoredMessage).offset : this.next;
  }

  /** Index of the first held message with an offset at or after `offset` (`messages.length` when none). */
  private indexAtOrAfter(offset: number): number {
    let lo = this.head;
    let hi = this.messages.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.messages[mid] as StoredMessage).offset >= offset) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** The seq `producerId` sends next, as far as the stream read here says (0 when unseen). */
  nextSeq(producerId: string): number {
    return this.producers.get(producerId)?.nextSeq ?? 0;
  }

  /** Where `seq` of `producerId` was stored: an offset, or `undefined` when not seen or beyond the window. */
  offsetOf(producerId: string, seq: number): number | undefined {
    return this.producers.get(producerId)?.offsets.get(seq);
  }

  private record(producerId: string, seq: number, offset: number): void {
    let p = this.producers.get(producerId);
    if (p === undefined) {
      p = { nextSeq: 0, offsets: new Map() };
      this.producers.set(producerId, p);
    }
    // The backbone dedupes (a seq at or below the last is dropped), so seqs only rise.
    if (seq < p.nextSeq) return;
    p.nextSeq = seq + 1;
    p.offsets.set(seq, offset);
    if (p.offsets.size > this.window) p.offsets.delete(p.offsets.keys().next().value as number);
  }
}
