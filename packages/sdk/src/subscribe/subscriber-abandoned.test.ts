/**
 * A consumer-group subscribe whose `subscribe()` timed out is abandoned: the
 * member leaves the group at once (its join may have been ordered by the
 * coordinator, which would keep it and its partitions until the session
 * expired). A join still in flight then may be ordered after that leave: the
 * broker is not told to drop it (it would then never answer), and its late
 * answer makes the member leave again — a late `subscribed` never starts
 * heartbeats, and the subscription it registered on the broker is ended.
 */
import { describe, expect, it } from 'vitest';
import type { BrokerConnection } from '../connection/connection.js';
import { RelayError } from '../protocol/index.js';
import { Subscriber, type SubscriberListener } from './subscriber.js';

interface Sent {
  type: string;
  subscription?: number;
  leave?: boolean;
}

/** Request timeout of the subscriber under test: its subscribe() gives up after this, a subscribe request after three times this. */
const REQUEST_TIMEOUT_MS = 60;

/** A connection whose subscribes stay unanswered until `answer` or `refuse`; group requests are acknowledged. */
function fakeConnection(): {
  connection: BrokerConnection;
  sent: Sent[];
  answer(): void;
  refuse(code: string): void;
  count(type: string, leave?: boolean): number;
} {
  const sent: Sent[] = [];
  const pending: Array<{ frame: Sent; onReply?: (reply: unknown) => void; resolve: (v: unknown) => void; reject: (e: unknown) => void }> = [];
  const connection = {
    open: true,
    brokerId: 'a',
    send: (frame: Sent) => void sent.push(frame),
    request: (frame: Sent, onReply?: (reply: unknown) => void, timeoutMs?: number) => {
      sent.push(frame);
      if (frame.type !== 'subscribe') return Promise.resolve({ type: 'committed' });
      return new Promise((resolve, reject) => {
        pending.push({ frame, onReply, resolve, reject });
        // The request's own timeout, as BrokerConnection.request has.
        setTimeout(() => reject(new RelayError('TIMEOUT', 'subscribe timed out')), timeoutMs ?? REQUEST_TIMEOUT_MS);
      });
    },
  } as unknown as BrokerConnection;
  return {
    connection,
    sent,
    answer: () => {
      const p = pending.shift();
      p?.onReply?.({ type: 'subscribed', id: 1, subscription: p.frame.subscription, cursors: [] });
      p?.resolve({ type: 'subscribed' });
    },
    refuse: (code) => pending.shift()?.reject(new RelayError(code as 'NOT_READY', 'refused')),
    count: (type, leave) => sent.filter((f) => f.type === type && (leave === undefined || f.leave === leave)).length,
  };
}

function subscriberOn(connection: BrokerConnection): Subscriber {
  const subscriber = new Subscriber({} as unknown as SubscriberListener, 100, REQUEST_TIMEOUT_MS, { intervalMs: 1000, maxMessages: 100 }, 1 << 20);
  subscriber.setConnection(connection);
  return subscriber;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A member that heartbeats every 33 ms (the lowest session timeout): a heartbeat would show within 100 ms. */
const MEMBER = { group: 'g', sessionTimeoutMs: 100 };

describe('an abandoned group subscribe', () => {
  it('leaves at once, and again when its join is answered subscribed late: no heartbeat, and the broker is told to drop it', async () => {
    const fake = fakeConnection();
    const subscriber = subscriberOn(fake.connection);
    await expect(subscriber.subscribe('t', () => {}, MEMBER)).rejects.toMatchObject({ code: 'TIMEOUT' });
    await sleep(0);
    expect(fake.count('group-commit', true)).toBe(1);
    expect(fake.count('unsubscribe')).toBe(0); // the broker still answers the join in flight
    fake.answer();
    await sleep(100);
    expect(fake.count('group-commit', true)).toBe(2);
    expect(fake.count('unsubscribe')).toBe(1);
    expect(fake.count('group-heartbeat')).toBe(0);
    expect(fake.count('subscribe')).toBe(1);
  });

  it('leaves again when its join is refused late (the coordinator may have ordered it), and when it goes unanswered (then ending it there)', async () => {
    const refused = fakeConnection();
    const a = subscriberOn(refused.connection);
    await expect(a.subscribe('t', () => {}, MEMBER)).rejects.toMatchObject({ code: 'TIMEOUT' });
    refused.refuse('NOT_READY');
    await sleep(100);
    expect(refused.count('group-commit', true)).toBe(2);
    expect(refused.count('unsubscribe')).toBe(0);
    expect(refused.count('subscribe')).toBe(1); // not asked again

    const unanswered = fakeConnection();
    const b = subscriberOn(unanswered.connection);
    await expect(b.subscribe('t', () => {}, MEMBER)).rejects.toMatchObject({ code: 'TIMEOUT' });
    await sleep(3 * REQUEST_TIMEOUT_MS);
    expect(unanswered.count('group-commit', true)).toBe(2);
    expect(unanswered.count('unsubscribe')).toBe(1);
    expect(unanswered.count('subscribe')).toBe(1);
  });

  it('is only a group member\'s: a plain subscription that times out is dropped on the broker at once, and leaves nothing', async () => {
    const fake = fakeConnection();
    const subscriber = subscriberOn(fake.connection);
    await expect(subscriber.subscribe('t', () => {})).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(fake.count('unsubscribe')).toBe(1);
    expect(fake.count('group-commit')).toBe(0);
  });
});
