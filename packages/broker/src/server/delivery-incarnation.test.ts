/**
 * The object path of delivery (messages read from memory) names a topic's
 * incarnation on the first batch of a topic the subscription was not told
 * of in `subscribed` (created after it started, or created again after a
 * deletion), once; a topic `subscribed` named, later batches, and engines
 * that track no incarnations name none. A disk read of a topic deleted while
 * it ran delivers nothing. (The encoded path is covered on the
 * wire by test/wildcard-incarnation.test.ts.)
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { BrokerFrame, DeliveryBatch, MessageFrame } from '@relaymq/sdk/protocol';
import type { StoredMessage } from '../core/partition/message.js';
import { Delivery, type DeliverySession } from './delivery.js';
import type { Subscription } from './subscription.js';

/** A session over a fake engine holding `logs` (topic → messages of partition 0) at `incarnations` (absent: none tracked). */
function session(logs: Map<string, StoredMessage[]>, incarnations: Map<string, number> | undefined) {
  const sent: BrokerFrame[] = [];
  let subscription: Subscription | undefined;
  const engine = {
    offsetsSurviveRestart: true,
    offsetHoles: false,
    topics: () => [...logs.keys()],
    partitionCount: (topic: string) => (logs.has(topic) ? 1 : undefined),
    bounds: (topic: string) => ({ start: 0, end: logs.get(topic)?.length ?? 0 }),
    currentBounds: async (topic: string) => ({ start: 0, end: logs.get(topic)?.length ?? 0 }),
    read: (topic: string, _partition: number, offset: number, max: number) => (logs.get(topic) ?? []).slice(offset, offset + max),
    consumerGroupEvents: { on: () => undefined, off: () => undefined },
    ...(incarnations === undefined ? {} : { topicIncarnation: (topic: string) => incarnations.get(topic) }),
  };
  const ctx = {
    engine,
    options: { maxSubscriptionsPerConnection: 100, maxCredit: 1_000_000 },
    counters: { subscriptionsRejected: 0, denied: 0 },
    fanout: { add: (s: Subscription) => void (subscription = s), remove: () => undefined, stats: { cursorsVisited: 0 } },
  };
  const access = { permissions: { mayRead: () => true }, owned: (name: string) => name, describe: () => 'anonymous' };
  const delivery = new Delivery({
    ctx,
    open: () => true,
    access: () => access,
    send: (frame: BrokerFrame) => void sent.push(frame),
    sendEncoded: () => undefined,
    hasRoom: () => true,
  } as unknown as DeliverySession);
  return { delivery, sent, subscription: () => subscription as Subscription, engine };
}

const messages = (count: number): StoredMessage[] => Array.from({ length: count }, (_, offset) => ({ offset, timestamp: offset, data: Uint8Array.of(offset), encoding: 'raw' }));
const pumped = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const batchesOf = (sent: BrokerFrame[]): DeliveryBatch[] => sent.filter((f): f is MessageFrame => f.type === 'message').flatMap((f) => f.batches);

