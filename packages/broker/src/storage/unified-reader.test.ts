/**
 * The unified read path against the split one: over random logs (three
 * producers, duplicates, gaps, ack none, keys, headers, timestamps that go
 * back, no-ops, suffixes cut by a new leader), every read by offset of the
 * one log returns what `applyPublish` stored in a partition, offsets,
 * timestamps and bytes included, committed messages only.
 */
import { decodeValue } from '@relaymq/sdk/protocol';
import { describe, expect, it } from 'vitest';
import { applyPublish } from '../core/partition/apply.js';
import type { PublishCommand } from '../core/partition/command.js';
import { Partition, type EncodedMessages, type StoredMessage } from '../core/partition/partition.js';
import { StoredCounts } from './stored-counts.js';
import { deriveRandom, type Entry } from '../core/raft/index.js';
import { FaultyFileSystem } from '../../test/support/faulty-fs.js';
import { MemoryFileSystem } from '../../test/support/memory-fs.js';
import { SegmentRaftStorage } from './segment-raft-storage.js';
import { UnifiedPartitionReader } from './unified-reader.js';

const plain = (messages: StoredMessage[]): unknown[] => messages.map((m) => ({ ...m, data: [...m.data] }));

/** What an encoded read decodes to, in the form of {@link plain} (offsets from its first, `raw` where no encoding is named). */
function plainEncoded(read: EncodedMessages): unknown[] {
  const header = read.count < 16 ? Uint8Array.of(0x90 | read.count) : Uint8Array.of(0xdc, read.count >> 8, read.count & 0xff);
  const maps = decodeValue(Buffer.concat([header, read.bytes])) as Array<Record<string, unknown>>;
  expect(maps).toHaveLength(read.count);
  expect(read.dataBytes).toBe(maps.reduce((sum, m) => sum + (m.data as Uint8Array).length, 0));
  return maps.map((m, i) => {
    const message: Record<string, unknown> = { offset: read.firstOffset + i, timestamp: m.timestamp, data: [...(m.data as Uint8Array)], encoding: m.encoding ?? 'raw' };
    if (m.key !== undefined) message.key = m.key;
    if (m.headers !== undefined) message.headers = m.headers;
    return message;
  });
}

