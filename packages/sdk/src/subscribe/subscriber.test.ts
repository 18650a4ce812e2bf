/**
 * What a subscriber makes of delivery batches: offsets follow the batches,
 * a jump is a gap event (retention removed messages), except a jump the
 * broker declares a hole (`from`: offsets that never held a message, as in
 * RabbitMQ streams), which is skipped silently.
 */
import { describe, expect, it } from 'vitest';
import type { BrokerConnection } from '../connection/connection.js';
import type { DeliveryBatch } from '../protocol/index.js';
import type { Message } from './message.js';
import { Subscriber, type GapEvent, type SubscriberListener } from './subscriber.js';

async function subscribed(
  startAt: number,
): Promise<{ deliver: (batches: DeliveryBatch[]) => void; offsets: number[]; gaps: GapEvent[]; subscriber: Subscriber; sent: Array<{ type: string; credit?: number; bytes?: number }> }> {
  const gaps: GapEvent[] = [];
  const offsets: number[] = [];
  const subscriber = new Subscriber({ gap: (event: GapEvent) => gaps.push(event) } as unknown as SubscriberListener, 100, 10_000, { intervalMs: 1000, maxMessages: 100 }, 1 << 20);
  const sent: Array<{ type: string; credit?: number; bytes?: number }> = [];
  const connection = {
    open: true,
    send: (frame: { type: string; credit?: number; bytes?: number }) => void sent.push(frame),
    request: (frame: { subscription: number }, onReply: (reply: unknown) => void) => {
      onReply({ type: 'subscribed', id: 1, subscription: frame.subscription, cursors: [{ topic: 't', partition: 0, offset: startAt }] });
      return Promise.resolve();
    },
  } as unknown as BrokerConnection;
  subscriber.setConnection(connection);
  const { id } = await subscriber.subscribe('t', (m: Message) => void offsets.push(m.offset));
  return { deliver: (batches) => subscriber.onMessage(connection, { type: 'message', subscription: id, batches }), offsets, gaps, subscriber, sent };
}

const batch = (firstOffset: number, count: number, from?: number): DeliveryBatch => ({
  topic: 't',
  partition: 0,
  firstOffset,
  messages: Array.from({ length: count }, (_, i) => ({ timestamp: i, data: Uint8Array.of(i) })),
  ...(from === undefined ? {} : { from }),
});

const settled = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

describe('Subscriber receive', () => {
  it('skips a hole the broker declares where the subscription stands, with no gap event', async () => {
    const s = await subscribed(38);
    s.deliver([batch(38, 2), batch(41, 2, 40), batch(44, 1, 43)]);
    await settled();
    expect(s.offsets).toEqual([38, 39, 41, 42, 44]);
    expect(s.gaps).toEqual([]);
    expect(s.subscriber.stats().gaps).toBe(0);
    // Later batches continue from after the hole.
    s.deliver([batch(45, 1)]);
    await settled();
    expect(s.offsets.at(-1)).toBe(45);
    expect(s.gaps).toEqual([]);
  });

  it('reports a jump as a gap as before: without from, or with a from that is not where it stands', async () => {
    const s = await subscribed(5);
    s.deliver([batch(9, 1)]);
    s.deliver([batch(20, 1, 15)]); // stood at 10: 10-14 are missing, not a hole
    await settled();
    expect(s.offsets).toEqual([9, 20]);
    expect(s.gaps.map((g) => [g.expectedOffset, g.firstAvailableOffset])).toEqual([
      [5, 9],
      [10, 20],
    ]);
    expect(s.subscriber.stats().gaps).toBe(2);
  });

  it('drops the repeated head of a batch that overlaps what was received, hands the rest on in order, and gives the credit back', async () => {
    const s = await subscribed(0);
    s.deliver([batch(0, 30)]);
    s.deliver([batch(20, 40)]); // 20-29 again (a resubscribe after a failover), then 30-59
    s.deliver([batch(10, 5)]); // all repeated
    await settled();
    expect(s.offsets).toEqual(Array.from({ length: 60 }, (_, i) => i));
    expect(s.subscriber.stats()).toMatchObject({ delivered: 60, duplicatesDropped: 15, gaps: 0 });
    // 75 messages (of 1 byte) spent credit (window 100): 60 handled plus 15 dropped, returned a quarter of the window at a time.
    const grants = s.sent.filter((f) => f.type === 'credit');
    expect(grants.map((f) => f.credit)).toEqual([25, 25, 25]);
    expect(grants.map((f) => f.bytes)).toEqual([25, 25, 25]);
  });
});
