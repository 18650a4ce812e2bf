/**
 * A subscription to one topic moves to the broker leading its partitions
 * (placement.ts), and back to the active broker when that connection closes,
 * then on to the new leader: from its positions each time, so the handler
 * sees every message once, in offset order, whatever the old connection
 * still sends.
 */
import { describe, expect, it, vi } from 'vitest';
import type { BrokerConnection } from '../connection/connection.js';
import { RelayError, type DeliveryBatch } from '../protocol/index.js';
import type { Message } from './message.js';
import { PLACEMENT_LIMITS } from './placement.js';
import { Subscriber, type SubscriberListener } from './subscriber.js';

interface Sent {
  type: string;
  subscription?: number;
  resume?: Array<{ offset: number }>;
}

/** A fake connection to broker `id`: records what it was sent; `leaders` is what its metadata answers say. */
function fakeConnection(id: string, leaders: { now: string[] }): BrokerConnection & { sent: Sent[]; open: boolean } {
  const sent: Sent[] = [];
  const connection = {
    open: true,
    brokerId: id,
    sent,
    send: (frame: Sent) => void sent.push(frame),
    request: (frame: Sent & { topics?: string[] }, onReply?: (reply: unknown) => void) => {
      sent.push(frame);
      if (frame.type === 'metadata') return Promise.resolve({ type: 'topics', id: 1, topics: [{ topic: 't', partitions: leaders.now.length, leaders: [...leaders.now] }] });
      if (frame.type === 'subscribe') {
        const offset = frame.resume?.[0]?.offset ?? 0;
        onReply?.({ type: 'subscribed', id: 1, subscription: frame.subscription, cursors: [{ topic: 't', partition: 0, offset }] });
      }
      return Promise.resolve({ type: 'unsubscribed' });
    },
  };
  return connection as unknown as BrokerConnection & { sent: Sent[]; open: boolean };
}

const batch = (firstOffset: number, count: number): DeliveryBatch => ({
  topic: 't',
  partition: 0,
  firstOffset,
  messages: Array.from({ length: count }, (_, i) => ({ timestamp: i, data: Uint8Array.of(i) })),
});

