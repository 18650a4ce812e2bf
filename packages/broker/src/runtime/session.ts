import { createHash } from 'node:crypto';
import {
  PROTOCOL_VERSION,
  RelayError,
  decodeClientFrame,
  encodeFrame,
  type Ack,
  type BrokerFrame,
  type ClusterView,
  type CommitFrame,
  type Cursor,
  type DeliveryBatch,
  type MetadataFrame,
  type NackFrame,
  type PublishBatch,
  type PublishFrame,
  type StoredMessageFrame,
  type SubscribeFrame,
  isWildcard,
} from '@relaymq/sdk/protocol';
import type { AppendOutcome, StoredMessage } from '../core/partition/partition.js';
import type { LogEngine } from '../engine/engine.js';
import type { BrokerObserver } from '../observability/observer.js';
import type { ResolvedBrokerOptions } from '../options.js';
import { TopicPermissions } from '../security/acl.js';
import type { Authenticator, Principal } from '../security/auth.js';
import type { SecurityCounters } from '../security/counters.js';
import { TokenBucket } from '../security/rate-limit.js';
import { Subscription } from './subscription.js';

/** What a session needs of the socket under it; `net/` adapts `ws` to this. */
export interface ClientSocket {
  /** Queues bytes; `onWritten` runs once they left the process (or failed). */
  send(bytes: Uint8Array, onWritten: (err?: Error) => void): void;
  /** Closes cleanly after queued data. */
  close(code: number, reason: string): void;
  /** Drops the connection at once. */
  terminate(): void;
}

/** What a session needs of the broker around it. */
export interface SessionContext {
  readonly options: ResolvedBrokerOptions;
  readonly engine: LogEngine;
  cluster(): ClusterView;
  now(): number;
  newId(): string;
  /** Whether the broker is draining; new work is refused. */
  draining(): boolean;
  /** Whether the broker can serve (`/readyz`): told to clients in `welcome` and `cluster` frames. */
  ready(): boolean;
  /** Checks hello tokens; undefined when the broker does not authenticate. */
  readonly authenticator: Authenticator | undefined;
  /** Security events, counted for the broker's stats. */
  readonly counters: SecurityCounters;
  /** Receives traffic and latency figures, when operations are enabled. */
  readonly observer?: BrokerObserver;
}

/** Durable position commits one session may have in flight; the SDK sends one at a time. */
const MAX_COMMITS_IN_FLIGHT = 16;

/** Most messages and data bytes in one `message` frame. */
const MAX_DELIVERY_BATCH = 1000;
/** A failed disk read for a subscriber is retried after this long. */
const READ_RETRY_MS = 1000;
const MAX_DELIVERY_BYTES = 512 * 1024;

/** WebSocket close codes used for fatal errors (RFC 6455 §7.4.1). */
const CLOSE_PROTOCOL_ERROR = 1002;
const CLOSE_POLICY = 1008;
const CLOSE_TOO_BIG = 1009;
const CLOSE_GOING_AWAY = 1001;

/** Counters of one session, summed into broker stats. */
export interface SessionStats {
  published: number;
  delivered: number;
  outboundBytes: number;
  subscriptions: number;
}

/** Longest timer Node keeps (about 24.8 days); later token expiries are checked again then. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The broker side of one client connection: handshake, publish with acks,
 * subscriptions with credit, heartbeats. A bad frame ends this session only.
 */
