/**
 * A broker whose log does not survive a restart (an in-memory one) names it in
 * `welcome` (`logId`). A plain or durable subscription that resubscribes on a
 * broker naming another log than the one its positions are in sends none of
 * them (a position below the new log's end would skip the new log's messages
 * below it, silently), reads the new log from its start, reports the reset
 * once per partition (a `gap` event with `reset: true`), and commits nothing
 * of the old log to the new one. Brokers naming no log (a cluster, a backbone,
 * an older broker) get the positions as before.
 */
import { describe, expect, it } from 'vitest';
import type { BrokerConnection } from '../connection/connection.js';
import { RelayError, type Cursor, type DeliveryBatch } from '../protocol/index.js';
import { Subscriber, type GapEvent, type SubscriberListener } from './subscriber.js';

interface SentFrame {
  type: string;
  subscription?: number;
  from?: unknown;
  resume?: Cursor[];
  positions?: Cursor[];
}

/** A fake connection to a broker naming `logId` (none: undefined), answering each subscribe with `cursors()`. */
function fakeConnection(logId: string | undefined, cursors: () => Cursor[]): BrokerConnection & { subscribes: SentFrame[]; commits: Cursor[][] } {
  const subscribes: SentFrame[] = [];
  const commits: Cursor[][] = [];
  const connection = {
    open: true,
    brokerId: 'b',
    logId,
    subscribes,
    commits,
    send: () => undefined,
    request: (frame: SentFrame, onReply?: (reply: unknown) => void) => {
      if (frame.type === 'subscribe') {
        subscribes.push(frame);
        onReply?.({ type: 'subscribed', id: 1, subscription: frame.subscription, cursors: cursors() });
      }
      if (frame.type === 'commit') commits.push(frame.positions ?? []);
      return Promise.resolve({ type: 'ok' });
    },
  };
  return connection as unknown as BrokerConnection & { subscribes: SentFrame[]; commits: Cursor[][] };
}

const batch = (firstOffset: number, count: number): DeliveryBatch => ({
  topic: 't',
  partition: 0,
  firstOffset,
  messages: Array.from({ length: count }, (_, i) => ({ timestamp: i, data: Uint8Array.of(firstOffset + i) })),
});

const settled = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

function setup(): { subscriber: Subscriber; gaps: GapEvent[] } {
  const gaps: GapEvent[] = [];
  const listener = { gap: (event: GapEvent) => void gaps.push(event), assigned: () => {}, revoked: () => {} } as unknown as SubscriberListener;
  return { subscriber: new Subscriber(listener, 100, 10_000, { intervalMs: 0, maxMessages: 1 }, 1 << 20), gaps };
}

