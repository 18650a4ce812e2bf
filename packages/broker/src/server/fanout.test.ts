/**
 * Fan-out touches only what changed (issue 13): an append wakes the sessions
 * whose subscriptions deliver its partition and no other, and their delivery
 * passes read that partition's cursors, not every cursor of every
 * subscription. Sessions run over a real in-memory engine and session stack,
 * with sockets that complete every write; reads are counted on the engine
 * itself, so the figures hold whatever the delivery code counts.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PROTOCOL_VERSION, decodeBrokerFrame, encodeFrame, type BrokerFrame, type ClientFrame, type MessageFrame } from '@relaymq/sdk/protocol';
import { MemoryEngine } from '../engine/memory.js';
import { resolveBrokerOptions } from '../options.js';
import { newSecurityCounters } from '../security/counters.js';
import { Delivery } from './delivery.js';
import { Fanout } from './fanout.js';
import type { ClientSocket } from './session-context.js';
import { ClientSession } from './session.js';

const TOPICS = 100;
const PARTITIONS_PER_TOPIC = 10;
const SESSIONS = 200;
/** Sessions subscribed to `fan.>` (every partition); the others to one exact topic each, two per topic. */
const WILDCARD_SESSIONS = 10;
const EXACT_TOPICS = (SESSIONS - WILDCARD_SESSIONS) / 2;
const WAIT_MS = 5000;

/** A socket whose writes complete at once; it keeps the frames the broker sent. */
class RecordingSocket implements ClientSocket {
  readonly frames: BrokerFrame[] = [];
  send(bytes: Uint8Array, onWritten: (err?: Error) => void): void {
    this.frames.push(decodeBrokerFrame(bytes, 64 * 1024 * 1024));
    onWritten();
  }
  close(): void {}
  terminate(): void {}
  messages(): MessageFrame[] {
    return this.frames.filter((f): f is MessageFrame => f.type === 'message');
  }
}

interface Client {
  socket: RecordingSocket;
  session: ClientSession;
  send(frame: ClientFrame): void;
}

const live: ClientSession[] = [];
afterEach(() => {
  for (const s of live.splice(0)) s.ended();
  vi.restoreAllMocks();
});

/**
 * Counts, per session, the calls the fan-out makes into its delivery
 * (`appended`) and the delivery passes scheduled on it (`schedulePump`),
 * on the session code itself: a fan-out that told every session of every
 * append, even one each session then ignored, shows here whatever the
 * Fanout's own counters say.
 */
function countWakeups(clients: readonly Client[]): { told: () => number[]; pumped: () => number[] } {
  const told = new Map<Delivery, number>();
  const pumped = new Map<Delivery, number>();
  const appended = Delivery.prototype.appended;
  const schedulePump = Delivery.prototype.schedulePump;
  vi.spyOn(Delivery.prototype, 'appended').mockImplementation(function (this: Delivery, ...args) {
    told.set(this, (told.get(this) ?? 0) + 1);
    return appended.apply(this, args);
  });
  vi.spyOn(Delivery.prototype, 'schedulePump').mockImplementation(function (this: Delivery) {
    pumped.set(this, (pumped.get(this) ?? 0) + 1);
    schedulePump.apply(this);
  });
  // The session's delivery is private; the test reads it to name the sessions the counts belong to.
  const deliveries = clients.map((client) => (client.session as unknown as { delivery: Delivery }).delivery);
  return {
    told: () => deliveries.map((delivery) => told.get(delivery) ?? 0),
    pumped: () => deliveries.map((delivery) => pumped.get(delivery) ?? 0),
  };
}

/** A broker's session side over an in-memory engine, with the engine's reads counted per partition. */
function broker(partitions: number) {
  const options = resolveBrokerOptions({ defaultPartitions: partitions });
  const engine = new MemoryEngine({ ...options, now: Date.now });
  const reads = new Map<string, number>();
  const read = engine.read.bind(engine);
  engine.read = (topic, partition, offset, maxCount, maxBytes) => {
    reads.set(`${topic}/${partition}`, (reads.get(`${topic}/${partition}`) ?? 0) + 1);
    return read(topic, partition, offset, maxCount, maxBytes);
  };
  const fanout = new Fanout(engine);
  const context = {
    options,
    engine,
    fanout,
    cluster: () => ({ brokers: [] }),
    now: Date.now,
    newId: () => 'id',
    draining: () => false,
    ready: () => true,
    authenticator: undefined,
    counters: newSecurityCounters(),
  };
  const connect = (): Client => {
    const socket = new RecordingSocket();
    const session = new ClientSession(socket, context, () => {});
    live.push(session);
    const send = (frame: ClientFrame): void => session.receive(encodeFrame(frame));
    send({ type: 'hello', version: PROTOCOL_VERSION, clientId: '', producerId: '' });
    return { socket, session, send };
  };
  const seqs = new Map<string, number>();
  const publish = (topic: string, partition: number, count = 1): Promise<unknown> => {
    const firstSeq = seqs.get(`${topic}/${partition}`) ?? 0;
    seqs.set(`${topic}/${partition}`, firstSeq + count);
    const messages = Array.from({ length: count }, () => ({ data: new TextEncoder().encode('x'), encoding: 'raw' as const }));
    return engine.append(topic, partition, { producerId: 'p', firstSeq, messages }, 'leader');
  };
  return { engine, fanout, reads, connect, publish };
}