export class ClientSession {
  clientId = '';
  producerId = '';
  /** `authenticating`: hello received, its token being checked; nothing else may arrive yet. */
  private state: 'hello' | 'authenticating' | 'open' | 'closed' = 'hello';
  /** Who the connection authenticated as; undefined without authentication. */
  principal: Principal | undefined;
  private permissions = TopicPermissions.unrestricted;
  private readonly publishBucket: TokenBucket | undefined;
  private expiryTimer: ReturnType<typeof setTimeout> | undefined;
  /** Fires when the outbound queue stayed at the high-water mark too long. */
  private slowConsumerTimer: ReturnType<typeof setTimeout> | undefined;
  private lastInboundMs: number;
  private pingId = 0;
  private readonly subscriptions = new Map<number, Subscription>();
  /**
   * Subscriptions whose `subscribe` is still placing cursors (a time lookup may read the disk,
   * a durable one reads stored positions); an unsubscribe that overtakes one removes it.
   */
  private readonly starting = new Set<number>();
  /** Subscriptions waiting for a read from disk. */
  private readonly reading = new Set<Subscription>();
  private commitsInFlight = 0;
  private outboundBytes = 0;
  private pumpScheduled = false;
  /** Settles once every batch received so far was handed to the engine (undefined: nothing pending). */
  private handOffChain: Promise<void> | undefined;
  private published = 0;
  private delivered = 0;
  private readonly helloTimer: ReturnType<typeof setTimeout>;
  private readonly onAppended = (topic: string, partition: number): void => this.appended(topic, partition);

  constructor(
    private readonly socket: ClientSocket,
    private readonly ctx: SessionContext,
    private readonly onEnd: (session: ClientSession) => void,
  ) {
    this.lastInboundMs = ctx.now();
    this.helloTimer = setTimeout(() => {
      if (ctx.authenticator !== undefined) ctx.counters.authFailures++;
      this.fail(new RelayError('UNAUTHORIZED', `no valid hello within ${ctx.options.helloTimeoutMs} ms`));
    }, ctx.options.helloTimeoutMs);
    const { publishRateLimit, publishBurst } = ctx.options;
    if (publishRateLimit > 0) this.publishBucket = new TokenBucket(publishRateLimit, publishBurst, ctx.now());
  }

  /**
   * Refuses a connection before it gets a session (a connection limit): an
   * `error` frame with `error.code`, then close.
   */
  static refuse(socket: ClientSocket, error: RelayError): void {
    socket.send(encodeFrame({ type: 'error', code: error.code, message: error.message }), () => {});
    socket.close(CLOSE_POLICY, error.code);
  }

  stats(): SessionStats {
    return {
      published: this.published,
      delivered: this.delivered,
      outboundBytes: this.outboundBytes,
      subscriptions: this.subscriptions.size,
    };
  }

  /** One binary WebSocket message arrived. */
  receive(bytes: Uint8Array): void {
    if (this.state === 'closed') return;
    this.lastInboundMs = this.ctx.now();
    try {
      const frame = decodeClientFrame(bytes, this.ctx.options.maxPayload);
      if (this.state === 'hello') {
        if (frame.type !== 'hello') throw new RelayError('PROTOCOL_ERROR', `expected hello, got ${frame.type}`);
        this.hello(frame.version, frame.clientId, frame.producerId, frame.token);
        return;
      }
      if (this.state === 'authenticating') throw new RelayError('PROTOCOL_ERROR', `${frame.type} sent before welcome`);
      switch (frame.type) {
        case 'hello':
          throw new RelayError('PROTOCOL_ERROR', 'hello sent twice');
        case 'publish':
          this.publish(frame);
          return;
        case 'subscribe':
          void this.subscribe(frame);
          return;
        case 'credit':
          this.credit(frame.subscription, frame.credit);
          return;
        case 'unsubscribe':
          this.unsubscribe(frame.id, frame.subscription);
          return;
        case 'commit':
          this.commit(frame);
          return;
        case 'metadata':
          this.metadata(frame);
          return;
        case 'ping':
          this.send({ type: 'pong', id: frame.id });
          return;
        case 'pong':
          return;
      }
    } catch (err) {
      this.fail(err);
    }
  }

  /** A text message arrived: the protocol is binary only. */
  receiveText(): void {
    this.fail(new RelayError('PROTOCOL_ERROR', 'text frames are not part of the protocol; send binary frames'));
  }

  /** Called by the broker every `heartbeatMs`: ping, or drop a peer silent for two intervals. */
  heartbeat(nowMs: number): void {
    if (this.state !== 'open') return;
    if (nowMs - this.lastInboundMs > 2 * this.ctx.options.heartbeatMs) {
      this.ctx.options.log('info', 'dropping silent client', { clientId: this.clientId });
      this.socket.terminate();
      this.ended();
      return;
    }
    this.send({ type: 'ping', id: ++this.pingId });
  }

