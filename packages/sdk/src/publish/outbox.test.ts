import { describe, expect, it } from 'vitest';
import { Outbox, partitionKey, type OutboxEntry } from './outbox.js';

const entry = (topic: string, partition: number, seq: number): OutboxEntry =>
  ({ topic, partition, partitionKey: partitionKey(topic, partition), seq, size: 10 }) as OutboxEntry;

describe('Outbox', () => {
  it("gives one partition's entries in publish order, without the others, as entries come and go", () => {
    const outbox = new Outbox(100, 1_000);
    const a = [0, 1, 2, 3].map((seq) => entry('t', 0, seq));
    const b = [0, 1, 2].map((seq) => entry('t', 1, seq));
    const other = entry('u', 0, 0);
    for (let i = 0; i < 4; i++) {
      outbox.add(a[i] as OutboxEntry);
      if (i < 3) outbox.add(b[i] as OutboxEntry);
    }
    outbox.add(other);
    expect(outbox.partition('t', 0).map((e) => e.seq)).toEqual([0, 1, 2, 3]);
    expect(outbox.partition('t', 1).map((e) => e.seq)).toEqual([0, 1, 2]);
    expect(outbox.partition('u', 0)).toEqual([other]);

    outbox.delete(a[0] as OutboxEntry);
    outbox.delete(a[2] as OutboxEntry);
    for (const e of b) outbox.delete(e);
    expect(outbox.partition('t', 0).map((e) => e.seq)).toEqual([1, 3]);
    expect(outbox.partition('t', 1)).toEqual([]);
    expect(outbox.size).toBe(3);
    expect(outbox.bytes).toBe(30);
    // A copy: settling entries while going through it changes nothing under the caller.
    const copy = outbox.partition('t', 0);
    outbox.delete(a[1] as OutboxEntry);
    expect(copy.map((e) => e.seq)).toEqual([1, 3]);
  });
});
