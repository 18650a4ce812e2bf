/**
 * A subscription keeps each topic's incarnation (told in `subscribed`
 * cursors) with its positions and sends it back with them on a resubscribe,
 * so a broker whose topic was deleted and created again does not take them
 * for the new topic's. A broker telling none (older, or an engine without
 * incarnations) gets none back; a topic dropped from a wildcard subscription
 * (`error` with `topic`) loses its incarnation with its positions; a topic
 * first met in a message frame takes the one its first batch names. A
 * durable subscription's commits name the incarnation each message arrived
 * under, and commit nothing of a message whose topic was deleted while its
 * handler ran.
 */
import { describe, expect, it } from 'vitest';
import type { BrokerConnection } from '../connection/connection.js';
import { RelayError, type Cursor, type DeliveryBatch } from '../protocol/index.js';
import { Subscriber, type SubscriberListener } from './subscriber.js';

interface SentSubscribe {
  type: string;
  subscription: number;
  resume?: Cursor[];
}

/** A fake connection answering each subscribe with `cursors()` (what its broker would start from). */
function fakeConnection(id: string, cursors: () => Cursor[], beforeReply?: (connection: BrokerConnection) => void): BrokerConnection & { subscribes: SentSubscribe[] } {
  const subscribes: SentSubscribe[] = [];
  const connection = {
    open: true,
    brokerId: id,
    subscribes,
    send: () => undefined,
    request: (frame: SentSubscribe, onReply?: (reply: unknown) => void) => {
      if (frame.type === 'subscribe') {
        subscribes.push(frame);
        beforeReply?.(connection as unknown as BrokerConnection);
        onReply?.({ type: 'subscribed', id: 1, subscription: frame.subscription, cursors: cursors() });
      }
      return Promise.resolve({ type: 'unsubscribed' });
    },
  };
  return connection as unknown as BrokerConnection & { subscribes: SentSubscribe[] };
}

/** Records the positions of every `commit` sent on `connection` into `commits`, and sends it on. */
function recordCommits(connection: BrokerConnection, commits: Cursor[][]): void {
  const request = connection.request.bind(connection);
  connection.request = ((frame: { type: string; positions?: Cursor[] }, onReply?: (reply: unknown) => void) => {
    if (frame.type === 'commit') commits.push(frame.positions ?? []);
    return request(frame as never, onReply as never);
  }) as typeof connection.request;
}

const batch = (topic: string, firstOffset: number, count: number): DeliveryBatch => ({
  topic,
  partition: 0,
  firstOffset,
  messages: Array.from({ length: count }, (_, i) => ({ timestamp: i, data: Uint8Array.of(i) })),
});

const settled = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

const newSubscriber = (): Subscriber => new Subscriber({} as unknown as SubscriberListener, 100, 10_000, { intervalMs: 1000, maxMessages: 100 }, 1 << 20);

