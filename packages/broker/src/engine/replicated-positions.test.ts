/**
 * A durable position read through the metadata leader is taken once this
 * broker applied the metadata log as far as the leader had when it answered
 * (`applied`): its caller reads the topics' incarnations here. A leader that
 * names no index (an older broker) is taken at once, as before; one this
 * broker does not catch up with in time is its refusal (`NOT_READY`).
 */
import { RelayError } from '@relaymq/sdk/protocol';
import { describe, expect, it } from 'vitest';
import { ReplicatedPositions } from './replicated-positions.js';

const stored = [{ topic: 'a', partition: 0, offset: 3 }, { topic: 'b', partition: 0, offset: 1 }];

describe('ReplicatedPositions.positions', () => {
  it("waits for this broker to apply the leader's index before answering; a leader naming none is taken at once", async () => {
    const waited: number[] = [];
    const store = (answer: Record<string, unknown>): ReplicatedPositions =>
      new ReplicatedPositions(async () => answer, async (index) => void waited.push(index));
    expect(await store({ kind: 'positions', positions: stored, applied: 42 }).positions('d', 'a')).toEqual([stored[0]]);
    expect(waited).toEqual([42]);
    expect(await store({ kind: 'positions', positions: stored }).positions('d', '>')).toEqual(stored);
    expect(await store({ kind: 'positions', positions: stored, applied: -1 }).positions('d', '>')).toEqual(stored);
    expect(waited).toEqual([42]);
  });

  it('answers NOT_READY when this broker does not catch up in time', async () => {
    const store = new ReplicatedPositions(
      async () => ({ kind: 'positions', positions: stored, applied: 7 }),
      () => Promise.reject(new RelayError('NOT_READY', 'behind')),
    );
    await expect(store.positions('d', '>')).rejects.toMatchObject({ code: 'NOT_READY' });
  });
});
