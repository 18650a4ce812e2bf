import { describe, expect, it } from 'vitest';
import { applyPublish } from './apply.js';
import { parsePublishCommand, type PublishCommand } from './command.js';
import { Partition } from './partition.js';

const command = (firstSeq: number, count: number, producerId = 'p'): PublishCommand => ({
  producerId,
  timestampMs: 1000,
  dedupe: true,
  firstSeq,
  messages: Array.from({ length: count }, (_, i) => ({ data: new Uint8Array([firstSeq + i]), encoding: 'raw' as const })),
});

describe('applyPublish', () => {
  it('gives every replica the same offsets, timestamps and duplicate answers', () => {
    const replicas = [new Partition({ dedupeWindow: 64, retentionBytes: 1e9 }), new Partition({ dedupeWindow: 64, retentionBytes: 1e9 })];
    const commands = [command(0, 3), command(0, 2, 'q'), command(2, 3), command(5, 1)];
    const outcomes = replicas.map((replica) => commands.map((c) => applyPublish(replica, c)));
    expect(outcomes[0]).toEqual(outcomes[1]);
    expect(outcomes[0]?.[2]).toEqual([
      { kind: 'duplicate', offset: 2 },
      { kind: 'stored', offset: 5 },
      { kind: 'stored', offset: 6 },
    ]);
    expect(replicas[0]?.read(0, 100, 1e9).map((m) => m.timestamp)).toEqual(new Array(8).fill(1000));
  });
});

describe('parsePublishCommand', () => {
  it('accepts a well-formed command and refuses malformed ones', () => {
    expect(parsePublishCommand(command(0, 2))).toEqual(command(0, 2));
    const bad: unknown[] = [
      null,
      { ...command(0, 1), producerId: 7 },
      { ...command(0, 1), firstSeq: -1 },
      { ...command(0, 1), dedupe: 'yes' },
      { ...command(0, 1), messages: [{ data: 'not bytes', encoding: 'raw' }] },
      { ...command(0, 1), messages: [{ data: new Uint8Array(1), encoding: 'json' }] },
      { ...command(0, 1), messages: [{ data: new Uint8Array(1), encoding: 'raw', headers: { a: 1 } }] },
    ];
    for (const value of bad) expect(parsePublishCommand(value)).toBeUndefined();
  });
});
