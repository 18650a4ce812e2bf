/**
 * A resubscribe the broker does not answer within the request timeout: its
 * late answer is dropped with the request, so the SDK cannot tell a late
 * `subscribed` from a late refusal (NOT_READY: a durable lookup without a
 * metadata quorum) or a request the broker never got. It must not take the
 * subscription as registered: it asks again (after an `unsubscribe`, since a
 * broker refuses a second subscribe under the same id), from the positions
 * received, and ignores frames until that one is answered, so the handler
 * still sees each message once.
 */
import { describe, expect, it } from 'vitest';
import { answering, batch } from '../../test/support/subscriber-fakes.js';
import type { BrokerConnection } from '../connection/connection.js';
import { RelayError, type Cursor, type DeliveryBatch } from '../protocol/index.js';
import type { Message } from './message.js';
import { Subscriber, type SubscriberListener } from './subscriber.js';

interface SentFrame {
  type: string;
  subscription: number;
  resume?: Cursor[];
}

interface PendingSubscribe {
  frame: SentFrame;
  onReply: ((reply: unknown) => void) | undefined;
  resolve: (reply: unknown) => void;
  reject: (err: unknown) => void;
}

/**
 * A connection to a broker that holds subscriptions as delivery.ts does: a
 * subscribe under an id it holds or is starting is refused (INVALID_ARGUMENT),
 * an unsubscribe removes either, and it delivers to the subscriptions it holds only.
 */
function fakeBroker(subscriber: () => Subscriber): {
  connection: BrokerConnection;
  sent: SentFrame[];
  subscribes: PendingSubscribe[];
  answer(i: number, cursors: Cursor[]): void;
  timeOut(i: number): void;
  lateStart(i: number): void;
  lateRefuse(i: number): void;
  deliver(id: number, batch: DeliveryBatch): void;
} {
  const held = new Set<number>();
  const starting = new Map<number, PendingSubscribe>();
  const sent: SentFrame[] = [];
  const subscribes: PendingSubscribe[] = [];
  const connection = {
    open: true,
    brokerId: 'b',
    send: (frame: SentFrame) => {
      sent.push(frame);
      if (frame.type === 'unsubscribe') {
        held.delete(frame.subscription);
        starting.delete(frame.subscription);
      }
    },
    request: (frame: SentFrame, onReply?: (reply: unknown) => void): Promise<unknown> => {
      sent.push(frame);
      if (frame.type !== 'subscribe') return Promise.resolve({ type: 'unsubscribed' });
      if (held.has(frame.subscription) || starting.has(frame.subscription)) {
        return Promise.reject(new RelayError('INVALID_ARGUMENT', `subscription ${frame.subscription} already exists`));
      }
      return new Promise((resolve, reject) => {
        const pending = { frame, onReply, resolve, reject };
        subscribes.push(pending);
        starting.set(frame.subscription, pending);
      });
    },
  } as unknown as BrokerConnection;
  const at = (i: number): PendingSubscribe => subscribes[i] as PendingSubscribe;
  /** The broker finished starting request `i`: true unless it was unsubscribed meanwhile. */
  const started = (i: number): boolean => starting.get(at(i).frame.subscription) === at(i) && starting.delete(at(i).frame.subscription);
  return {
    connection,
    sent,
    subscribes,
    answer: (i, cursors) => {
      if (!started(i)) return;
      held.add(at(i).frame.subscription);
      at(i).onReply?.({ type: 'subscribed', id: 1, subscription: at(i).frame.subscription, cursors });
      at(i).resolve({ type: 'subscribed' });
    },
    // The connection's request timer: the request is forgotten, the broker still works on it.
    timeOut: (i) => at(i).reject(new RelayError('TIMEOUT', 'subscribe timed out')),
    // Answers after the timeout: the connection drops them unseen.
    lateStart: (i) => void (started(i) && held.add(at(i).frame.subscription)),
    lateRefuse: (i) => void started(i),
    deliver: (id, batch) => {
      if (held.has(id)) subscriber().onMessage(connection, { type: 'message', subscription: id, batches: [batch] });
    },
  };
}

