import { afterEach, describe, expect, it, vi } from 'vitest';
import type { BrokerConnection } from '../connection/connection.js';
import { RelayError, type AssignedPartition } from '../protocol/index.js';
import { Subscriber, type SubscriberListener } from './subscriber.js';

/** A connection whose requests wait until the test answers them; group commits are stored at once. */
class FakeConnection {
  readonly open = true;
  readonly requests: Array<{ frame: { type: string }; onReply?: (reply: unknown) => void; resolve: (reply: unknown) => void; reject: (err: unknown) => void }> = [];
  /** Every group commit sent. */
  readonly commits: Array<{ positions: Array<{ partition: number; epoch: number; offset: number }> }> = [];

  send(): boolean {
    return true;
  }

  request(frame: { type: string }, onReply?: (reply: unknown) => void): Promise<unknown> {
    if (frame.type === 'group-commit') this.commits.push(frame as unknown as FakeConnection['commits'][number]);
    if (frame.type === 'group-commit' || frame.type === 'unsubscribe') return Promise.resolve({ type: 'committed' });
    return new Promise((resolve, reject) => this.requests.push({ frame, onReply, resolve, reject }));
  }

  /** Answers the oldest pending request of `type`. */
  answer(type: string, reply?: unknown, error?: RelayError): void {
    const i = this.requests.findIndex((r) => r.frame.type === type);
    expect(i, `a pending ${type}`).toBeGreaterThanOrEqual(0);
    const [request] = this.requests.splice(i, 1);
    if (error !== undefined) return request?.reject(error);
    request?.onReply?.(reply);
    request?.resolve(reply);
  }
}

const listener = (events: string[]): SubscriberListener => ({
  gap: () => {},
  handlerError: () => {},
  commitRefused: () => {},
  publish: async () => {},
  deadLetterFailed: () => {},
  assigned: (e) => events.push(`assigned ${e.partitions.map((p) => p.partition).join(',')}`),
  revoked: (e) => events.push(`revoked ${e.partitions.map((p) => p.partition).join(',')} ${e.reason}`),
  ended: () => {},
});

const stored = (n: number) => ({ timestamp: 0, data: new TextEncoder().encode(String(n)) });

/** Fake timers on; a subscriber committing after every message, on a fake connection; `events` its group events. */
function groupMember(): { events: string[]; subscriber: Subscriber; connection: FakeConnection } {
  vi.useFakeTimers();
  const events: string[] = [];
  const subscriber = new Subscriber(listener(events), 10, 60_000, { intervalMs: 0, maxMessages: 1 }, 1 << 20);
  const connection = new FakeConnection();
  subscriber.setConnection(connection as unknown as BrokerConnection);
  return { events, subscriber, connection };
}

/** The session timeout the members join with. */
const SESSION_MS = 3000;

afterEach(() => {
  vi.useRealTimers();
});