describe('UnifiedPartitionReader', () => {
  it.each([1, 2, 3, 4, 5, 6])('seed %i: reads by offset and finds offsets by time as a partition fed by applyPublish, committed messages only', async (seed) => {
    const stream = deriveRandom(seed, 'unified-reader');
    const random = (n: number): number => stream.nextInt(n);
    const applied = new Partition({ dedupeWindow: 16, retentionBytes: Number.MAX_SAFE_INTEGER });
    let appliedIndex = 0;
    let storage: SegmentRaftStorage<PublishCommand, unknown> | undefined;
    const counts = new StoredCounts(applied, 16, { appliedIndex: () => appliedIndex, entries: (lo, hi) => (storage as SegmentRaftStorage<PublishCommand, unknown>).reader.entries(lo, hi, 1e9) });
    storage = await SegmentRaftStorage.open<PublishCommand, unknown>('/data/p', ['a'], {
      fsync: 'always',
      fsyncIntervalMs: 1000,
      fs: new FaultyFileSystem(new MemoryFileSystem()),
      segments: { segmentBytes: 2048, indexIntervalBytes: 256 },
      counts,
      timestampOf: (e) => (e.type === 'normal' ? e.data.timestampMs : 0),
    });
    const reader = new UnifiedPartitionReader(storage);
    const next = new Map<string, number>();
    let term = 1;
    let clock = 1000;
    for (let step = 0; step < 120; step++) {
      const last = storage.reader.lastIndex();
      const op = random(10);
      if (op < 6) {
        const producer = `p${random(3)}`;
        // A client republishing from what it saw acknowledged (the applied table): duplicates of what followed.
        if (random(3) === 0) next.set(producer, applied.producers.toRecords().find((r) => r.producerId === producer)?.nextSeq ?? 0);
        // Mostly the next seqs or an overlap with the last ones (duplicates), now and then a gap (refused).
        const gap = random(8) === 0 ? 1 + random(2) : 0;
        const seq = Math.max(0, (next.get(producer) ?? 0) - random(3)) + gap;
        const n = 1 + random(4);
        const dedupe = random(8) !== 0;
        if (gap === 0 && dedupe) next.set(producer, Math.max(next.get(producer) ?? 0, seq + n));
        clock += random(50) - 20; // sometimes back in time
        const command: PublishCommand = {
          producerId: producer,
          firstSeq: seq,
          timestampMs: Math.max(0, clock),
          dedupe,
          messages: Array.from({ length: n }, (_, i) => {
            const m: PublishCommand['messages'][number] = { data: Uint8Array.from({ length: random(40) }, (_, k) => (seq + i + k) & 0xff) };
            if (random(3) === 0) m.key = `k${random(5)}`;
            if (random(4) === 0) m.headers = { trace: `t${step}` };
            if (random(4) === 0) m.encoding = 'msgpack';
            return m;
          }),
        };
        const entry: Entry<PublishCommand> = op === 5 ? { type: 'noop', index: last + 1, term } : { type: 'normal', index: last + 1, term, data: command };
        storage.append([entry]);
      } else if (op < 8 && last > storage.hardState.commit) {
        // A new leader cuts the uncommitted suffix and puts a batch of its own there.
        term++;
        const from = storage.hardState.commit + 1 + random(last - storage.hardState.commit);
        const producer = `p${random(3)}`;
        const command: PublishCommand = { producerId: producer, firstSeq: Math.max(0, (next.get(producer) ?? 0) - random(4)), timestampMs: clock, dedupe: true, messages: [{ data: Uint8Array.of(term) }] };
        storage.append([{ type: 'normal', index: from, term, data: command }]);
      } else {
        await storage.sync();
        const commit = storage.hardState.commit + random(last - storage.hardState.commit + 1);
        storage.setHardState({ term, vote: 'a', commit });
        for (const entry of storage.reader.entries(appliedIndex + 1, commit + 1, 1e9)) {
          if (entry.type === 'normal') applyPublish(applied, entry.data);
          appliedIndex = entry.index;
          counts.appliedUpTo(entry.index);
        }
      }
    }
    const compare = async (): Promise<void> => {
      expect(reader.endOffset).toBe(applied.endOffset);
      for (let offset = 0; offset <= applied.endOffset; offset++) {
        const maxCount = 1 + random(8);
        const maxBytes = 1 + random(120);
        const expected = plain(applied.read(offset, maxCount, maxBytes));
        expect(plain(await reader.read(offset, maxCount, maxBytes)), `from ${offset}`).toEqual(expected);
        // The same messages served from their stored bytes, without decoding the entries.
        expect(plainEncoded(await reader.readEncoded(offset, maxCount, maxBytes)), `encoded from ${offset}`).toEqual(expected);
      }
      // A subscriber reading on from where each read ended (the reader remembers where that is).
      const all: unknown[] = [];
      for (let offset = 0, n = 0; n < 10_000; n++) {
        const read = await reader.readEncoded(offset, 1 + random(8), 1 + random(120));
        if (read.count === 0) break;
        all.push(...plainEncoded(read));
        offset = read.firstOffset + read.count;
      }
      expect(all).toEqual(plain(applied.read(0, 1e6, 1 << 30)));
      for (let timeMs = 900; timeMs <= clock + 60; timeMs += 7) expect(await reader.offsetForTime(timeMs), `time ${timeMs}`).toBe(applied.offsetForTime(timeMs));
    };
    // Some entries are not committed yet: not visible.
    await storage.sync();
    await compare();
    storage.setHardState({ term, vote: 'a', commit: storage.reader.lastIndex() });
    for (const entry of storage.reader.entries(appliedIndex + 1, storage.reader.lastIndex() + 1, 1e9)) {
      if (entry.type === 'normal') applyPublish(applied, entry.data);
      appliedIndex = entry.index;
      counts.appliedUpTo(entry.index);
    }
    await compare();
    // Not vacuous: batches of which only the suffix after duplicates was stored.
    const partial = (await storage.readCommitted(1, 1e6, 1 << 30)).filter((e) => e.entry.type === 'normal' && e.count > 0 && e.count < e.entry.data.messages.length);
    expect(partial.length).toBeGreaterThan(0);
    expect(applied.endOffset).toBeGreaterThan(5);
    await storage.close();
  });

  it("never serves a cut entry's records: a follower's commit raised over a new leader's entries before sync writes them", async () => {
    const storage = await SegmentRaftStorage.open<PublishCommand, unknown>('/data/p', ['a', 'b'], {
      fsync: 'always',
      fsyncIntervalMs: 1000,
      fs: new MemoryFileSystem(),
      counts: { count: (e) => (e.type === 'normal' ? e.data.messages.length : 0), truncated: () => {} },
    });
    const reader = new UnifiedPartitionReader(storage);
    const publish = (producerId: string, ...data: string[]): PublishCommand => ({ producerId, firstSeq: 0, timestampMs: 1, dedupe: true, messages: data.map((d) => ({ data: new TextEncoder().encode(d) })) });
    const texts = async (): Promise<string[]> => (await reader.read(0, 100, 1 << 20)).map((m) => `${m.offset}:${new TextDecoder().decode(m.data)}`);
    // Term 1: entry 1 committed, entry 2 (offsets 1-2) written but never committed.
    storage.append([
      { type: 'normal', index: 1, term: 1, data: publish('p1', 'a0') },
      { type: 'normal', index: 2, term: 1, data: publish('p2', 'old1', 'old2') },
    ]);
    storage.setHardState({ term: 1, vote: 'a', commit: 1 });
    await storage.sync();
    expect(await texts()).toEqual(['0:a0']);
    // The new leader's entry 2 (term 2, other messages at offsets 1-2) and a commit over it, in one Ready: the runner sets both before it syncs.
    storage.append([{ type: 'normal', index: 2, term: 2, data: publish('p3', 'new1', 'new2') }]);
    storage.setHardState({ term: 2, vote: 'b', commit: 2 });
    expect(await texts()).toEqual(['0:a0']);
    expect(reader.endOffset).toBe(1);
    expect((await storage.readRecords(1, 10, 1 << 20)).records.map((r) => r.term)).toEqual([1]);
    await storage.sync();
    expect(await texts()).toEqual(['0:a0', '1:new1', '2:new2']);
    expect(reader.endOffset).toBe(3);
    await storage.close();
  });
});
