import {
  FIELD_LIMITS,
  PAYLOAD_SCAN_LIMITS,
  RelayError,
  assertTopic,
  encodePayload,
  isErrorCode,
  partitionForKey,
  scanMsgpack,
  type AckFrame,
  type AckLevel,
  type NackFrame,
  type OutgoingMessage,
  type PublishBatch,
} from '../protocol/index.js';
import type { BrokerConnection } from '../connection/connection.js';
import type { ResolvedClientOptions } from '../options.js';
import { Deadlines } from './deadlines.js';
import { Fifo } from './fifo.js';
import { FlushScratch } from './flush-scratch.js';
import { Outbox, partitionKey, type OutboxEntry, type PublishReceipt } from './outbox.js';
import { RouteSwitches } from './route-switch.js';
import { ROUTING_LIMITS, RefusalPolicy } from './routing.js';

/** Options of one `publish` call. */
export interface PublishOptions {
  /** Messages with the same key go to the same partition, in order. Without a key: round robin. */
  key?: string;
  /** String headers delivered with the message. */
  headers?: Record<string, string>;
  /**
   * Ack level; defaults to the client's `ack` option. `leader` answers
   * sooner but loses the message if the leader fails before it is
   * replicated (see {@link AckLevel}).
   */
  ack?: AckLevel;
  /** Overrides the client's `publishTimeoutMs` for this call. */
  timeoutMs?: number;
}

/** Publisher counters, part of `client.stats()`. */
export interface PublishStats {
  published: number;
  acknowledged: number;
  /** Acks that said `duplicate: true`: republishes the broker recognised. */
  duplicates: number;
  /** Messages sent again after a reconnect, failover or resequencing. */
  republished: number;
  timeouts: number;
  outboxMessages: number;
  outboxBytes: number;
  /** Publishes waiting for room in the outbox or for topic metadata. */
  waiting: number;
}

/** Frame bytes a message costs beyond its data, topic, key and headers. */
const MESSAGE_OVERHEAD = 96;
/** Room left in a frame for its envelope. */
const FRAME_OVERHEAD = 64;
/** Pause before resending a partition whose messages arrived out of order. */
const GAP_RETRY_MS = 50;
/** Pause before resending a partition the broker refused with `RATE_LIMITED`. */
const RATE_LIMITED_RETRY_MS = 100;
/** Pause before resending a message whose refusal leaves its outcome unknown (see {@link refusesForGood}). */
const STORAGE_RETRY_MS = 500;

/**
 * Refusals a broker gives while checking a publish, before it proposes
 * anything: the same message is refused the same way on every send.
 */
const VALIDATION_CODES: ReadonlySet<string> = new Set([
  'PAYLOAD_TOO_LARGE',
  'INVALID_TOPIC',
  'INVALID_ARGUMENT',
  'INVALID_PARTITION',
  'FORBIDDEN',
  'UNAUTHORIZED',
  'UNSUPPORTED_VERSION',
  'STORAGE_FULL',
]);

/**
 * Refusals a broker gives only before it hands a publish to its engine (the
 * session's rate check): the send they answer stored nothing. Every other
 * retriable code may also answer a publish the broker proposed: `NOT_READY`
 * (a broker not ready says it for a `TIMEOUT`), `NOT_LEADER` and `NO_QUORUM`
 * (a routed or forwarded copy may have reached a leader), `SHUTTING_DOWN`
 * (a stopped group ends its proposals with it).
 */
const UNPROPOSED_CODES: ReadonlySet<string> = new Set(['RATE_LIMITED']);

/**
 * Whether a non-retriable refusal proves the message's seq is not stored and
 * never will be, so the messages after it may move to a new incarnation. Only
 * a validation refusal does, and only when every earlier send is known to
 * have stored nothing (answered with one of {@link UNPROPOSED_CODES}): an
 * earlier send whose outcome is unknown (unanswered, lost with its
 * connection, withdrawn, or refused with any other code) may be stored, and a
 * refusal says nothing about that copy; any other code (INTERNAL,
 * PROTOCOL_ERROR, LIMIT_EXCEEDED, STORAGE_ERROR, an unknown one) may come
 * after the broker proposed it. Renumbering a stored message would store it twice.
 */
function refusesForGood(code: string, entry: OutboxEntry): boolean {
  return entry.sends - entry.unproposedSends <= 1 && VALIDATION_CODES.has(code);
}

/** Ack levels a publish may ask for. */
const ACK_LEVELS: ReadonlySet<string> = new Set<AckLevel>(['none', 'leader', 'quorum', 'all']);

const RESOLVED = Promise.resolve();


/**
 * Turns `publish()` calls into ordered, idempotent sends: assigns partition
 * and per-partition seq in call order, keeps every unacknowledged message in
 * the bounded outbox, batches sends per tick, and republishes the outbox in
 * order on every new connection.
 */