  /** Pushes the current membership to the client (discovery). */
  pushCluster(cluster: ClusterView, ready: boolean): void {
    if (this.state === 'open') this.send({ type: 'cluster', cluster, ready });
  }

  /** Tells the client to move to another broker; the broker closes it later if it does not. */
  goaway(message: string): void {
    if (this.state === 'closed') return;
    this.send({ type: 'goaway', code: 'SHUTTING_DOWN', message });
  }

  /** Closes the connection now (after `goaway` and the drain period). */
  close(): void {
    if (this.state === 'closed') return;
    this.socket.close(CLOSE_GOING_AWAY, 'SHUTTING_DOWN');
    this.ended();
  }

  /** The socket closed, from either side. */
  ended(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.helloTimer);
    clearTimeout(this.expiryTimer);
    clearTimeout(this.slowConsumerTimer);
    this.ctx.engine.off('appended', this.onAppended);
    this.subscriptions.clear();
    this.starting.clear();
    this.onEnd(this);
  }

  private hello(version: number, clientId: string, producerId: string, token: string | undefined): void {
    if (version !== PROTOCOL_VERSION) {
      throw new RelayError('UNSUPPORTED_VERSION', `protocol version ${version} is not supported; this broker speaks ${PROTOCOL_VERSION}`);
    }
    if (this.ctx.draining()) throw new RelayError('SHUTTING_DOWN', 'broker is shutting down');
    const { authenticator } = this.ctx;
    if (authenticator === undefined) {
      this.welcome(clientId, producerId);
      return;
    }
    // The hello timer keeps running while the token is checked: authentication is bounded too.
    this.state = 'authenticating';
    authenticator.authenticate(token).then(
      (principal) => {
        if (this.state !== 'authenticating') return;
        this.principal = principal;
        this.permissions = TopicPermissions.of(this.ctx.options.acl, principal.name);
        if (principal.expiresAtMs !== undefined) this.expireAt(principal.expiresAtMs);
        this.welcome(clientId, producerId);
      },
      (err: unknown) => {
        if (this.state !== 'authenticating') return;
        this.ctx.counters.authFailures++;
        this.fail(err);
      },
    );
  }

  /** Closes the connection with `UNAUTHORIZED` when its credential expires; the SDK reconnects with a fresh token. */
  private expireAt(expiresAtMs: number): void {
    const delayMs = expiresAtMs - this.ctx.now();
    this.expiryTimer = setTimeout(
      () => (delayMs > MAX_TIMER_MS ? this.expireAt(expiresAtMs) : this.fail(new RelayError('UNAUTHORIZED', 'token expired'))),
      Math.max(0, Math.min(delayMs, MAX_TIMER_MS)),
    );
    this.expiryTimer.unref?.();
  }

  private welcome(clientId: string, producerId: string): void {
    clearTimeout(this.helloTimer);
    this.clientId = clientId === '' ? this.ctx.newId() : clientId;
    this.producerId = producerId === '' ? this.clientId : producerId;
    this.state = 'open';
    this.ctx.engine.on('appended', this.onAppended);
    const { maxPayload, dedupeWindow, maxCredit, heartbeatMs } = this.ctx.options;
    this.send({
      type: 'welcome',
      version: PROTOCOL_VERSION,
      brokerId: this.ctx.options.id,
      clientId: this.clientId,
      producerId: this.producerId,
      cluster: this.ctx.cluster(),
      ready: this.ctx.ready(),
      limits: { maxPayload, dedupeWindow, maxCredit },
      heartbeatMs,
    });
  }

  private publish(frame: PublishFrame): void {
    const receivedAt = performance.now();
    const answers = frame.batches.map((batch) => this.publishBatch(batch));
    // Answers go out in the order of the messages: a nack never overtakes the acks before it.
    void Promise.all(answers).then((groups) => {
      let acks: Ack[] = [];
      for (const answer of groups.flat()) {
        if (!('type' in answer)) {
          acks.push(answer);
          continue;
        }
        if (acks.length > 0) this.send({ type: 'ack', acks });
        acks = [];
        this.send(answer);
      }
      if (acks.length > 0) this.send({ type: 'ack', acks });
      if (groups.some((g) => g.length > 0)) this.ctx.observer?.publishLatency((performance.now() - receivedAt) / 1000);
    });
  }

  /** Appends one batch and answers it: ranges of acks, a nack per refused message, nothing for `ack: none`. */
  private async publishBatch(batch: PublishBatch): Promise<Array<Ack | NackFrame>> {
    try {
      if (this.ctx.draining()) throw new RelayError('SHUTTING_DOWN', 'broker is shutting down; publish elsewhere');
      if (!this.permissions.mayPublish(batch.topic)) {
        this.ctx.counters.denied++;
        throw new RelayError('FORBIDDEN', `${this.principalName()} may not publish to ${batch.topic}`);
      }
      if (this.publishBucket !== undefined && !this.publishBucket.take(batch.messages.length, this.ctx.now())) {
        this.ctx.counters.rateLimited++;
        throw new RelayError('RATE_LIMITED', `publishing faster than ${this.ctx.options.publishRateLimit} messages/s; retry later`);
      }
      const outcomes = await this.handOff(batch);
      this.published += batch.messages.length;
      if (this.ctx.observer !== undefined) this.ctx.observer.published(batch.topic, batch.messages.length, dataBytes(batch.messages));
      if (batch.ack === 'none') return [];
      const result = answers(batch, outcomes);
      // Forwarded: tell the client who leads, so its next publishes go there directly.
      const leader = this.ctx.engine.leaderOf?.(batch.topic, batch.partition);
      if (leader !== undefined && leader !== this.ctx.options.id) {
        for (const answer of result) if (!('type' in answer)) answer.leader = leader;
      }
      return result;
    } catch (err) {
      if (batch.ack === 'none') return [];
      const error = this.unlessNotReady(asRelayError(err));
      return batch.messages.map((_, i) => nack(batch.firstId + i, error));
    }
  }

  /**
   * Hands a batch to the engine in arrival order. The engine orders appends
   * by call, so a batch whose topic must first be created (asynchronously)
   * holds back every later batch of this session until it was handed over —
   * but nobody waits for an append to complete before the next is handed over.
   */
  private handOff(batch: PublishBatch): Promise<AppendOutcome[]> {
    const known = this.ctx.engine.partitionCount(batch.topic);
    if (this.handOffChain === undefined && known !== undefined) return this.append(batch, known);
    const handedOver = (this.handOffChain ?? Promise.resolve()).then(async () => {
      const partitions = this.ctx.engine.partitionCount(batch.topic) ?? (await this.ctx.engine.ensureTopic(batch.topic)).partitions;
      return { outcomes: this.append(batch, partitions) }; // wrapped: the chain must not wait for the append
    });
    const chain = handedOver.then(
      () => undefined,
      () => undefined,
    );
    this.handOffChain = chain;
    void chain.then(() => {
      if (this.handOffChain === chain) this.handOffChain = undefined;
    });
    return handedOver.then((handed) => handed.outcomes);
  }

  private append(batch: PublishBatch, partitions: number): Promise<AppendOutcome[]> {
    if (batch.partition >= partitions) {
      return Promise.reject(
        new RelayError('INVALID_PARTITION', `topic ${batch.topic} has ${partitions} partitions; partition ${batch.partition} does not exist`),
      );
    }
    // Each incarnation is its own producer for deduplication (see PublishBatch.incarnation).
    // Authenticated producers are scoped to their principal: nobody can claim another's producer id to disturb its deduplication.
    const owned = this.owned(this.producerId);
    const producerId = batch.incarnation === undefined ? owned : `${owned}#${batch.incarnation}`;
    const requests = batch.messages.map((m, i) => ({
      producerId,
      seq: batch.firstSeq + i,
      key: m.key,
      headers: m.headers,
      data: m.data,
      encoding: m.encoding ?? 'raw',
    }));
    return this.ctx.engine.append(batch.topic, batch.partition, requests, batch.ack);
  }

  /**
   * A broker that cannot serve says so (`NOT_READY`) instead of passing on why
   * it could not (a metadata leader it never found): the client then uses
   * another broker rather than waiting on this one.
   */
  private unlessNotReady(error: RelayError): RelayError {
    if (error.code !== 'NO_QUORUM' && error.code !== 'TIMEOUT' && error.code !== 'NOT_LEADER') return error;
    if (this.ctx.draining() || this.ctx.ready()) return error;
    return new RelayError('NOT_READY', `broker ${this.ctx.options.id} is not ready (not joined, or no metadata leader known): ${error.message}`);
  }

  private async subscribe(frame: SubscribeFrame): Promise<void> {
    if (this.subscriptions.has(frame.subscription) || this.starting.has(frame.subscription)) {
      this.send({ type: 'error', id: frame.id, code: 'INVALID_ARGUMENT', message: `subscription ${frame.subscription} already exists` });
      return;
    }
    const refuse = (code: 'FORBIDDEN' | 'LIMIT_EXCEEDED', message: string): void => {
      this.send({ type: 'error', id: frame.id, code, message });
    };
    if (this.subscriptions.size >= this.ctx.options.maxSubscriptionsPerConnection) {
      this.ctx.counters.subscriptionsRejected++;
      refuse('LIMIT_EXCEEDED', `a connection may hold ${this.ctx.options.maxSubscriptionsPerConnection} subscriptions (maxSubscriptionsPerConnection)`);
      return;
    }
    // An exact topic is checked now; a wildcard is filtered per topic, so it never yields a topic the principal may not read.
    if (!isWildcard(frame.pattern) && !this.permissions.mayRead(frame.pattern)) {
      this.ctx.counters.denied++;
      refuse('FORBIDDEN', `${this.principalName()} may not subscribe to ${frame.pattern}`);
      return;
    }
    const credit = Math.min(frame.credit, this.ctx.options.maxCredit);
    const permissions = this.permissions;
    const subscription = new Subscription(frame.subscription, frame.pattern, frame.from, credit, (topic) => permissions.mayRead(topic));
    this.starting.add(frame.subscription);
    let started: Awaited<ReturnType<Subscription['start']>>;
    try {
      // Durable: stored positions come first, except where the client resumes from a position of its own.
      const resume =
        frame.durable === undefined
          ? frame.resume
          : withStoredPositions(frame.resume, await this.ctx.engine.positions(this.owned(frame.durable), frame.pattern));
      started = await subscription.start(this.ctx.engine, resume);
    } catch (err) {
      if (!this.starting.delete(frame.subscription)) return; // unsubscribed or closed meanwhile
      const error = asRelayError(err);
      this.send({ type: 'error', id: frame.id, code: error.code, message: error.message });
      return;
    }
    if (!this.starting.delete(frame.subscription) || this.state !== 'open') return;
    const { cursors, resets } = started;
    this.subscriptions.set(frame.subscription, subscription);
    const reply: BrokerFrame = { type: 'subscribed', id: frame.id, subscription: frame.subscription, cursors };
    if (resets.length > 0) reply.resets = resets;
    this.send(reply);
    this.schedulePump();
  }

  private credit(id: number, credit: number): void {
    const subscription = this.subscriptions.get(id);
    if (subscription === undefined) return; // credit racing an unsubscribe is harmless
    subscription.credit = Math.min(subscription.credit + credit, this.ctx.options.maxCredit);
    this.schedulePump();
  }

  private unsubscribe(id: number, subscription: number): void {
    if (!this.subscriptions.delete(subscription) && !this.starting.delete(subscription)) {
      this.send({ type: 'error', id, code: 'SUBSCRIPTION_NOT_FOUND', message: `no subscription ${subscription}` });
      return;
    }
    this.send({ type: 'unsubscribed', id, subscription });
  }

  /** Stores durable positions, answering `committed` once the engine holds them. */
  private commit(frame: CommitFrame): void {
    const refuse = (error: RelayError): void => this.send({ type: 'error', id: frame.id, code: error.code, message: error.message });
    if (this.commitsInFlight >= MAX_COMMITS_IN_FLIGHT) {
      refuse(new RelayError('LIMIT_EXCEEDED', `more than ${MAX_COMMITS_IN_FLIGHT} commits in flight; wait for their answers`));
      return;
    }
    for (const position of frame.positions) {
      if (!this.permissions.mayRead(position.topic)) {
        this.ctx.counters.denied++;
        return refuse(new RelayError('FORBIDDEN', `${this.principalName()} may not read ${position.topic}`));
      }
      const partitions = this.ctx.engine.partitionCount(position.topic);
      if (partitions === undefined) return refuse(new RelayError('INVALID_TOPIC', `topic ${position.topic} does not exist`));
      if (position.partition >= partitions) {
        return refuse(new RelayError('INVALID_PARTITION', `topic ${position.topic} has ${partitions} partitions; partition ${position.partition} does not exist`));
      }
    }
    this.commitsInFlight++;
    void this.ctx.engine.commitPositions(this.owned(frame.durable), frame.positions).then(
      () => this.send({ type: 'committed', id: frame.id }),
      (err: unknown) => refuse(asRelayError(err)),
    ).finally(() => this.commitsInFlight--);
  }

  private metadata(frame: MetadataFrame): void {
    const { engine } = this.ctx;
    const denied = frame.topics.find((topic) => !this.permissions.mayRead(topic) && !this.permissions.mayPublish(topic));
    if (denied !== undefined) {
      this.ctx.counters.denied++;
      this.send({ type: 'error', id: frame.id, code: 'FORBIDDEN', message: `${this.principalName()} may not use topic ${denied}` });
      return;
    }
    Promise.all(frame.topics.map((topic) => engine.ensureTopic(topic))).then(
      (topics) => {
        if (engine.leaderOf !== undefined) {
          for (const info of topics) info.leaders = Array.from({ length: info.partitions }, (_, p) => engine.leaderOf?.(info.topic, p) ?? '');
        }
        this.send({ type: 'topics', id: frame.id, topics });
      },
      (err: unknown) => {
        const error = this.unlessNotReady(asRelayError(err));
        this.send({ type: 'error', id: frame.id, code: error.code, message: error.message });
      },
    );
  }

  private appended(topic: string, partition: number): void {
    let wanted = false;
    for (const subscription of this.subscriptions.values()) {
      if (!subscription.matches(topic)) continue;
      subscription.cursorFor(this.ctx.engine, topic, partition);
      wanted = true;
    }
    if (wanted) this.schedulePump();
  }

  private schedulePump(): void {
    if (this.pumpScheduled || this.state !== 'open') return;
    this.pumpScheduled = true;
    // Coalesce: many appends in one turn of the event loop become one delivery pass.
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /**
   * Sends what credit and the socket allow; never buffers messages of its own.
   * Reads served from memory go out at once; a read that needs the disk
   * pauses its subscription until it completes (one at a time, in order).
   */
  private pump(): void {
    if (this.state !== 'open') return;
    const { engine, options } = this.ctx;
    for (const subscription of this.subscriptions.values()) {
      while (!this.reading.has(subscription) && subscription.credit > 0 && this.outboundBytes < options.outboundHighWaterBytes) {
        const batches: DeliveryBatch[] = [];
        let bytes = 0;
        let count = 0;
        for (const cursor of subscription.cursors.values()) {
          const room = Math.min(subscription.credit, MAX_DELIVERY_BATCH) - count;
          if (room <= 0 || bytes >= MAX_DELIVERY_BYTES) break;
          const stored = engine.read(cursor.topic, cursor.partition, cursor.offset, room, MAX_DELIVERY_BYTES - bytes);
          if (!Array.isArray(stored)) {
            this.readFromDisk(subscription, cursor, stored);
            break;
          }
          const batch = this.advance(cursor, stored);
          if (batch === undefined) continue;
          batches.push(batch);
          for (const message of stored) bytes += message.data.length;
          count += stored.length;
        }
        if (count === 0) break;
        this.deliver(subscription, batches, count);
      }
    }
  }

  /** Delivers a disk read once it completes, then pumps again; a failed read is retried a little later. */
  private readFromDisk(subscription: Subscription, cursor: Cursor, reading: Promise<StoredMessage[]>): void {
    this.reading.add(subscription);
    const live = (): boolean => this.state === 'open' && this.subscriptions.get(subscription.id) === subscription;
    reading.then(
      (stored) => {
        this.reading.delete(subscription);
        if (!live()) return;
        const batch = this.advance(cursor, stored);
        if (batch !== undefined) this.deliver(subscription, [batch], stored.length);
        this.schedulePump();
      },
      (err: unknown) => {
        this.ctx.options.log('warn', 'reading for a subscriber failed; retrying', { topic: cursor.topic, partition: cursor.partition, offset: cursor.offset, error: String(err) });
        setTimeout(() => {
          this.reading.delete(subscription);
          if (live()) this.schedulePump();
        }, READ_RETRY_MS).unref();
      },
    );
  }

  /** Moves `cursor` past `stored` and returns them as a delivery batch (none when empty). */
  private advance(cursor: Cursor, stored: StoredMessage[]): DeliveryBatch | undefined {
    const first = stored[0];
    if (first === undefined) return undefined;
    cursor.offset = first.offset + stored.length;
    return { topic: cursor.topic, partition: cursor.partition, firstOffset: first.offset, messages: stored.map(toFrame) };
  }

  private deliver(subscription: Subscription, batches: DeliveryBatch[], count: number): void {
    subscription.credit -= count;
    this.delivered += count;
    const observer = this.ctx.observer;
    if (observer !== undefined) for (const batch of batches) observer.delivered(batch.topic, batch.messages.length, dataBytes(batch.messages));
    this.send({ type: 'message', subscription: subscription.id, batches });
  }

  private send(frame: BrokerFrame): void {
    if (this.state === 'closed') return;
    const bytes = encodeFrame(frame);
    const { outboundHighWaterBytes, maxOutboundBytes, slowConsumerTimeoutMs } = this.ctx.options;
    if (this.outboundBytes + bytes.length > maxOutboundBytes) {
      this.cutSlowConsumer(`more than ${maxOutboundBytes} bytes queued (maxOutboundBytes)`);
      return;
    }
    this.outboundBytes += bytes.length;
    if (this.outboundBytes >= outboundHighWaterBytes && this.slowConsumerTimer === undefined) {
      this.slowConsumerTimer = setTimeout(() => {
        this.cutSlowConsumer(`the outbound queue stayed at ${outboundHighWaterBytes} bytes for ${slowConsumerTimeoutMs} ms (slowConsumerTimeoutMs)`);
      }, slowConsumerTimeoutMs);
    }
    this.socket.send(bytes, () => {
      const wasBlocked = this.outboundBytes >= outboundHighWaterBytes;
      this.outboundBytes -= bytes.length;
      if (wasBlocked && this.outboundBytes < outboundHighWaterBytes) {
        clearTimeout(this.slowConsumerTimer);
        this.slowConsumerTimer = undefined;
        this.schedulePump();
      }
    });
  }

  /**
   * Drops a connection that does not read: its queue would otherwise grow.
   * The error frame could not get through the full queue, so the code goes in the close reason.
   */
  private cutSlowConsumer(why: string): void {
    if (this.state === 'closed') return;
    this.ctx.counters.slowConsumersCut++;
    this.ctx.options.log('warn', 'cutting off slow consumer', { clientId: this.clientId, why });
    this.socket.close(CLOSE_POLICY, 'SLOW_CONSUMER');
    // A peer that reads nothing never completes the closing handshake either.
    const terminate = setTimeout(() => this.socket.terminate(), 1000);
    terminate.unref?.();
    this.ended();
  }

  /**
   * A client-chosen name (producer id, durable subscription) in the
   * principal's own namespace, so nobody can claim another principal's
   * producer or durable positions. Unchanged without authentication; with it,
   * an opaque digest that fits the grammar and length of either name.
   */
  private owned(name: string): string {
    if (this.principal === undefined) return name;
    return `p-${createHash('sha256').update(this.principal.name).update('\0').update(name).digest('base64url')}`;
  }

  private principalName(): string {
    return this.principal === undefined ? 'this connection' : `principal ${JSON.stringify(this.principal.name)}`;
  }

  /** Ends the session because of `err`: an error frame, then close. */
  private fail(err: unknown): void {
    if (this.state === 'closed') return;
    const error = asRelayError(err);
    if (error.code === 'INTERNAL') this.ctx.options.log('error', 'session failed', { clientId: this.clientId, error: String(err) });
    else this.ctx.options.log('debug', 'closing client after error', { clientId: this.clientId, code: error.code, message: error.message });
    this.send({ type: 'error', code: error.code, message: error.message });
    const closeCode =
      error.code === 'PROTOCOL_ERROR' ? CLOSE_PROTOCOL_ERROR : error.code === 'PAYLOAD_TOO_LARGE' ? CLOSE_TOO_BIG : CLOSE_POLICY;
    this.socket.close(closeCode, error.code);
    this.ended();
  }
}

