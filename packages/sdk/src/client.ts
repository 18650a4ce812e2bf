import { tracedPublish } from './publish/tracing.js';
import { tracedHandler } from './subscribe/tracing.js';
import { EventEmitter } from 'eventemitter3';
import { RelayError, isErrorCode, type DialFailure, type ErrorCode } from './protocol/index.js';
import { describeFailures, failureOf } from './transport/dial-failure.js';
import { BrokerPool } from './connection/pool.js';
import type { BrokerConnection } from './connection/connection.js';
import type { BrokerRef, ClientEvents, ErrorContext } from './events.js';
import { resolveClientOptions, type ClientOptions, type ResolvedClientOptions } from './options.js';
import { Publisher, type PublishOptions, type PublishStats } from './publish/publisher.js';
import type { PublishReceipt } from './publish/outbox.js';
import {
  Subscriber,
  type MessageHandler,
  type MessageStream,
  type SubscribeOptions,
  type SubscribeStats,
  type Subscription,
} from './subscribe/subscriber.js';
import type { WebSocketConstructor } from './transport/websocket.js';

/** A snapshot of client counters and state. */
export interface ClientStats {
  state: 'connecting' | 'connected' | 'disconnected' | 'closed';
  /** The broker publishes and subscriptions go to. */
  activeBroker: BrokerRef | undefined;
  /** Brokers with an open pooled connection (active and standby). */
  connectedBrokers: BrokerRef[];
  /** Seeds and discovered brokers. */
  knownBrokers: string[];
  /** Times traffic moved to another broker. */
  failovers: number;
  /** Failovers and disconnections, counted by the code of their reason. */
  failoversByReason: Partial<Record<ErrorCode, number>>;
  /** Failed dials. */
  reconnectAttempts: number;
  /** Total time with no active broker, in ms (including the current stretch). */
  disconnectedMs: number;
  /** Last ping round trip to the active broker. */
  rttMs: number | undefined;
  publish: PublishStats;
  subscribe: SubscribeStats;
}

const ref = (connection: BrokerConnection): BrokerRef => ({ id: connection.brokerId, url: connection.url });

/**
 * A relaymq client: a pool of broker connections with failover, idempotent
 * ordered publishing through a bounded outbox, and subscriptions that resume
 * where they left off. Create it with `connect()`, or with `createClient()`
 * to attach listeners before the first dial.
 *
 * Events: `client.on(name, listener)`, `once` and `off` (an `eventemitter3`
 * emitter), typed by {@link ClientEvents}.
 *
 * @example
 * ```ts
 * const client = createClient({ brokers: ['ws://127.0.0.1:7401'] });
 * client.on('reconnecting', ({ url, cause }) => console.warn(`cannot reach ${url}: ${cause.message}`));
 * await client.start();
 * ```
 */
export class RelayClient extends EventEmitter<ClientEvents> {
  private readonly options: ResolvedClientOptions;
  private readonly pool: BrokerPool;
  private readonly publisher: Publisher;
  private readonly subscriber: Subscriber;
  private state: ClientStats['state'] = 'connecting';
  private failovers = 0;
  private readonly failoversByReason: Partial<Record<ErrorCode, number>> = {};
  private reconnectAttempts = 0;
  private disconnectedTotalMs = 0;
  private disconnectedSinceMs: number | undefined = Date.now();
  private closing: Promise<void> | undefined;
  /** The last dial failure of each URL since the client last had an active broker: what `NOT_CONNECTED` reports. */
  private readonly dialFailures = new Map<string, { failure: DialFailure; error: RelayError }>();
  /** URLs dialed since the client last had an active broker. */
  private readonly dialed = new Set<string>();

