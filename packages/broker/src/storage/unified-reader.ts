import type { PublishCommand } from '../core/partition/command.js';
import type { EncodedMessages, StoredMessage } from '../core/partition/partition.js';
import { encodedBytes, locateMessages, writeMessages, type MessageSpans } from './encoded-messages.js';
import type { RecordCopy, SegmentRaftStorage } from './segment-raft-storage.js';

/** Most entries read from the log per page. */
const PAGE_ENTRIES = 256;
/** Where recent encoded reads ended, remembered for the next read from there (each subscriber reads on where it stopped). */
const MAX_HINTS = 64;
/** Hints holding records read ahead, at most (each about one read's worth: up to the delivery's 512 KiB). */
const MAX_AHEAD = 8;

/** Where an encoded read ended: the entry holding the next offset, and maybe the records from there, read ahead. */
interface Hint {
  index: number;
  ahead: Promise<RecordCopy[] | undefined> | undefined;
}

/** One entry's part of an encoded read. */
interface EntryPart {
  entry: Buffer;
  timestamp: number;
  /** Its spans in the read's {@link MessageSpans}: `from … to - 1`. */
  from: number;
  to: number;
}

/**
 * The read side of a unified partition (docs/storage.md): messages by
 * offset from the one log, committed ones only. An entry's stored messages
 * are the last `count` of its batch, at the offsets in its record, with its
 * record's timestamp; what `applyPublish` stores on the split layout, read
 * without a second copy.
 */
export class UnifiedPartitionReader {
  /**
   * The entry holding an offset where an encoded read ended, by offset: the
   * next read of that subscriber starts there instead of searching the log
   * (a binary search over the records on disk below the in-memory window).
   * A committed entry's offsets never change, so a hint stays true. Created
   * by the first hint: most partitions of a broker hosting thousands are
   * never read, and an empty map costs about 270 bytes.
   */
  private hints: Map<number, Hint> | undefined;
  /** Hints in {@link hints} with records read ahead. */
  private aheadHints = 0;
  /**
   * Messages per entry in the pages read lately (a running mean): a page
   * asks for about the entries a read needs, not {@link PAGE_ENTRIES}. With
   * 100 messages per entry, a read of 500 messages had the disk read,
   * checksum (and, decoded, unpack) some 36 entries of 512 KiB to use 5.
   */
  private messagesPerEntry = 1;

  constructor(private readonly storage: Pick<SegmentRaftStorage<PublishCommand, unknown>, 'committedEndOffset' | 'segments' | 'readCommitted' | 'readRecords' | 'indexOfOffset'>) {}

  /** The offset after the last committed message. */
  get endOffset(): number {
    return this.storage.committedEndOffset;
  }

  /**
   * The first committed offset whose message is at or after `timeMs`, or
   * {@link endOffset} if none: the first record at or after it (record
   * timestamps never decrease; an entry that stores nothing carries its
   * predecessor's), then that entry's first offset.
   */
  async offsetForTime(timeMs: number): Promise<number> {
    const index = await this.storage.segments.offsetForTime(timeMs);
    const [held] = await this.storage.readCommitted(index, 1, 1);
    return held === undefined || held.entry.index !== index ? this.endOffset : Math.min(held.firstOffset, this.endOffset);
  }

  /**
   * Up to `maxCount` committed messages from `offset` (from the first held
   * when `offset` is not held any more: the reader sees a gap), stopping once
   * `maxBytes` of data is reached (at least one), as `Partition.read` does.
   */
  async read(offset: number, maxCount: number, maxBytes: number): Promise<StoredMessage[]> {
    const out: StoredMessage[] = [];
    let index = await this.storage.indexOfOffset(offset);
    let bytes = 0;
    // Bounded: each page moves `index` past at least one entry, or ends the loop.
    while (index !== undefined && out.length < maxCount) {
      const page = await this.storage.readCommitted(index, this.pageEntries(maxCount - out.length), Math.max(maxBytes, 1));
      if (page.length === 0) break;
      this.observe(page);
      for (const { entry, firstOffset, count, timestamp } of page) {
        index = entry.index + 1;
        if (entry.type !== 'normal' || count === 0) continue;
        const batch = entry.data.messages;
        for (let i = Math.max(0, offset - firstOffset); i < count; i++) {
          const m = batch[batch.length - count + i];
          if (m === undefined) throw new Error(`entry ${entry.index} stores ${count} of ${batch.length} messages`);
          if (out.length > 0 && bytes + m.data.length > maxBytes) return out;
          const message: StoredMessage = { offset: firstOffset + i, timestamp, data: m.data, encoding: m.encoding ?? 'raw' };
          if (m.key !== undefined) message.key = m.key;
          if (m.headers !== undefined) message.headers = m.headers;
          out.push(message);
          bytes += m.data.length;
          if (out.length >= maxCount) return out;
        }
      }
    }
    return out;
  }

