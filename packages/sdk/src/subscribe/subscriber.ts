import {
  RelayError,
  assertPattern,
  decodePayload,
  type Cursor,
  type DeliveryBatch,
  type MessageFrame,
  type StartPosition,
  type StoredMessageFrame,
} from '../protocol/index.js';
import type { BrokerConnection } from '../connection/connection.js';

/** A message handed to a subscriber. */
export interface Message<T = unknown> {
  topic: string;
  partition: number;
  offset: number;
  /** Broker append time, Unix ms. */
  timestamp: number;
  key?: string;
  headers?: Record<string, string>;
  /** The published value: bytes as published, or the decoded msgpack value. */
  data: T;
}

/** Handles one message; the next one waits until a returned promise settles. */
export type MessageHandler<T = unknown> = (message: Message<T>) => void | Promise<void>;

/** Options of `subscribe`. */
export interface SubscribeOptions {
  /**
   * Where to start in each matching partition.
   * @defaultValue `"new"`
   */
  from?: StartPosition;
  /** Messages in flight to this subscription; defaults to the client's `subscriptionCredit`. */
  credit?: number;
}

/** Retention removed messages a subscriber had not yet seen. */
export interface GapEvent {
  topic: string;
  partition: number;
  /** The offset the subscriber expected next. */
  expectedOffset: number;
  /** The first offset the broker could still deliver. */
  firstAvailableOffset: number;
  /**
   * True when the partition's log started over (an in-memory broker lost it):
   * offsets from `firstAvailableOffset` are new messages, not ones already seen.
   */
  reset?: boolean;
}

/** Subscriber counters, part of `client.stats()`. */
export interface SubscribeStats {
  subscriptions: number;
  /** Messages handed to handlers. */
  delivered: number;
  /** Messages received again after a failover and dropped before any handler saw them. */
  duplicatesDropped: number;
  gaps: number;
}

/** What the subscriber reports upward. */
export interface SubscriberListener {
  gap(event: GapEvent): void;
  handlerError(error: unknown, message: Message): void;
}

const cursorKey = (topic: string, partition: number): string => `${partition}:${topic}`;

/** A live subscription. */
export interface Subscription {
  readonly id: number;
  readonly pattern: string;
  /** Stops delivery and tells the broker. Messages already queued are dropped. */
  unsubscribe(): Promise<void>;
}

/** A subscription consumed with `for await`. */
export interface MessageStream<T = unknown> extends Subscription, AsyncIterable<Message<T>> {}

/** Client-side state of one subscription; survives reconnects. */
class SubscriptionState {
  /** Next offset expected per partition: everything below it was received. */
  readonly next = new Map<string, Cursor>();
  readonly queue: Message[] = [];
  connection: BrokerConnection | undefined;
  confirmed = false;
  active = true;
  private handling = false;
  private consumedSinceGrant = 0;
  readonly confirmedWaiters: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];

  constructor(
    readonly id: number,
    readonly pattern: string,
    private readonly from: StartPosition,
    readonly credit: number,
    private readonly handler: MessageHandler,
    private readonly owner: Subscriber,
  ) {}

  /** The `from` for a resubscribe: partitions without a cursor appeared after we subscribed. */
  resumeFrom(): StartPosition {
    return this.confirmed && this.from === 'new' ? 'earliest' : this.from;
  }

  resumeCursors(): Cursor[] {
    return [...this.next.values()].map((c) => ({ ...c }));
  }

  receive(batches: DeliveryBatch[]): void {
    for (const batch of batches) {
      const key = cursorKey(batch.topic, batch.partition);
      batch.messages.forEach((stored, i) => {
        const offset = batch.firstOffset + i;
        const cursor = this.next.get(key);
        if (cursor !== undefined && offset < cursor.offset) {
          this.owner.counters.duplicatesDropped++;
          this.grant(1); // the broker spent credit on it; give it back
          return;
        }
        if (cursor !== undefined && offset > cursor.offset) {
          this.owner.counters.gaps++;
          this.owner.listener.gap({ topic: batch.topic, partition: batch.partition, expectedOffset: cursor.offset, firstAvailableOffset: offset });
        }
        this.next.set(key, { topic: batch.topic, partition: batch.partition, offset: offset + 1 });
        this.queue.push(this.toMessage(batch, offset, stored));
      });
    }
    void this.drain();
  }

  /** Decodes `data`; a payload that does not decode is handed over as raw bytes, and reported. */
  private toMessage(batch: DeliveryBatch, offset: number, stored: StoredMessageFrame): Message {
    const message: Message = { topic: batch.topic, partition: batch.partition, offset, timestamp: stored.timestamp, data: stored.data };
    if (stored.key !== undefined) message.key = stored.key;
    if (stored.headers !== undefined) message.headers = stored.headers;
    if (stored.encoding === 'msgpack') {
      try {
        message.data = decodePayload(stored.data);
      } catch (err) {
        this.owner.listener.handlerError(err, message);
      }
    }
    return message;
  }

  /** Hands queued messages to the handler one at a time. */
  private async drain(): Promise<void> {
    if (this.handling) return;
    this.handling = true;
    try {
      while (this.active && this.queue.length > 0) {
        const message = this.queue.shift() as Message;
        try {
          await this.handler(message);
        } catch (err) {
          this.owner.listener.handlerError(err, message);
        }
        this.owner.counters.delivered++;
        this.grant(1);
      }
    } finally {
      this.handling = false;
    }
  }

  /** Returns credit to the broker in chunks of half the window. */
  private grant(consumed: number): void {
    this.consumedSinceGrant += consumed;
    if (this.consumedSinceGrant < Math.max(1, Math.floor(this.credit / 2))) return;
    const credit = this.consumedSinceGrant;
    this.consumedSinceGrant = 0;
    this.connection?.send({ type: 'credit', subscription: this.id, credit });
  }

  /** Credit for a (re)subscribe: the window minus what is still queued here. */
  initialCredit(): number {
    this.consumedSinceGrant = 0;
    return Math.max(0, this.credit - this.queue.length);
  }
}