describe('Subscriber topic incarnations', () => {
  it("sends each topic's incarnation, as its broker told it, back with the resume positions on a failover", async () => {
    const subscriber = newSubscriber();
    const a = fakeConnection('a', () => [
      { topic: 't', partition: 0, offset: 0, incarnation: 4 },
      { topic: 't', partition: 1, offset: 2, incarnation: 4 },
    ]);
    subscriber.setConnection(a);
    const { id } = await subscriber.subscribe('t', () => undefined, { from: 'earliest' });
    subscriber.onMessage(a, { type: 'message', subscription: id, batches: [batch('t', 0, 3)] });
    await settled();

    const b = fakeConnection('b', () => []);
    subscriber.setConnection(b);
    expect(b.subscribes[0]?.resume).toEqual([
      { topic: 't', partition: 0, offset: 3, incarnation: 4 },
      { topic: 't', partition: 1, offset: 2, incarnation: 4 },
    ]);
    subscriber.closeAll(new RelayError('CLIENT_CLOSED', 'done'));
  });

  it('sends no incarnation where no broker told one (an older broker, an engine without incarnations)', async () => {
    const subscriber = newSubscriber();
    const a = fakeConnection('a', () => [{ topic: 't', partition: 0, offset: 5 }]);
    subscriber.setConnection(a);
    await subscriber.subscribe('t', () => undefined);
    const b = fakeConnection('b', () => []);
    subscriber.setConnection(b);
    expect(b.subscribes[0]?.resume).toEqual([{ topic: 't', partition: 0, offset: 5 }]);
    expect(b.subscribes[0]?.resume?.[0]).not.toHaveProperty('incarnation');
    subscriber.closeAll(new RelayError('CLIENT_CLOSED', 'done'));
  });

  it('a wildcard subscription told a topic is gone (error with topic) forgets its positions and incarnation there, and takes the new incarnation the broker tells', async () => {
    const subscriber = newSubscriber();
    let told: Cursor[] = [
      { topic: 'x.a', partition: 0, offset: 0, incarnation: 0 },
      { topic: 'x.b', partition: 0, offset: 0, incarnation: 0 },
    ];
    const a = fakeConnection('a', () => told);
    subscriber.setConnection(a);
    const { id } = await subscriber.subscribe('x.*', () => undefined, { from: 'earliest' });
    subscriber.onMessage(a, { type: 'message', subscription: id, batches: [batch('x.a', 0, 2), batch('x.b', 0, 6)] });
    await settled();

    // Another broker: x.b was deleted and created again (incarnation 3). It drops x.b's positions (the
    // `error` naming the topic comes before `subscribed`), then answers with x.b from its start.
    told = [
      { topic: 'x.a', partition: 0, offset: 2, incarnation: 0 },
      { topic: 'x.b', partition: 0, offset: 0, incarnation: 3 },
    ];
    const b = fakeConnection('b', () => told, (connection) => subscriber.onEnded(connection, id, new RelayError('INVALID_TOPIC', 'x.b was deleted'), 'x.b'));
    subscriber.setConnection(b);
    expect(b.subscribes[0]?.resume).toEqual([
      { topic: 'x.a', partition: 0, offset: 2, incarnation: 0 },
      { topic: 'x.b', partition: 0, offset: 6, incarnation: 0 },
    ]);

    const c = fakeConnection('c', () => []);
    subscriber.setConnection(c);
    // x.b's old positions are gone; those the broker started it from carry the new incarnation.
    expect(c.subscribes[0]?.resume).toEqual([
      { topic: 'x.a', partition: 0, offset: 2, incarnation: 0 },
      { topic: 'x.b', partition: 0, offset: 0, incarnation: 3 },
    ]);
    subscriber.closeAll(new RelayError('CLIENT_CLOSED', 'done'));
  });

  it('a topic dropped (error with topic) and then met again in a message frame is resumed with no incarnation, not the dropped one', async () => {
    const subscriber = newSubscriber();
    const a = fakeConnection('a', () => [{ topic: 'x.b', partition: 0, offset: 0, incarnation: 0 }]);
    subscriber.setConnection(a);
    const { id } = await subscriber.subscribe('x.*', () => undefined, { from: 'earliest' });
    subscriber.onMessage(a, { type: 'message', subscription: id, batches: [batch('x.b', 0, 6)] });
    subscriber.onEnded(a, id, new RelayError('INVALID_TOPIC', 'x.b was deleted'), 'x.b');
    // Created again after the deletion: its first messages reach the subscription (no `subscribed` names it).
    subscriber.onMessage(a, { type: 'message', subscription: id, batches: [batch('x.b', 0, 2)] });
    await settled();
    const b = fakeConnection('b', () => []);
    subscriber.setConnection(b);
    expect(b.subscribes[0]?.resume).toEqual([{ topic: 'x.b', partition: 0, offset: 2 }]);
    subscriber.closeAll(new RelayError('CLIENT_CLOSED', 'done'));
  });

  it("a topic first met in a message frame takes the incarnation its first batch names: resumed and committed with it, and a message whose topic was deleted meanwhile commits nothing", async () => {
    const subscriber = new Subscriber({} as unknown as SubscriberListener, 100, 10_000, { intervalMs: 0, maxMessages: 1 }, 1 << 20);
    const commits: Cursor[][] = [];
    const a = fakeConnection('a', () => []);
    recordCommits(a, commits);
    subscriber.setConnection(a);
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const handled: string[] = [];
    const { id } = await subscriber.subscribe('x.*', async (m) => {
      if (m.offset === 2) await gate;
      handled.push(`${m.topic}@${m.offset}`);
    }, { durable: 'd', from: 'earliest' });
    // Created after the subscription: its first batch names its incarnation (later ones do not).
    subscriber.onMessage(a, { type: 'message', subscription: id, batches: [{ ...batch('x.n', 0, 2), incarnation: 3 }] });
    subscriber.onMessage(a, { type: 'message', subscription: id, batches: [batch('x.n', 2, 1)] });
    for (let i = 0; i < 20 && commits.length < 2; i++) await settled();
    expect(commits.flat().at(-1)).toEqual({ topic: 'x.n', partition: 0, offset: 2, incarnation: 3 });

    // x.n@2's handler runs; the topic is deleted meanwhile: its position is not committed (it would be the new topic's).
    subscriber.onEnded(a, id, new RelayError('INVALID_TOPIC', 'x.n was deleted'), 'x.n');
    release();
    for (let i = 0; i < 20 && !handled.includes('x.n@2'); i++) await settled();
    await settled();
    expect(commits.flat().filter((c) => c.offset > 2)).toEqual([]);

    // Created again: named anew, and a failover resumes with it.
    subscriber.onMessage(a, { type: 'message', subscription: id, batches: [{ ...batch('x.n', 0, 1), incarnation: 4 }] });
    await settled();
    const b = fakeConnection('b', () => []);
    subscriber.setConnection(b);
    expect(b.subscribes[0]?.resume).toEqual([{ topic: 'x.n', partition: 0, offset: 1, incarnation: 4 }]);
    subscriber.closeAll(new RelayError('CLIENT_CLOSED', 'done'));
  });

  it('a durable commit names the incarnation its messages arrived under; a message whose topic was deleted while its handler ran commits nothing', async () => {
    const subscriber = new Subscriber({} as unknown as SubscriberListener, 100, 10_000, { intervalMs: 0, maxMessages: 1 }, 1 << 20);
    const commits: Cursor[][] = [];
    const a = fakeConnection('a', () => [
      { topic: 'x.a', partition: 0, offset: 0, incarnation: 2 },
      { topic: 'x.b', partition: 0, offset: 0, incarnation: 5 },
    ]);
    recordCommits(a, commits);
    subscriber.setConnection(a);
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const handled: string[] = [];
    const { id } = await subscriber.subscribe('x.*', async (m) => {
      if (m.topic === 'x.b') await gate;
      handled.push(`${m.topic}@${m.offset}`);
    }, { durable: 'd', from: 'earliest' });
    await settled();
    // Where it starts, stored at once, with the incarnations the broker told.
    expect(commits[0]).toEqual([
      { topic: 'x.a', partition: 0, offset: 0, incarnation: 2 },
      { topic: 'x.b', partition: 0, offset: 0, incarnation: 5 },
    ]);
    subscriber.onMessage(a, { type: 'message', subscription: id, batches: [batch('x.a', 0, 1), batch('x.b', 0, 2)] });
    for (let i = 0; i < 20 && commits.length < 2; i++) await settled();
    expect(commits[1]).toEqual([{ topic: 'x.a', partition: 0, offset: 1, incarnation: 2 }]);

    // x.b@0's handler runs; the topic is deleted meanwhile (the broker tells it): its position is not committed.
    subscriber.onEnded(a, id, new RelayError('INVALID_TOPIC', 'x.b was deleted'), 'x.b');
    release();
    for (let i = 0; i < 20 && !handled.includes('x.b@0'); i++) await settled();
    expect(handled).toEqual(['x.a@0', 'x.b@0']);
    await settled();
    expect(commits.flat().filter((c) => c.topic === 'x.b' && c.offset > 0)).toEqual([]);
    subscriber.closeAll(new RelayError('CLIENT_CLOSED', 'done'));
  });
});