  /** Entries a page should hold for `messages` more messages: the expected number, and one more (a read rarely starts at an entry's first message). */
  private pageEntries(messages: number): number {
    return Math.max(1, Math.min(PAGE_ENTRIES, Math.ceil(messages / this.messagesPerEntry) + 1));
  }

  private observe(page: ReadonlyArray<{ count: number }>): void {
    let messages = 0;
    for (const entry of page) messages += entry.count;
    this.messagesPerEntry = Math.max(1, (this.messagesPerEntry + messages / page.length) / 2);
  }

  /**
   * Like {@link read}, but the messages as a delivery frame carries them
   * (`StoredMessageFrame` maps), copied from the stored entries without
   * decoding them (see `encoded-messages.ts`): consecutive offsets from the
   * first returned, `count` 0 when there is nothing to read.
   */
  async readEncoded(offset: number, maxCount: number, maxBytes: number): Promise<EncodedMessages> {
    const hint = this.takeHint(offset);
    let index = hint?.index ?? (await this.storage.indexOfOffset(offset));
    let ahead = hint?.ahead;
    const spans: MessageSpans = { bodies: [], ends: [], fields: [], dataBytes: [] };
    const parts: EntryPart[] = [];
    let firstOffset = offset;
    let bytes = 0;
    let next = -1; // the offset after the last message taken
    let nextIndex = index;
    let full = false; // stopped by maxCount or maxBytes, not by the end of what is readable
    // Bounded: each page moves `index` past at least one entry, or ends the loop.
    read: while (index !== undefined && spans.bodies.length < maxCount) {
      // Records read ahead by the previous read from here, when they start where this one does.
      let records = ahead === undefined ? undefined : await ahead;
      ahead = undefined;
      // Not when retention deleted them since: the reader must meet the gap (its subscriber is told), not old records.
      if (records === undefined || records[0]?.index !== index || index < this.storage.segments.startOffset) records = (await this.storage.readRecords(index, this.pageEntries(maxCount - spans.bodies.length), Math.max(maxBytes, 1))).records;
      if (records.length === 0) break;
      this.observe(records);
      for (const record of records) {
        index = record.index + 1;
        const skip = Math.max(0, offset - record.firstOffset);
        if (record.count <= skip) continue;
        const at = record.firstOffset + skip;
        if (next < 0) firstOffset = at;
        else if (at !== next) break read; // offsets are dense; stop at anything else
        const from = spans.bodies.length;
        locateMessages(record.data, record.count, skip, Math.min(record.count - skip, maxCount - from), spans, record.index);
        let to = from;
        while (to < spans.bodies.length) {
          const data = spans.dataBytes[to] as number;
          if (to > 0 && bytes + data > maxBytes) break;
          bytes += data;
          to++;
        }
        if (to > from) parts.push({ entry: asBuffer(record.data), timestamp: record.timestamp, from, to });
        next = at + to - from;
        // The next read starts in this entry when it was not read to its end.
        nextIndex = to - from < record.count - skip ? record.index : record.index + 1;
        if (to < spans.bodies.length || to >= maxCount) {
          spans.bodies.length = to;
          full = true;
          break read;
        }
      }
    }
    const count = next < 0 ? 0 : next - firstOffset;
    if (count === 0) return { firstOffset: offset, count: 0, dataBytes: 0, bytes: new Uint8Array(0) };
    const out = Buffer.allocUnsafe(encodedBytes(spans, 0, count));
    let pos = 0;
    for (const part of parts) pos = writeMessages(out, pos, part.entry, spans, part.from, part.to, part.timestamp);
    if (nextIndex !== undefined) this.putHint(next, nextIndex, full ? { maxCount, maxBytes } : undefined);
    return { firstOffset, count, dataBytes: bytes, bytes: out };
  }

  private takeHint(offset: number): Hint | undefined {
    const hint = this.hints?.get(offset);
    if (hint === undefined) return undefined;
    this.hints?.delete(offset);
    if (hint.ahead !== undefined) this.aheadHints--;
    return hint;
  }

  /**
   * Remembers that `offset` is in entry `index`. After a read that stopped
   * at its limits (`readAhead`: a subscriber reading a backlog, whose next
   * read is likely), the records from there are read now, while the
   * delivery goes out and the client returns credit, so that the next read
   * need not wait for the disk (replaying 100,000 messages: one disk read
   * per 500 off the critical path).
   */
  private putHint(offset: number, index: number, readAhead: { maxCount: number; maxBytes: number } | undefined): void {
    const hints = (this.hints ??= new Map());
    if (hints.size >= MAX_HINTS) {
      hints.clear();
      this.aheadHints = 0;
    }
    let ahead: Hint['ahead'];
    if (readAhead !== undefined && this.aheadHints < MAX_AHEAD) {
      this.aheadHints++;
      // A failure here is not this read's: the next read reads again (and meets it, if it is still there).
      ahead = this.storage.readRecords(index, this.pageEntries(readAhead.maxCount), Math.max(readAhead.maxBytes, 1)).then(
        (page) => page.records,
        () => undefined,
      );
    }
    hints.set(offset, { index, ahead });
  }
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}