/**
 * Client side of subscriptions: remembers per partition the next offset, so
 * that after a failover it resubscribes from there and drops anything the
 * new broker repeats; the handler sees each message once, in partition order.
 */
export class Subscriber {
  readonly counters = { delivered: 0, duplicatesDropped: 0, gaps: 0 };
  private readonly subscriptions = new Map<number, SubscriptionState>();
  private nextId = 1;
  private connection: BrokerConnection | undefined;

  constructor(
    readonly listener: SubscriberListener,
    private readonly defaultCredit: number,
    private readonly requestTimeoutMs: number,
  ) {}

  stats(): SubscribeStats {
    return { subscriptions: this.subscriptions.size, ...this.counters };
  }

  async subscribe(pattern: string, handler: MessageHandler, options: SubscribeOptions = {}): Promise<Subscription> {
    assertPattern(pattern);
    const credit = options.credit ?? this.defaultCredit;
    if (!Number.isInteger(credit) || credit < 1) throw new RelayError('INVALID_ARGUMENT', 'credit must be a positive integer');
    const from = options.from ?? 'new';
    checkFrom(from);
    const state = new SubscriptionState(this.nextId++, pattern, from, credit, handler, this);
    this.subscriptions.set(state.id, state);
    const confirmed = new Promise<void>((resolve, reject) => state.confirmedWaiters.push({ resolve, reject }));
    const timer = setTimeout(() => {
      this.fail(state, new RelayError('TIMEOUT', `subscribe to ${pattern} not confirmed within ${this.requestTimeoutMs} ms`));
    }, this.requestTimeoutMs);
    if (this.connection !== undefined) this.register(state, this.connection);
    try {
      await confirmed;
    } finally {
      clearTimeout(timer);
    }
    return { id: state.id, pattern, unsubscribe: () => this.unsubscribe(state) };
  }

  /** The async-iterator form: messages are pulled, and credit follows the pulls. */
  async stream<T>(pattern: string, options: SubscribeOptions = {}): Promise<MessageStream<T>> {
    const buffered: Message<T>[] = [];
    let wake: (() => void) | undefined;
    let taken: (() => void) | undefined;
    let done = false;
    const subscription = await this.subscribe(
      pattern,
      (message) =>
        new Promise<void>((resolve) => {
          // Resolved when the consumer takes the message: at most one in hand, the rest wait as credit.
          buffered.push(message as Message<T>);
          taken = resolve;
          wake?.();
        }),
      options,
    );
    const finish = async (): Promise<void> => {
      done = true;
      wake?.();
      await subscription.unsubscribe();
    };
    return {
      id: subscription.id,
      pattern,
      unsubscribe: finish,
      [Symbol.asyncIterator]: () => ({
        next: async (): Promise<IteratorResult<Message<T>>> => {
          for (;;) {
            const message = buffered.shift();
            if (message !== undefined) {
              taken?.();
              return { value: message, done: false };
            }
            if (done || !this.subscriptions.has(subscription.id)) return { value: undefined, done: true };
            await new Promise<void>((resolve) => (wake = resolve));
          }
        },
        return: async (): Promise<IteratorResult<Message<T>>> => {
          await finish();
          return { value: undefined, done: true };
        },
      }),
    };
  }