  /** Use `connect()` or `createClient()`; this constructor does not dial. */
  constructor(options: ClientOptions, fallbackWebSocket?: WebSocketConstructor) {
    super();
    this.options = resolveClientOptions(options, fallbackWebSocket);
    this.publisher = new Publisher(
      this.options,
      (reason) => this.pool.failover(reason),
      (brokerId) => {
        // A leader publishes are routed to is in use: its connection stays, or a slot reaches it.
        this.pool.prefer(brokerId);
        return this.pool.connectionTo(brokerId);
      },
      (brokerId) => this.pool.reach(brokerId),
    );
    this.subscriber = new Subscriber(
      {
        gap: (event) => this.emit('gap', event),
        handlerError: (error, message, attempts) => this.reportError(error, attempts === undefined ? { message } : { message, attempts }),
        commitRefused: (error, durable) => this.reportError(error, { durable }),
        publish: (topic, data, options) => this.publish(topic, data, options),
        deadLetterFailed: (error, message) => this.reportError(error, { message, deadLetter: true }),
        assigned: (event) => this.emit('assigned', event),
        revoked: (event) => this.emit('revoked', event),
        ended: (error, subscription) => this.reportError(error, { subscription }),
      },
      this.options.subscriptionCredit,
      this.options.requestTimeoutMs,
      this.options.commit,
      this.options.subscriptionCreditBytes,
      {
        want: (brokerId) => {
          // A leader subscriptions are served from is in use: its connection stays, or a link reaches it.
          this.pool.prefer(brokerId);
          const connection = this.pool.connectionTo(brokerId);
          // One that says it cannot serve (not ready) would refuse them: they stay where they are (the next refresh looks again).
          return connection !== undefined && this.pool.isReady(connection) ? connection : undefined;
        },
        // A group member's heartbeats keep failing on a broker cut off from the coordinator: leave it if another can serve.
        moveOff: (reason, settledMs) => this.pool.moveOff(reason, settledMs),
        // A durable subscribe a broker keeps refusing (its metadata behind): that subscription alone goes elsewhere.
        elsewhere: (brokerId) => this.pool.readyElsewhere(brokerId),
      },
    );
    this.pool = new BrokerPool(this.options, {
      activeChanged: (next, previous, reason) => this.activeChanged(next, previous, reason),
      dialing: (url, attempt) => {
        this.dialed.add(url);
        this.emit('connecting', { url, attempt });
      },
      dialFailed: (url, attempt, error) => {
        this.reconnectAttempts++;
        const cause = failureOf(url, error);
        this.dialFailures.delete(url); // re-inserted last: the most recent failure is the rejection's cause
        this.dialFailures.set(url, { failure: cause, error });
        this.emit('reconnecting', { url, attempt, error, cause });
      },
      brokersChanged: (added, removed) => this.emit('brokers', { added, removed }),
      gaveUp: () => void this.shutdown(this.notConnected('no broker reachable; reconnect attempts exhausted')),
      connectionOpened: (connection) => {
        this.publisher.connectionOpened(connection);
        // Subscriptions headed for that broker move there once it can serve them (see `want` above).
        if (this.pool.isReady(connection)) this.subscriber.connectionOpened(connection);
      },
      connectionClosed: (connection) => {
        this.publisher.connectionClosed(connection);
        this.subscriber.connectionClosed(connection);
      },
      awaitsAnswers: (connection) => this.publisher.awaitsAnswersOn(connection),
      frame: (connection, frame) => {
        switch (frame.type) {
          case 'ack':
            this.publisher.onAck(frame, connection);
            return;
          case 'nack':
            this.publisher.onNack(frame);
            return;
          case 'message':
            this.subscriber.onMessage(connection, frame);
            return;
          case 'assignment':
            this.subscriber.onAssignment(connection, frame);
            return;
          case 'error':
            // Only those naming a subscription come here: the broker ended it (its topic was deleted).
            if (frame.subscription !== undefined) this.subscriber.onEnded(connection, frame.subscription, new RelayError(isErrorCode(frame.code) ? frame.code : 'INTERNAL', frame.message), frame.topic);
            return;
          case 'cluster':
            this.pool.clusterFrame(connection, frame);
            return;
          case 'goaway': {
            // The broker is leaving: move traffic away now rather than when it closes.
            connection.close(new RelayError('SHUTTING_DOWN', `broker ${connection.brokerId} is going away: ${frame.message}`));
            return;
          }
        }
      },
    });
  }

