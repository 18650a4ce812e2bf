import {
  PROTOCOL_VERSION,
  RelayError,
  decodeClientFrame,
  encodeFrame,
  type BrokerFrame,
  type ClusterView,
  type CommitFrame,
  type Cursor,
  type GroupCommitFrame,
  type GroupHeartbeatFrame,
  type MetadataFrame,
  type TopicInfo,
} from '@relaymq/sdk/protocol';
import type { GroupCommand } from '../core/metadata/groups.js';
import { TopicPermissions } from '../security/acl.js';
import { ClientAccess } from './client-access.js';
import { Delivery } from './delivery.js';
import { Outbound } from './outbound.js';
import { PublishHandler } from './publish.js';
import { asRelayError, missingRefusal, unlessNotReady, type ClientSocket, type SessionContext } from './session-context.js';

/** Durable position commits one session may have in flight; the SDK sends one at a time. */
const MAX_COMMITS_IN_FLIGHT = 16;

/** WebSocket close codes used for fatal errors (RFC 6455 §7.4.1). */
const CLOSE_PROTOCOL_ERROR = 1002;
const CLOSE_POLICY = 1008;
const CLOSE_TOO_BIG = 1009;
const CLOSE_GOING_AWAY = 1001;

/** A slow consumer gets this long to finish the closing handshake before its socket is dropped. */
const SLOW_CONSUMER_TERMINATE_MS = 1000;

/** Counters of one session, summed into broker stats. */
export interface SessionStats {
  published: number;
  /** Of them, stored through another broker that led their partition (see `PublishHandler.forwarded`). */
  forwarded: number;
  delivered: number;
  outboundBytes: number;
  subscriptions: number;
}

/** Longest timer Node keeps (about 24.8 days); later token expiries are checked again then. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The broker side of one client connection: handshake and authentication,
 * frame dispatch, heartbeats and the end of the connection. Publishing
 * (`publish.ts`), delivery (`delivery.ts`) and outbound backpressure
 * (`outbound.ts`) are its parts. A bad frame ends this session only.
 */
