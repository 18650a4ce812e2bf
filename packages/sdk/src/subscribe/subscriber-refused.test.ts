/**
 * A durable subscribe a connected broker keeps refusing with `NOT_READY` (its
 * metadata stays behind the metadata leader's: it waited for the positions
 * read to apply there, in vain) goes, after two refusals in a row, to another
 * ready broker the client is connected to (`LeaderLinks.elsewhere`), alone:
 * nothing is closed. The placement does not move it back to that broker for
 * `refusingAvoidMs`. Other refusals, other subscriptions, or no other broker:
 * asked again where it was, as before.
 */
import { describe, expect, it, vi } from 'vitest';
import type { BrokerConnection } from '../connection/connection.js';
import { RelayError } from '../protocol/index.js';
import { PLACEMENT_LIMITS } from './placement.js';
import { Subscriber, type LeaderLinks, type SubscriberListener } from './subscriber.js';

interface Sent {
  type: string;
  subscription?: number;
}

/** A fake connection to broker `id` refusing its first subscribes with `refusals` (in order), then answering them; its metadata names `leader`. */
function broker(id: string, refusals: string[], leader = id): BrokerConnection & { sent: Sent[]; subscribes: () => number } {
  const sent: Sent[] = [];
  const connection = {
    open: true,
    brokerId: id,
    sent,
    subscribes: () => sent.filter((f) => f.type === 'subscribe').length,
    send: (frame: Sent) => void sent.push(frame),
    request: (frame: Sent, onReply?: (reply: unknown) => void) => {
      sent.push(frame);
      if (frame.type === 'metadata') return Promise.resolve({ type: 'topics', id: 1, topics: [{ topic: 't', partitions: 1, leaders: [leader] }] });
      if (frame.type !== 'subscribe') return Promise.resolve({ type: 'committed' });
      const code = refusals.shift();
      if (code !== undefined) return Promise.reject(new RelayError(code as 'NOT_READY', `refused by ${id}`));
      onReply?.({ type: 'subscribed', id: 1, subscription: frame.subscription, cursors: [{ topic: 't', partition: 0, offset: 0 }] });
      return Promise.resolve({ type: 'subscribed' });
    },
  };
  return connection as unknown as BrokerConnection & { sent: Sent[]; subscribes: () => number };
}

/** A subscriber on active connection `a` whose links name `elsewhere` as the ready broker other than the one asked about. */
function subscriberOn(a: BrokerConnection, elsewhere: BrokerConnection | undefined): { subscriber: Subscriber; asked: string[] } {
  const asked: string[] = [];
  const links: LeaderLinks = {
    want: (id) => (id === a.brokerId ? a : id === elsewhere?.brokerId ? elsewhere : undefined),
    elsewhere: (id) => {
      asked.push(id);
      return elsewhere;
    },
  };
  const subscriber = new Subscriber({} as unknown as SubscriberListener, 100, 10_000, { intervalMs: 1000, maxMessages: 100 }, 1 << 20, links, PLACEMENT_LIMITS);
  subscriber.setConnection(a);
  return { subscriber, asked };
}

/** Lets the placement's lookup (sent as the subscribe resolves) be answered and acted on. */
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 20));

describe('a durable subscribe a broker keeps refusing', () => {
  it('goes to another ready broker after two NOT_READY refusals in a row, and is not placed back on its leader that refused it', async () => {
    const a = broker('a', ['NOT_READY', 'NOT_READY', 'NOT_READY', 'NOT_READY']);
    const b = broker('b', [], 'a');
    const { subscriber, asked } = subscriberOn(a, b);
    await subscriber.subscribe('t', () => {}, { durable: 'd' });
    await settle();
    expect(a.subscribes()).toBe(2);
    expect(b.subscribes()).toBe(1);
    expect(asked).toEqual(['a']);
    // The lookup (on the active broker) named `a` the leader, which refused it: it stays on `b`; nothing was left on `a`.
    expect(a.sent.some((f) => f.type === 'metadata')).toBe(true);
    expect(subscriber.stats().servedBy[0]?.broker).toBe('b');
    expect(a.sent.filter((f) => f.type === 'unsubscribe')).toEqual([]);
    subscriber.closeAll(new RelayError('CLIENT_CLOSED', 'done'));
  });

  it('is not moved back to its leader that refused it when that link opens again (a flapping link) before refusingAvoidMs', async () => {
    // Served by its leader `a` over a link (the active broker is `b`), then `a` fell behind its metadata: the
    // subscription came back to `b`, resubscribed to `a` and was refused there twice, so it went to `b`.
    const a = broker('a', ['NOT_READY', 'NOT_READY', 'NOT_READY', 'NOT_READY']);
    const b = broker('b', [], 'a');
    const { subscriber } = subscriberOn(b, b);
    const links = (subscriber as unknown as { links: LeaderLinks }).links;
    links.want = (id) => (id === 'a' ? a : id === 'b' ? b : undefined);
    links.elsewhere = () => b;
    await subscriber.subscribe('t', () => {}, { durable: 'd' });
    // Refused by `a` once, asked again there 250 ms later, refused again: back on `b`.
    await vi.waitFor(() => expect(b.subscribes()).toBe(2), { timeout: 2000 });
    expect(a.subscribes()).toBe(2);
    expect(subscriber.stats().servedBy[0]?.broker).toBe('b');
    // The link to `a` closes and opens again (its broker restarting, say): not a reason to try it again so soon.
    subscriber.connectionClosed(a);
    subscriber.connectionOpened(a);
    await settle();
    expect(a.subscribes()).toBe(2);
    expect(subscriber.stats().servedBy[0]?.broker).toBe('b');
    subscriber.closeAll(new RelayError('CLIENT_CLOSED', 'done'));
  });

  it('is asked again where it was on another refusal, for a subscription that is not durable, and when no other broker is ready', async () => {
    const cases: Array<{ refusals: string[]; durable: boolean; elsewhere: boolean }> = [
      { refusals: ['NO_QUORUM', 'NO_QUORUM', 'NO_QUORUM'], durable: true, elsewhere: true },
      { refusals: ['NOT_READY', 'NOT_READY', 'NOT_READY'], durable: false, elsewhere: true },
      { refusals: ['NOT_READY', 'NOT_READY', 'NOT_READY'], durable: true, elsewhere: false },
    ];
    for (const { refusals, durable, elsewhere } of cases) {
      const a = broker('a', refusals);
      const b = broker('b', []);
      const { subscriber } = subscriberOn(a, elsewhere ? b : undefined);
      await subscriber.subscribe('t', () => {}, durable ? { durable: 'd' } : {});
      expect(a.subscribes(), JSON.stringify({ refusals, durable, elsewhere })).toBe(4);
      expect(b.subscribes()).toBe(0);
      subscriber.closeAll(new RelayError('CLIENT_CLOSED', 'done'));
    }
  });

  it('counts NOT_READY refusals on one broker: another kind between neither counts nor breaks the streak, as for a group join', async () => {
    const a = broker('a', ['NOT_READY', 'NO_QUORUM', 'NOT_READY', 'NOT_READY']);
    const b = broker('b', [], 'b');
    const { subscriber } = subscriberOn(a, b);
    await subscriber.subscribe('t', () => {}, { durable: 'd' });
    expect(a.subscribes()).toBe(3);
    expect(b.subscribes()).toBe(1);
    subscriber.closeAll(new RelayError('CLIENT_CLOSED', 'done'));
  });
});