export class Publisher {
  private readonly outbox: Outbox;
  /** Publishes not yet admitted to the outbox (waiting for room or metadata), in call order. */
  private readonly admission = new Fifo<OutboxEntry>();
  private readonly partitionCounts = new Map<string, number>();
  private metadataPending: string | undefined;
  /** The topic of the latest publish that passed {@link assertTopic}. */
  private validTopic: string | undefined;
  /** Per partition: the current producer incarnation and its next seq. */
  private readonly streams = new Map<string, { incarnation: number; nextSeq: number }>();
  private readonly roundRobin = new Map<string, number>();
  private readonly inflight = new Map<number, OutboxEntry>();
  /**
   * Partitions resending (a new connection, a closed one, a refusal): until `last`, the newest of their messages
   * sent before, is sent again, at most the resend window of them is in flight (see {@link resendWindow}).
   */
  private readonly resending = new Map<string, { topic: string; partition: number; last: OutboxEntry }>();
  /** Per partition: a resend due after a pause (see {@link resendSoon}); the flush leaves the partition to it meanwhile. */
  private readonly resendTimers = new Map<string, ReturnType<typeof setTimeout>>();
  /** Partitions waiting (bounded) for the pool to reach the broker a refusal named (see {@link refused}). */
  private readonly awaitingRoute = new Map<string, { topic: string; partition: number; broker: string }>();
  /** Per partition: the connection that acknowledged it last; it keeps the partition while the leader is not pooled. */
  private readonly servedBy = new Map<string, BrokerConnection>();
  /** Per partition: the first attempt id sent after its latest ack arrived (see {@link onGap}). */
  private readonly ackFences = new Map<string, number>();
  /** Partitions with entries of a newer incarnation held back until the older ones settle (see {@link heldBack}). */
  private readonly held = new Map<string, { topic: string; partition: number; waitingFor: number }>();
  /** Partition leaders as last heard (metadata answers, NOT_LEADER hints, acks of forwarded publishes), by partition key. */
  private readonly leaders = new Map<string, string>();
  /**
   * Per partition: the attempt id its leader was last heard for — the ack's attempt when an ack named it,
   * the first attempt sent after a metadata answer or a followed hint. An ack naming a leader for an
   * earlier attempt is older news and changes nothing: a route changes only on fresher information, so
   * answers arriving out of order over different paths cannot flap it between a stale and a fresh leader.
   */
  private readonly leaderHeardAt = new Map<string, number>();
  /** Per partition: the connection its latest send went on. */
  private readonly lastSentOn = new Map<string, BrokerConnection>();
  /** Partitions whose newer publishes wait for the older ones in flight on the route they move off (route-switch.ts). */
  private readonly switches = new RouteSwitches(ROUTING_LIMITS.switchWaitMs, (topic, partition) => this.resend(topic, partition));
  /** Follows leader hints and holds off failovers caused by refusals (see routing.ts). */
  private readonly routing = new RefusalPolicy();
  private sendQueue: OutboxEntry[] = [];
  /** Working maps of {@link flush}, emptied after each (see flush-scratch.ts). */
  private readonly scratch = new FlushScratch<OutboxEntry, BrokerConnection>();
  private flushScheduled = false;
  private readonly flushQueued = (): void => this.flush();
  private nextAttemptId = 1;
  private connection: BrokerConnection | undefined;
  private maxPayload = 1024 * 1024;
  private drainWaiters: Array<() => void> = [];
  private readonly counters = { published: 0, acknowledged: 0, duplicates: 0, republished: 0, timeouts: 0 };
  /** Every unsettled publish's timeout, on one timer. */
  private readonly deadlines = new Deadlines<OutboxEntry>((entry) => this.timedOut(entry));

  constructor(
    private readonly options: ResolvedClientOptions,
    /** Asks the client to move to another broker (the active one cannot take publishes). */
    private readonly requestFailover: (reason: RelayError) => void,
    /** The pooled, open connection to a broker, if any: publishes go straight to partition leaders. */
    private readonly pooledConnection: (brokerId: string) => BrokerConnection | undefined = () => undefined,
    /**
     * A refusal named this broker as the way to a partition: the pool should reach it now. True when a
     * connection to it is open or being dialed ({@link connectionOpened} follows).
     */
    private readonly reach: (brokerId: string) => boolean = () => false,
  ) {
    this.outbox = new Outbox(options.outbox.maxMessages, options.outbox.maxBytes);
  }

  stats(): PublishStats {
    return {
      ...this.counters,
      outboxMessages: this.outbox.size,
      outboxBytes: this.outbox.bytes,
      waiting: this.admission.length,
    };
  }