/** Turns of the event loop until `done`, bounded. */
async function until(done: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** A few turns with nothing scheduled in between: pending delivery passes have run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

function subscribed(client: Client, subscription: number): boolean {
  return client.socket.frames.some((f) => f.type === 'subscribed' && f.subscription === subscription);
}

describe('Fanout', () => {
  it(`wakes only the sessions subscribed to the appended partition, and reads only its cursors (${SESSIONS} sessions, ${TOPICS * PARTITIONS_PER_TOPIC} partitions)`, async () => {
    const b = broker(PARTITIONS_PER_TOPIC);
    for (let t = 0; t < TOPICS; t++) await b.engine.ensureTopic(`fan.t${t}`);
    const clients = Array.from({ length: SESSIONS }, () => b.connect());
    clients.forEach((client, i) => {
      const pattern = i < WILDCARD_SESSIONS ? 'fan.>' : `fan.t${(i - WILDCARD_SESSIONS) % EXACT_TOPICS}`;
      client.send({ type: 'subscribe', id: 1, subscription: 1, pattern, from: 'earliest', resume: [], credit: 1000 });
    });
    await until(() => clients.every((c) => subscribed(c, 1)), 'every subscription to start');
    await settle();
    const wakeups = countWakeups(clients);
    const placed = b.fanout.stats.cursorsVisited;
    const woken = b.fanout.stats.sessionsWoken;
    const visited = b.fanout.stats.cursorsVisited;
    b.reads.clear();
    await b.publish('fan.t7', 3);
    // Subscribers of fan.t7: the wildcard sessions and the two exact ones.
    const subscribers = clients.filter((_, i) => i < WILDCARD_SESSIONS || (i - WILDCARD_SESSIONS) % EXACT_TOPICS === 7);
    expect(subscribers).toHaveLength(WILDCARD_SESSIONS + 2);
    await until(() => subscribers.every((c) => c.socket.messages().length === 1), 'the message at every subscriber');
    await settle();
    // Counted on the sessions: the fan-out called into the subscribers' deliveries once each, and no other session's;
    // a delivery pass was scheduled on the subscribers only.
    const isSubscriber = clients.map((client) => (subscribers.includes(client) ? 1 : 0));
    expect(wakeups.told()).toEqual(isSubscriber);
    expect(wakeups.pumped().map((n) => Math.min(n, 1))).toEqual(isSubscriber);

    for (const [i, client] of clients.entries()) {
      const batches = client.socket.messages().flatMap((m) => m.batches);
      if (subscribers.includes(client)) expect(batches.map((x) => [x.topic, x.partition, x.firstOffset, x.messages.length]), `session ${i}`).toEqual([['fan.t7', 3, 0, 1]]);
      else expect(batches, `session ${i}`).toEqual([]);
    }
    // One read delivers the message, one finds the cursor caught up; no other partition is read.
    expect([...b.reads.keys()]).toEqual(['fan.t7/3']);
    expect(b.reads.get('fan.t7/3')).toBe(2 * subscribers.length);
    // The broker's own counters say the same: woken sessions, cursors read.
    expect(b.fanout.stats.sessionsWoken - woken).toBe(subscribers.length);
    expect(b.fanout.stats.cursorsVisited - visited).toBe(2 * subscribers.length);
    // Placing the cursors read each once (nothing there yet).
    expect(placed).toBe(WILDCARD_SESSIONS * TOPICS * PARTITIONS_PER_TOPIC + (SESSIONS - WILDCARD_SESSIONS) * PARTITIONS_PER_TOPIC);
    expect(b.fanout.size).toBe(SESSIONS);
  });

  it('delivers what a lack of credit held back once credit comes, reading that subscription only', async () => {
    const b = broker(PARTITIONS_PER_TOPIC);
    for (let t = 0; t < TOPICS; t++) await b.engine.ensureTopic(`fan.t${t}`);
    const client = b.connect();
    const bystander = b.connect();
    client.send({ type: 'subscribe', id: 1, subscription: 1, pattern: 'fan.>', from: 'earliest', resume: [], credit: 2 });
    bystander.send({ type: 'subscribe', id: 1, subscription: 1, pattern: 'fan.>', from: 'earliest', resume: [], credit: 1000 });
    await until(() => subscribed(client, 1) && subscribed(bystander, 1), 'the subscriptions to start');
    await settle();
    await b.publish('fan.t3', 5, 3);
    await until(() => client.socket.messages().length === 1 && bystander.socket.messages().length === 1, 'the first messages');
    await settle();
    expect(client.socket.messages()[0]?.batches.map((x) => [x.topic, x.partition, x.firstOffset, x.messages.length])).toEqual([['fan.t3', 5, 0, 2]]);

    const visited = b.fanout.stats.cursorsVisited;
    const woken = b.fanout.stats.sessionsWoken;
    client.send({ type: 'credit', subscription: 1, credit: 10 });
    await until(() => client.socket.messages().length === 2, 'the third message');
    await settle();
    expect(client.socket.messages()[1]?.batches.map((x) => [x.topic, x.partition, x.firstOffset, x.messages.length])).toEqual([['fan.t3', 5, 2, 1]]);
    // A credit grant is not an append: no session is woken, and only this subscription's cursors are read (once each, and the held-back one again).
    expect(b.fanout.stats.sessionsWoken).toBe(woken);
    expect(b.fanout.stats.cursorsVisited - visited).toBe(TOPICS * PARTITIONS_PER_TOPIC + 1);
    expect(bystander.socket.messages()).toHaveLength(1);
  });

  it('sends no more payload bytes than a subscription named in creditBytes, and the rest once bytes come back', async () => {
    const b = broker(1);
    await b.engine.ensureTopic('fan.bytes');
    const client = b.connect();
    client.send({ type: 'subscribe', id: 1, subscription: 1, pattern: 'fan.bytes', from: 'earliest', resume: [], credit: 1000, creditBytes: 3 });
    await until(() => subscribed(client, 1), 'the subscription to start');
    await b.publish('fan.bytes', 0, 8); // 8 messages of 1 byte
    await until(() => client.socket.messages().length === 1, 'the first frame');
    await settle();
    const counts = (): number[] => client.socket.messages().map((m) => m.batches.reduce((n, x) => n + x.messages.length, 0));
    expect(counts()).toEqual([3]);
    // Message credit alone does not lift the byte limit.
    client.send({ type: 'credit', subscription: 1, credit: 5 });
    await settle();
    expect(counts()).toEqual([3]);
    client.send({ type: 'credit', subscription: 1, credit: 0, bytes: 4 });
    await until(() => client.socket.messages().length === 2, 'the second frame');
    await settle();
    expect(counts()).toEqual([3, 4]);
    client.send({ type: 'credit', subscription: 1, credit: 0, bytes: 100 });
    await until(() => client.socket.messages().length === 3, 'the last frame');
    expect(counts()).toEqual([3, 4, 1]);
    expect(client.socket.messages().map((m) => m.batches[0]?.firstOffset)).toEqual([0, 3, 7]);
  });

  it('wakes a consumer-group member for the partitions assigned to it, and reads only the one that got messages', async () => {
    const b = broker(4);
    for (const topic of ['fan.a', 'fan.b']) await b.engine.ensureTopic(topic);
    const member = b.connect();
    const other = b.connect();
    member.send({ type: 'subscribe', id: 1, subscription: 1, pattern: 'fan.>', from: 'earliest', resume: [], credit: 100, group: 'g', member: 'm1', sessionTimeoutMs: 60_000 });
    other.send({ type: 'subscribe', id: 1, subscription: 1, pattern: 'fan.b', from: 'earliest', resume: [], credit: 100 });
    await until(() => subscribed(member, 1) && subscribed(other, 1), 'the subscriptions to start');
    await until(() => member.socket.frames.some((f) => f.type === 'assignment'), 'the assignment');
    await settle();
    const woken = b.fanout.stats.sessionsWoken;
    b.reads.clear();
    await b.publish('fan.a', 2);
    await until(() => member.socket.messages().length === 1, 'the message at the member');
    await settle();
    expect(member.socket.messages()[0]?.batches.map((x) => [x.topic, x.partition, x.firstOffset])).toEqual([['fan.a', 2, 0]]);
    expect(other.socket.messages()).toEqual([]);
    expect([...b.reads]).toEqual([['fan.a/2', 2]]);
    expect(b.fanout.stats.sessionsWoken - woken).toBe(1);
  });

  it('places a cursor on a topic created after a wildcard subscription started, and forgets unsubscribed ones', async () => {
    const b = broker(2);
    await b.engine.ensureTopic('fan.a');
    const client = b.connect();
    client.send({ type: 'subscribe', id: 1, subscription: 1, pattern: 'fan.*', from: 'new', resume: [], credit: 100 });
    client.send({ type: 'subscribe', id: 2, subscription: 2, pattern: 'other.*', from: 'new', resume: [], credit: 100 });
    await until(() => subscribed(client, 1) && subscribed(client, 2), 'the subscriptions to start');
    await b.engine.ensureTopic('fan.b');
    await b.publish('fan.b', 1);
    await until(() => client.socket.messages().length === 1, 'the message of the new topic');
    expect(client.socket.messages()[0]).toMatchObject({ subscription: 1, batches: [{ topic: 'fan.b', partition: 1, firstOffset: 0 }] });

    client.send({ type: 'unsubscribe', id: 3, subscription: 1 });
    expect(b.fanout.size).toBe(1);
    const woken = b.fanout.stats.sessionsWoken;
    await b.publish('fan.b', 1);
    await settle();
    expect(b.fanout.stats.sessionsWoken).toBe(woken);
    expect(client.socket.messages()).toHaveLength(1);
    client.session.ended();
    expect(b.fanout.size).toBe(0);
  });
});