export class ClientSession {
  clientId = '';
  producerId = '';
  /** `authenticating`: hello received, its token being checked; nothing else may arrive yet. */
  private state: 'hello' | 'authenticating' | 'open' | 'closed' = 'hello';
  private access = ClientAccess.anonymous;
  private expiryTimer: ReturnType<typeof setTimeout> | undefined;
  private lastInboundMs: number;
  private pingId = 0;
  private commitsInFlight = 0;
  private readonly helloTimer: ReturnType<typeof setTimeout>;
  private readonly outbound: Outbound;
  private readonly publishing: PublishHandler;
  private readonly delivery: Delivery;

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
    this.outbound = new Outbound(socket, ctx.options, {
      ended: () => this.state === 'closed',
      drained: () => this.delivery.schedulePump(),
      slowConsumer: (why) => this.cutSlowConsumer(why),
    });
    const send = (frame: BrokerFrame): void => this.send(frame);
    const access = (): ClientAccess => this.access;
    this.publishing = new PublishHandler({ ctx, producerId: () => this.producerId, access, send });
    this.delivery = new Delivery({ ctx, open: () => this.state === 'open', access, send, sendEncoded: (bytes) => this.outbound.sendEncoded(bytes), hasRoom: () => this.outbound.hasRoom() });
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
      published: this.publishing.published,
      forwarded: this.publishing.forwarded,
      delivered: this.delivery.delivered,
      outboundBytes: this.outbound.bytes,
      subscriptions: this.delivery.count,
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
          this.publishing.publish(frame);
          return;
        case 'subscribe':
          void this.delivery.subscribe(frame);
          return;
        case 'credit':
          this.delivery.credit(frame.subscription, frame.credit, frame.bytes);
          return;
        case 'unsubscribe':
          this.delivery.unsubscribe(frame.id, frame.subscription);
          return;
        case 'commit':
          this.commit(frame);
          return;
        case 'group-commit':
        case 'group-heartbeat':
          this.groupRequest(frame);
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
    this.outbound.stop();
    this.delivery.stop();
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
        this.access = new ClientAccess(principal, TopicPermissions.of(this.ctx.options.acl, principal.name));
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
    this.delivery.start();
    const { maxPayload, dedupeWindow, maxCredit, heartbeatMs } = this.ctx.options;
    const { logId } = this.ctx.engine;
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
      ...(logId === undefined ? {} : { logId }),
    });
  }

  /** Stores durable positions, answering `committed` once the engine holds them. */
  private commit(frame: CommitFrame): void {
    const refuse = (error: RelayError): void => this.send({ type: 'error', id: frame.id, code: error.code, message: error.message });
    if (this.commitsInFlight >= MAX_COMMITS_IN_FLIGHT) {
      refuse(new RelayError('LIMIT_EXCEEDED', `more than ${MAX_COMMITS_IN_FLIGHT} commits in flight; wait for their answers`));
      return;
    }
    for (const position of frame.positions) {
      if (!this.access.permissions.mayRead(position.topic)) {
        this.ctx.counters.denied++;
        return refuse(new RelayError('FORBIDDEN', `${this.access.describe()} may not read ${position.topic}`));
      }
    }
    const { engine } = this.ctx;
    const positions: Cursor[] = [];
    /** Positions of an incarnation deleted since (the topic deleted, maybe created again): not stored. */
    const stale: Cursor[] = [];
    for (const position of frame.positions) {
      const { incarnation, ...bare } = position;
      // Looked at before the topic's partitions: a topic missing here (or with fewer partitions now) may be one
      // this broker has not applied yet, or the deleted incarnation's, which refuses only its own positions.
      const status = incarnation === undefined || engine.topicIncarnation === undefined ? undefined : (engine.incarnationStatus?.(position.topic, incarnation) ?? 'current');
      // This broker has not applied that incarnation's creation yet: the SDK retries (here or elsewhere).
      if (status === 'ahead') return refuse(new RelayError('NOT_READY', `topic ${position.topic} (incarnation ${incarnation}) is not known to this broker yet`));
      if (status === 'gone') {
        stale.push(position);
        continue;
      }
      const partitions = engine.partitionCount(position.topic);
      // Missing here, maybe only because this broker is behind: the metadata leader tells (counted in flight).
      if (partitions === undefined || position.partition >= partitions) {
        this.commitsInFlight++;
        void missingRefusal(this.ctx, position.topic, position.partition, partitions).then(refuse).finally(() => this.commitsInFlight--);
        return;
      }
      // An engine tracking no incarnations stores positions as before (and never an incarnation).
      if (engine.topicIncarnation === undefined) positions.push(bare);
      // The SDK's incarnation goes into the entry: one this broker took for current but deleted by the time
      // the entry is applied (this broker behind) stores nothing there either.
      else if (incarnation !== undefined) positions.push(position);
      // No incarnation (an older SDK, a topic the subscription first met in a message): the one checked here.
      else {
        const current = engine.topicIncarnation(position.topic);
        positions.push(current === undefined ? bare : { ...bare, incarnation: current });
      }
    }
    const answer = (): void => {
      if (stale.length === 0) return this.send({ type: 'committed', id: frame.id });
      // As Kafka's UNKNOWN_TOPIC_ID: the offsets are the deleted topic's, never the new one's starting point.
      const named = stale.slice(0, 5).map((c) => `${c.topic}/${c.partition} (incarnation ${c.incarnation})`).join(', ');
      refuse(new RelayError('INVALID_TOPIC', `${named}${stale.length > 5 ? ', …' : ''}: the topic was deleted since (it is another incarnation now); those positions were not stored`));
    };
    if (positions.length === 0) return answer();
    this.commitsInFlight++;
    void engine.commitPositions(this.access.owned(frame.durable), positions).then(
      answer,
      (err: unknown) => refuse(asRelayError(err)),
    ).finally(() => this.commitsInFlight--);
  }

  /**
   * A member's commit (fenced by its epochs), release, leave or heartbeat,
   * ordered by the group coordinator. `FENCED` answers a member the group no
   * longer knows, or positions of partitions it no longer owns (the others are stored).
   */
  private groupRequest(frame: GroupCommitFrame | GroupHeartbeatFrame): void {
    const refuse = (error: RelayError): void => this.send({ type: 'error', id: frame.id, code: error.code, message: error.message });
    if (this.commitsInFlight >= MAX_COMMITS_IN_FLIGHT) {
      refuse(new RelayError('LIMIT_EXCEEDED', `more than ${MAX_COMMITS_IN_FLIGHT} commits in flight; wait for their answers`));
      return;
    }
    const group = this.access.owned(frame.group);
    let command: GroupCommand;
    if (frame.type === 'group-heartbeat') command = { type: 'group-heartbeat', group, member: frame.member };
    else {
      const denied = frame.positions.find((p) => !this.access.permissions.mayRead(p.topic));
      if (denied !== undefined) {
        this.ctx.counters.denied++;
        return refuse(new RelayError('FORBIDDEN', `${this.access.describe()} may not read ${denied.topic}`));
      }
      command = frame.leave === true
        ? { type: 'group-leave', group, member: frame.member, positions: frame.positions }
        : { type: 'group-commit', group, member: frame.member, positions: frame.positions, release: frame.release === true };
    }
    this.commitsInFlight++;
    void this.ctx.engine.groupCommand(command).then(
      (result) => {
        if (result.kind === 'group-refused') return refuse(new RelayError(result.code, result.message));
        if (!result.known && command.type !== 'group-leave') {
          return refuse(new RelayError('FENCED', `member ${frame.member} is no longer in group ${frame.group} (its session expired); it must join again`));
        }
        if (result.fenced.length > 0) {
          const named = result.fenced.slice(0, 5).map((c) => `${c.topic}/${c.partition}`).join(', ');
          return refuse(new RelayError('FENCED', `member ${frame.member} of group ${frame.group} no longer owns ${named}${result.fenced.length > 5 ? ', …' : ''}: those positions were not stored`));
        }
        this.send({ type: 'committed', id: frame.id });
      },
      (err: unknown) => refuse(unlessNotReady(this.ctx, asRelayError(err))),
    ).finally(() => this.commitsInFlight--);
  }

  private metadata(frame: MetadataFrame): void {
    const { engine } = this.ctx;
    const { permissions } = this.access;
    const denied = frame.topics.find((topic) => !permissions.mayRead(topic) && !permissions.mayPublish(topic));
    if (denied !== undefined) {
      this.ctx.counters.denied++;
      this.send({ type: 'error', id: frame.id, code: 'FORBIDDEN', message: `${this.access.describe()} may not use topic ${denied}` });
      return;
    }
    // Creating a topic is publishing's: one the principal may only read is looked up, never created (as a denied publish creates nothing).
    const lookups = frame.create === false ? frame.topics : frame.topics.filter((topic) => !permissions.mayPublish(topic));
    const answer = async (): Promise<TopicInfo[]> => {
      // A lookup (a subscription looking for its leaders) never creates a topic: one deleted meanwhile stays deleted.
      if (lookups.length > 0) {
        const missing = lookups.find((topic) => engine.partitionCount(topic) === undefined);
        // A broker not ready may not have applied the topic's creation yet: it does not say the topic is gone.
        if (missing !== undefined && !this.ctx.ready()) throw new RelayError('NOT_READY', `topic ${missing} does not exist on this broker, which is not ready`);
        // Nor does a ready one behind its metadata leader (its peer links slow): the leader says.
        if (missing !== undefined && !((await engine.topicMissing?.(missing)) ?? true)) {
          throw new RelayError('NOT_READY', `topic ${missing} exists but this broker has not applied it yet`);
        }
        if (missing !== undefined) throw new RelayError('INVALID_TOPIC', `topic ${missing} does not exist`);
      }
      const topics = await Promise.all(frame.topics.map((topic) => engine.ensureTopic(topic)));
      const leaders = (await engine.leadersOf?.(topics)) ?? [];
      return topics.map((info, i) => (leaders[i] === undefined ? info : { ...info, leaders: leaders[i] }));
    };
    answer().then(
      (topics) => this.send({ type: 'topics', id: frame.id, topics }),
      (err: unknown) => {
        const error = unlessNotReady(this.ctx, asRelayError(err));
        this.send({ type: 'error', id: frame.id, code: error.code, message: error.message });
      },
    );
  }

  private send(frame: BrokerFrame): void {
    this.outbound.send(frame);
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
    const terminate = setTimeout(() => this.socket.terminate(), SLOW_CONSUMER_TERMINATE_MS);
    terminate.unref?.();
    this.ended();
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
