import type { PublishCommand } from '../core/partition/command.js';
import type { StoredMessage } from '../core/partition/partition.js';
import type { SegmentRaftStorage } from './segment-raft-storage.js';

/** Entries read from the log per page. */
const PAGE_ENTRIES = 256;

/**
 * The read side of a unified partition (docs/storage.md): messages by
 * offset from the one log, committed ones only. An entry's stored messages
 * are the last `count` of its batch, at the offsets in its record, with its
 * record's timestamp; what `applyPublish` stores on the split layout, read
 * without a second copy.
 */
export class UnifiedPartitionReader {
  constructor(private readonly storage: Pick<SegmentRaftStorage<PublishCommand, unknown>, 'committedEndOffset' | 'segments' | 'readCommitted' | 'indexOfOffset'>) {}

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
      const page = await this.storage.readCommitted(index, PAGE_ENTRIES, Math.max(maxBytes, 1));
      if (page.length === 0) break;
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
}
