/**
 * A wildcard subscription meets a topic created after it subscribed in a
 * `message` frame, not in its `subscribed` cursors: that delivery names the
 * topic's incarnation (the first batch of the topic on the subscription,
 * per connection), so the SDK's positions there carry it as they do for a
 * topic `subscribed` named. On the wire: a standalone broker with a data
 * directory (a cluster of one, whose metadata tracks incarnations).
 *
 * Without it, a durable commit of the old topic in flight across a delete and
 * a re-create is stamped with the new topic's incarnation by the broker, and
 * the new topic's durable subscriber skips its first messages.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import type { Message } from '@relaymq/sdk';
import { Fixture } from './support/cluster.js';
import { RawClient } from './support/raw-client.js';
import { tempDirs } from './support/temp-dirs.js';
import { incarnationHelpers } from './support/incarnations.js';
import { waitFor } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());
const tempDir = tempDirs('relaymq-wildinc-');

const { solo, publish, deleteTopic } = incarnationHelpers(fixture, tempDir);

describe('a wildcard subscription and topics created after it subscribed', () => {
  it("the first delivery of a new topic names its incarnation; later ones do not; the topic created again is named again", async () => {
    const broker = await solo();
    const raw = await RawClient.open(broker.url);
    try {
      raw.send({ type: 'subscribe', id: 1, subscription: 1, pattern: 'wi.*', from: 'earliest', resume: [], credit: 100 });
      expect((await raw.next('subscribed')).cursors).toEqual([]);
      await publish(broker, 'wi.a', 1);
      const first = await raw.next('message');
      expect(first.batches).toHaveLength(1);
      expect(first.batches[0]).toMatchObject({ topic: 'wi.a', firstOffset: 0, incarnation: 0 });
      await publish(broker, 'wi.a', 1);
      const second = await raw.next('message');
      expect(second.batches[0]).toMatchObject({ topic: 'wi.a', firstOffset: 1 });
      expect(second.batches[0]).not.toHaveProperty('incarnation'); // told once: nothing more on the hot path

      await deleteTopic(broker, 'wi.a');
      expect(await raw.next('error')).toMatchObject({ code: 'INVALID_TOPIC', subscription: 1, topic: 'wi.a' });
      await publish(broker, 'wi.a', 1); // created again: incarnation 1, offsets from 0
      const again = await raw.next('message');
      expect(again.batches[0]).toMatchObject({ topic: 'wi.a', firstOffset: 0, incarnation: 1 });
    } finally {
      raw.close();
    }
  });

  it("a durable commit of a topic first met in a message, in flight across its deletion and creation again, is not the new topic's position", async () => {
    const broker = await solo();
    const consumer = await fixture.client([broker.url], { commit: { intervalMs: 0, maxMessages: 1 } });
    let releaseOld: () => void = () => undefined;
    const oldGate = new Promise<void>((resolve) => (releaseOld = resolve));
    let releaseRest: () => void = () => undefined;
    const restGate = new Promise<void>((resolve) => (releaseRest = resolve));
    const entered: string[] = [];
    try {
      await consumer.subscribe(
        'wd.*',
        async (m: Message) => {
          entered.push(`${m.topic}@${m.offset}`);
          if (entered.length === 3) await oldGate; // the old topic's last message: its handler outlives the topic
          else if (entered.length > 3) await restGate; // the new topic's: never handled here, so never committed here
        },
        { durable: 'wild', from: 'earliest' },
      );
      await publish(broker, 'wd.t', 3); // created after the subscription: met first in a message frame
      await waitFor(() => entered.length === 3, 'the third message in its handler');

      await deleteTopic(broker, 'wd.t');
      await publish(broker, 'wd.t', 4); // created again: incarnation 1, offsets 0..3
      releaseOld(); // the old topic's offset 2 is handled now: its position (3) is the old topic's
      await waitFor(() => entered.length === 4, "the new topic's first message in its handler");
      await consumer.close(); // flushes the commit (whatever the SDK sends of it is answered before this resolves)

      // Nothing of the old topic is stored against the new one.
      expect(await broker.engine.positions('wild', 'wd.t')).toEqual([]);
      // The new topic's durable subscriber under that name reads it all, from offset 0.
      const reader = await fixture.client([broker.url]);
      const offsets: number[] = [];
      await reader.subscribe('wd.t', (m: Message) => void offsets.push(m.offset), { durable: 'wild', from: 'earliest' });
      await reader.publish('wd.t', 'last'); // offset 4: once it is here, every earlier one the broker sends is too
      await waitFor(() => offsets.includes(4), 'the last message');
      expect(offsets).toEqual([0, 1, 2, 3, 4]);
    } finally {
      releaseOld();
      releaseRest();
    }
  });
});