/** Waits until `done()` holds (promise jobs and the short timers here), bounded. */
async function until(done: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A subscriber (window 100, commits every second or 100 messages) that places subscriptions through `want`. */
const placing = (want: (id: string) => BrokerConnection | undefined, limits: typeof PLACEMENT_LIMITS, listener: Partial<SubscriberListener> = {}): Subscriber =>
  new Subscriber(listener as unknown as SubscriberListener, 100, 10_000, { intervalMs: 1000, maxMessages: 100 }, 1 << 20, { want }, limits);

describe('Subscriber placement on the leader', () => {
  it('moves to the leader, ignores the old connection, goes back to the active one when the leader goes, then on to the new leader: nothing lost, repeated or reordered', async () => {
    const leaders = { now: ['b'] };
    const a = fakeConnection('a', leaders);
    const b = fakeConnection('b', leaders);
    const c = fakeConnection('c', leaders);
    const pooled = new Map<string, BrokerConnection & { open: boolean }>([['a', a], ['b', b]]);
    const wanted: string[] = [];
    const limits = { ...PLACEMENT_LIMITS, retryBaseMs: 20 };
    const subscriber = placing((id) => {
      wanted.push(id);
      const connection = pooled.get(id);
      return connection?.open === true ? connection : undefined;
    }, limits);
    subscriber.setConnection(a);
    const offsets: number[] = [];
    const { id } = await subscriber.subscribe('t', (m: Message) => void offsets.push(m.offset));
    const deliver = (connection: BrokerConnection, first: number, count: number): void => subscriber.onMessage(connection, { type: 'message', subscription: id, batches: [batch(first, count)] });

    // Served by b, the leader, from where it stood; a is left.
    await until(() => b.sent.some((f) => f.type === 'subscribe'));
    expect(wanted).toContain('b');
    expect(a.sent.filter((f) => f.type === 'unsubscribe').map((f) => f.subscription)).toEqual([id]);
    expect(subscriber.stats().servedBy).toEqual([{ subscription: id, pattern: 't', broker: 'b' }]);
    expect(subscriber.stats().leaderMoves).toBe(1);
    deliver(a, 0, 5); // in flight on a when it moved: ignored
    deliver(b, 0, 3);
    deliver(b, 3, 2);

    // b goes (killed): back to a at once from offset 5; a new leader, c, once it is known.
    leaders.now = ['b']; // the first lookup still names the lost leader: looked up again
    b.open = false;
    pooled.delete('b');
    subscriber.connectionClosed(b);
    const onA = a.sent.filter((f) => f.type === 'subscribe');
    expect(onA.at(-1)?.resume).toEqual([{ topic: 't', partition: 0, offset: 5 }]);
    expect(subscriber.stats().servedBy[0]?.broker).toBe('a');
    deliver(a, 5, 3); // 5-7 from a
    await until(() => a.sent.filter((f) => f.type === 'metadata').length >= 2);
    leaders.now = ['c'];
    pooled.set('c', c);
    subscriber.connectionOpened(c); // the pool reached c (the client calls this)
    await until(() => c.sent.some((f) => f.type === 'subscribe'));
    expect(c.sent.find((f) => f.type === 'subscribe')?.resume).toEqual([{ topic: 't', partition: 0, offset: 8 }]);
    deliver(a, 8, 2); // late from a: ignored
    deliver(c, 6, 6); // 6-7 again (dropped), then 8-11
    await until(() => offsets.length >= 12);
    expect(offsets).toEqual(Array.from({ length: 12 }, (_, i) => i));
    expect(subscriber.stats()).toMatchObject({ delivered: 12, duplicatesDropped: 2, gaps: 0 });
    expect(subscriber.stats().servedBy[0]?.broker).toBe('c');
    subscriber.closeAll(new (await import('../protocol/index.js')).RelayError('CLIENT_CLOSED', 'done'));
  });

  it('after a failover of the active broker that served it as leader, looks the leader up again at once, not at the 10 s refresh', async () => {
    const leaders = { now: ['a'] };
    const a = fakeConnection('a', leaders);
    const b = fakeConnection('b', leaders);
    const c = fakeConnection('c', leaders);
    const pooled = new Map<string, BrokerConnection & { open: boolean }>([['a', a]]);
    const subscriber = placing((id) => (pooled.get(id)?.open === true ? pooled.get(id) : undefined), { ...PLACEMENT_LIMITS, retryBaseMs: 20 });
    subscriber.setConnection(a);
    const offsets: number[] = [];
    const { id } = await subscriber.subscribe('t', (m: Message) => void offsets.push(m.offset));
    await until(() => a.sent.some((f) => f.type === 'metadata')); // a leads: it stays there
    subscriber.onMessage(a, { type: 'message', subscription: id, batches: [batch(0, 4)] });
    expect(subscriber.stats().servedBy[0]?.broker).toBe('a');

    // a dies; the client fails over to b; the first lookup still names a, the next c, which the pool then reaches.
    a.open = false;
    pooled.delete('a');
    subscriber.setConnection(undefined);
    pooled.set('b', b);
    subscriber.setConnection(b);
    expect(b.sent.find((f) => f.type === 'subscribe')?.resume).toEqual([{ topic: 't', partition: 0, offset: 4 }]);
    await until(() => b.sent.some((f) => f.type === 'metadata'));
    leaders.now = ['c'];
    pooled.set('c', c);
    await until(() => c.sent.some((f) => f.type === 'subscribe'));
    expect(c.sent.find((f) => f.type === 'subscribe')?.resume).toEqual([{ topic: 't', partition: 0, offset: 4 }]);
    expect(subscriber.stats().servedBy[0]?.broker).toBe('c');
    subscriber.onMessage(c, { type: 'message', subscription: id, batches: [batch(4, 2)] });
    await until(() => offsets.length >= 6);
    expect(offsets).toEqual([0, 1, 2, 3, 4, 5]);
    subscriber.closeAll(new (await import('../protocol/index.js')).RelayError('CLIENT_CLOSED', 'done'));
  });

  it('back on a connection it left: what that connection still sends for the earlier subscription is ignored until the new one is confirmed (no false gap, nothing lost)', async () => {
    // The broker handles `unsubscribe` then `subscribe` in order and answers `subscribed` before the new
    // subscription's first message (delivery.ts), so a message frame before that answer is from the old one.
    const leaders = { now: ['b'] };
    const a = fakeConnection('a', leaders);
    const b = fakeConnection('b', leaders);
    // a answers a subscribe only when told (the first one at once): frames of its earlier subscription come first.
    const held: Array<() => void> = [];
    const request = a.request.bind(a);
    let subscribes = 0;
    (a as unknown as { request: typeof request }).request = ((frame: Parameters<typeof request>[0], onReply?: Parameters<typeof request>[1]) => {
      if (frame.type !== 'subscribe' || subscribes++ === 0) return request(frame, onReply);
      a.sent.push(frame);
      return new Promise((resolve) =>
        held.push(() => {
          const reply = { type: 'subscribed', id: 1, subscription: frame.subscription, cursors: [{ topic: 't', partition: 0, offset: frame.resume?.[0]?.offset ?? 0 }] };
          onReply?.(reply as Parameters<NonNullable<typeof onReply>>[0]);
          resolve(reply as Awaited<ReturnType<typeof request>>);
        }),
      );
    }) as typeof request;
    const pooled = new Map<string, BrokerConnection & { open: boolean }>([['a', a]]);
    const gaps: unknown[] = [];
    const subscriber = placing((id) => (pooled.get(id)?.open === true ? pooled.get(id) : undefined), { ...PLACEMENT_LIMITS, retryBaseMs: 20 }, {
      gap: (event: unknown) => void gaps.push(event),
    });
    subscriber.setConnection(a);
    const offsets: number[] = [];
    const { id } = await subscriber.subscribe('t', (m: Message) => void offsets.push(m.offset));
    const deliver = (connection: BrokerConnection, first: number, count: number): void => subscriber.onMessage(connection, { type: 'message', subscription: id, batches: [batch(first, count)] });
    await until(() => a.sent.some((f) => f.type === 'metadata'));
    deliver(a, 0, 5); // served by a while b, the leader, is not pooled yet

    pooled.set('b', b);
    subscriber.connectionOpened(b); // moves to b from offset 5
    expect(b.sent.find((f) => f.type === 'subscribe')?.resume).toEqual([{ topic: 't', partition: 0, offset: 5 }]);
    deliver(a, 5, 5); // a sent 5-9 before it read the unsubscribe: ignored
    deliver(b, 5, 2);

    // b's link closes at once: back to a from offset 7, while a's frames of the first subscription are still arriving.
    b.open = false;
    pooled.delete('b');
    subscriber.connectionClosed(b);
    expect(a.sent.filter((f) => f.type === 'subscribe').at(-1)?.resume).toEqual([{ topic: 't', partition: 0, offset: 7 }]);
    deliver(a, 10, 5); // still the first subscription on a (sent before the unsubscribe): must be ignored
    for (const answer of held.splice(0)) answer(); // `subscribed` for the new one
    deliver(a, 7, 8); // the new subscription on a: 7-14
    await until(() => offsets.length >= 15 || gaps.length > 0);
    await new Promise((resolve) => setTimeout(resolve, 20)); // anything else queued is handled too
    expect(offsets).toEqual(Array.from({ length: 15 }, (_, i) => i));
    expect(gaps).toEqual([]);
    subscriber.closeAll(new (await import('../protocol/index.js')).RelayError('CLIENT_CLOSED', 'done'));
  });

  it('credit given back while the new broker is still starting the subscription is not lost (the window stays whole; no stall)', async () => {
    // A broker ignores credit for a subscription it is still starting (delivery.ts: a durable one first reads
    // its stored positions through the metadata group, a Raft round), so credit sent then would be lost.
    const leaders = { now: ['b'] };
    const a = fakeConnection('a', leaders);
    const total = 300;
    /** b: answers the subscribe when told; sends while it has credit, as a broker does. */
    const b = {
      open: true,
      brokerId: 'b',
      sent: [] as Sent[],
      started: false,
      credit: 0,
      cursor: 0,
      answer: undefined as (() => void) | undefined,
      send(frame: Sent & { credit?: number }) {
        b.sent.push(frame);
        if (frame.type === 'credit' && b.started) b.credit += frame.credit ?? 0; // ignored while starting
        queueMicrotask(pump);
        return true;
      },
      request(frame: Sent & { credit?: number }, onReply?: (reply: unknown) => void) {
        b.sent.push(frame);
        if (frame.type !== 'subscribe') return Promise.resolve({ type: 'ok' });
        return new Promise((resolve) => {
          b.answer = () => {
            b.started = true;
            b.credit = frame.credit ?? 0;
            b.cursor = frame.resume?.[0]?.offset ?? 0;
            const reply = { type: 'subscribed', id: 1, subscription: frame.subscription, cursors: [{ topic: 't', partition: 0, offset: b.cursor }] };
            onReply?.(reply);
            resolve(reply);
            queueMicrotask(pump);
          };
        });
      },
    };
    const pooled = new Map<string, unknown>([['a', a]]);
    const subscriber = placing((id) => pooled.get(id) as BrokerConnection | undefined, { ...PLACEMENT_LIMITS, retryBaseMs: 20 });
    subscriber.setConnection(a);
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const offsets: number[] = [];
    const { id } = await subscriber.subscribe('t', (m: Message) => {
      offsets.push(m.offset);
      return m.offset === 0 ? gate : undefined; // a slow first message: the window fills up
    });
    function pump(): void {
      if (!b.started || b.credit <= 0 || b.cursor >= total) return;
      const count = Math.min(b.credit, total - b.cursor);
      b.credit -= count;
      subscriber.onMessage(b as unknown as BrokerConnection, { type: 'message', subscription: id, batches: [batch(b.cursor, count)] });
      b.cursor += count;
    }
    await until(() => a.sent.some((f) => f.type === 'metadata'));
    subscriber.onMessage(a, { type: 'message', subscription: id, batches: [batch(0, 100)] }); // a's whole window: 1 in hand, 99 queued

    pooled.set('b', b);
    subscriber.connectionOpened(b as unknown as BrokerConnection); // moves to b with credit 100 - 99 queued
    expect(b.sent.find((f) => f.type === 'subscribe')).toMatchObject({ credit: 1, resume: [{ offset: 100 }] });
    release(); // the 99 queued are handled while b is still starting
    await until(() => offsets.length >= 100);
    b.answer?.();
    await until(() => offsets.length >= total, 2000).catch(() => undefined);
    expect(offsets).toEqual(Array.from({ length: total }, (_, i) => i));
    subscriber.closeAll(new (await import('../protocol/index.js')).RelayError('CLIENT_CLOSED', 'done'));
  });

  it('counts a move (leaderMoves, servedBy) once the new broker answered the subscribe, not when it was sent', async () => {
    const leaders = { now: ['b'] };
    const a = fakeConnection('a', leaders);
    const b = fakeConnection('b', leaders);
    // b answers the subscribe only when told: a broker still starting it (a durable one reads its stored positions first).
    let answer: (() => void) | undefined;
    const request = b.request.bind(b);
    (b as unknown as { request: typeof request }).request = ((frame: Parameters<typeof request>[0], onReply?: Parameters<typeof request>[1]) => {
      if (frame.type !== 'subscribe') return request(frame, onReply);
      b.sent.push(frame);
      return new Promise((resolve) => {
        answer = () => {
          const reply = { type: 'subscribed', id: 1, subscription: frame.subscription, cursors: [{ topic: 't', partition: 0, offset: 0 }] };
          onReply?.(reply as Parameters<NonNullable<typeof onReply>>[0]);
          resolve(reply as Awaited<ReturnType<typeof request>>);
        };
      });
    }) as typeof request;
    const subscriber = placing((id) => (id === 'b' ? b : a), { ...PLACEMENT_LIMITS, retryBaseMs: 20 });
    subscriber.setConnection(a);
    const { id } = await subscriber.subscribe('t', () => undefined);
    await until(() => b.sent.some((f) => f.type === 'subscribe'));
    // Sent, not answered: a was left, b does not serve it yet.
    expect(subscriber.stats()).toMatchObject({ leaderMoves: 0, servedBy: [{ subscription: id, broker: undefined }] });
    answer?.();
    expect(subscriber.stats()).toMatchObject({ leaderMoves: 1, servedBy: [{ subscription: id, broker: 'b' }] });
    subscriber.closeAll(new (await import('../protocol/index.js')).RelayError('CLIENT_CLOSED', 'done'));
  });

  it('counts a move whose subscribe the leader first refused as retriable (NO_QUORUM) once its retry is answered', async () => {
    const leaders = { now: ['b'] };
    const a = fakeConnection('a', leaders);
    const b = fakeConnection('b', leaders);
    // b refuses the first subscribe (a durable lookup without a metadata quorum, say), answers the next.
    let refusals = 1;
    const request = b.request.bind(b);
    (b as unknown as { request: typeof request }).request = ((frame: Parameters<typeof request>[0], onReply?: Parameters<typeof request>[1]) => {
      if (frame.type === 'subscribe' && refusals-- > 0) {
        b.sent.push(frame);
        return Promise.reject(new RelayError('NO_QUORUM', 'no metadata quorum'));
      }
      return request(frame, onReply);
    }) as typeof request;
    const subscriber = placing((id) => (id === 'b' ? b : a), { ...PLACEMENT_LIMITS, retryBaseMs: 20 });
    subscriber.setConnection(a);
    const { id } = await subscriber.subscribe('t', () => undefined);
    await until(() => b.sent.filter((f) => f.type === 'subscribe').length === 2 && subscriber.stats().servedBy[0]?.broker === 'b');
    expect(subscriber.stats()).toMatchObject({ leaderMoves: 1, servedBy: [{ subscription: id, broker: 'b' }] });
    subscriber.closeAll(new RelayError('CLIENT_CLOSED', 'done'));
  });

  it('a lookup never creates the topic; one finding it missing is confirmed a moment later before the subscription ends with INVALID_TOPIC', async () => {
    const a = fakeConnection('a', { now: ['a'] });
    // What each lookup finds, in order: the topic, missing (a broker that applies its creation late), there
    // again, then missing twice (deleted). Past the script it stays missing.
    const script = ['there', 'missing', 'there', 'missing', 'missing'];
    const request = a.request.bind(a);
    (a as unknown as { request: typeof request }).request = ((frame: Parameters<typeof request>[0], onReply?: Parameters<typeof request>[1]) => {
      if (frame.type !== 'metadata') return request(frame, onReply);
      a.sent.push(frame);
      if ((script.shift() ?? 'missing') === 'missing') return Promise.reject(new RelayError('INVALID_TOPIC', 'topic t does not exist'));
      return Promise.resolve({ type: 'topics', id: 1, topics: [{ topic: 't', partitions: 1, leaders: ['a'] }] } as Awaited<ReturnType<typeof request>>);
    }) as typeof request;
    const ended: Array<{ code: string; id: number }> = [];
    const subscriber = placing(() => a, { ...PLACEMENT_LIMITS, refreshMs: 40, retryBaseMs: 5, retryAttempts: 5 }, {
      ended: (error: RelayError, subscription: { id: number }) => void ended.push({ code: error.code, id: subscription.id }),
    });
    subscriber.setConnection(a);
    const { id } = await subscriber.subscribe('t', () => undefined);
    await until(() => ended.length > 0);
    const lookups = a.sent.filter((f) => f.type === 'metadata');
    expect(lookups.length).toBe(5); // the missing one after a lookup that found it again did not end it
    expect(lookups.every((f) => (f as { create?: boolean }).create === false)).toBe(true);
    expect(ended).toEqual([{ code: 'INVALID_TOPIC', id }]);
    expect(subscriber.stats().subscriptions).toBe(0);
    expect(a.sent.filter((f) => f.type === 'unsubscribe').map((f) => f.subscription)).toEqual([id]);
  });

  it('a refresh finding the topic missing before the confirming lookup is due does not end the subscription', async () => {
    const a = fakeConnection('a', { now: ['a'] });
    // Refreshes every 10 ms, the confirmation due 40 ms after the first miss: the misses in between change nothing,
    // and the topic found again (a late broker) clears it. Past the script it stays there.
    const script = ['there', 'missing', 'missing', 'there'];
    const request = a.request.bind(a);
    (a as unknown as { request: typeof request }).request = ((frame: Parameters<typeof request>[0], onReply?: Parameters<typeof request>[1]) => {
      if (frame.type !== 'metadata') return request(frame, onReply);
      a.sent.push(frame);
      if ((script.shift() ?? 'there') === 'missing') return Promise.reject(new RelayError('INVALID_TOPIC', 'topic t does not exist'));
      return Promise.resolve({ type: 'topics', id: 1, topics: [{ topic: 't', partitions: 1, leaders: ['a'] }] } as Awaited<ReturnType<typeof request>>);
    }) as typeof request;
    const ended: string[] = [];
    const subscriber = placing(() => a, { ...PLACEMENT_LIMITS, refreshMs: 10, retryBaseMs: 10, retryAttempts: 5 }, { ended: (error: RelayError) => void ended.push(error.code) });
    subscriber.setConnection(a);
    await subscriber.subscribe('t', () => undefined);
    await until(() => a.sent.filter((f) => f.type === 'metadata').length >= 8);
    expect(ended).toEqual([]);
    expect(subscriber.stats().subscriptions).toBe(1);
    subscriber.closeAll(new RelayError('CLIENT_CLOSED', 'done'));
  });

  it('a lookup sent before the confirmation was due (a slow answer) does not confirm the miss: a lookup sent once it is due does', async () => {
    const a = fakeConnection('a', { now: ['a'] });
    // Lookups in order: the topic, missing (the first miss), then one held unanswered across the moment the
    // confirmation falls due, answered missing; past these, the topic is there (the broker applied its creation).
    const plan = ['there', 'missing', 'held'];
    const held: Array<() => void> = [];
    const request = a.request.bind(a);
    (a as unknown as { request: typeof request }).request = ((frame: Parameters<typeof request>[0], onReply?: Parameters<typeof request>[1]) => {
      if (frame.type !== 'metadata') return request(frame, onReply);
      a.sent.push(frame);
      const step = plan.shift() ?? 'there';
      const missing = (): Error => new RelayError('INVALID_TOPIC', 'topic t does not exist');
      if (step === 'missing') return Promise.reject(missing());
      if (step === 'held') return new Promise((_resolve, reject) => held.push(() => reject(missing())));
      return Promise.resolve({ type: 'topics', id: 1, topics: [{ topic: 't', partitions: 1, leaders: ['a'] }] } as Awaited<ReturnType<typeof request>>);
    }) as typeof request;
    const ended: string[] = [];
    // Refreshes every 20 ms; the confirmation is due 4 × 25 ms after the first miss.
    const subscriber = placing(() => a, { ...PLACEMENT_LIMITS, refreshMs: 20, retryBaseMs: 25, retryAttempts: 5 }, { ended: (error: RelayError) => void ended.push(error.code) });
    subscriber.setConnection(a);
    const { id } = await subscriber.subscribe('t', () => undefined);
    const state = (): { missing: string } | undefined => (subscriber as unknown as { subscriptions: Map<number, { missing: string }> }).subscriptions.get(id);
    await until(() => held.length === 1 && state()?.missing === 'due');
    const lookupsBefore = a.sent.filter((f) => f.type === 'metadata').length;
    held.shift()?.(); // the lookup sent before it was due answers missing, late
    await until(() => ended.length > 0 || a.sent.filter((f) => f.type === 'metadata').length > lookupsBefore);
    await until(() => ended.length > 0 || state()?.missing === 'no');
    expect(ended).toEqual([]);
    expect(subscriber.stats().subscriptions).toBe(1);
    subscriber.closeAll(new RelayError('CLIENT_CLOSED', 'done'));
  });

  it('a subscription ended while a missing topic awaits its confirming lookup leaves no timer behind (unsubscribe, client close)', async () => {
    vi.useFakeTimers();
    try {
      for (const end of ['unsubscribe', 'close'] as const) {
        const a = fakeConnection('a', { now: ['a'] });
        const request = a.request.bind(a);
        // Every lookup finds the topic missing: the first one schedules the confirming lookup.
        (a as unknown as { request: typeof request }).request = ((frame: Parameters<typeof request>[0], onReply?: Parameters<typeof request>[1]) => {
          if (frame.type !== 'metadata') return request(frame, onReply);
          a.sent.push(frame);
          return Promise.reject(new RelayError('INVALID_TOPIC', 'topic t does not exist'));
        }) as typeof request;
        // The refresh (100 ms) stops before the confirming lookup is due (4 × 250 ms).
        const limits = { ...PLACEMENT_LIMITS, refreshMs: 100, retryBaseMs: 250, retryAttempts: 5 };
        const subscriber = placing(() => a, limits);
        subscriber.setConnection(a);
        const subscription = await subscriber.subscribe('t', () => undefined);
        await vi.advanceTimersByTimeAsync(0);
        expect(a.sent.filter((f) => f.type === 'metadata').length).toBe(1);
        if (end === 'unsubscribe') {
          await subscription.unsubscribe();
          await vi.advanceTimersByTimeAsync(limits.refreshMs); // the periodic refresh finds nothing to place and stops
        } else {
          subscriber.closeAll(new RelayError('CLIENT_CLOSED', 'done'));
        }
        expect(vi.getTimerCount(), end).toBe(0);
        vi.clearAllTimers();
      }
    } finally {
      vi.useRealTimers();
    }
  });

  it('a deletion told on the connection it just left in a move ends the subscription (the leader started it after applying the deletion)', async () => {
    const leaders = { now: ['b'] };
    const a = fakeConnection('a', leaders);
    const b = fakeConnection('b', leaders);
    const ended: string[] = [];
    const subscriber = placing((id) => (id === 'b' ? b : a), { ...PLACEMENT_LIMITS, retryBaseMs: 20 }, {
      ended: (error: RelayError) => void ended.push(error.code),
    });
    subscriber.setConnection(a);
    const { id } = await subscriber.subscribe('t', () => undefined);
    await until(() => subscriber.stats().servedBy[0]?.broker === 'b');
    // a applied the deletion before it read the unsubscribe: its notice follows the move.
    subscriber.onEnded(a, id, new RelayError('INVALID_TOPIC', 'topic t was deleted'));
    expect(ended).toEqual(['INVALID_TOPIC']);
    expect(subscriber.stats().subscriptions).toBe(0);
    expect(b.sent.filter((f) => f.type === 'unsubscribe').map((f) => f.subscription)).toEqual([id]); // b holds it still
  });

  it('stays on the broker serving it when that broker ties for the most partitions led (no needless move)', async () => {
    const leaders = { now: ['b', 'a'] };
    const a = fakeConnection('a', leaders);
    const b = fakeConnection('b', leaders);
    const subscriber = new Subscriber({} as unknown as SubscriberListener, 100, 10_000, { intervalMs: 1000, maxMessages: 100 }, 1 << 20, { want: (id) => (id === 'a' ? a : b) });
    subscriber.setConnection(a);
    await subscriber.subscribe('t', () => undefined);
    await until(() => a.sent.some((f) => f.type === 'metadata'));
    await new Promise((resolve) => setTimeout(resolve, 20)); // the lookup's answer is applied
    expect(b.sent).toEqual([]);
    expect(subscriber.stats()).toMatchObject({ leaderMoves: 0, servedBy: [{ broker: 'a' }] });
    subscriber.closeAll(new (await import('../protocol/index.js')).RelayError('CLIENT_CLOSED', 'done'));
  });

  it('looks a single broker (no leaders in its metadata) up once, not again', async () => {
    const single = fakeConnection('solo', { now: [] });
    const request = single.request.bind(single);
    (single as unknown as { request: typeof request }).request = ((frame: Parameters<typeof request>[0], onReply?: Parameters<typeof request>[1]) =>
      frame.type === 'metadata' ? (single.sent.push(frame), Promise.resolve({ type: 'topics', id: 1, topics: [{ topic: 't', partitions: 1 }] })) : request(frame, onReply)) as typeof request;
    const subscriber = new Subscriber({} as unknown as SubscriberListener, 100, 10_000, { intervalMs: 1000, maxMessages: 100 }, 1 << 20, { want: () => undefined }, { ...PLACEMENT_LIMITS, refreshMs: 10 });
    subscriber.setConnection(single);
    await subscriber.subscribe('t', () => undefined);
    await new Promise((resolve) => setTimeout(resolve, 60)); // several refresh periods
    expect(single.sent.filter((f) => f.type === 'metadata')).toHaveLength(1);
    expect(subscriber.stats().servedBy[0]?.broker).toBe('solo');
  });

  it('leaves wildcard subscriptions and subscriptions without leader links on the active broker', async () => {
    const leaders = { now: ['b'] };
    const a = fakeConnection('a', leaders);
    const b = fakeConnection('b', leaders);
    const withLinks = new Subscriber({} as unknown as SubscriberListener, 100, 10_000, { intervalMs: 1000, maxMessages: 100 }, 1 << 20, { want: () => b });
    withLinks.setConnection(a);
    await withLinks.subscribe('t.>', () => undefined);
    const without = new Subscriber({} as unknown as SubscriberListener, 100, 10_000, { intervalMs: 1000, maxMessages: 100 }, 1 << 20);
    without.setConnection(a);
    await without.subscribe('t', () => undefined);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(a.sent.filter((f) => f.type === 'metadata')).toEqual([]);
    expect(b.sent).toEqual([]);
    expect(withLinks.stats().servedBy[0]?.broker).toBe('a');
    expect(without.stats().servedBy[0]?.broker).toBe('a');
  });
});