  publish(topic: string, data: unknown, options: PublishOptions = {}): Promise<PublishReceipt> {
    try {
      // Checked once per run of publishes to one topic (the check is a pure function of the string).
      if (topic !== this.validTopic) {
        assertTopic(topic);
        this.validTopic = topic;
      }
      const entry = this.entry(topic, data, options);
      if (this.options.outbox.policy === 'reject' && (this.admission.length > 0 || !this.outbox.hasRoom(entry.size))) {
        throw new RelayError('OUTBOX_FULL', `outbox is full (${this.outbox.size} messages, ${this.outbox.bytes} bytes)`);
      }
      const promise = new Promise<PublishReceipt>((resolve, reject) => {
        entry.resolve = resolve;
        entry.reject = reject;
      });
      entry.deadline = this.deadlines.add(entry, entry.timeoutMs);
      this.counters.published++;
      this.admission.push(entry);
      this.admit();
      return promise;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** A new active connection (or none): republish the outbox there, in order, a window per partition at a time. */
  setConnection(connection: BrokerConnection | undefined): void {
    this.connection = connection;
    // Whatever was in flight went with the old connection: every entry is unsent on the new one.
    this.inflight.clear();
    this.sendQueue = [];
    this.switches.clear();
    for (const entry of this.outbox) {
      entry.attemptId = 0;
      this.markResend(entry);
    }
    if (connection === undefined) return;
    this.maxPayload = connection.welcome.limits.maxPayload;
    for (const entry of this.outbox) this.queueSend(entry);
    this.admit();
  }

  /** Whether a publish sent on `connection` awaits its answer there. */
  awaitsAnswersOn(connection: BrokerConnection): boolean {
    for (const entry of this.inflight.values()) if (entry.sentOn === connection) return true;
    return false;
  }

  /** A pooled connection opened: partitions waiting for a route to its broker go there now. */
  connectionOpened(connection: BrokerConnection): void {
    for (const [key, waiting] of [...this.awaitingRoute]) {
      if (waiting.broker !== connection.brokerId) continue;
      this.awaitingRoute.delete(key);
      this.cancelResend(waiting.topic, waiting.partition);
      this.resend(waiting.topic, waiting.partition);
    }
  }

  /** A pooled connection closed: what was in flight on it is sent again, by the current routes. */
  connectionClosed(connection: BrokerConnection): void {
    for (const entry of this.outbox) {
      if (entry.sentOn !== connection || entry.attemptId === 0) continue;
      this.inflight.delete(entry.attemptId);
      entry.attemptId = 0;
      this.markResend(entry);
      this.queueSend(entry);
    }
    this.releaseSwitches();
  }

  /** Acks arrived (on `from`, the connection that acknowledged them). */
  onAck(frame: AckFrame, from?: BrokerConnection): void {
    let refill: Set<string> | undefined;
    for (const ack of frame.acks) {
      const first = this.inflight.get(ack.id);
      if (ack.leader !== undefined && first !== undefined) {
        const key = first.partitionKey;
        if (ack.id >= (this.leaderHeardAt.get(key) ?? 0)) {
          this.leaders.set(key, ack.leader);
          this.leaderHeardAt.set(key, ack.id);
        }
      }
      for (let i = 0; i < ack.count; i++) {
        const entry = this.inflight.get(ack.id + i);
        if (entry === undefined) continue; // an earlier attempt, superseded
        this.inflight.delete(ack.id + i);
        this.outbox.delete(entry);
        const key = entry.partitionKey;
        if (from !== undefined) this.servedBy.set(key, from);
        // Attempts sent from now on reach the broker after this store (see onGap).
        this.ackFences.set(key, this.nextAttemptId);
        this.routing.acknowledged(key);
        if (this.resending.size > 0 && this.resending.has(key)) (refill ??= new Set()).add(key);
        this.counters.acknowledged++;
        if (ack.duplicate) this.counters.duplicates++;
        this.settle(entry, { topic: entry.topic, partition: entry.partition, offset: ack.offset + i, duplicate: ack.duplicate });
      }
    }
    // Acks freed room in a resend window: the flush sends the next of those partitions' messages.
    if (refill !== undefined) for (const key of refill) this.refillResend(key);
    this.releaseHeld();
    this.releaseSwitches();
    this.admit();
    this.checkDrained();
  }

  onNack(frame: NackFrame): void {
    const entry = this.inflight.get(frame.id);
    if (entry === undefined) return;
    this.inflight.delete(frame.id);
    entry.attemptId = 0;
    this.releaseSwitches();
    const code = isErrorCode(frame.code) ? frame.code : 'INTERNAL';
    const error = new RelayError(code, frame.message, frame.leader === undefined ? {} : { leader: frame.leader });
    // This send stored nothing: a validation refusal of a later one may still fail the publish for good.
    if (UNPROPOSED_CODES.has(code)) entry.unproposedSends++;
    if (code === 'SEQUENCE_GAP' && frame.expectedSeq !== undefined) {
      this.onGap(entry, frame.expectedSeq, frame.id);
    } else if (code === 'RATE_LIMITED') {
      // Over the broker's rate: the same connection takes it again after a pause (later seqs come back as gaps, then in order).
      this.resendSoon(entry.topic, entry.partition, RATE_LIMITED_RETRY_MS);
    } else if (error.retriable || code === 'TIMEOUT') {
      // Kept in the outbox either way: sent again (same incarnation and seq) where the policy says.
      this.refused(entry, error, frame.leader);
    } else if (code === 'SEQUENCE_TOO_OLD') {
      // The broker stored this seq once (it is below the producer's next one) but no longer knows where: outcome
      // unknown. The seqs after it stay as they are — renumbering them would store the stored ones twice.
      this.outbox.delete(entry);
      this.settle(entry, error);
      this.releaseHeld();
      this.admit();
      this.checkDrained();
    } else if (!refusesForGood(code, entry)) {
      // The outcome is unknown (an earlier send may be stored, or the broker may have proposed this one): keep
      // the same incarnation and seq and try again; publishTimeoutMs bounds it (outcome unknown).
      entry.lastRefusal = error;
      this.resendSoon(entry.topic, entry.partition, STORAGE_RETRY_MS);
    } else {
      // Refused for good: its seq will never be stored, so the messages after it move to a new incarnation.
      this.outbox.delete(entry);
      this.settle(entry, error);
      this.reincarnate(entry.topic, entry.partition, entry.incarnation, entry.seq);
      this.releaseHeld();
      this.admit();
      this.checkDrained();
    }
    // A refusal frees room in a resend window as an ack does (SEQUENCE_TOO_OLD answers resend nothing).
    if (this.resending.size > 0) this.refillResend(entry.partitionKey);
  }

  /**
   * The broker expects `expectedSeq` of this entry's incarnation. When that is
   * at or above the lowest seq still unacknowledged, some of ours are stored
   * and the rest arrived out of order (a failover mixed old and new paths):
   * send them again, in order — the stored ones come back as duplicates. When
   * it is below, the broker lost seqs we had acknowledged (an in-memory broker
   * restarted): continue in a new incarnation. Never renumber within one:
   * a copy still in flight could then be stored under two numbers.
   */
  private onGap(entry: OutboxEntry, expectedSeq: number, attemptId: number): void {
    const pending = this.outbox.partition(entry.topic, entry.partition).filter((e) => e.incarnation === entry.incarnation);
    const lowest = pending[0]?.seq ?? entry.seq;
    // Answers on different connections (a pooled leader, the active broker forwarding) are not ordered: a gap
    // answer to an attempt sent before the latest ack of this partition arrived may predate that store, and
    // the seqs it calls missing may be stored or still in flight. Only an attempt sent after it is evidence.
    const fence = this.ackFences.get(partitionKey(entry.topic, entry.partition)) ?? 0;
    if (expectedSeq < lowest && attemptId >= fence) {
      this.reincarnate(entry.topic, entry.partition, entry.incarnation, lowest - 1);
      return;
    }
    // A short pause lets what is still in flight land before the resend.
    this.resendSoon(entry.topic, entry.partition, GAP_RETRY_MS);
  }

  /**
   * A partition refused for a reason that may pass: follow the leader hint,
   * move the connection, or try again later through the active broker, as
   * the bounded {@link RefusalPolicy} decides. The rest of the refused batch
   * is withdrawn at once, so its other nacks do not count as more refusals.
   */
  private refused(entry: OutboxEntry, error: RelayError, leader: string | undefined): void {
    const key = partitionKey(entry.topic, entry.partition);
    const fromActive = entry.sentOn === undefined || entry.sentOn === this.connection;
    const decision = this.routing.decide({ partition: key, leader, fromActive, nowMs: Date.now() });
    this.withdraw(entry.topic, entry.partition);
    if (entry.sentOn !== undefined && this.servedBy.get(key) === entry.sentOn) this.servedBy.delete(key); // it serves this partition no longer
    this.awaitingRoute.delete(key);
    switch (decision.kind) {
      case 'follow': {
        this.setLeader(key, decision.leader);
        // In use from now on: the pool keeps or reaches it — at once, as a refusal named it.
        const dialing = this.reach(decision.leader);
        const direct = this.pooledConnection(decision.leader);
        if (dialing && (direct === undefined || !direct.open)) {
          // Not pooled yet: through the brokers pooled now it would be refused again (a split keeps them from the
          // leader; the client's own link to it may be open). The partition waits for the pool to reach the named
          // broker ({@link connectionOpened}), a bounded while, then goes through the active broker again.
          this.awaitingRoute.set(key, { topic: entry.topic, partition: entry.partition, broker: decision.leader });
          this.resendAfter(entry.topic, entry.partition, Math.max(decision.delayMs, ROUTING_LIMITS.dialWaitMs));
          return;
        }
        this.resendAfter(entry.topic, entry.partition, decision.delayMs);
        return;
      }
      case 'retry':
        this.leaders.delete(key); // the active broker forwards it
        this.servedBy.delete(key);
        this.resendAfter(entry.topic, entry.partition, decision.delayMs);
        return;
      case 'failover':
        this.requestFailover(error); // the new connection republishes the outbox
        this.resendAfter(entry.topic, entry.partition, 0);
        return;
    }
  }

  private resendAfter(topic: string, partition: number, delayMs: number): void {
    if (delayMs <= 0) this.resend(topic, partition);
    else this.resendSoon(topic, partition, delayMs);
  }

  /** Resends a partition after `delayMs`, once however many nacks ask for it meanwhile. */
  private resendSoon(topic: string, partition: number, delayMs: number): void {
    const key = partitionKey(topic, partition);
    if (this.resendTimers.has(key)) return;
    this.resendTimers.set(
      key,
      setTimeout(() => {
        this.resendTimers.delete(key);
        this.awaitingRoute.delete(key);
        this.resend(topic, partition);
      }, delayMs),
    );
  }

  private cancelResend(topic: string, partition: number): void {
    const key = partitionKey(topic, partition);
    clearTimeout(this.resendTimers.get(key));
    this.resendTimers.delete(key);
  }

  /**
   * Moves the unacknowledged messages of `incarnation` after `afterSeq` into a
   * new incarnation numbered from 0, in order, and sends them again.
   */
  private reincarnate(topic: string, partition: number, incarnation: number, afterSeq: number): void {
    const key = partitionKey(topic, partition);
    const stream = this.streams.get(key) ?? { incarnation, nextSeq: 0 };
    if (stream.incarnation !== incarnation) return; // already moved on
    const next = { incarnation: incarnation + 1, nextSeq: 0 };
    for (const entry of this.outbox.partition(topic, partition)) {
      if (entry.incarnation !== incarnation || entry.seq <= afterSeq || entry.ack === 'none') continue;
      entry.incarnation = next.incarnation;
      entry.seq = next.nextSeq++;
    }
    this.streams.set(key, next);
    this.resend(topic, partition);
  }

  /** Sends every unacknowledged message of a partition again, in order, with fresh attempt ids. */
  private resend(topic: string, partition: number): void {
    this.withdraw(topic, partition);
    for (const entry of this.outbox.partition(topic, partition)) this.queueSend(entry);
  }

  /** Forgets every attempt of a partition's unacknowledged messages: answers to them are stale from now on. */
  private withdraw(topic: string, partition: number): void {
    for (const entry of this.outbox.partition(topic, partition)) {
      if (entry.attemptId !== 0) this.inflight.delete(entry.attemptId);
      entry.attemptId = 0;
      this.markResend(entry);
    }
    this.sendQueue = this.sendQueue.filter((e) => e.topic !== topic || e.partition !== partition);
  }

  /** Resolves once nothing is waiting or unacknowledged. */
  drained(): Promise<void> {
    if (this.isDrained()) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Fails every pending publish with `error` (on client close). */
  failAll(error: RelayError): void {
    for (const entry of [...this.admission, ...this.outbox]) this.settle(entry, error);
    this.admission.removeWhere(() => true);
    for (const entry of [...this.outbox]) this.outbox.delete(entry);
    this.inflight.clear();
    this.sendQueue = [];
    for (const timer of this.resendTimers.values()) clearTimeout(timer);
    this.resendTimers.clear();
    this.awaitingRoute.clear();
    this.switches.clear();
    this.resending.clear();
    this.deadlines.clear();
    this.checkDrained();
  }

  private entry(topic: string, data: unknown, options: PublishOptions): OutboxEntry {
    const raw = data instanceof Uint8Array;
    const bytes = raw ? data : encodePayload(data);
    if (!raw) {
      try {
        // Refuse here what subscribers could not decode (Maps with non-string keys, typed arrays, ...).
        scanMsgpack(bytes, PAYLOAD_SCAN_LIMITS);
      } catch (err) {
        throw new RelayError('INVALID_ARGUMENT', `data is not plain msgpack data (${(err as Error).message}); send bytes or plain values`);
      }
    }
    const ack = options.ack ?? this.options.ack;
    if (!ACK_LEVELS.has(ack)) throw new RelayError('INVALID_ARGUMENT', `ack must be none, leader, quorum or all`);
    if (options.key !== undefined && (typeof options.key !== 'string' || options.key.length > FIELD_LIMITS.maxString)) {
      throw new RelayError('INVALID_ARGUMENT', `key must be a string of at most ${FIELD_LIMITS.maxString} characters`);
    }
    let headerBytes = 0;
    if (options.headers !== undefined) {
      const entries = Object.entries(options.headers);
      if (entries.length > FIELD_LIMITS.maxHeaders) throw new RelayError('INVALID_ARGUMENT', `at most ${FIELD_LIMITS.maxHeaders} headers`);
      for (const [name, value] of entries) {
        if (typeof value !== 'string' || value.length > FIELD_LIMITS.maxString || name.length > FIELD_LIMITS.maxString) {
          throw new RelayError('INVALID_ARGUMENT', `header ${name} must be a string of at most ${FIELD_LIMITS.maxString} characters`);
        }
        headerBytes += name.length + value.length + 4;
      }
    }
    const size = bytes.length + topic.length + (options.key?.length ?? 0) + headerBytes + MESSAGE_OVERHEAD;
    if (size + FRAME_OVERHEAD > this.maxPayload) {
      throw new RelayError('PAYLOAD_TOO_LARGE', `message of ${size} bytes exceeds the broker's maxPayload ${this.maxPayload}`);
    }
    return {
      topic,
      key: options.key,
      headers: options.headers,
      data: bytes,
      encoding: raw ? 'raw' : 'msgpack',
      ack,
      size,
      partition: -1,
      partitionKey: '',
      incarnation: 0,
      seq: -1,
      attemptId: 0,
      sentOn: undefined,
      sends: 0,
      unproposedSends: 0,
      lastRefusal: undefined,
      settled: false,
      resolve: () => {},
      reject: () => {},
      timeoutMs: options.timeoutMs ?? this.options.publishTimeoutMs,
      deadline: undefined,
    };
  }

  /** Moves publishes from admission into the outbox, in call order, while there is room and metadata. */
  private admit(): void {
    for (let entry = this.admission.peek(); entry !== undefined; entry = this.admission.peek()) {
      if (entry.settled) {
        this.admission.shift(); // timed out while waiting: never sent, so nothing is lost or duplicated
        continue;
      }
      if (!this.outbox.hasRoom(entry.size)) return;
      const partitions = this.partitionCounts.get(entry.topic);
      if (partitions === undefined) {
        this.fetchMetadata(entry.topic);
        return;
      }
      this.admission.shift();
      entry.partition = this.pickPartition(entry, partitions);
      // Built once: the send and the ack look the partition up several times each.
      entry.partitionKey = partitionKey(entry.topic, entry.partition);
      if (entry.ack === 'none') {
        entry.seq = 0; // fire and forget: never deduplicated
      } else {
        const key = entry.partitionKey;
        const stream = this.streams.get(key) ?? { incarnation: 0, nextSeq: 0 };
        entry.incarnation = stream.incarnation;
        entry.seq = stream.nextSeq++;
        this.streams.set(key, stream);
      }
      this.outbox.add(entry);
      this.queueSend(entry);
    }
    this.checkDrained();
  }

  private pickPartition(entry: OutboxEntry, partitions: number): number {
    if (entry.key !== undefined) return partitionForKey(entry.key, partitions);
    const next = this.roundRobin.get(entry.topic) ?? 0;
    this.roundRobin.set(entry.topic, (next + 1) % partitions);
    return next % partitions;
  }

  private fetchMetadata(topic: string): void {
    const connection = this.connection;
    if (connection === undefined || this.metadataPending === topic) return;
    this.metadataPending = topic;
    connection.request({ type: 'metadata', topics: [topic] }).then(
      (reply) => {
        this.metadataPending = undefined;
        if (reply.type === 'topics') {
          for (const info of reply.topics) {
            if (info.partitions > 0) this.partitionCounts.set(info.topic, info.partitions);
            info.leaders?.forEach((leader, partition) => {
              if (leader !== '') this.setLeader(partitionKey(info.topic, partition), leader);
            });
          }
        }
        this.admit();
      },
      (err: unknown) => {
        this.metadataPending = undefined;
        const error = err instanceof RelayError ? err : new RelayError('INTERNAL', String(err));
        // Lost with its connection (or unanswered): ask again, on whatever connection is active now.
        if (error.retriable || error.code === 'TIMEOUT') {
          this.admit();
          return;
        }
        // The topic is refused (e.g. FORBIDDEN): fail the publishes waiting for it.
        for (const waiting of this.admission.removeWhere((entry) => entry.topic === topic)) this.settle(waiting, error);
        this.admit();
      },
    );
  }

  private queueSend(entry: OutboxEntry): void {
    if (this.connection === undefined) return;
    this.sendQueue.push(entry);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // Everything published in this tick leaves in as few frames as the size limit allows. A promise
    // job, not queueMicrotask: Node wraps each of those in an AsyncResource (a few µs per publish).
    void RESOLVED.then(this.flushQueued);
  }

  /**
   * Sends the queued entries: grouped into batches of consecutive seqs per
   * partition and ack level (order within a partition kept; across partitions
   * it does not matter), each batch with consecutive attempt ids, in frames
   * within the broker's size and count limits.
   */
  private flush(): void {
    this.flushScheduled = false;
    const active = this.connection;
    const queue = this.sendQueue;
    this.sendQueue = [];
    if (active === undefined || !active.open) return;

    // Each partition goes to its leader when that broker is pooled, otherwise to the active broker (which forwards).
    const { groups, routes, oldest, windowed, connections } = this.scratch;
    try {
      for (const entry of queue) {
        // Skip what is already in flight, and what was acknowledged or refused meanwhile.
        if (entry.attemptId !== 0 || !this.outbox.has(entry)) continue;
        const key = entry.partitionKey;
        const resend = this.resending.size === 0 ? undefined : this.activeResend(key);
        if (resend !== undefined) {
          // Resending: what goes is the partition's window, taken from the outbox in order (not from the queue).
          if (this.resendTimers.has(key) || windowed.has(key)) continue;
          windowed.add(key);
          for (const next of this.resendWindow(resend.topic, resend.partition, resend.last)) {
            if (this.heldBack(next, oldest) || !this.group(next, active)) break;
          }
          continue;
        }
        if (this.heldBack(entry, oldest)) continue;
        // A resend of this partition is due: what is newer goes with it, in order, not ahead of it.
        if (this.resendTimers.has(key)) continue;
        this.group(entry, active);
      }
      for (const connection of connections) this.sendGroups(connection, groups, routes);
      // A partition whose resend went out in full is done resending.
      for (const key of windowed) this.activeResend(key);
    } finally {
      this.scratch.reset();
    }
    this.admit();
  }

  /**
   * Adds `entry` to its partition's group in this flush, on the partition's
   * route; false (and nothing added) while that route waits for a switch.
   */
  private group(entry: OutboxEntry, active: BrokerConnection): boolean {
    const { groups, routes, connections } = this.scratch;
    const key = entry.partitionKey;
    let connection = routes.get(key);
    if (connection === undefined) {
      connection = this.route(key, entry.topic, entry.partition, active);
      routes.set(key, connection);
      if (connection !== null && !connections.includes(connection)) connections.push(connection);
    }
    if (connection === null) return false; // queued again once the older ones are answered (releaseSwitches)
    // One group per partition, ack level and incarnation. The partition's key names its first group (no
    // string built per publish); a later one of another ack level or incarnation (rare) gets a longer key.
    let batchKey = key;
    let group = groups.get(batchKey);
    const head = group?.[0];
    if (head !== undefined && (head.ack !== entry.ack || head.incarnation !== entry.incarnation)) {
      batchKey = `${entry.ack}|${entry.incarnation}|${key}`;
      group = groups.get(batchKey);
    }
    if (group === undefined) groups.set(batchKey, [entry]);
    else group.push(entry);
    return true;
  }

  /**
   * Marks `entry`'s partition as resending up to `entry` when it was sent
   * before (a first send is no resend) and is newer than the partition's
   * current mark: a connection closing with older messages on it must not
   * shorten a resend under way.
   */
  private markResend(entry: OutboxEntry): void {
    if (entry.sends === 0 || entry.ack === 'none') return;
    const key = entry.partitionKey;
    const current = this.activeResend(key);
    if (current !== undefined) {
      const last = current.last;
      if (last.incarnation > entry.incarnation || (last.incarnation === entry.incarnation && last.seq >= entry.seq)) return;
    }
    this.resending.set(key, { topic: entry.topic, partition: entry.partition, last: entry });
  }

  /** A partition's resend while its newest message to resend is still unsent; forgotten once it is sent or settled. */
  private activeResend(key: string): { topic: string; partition: number; last: OutboxEntry } | undefined {
    const resend = this.resending.get(key);
    if (resend === undefined) return undefined;
    if (resend.last.attemptId === 0 && this.outbox.has(resend.last)) return resend;
    this.resending.delete(key);
    return undefined;
  }

  /** Acks freed room in a partition's resend window: a flush sends what fits now. */
  private refillResend(key: string): void {
    const resend = this.activeResend(key);
    if (resend !== undefined) this.queueSend(resend.last); // the flush takes the window from the outbox
  }

  /**
   * The unsent messages of a resending partition that go now, in order: those
   * that fit beside what is in flight within `outbox.resendMessages` and
   * `outbox.resendBytes` (at least one when nothing is in flight), up to
   * `last`; after `last` the resend is over and the rest goes as in steady
   * state. Like Kafka's `max.in.flight` per partition: a client failing over
   * again and again resends a window each time, not its whole outbox. Order
   * and seqs are the outbox's, so the broker sees no gap. Steady state is not
   * windowed: the outbox bounds what is in flight there (a pipelined producer
   * keeps thousands in flight on purpose), while a resend is repeated on every
   * connection change, mostly of messages stored already.
   */
  private resendWindow(topic: string, partition: number, last: OutboxEntry): OutboxEntry[] {
    const { resendMessages, resendBytes } = this.options.outbox;
    const window: OutboxEntry[] = [];
    let count = 0;
    let bytes = 0;
    let bounded = true;
    for (const entry of this.outbox.partition(topic, partition)) {
      if (entry.attemptId !== 0) {
        count++;
        bytes += entry.size;
        continue;
      }
      if (bounded) {
        if (count > 0 && (count >= resendMessages || bytes + entry.size > resendBytes)) break;
        count++;
        bytes += entry.size;
        bounded = entry !== last;
      }
      window.push(entry);
    }
    return window;
  }

  /**
   * The connection a partition's publishes go on: its leader's when pooled;
   * without it, the broker that acknowledged the partition last (one that
   * reached the leader from the far side of a split, say); else the active
   * broker, which forwards. Null while older publishes of the partition are
   * in flight on another connection (see route-switch.ts).
   */
  private route(key: string, topic: string, partition: number, active: BrokerConnection): BrokerConnection | null {
    const leader = this.leaders.get(key);
    const routed = leader === undefined ? undefined : this.pooledConnection(leader);
    const served = this.servedBy.get(key);
    const connection = routed !== undefined && routed.open ? routed : served !== undefined && served.open ? served : active;
    // Only a partition last sent elsewhere can have publishes in flight elsewhere (the scan is rare).
    const elsewhere = this.lastSentOn.get(key) !== connection && this.outbox.partition(topic, partition).some((e) => e.attemptId !== 0 && e.sentOn !== connection);
    return this.switches.maySend(key, topic, partition, elsewhere) ? connection : null;
  }

  /** Queues again the partitions that waited for a route switch and have nothing in flight any more. */
  private releaseSwitches(): void {
    if (this.switches.size === 0) return; // the usual case, on every ack
    const inFlight = (topic: string, partition: number): boolean => this.outbox.partition(topic, partition).some((e) => e.attemptId !== 0);
    for (const { topic, partition } of this.switches.release(inFlight)) this.requeueUnsent(topic, partition);
  }

  /**
   * Queues every unsent message of a partition again, in seq order, in place
   * of those of its messages queued already (publishes admitted meanwhile):
   * none is queued twice (it would be sent, and acknowledged, twice) and
   * none ahead of an older one.
   */
  private requeueUnsent(topic: string, partition: number): void {
    this.sendQueue = this.sendQueue.filter((e) => e.topic !== topic || e.partition !== partition);
    for (const entry of this.outbox.partition(topic, partition)) if (entry.attemptId === 0) this.queueSend(entry);
  }

  /** A partition's leader from fresh information (a metadata answer, a followed hint): acks of earlier attempts no longer change it. */
  private setLeader(key: string, leader: string): void {
    this.leaders.set(key, leader);
    this.leaderHeardAt.set(key, this.nextAttemptId);
  }

  /**
   * Sends the groups routed to `connection` (a group is one partition's
   * entries of one ack level and incarnation, in seq order) as batches with
   * consecutive attempt ids, in frames within the broker's size and count limits.
   */
  private sendGroups(connection: BrokerConnection, groups: Map<string, OutboxEntry[]>, routes: Map<string, BrokerConnection | null>): void {
    let batches: PublishBatch[] = [];
    let count = 0;
    let bytes = FRAME_OVERHEAD;
    const sendFrame = (): void => {
      if (batches.length > 0) connection.send({ type: 'publish', batches });
      batches = [];
      count = 0;
      bytes = FRAME_OVERHEAD;
    };
    for (const group of groups.values()) {
      const first = group[0];
      if (first === undefined || routes.get(first.partitionKey) !== connection) continue; // another connection's
      this.lastSentOn.set(first.partitionKey, connection); // a group is one partition's
      let batch: PublishBatch | undefined;
      for (const entry of group) {
        if (entry.attemptId !== 0) continue; // queued twice: sent once (a second send would be acknowledged twice)
        if (count >= FIELD_LIMITS.maxBatch || bytes + entry.size > this.maxPayload) {
          sendFrame();
          batch = undefined;
        }
        const consecutive = batch !== undefined && (entry.ack === 'none' || batch.firstSeq + batch.messages.length === entry.seq);
        if (batch === undefined || !consecutive) {
          batch = { topic: entry.topic, partition: entry.partition, ack: entry.ack, firstId: this.nextAttemptId, firstSeq: entry.seq, messages: [] };
          if (entry.incarnation > 0) batch.incarnation = entry.incarnation;
          batches.push(batch);
        }
        entry.attemptId = this.nextAttemptId++;
        entry.sentOn = connection;
        entry.sends++;
        if (entry.sends > 1) this.counters.republished++;
        const message: OutgoingMessage = { data: entry.data };
        if (entry.encoding !== 'raw') message.encoding = entry.encoding;
        if (entry.key !== undefined) message.key = entry.key;
        if (entry.headers !== undefined) message.headers = entry.headers;
        batch.messages.push(message);
        count++;
        bytes += entry.size;
        if (entry.ack === 'none') {
          this.outbox.delete(entry);
          this.settle(entry, { topic: entry.topic, partition: entry.partition, offset: -1, duplicate: false });
        } else {
          this.inflight.set(entry.attemptId, entry);
        }
      }
    }
    sendFrame();
  }

  /**
   * Whether `entry` belongs to a newer incarnation than an entry of its
   * partition still unsettled (in flight, or unanswered): it then waits. A
   * broker orders incarnations as separate producers, so an older message
   * still in flight (say, stuck behind a failed disk) could otherwise be
   * stored after newer ones — out of order. It is sent once every older one is
   * acknowledged or refused for good ({@link releaseHeld}).
   */
  private heldBack(entry: OutboxEntry, oldest: Map<string, number>): boolean {
    if (entry.ack === 'none' || entry.incarnation === 0) return false;
    const key = entry.partitionKey;
    let lowest = oldest.get(key);
    if (lowest === undefined) {
      lowest = Math.min(...this.outbox.partition(entry.topic, entry.partition).filter((e) => e.ack !== 'none').map((e) => e.incarnation));
      oldest.set(key, lowest);
    }
    if (entry.incarnation <= lowest) return false;
    this.held.set(key, { topic: entry.topic, partition: entry.partition, waitingFor: lowest });
    return true;
  }

  /** Sends what {@link heldBack} kept, once the incarnation it waited for has settled. */
  private releaseHeld(): void {
    if (this.held.size === 0) return; // the usual case, on every ack
    for (const [key, { topic, partition, waitingFor }] of this.held) {
      const entries = this.outbox.partition(topic, partition).filter((e) => e.ack !== 'none');
      const lowest = Math.min(...entries.map((e) => e.incarnation));
      if (lowest <= waitingFor) continue;
      this.held.delete(key);
      // The oldest incarnation left goes now; any newer one is held again by the flush.
      this.requeueUnsent(topic, partition);
    }
  }

  /** A publish not settled within its timeout. */
  private timedOut(entry: OutboxEntry): void {
    this.counters.timeouts++;
    // Still in the outbox: it may yet be stored, but at most once.
    const last = entry.lastRefusal === undefined ? '' : ` (last refused with ${entry.lastRefusal.code}: ${entry.lastRefusal.message})`;
    this.settle(entry, new RelayError('TIMEOUT', `publish to ${entry.topic} not acknowledged within ${entry.timeoutMs} ms; its outcome is unknown${last}`));
  }

  private settle(entry: OutboxEntry, outcome: PublishReceipt | RelayError): void {
    if (entry.settled) return;
    entry.settled = true;
    this.deadlines.cancel(entry.deadline);
    if (outcome instanceof RelayError) entry.reject(outcome);
    else entry.resolve(outcome);
  }

  private isDrained(): boolean {
    return this.outbox.size === 0 && this.admission.length === 0;
  }

  private checkDrained(): void {
    if (!this.isDrained() || this.drainWaiters.length === 0) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
