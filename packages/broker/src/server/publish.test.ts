import { describe, expect, it, onTestFinished } from 'vitest';
import type { BrokerFrame, PublishBatch } from '@relaymq/sdk/protocol';
import type { ClientAccess } from './client-access.js';
import { MemoryEngine } from '../engine/memory.js';
import { PublishHandler, ackRanges } from './publish.js';
import type { SessionContext } from './session-context.js';

const batch = (count: number): PublishBatch => ({
  topic: 't',
  partition: 0,
  ack: 'quorum',
  firstId: 100,
  firstSeq: 10,
  messages: Array.from({ length: count }, () => ({ data: new Uint8Array() })),
});

describe('ackRanges', () => {
  it('collapses consecutive stored messages into one range, and starts a new one where duplicates begin', () => {
    const answers = ackRanges(batch(4), [
      { kind: 'stored', offset: 5 },
      { kind: 'stored', offset: 6 },
      { kind: 'duplicate', offset: 7 },
      { kind: 'duplicate', offset: 8 },
    ]);
    expect(answers).toEqual([
      { id: 100, offset: 5, count: 2, duplicate: false },
      { id: 102, offset: 7, count: 2, duplicate: true },
    ]);
  });

  it('nacks a gap (with the expected seq) and a seq too old, in message order between the acks', () => {
    const answers = ackRanges(batch(4), [
      { kind: 'stored', offset: 0 },
      { kind: 'gap', expectedSeq: 11 },
      { kind: 'too-old', expectedSeq: 20 },
      { kind: 'stored', offset: 1 },
    ]);
    expect(answers).toEqual([
      { id: 100, offset: 0, count: 1, duplicate: false },
      { type: 'nack', id: 101, code: 'SEQUENCE_GAP', message: 'seq 11 skips ahead; expected 11', expectedSeq: 11 },
      { type: 'nack', id: 102, code: 'SEQUENCE_TOO_OLD', message: 'seq 12 is older than the deduplication window (next is 20)' },
      { id: 103, offset: 1, count: 1, duplicate: false },
    ]);
  });
});

describe('PublishHandler', () => {
  it("answers each partition of a frame as soon as that partition is done: a stuck partition holds no other partition's acks", async () => {
    let release: () => void = () => {};
    const stuck = new Promise<void>((resolve) => (release = resolve));
    const sent: BrokerFrame[] = [];
    const ctx = {
      options: { publishRateLimit: 0, publishBurst: 0, id: 'b1' },
      now: () => Date.now(),
      draining: () => false,
      ready: () => true,
      counters: {},
      engine: {
        partitionCount: () => 2,
        leaderOf: () => 'b1',
        append: async (_topic: string, partition: number, batch: { messages: unknown[] }) => {
          if (partition === 0) await stuck; // its leader cannot be reached yet
          return batch.messages.map((_, i) => ({ kind: 'stored', offset: i }));
        },
      },
    } as unknown as SessionContext;
    const handler = new PublishHandler({
      ctx,
      producerId: () => 'p',
      access: () => ({ permissions: { mayPublish: () => true }, owned: (name: string) => name, describe: () => 'anonymous' }) as unknown as ClientAccess,
      send: (frame) => sent.push(frame),
    });
    const at = (partition: number, firstId: number): PublishBatch => ({ ...batch(2), partition, firstId, firstSeq: 0 });
    // A client resends its outbox after a failover in one frame: partition 0 first, partition 1 behind it.
    handler.publish({ type: 'publish', batches: [at(0, 1), at(1, 3), at(0, 5)] });
    for (let i = 0; i < 20 && sent.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(sent).toEqual([{ type: 'ack', acks: [{ id: 3, offset: 0, count: 2, duplicate: false }] }]);
    release();
    for (let i = 0; i < 20 && sent.length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    // Partition 0's two batches still answer together, in message order.
    expect(sent[1]).toEqual({
      type: 'ack',
      acks: [
        { id: 1, offset: 0, count: 2, duplicate: false },
        { id: 5, offset: 0, count: 2, duplicate: false },
      ],
    });
  });
});

describe('PublishHandler over the in-memory engine', () => {
  it('answers a flush mixing producers on one partition per producer: stored, duplicate and gap each in message order', async () => {
    const engine = new MemoryEngine({ defaultPartitions: 1, dedupeWindow: 64, retentionBytes: 1e9, now: () => 1000 });
    await engine.ensureTopic('t');
    onTestFinished(() => engine.close());
    const sent: BrokerFrame[] = [];
    const ctx = { options: { publishRateLimit: 0, publishBurst: 0, id: 'b1' }, now: () => 1000, draining: () => false, ready: () => true, counters: {}, engine } as unknown as SessionContext;
    const handler = new PublishHandler({
      ctx,
      producerId: () => 'p',
      access: () => ({ permissions: { mayPublish: () => true }, owned: (name: string) => name, describe: () => 'anonymous' }) as unknown as ClientAccess,
      send: (frame) => sent.push(frame),
    });
    const at = (firstId: number, firstSeq: number, count: number, incarnation?: number): PublishBatch => ({
      ...batch(count),
      firstId,
      firstSeq,
      ...(incarnation === undefined ? {} : { incarnation }),
    });
    // Incarnation 0 and 1 of one client are two producers; one frame carries both, interleaved.
    handler.publish({ type: 'publish', batches: [at(1, 0, 2), at(3, 0, 1, 1), at(4, 1, 2), at(6, 1, 1, 1), at(7, 5, 1)] });
    handler.publish({ type: 'publish', batches: [at(8, 0, 2, 1)] });
    for (let i = 0; i < 50 && sent.length < 3; i++) await new Promise((resolve) => setTimeout(resolve, 2));
    expect(sent).toEqual([
      {
        type: 'ack',
        acks: [
          { id: 1, offset: 0, count: 2, duplicate: false },
          { id: 3, offset: 2, count: 1, duplicate: false },
          { id: 4, offset: 1, count: 1, duplicate: true },
          { id: 5, offset: 3, count: 1, duplicate: false },
          { id: 6, offset: 4, count: 1, duplicate: false },
        ],
      },
      { type: 'nack', id: 7, code: 'SEQUENCE_GAP', message: 'seq 5 skips ahead; expected 3', expectedSeq: 3 },
      {
        type: 'ack',
        acks: [
          { id: 8, offset: 2, count: 1, duplicate: true },
          { id: 9, offset: 4, count: 1, duplicate: true },
        ],
      },
    ]);
    expect(engine.read('t', 0, 0, 100, 1e9)).toHaveLength(5);
  });
});
