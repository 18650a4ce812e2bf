/**
 * A plain or durable subscriber whose in-memory broker restarted while it was
 * away. The restarted broker's log starts over at offset 0; the subscriber
 * resumes from its position in the lost log. The broker could tell the log was
 * lost only when that position was past the new log's end: once the new log
 * had grown past it, the position was taken as one of the new log, and the new
 * log's messages below it were skipped, silently (no `gap` event). A durable
 * subscriber's position of the old log was also committed to the new one, which
 * keeps the larger of the stored and a committed position.
 *
 * The restarted broker names a new log in its `welcome` (`logId`): the
 * subscriber sends no position of the old log, follows the new log from its
 * start with one `gap` event `reset: true` per partition, and commits nothing
 * of the old log to the new one.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { GapEvent, Message, SubscribeOptions } from '@relaymq/sdk';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { startProxy } from './support/proxy.js';
import { waitFor } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

const TOPIC = 'restarted.plain';

/**
 * Runs the scenario: the subscriber handles n = 0-2 (its position: 3), is kept
 * away while the broker restarts and its new log gets n = 3-7 (offsets 0-4, past
 * that position), then comes back; n = 8-9 follow.
 */
async function restartWhileAway(options: SubscribeOptions, clientOptions: Parameters<Fixture['client']>[1] = {}) {
  const [port] = await freePorts(1);
  const first = await fixture.broker({ port, defaultPartitions: 1 });
  // The subscriber reaches the broker only through a proxy (no discovery), so the test decides when it is back.
  const proxy = await startProxy(first.port);
  fixture.defer(() => proxy.close());
  const publisher = await fixture.client([first.url]);
  const subscriber = await fixture.client([proxy.url], { discovery: false, ...clientOptions });
  const gaps: GapEvent[] = [];
  subscriber.on('gap', (event) => void gaps.push(event));
  const seen: number[] = [];
  const subscription = await subscriber.subscribe(TOPIC, (m: Message<{ n: number }>) => void seen.push(m.data.n), { from: 'earliest', ...options });
  for (let n = 0; n < 3; n++) await publisher.publish(TOPIC, { n });
  await waitFor(() => seen.length === 3, 'the subscriber to handle the first log');

  proxy.block();
  await first.close();
  const second = await fixture.broker({ port, defaultPartitions: 1 });
  for (let n = 3; n < 8; n++) await publisher.publish(TOPIC, { n });
  proxy.unblock();
  await waitFor(() => subscriber.stats().subscribe.servedBy[0]?.broker !== undefined, 'the subscriber to subscribe on the restarted broker', 10_000);
  for (let n = 8; n < 10; n++) await publisher.publish(TOPIC, { n });
  await waitFor(() => seen.includes(9), 'the subscriber to handle the last message', 10_000);
  return { second, seen, gaps, subscription };
}

describe('a subscriber whose in-memory broker restarted while it was away', () => {
  it('plain: follows the new log from its start, with one reset gap, though the new log grew past its old position', async () => {
    const { seen, gaps } = await restartWhileAway({});
    // Before the fix: it resumed at 3 in the new log and handled [0, 1, 2, 6, 7, 8, 9], losing 3-5 silently.
    expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(gaps).toMatchObject([{ topic: TOPIC, partition: 0, expectedOffset: 3, firstAvailableOffset: 0, reset: true }]);
  });

  it('durable: follows the new log from its start, with one reset gap, and commits no position of the old log to the new one', async () => {
    // Positions stay pending (no interval or count is reached): the one of the old log is still to commit at the restart.
    const { second, seen, gaps, subscription } = await restartWhileAway({ durable: 'd' }, { commit: { intervalMs: 60_000, maxMessages: 1000 } });
    expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(gaps).toMatchObject([{ topic: TOPIC, partition: 0, expectedOffset: 3, firstAvailableOffset: 0, reset: true, durable: 'd' }]);
    // Stored where it started in the new log, as a new durable subscription is; never its position 3 of the old one.
    expect(await second.engine.positions('d', TOPIC)).toEqual([{ topic: TOPIC, partition: 0, offset: 0 }]);
    await subscription.unsubscribe();
    expect(await second.engine.positions('d', TOPIC)).toEqual([{ topic: TOPIC, partition: 0, offset: 7 }]);
  });
});