describe('Delivery names the incarnation of a topic the subscription was not told of', () => {
  it('once per topic, on its first batch; again for the topic created again; never for a topic `subscribed` named', async () => {
    const logs = new Map([['x.old', messages(1)]]);
    const incarnations = new Map([['x.old', 2]]);
    const { delivery, sent, subscription } = session(logs, incarnations);
    await delivery.subscribe({ type: 'subscribe', id: 1, subscription: 1, pattern: 'x.*', from: 'earliest', resume: [], credit: 100 });
    expect(sent.find((f) => f.type === 'subscribed')).toMatchObject({ cursors: [{ topic: 'x.old', offset: 0, incarnation: 2 }] });
    await pumped();

    // Created after the subscription started.
    logs.set('x.new', messages(2));
    incarnations.set('x.new', 5);
    delivery.appended(subscription(), 'x.new', 0);
    await pumped();
    logs.set('x.new', messages(3));
    logs.set('x.old', messages(2));
    delivery.appended(subscription(), 'x.new', 0);
    delivery.appended(subscription(), 'x.old', 0);
    await pumped();
    // Deleted, then created again.
    delivery.topicDeleted(subscription(), 'x.new');
    logs.set('x.new', messages(1));
    incarnations.set('x.new', 6);
    delivery.appended(subscription(), 'x.new', 0);
    await pumped();

    expect(batchesOf(sent).map((b) => [b.topic, b.firstOffset, b.incarnation])).toEqual([
      ['x.old', 0, undefined],
      ['x.new', 0, 5],
      ['x.new', 2, undefined],
      ['x.old', 1, undefined],
      ['x.new', 0, 6],
    ]);
    delivery.stop();
  });

  it("a disk read of a topic deleted (and created again) while it ran delivers nothing: its messages are the old topic's", async () => {
    const logs = new Map<string, StoredMessage[]>();
    const incarnations = new Map<string, number>();
    const { delivery, sent, subscription, engine } = session(logs, incarnations);
    await delivery.subscribe({ type: 'subscribe', id: 1, subscription: 1, pattern: 'x.*', from: 'earliest', resume: [], credit: 100 });
    logs.set('x.t', messages(3));
    incarnations.set('x.t', 0);
    let completeRead: (stored: StoredMessage[]) => void = () => undefined;
    const read = engine.read;
    engine.read = () => new Promise<StoredMessage[]>((resolve) => (completeRead = resolve)) as unknown as StoredMessage[];
    delivery.appended(subscription(), 'x.t', 0);
    await pumped();
    // Deleted and created again while the old topic's read runs.
    engine.read = read;
    delivery.topicDeleted(subscription(), 'x.t');
    logs.set('x.t', messages(1));
    incarnations.set('x.t', 1);
    completeRead(messages(3));
    await pumped();
    delivery.appended(subscription(), 'x.t', 0);
    await pumped();
    expect(batchesOf(sent).map((b) => [b.topic, b.firstOffset, b.messages.length, b.incarnation])).toEqual([['x.t', 0, 1, 1]]);
    delivery.stop();
  });

  it("a group member's disk read of a topic deleted and created again while it ran (granted again) delivers nothing", async () => {
    const logs = new Map<string, StoredMessage[]>([['x.t', messages(3)]]);
    const { delivery, sent, engine } = session(logs, new Map([['x.t', 0]]));
    // The group table: x.t/0 is the member's, under `epoch` (none while the topic is gone).
    let assignment: Array<{ topic: string; partition: number; epoch: number }> = [{ topic: 'x.t', partition: 0, epoch: 1 }];
    const groupEvents = new EventEmitter<{ changed: [group: string | undefined] }>();
    Object.assign(engine, {
      consumerGroupEvents: groupEvents,
      consumerGroups: { assignmentOf: () => assignment, position: () => undefined },
      groupCommand: async () => ({ kind: 'joined' }),
    });
    delivery.start();
    let completeRead: (stored: StoredMessage[]) => void = () => undefined;
    const read = engine.read;
    engine.read = () => new Promise<StoredMessage[]>((resolve) => (completeRead = resolve)) as unknown as StoredMessage[];
    await delivery.subscribe({ type: 'subscribe', id: 1, subscription: 1, pattern: 'x.*', from: 'earliest', resume: [], credit: 100, group: 'g', member: 'm' });
    await pumped(); // the old topic's read runs
    // Deleted: the member loses the partition; created again: granted again, from the new topic's start.
    engine.read = read;
    delivery.topicDeleted(delivery['subscriptions'].get(1) as Subscription, 'x.t');
    assignment = [];
    groupEvents.emit('changed', undefined);
    logs.set('x.t', messages(1));
    assignment = [{ topic: 'x.t', partition: 0, epoch: 2 }];
    groupEvents.emit('changed', undefined);
    completeRead(messages(3));
    await pumped();
    await pumped();
    // Only the new topic's message: the old one's three (offsets 0-2) would make the member drop it as a duplicate.
    expect(batchesOf(sent).map((b) => [b.topic, b.firstOffset, b.messages.length])).toEqual([['x.t', 0, 1]]);
    delivery.stop();
  });

  it('names none where the engine tracks no incarnations', async () => {
    const logs = new Map<string, StoredMessage[]>();
    const { delivery, sent, subscription } = session(logs, undefined);
    await delivery.subscribe({ type: 'subscribe', id: 1, subscription: 1, pattern: 'x.*', from: 'earliest', resume: [], credit: 100 });
    logs.set('x.new', messages(2));
    delivery.appended(subscription(), 'x.new', 0);
    await pumped();
    expect(batchesOf(sent)).toHaveLength(1);
    expect(batchesOf(sent)[0]).not.toHaveProperty('incarnation');
    delivery.stop();
  });
});