  /** A new active connection (or none): resubscribe everything there from the known positions. */
  setConnection(connection: BrokerConnection | undefined): void {
    this.connection = connection;
    for (const state of this.subscriptions.values()) {
      state.connection = undefined;
      if (connection !== undefined) this.register(state, connection);
    }
  }

  onMessage(connection: BrokerConnection, frame: MessageFrame): void {
    const state = this.subscriptions.get(frame.subscription);
    // Frames from a connection the subscription has left are stale.
    if (state === undefined || state.connection !== connection) return;
    state.receive(frame.batches);
  }

  /** Ends every subscription (on client close). */
  closeAll(error: RelayError): void {
    for (const state of [...this.subscriptions.values()]) this.fail(state, error);
  }

  private register(state: SubscriptionState, connection: BrokerConnection): void {
    state.connection = connection;
    const request = {
      type: 'subscribe' as const,
      subscription: state.id,
      pattern: state.pattern,
      from: state.resumeFrom(),
      resume: state.resumeCursors(),
      credit: state.initialCredit(),
    };
    // Positions are applied synchronously: messages may follow the reply in the same read.
    connection.request(request, (reply) => this.confirmed(state, reply)).catch((err: unknown) => {
      const error = err instanceof RelayError ? err : new RelayError('INTERNAL', String(err));
      // A lost connection resubscribes on the next one; a refusal ends the subscription.
      if (!error.retriable && error.code !== 'TIMEOUT') this.fail(state, error);
    });
  }

  /** The broker confirmed a (re)subscription: take its start positions and resets. */
  private confirmed(state: SubscriptionState, reply: { type: string; cursors?: Cursor[]; resets?: Cursor[] }): void {
    if (reply.type !== 'subscribed' || !state.active) return;
    for (const reset of reply.resets ?? []) {
      // The broker's log of this partition started over: never a silent skip; say so and follow it.
      const key = cursorKey(reset.topic, reset.partition);
      const expected = state.next.get(key)?.offset ?? reset.offset;
      state.next.set(key, reset);
      this.counters.gaps++;
      this.listener.gap({ topic: reset.topic, partition: reset.partition, expectedOffset: expected, firstAvailableOffset: reset.offset, reset: true });
    }
    for (const cursor of reply.cursors ?? []) {
      const key = cursorKey(cursor.topic, cursor.partition);
      if (!state.next.has(key)) state.next.set(key, cursor);
    }
    state.confirmed = true;
    for (const waiter of state.confirmedWaiters.splice(0)) waiter.resolve();
  }

  private async unsubscribe(state: SubscriptionState): Promise<void> {
    if (!this.subscriptions.delete(state.id)) return;
    state.active = false;
    state.queue.length = 0;
    const connection = state.connection;
    state.connection = undefined;
    if (connection?.open) {
      await connection.request({ type: 'unsubscribe', subscription: state.id }).catch(() => {
        // the connection closed meanwhile: the broker forgot the subscription with it
      });
    }
  }

  private fail(state: SubscriptionState, error: RelayError): void {
    if (!this.subscriptions.delete(state.id)) return;
    state.active = false;
    state.queue.length = 0;
    state.connection?.send({ type: 'unsubscribe', id: 0, subscription: state.id });
    for (const waiter of state.confirmedWaiters.splice(0)) waiter.reject(error);
  }
}

function checkFrom(from: StartPosition): void {
  if (from === 'new' || from === 'earliest') return;
  if (typeof from === 'object' && from !== null) {
    const value = 'offset' in from ? from.offset : 'time' in from ? from.time : undefined;
    if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return;
  }
  throw new RelayError('INVALID_ARGUMENT', 'from must be "new", "earliest", { offset: n } or { time: ms } with n, ms >= 0');
}
