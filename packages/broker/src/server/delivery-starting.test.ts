/**
 * A subscription id used again on one connection while its first subscribe is
 * still starting (the SDK does this when a subscription comes back to a
 * broker it just left: `unsubscribe`, then `subscribe` with the same id).
 * The unsubscribe overtakes the first start; the second subscribe is the one
 * answered and served, whichever start completes first.
 */
import { describe, expect, it } from 'vitest';
import type { BrokerFrame, Cursor, SubscribeFrame } from '@relaymq/sdk/protocol';
import { Delivery, type DeliverySession } from './delivery.js';

/** A session whose engine answers durable position reads only when told, in the order asked. */
function session(): { session: DeliverySession; sent: BrokerFrame[]; reads: Array<(positions: Cursor[]) => void> } {
  const sent: BrokerFrame[] = [];
  const reads: Array<(positions: Cursor[]) => void> = [];
  const engine = {
    offsetsSurviveRestart: true,
    topics: () => [],
    partitionCount: () => undefined,
    positions: () => new Promise<Cursor[]>((resolve) => reads.push(resolve)),
    consumerGroupEvents: { on: () => undefined, off: () => undefined },
  };
  const ctx = {
    engine,
    options: { maxSubscriptionsPerConnection: 100, maxCredit: 1_000_000 },
    counters: { subscriptionsRejected: 0, denied: 0 },
    fanout: { add: () => undefined, remove: () => undefined, stats: { cursorsVisited: 0 } },
  };
  const access = { permissions: { mayRead: () => true }, owned: (name: string) => name, describe: () => 'anonymous' };
  return {
    sent,
    reads,
    session: {
      ctx,
      open: () => true,
      access: () => access,
      send: (frame: BrokerFrame) => void sent.push(frame),
      sendEncoded: () => undefined,
      hasRoom: () => false, // nothing is read: the frames that answer are what this is about
    } as unknown as DeliverySession,
  };
}

const subscribe = (id: number, offset: number): SubscribeFrame => ({
  type: 'subscribe',
  id,
  subscription: 7,
  pattern: 't',
  from: 'earliest',
  resume: [{ topic: 't', partition: 0, offset }],
  credit: 10,
  durable: 'd',
});

describe('Delivery: a subscription id used again while its first subscribe starts', () => {
  it.each([
    { order: 'the first start completes first', first: 0 },
    { order: 'the second start completes first', first: 1 },
  ])('unsubscribe overtakes the first, the second subscribe is answered with its own cursors ($order)', async ({ first }) => {
    const { session: s, sent, reads } = session();
    const delivery = new Delivery(s);
    const one = delivery.subscribe(subscribe(1, 0));
    delivery.unsubscribe(2, 7);
    const two = delivery.subscribe(subscribe(3, 5));
    expect(reads).toHaveLength(2);
    (reads[first] as (p: Cursor[]) => void)([]);
    await Promise.resolve();
    (reads[1 - first] as (p: Cursor[]) => void)([]);
    await Promise.all([one, two]);
    delivery.stop();
    expect(sent.map((f) => [f.type, 'id' in f ? f.id : undefined])).toEqual([
      ['unsubscribed', 2],
      ['subscribed', 3],
    ]);
    expect(sent[1]).toMatchObject({ cursors: [{ topic: 't', partition: 0, offset: 5 }] });
  });
});
