import { afterEach, describe, expect, it } from 'vitest';
import type { GapEvent } from '@relaymq/sdk';
import { Fixture } from './support/cluster.js';
import { waitFor } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

describe('a consumer group started from an explicit offset that retention removed', () => {
  it('reports the gap (as a plain subscription does), not skipped silently', async () => {
    const broker = await fixture.broker({ retentionBytes: 1000, defaultPartitions: 1 });
    const publisher = await fixture.client([broker.url]);
    await Promise.all(Array.from({ length: 30 }, () => publisher.publish('trimmed.group', new Uint8Array(100))));
    expect(broker.engine.bounds('trimmed.group', 0).start).toBe(20);
    const member = await fixture.client([broker.url]);
    const gaps: GapEvent[] = [];
    member.on('gap', (gap) => gaps.push(gap));
    const seen: number[] = [];
    await member.subscribe('trimmed.group', (m) => void seen.push(m.offset), { group: 'late', from: { offset: 7 } });
    await waitFor(() => seen.length === 10, 'the retained ten');
    expect(seen).toEqual(range(20, 30));
    expect(gaps).toEqual([{ topic: 'trimmed.group', partition: 0, expectedOffset: 7, firstAvailableOffset: 20 }]);
  });
});
