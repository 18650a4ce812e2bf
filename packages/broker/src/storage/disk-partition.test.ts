import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { applyPublish } from '../core/partition/apply.js';
import { COPY_PAGES_IN_FLIGHT, DiskPartition, parseCheckpoint } from './disk-partition.js';
import { nodeFileSystem } from './fs.js';
import { FaultyFileSystem } from '../../test/support/faulty-fs.js';

/** Every partition of these tests, opened and reopened alike. */
const OPTIONS = { dedupeWindow: 100, segments: { segmentBytes: 64 * 1024 }, report: () => {} };

const dirs: string[] = [];
const open: DiskPartition[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((p) => p.close().catch(() => {})));
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function partition(): Promise<{ partition: DiskPartition; fs: FaultyFileSystem; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'relaymq-disk-partition-'));
  dirs.push(dir);
  const fs = new FaultyFileSystem(nodeFileSystem);
  const p = await DiskPartition.open(dir, fs, OPTIONS);
  open.push(p);
  return { partition: p, fs, dir };
}

const publish = (p: DiskPartition, seq: number) =>
  applyPublish(p, { producerId: 'p1', firstSeq: seq, messages: [{ data: new TextEncoder().encode(`m${seq}`) }], timestampMs: 1000 + seq, dedupe: true })[0];

describe('parseCheckpoint (a checkpoint read from disk, or a leader snapshot from a peer)', () => {
  const base = { index: 7, term: 2, startOffset: 0, endOffset: 7, producers: [] };

  it('keeps the configuration recorded with it, and accepts a checkpoint from before it was recorded', () => {
    expect(parseCheckpoint({ ...base, conf: { voters: ['a', 'b', 'c'], learners: ['d'] } })?.conf).toEqual({ voters: ['a', 'b', 'c'], learners: ['d'] });
    expect(parseCheckpoint(base)).toEqual(base);
  });

  it('refuses a malformed configuration rather than dropping it', () => {
    expect(parseCheckpoint({ ...base, conf: { voters: 'a,b,c' } })).toBeUndefined();
    expect(parseCheckpoint({ ...base, conf: { voters: ['a', ''] } })).toBeUndefined();
    expect(parseCheckpoint({ ...base, conf: null })).toBeUndefined();
  });
});

describe('DiskPartition.rewind', () => {
  it('after a failed fsync, goes back to the last durable checkpoint (messages and idempotence table), as a restart would', async () => {
    const { partition: p, fs } = await partition();
    for (let seq = 0; seq < 10; seq++) expect(publish(p, seq)).toEqual({ kind: 'stored', offset: seq });
    await p.writeCheckpoint(p.capture(10, 1));
    for (let seq = 10; seq < 15; seq++) publish(p, seq);

    fs.failNext('datasync', 'EIO', Number.POSITIVE_INFINITY);
    await expect(p.log.sync()).rejects.toThrow();
    expect(p.failure()?.code).toBe('STORAGE_ERROR');
    // While the disk still fails, a checkpoint cannot be written (it would name messages not durable).
    await expect(p.writeCheckpoint(p.capture(15, 1))).rejects.toThrow();

    fs.heal();
    const checkpoint = await p.rewind();
    expect(checkpoint?.index).toBe(10);
    expect(p.failure()).toBeUndefined();
    expect(p.endOffset).toBe(10);
    // The idempotence table is the checkpoint's: seq 10 is new again (Raft applies its entry again), seq 9 a duplicate.
    expect(publish(p, 9)).toEqual({ kind: 'duplicate', offset: 9 });
    expect(publish(p, 10)).toEqual({ kind: 'stored', offset: 10 });
    const read = await p.read(0, 100, 1 << 20);
    expect(read.map((m) => new TextDecoder().decode(m.data))).toEqual(Array.from({ length: 11 }, (_, i) => `m${i}`));
  });

  it('never runs while a checkpoint is being written, so it cannot cut the segments below a checkpoint that lands after it', async () => {
    const { partition: p, fs, dir } = await partition();
    for (let seq = 0; seq < 5; seq++) publish(p, seq);
    const paused = fs.pauseNext('datasync');
    const writing = p.writeCheckpoint(p.capture(5, 1));
    await paused.reached;
    const rewinding = p.rewind();
    paused.release();
    await writing;
    expect((await rewinding)?.index).toBe(5);
    expect(p.endOffset).toBe(5);
    await p.close();
    const again = await DiskPartition.open(dir, fs, OPTIONS);
    open.push(again);
    expect(again.endOffset).toBe(5);
  });
});