function dataBytes(messages: ReadonlyArray<{ data: Uint8Array }>): number {
  let bytes = 0;
  for (const message of messages) bytes += message.data.length;
  return bytes;
}

function asRelayError(err: unknown): RelayError {
  if (err instanceof RelayError) return err;
  return new RelayError('INTERNAL', 'internal broker error', { cause: err });
}

/** The client's resume cursors, plus the stored durable positions of partitions it did not name. */
function withStoredPositions(resume: readonly Cursor[], stored: readonly Cursor[]): Cursor[] {
  const named = new Set(resume.map((c) => `${c.partition}:${c.topic}`));
  return [...resume, ...stored.filter((c) => !named.has(`${c.partition}:${c.topic}`))];
}

function nack(id: number, error: RelayError): NackFrame {
  const frame: NackFrame = { type: 'nack', id, code: error.code, message: error.message };
  if (error.details.leader !== undefined) frame.leader = error.details.leader;
  return frame;
}

/** Collapses per-message outcomes into ack ranges and nacks, in message order. */
function answers(batch: PublishBatch, outcomes: AppendOutcome[]): Array<Ack | NackFrame> {
  const result: Array<Ack | NackFrame> = [];
  let range: Ack | undefined;
  outcomes.forEach((outcome, i) => {
    const id = batch.firstId + i;
    if (outcome.kind === 'stored' || outcome.kind === 'duplicate') {
      const duplicate = outcome.kind === 'duplicate';
      if (range !== undefined && range.duplicate === duplicate && range.offset + range.count === outcome.offset && range.id + range.count === id) {
        range.count++;
      } else {
        range = { id, offset: outcome.offset, count: 1, duplicate };
        result.push(range);
      }
      return;
    }
    range = undefined;
    const seq = batch.firstSeq + i;
    if (outcome.kind === 'gap') {
      const error = new RelayError('SEQUENCE_GAP', `seq ${seq} skips ahead; expected ${outcome.expectedSeq}`);
      result.push({ ...nack(id, error), expectedSeq: outcome.expectedSeq });
    } else {
      result.push(nack(id, new RelayError('SEQUENCE_TOO_OLD', `seq ${seq} is older than the deduplication window (next is ${outcome.expectedSeq})`)));
    }
  });
  return result;
}

/** A stored message as it goes on the wire; its offset is implied by its batch. */
function toFrame(message: StoredMessage): StoredMessageFrame {
  const frame: StoredMessageFrame = { timestamp: message.timestamp, data: message.data };
  if (message.encoding !== 'raw') frame.encoding = message.encoding;
  if (message.key !== undefined) frame.key = message.key;
  if (message.headers !== undefined) frame.headers = message.headers;
  return frame;
}