describe('a consumer-group member whose session lapsed with a message in hand', () => {
  it('does not handle that message under the grant it rejoins with: the new grant starts at the position the other member committed', async () => {
    const { events, subscriber, connection } = groupMember();
    const handled: number[] = [];
    let releaseFirst: () => void = () => {};
    const subscribing = subscriber.subscribe(
      't',
      async (m) => {
        handled.push(m.offset);
        // The first handler runs across the lapse (the process was paused in it: m4 under SIGSTOP).
        if (m.offset === 0) await new Promise<void>((resolve) => (releaseFirst = resolve));
      },
      { group: 'g', sessionTimeoutMs: SESSION_MS },
    );
    connection.answer('subscribe', { type: 'subscribed', cursors: [] });
    const { id } = await subscribing;
    const grant = (partitions: AssignedPartition[]): void => subscriber.onAssignment(connection as unknown as BrokerConnection, { type: 'assignment', subscription: id, partitions });
    const deliver = (firstOffset: number, count: number): void =>
      subscriber.onMessage(connection as unknown as BrokerConnection, {
        type: 'message',
        subscription: id,
        batches: [{ topic: 't', partition: 0, firstOffset, messages: Array.from({ length: count }, (_, i) => stored(firstOffset + i)) }],
      });

    grant([{ topic: 't', partition: 0, epoch: 1, offset: 0 }]);
    deliver(0, 2);
    await vi.advanceTimersByTimeAsync(0);
    expect(handled).toEqual([0]);

    // No heartbeat is answered for longer than the session timeout: the lease runs out while offset 0 is handled
    // and offset 1 waits. Meanwhile the group gave partition 0 to another member, which handled offset 1, committed 2
    // and (the member rejoining) released it.
    await vi.advanceTimersByTimeAsync(SESSION_MS + 100);
    releaseFirst();
    await vi.advanceTimersByTimeAsync(0);
    expect(handled).toEqual([0]); // offset 1 is held until the lease is valid again

    // The next heartbeat answer: the group forgot the member. It loses the partition and joins again.
    connection.answer('group-heartbeat', undefined, new RelayError('FENCED', 'unknown member'));
    await vi.advanceTimersByTimeAsync(0);
    expect(events).toEqual(['assigned 0', 'revoked 0 lost']);
    // The join is granted partition 0 again, under a new epoch, from the position the other member committed
    // (the broker sends a member's assignment right after `subscribed`, delivery.ts).
    connection.answer('subscribe', { type: 'subscribed', cursors: [] });
    grant([{ topic: 't', partition: 0, epoch: 3, offset: 2 }]);
    await vi.advanceTimersByTimeAsync(0);
    deliver(2, 1);
    await vi.advanceTimersByTimeAsync(0);

    expect(events).toEqual(['assigned 0', 'revoked 0 lost', 'assigned 0']);
    // Offset 1 was received under epoch 1 and handled by the other member under epoch 2: not handled here again.
    expect(handled).toEqual([0, 2]);
    subscriber.stopDelivery();
  });
});

describe('a consumer-group member that joins again on the same connection', () => {
  it('ignores an assignment frame of its earlier subscription that arrives before the new subscribe is answered', async () => {
    // The broker handles `unsubscribe` then the new `subscribe` (the join) in order, and sends the new
    // subscription's assignment after `subscribed` (delivery.ts): an assignment frame before that answer is
    // the earlier subscription's, e.g. a grant this broker applied after the coordinator had already expired
    // the member (the heartbeat answered FENCED reached the member first).
    const { events, subscriber, connection } = groupMember();
    const handled: string[] = [];
    const subscribing = subscriber.subscribe('t', (m) => void handled.push(`${m.partition}/${m.offset}`), { group: 'g', sessionTimeoutMs: SESSION_MS });
    connection.answer('subscribe', { type: 'subscribed', cursors: [] });
    const { id } = await subscribing;
    const assign = (partitions: AssignedPartition[]): void => subscriber.onAssignment(connection as unknown as BrokerConnection, { type: 'assignment', subscription: id, partitions });
    assign([{ topic: 't', partition: 0, epoch: 1, offset: 0 }]);
    await vi.advanceTimersByTimeAsync(SESSION_MS / 3 + 10); // the first heartbeat
    connection.answer('group-heartbeat', undefined, new RelayError('FENCED', 'unknown member'));
    await vi.advanceTimersByTimeAsync(0);
    expect(events).toEqual(['assigned 0', 'revoked 0 lost']);
    expect(connection.requests.filter((r) => r.frame.type === 'subscribe')).toHaveLength(1); // the join again

    // The earlier subscription's last frame: partition 1 under epoch 2, from offset 5 (the member was expired since).
    assign([{ topic: 't', partition: 1, epoch: 2, offset: 5 }]);
    await vi.advanceTimersByTimeAsync(0);
    connection.answer('subscribe', { type: 'subscribed', cursors: [] });
    assign([{ topic: 't', partition: 0, epoch: 3, offset: 2 }]);
    await vi.advanceTimersByTimeAsync(0);

    // Partition 1 was never this join's: no `assigned` for it (nor the `revoked` that would follow), and no
    // position committed under its stale epoch (a commit the coordinator refuses as FENCED).
    expect(events).toEqual(['assigned 0', 'revoked 0 lost', 'assigned 0']);
    expect(connection.commits.flatMap((c) => c.positions).filter((p) => p.epoch === 2)).toEqual([]);
    subscriber.stopDelivery();
  });
});