  /**
   * Dials the brokers; resolves on the first connection, rejects with
   * `NOT_CONNECTED` after `connectTimeoutMs` (`connect()` calls it for you).
   */
  start(): Promise<void> {
    this.pool.start();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        const error = this.notConnected(`no broker reachable within ${this.options.connectTimeoutMs} ms`);
        void this.shutdown(error);
        reject(error);
      }, this.options.connectTimeoutMs);
      const onConnected = (): void => {
        cleanup();
        resolve();
      };
      const onClosed = ({ reason }: { reason: RelayError }): void => {
        cleanup();
        reject(reason);
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        this.off('connected', onConnected);
        this.off('closed', onClosed);
      };
      this.once('connected', onConnected);
      this.once('closed', onClosed);
    });
  }

  /**
   * Publishes `data` (bytes as they are, anything else msgpack-encoded) and
   * resolves once the broker acknowledged it at the ack level. Calls are
   * ordered per partition; through failovers nothing is stored twice.
   *
   * @example
   * ```ts
   * const { partition, offset } = await client.publish('orders.created', { id: 42 }, { key: 'c-7' });
   * ```
   */
  publish(topic: string, data: unknown, options?: PublishOptions): Promise<PublishReceipt> {
    if (this.state === 'closed') return Promise.reject(new RelayError('CLIENT_CLOSED', 'client is closed'));
    // In a PRODUCER span whose context travels in the headers (a no-op without an OpenTelemetry SDK).
    return tracedPublish(topic, options?.headers, (headers) => this.publisher.publish(topic, data, headers === options?.headers ? options : { ...options, headers }));
  }

  /**
   * Subscribes to a topic or pattern (`*` one segment, `>` the rest).
   * With a handler, messages are pushed to it one at a time; without one, the
   * result is an async iterable.
   *
   * @example
   * ```ts
   * await client.subscribe('orders.*', (msg) => console.log(msg.topic, msg.offset, msg.data), { from: 'earliest' });
   * for await (const msg of await client.subscribe('orders.>')) console.log(msg.data);
   * ```
   */
  subscribe<T = unknown>(pattern: string, handler: MessageHandler<T>, options?: SubscribeOptions): Promise<Subscription>;
  subscribe<T = unknown>(pattern: string, options?: SubscribeOptions): Promise<MessageStream<T>>;
  subscribe<T = unknown>(
    pattern: string,
    handlerOrOptions?: MessageHandler<T> | SubscribeOptions,
    options?: SubscribeOptions,
  ): Promise<Subscription | MessageStream<T>> {
    if (this.state === 'closed') return Promise.reject(new RelayError('CLIENT_CLOSED', 'client is closed'));
    if (typeof handlerOrOptions === 'function') {
      // Each message handled in a CONSUMER span continuing the publisher's trace (no-op without an OpenTelemetry SDK).
      return this.subscriber.subscribe(pattern, tracedHandler(handlerOrOptions as MessageHandler), options);
    }
    return this.subscriber.stream<T>(pattern, handlerOrOptions);
  }

  /** Counters and state, for dashboards and tests. */
  stats(): ClientStats {
    const active = this.pool.active;
    const now = Date.now();
    return {
      state: this.state,
      activeBroker: active === undefined ? undefined : ref(active),
      connectedBrokers: [...this.pool.connections].map(ref),
      knownBrokers: this.pool.knownBrokers,
      failovers: this.failovers,
      failoversByReason: { ...this.failoversByReason },
      reconnectAttempts: this.reconnectAttempts,
      disconnectedMs: this.disconnectedTotalMs + (this.disconnectedSinceMs === undefined ? 0 : now - this.disconnectedSinceMs),
      rttMs: active?.rttMs,
      publish: this.publisher.stats(),
      subscribe: this.subscriber.stats(),
    };
  }

  /**
   * Stops delivering to handlers, waits (up to `closeTimeoutMs`) for
   * unacknowledged publishes and for the positions of durable subscriptions
   * to be committed, then closes every connection. Publishes still pending
   * then fail with `CLIENT_CLOSED`.
   */
  close(): Promise<void> {
    return this.shutdown(new RelayError('CLIENT_CLOSED', 'closed by the application'));
  }

  private shutdown(reason: RelayError): Promise<void> {
    this.closing ??= (async () => {
      if (reason.code === 'CLIENT_CLOSED' && this.state !== 'closed') {
        let timer: ReturnType<typeof setTimeout> | undefined;
        // Handlers stop first, so the positions committed below are final; they are committed
        // after the outbox drained, so a handler's own publishes are stored before its position.
        this.subscriber.stopDelivery();
        await Promise.race([
          this.publisher.drained().then(() => this.subscriber.stopAndCommit()),
          new Promise<void>((resolve) => (timer = setTimeout(resolve, this.options.closeTimeoutMs))),
        ]);
        clearTimeout(timer);
      }
      this.state = 'closed';
      this.pool.close();
      this.publisher.failAll(new RelayError('CLIENT_CLOSED', 'client closed before the publish was acknowledged'));
      this.subscriber.closeAll(reason);
      this.emit('closed', { reason });
    })();
    return this.closing;
  }

  /**
   * Emits `error`; with no listener, prints it with `console.error` instead, since
   * an `eventemitter3` emitter drops an unheard `error` and a failure must never vanish.
   */
  private reportError(error: unknown, context: ErrorContext): void {
    if (this.listenerCount('error') > 0) {
      this.emit('error', error, context);
      return;
    }
    const where = context.message === undefined ? '' : ` (message ${context.message.topic}/${context.message.partition}@${context.message.offset})`;
    console.error(`relaymq: unhandled client error${where}; add client.on('error', …) to handle it:`, error);
  }

  /**
   * `NOT_CONNECTED` naming each URL dialed and its last cause (a dial still
   * under way counts as a timeout), so `connect()` says why, not only that.
   */
  private notConnected(summary: string): RelayError {
    const failures: DialFailure[] = [];
    for (const url of this.dialed) {
      failures.push(this.dialFailures.get(url)?.failure ?? { url, kind: 'timeout', message: 'no answer yet (still dialing)' });
    }
    const last = [...this.dialFailures.values()].at(-1)?.error;
    const message = failures.length === 0 ? summary : `${summary}: ${describeFailures(failures)}`;
    return new RelayError('NOT_CONNECTED', message, { dialFailures: failures, cause: last });
  }

  private activeChanged(next: BrokerConnection | undefined, previous: BrokerConnection | undefined, reason: RelayError | undefined): void {
    if (this.state === 'closed') return;
    if (reason !== undefined) this.failoversByReason[reason.code] = (this.failoversByReason[reason.code] ?? 0) + 1;
    this.publisher.setConnection(next);
    this.subscriber.setConnection(next);
    const now = Date.now();
    if (next === undefined) {
      this.state = 'disconnected';
      this.disconnectedSinceMs ??= now;
      if (previous !== undefined && reason !== undefined) this.emit('disconnected', { broker: ref(previous), reason });
      return;
    }
    if (this.disconnectedSinceMs !== undefined) {
      this.disconnectedTotalMs += now - this.disconnectedSinceMs;
      this.disconnectedSinceMs = undefined;
    }
    this.state = 'connected';
    this.dialFailures.clear();
    this.dialed.clear();
    if (previous !== undefined && reason !== undefined) {
      this.failovers++;
      this.emit('failover', { from: ref(previous), to: ref(next), reason });
    } else {
      this.emit('connected', { broker: ref(next) });
    }
  }
}