describe('DiskPartition.install', () => {
  const PAGE = 8;
  /** Every message's offset, key, timestamp and bytes, to compare two replicas. */
  const contents = async (d: DiskPartition) =>
    (await d.read(0, 1000, 1 << 30)).map((m) => `${m.offset}:${m.key}:${m.timestamp}:${Buffer.from(m.data).toString('base64')}`);
  /** A leader holding `count` messages of 1 KiB, served `PAGE` at a time. */
  async function leader(count: number) {
    const { partition: source } = await partition();
    for (let seq = 0; seq < count; seq++) {
      applyPublish(source, { producerId: 'p1', firstSeq: seq, messages: [{ data: new Uint8Array(1024).fill(seq % 251), key: `k${seq % 3}` }], timestampMs: 1000 + seq, dedupe: true });
    }
    const snapshot = source.capture(count, 1);
    const fetch = async (offset: number) => ({ startOffset: source.startOffset, messages: await source.read(offset, PAGE, 1 << 20) });
    return { source, snapshot, fetch };
  }

  it('writes each page out while the next is fetched: what waits in memory stays under two pages, not the whole copy', async () => {
    const { source, snapshot, fetch } = await leader(80);
    const { partition: p } = await partition();
    let mostPending = 0;
    const offsets: number[] = [];
    await p.install(snapshot, async (offset) => {
      offsets.push(offset);
      mostPending = Math.max(mostPending, p.log.pendingBytes);
      return fetch(offset);
    });
    expect(offsets).toEqual(Array.from({ length: 10 }, (_, i) => i * PAGE));
    // Two pages of 8 records of a little over 1 KiB each (the old copy held all 80 until the checkpoint's sync).
    expect(mostPending).toBeGreaterThan(0);
    expect(mostPending).toBeLessThan(2 * PAGE * 1200);
    expect(p.checkpointed?.endOffset).toBe(80);
    expect(await contents(p)).toEqual(await contents(source));
  });

  it('keeps pages asked for ahead while one is written, and copies exactly what the leader holds when its guesses of where pages end are wrong', async () => {
    const { partition: source } = await partition();
    // Sizes that vary, so pages of at most 8 KiB hold from 2 to 40 messages: the next page's start is guessed wrong often.
    for (let seq = 0; seq < 300; seq++) {
      const bytes = seq % 50 < 25 ? 100 : 3000 + seq;
      applyPublish(source, { producerId: 'p1', firstSeq: seq, messages: [{ data: new Uint8Array(bytes).fill(seq % 251) }], timestampMs: 1000 + seq, dedupe: true });
    }
    const { partition: p } = await partition();
    let inFlight = 0;
    let mostInFlight = 0;
    let fetches = 0;
    await p.install(source.capture(300, 1), async (offset) => {
      fetches++;
      mostInFlight = Math.max(mostInFlight, ++inFlight);
      try {
        await new Promise((resolve) => setTimeout(resolve, 1)); // a fetch takes a while: the next one is asked meanwhile
        return { startOffset: source.startOffset, messages: await source.read(offset, 1000, 8 * 1024) };
      } finally {
        inFlight--;
      }
    });
    expect(mostInFlight).toBe(COPY_PAGES_IN_FLIGHT);
    // More fetches than pages one at a time would take: some guesses were wrong (dropped, asked again).
    let pages = 0;
    for (let offset = 0; offset < 300; pages++) offset += (await source.read(offset, 1000, 8 * 1024)).length;
    expect(fetches).toBeGreaterThan(pages);
    expect(await contents(p)).toEqual(await contents(source));
    expect(p.endOffset).toBe(300);
  });

  it('a copy cut short by a crash reopens at the previous checkpoint and copies again to exactly what the leader holds', async () => {
    const { source, snapshot, fetch } = await leader(40);
    const { partition: p, fs, dir } = await partition();
    let fetches = 0;
    const failing = p.install(snapshot, async (offset) => {
      if (++fetches === 4) throw new Error('leader unreachable');
      return fetch(offset);
    });
    await expect(failing).rejects.toThrow('leader unreachable');
    expect(p.checkpointed).toBeUndefined();
    // The crash: whatever the copy wrote is not vouched for by a checkpoint.
    await p.close();
    open.splice(open.indexOf(p), 1);
    const again = await DiskPartition.open(dir, fs, OPTIONS);
    open.push(again);
    expect(again.endOffset).toBe(0);
    await again.install(snapshot, fetch);
    expect(again.endOffset).toBe(40);
    expect(await contents(again)).toEqual(await contents(source));
  });
});
