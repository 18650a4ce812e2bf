import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { applyPublish } from '../core/partition/apply.js';
import { DiskPartition } from './disk-partition.js';
import { nodeFileSystem } from './fs.js';
import { FaultyFileSystem } from '../../test/support/faulty-fs.js';

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
  const p = await DiskPartition.open(dir, fs, { dedupeWindow: 100, segments: { segmentBytes: 64 * 1024 }, report: () => {} });
  open.push(p);
  return { partition: p, fs, dir };
}

const publish = (p: DiskPartition, seq: number) =>
  applyPublish(p, { producerId: 'p1', firstSeq: seq, messages: [{ data: new TextEncoder().encode(`m${seq}`) }], timestampMs: 1000 + seq, dedupe: true })[0];

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
    const again = await DiskPartition.open(dir, fs, { dedupeWindow: 100, segments: { segmentBytes: 64 * 1024 }, report: () => {} });
    open.push(again);
    expect(again.endOffset).toBe(5);
  });
});
