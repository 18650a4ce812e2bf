/**
 * A resubscribe answered later than the request timeout: a broker slower than
 * `requestTimeoutMs` to accept (a group join or a durable subscribe is a
 * metadata Raft commit) must still serve it, with no second request, and a
 * late refusal (NOT_READY) must be asked again; one never answered is asked
 * again after a longer bound. The fake connection times requests out as
 * connection.ts does, after `timeoutMs` (or the client's request timeout).
 */
import { describe, expect, it, vi } from 'vitest';
import { answering, batch } from '../../test/support/subscriber-fakes.js';
import type { BrokerConnection } from '../connection/connection.js';
import { RelayError, type Cursor, type DeliveryBatch } from '../protocol/index.js';
import type { Message } from './message.js';
import { Subscriber, type SubscriberListener } from './subscriber.js';

const REQUEST_TIMEOUT_MS = 100;

interface SentFrame {
  type: string;
  subscription: number;
  resume?: Cursor[];
}

interface Pending {
  frame: SentFrame;
  sentAt: number;
  onReply: ((reply: unknown) => void) | undefined;
  settle: (outcome: { type: 'subscribed'; cursors: Cursor[] } | RelayError) => void;
}

/** A broker answering only when told; its connection drops an answer later than the request's timeout, as connection.ts does. */
function slowBroker(subscriber: () => Subscriber) {
  const sent: SentFrame[] = [];
  const subscribes: Pending[] = [];
  const connection = {
    open: true,
    brokerId: 'b',
    send: (frame: SentFrame) => void sent.push(frame),
    request: (frame: SentFrame, onReply?: (reply: unknown) => void, timeoutMs?: number): Promise<unknown> => {
      sent.push(frame);
      if (frame.type !== 'subscribe') return Promise.resolve({ type: 'unsubscribed' });
      return new Promise((resolve, reject) => {
        let settled = false;
        const timer = setTimeout(() => {
          settled = true;
          reject(new RelayError('TIMEOUT', 'subscribe timed out'));
        }, timeoutMs ?? REQUEST_TIMEOUT_MS);
        subscribes.push({
          frame,
          sentAt: Date.now(),
          onReply,
          settle: (outcome) => {
            if (settled) return; // dropped unseen
            settled = true;
            clearTimeout(timer);
            if (outcome instanceof RelayError) return reject(outcome);
            const reply = { type: 'subscribed', id: 1, subscription: frame.subscription, cursors: outcome.cursors };
            onReply?.(reply);
            resolve(reply);
          },
        });
      });
    },
  } as unknown as BrokerConnection;
  const deliver = (id: number, batch: DeliveryBatch): void =>
    subscriber().onMessage(connection, { type: 'message', subscription: id, batches: [batch] });
  return { connection, sent, subscribes, deliver };
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits (at most `ms`, in 5 ms steps) until `done()`. */
async function until(done: () => boolean, ms = 2000): Promise<void> {
  for (const end = Date.now() + ms; !done() && Date.now() < end; ) await pause(5);
}

/** Received offsets 0-2 on broker a, then failed over to the slow broker b. */
async function failedOver() {
  const subscriber = new Subscriber({} as unknown as SubscriberListener, 100, REQUEST_TIMEOUT_MS, { intervalMs: 1000, maxMessages: 100 }, 1 << 20);
  const offsets: number[] = [];
  const a = answering([{ topic: 't', partition: 0, offset: 0 }]);
  subscriber.setConnection(a);
  const { id } = await subscriber.subscribe('t', (m: Message) => void offsets.push(m.offset), { from: 'earliest' });
  subscriber.onMessage(a, { type: 'message', subscription: id, batches: [batch(0, 3)] });
  await pause(0);
  const b = slowBroker(() => subscriber);
  subscriber.setConnection(b.connection);
  expect(b.subscribes).toHaveLength(1);
  return { subscriber, b, id, offsets };
}

describe('Subscriber resubscribe answered after the request timeout', () => {
  it('a late `subscribed` is taken, with no second request: a broker slower than the timeout still serves it', async () => {
    const { subscriber, b, id, offsets } = await failedOver();
    await pause(REQUEST_TIMEOUT_MS * 1.5);
    b.subscribes[0]?.settle({ type: 'subscribed', cursors: [{ topic: 't', partition: 0, offset: 3 }] });
    b.deliver(id, batch(3, 2));
    await pause(0);
    expect(b.sent.map((f) => f.type)).toEqual(['subscribe']);
    expect(offsets).toEqual([0, 1, 2, 3, 4]);
    expect(subscriber.stats().servedBy[0]?.broker).toBe('b');
    subscriber.closeAll(new RelayError('CLIENT_CLOSED', 'done'));
  });

  it('a late NOT_READY is asked again, from the positions received', async () => {
    const { subscriber, b, id, offsets } = await failedOver();
    await pause(REQUEST_TIMEOUT_MS * 1.5);
    b.subscribes[0]?.settle(new RelayError('NOT_READY', 'no metadata quorum'));
    await until(() => b.subscribes.length > 1);
    // The broker dropped the refused one: no unsubscribe needed.
    expect(b.sent.map((f) => f.type)).toEqual(['subscribe', 'subscribe']);
    expect(b.subscribes[1]?.frame.resume).toEqual([{ topic: 't', partition: 0, offset: 3 }]);
    b.subscribes[1]?.settle({ type: 'subscribed', cursors: [{ topic: 't', partition: 0, offset: 3 }] });
    b.deliver(id, batch(3, 2));
    await pause(0);
    expect(offsets).toEqual([0, 1, 2, 3, 4]);
    subscriber.closeAll(new RelayError('CLIENT_CLOSED', 'done'));
  });

  it('one never answered is asked again (left first) after a bound of several request timeouts', async () => {
    const { subscriber, b } = await failedOver();
    await until(() => b.subscribes.length > 1);
    expect(b.subscribes).toHaveLength(2);
    const waited = (b.subscribes[1]?.sentAt ?? 0) - (b.subscribes[0]?.sentAt ?? 0);
    expect(waited).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS * 2);
    expect(b.sent.map((f) => f.type)).toEqual(['subscribe', 'unsubscribe', 'subscribe']);
    subscriber.closeAll(new RelayError('CLIENT_CLOSED', 'done'));
  });

  it('a group subscribe failed at its timeout, then answered late, starts no heartbeat timer (the member stays ended)', async () => {
    vi.useFakeTimers();
    try {
      const subscriber = new Subscriber({} as unknown as SubscriberListener, 100, REQUEST_TIMEOUT_MS, { intervalMs: 1000, maxMessages: 100 }, 1 << 20);
      const b = slowBroker(() => subscriber);
      subscriber.setConnection(b.connection);
      const joined = subscriber.subscribe('t', () => undefined, { group: 'g', sessionTimeoutMs: 1000 });
      const refused = expect(joined).rejects.toMatchObject({ code: 'TIMEOUT' });
      await vi.advanceTimersByTimeAsync(REQUEST_TIMEOUT_MS);
      await refused;
      b.subscribes[0]?.settle({ type: 'subscribed', cursors: [] }); // answered after the subscribe gave up
      await vi.advanceTimersByTimeAsync(0);
      subscriber.closeAll(new RelayError('CLIENT_CLOSED', 'done'));
      // Abandoned: it left the group at once, and again once the join was answered (the coordinator may have ordered
      // it after the first leave), ending the subscription the broker started then (subscriber-abandoned.test.ts).
      expect(b.sent.map((f) => f.type)).toEqual(['subscribe', 'group-commit', 'unsubscribe', 'group-commit']);
      expect(vi.getTimerCount()).toBe(0); // no interval left running for a membership that ended
    } finally {
      vi.useRealTimers();
    }
  });
});
