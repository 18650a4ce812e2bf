/**
 * Bytes written per message by one partition replica's storage, the split
 * layout (Raft record file + segment log + checkpoints, as the broker drives
 * them today) against the unified one (the segment log is the Raft log), from
 * this process's /proc/self/io: `wchar` (bytes handed to write calls) and
 * `write_bytes` (bytes the kernel sent to the block device, metadata and
 * journal excluded; 0 on tmpfs). Storage only, no network: each round is one
 * Raft `Ready` as `runReady` persists it (append, hard state, sync) followed
 * by the apply of what it commits, a checkpoint (split) or snapshot
 * (unified) every 2,000 entries, fsync `always`.
 *
 *   npx tsx bench/storage-bytes.ts [--messages 20000] [--bytes 1024] [--batch 1,64]
 *
 * Prints one JSON object. Linux only.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PublishCommand } from '../packages/broker/src/core/partition/command.js';
import type { Entry } from '../packages/broker/src/core/raft/index.js';
import { DiskPartition, type PartitionCheckpoint } from '../packages/broker/src/storage/disk-partition.js';
import { nodeFileSystem } from '../packages/broker/src/storage/fs.js';
import { DurableRaftStorage, type RaftLogStorage } from '../packages/broker/src/storage/raft-storage.js';
import { SegmentRaftStorage } from '../packages/broker/src/storage/segment-raft-storage.js';

const CHECKPOINT_ENTRIES = 2000;

function arg(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? (process.argv[at + 1] ?? fallback) : fallback;
}

async function io(): Promise<{ wchar: number; writeBytes: number }> {
  const text = await readFile('/proc/self/io', 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { wchar: field('wchar'), writeBytes: field('write_bytes') };
}

/** The publish commands of `messages` messages of `bytes` bytes, `batch` per entry. */
function commands(messages: number, bytes: number, batch: number): PublishCommand[] {
  const out: PublishCommand[] = [];
  for (let seq = 0; seq < messages; seq += batch) {
    const n = Math.min(batch, messages - seq);
    out.push({
      producerId: 'bench-producer-0001',
      firstSeq: seq,
      timestampMs: 1_765_000_000_000 + seq,
      dedupe: true,
      messages: Array.from({ length: n }, (_, i) => ({ data: new Uint8Array(bytes).fill((seq + i) & 0xff) })),
    });
  }
  return out;
}

/** Drives one storage through the rounds: each entry its own Ready, the previous one committed by it. */
async function drive(
  storage: RaftLogStorage<PublishCommand, unknown>,
  cmds: readonly PublishCommand[],
  apply: (entry: Entry<PublishCommand>) => void,
  checkpoint: (index: number) => Promise<void>,
): Promise<void> {
  storage.setHardState({ term: 1, vote: 'b1', commit: 0 });
  for (let i = 0; i < cmds.length; i++) {
    const index = i + 1;
    const entry: Entry<PublishCommand> = { type: 'normal', index, term: 1, data: cmds[i] as PublishCommand };
    storage.append([entry]);
    storage.setHardState({ term: 1, vote: 'b1', commit: index - 1 });
    await storage.sync();
    if (index > 1) apply(storage.reader.entries(index - 1, index, 1)[0] as Entry<PublishCommand>);
    if ((index - 1) % CHECKPOINT_ENTRIES === 0 && index > 1) await checkpoint(index - 1);
  }
}

async function split(dir: string, cmds: readonly PublishCommand[]): Promise<void> {
  const storage = await DurableRaftStorage.open<PublishCommand, PartitionCheckpoint>(join(dir, 'raft.log'), ['b1', 'b2', 'b3']);
  const partition = await DiskPartition.open(join(dir, 'p'), nodeFileSystem, { dedupeWindow: 1000, segments: {}, report: () => {} });
  await drive(
    storage as RaftLogStorage<PublishCommand, unknown>,
    cmds,
    (entry) => {
      if (entry.type !== 'normal') return;
      const first = partition.store(entry.data.messages, entry.data.timestampMs);
      entry.data.messages.forEach((_, i) => partition.producers.record(entry.data.producerId, entry.data.firstSeq + i, first + i));
    },
    async (index) => {
      const cp = partition.capture(index, 1);
      await partition.writeCheckpoint(cp);
      await storage.compact(index, cp);
    },
  );
  await storage.close();
  await partition.close();
}

async function unified(dir: string, cmds: readonly PublishCommand[]): Promise<void> {
  const storage = await SegmentRaftStorage.open<PublishCommand, unknown>(join(dir, 'p'), ['b1', 'b2', 'b3'], {
    fsync: 'always',
    fsyncIntervalMs: 1000,
    counts: { count: (e) => (e.type === 'normal' ? e.data.messages.length : 0), truncated: () => {} },
    timestampOf: (e) => (e.type === 'normal' ? e.data.timestampMs : 0),
  });
  // The snapshot's data: the producer table, as the split checkpoint has it.
  let producers: Array<{ producerId: string; nextSeq: number; recent: number[] }> = [];
  await drive(
    storage,
    cmds,
    (entry) => {
      if (entry.type === 'normal') producers = [{ producerId: entry.data.producerId, nextSeq: entry.data.firstSeq + entry.data.messages.length, recent: [] }];
    },
    (index) => storage.compact(index, { producers }),
  );
  await storage.close();
}

async function measure(layout: 'split' | 'unified', cmds: readonly PublishCommand[], payload: number): Promise<Record<string, number>> {
  const dir = await mkdtemp(join(tmpdir(), 'relaymq-storage-bytes-'));
  try {
    const before = await io();
    const started = performance.now();
    await (layout === 'split' ? split(dir, cmds) : unified(dir, cmds));
    const seconds = (performance.now() - started) / 1000;
    const after = await io();
    const messages = cmds.reduce((n, c) => n + c.messages.length, 0);
    return {
      wcharPerMessage: Math.round((after.wchar - before.wchar) / messages),
      writeBytesPerMessage: Math.round((after.writeBytes - before.writeBytes) / messages),
      wcharOverPayload: Number(((after.wchar - before.wchar) / messages / payload).toFixed(3)),
      writeBytesOverPayload: Number(((after.writeBytes - before.writeBytes) / messages / payload).toFixed(3)),
      messagesPerSecond: Math.round(messages / seconds),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const messages = Number(arg('messages', '20000'));
  const bytes = Number(arg('bytes', '1024'));
  const batches = arg('batch', '1,64').split(',').map(Number);
  const results: Record<string, unknown> = {};
  for (const batch of batches) {
    const cmds = commands(messages, bytes, batch);
    results[`batch${batch}`] = { split: await measure('split', cmds, bytes), unified: await measure('unified', cmds, bytes) };
  }
  const load = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');
  console.log(JSON.stringify({ messages, payloadBytes: bytes, fsync: 'always', loadavg: load, results }, null, 2));
}

await main();