describe('Subscriber on a broker naming another log', () => {
  it('sends no position of the lost log, reads the new log from its start, and reports the reset once, for a partition first met in a message frame too', async () => {
    const { subscriber, gaps } = setup();
    const a = fakeConnection('L1', () => [{ topic: 't', partition: 0, offset: 0 }]);
    subscriber.setConnection(a);
    const offsets: number[] = [];
    const { id } = await subscriber.subscribe('t', (m) => void offsets.push(m.offset), { from: { offset: 0 } });
    subscriber.onMessage(a, { type: 'message', subscription: id, batches: [batch(0, 3)] });
    await settled();

    // Restarted: the topic is not there yet when the subscription comes back; its first messages name it.
    const b = fakeConnection('L2', () => []);
    subscriber.setConnection(b);
    expect(b.subscribes[0]).toMatchObject({ from: 'earliest', resume: [] });
    expect(gaps).toEqual([]);
    subscriber.onMessage(b, { type: 'message', subscription: id, batches: [batch(0, 2)] });
    subscriber.onMessage(b, { type: 'message', subscription: id, batches: [batch(2, 1)] });
    await settled();
    expect(offsets).toEqual([0, 1, 2, 0, 1, 2]);
    expect(gaps).toEqual([{ topic: 't', partition: 0, expectedOffset: 3, firstAvailableOffset: 0, reset: true }]);

    // Back on the same log (a reconnect): its positions are sent as usual, and nothing is reported again.
    const again = fakeConnection('L2', () => [{ topic: 't', partition: 0, offset: 3 }]);
    subscriber.setConnection(again);
    expect(again.subscribes[0]?.resume).toEqual([{ topic: 't', partition: 0, offset: 3 }]);
    expect(gaps).toHaveLength(1);
    subscriber.closeAll(new RelayError('CLIENT_CLOSED', 'done'));
  });

  it('back on a log it left (a client pooled to independent in-memory brokers fails over A → B → A), resumes where it was in it, without a reset', async () => {
    const { subscriber, gaps } = setup();
    const a = fakeConnection('L1', () => [{ topic: 't', partition: 0, offset: 0 }]);
    subscriber.setConnection(a);
    const offsets: number[] = [];
    const { id } = await subscriber.subscribe('t', (m) => void offsets.push(m.offset), { from: 'earliest' });
    subscriber.onMessage(a, { type: 'message', subscription: id, batches: [batch(0, 3)] });
    await settled();
    const b = fakeConnection('L2', () => [{ topic: 't', partition: 0, offset: 0 }]);
    subscriber.setConnection(b);
    subscriber.onMessage(b, { type: 'message', subscription: id, batches: [batch(0, 1)] });
    await settled();
    expect(gaps).toHaveLength(1);

    // Back on broker A, whose log L1 is the one read before: its offsets 0-2 were handled already.
    const again = fakeConnection('L1', () => [{ topic: 't', partition: 0, offset: 3 }]);
    subscriber.setConnection(again);
    expect(again.subscribes[0]?.resume).toEqual([{ topic: 't', partition: 0, offset: 3 }]);
    subscriber.onMessage(again, { type: 'message', subscription: id, batches: [batch(0, 4)] });
    await settled();
    expect(offsets).toEqual([0, 1, 2, 0, 3]);
    expect(gaps).toHaveLength(1);
    subscriber.closeAll(new RelayError('CLIENT_CLOSED', 'done'));
  });

  it('a broker naming no log gets the positions as before (a cluster, an older broker)', async () => {
    const { subscriber, gaps } = setup();
    const a = fakeConnection(undefined, () => [{ topic: 't', partition: 0, offset: 0 }]);
    subscriber.setConnection(a);
    const { id } = await subscriber.subscribe('t', () => undefined, { from: 'earliest' });
    subscriber.onMessage(a, { type: 'message', subscription: id, batches: [batch(0, 3)] });
    await settled();
    const b = fakeConnection(undefined, () => [{ topic: 't', partition: 0, offset: 3 }]);
    subscriber.setConnection(b);
    expect(b.subscribes[0]?.resume).toEqual([{ topic: 't', partition: 0, offset: 3 }]);
    expect(gaps).toEqual([]);
    subscriber.closeAll(new RelayError('CLIENT_CLOSED', 'done'));
  });

  it("an older in-memory broker naming no log still resets a position past its new log's end (broker-side `resets`)", async () => {
    const { subscriber, gaps } = setup();
    const a = fakeConnection(undefined, () => [{ topic: 't', partition: 0, offset: 0 }]);
    subscriber.setConnection(a);
    const offsets: number[] = [];
    const { id } = await subscriber.subscribe('t', (m) => void offsets.push(m.offset), { from: 'earliest' });
    subscriber.onMessage(a, { type: 'message', subscription: id, batches: [batch(0, 3)] });
    await settled();
    const b = fakeConnection(undefined, () => [{ topic: 't', partition: 0, offset: 0 }]);
    const request = b.request.bind(b);
    b.request = ((frame: SentFrame, onReply?: (reply: unknown) => void) =>
      request(frame as never, (reply: unknown) => onReply?.({ ...(reply as object), resets: [{ topic: 't', partition: 0, offset: 0 }] }))) as typeof b.request;
    subscriber.setConnection(b);
    expect(b.subscribes[0]?.resume).toEqual([{ topic: 't', partition: 0, offset: 3 }]);
    expect(gaps).toEqual([{ topic: 't', partition: 0, expectedOffset: 3, firstAvailableOffset: 0, reset: true }]);
    subscriber.onMessage(b, { type: 'message', subscription: id, batches: [batch(0, 1)] });
    await settled();
    expect(offsets).toEqual([0, 1, 2, 0]);
    subscriber.closeAll(new RelayError('CLIENT_CLOSED', 'done'));
  });

  it('durable: the lost log\'s messages still queued are handled but never committed; the new log\'s start is stored, then its positions', async () => {
    const { subscriber, gaps } = setup();
    const a = fakeConnection('L1', () => [{ topic: 't', partition: 0, offset: 0 }]);
    subscriber.setConnection(a);
    const offsets: number[] = [];
    let release: (() => void) | undefined;
    const { id } = await subscriber.subscribe(
      't',
      (m) => {
        offsets.push(m.offset);
        // The handler of offset 1 of the old log is still running at the restart.
        if (offsets.length === 2) return new Promise<void>((resolve) => (release = resolve));
      },
      { durable: 'd', from: 'earliest' },
    );
    subscriber.onMessage(a, { type: 'message', subscription: id, batches: [batch(0, 4)] });
    await settled();
    expect(offsets).toEqual([0, 1]);

    const b = fakeConnection('L2', () => [{ topic: 't', partition: 0, offset: 0 }]);
    subscriber.setConnection(b);
    expect(b.subscribes[0]).toMatchObject({ from: 'earliest', resume: [] });
    expect(gaps).toMatchObject([{ topic: 't', partition: 0, expectedOffset: 4, firstAvailableOffset: 0, reset: true, durable: 'd' }]);
    release?.();
    await settled();
    subscriber.onMessage(b, { type: 'message', subscription: id, batches: [batch(0, 2)] });
    await settled();
    // Offsets 1-3 of the old log were handled, then the new log's 0-1; only the new log's positions reached its broker.
    expect(offsets).toEqual([0, 1, 2, 3, 0, 1]);
    expect(b.commits.flat()).toEqual([
      { topic: 't', partition: 0, offset: 0 },
      { topic: 't', partition: 0, offset: 1 },
      { topic: 't', partition: 0, offset: 2 },
    ]);
    subscriber.closeAll(new RelayError('CLIENT_CLOSED', 'done'));
  });
});

