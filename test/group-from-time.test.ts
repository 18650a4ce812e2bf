import { afterEach, describe, expect, it } from 'vitest';
import { Fixture } from './support/cluster.js';
import { waitFor } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

describe('a consumer group started from a time', () => {
  it('starts each partition the group never committed at the first message stored at or after that time, as a plain subscription does', async () => {
    const broker = await fixture.broker({ defaultPartitions: 1 });
    const publisher = await fixture.client([broker.url]);
    for (let n = 0; n < 10; n++) await publisher.publish('timed.group', { n });
    await new Promise((resolve) => setTimeout(resolve, 20));
    const time = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 5));
    for (let n = 10; n < 20; n++) await publisher.publish('timed.group', { n });
    const member = await fixture.client([broker.url]);
    const seen: number[] = [];
    await member.subscribe('timed.group', (m) => void seen.push(m.offset), { group: 'since', from: { time } });
    await waitFor(() => seen.includes(19), 'the messages since then');
    expect(seen).toEqual(Array.from({ length: 10 }, (_, i) => 10 + i));
  });
});
