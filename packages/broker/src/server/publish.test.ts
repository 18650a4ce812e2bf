import { describe, expect, it } from 'vitest';
import type { BrokerFrame, PublishBatch } from '@relaymq/sdk/protocol';
import type { ClientAccess } from './client-access.js';
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
        append: async (_topic: string, partition: number, requests: unknown[]) => {
          if (partition === 0) await stuck; // its leader cannot be reached yet
          return requests.map((_, i) => ({ kind: 'stored', offset: i }));
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