describe('a consumer-group member on a broker naming another log', () => {
  /** A fake broker naming `logId`: subscribes answered at once, group commits recorded, heartbeats left unanswered. */
  function groupBroker(logId: string): BrokerConnection & { commits: Array<{ offset: number; epoch: number }> } {
    const commits: Array<{ offset: number; epoch: number }> = [];
    const connection = {
      open: true,
      brokerId: 'b',
      logId,
      commits,
      send: () => undefined,
      request: (frame: { type: string; subscription?: number; positions?: Array<{ offset: number; epoch: number }> }, onReply?: (reply: unknown) => void) => {
        if (frame.type === 'subscribe') {
          onReply?.({ type: 'subscribed', id: 1, subscription: frame.subscription, cursors: [] });
          return Promise.resolve({ type: 'subscribed' });
        }
        if (frame.type === 'group-commit') {
          commits.push(...(frame.positions ?? []).map(({ offset, epoch }) => ({ offset, epoch })));
          return Promise.resolve({ type: 'committed' });
        }
        return new Promise(() => {}); // heartbeats: never answered within the test
      },
    };
    return connection as unknown as BrokerConnection & { commits: Array<{ offset: number; epoch: number }> };
  }

  it("commits no position of the lost log's message whose handler ran across the restart, even granted the partition again under the same epoch", async () => {
    const { subscriber, gaps } = setup();
    const a = groupBroker('L1');
    subscriber.setConnection(a);
    const offsets: number[] = [];
    let release: (() => void) | undefined;
    const { id } = await subscriber.subscribe(
      't',
      (m) => {
        offsets.push(m.offset);
        // The handler of offset 5 of the old log is still running at the restart.
        if (offsets.length === 6) return new Promise<void>((resolve) => (release = resolve));
      },
      { group: 'g', sessionTimeoutMs: 3000 },
    );
    subscriber.onAssignment(a, { type: 'assignment', subscription: id, partitions: [{ topic: 't', partition: 0, epoch: 1, offset: 0 }] });
    subscriber.onMessage(a, { type: 'message', subscription: id, batches: [batch(0, 6)] });
    await settled();
    expect(offsets).toEqual([0, 1, 2, 3, 4, 5]);

    // Restarted: the new group grants partition 0 again under epoch 1 (its counter started over), from the new log's start.
    const b = groupBroker('L2');
    subscriber.setConnection(b);
    subscriber.onAssignment(b, { type: 'assignment', subscription: id, partitions: [{ topic: 't', partition: 0, epoch: 1, offset: 0 }] });
    await settled();
    expect(gaps).toMatchObject([{ topic: 't', partition: 0, expectedOffset: 5, firstAvailableOffset: 0, reset: true }]);
    release?.();
    await settled();
    subscriber.onMessage(b, { type: 'message', subscription: id, batches: [batch(0, 2)] });
    await settled();
    expect(offsets).toEqual([0, 1, 2, 3, 4, 5, 0, 1]);
    // Offset 5 was of the old log: its position 6 would tell the new group that the new log's offsets 0-5 were handled.
    expect(b.commits.map((c) => c.offset)).not.toContain(6);
    expect(Math.max(...b.commits.map((c) => c.offset))).toBe(2);
    subscriber.closeAll(new RelayError('CLIENT_CLOSED', 'done'));
  });
});