const settled = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

/** Waits (at most 50 turns of the event loop) until `done()`. */
async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 50 && !done(); i++) await settled();
}

/** A subscription that received offsets 0-2 on broker a, then fails over to b (whose first subscribe is left unanswered). */
async function failedOver(): Promise<{ subscriber: Subscriber; b: ReturnType<typeof fakeBroker>; id: number; offsets: number[] }> {
  const subscriber = new Subscriber({} as unknown as SubscriberListener, 100, 10_000, { intervalMs: 1000, maxMessages: 100 }, 1 << 20);
  const offsets: number[] = [];
  const a = answering([{ topic: 't', partition: 0, offset: 0 }]);
  subscriber.setConnection(a);
  const { id } = await subscriber.subscribe('t', (m: Message) => void offsets.push(m.offset), { from: 'earliest' });
  subscriber.onMessage(a, { type: 'message', subscription: id, batches: [batch(0, 3)] });
  await settled();
  const b = fakeBroker(() => subscriber);
  subscriber.setConnection(b.connection);
  expect(b.subscribes).toHaveLength(1);
  return { subscriber, b, id, offsets };
}

describe('Subscriber resubscribe past the request timeout', () => {
  it('asks again when the timed-out subscribe is refused late (NOT_READY): the subscription is served, not silently empty', async () => {
    const { subscriber, b, id, offsets } = await failedOver();
    b.timeOut(0);
    b.lateRefuse(0); // NOT_READY, dropped with the request
    await until(() => b.subscribes.length > 1);
    expect(b.subscribes).toHaveLength(2);
    // Left first (a broker refuses a second subscribe under the same id), then asked from where it stands.
    expect(b.sent.map((f) => f.type)).toEqual(['subscribe', 'unsubscribe', 'subscribe']);
    expect(b.subscribes[1]?.frame.resume).toEqual([{ topic: 't', partition: 0, offset: 3 }]);
    b.answer(1, [{ topic: 't', partition: 0, offset: 3 }]);
    b.deliver(id, batch(3, 2));
    await settled();
    expect(offsets).toEqual([0, 1, 2, 3, 4]);
    expect(subscriber.stats().servedBy[0]?.broker).toBe('b');
    subscriber.closeAll(new RelayError('CLIENT_CLOSED', 'done'));
  });

  it('asks again while the broker never answers, once per timeout', async () => {
    const { subscriber, b } = await failedOver();
    b.timeOut(0);
    await until(() => b.subscribes.length > 1);
    expect(b.subscribes).toHaveLength(2);
    b.timeOut(1);
    await until(() => b.subscribes.length > 2);
    expect(b.subscribes).toHaveLength(3);
    expect(subscriber.stats().servedBy[0]?.broker).toBeUndefined(); // served by no one until answered
    subscriber.closeAll(new RelayError('CLIENT_CLOSED', 'done'));
  });

  it('a timed-out subscribe the broker starts late delivers each message once, in order', async () => {
    const { subscriber, b, id, offsets } = await failedOver();
    b.timeOut(0);
    b.lateStart(0); // `subscribed`, dropped with the request
    await settled();
    // Frames the late subscription sent before the broker read anything more: ignored, or taken once.
    subscriber.onMessage(b.connection, { type: 'message', subscription: id, batches: [batch(3, 2)] });
    // Asked again: it starts where the handler stands.
    if (b.subscribes.length > 1) b.answer(1, [{ topic: 't', partition: 0, offset: 3 }]);
    b.deliver(id, batch(3, 3)); // 3-4 again (the resubscribe's resume), then 5
    await settled();
    expect(offsets).toEqual([0, 1, 2, 3, 4, 5]);
    subscriber.closeAll(new RelayError('CLIENT_CLOSED', 'done'));
  });
});
