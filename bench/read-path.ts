/**
 * CPU per message of a replay's read path on layout `unified` (issue 12,
 * "encode once"), both ways in one process, alternating, so the ratio holds
 * on a busy machine:
 *
 * - `decoded` (before): the stored entries decoded into messages
 *   (`UnifiedPartitionReader.read`), turned into delivery batches and encoded
 *   with the pinned codec (`encodeFrame`), as the broker did;
 * - `encoded` (after): the messages' stored bytes copied into the frame
 *   (`readEncoded` + `encodeMessageFrame`).
 *
 * And the client's decode of such a frame: msgpackr copying each message's
 * data (`copyBuffers`, before) against `decodeBrokerFrame` (after: a viewing
 * decode, then the data copied into shared 8 KiB chunks).
 *
 * One partition of `--messages` messages of `--bytes` bytes, `--batch` per
 * entry (as publish batches arrive), written, snapshotted and reopened (reads
 * come from disk, page cache), then read from offset 0 in reads of 500
 * messages (the SDK's credit returns in halves of 1,000).
 *
 *   npx tsx bench/read-path.ts [--messages 100000] [--bytes 128] [--batch 100] [--rounds 5]
 *
 * Prints one JSON object.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeBrokerFrame, decodeValue, encodeFrame, validateBrokerFrame } from '../packages/sdk/src/protocol/index.js';
import type { PublishCommand } from '../packages/broker/src/core/partition/command.js';
import { StoredCounts } from '../packages/broker/src/storage/stored-counts.js';
import { Partition } from '../packages/broker/src/core/partition/partition.js';
import { SegmentRaftStorage } from '../packages/broker/src/storage/segment-raft-storage.js';
import { UnifiedPartitionReader } from '../packages/broker/src/storage/unified-reader.js';
import { advance } from '../packages/broker/src/server/delivery.js';
import { encodeMessageFrame } from '../packages/broker/src/server/encoded-delivery.js';

function arg(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
}

const MESSAGES = arg('messages', 100_000);
const BYTES = arg('bytes', 128);
const BATCH = arg('batch', 100);
const ROUNDS = arg('rounds', 5);
const READ_MESSAGES = 500;
const READ_BYTES = 512 * 1024;
const MAX_PAYLOAD = 64 * 1024 * 1024;

type Storage = SegmentRaftStorage<PublishCommand, unknown>;

async function fill(dir: string): Promise<void> {
  const applied = new Partition({ dedupeWindow: 16, retentionBytes: Number.MAX_SAFE_INTEGER });
  let storage: Storage | undefined;
  const counts = new StoredCounts(applied, 16, { appliedIndex: () => 0, entries: (lo, hi) => (storage as Storage).reader.entries(lo, hi, 1e12) });
  storage = await SegmentRaftStorage.open<PublishCommand, unknown>(dir, ['a'], { fsync: 'interval', fsyncIntervalMs: 1000, counts, timestampOf: (e) => (e.type === 'normal' ? e.data.timestampMs : 0) });
  const data = new Uint8Array(BYTES).fill(7);
  let index = 0;
  for (let seq = 0; seq < MESSAGES; seq += BATCH) {
    const n = Math.min(BATCH, MESSAGES - seq);
    const command: PublishCommand = { producerId: 'bench', firstSeq: seq, timestampMs: Date.now(), dedupe: true, messages: Array.from({ length: n }, () => ({ data })) };
    storage.append([{ type: 'normal', index: ++index, term: 1, data: command }]);
    if (index % 100 === 0) await storage.sync();
  }
  storage.setHardState({ term: 1, vote: 'a', commit: index });
  await storage.sync();
  await storage.compact(index, {});
  await storage.close();
}

function cpuMicros(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

async function replayDecoded(reader: UnifiedPartitionReader): Promise<{ frames: Uint8Array[]; messages: number }> {
  const cursor = { topic: 'bench.replay', partition: 0, offset: 0 };
  const engine = { offsetHoles: false, bounds: () => ({ start: 0, end: MESSAGES }) };
  const frames: Uint8Array[] = [];
  let messages = 0;
  for (;;) {
    const stored = await reader.read(cursor.offset, READ_MESSAGES, READ_BYTES);
    if (stored.length === 0) break;
    messages += stored.length;
    const batches = advance(engine, cursor, stored);
    const frame = encodeFrame({ type: 'message', subscription: 1, batches });
    if (frames.length < 20) frames.push(frame);
  }
  return { frames, messages };
}

async function replayEncoded(reader: UnifiedPartitionReader): Promise<{ frames: Uint8Array[]; messages: number }> {
  let offset = 0;
  const frames: Uint8Array[] = [];
  let messages = 0;
  for (;;) {
    const read = await reader.readEncoded(offset, READ_MESSAGES, READ_BYTES);
    if (read.count === 0) break;
    messages += read.count;
    offset = read.firstOffset + read.count;
    const frame = encodeMessageFrame(1, 'bench.replay', 0, read);
    if (frames.length < 20) frames.push(frame);
  }
  return { frames, messages };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'relaymq-read-path-'));
  try {
    await fill(dir);
    const storage = await SegmentRaftStorage.open<PublishCommand, unknown>(dir, ['a'], { fsync: 'interval', fsyncIntervalMs: 1000 });
    const reader = new UnifiedPartitionReader(storage);
    const micros = { decoded: [] as number[], encoded: [] as number[], clientCopying: [] as number[], clientChunked: [] as number[] };
    let sample: Uint8Array[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, replay] of [
        ['decoded', replayDecoded],
        ['encoded', replayEncoded],
      ] as const) {
        const before = cpuMicros();
        const { frames, messages } = await replay(reader);
        if (messages !== MESSAGES) throw new Error(`${name}: read ${messages} of ${MESSAGES}`);
        micros[name].push((cpuMicros() - before) / messages);
        sample = frames;
      }
      const decodedMessages = 5 * sample.length * READ_MESSAGES;
      let before = cpuMicros();
      for (let i = 0; i < 5; i++) for (const frame of sample) validateBrokerFrame(decodeValue(frame)); // the decoder before: every byte string copied alone
      micros.clientCopying.push((cpuMicros() - before) / decodedMessages);
      before = cpuMicros();
      for (let i = 0; i < 5; i++) for (const frame of sample) decodeBrokerFrame(frame, MAX_PAYLOAD);
      micros.clientChunked.push((cpuMicros() - before) / decodedMessages);
    }
    await storage.close();
    const median = (values: number[]): number => Math.round(100 * ([...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number)) / 100;
    const result = {
      messages: MESSAGES,
      bytes: BYTES,
      perEntry: BATCH,
      rounds: ROUNDS,
      loadAvg: loadavg().map((l) => Math.round(l * 100) / 100),
      brokerMicrosPerMessage: { decoded: median(micros.decoded), encoded: median(micros.encoded) },
      brokerRatio: Math.round((100 * median(micros.decoded)) / median(micros.encoded)) / 100,
      clientDecodeMicrosPerMessage: { copying: median(micros.clientCopying), chunked: median(micros.clientChunked) },
      clientRatio: Math.round((100 * median(micros.clientCopying)) / median(micros.clientChunked)) / 100,
    };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
