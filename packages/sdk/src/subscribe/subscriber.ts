import {
  RelayError,
  assertDurableName,
  SESSION_TIMEOUT_BOUNDS,
  assertPattern,
  isWildcard,
  decodePayload,
  type AssignmentFrame,
  type Cursor,
  type DeliveryBatch,
  type MessageFrame,
  type StartPosition,
  type StoredMessageFrame,
} from '../protocol/index.js';
import type { BrokerConnection } from '../connection/connection.js';
import { PositionCommitter, type CommitPolicy } from './committer.js';
import { handleWithPolicy, resolveFailurePolicy, type FailureHooks, type FailurePolicy, type HandlingOutcome, type RetryOptions } from './failure-policy.js';
import type { Message, MessageHandler } from './message.js';
import { GroupMembership, type AssignedEvent, type MembershipHooks, type RevokedEvent } from './group-membership.js';
import { MessageQueue } from './message-queue.js';
import { PLACEMENT_LIMITS, homeBroker, type PlacementLimits } from './placement.js';

export type { Message, MessageHandler } from './message.js';

/** Options of `subscribe`. */
export interface SubscribeOptions {
  /**
   * Where to start in each matching partition.
   * @defaultValue `"new"`
   */
  from?: StartPosition;
  /** Messages in flight to this subscription; defaults to the client's `subscriptionCredit`. */
  credit?: number;
  /**
   * Payload bytes in flight to this subscription (received, not yet handled);
   * defaults to the client's `subscriptionCreditBytes`. With `credit`, it
   * bounds what a slow handler lets pile up in this process: the broker
   * sends while both allow, a message larger than what is left included.
   * Brokers before this option ignore it (then `credit` alone applies).
   */
  creditBytes?: number;
  /**
   * Makes the subscription durable under this name (1–128 characters of
   * `[A-Za-z0-9_.-]`): the cluster stores, per partition, the position after
   * the last message whose handler finished, and a later subscription with the
   * same name — in this process or after a restart, on any broker — resumes
   * right there. `from` then applies only to partitions with no stored position.
   *
   * Positions are committed in batches (see `ClientOptions.commit`) and on
   * `unsubscribe()` and `close()`; after a crash, messages handled since the
   * last commit are delivered again. They never go back: the broker keeps the
   * larger of the stored and a committed position, so a stale commit is ignored.
   * A message whose handler fails for good (see `retry` and `deadLetter`)
   * counts as handled once it was dead-lettered or skipped.
   *
   * One client may hold only one subscription per durable name. Two clients
   * using the same name at once both receive every message and share the
   * stored positions, which then follow whichever of them is ahead: run one
   * live subscriber per durable name.
   */
  durable?: string;
  /**
   * When a handler throws or rejects, it is called again for the same message
   * after a backoff, up to `retry.attempts` calls in all; the next message of
   * the subscription waits meanwhile (order is kept). The defaults are those of
   * {@link RetryOptions}: 3 attempts, 100 ms then 200 ms apart (randomized).
   */
  retry?: RetryOptions;
  /**
   * Where a message goes after its last failed attempt: it is published to
   * this topic (same key, its own headers plus the `relaymq-dead-letter-*`
   * headers saying where it came from, why and how often it failed) and the
   * subscription moves on once that publish is acknowledged; its position is
   * committed only then. Without it, the message is skipped and an `error`
   * event reports it (printed with `console.error` when nothing listens).
   */
  deadLetter?: string;
  /**
   * Makes the client a member of this consumer group (same grammar as
   * `durable`, which it excludes): each partition matching the pattern is
   * delivered to exactly one live member of the group at a time, in offset
   * order, and the group's positions are committed in the cluster. Members
   * may be connected to different brokers; they must all use the same
   * pattern. See docs/consumer-groups.md for the guarantees.
   */
  group?: string;
  /**
   * With `group`: a member whose heartbeats (sent every third of this) stop
   * reaching the cluster for this long loses its partitions to the others.
   * The member itself stops handling once it could not renew its lease for
   * this long, so it never handles a partition the group gave away.
   * @defaultValue 10000
   */
  sessionTimeoutMs?: number;
}

/** Default of `SubscribeOptions.sessionTimeoutMs`. */
export const DEFAULT_SESSION_TIMEOUT_MS = 10_000;

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
  /** The durable name of the subscription, when it has one. */
  durable?: string;
}

/** Subscriber counters, part of `client.stats()`. */
export interface SubscribeStats {
  subscriptions: number;
  /** Messages handed to handlers. */
  delivered: number;
  /** Messages received again after a failover and dropped before any handler saw them. */
  duplicatesDropped: number;
  gaps: number;
  /** Position commits of durable subscriptions the broker acknowledged. */
  commits: number;
  /** Position commits that failed (retried, or dropped when refused for good). */
  commitFailures: number;
  /** Position commits (durable and group) sent and not yet answered. */
  commitsInFlight: number;
  /** Handler calls that threw or rejected (every attempt counted). */
  handlerFailures: number;
  /** Messages published to a dead-letter topic after their last failed attempt. */
  deadLettered: number;
  /** Messages skipped after their last failed attempt (no dead-letter topic, or it refused them for good). */
  skipped: number;
  /** Group position commits the broker refused as `FENCED` (the member no longer owned the partition). */
  fencedCommits: number;
  /** Subscriptions moved to the broker leading their topic's partitions (see placement.ts), counted once that broker answered the subscribe. */
  leaderMoves: number;
  /** The broker serving each subscription now: the one that answered its latest subscribe (`undefined` while none has, e.g. during a move). */
  servedBy: Array<{ subscription: number; pattern: string; broker: string | undefined }>;
}

/** What the subscriber asks of the client to serve subscriptions from partition leaders (see placement.ts). */
export interface LeaderLinks {
  /**
   * The open pooled connection to broker `id`, if any and that broker says it
   * can serve (ready); without one the pool is asked to open it (then
   * `connectionOpened` follows). Marks `id` as in use, so the pool keeps that link.
   */
  want(id: string): BrokerConnection | undefined;
  /**
   * Moves traffic (group requests included) off the active broker for
   * `reason`, to a ready standby, unless none is open or the active broker
   * changed less than `settledMs` ago (see `BrokerPool.moveOff`); whether it moved.
   */
  moveOff?(reason: RelayError, settledMs: number): boolean;
  /**
   * An open pooled connection to a ready broker other than `brokerId`, the
   * active one first (see `BrokerPool.readyElsewhere`), marked in use; nothing
   * is closed. For a durable subscription broker `brokerId` keeps refusing.
   */
  elsewhere?(brokerId: string): BrokerConnection | undefined;
}

/** What the subscriber reports upward. */
export interface SubscriberListener {
  gap(event: GapEvent): void;
  /** A payload did not decode, or a message was skipped after its last failed attempt. */
  handlerError(error: unknown, message: Message, attempts?: number): void;
  /** A position commit was refused for good (e.g. `LIMIT_EXCEEDED`). */
  commitRefused(error: RelayError, durable: string): void;
  /** Publishes a dead letter (the client's idempotent publish); resolves once acknowledged. */
  publish: FailureHooks['publish'];
  /** A dead-letter publish failed; it is tried again. */
  deadLetterFailed(error: RelayError, message: Message): void;
  /** A group member was granted partitions. */
  assigned(event: AssignedEvent): void;
  /** A group member no longer handles partitions. */
  revoked(event: RevokedEvent): void;
  /** The broker ended a subscription (its topic was deleted). */
  ended(error: RelayError, subscription: { id: number; pattern: string }): void;
}

const cursorKey = (topic: string, partition: number): string => `${partition}:${topic}`;

/** Payload bytes of `messages[from … to - 1]`, as the broker counts them for byte credit. */
function payloadBytes(messages: readonly StoredMessageFrame[], from: number, to: number): number {
  let bytes = 0;
  for (let i = from; i < to; i++) bytes += (messages[i] as StoredMessageFrame).data.byteLength;
  return bytes;
}

/** A lookup that found the topic missing is confirmed after this many `retryBaseMs` (1 s by default). */
const MISSING_CONFIRM_FACTOR = 4;

/**
 * Logs a subscription left for another whose positions it keeps (see
 * `SubscriptionState.logLost`): a client pooled to independent in-memory
 * brokers (each its own log) fails over between a few of them; a restarted
 * broker's log never comes back, so more would only be kept for nothing.
 */
const MAX_LEFT_LOGS = 4;

/** Delay before asking again for a subscription a connected broker could not serve yet. */
const RESUBSCRIBE_RETRY_MS = 250;
/**
 * `NOT_READY` refusals in a row after which a durable subscribe is sent to
 * another ready broker (see {@link Subscriber.refusedHere}), as a group
 * member's join moves (GroupMembership.joinRefused): the broker answers so
 * once it waited (up to a second) for its metadata to apply the positions
 * read, so two in a row mean it stays behind, not an election.
 */
const REFUSALS_TO_MOVE = 2;
/**
 * A subscribe's own timeout, in request timeouts. A broker slower than the
 * request timeout to accept (a group join or a durable subscribe is a
 * metadata Raft commit) still answers it, a refusal included, and a dead one
 * is found by the connection's pings; only a live broker that never answers
 * is asked again, after this bound. The first subscribe is failed at one
 * request timeout by {@link Subscriber.subscribe} still.
 */
const SUBSCRIBE_TIMEOUT_FACTOR = 3;

/** A live subscription. */
export interface Subscription {
  readonly id: number;
  readonly pattern: string;
  /** Stops delivery and tells the broker. Messages already queued are dropped. */
  unsubscribe(): Promise<void>;
}

/**
 * A subscription consumed with `for await`. Leaving the loop unsubscribes; a
 * subscription the broker ends (its topic deleted: `INVALID_TOPIC`) makes the
 * loop throw that error once the messages already received were pulled.
 */
export interface MessageStream<T = unknown> extends Subscription, AsyncIterable<Message<T>> {}

/** Client-side state of one subscription; survives reconnects. */
class SubscriptionState {
  /** Next offset expected per partition: everything below it was received. */
  readonly next = new Map<string, Cursor>();
  /**
   * The incarnation of each topic whose positions are in {@link next}, as a
   * broker told it (`subscribed` cursors): sent back with the resume
   * positions, so a broker whose topic was deleted and created again since
   * does not take them for the new topic's. Absent for a topic no broker
   * told one of (an older broker, an engine without incarnations). A topic
   * first met in a message frame is told on that frame's batch.
   */
  readonly incarnations = new Map<string, number>();
  readonly queue = new MessageQueue();
  connection: BrokerConnection | undefined;
  /** The broker leading the most of the topic's partitions, which should serve it (see placement.ts). */
  home: string | undefined;
  /** A leader lookup is under way (one at a time). */
  placing = false;
  /** The broker named no leaders (a single broker, not a cluster): nothing to look up again. */
  noLeaders = false;
  /**
   * A leader lookup found the topic missing (deleted): `pending` until the
   * lookup that confirms it is due (a broker may apply a creation late), then
   * `due`: a lookup still finding it missing ends the subscription.
   */
  missing: 'no' | 'pending' | 'due' = 'no';
  /** Makes the confirming lookup due; cleared when a lookup finds the topic again. */
  missingTimer: ReturnType<typeof setTimeout> | undefined;
  confirmed = false;
  /** Durable subscribes refused `NOT_READY` in a row on `connection`: see {@link REFUSALS_TO_MOVE}. */
  refusedInARow = 0;
  /**
   * A broker that kept refusing this durable subscription, and until when it
   * is not where the subscription is placed (see `PlacementLimits.refusingAvoidMs`).
   */
  avoid: { broker: string; untilMs: number } | undefined;
  /**
   * Counts the subscribe requests sent (see `Subscriber.register`). Message (and
   * assignment) frames on `connection` are taken only once the latest one is answered: back on a
   * connection it left (a leader link that closed right after a move), frames of
   * the subscription there before are still arriving, and the broker answers
   * `subscribed` after the `unsubscribe` and before the new one's first message.
   */
  registrations = 0;
  /** The `logId` of the broker last subscribed to that named one (an in-memory broker): see `Subscriber.register`. */
  logId: string | undefined;
  /**
   * Partitions whose positions were in a log that is gone ({@link logLost}),
   * with the offset expected next there: the first position the new log
   * gives each (a `subscribed` cursor, or the first batch of a partition
   * that appeared later) reports the reset, once. At most one entry per
   * partition the subscription had a position in.
   */
  private readonly lostLogPositions = new Map<string, Cursor>();
  /**
   * Positions (and incarnations) in the logs this subscription left, by
   * `logId`, the latest last, at most {@link MAX_LEFT_LOGS}: back on one of
   * them (another broker of the pool, not a restart), it resumes there.
   */
  private readonly leftLogs = new Map<string, { next: Map<string, Cursor>; incarnations: Map<string, number> }>();
  /** A log was lost after the subscribe was confirmed: a resubscribe reads the partitions it has no position in from their start. */
  private followsNewLog = false;
  /**
   * Messages of a lost log received and not yet handled: they are handled
   * still (they were published), but their positions are never committed, as
   * those are offsets of the old log.
   */
  private readonly ofLostLog = new WeakSet<Message>();
  /**
   * The latest subscribe request was answered: message frames on `connection`
   * are this subscription's, and credit may be given back (a broker ignores
   * credit for a subscription it is still starting, see {@link grant}).
   */
  accepting = false;
  active = true;
  /**
   * A group member whose `subscribe()` timed out: it left the group (see
   * `GroupMembership.abandon`), and each subscribe sent before, answered
   * since, makes it leave again (see `Subscriber.leaveAgain`).
   */
  abandoned = false;
  /** Commits positions; present on durable and group subscriptions only. */
  committer: PositionCommitter | undefined;
  /** Present on consumer-group subscriptions. */
  membership: GroupMembership | undefined;
  /**
   * Group members: the grant (epoch) each queued message arrived under. A
   * message held while the lease was invalid is handled only under that grant:
   * if the partition was lost and granted again meanwhile, another member
   * handled it and the new grant starts after it.
   */
  private readonly grants = new WeakMap<Message, number>();
  /**
   * The incarnation of its topic each queued message arrived under (as a broker
   * told it; absent: none told). Its commit names it, so a broker whose topic
   * was deleted and created again meanwhile stores nothing of it.
   */
  private readonly messageIncarnations = new WeakMap<Message, number>();
  /** The message whose handler runs now. */
  private inFlight: Message | undefined;
  private readonly idleWaiters: Array<() => void> = [];
  private handling = false;
  private consumedSinceGrant = 0;
  private bytesSinceGrant = 0;
  /** Aborted when the subscription ends: a handler waiting to be retried is not called again. */
  readonly ended = new AbortController();
  readonly confirmedWaiters: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];

  constructor(
    readonly id: number,
    readonly pattern: string,
    private readonly from: StartPosition,
    readonly credit: number,
    readonly creditBytes: number,
    private readonly handler: MessageHandler,
    private readonly owner: Subscriber,
    readonly durable: string | undefined,
    private readonly policy: FailurePolicy,
    readonly group: string | undefined = undefined,
  ) {}

  /**
   * The `from` for a resubscribe: partitions without a cursor appeared after
   * we subscribed, or are in a new log that replaced the one read (every
   * message of it is new to us).
   */
  resumeFrom(): StartPosition {
    return this.followsNewLog || (this.confirmed && this.from === 'new') ? 'earliest' : this.from;
  }

  /**
   * The broker names another log than the one this subscription's positions
   * are in (an in-memory broker restarted: its offsets start over). Called
   * before the subscribe is sent to it. The positions are forgotten, so none
   * is sent as a resume position (one below the new log's end would skip its
   * messages below it, silently) and the partitions are read from the new
   * log's start; the messages of the old log still queued are handled but
   * never committed, nor is any position of the old log still pending.
   * A consumer-group member drops its grants instead (`GroupMembership.logLost`),
   * and the message whose handler still runs is never committed either: the
   * new group may grant its partition again before it finishes (under any
   * epoch, the same one included), and its position would pass for one of
   * the new log, which the group keeps as the larger.
   * `left`: the log its positions are in, kept (see {@link leftLogs});
   * `to`: the broker's, whose positions are resumed if it is one left before
   * (a client pooled to independent in-memory brokers), with no reset.
   */
  logLost(left: string, to: string): void {
    this.queue.forEach((message) => this.ofLostLog.add(message));
    if (this.inFlight !== undefined) this.ofLostLog.add(this.inFlight);
    if (this.membership !== undefined) {
      this.membership.logLost();
      return;
    }
    this.leftLogs.delete(left);
    this.leftLogs.set(left, { next: new Map(this.next), incarnations: new Map(this.incarnations) });
    if (this.leftLogs.size > MAX_LEFT_LOGS) this.leftLogs.delete(this.leftLogs.keys().next().value as string);
    const back = this.leftLogs.get(to);
    this.leftLogs.delete(to);
    if (back === undefined) for (const [key, cursor] of this.next) this.lostLogPositions.set(key, cursor);
    this.next.clear();
    this.incarnations.clear();
    this.committer?.forgetAll();
    if (this.confirmed) this.followsNewLog = true;
    if (back === undefined) return;
    for (const [key, cursor] of back.next) {
      this.next.set(key, cursor);
      this.lostLogPositions.delete(key); // nothing lost there
    }
    for (const [topic, incarnation] of back.incarnations) this.incarnations.set(topic, incarnation);
  }

  /**
   * The new log's first position for `topic`/`partition` is `offset`: if the
   * subscription had a position there in a lost log, a `gap` event with
   * `reset: true` says so (once per partition); whether it had.
   */
  private reportLostLog(topic: string, partition: number, offset: number): boolean {
    const key = cursorKey(topic, partition);
    const lost = this.lostLogPositions.get(key);
    if (lost === undefined) return false;
    this.lostLogPositions.delete(key);
    this.owner.counters.gaps++;
    this.owner.listener.gap(this.gapEvent({ topic, partition, expectedOffset: lost.offset, firstAvailableOffset: offset, reset: true }));
    return true;
  }

  /**
   * A broker answered a (re)subscribe with `cursors`: those of partitions read
   * in a lost log report the reset, and a durable subscription stores them,
   * as a new one stores where it starts (a restart before its first message
   * there misses nothing of the new log).
   */
  startNewLog(cursors: readonly Cursor[]): void {
    if (this.lostLogPositions.size === 0) return;
    const restarted = cursors.filter((cursor) => this.reportLostLog(cursor.topic, cursor.partition, cursor.offset));
    if (this.membership === undefined) this.committer?.advance(restarted);
  }

  resumeCursors(): Cursor[] {
    return [...this.next.values()].map(({ topic, partition, offset }) => {
      const incarnation = this.incarnations.get(topic);
      return incarnation === undefined ? { topic, partition, offset } : { topic, partition, offset, incarnation };
    });
  }

  /** A broker answered a (re)subscribe: the incarnations its cursors name are those of the positions from now on. */
  learnIncarnations(cursors: readonly Cursor[]): void {
    for (const cursor of cursors) if (cursor.incarnation !== undefined) this.incarnations.set(cursor.topic, cursor.incarnation);
  }

  /** `topic` was deleted: its positions are forgotten, with their incarnation. */
  forgetTopic(topic: string): void {
    for (const [key, cursor] of this.next) {
      if (cursor.topic !== topic) continue;
      this.dropPartition(cursor.topic, cursor.partition);
      this.next.delete(key);
    }
    this.incarnations.delete(topic);
  }

  receive(batches: DeliveryBatch[]): void {
    for (const batch of batches) {
      const key = cursorKey(batch.topic, batch.partition);
      // A member drops what arrives for a partition it no longer owns (sent before the broker learnt it).
      if (this.membership !== undefined && !this.membership.owns(batch.topic, batch.partition)) {
        this.grant(batch.messages.length, payloadBytes(batch.messages, 0, batch.messages.length));
        continue;
      }
      const grant = this.membership?.grantOf(batch.topic, batch.partition);
      // A topic no `subscribed` named (created after the subscription started): its first delivery names it.
      if (batch.incarnation !== undefined) this.incarnations.set(batch.topic, batch.incarnation);
      const incarnation = this.incarnations.get(batch.topic);
      // A hole (offsets that never held a message) right where we are is no gap: skip it.
      const at = this.next.get(key);
      // A partition read in a lost log, first met again here (its topic came back after the resubscribe).
      if (at === undefined) this.reportLostLog(batch.topic, batch.partition, batch.firstOffset);
      if (batch.from !== undefined && at !== undefined && at.offset === batch.from) this.next.set(key, { ...at, offset: batch.firstOffset });
      // The batch's offsets are consecutive: duplicates can only lead it, a gap only precede it.
      const expected = this.next.get(key)?.offset;
      const { messages, firstOffset } = batch;
      let i = 0;
      if (expected !== undefined && firstOffset < expected) {
        i = Math.min(expected - firstOffset, messages.length);
        this.owner.counters.duplicatesDropped += i;
        this.grant(i, payloadBytes(messages, 0, i)); // the broker spent credit on them; give it back
      }
      if (i === messages.length) continue;
      if (expected !== undefined && firstOffset > expected) {
        this.owner.counters.gaps++;
        this.owner.listener.gap(this.gapEvent({ topic: batch.topic, partition: batch.partition, expectedOffset: expected, firstAvailableOffset: firstOffset }));
      }
      for (; i < messages.length; i++) {
        const stored = messages[i] as StoredMessageFrame;
        const message = this.toMessage(batch, firstOffset + i, stored);
        if (grant !== undefined) this.grants.set(message, grant);
        if (incarnation !== undefined) this.messageIncarnations.set(message, incarnation);
        this.queue.push(message, stored.data.byteLength);
      }
      this.next.set(key, { topic: batch.topic, partition: batch.partition, offset: firstOffset + messages.length });
    }
    void this.drain();
  }

  /** A gap event naming this subscription's durable name, when it has one. */
  gapEvent(event: GapEvent): GapEvent {
    if (this.durable !== undefined) event.durable = this.durable;
    return event;
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
        const bytes = this.queue.shiftedBytes;
        if (this.membership !== undefined) {
          // Never handle past the lease: the group may have given the partition away meanwhile.
          if (!this.membership.leaseHeld()) {
            await this.membership.leaseValid();
            if (!this.active) break;
          }
          if (!this.membership.owns(message.topic, message.partition, this.grants.get(message))) {
            this.grant(1, bytes);
            continue;
          }
        }
        this.inFlight = message;
        let outcome: HandlingOutcome;
        try {
          // A handler that returns normally is not awaited: no promise per message (issue 12: replay).
          const handling = handleWithPolicy(message, this.handler, this.policy, this.failureHooks, this.ended.signal, this.durable ?? this.group);
          outcome = handling instanceof Promise ? await handling : handling;
        } finally {
          this.inFlight = undefined;
          if (this.idleWaiters.length > 0) for (const waiter of this.idleWaiters.splice(0)) waiter();
        }
        // Unsubscribed while retrying: the message was not handled, so its position stays where it was.
        if (outcome.kind === 'aborted') break;
        if (outcome.kind === 'dead-lettered') this.owner.counters.deadLettered++;
        if (outcome.kind === 'skipped') {
          this.owner.counters.skipped++;
          this.owner.listener.handlerError(outcome.deadLetterError ?? outcome.error, message, outcome.attempts);
        }
        this.owner.counters.delivered++;
        this.markHandled(message);
        this.grant(1, bytes);
      }
    } finally {
      this.handling = false;
    }
  }

  /** The message's position may be committed (a group member: only for a partition it still owns). */
  markHandled(message: Message): void {
    if (this.ofLostLog.has(message)) return; // its offset is of a log that is gone
    if (this.membership !== undefined && !this.membership.handled(message.topic, message.partition, message.offset)) return;
    const incarnation = this.messageIncarnations.get(message);
    // Its topic was deleted while the handler ran (forgotten, maybe told another incarnation since): the position
    // is the deleted topic's, never the new one's.
    if (incarnation !== undefined && this.incarnations.get(message.topic) !== incarnation) return;
    this.committer?.handled(message.topic, message.partition, message.offset, incarnation);
  }

  /** Resolves once no handler runs for `topic`/`partition` (any partition when omitted). */
  idle(topic?: string, partition?: number): Promise<void> {
    const busy = (): boolean => this.inFlight !== undefined && (topic === undefined || (this.inFlight.topic === topic && this.inFlight.partition === partition));
    if (!busy()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const check = (): void => (busy() ? void this.idleWaiters.push(check) : resolve());
      this.idleWaiters.push(check);
    });
  }

  /** A group member lost or released a partition: its queued messages go (credit back), its pending position too. */
  dropPartition(topic: string, partition: number): void {
    const dropped = this.queue.remove((m) => m.topic === topic && m.partition === partition);
    this.committer?.forget(topic, partition);
    if (dropped.count > 0) this.grant(dropped.count, dropped.bytes);
  }

  private readonly failureHooks: FailureHooks = {
    publish: (topic, data, options) => this.owner.listener.publish(topic, data, options),
    attemptFailed: () => void this.owner.counters.handlerFailures++,
    deadLetterFailed: (error, message) => this.owner.listener.deadLetterFailed(error, message),
  };

  /**
   * Gives credit back to the broker as messages are handled (or dropped), in
   * chunks of a quarter of the window, in messages or in bytes, whichever
   * fills first: the broker keeps sending while earlier frames are handled.
   */
  private grant(consumed: number, bytes: number): void {
    this.consumedSinceGrant += consumed;
    this.bytesSinceGrant += bytes;
    // Until the subscribe is answered the broker may still be starting it (a durable one reads its stored positions
    // through the metadata group) and would drop the credit: it waits for {@link accepted}.
    if (!this.accepting) return;
    if (this.consumedSinceGrant < Math.max(1, Math.floor(this.credit / 4)) && this.bytesSinceGrant < Math.max(1, Math.floor(this.creditBytes / 4))) return;
    this.sendGrant();
  }

  private sendGrant(): void {
    const credit = this.consumedSinceGrant;
    const grantedBytes = this.bytesSinceGrant;
    this.consumedSinceGrant = 0;
    this.bytesSinceGrant = 0;
    this.connection?.send({ type: 'credit', subscription: this.id, credit, bytes: grantedBytes });
  }

  /** The latest subscribe was answered: its frames are taken, and credit held meanwhile goes to the broker now. */
  accepted(): void {
    this.accepting = true;
    if (this.consumedSinceGrant > 0 || this.bytesSinceGrant > 0) this.sendGrant();
  }

  /** Credit for a (re)subscribe: the window minus what is still queued here, in messages and in bytes. */
  initialCredit(): { credit: number; creditBytes: number } {
    this.consumedSinceGrant = 0;
    this.bytesSinceGrant = 0;
    return { credit: Math.max(0, this.credit - this.queue.length), creditBytes: Math.max(0, this.creditBytes - this.queue.bytes) };
  }
}

/**
 * Client side of subscriptions: remembers per partition the next offset, so
 * that after a failover it resubscribes from there and drops anything the
 * new broker repeats; the handler sees each message once, in partition order.
 */
export class Subscriber {
  readonly counters = { delivered: 0, duplicatesDropped: 0, gaps: 0, commits: 0, commitFailures: 0, commitsInFlight: 0, handlerFailures: 0, deadLettered: 0, skipped: 0, fencedCommits: 0, leaderMoves: 0 };
  private readonly subscriptions = new Map<number, SubscriptionState>();
  private nextId = 1;
  private connection: BrokerConnection | undefined;
  /** Looks the leaders of placed subscriptions up again (see {@link PLACEMENT_LIMITS}); runs while one exists. */
  private refreshTimer: ReturnType<typeof setInterval> | undefined;

  constructor(
    readonly listener: SubscriberListener,
    private readonly defaultCredit: number,
    private readonly requestTimeoutMs: number,
    private readonly commitPolicy: CommitPolicy,
    private readonly defaultCreditBytes: number,
    /** Absent: every subscription is served by the active broker. */
    private readonly links?: LeaderLinks,
    private readonly placement: PlacementLimits = PLACEMENT_LIMITS,
  ) {}

  stats(): SubscribeStats {
    // Served once the latest subscribe was answered: a move or resubscribe still waiting for it serves from nowhere yet.
    const servedBy = [...this.subscriptions.values()].map((s) => ({ subscription: s.id, pattern: s.pattern, broker: s.accepting && s.connection?.open === true ? s.connection.brokerId : undefined }));
    return { subscriptions: this.subscriptions.size, ...this.counters, servedBy };
  }

  async subscribe(pattern: string, handler: MessageHandler, options: SubscribeOptions = {}): Promise<Subscription> {
    assertPattern(pattern);
    const credit = options.credit ?? this.defaultCredit;
    if (!Number.isInteger(credit) || credit < 1) throw new RelayError('INVALID_ARGUMENT', 'credit must be a positive integer');
    const creditBytes = options.creditBytes ?? this.defaultCreditBytes;
    if (!Number.isSafeInteger(creditBytes) || creditBytes < 1) throw new RelayError('INVALID_ARGUMENT', 'creditBytes must be a positive integer');
    const from = options.from ?? 'new';
    checkFrom(from);
    const durable = options.durable;
    if (durable !== undefined) {
      assertDurableName(durable);
      if ([...this.subscriptions.values()].some((s) => s.durable === durable)) {
        throw new RelayError('INVALID_ARGUMENT', `durable ${durable} is already used by a subscription of this client`);
      }
    }
    const group = options.group;
    const sessionTimeoutMs = options.sessionTimeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS;
    if (group !== undefined) {
      if (durable !== undefined) throw new RelayError('INVALID_ARGUMENT', 'a subscription is either durable or in a group, not both');
      assertDurableName(group);
      if (!Number.isInteger(sessionTimeoutMs) || sessionTimeoutMs < SESSION_TIMEOUT_BOUNDS.minMs || sessionTimeoutMs > SESSION_TIMEOUT_BOUNDS.maxMs) {
        throw new RelayError('INVALID_ARGUMENT', `sessionTimeoutMs must be an integer from ${SESSION_TIMEOUT_BOUNDS.minMs} to ${SESSION_TIMEOUT_BOUNDS.maxMs}`);
      }
    } else if (options.sessionTimeoutMs !== undefined) {
      throw new RelayError('INVALID_ARGUMENT', 'sessionTimeoutMs applies to group subscriptions only');
    }
    const policy = resolveFailurePolicy(options.retry, options.deadLetter);
    const state = new SubscriptionState(this.nextId++, pattern, from, credit, creditBytes, handler, this, durable, policy, group);
    if (durable !== undefined) state.committer = this.committerFor(durable);
    if (group !== undefined) this.makeMember(state, group, sessionTimeoutMs);
    this.subscriptions.set(state.id, state);
    const confirmed = new Promise<void>((resolve, reject) => state.confirmedWaiters.push({ resolve, reject }));
    const timer = setTimeout(() => {
      // Given up: a member's join may have reached the coordinator all the same, which would keep the member and the
      // partitions it granted it, delivered by nobody, until its session expired. It leaves (see `fail`).
      state.abandoned = state.membership !== undefined;
      this.fail(state, new RelayError('TIMEOUT', `subscribe to ${pattern} not confirmed within ${this.requestTimeoutMs} ms`));
    }, this.requestTimeoutMs);
    if (this.connection !== undefined) this.register(state, this.connection);
    try {
      await confirmed;
    } finally {
      clearTimeout(timer);
    }
    this.place(state);
    return { id: state.id, pattern, unsubscribe: () => this.unsubscribe(state) };
  }

  /**
   * The async-iterator form: messages are pulled, and credit follows the pulls.
   * A message counts as handled (for durable positions) once the consumer asks
   * for the next one or leaves the loop.
   */
  async stream<T>(pattern: string, options: SubscribeOptions = {}): Promise<MessageStream<T>> {
    const buffered: Array<{ message: Message<T>; release: () => void }> = [];
    let wake: (() => void) | undefined;
    let inHand: { message: Message<T>; release: () => void } | undefined;
    let done = false;
    const subscription = await this.subscribe(
      pattern,
      (message) =>
        new Promise<void>((release) => {
          // Resolved when the consumer is done with it: one message in hand, the rest wait as credit.
          buffered.push({ message: message as Message<T>, release });
          wake?.();
        }),
      options,
    );
    // The broker may end it (its topic deleted): a waiting pull wakes and throws why (see `fail`).
    const ended = this.subscriptions.get(subscription.id)?.ended.signal;
    ended?.addEventListener('abort', () => wake?.(), { once: true });
    const finish = async (): Promise<void> => {
      if (done) return;
      done = true;
      wake?.();
      // Count the message in hand as handled before unsubscribing commits the positions.
      if (inHand !== undefined) this.subscriptions.get(subscription.id)?.markHandled(inHand.message);
      inHand?.release();
      inHand = undefined;
      await subscription.unsubscribe();
    };
    return {
      id: subscription.id,
      pattern,
      unsubscribe: finish,
      [Symbol.asyncIterator]: () => ({
        next: async (): Promise<IteratorResult<Message<T>>> => {
          inHand?.release();
          inHand = undefined;
          for (;;) {
            const next = buffered.shift();
            if (next !== undefined) {
              inHand = next;
              return { value: next.message, done: false };
            }
            if (!done && ended?.reason instanceof RelayError) throw ended.reason;
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

  /**
   * A new active connection (or none): resubscribe there from the known
   * positions, except a subscription a leader's connection still serves.
   * A subscription served by the active broker that went (a failover) looks
   * its leader up again, as when a leader's link closes, not at the next
   * periodic refresh.
   */
  setConnection(connection: BrokerConnection | undefined): void {
    const previous = this.connection;
    this.connection = connection;
    for (const state of this.subscriptions.values()) {
      if (state.connection !== undefined && state.connection !== previous && state.connection.open) continue;
      state.connection = undefined;
      if (connection === undefined) continue;
      this.register(state, connection);
      // Commits that failed with the old connection need not wait for their retry timer.
      if (state.committer?.busy === true) void state.committer.flush();
      // Its home, if any, was the broker just left (a leader's open link was skipped above): a lookup naming it still is tried again.
      const lost = state.home;
      state.home = undefined;
      if (state.confirmed) this.placeAgain(state, 0, lost);
    }
  }

  /** A pooled connection opened: subscriptions whose leader it reaches move there. */
  connectionOpened(connection: BrokerConnection): void {
    for (const state of this.subscriptions.values()) {
      if (state.home === connection.brokerId) this.move(state, connection);
    }
  }

  /**
   * A pooled connection closed. Subscriptions it served go back to the active
   * broker at once, from their positions (nothing lost, repeats dropped), and
   * look their leader up again: a killed leader's partitions get a new one.
   * The active connection's own subscriptions move with {@link setConnection}.
   */
  connectionClosed(connection: BrokerConnection): void {
    for (const state of this.subscriptions.values()) {
      if (state.connection !== connection) continue;
      state.connection = undefined;
      if (state.home === connection.brokerId) state.home = undefined;
      const active = this.connection;
      if (active !== undefined && active !== connection && active.open) this.register(state, active);
      this.placeAgain(state, 0, connection.brokerId);
    }
  }

  onMessage(connection: BrokerConnection, frame: MessageFrame): void {
    const state = this.subscriptions.get(frame.subscription);
    // Frames from a connection the subscription has left are stale, and so are those from before it came back to it.
    if (state === undefined || state.connection !== connection || !state.accepting) return;
    state.receive(frame.batches);
  }

  onAssignment(connection: BrokerConnection, frame: AssignmentFrame): void {
    const state = this.subscriptions.get(frame.subscription);
    // Gated as message frames are: before the latest subscribe (a join again on the same connection) is answered,
    // an assignment is the earlier subscription's; the broker sends the new one's right after `subscribed`.
    if (state === undefined || state.connection !== connection || !state.accepting) return;
    state.membership?.onAssignment(frame);
  }

  /**
   * For a graceful close: stops handing messages to handlers, then commits the
   * positions of durable subscriptions. Resolves once they were stored or their
   * commits failed (each is bounded by the request timeout).
   */
  async stopAndCommit(): Promise<void> {
    this.stopDelivery();
    await Promise.all([...this.subscriptions.values()].map(async (state) => {
      await state.committer?.close();
      await state.membership?.leave();
    }));
  }

  /** Stops handing messages to handlers (a handler already running finishes). */
  stopDelivery(): void {
    for (const state of this.subscriptions.values()) {
      state.active = false;
      state.ended.abort();
      state.queue.clear();
    }
  }

  /** Ends every subscription (on client close). */
  closeAll(error: RelayError): void {
    for (const state of [...this.subscriptions.values()]) this.fail(state, error);
    this.stopRefresh();
  }

  /** Whether `state` may be served by its topic's leader: one exact topic, not a group member, leader links available. */
  private placeable(state: SubscriptionState): boolean {
    return this.links !== undefined && state.active && !state.noLeaders && state.membership === undefined && !isWildcard(state.pattern);
  }

  /**
   * Looks up the leaders of `state`'s topic on the active broker and moves the
   * subscription to the one leading the most partitions (see placement.ts).
   * `lost`: a broker whose connection just closed; a lookup still naming it
   * (no new leader elected yet) is tried again. Only once the topic is known
   * to exist (a cursor of it). The lookup never creates the topic
   * (`create: false`): one deleted while the subscription moved (the leader
   * started it after applying the deletion, so nothing told it) ends the
   * subscription with `INVALID_TOPIC` once a second lookup, a moment later,
   * confirms it is gone (a broker may apply the topic's creation late).
   * A broker from before `create` creates it again, as every lookup did.
   */
  private place(state: SubscriptionState, attempt: number = this.placement.retryAttempts, lost?: string): void {
    const connection = this.connection;
    if (!this.placeable(state) || state.placing || connection === undefined || !connection.open) return;
    this.startRefresh();
    if (![...state.next.values()].some((cursor) => cursor.topic === state.pattern)) return;
    state.placing = true;
    // Only a lookup sent once the confirmation was due confirms a miss: one sent earlier and answered late saw no later state.
    const confirming = state.missing === 'due';
    connection.request({ type: 'metadata', topics: [state.pattern], create: false }).then(
      (reply) => {
        state.placing = false;
        state.missing = 'no';
        clearTimeout(state.missingTimer);
        if (!this.placeable(state) || reply.type !== 'topics') return;
        const leaders = reply.topics.find((info) => info.topic === state.pattern)?.leaders;
        if (leaders === undefined) {
          state.noLeaders = true; // a single broker: every subscription is on the leader already
          return;
        }
        // On a tie the broker serving it now stays (no needless move), else the one it is headed for.
        const serving = state.connection?.open === true ? state.connection.brokerId : undefined;
        const stay = serving !== undefined && homeBroker(leaders, serving) === serving;
        const home = stay ? serving : homeBroker(leaders, state.home);
        if (home === undefined || home === lost) {
          this.placeAgain(state, attempt + 1, lost);
          return;
        }
        // It refused this subscription lately: served where it is until then (the next refresh looks again).
        if (state.avoid !== undefined && state.avoid.broker === home && Date.now() < state.avoid.untilMs) return;
        state.home = home;
        const link = this.links?.want(home);
        // Not pooled yet: the pool dials it, and connectionOpened moves the subscription.
        if (link !== undefined) this.move(state, link);
      },
      (err: unknown) => {
        state.placing = false;
        if (!(err instanceof RelayError) || err.code !== 'INVALID_TOPIC') {
          this.placeAgain(state, attempt + 1, lost);
          return;
        }
        if (!this.placeable(state)) return;
        if (state.missing === 'due' && confirming) {
          this.endDeleted(state, new RelayError('INVALID_TOPIC', `topic ${state.pattern} was deleted; subscription ${state.id} ended (${err.message})`));
        } else if (state.missing === 'due') {
          this.place(state); // fell due while this one was in flight (the timer's lookup was skipped): confirm now
        } else if (state.missing === 'no') {
          state.missing = 'pending';
          state.missingTimer = setTimeout(() => {
            state.missing = 'due';
            this.place(state);
          }, this.placement.retryBaseMs * MISSING_CONFIRM_FACTOR);
          state.missingTimer.unref?.();
        }
        // `pending`: a refresh came before the confirmation was due; the scheduled lookup confirms.
      },
    );
  }

  /** {@link place} after a pause growing with `attempt`; past the last attempt, the periodic refresh does it. */
  private placeAgain(state: SubscriptionState, attempt: number, lost: string | undefined): void {
    if (attempt >= this.placement.retryAttempts || !this.placeable(state)) return;
    setTimeout(() => this.place(state, attempt, lost), this.placement.retryBaseMs * 2 ** attempt).unref?.();
  }

  /**
   * Serves `state` from `to` from now on: subscribes there from the positions
   * received so far and leaves the old connection, whose frames are ignored
   * from now on (what was in flight there comes again from `to`, and repeats
   * are dropped by offset), so the handler still sees each message once, in
   * partition order.
   */
  private move(state: SubscriptionState, to: BrokerConnection): void {
    if (!state.active || !state.confirmed || state.connection === to || !to.open) return;
    const from = state.connection;
    if (from?.open === true) from.send({ type: 'unsubscribe', id: 0, subscription: state.id });
    this.register(state, to, true);
  }

  private startRefresh(): void {
    if (this.refreshTimer !== undefined) return;
    this.refreshTimer = setInterval(() => {
      let placed = 0;
      for (const state of this.subscriptions.values()) {
        if (!this.placeable(state)) continue;
        placed++;
        // Keeps the link to the leader in use (the pool closes links no one wanted for a while), and follows a moved leader.
        if (state.home !== undefined) this.links?.want(state.home);
        this.place(state);
      }
      if (placed === 0) this.stopRefresh();
    }, this.placement.refreshMs);
    this.refreshTimer.unref?.();
  }

  private stopRefresh(): void {
    if (this.refreshTimer !== undefined) clearInterval(this.refreshTimer);
    this.refreshTimer = undefined;
  }

  /** Subscribes `state` on `connection`; `move`: to its topic's leader (counted in `leaderMoves` once answered). */
  private register(state: SubscriptionState, connection: BrokerConnection, move = false): void {
    // Positions and a member's grants are of the log they came from: on another (an in-memory broker restarted) they
    // are gone, before the subscribe or any commit reaches it (a position of the old log would pass for one of the
    // new log, and a member's under an epoch the new group reuses).
    const { logId } = connection;
    if (logId !== undefined) {
      if (state.logId !== undefined && state.logId !== logId) state.logLost(state.logId, logId);
      state.logId = logId;
    }
    if (state.connection !== connection) state.refusedInARow = 0; // refusals in a row by one broker
    state.connection = connection;
    const registration = ++state.registrations;
    state.accepting = false;
    const request = {
      type: 'subscribe' as const,
      subscription: state.id,
      pattern: state.pattern,
      from: state.resumeFrom(),
      resume: state.resumeCursors(),
      ...state.initialCredit(),
      ...(state.durable === undefined ? {} : { durable: state.durable }),
      ...(state.membership === undefined
        ? {}
        : { group: state.membership.group, member: state.membership.member, sessionTimeoutMs: state.membership.sessionTimeoutMs, resume: [] }),
    };
    const sentAt = Date.now();
    // Positions are applied synchronously: messages may follow the reply in the same read.
    connection.request(request, (reply) => {
      if (!state.active) {
        // Failed meanwhile: a late join must not start its heartbeats. An abandoned member's was ordered by the
        // coordinator, maybe after the leave sent when it was abandoned: it leaves again.
        if (state.abandoned && reply.type === 'subscribed') this.leaveAgain(state, connection, true);
        return;
      }
      this.confirmed(state, reply);
      if (registration === state.registrations && reply.type === 'subscribed') {
        state.accepted();
        state.refusedInARow = 0;
        if (move) this.counters.leaderMoves++;
      }
      // The join counts as a heartbeat: the lease runs from when it was sent.
      if (reply.type === 'subscribed') {
        state.membership?.joined(sentAt);
        state.membership?.start();
      }
    }, this.requestTimeoutMs * SUBSCRIBE_TIMEOUT_FACTOR).catch((err: unknown) => {
      const error = err instanceof RelayError ? err : new RelayError('INTERNAL', String(err));
      if (!state.active) {
        // Refused (a join the coordinator may have ordered: NOT_READY) or unanswered (maybe started there since).
        if (state.abandoned) this.leaveAgain(state, connection, error.code === 'TIMEOUT');
        return;
      }
      if (error.code === 'TIMEOUT') {
        // Unanswered past SUBSCRIBE_TIMEOUT_FACTOR request timeouts by a broker that answers pings: a later answer
        // is dropped with the request, so taking it as registered could leave it registered nowhere, silently.
        // Asked again instead, as a move is: left first, as the broker refuses a second subscribe under the same
        // id, then from the positions received. Frames stay ignored until the new one is answered.
        if (registration === state.registrations && state.active && state.connection === connection && connection.open) {
          connection.send({ type: 'unsubscribe', id: 0, subscription: state.id });
          this.register(state, connection, move);
        }
        return;
      }
      // A refusal ends the subscription. A lost connection resubscribes on the next one; a broker
      // that is up but briefly unable to answer (a durable lookup without a metadata quorum) is asked again.
      if (!error.retriable) this.fail(state, error);
      else if (connection.open) {
        // A member's join refused again and again there (that broker's metadata stays behind): it moves to another.
        if (registration === state.registrations && state.connection === connection) {
          state.membership?.joinRefused(error);
          // So does a durable subscribe, alone: the client's other traffic stays where it is.
          const elsewhere = this.refusedHere(state, connection, error);
          if (elsewhere !== undefined) {
            this.register(state, elsewhere);
            return;
          }
        }
        setTimeout(() => {
          if (state.active && state.connection === connection && connection.open) this.register(state, connection, move);
        }, RESUBSCRIBE_RETRY_MS);
      }
    });
  }

  /**
   * A durable subscribe of `state` was refused by `connection`'s broker for
   * `error`, and would be asked there again: the connection to ask instead,
   * after {@link REFUSALS_TO_MOVE} `NOT_READY` refusals in a row (its metadata
   * stays behind the metadata leader's, so it refuses every durable subscribe,
   * until the subscribe times out or for good on a resubscribe), when another
   * ready broker is pooled. That broker is avoided by the placement for
   * `refusingAvoidMs` (it may lead the topic). Only that subscription moves: the
   * broker serves the client's publishes, commits and other subscriptions
   * (a commit does not wait for its metadata), so the pool's connection to it
   * stays, unlike a group member's `moveOff`, whose heartbeats go over the
   * active connection and fail there.
   */
  private refusedHere(state: SubscriptionState, connection: BrokerConnection, error: RelayError): BrokerConnection | undefined {
    if (state.durable === undefined || state.membership !== undefined || error.code !== 'NOT_READY') return undefined;
    if (++state.refusedInARow < REFUSALS_TO_MOVE) return undefined;
    const elsewhere = this.links?.elsewhere?.(connection.brokerId);
    if (elsewhere === undefined) return undefined; // none: asked here again, and the next refusal looks again
    state.refusedInARow = 0;
    state.avoid = { broker: connection.brokerId, untilMs: Date.now() + this.placement.refusingAvoidMs };
    // No longer headed there: a link to it opening again (connectionOpened) must not move it back before then.
    if (state.home === connection.brokerId) state.home = undefined;
    return elsewhere;
  }

  /**
   * A subscribe of `state`, an abandoned group member, sent on `connection`
   * before it was abandoned, was answered (or timed out) since: the join it
   * carried may have been ordered by the coordinator after the leave sent
   * then, so the member leaves again (best effort). `held`: the broker may
   * hold the subscription (answered `subscribed`, or not answered yet): it
   * ends it there too.
   */
  private leaveAgain(state: SubscriptionState, connection: BrokerConnection, held: boolean): void {
    if (held && connection.open) connection.send({ type: 'unsubscribe', id: 0, subscription: state.id });
    void state.membership?.abandon();
  }

  /** Makes `state` a consumer-group member: its membership, and a committer whose positions carry their epochs. */
  private makeMember(state: SubscriptionState, group: string, sessionTimeoutMs: number): void {
    const request = async (frame: Parameters<MembershipHooks['request']>[0]): Promise<void> => {
      const connection = this.connection;
      if (connection === undefined || !connection.open) throw new RelayError('NOT_CONNECTED', 'no broker connected for the group request');
      await connection.request(frame);
    };
    const membership = new GroupMembership(group, sessionTimeoutMs, {
      request,
      dropPartition: (topic, partition) => state.dropPartition(topic, partition),
      startPartition: (topic, partition, offset) => {
        state.next.set(cursorKey(topic, partition), { topic, partition, offset });
        // Stored at once, so a partition never committed before has a position the next owner starts from.
        state.committer?.advance([{ topic, partition, offset }]);
      },
      reset: (topic, partition, expectedOffset, firstAvailableOffset) => {
        this.counters.gaps++;
        this.listener.gap(state.gapEvent({ topic, partition, expectedOffset, firstAvailableOffset, reset: true }));
      },
      idle: (topic, partition) => state.idle(topic, partition),
      rejoin: () => {
        const connection = state.connection;
        if (connection === undefined || !connection.open || !state.active) return;
        connection.send({ type: 'unsubscribe', id: 0, subscription: state.id });
        this.register(state, connection);
      },
      assigned: (event) => this.listener.assigned(event),
      revoked: (event) => this.listener.revoked(event),
      moveAway: (reason, settledMs) => void this.links?.moveOff?.(reason, settledMs),
    });
    state.membership = membership;
    state.committer = new PositionCommitter(
      this.commitPolicy,
      {
        send: async (positions) => {
          const fenced = membership.fence(positions);
          if (fenced.length > 0) await request({ type: 'group-commit', group, member: membership.member, positions: fenced });
        },
        refused: (error) => {
          // FENCED: those partitions are another member's now; the assignment that says so follows.
          if (error.code === 'FENCED') this.counters.fencedCommits++;
          else this.listener.commitRefused(error, group);
        },
      },
      this.counters,
    );
  }

  /** A committer sending a durable subscription's positions over the active connection. */
  private committerFor(durable: string): PositionCommitter {
    return new PositionCommitter(
      this.commitPolicy,
      {
        send: async (positions) => {
          const connection = this.connection;
          if (connection === undefined || !connection.open) throw new RelayError('NOT_CONNECTED', 'no broker connected to commit positions to');
          await connection.request({ type: 'commit', durable, positions });
        },
        refused: (error) => this.listener.commitRefused(error, durable),
      },
      this.counters,
    );
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
      this.listener.gap(state.gapEvent({ topic: reset.topic, partition: reset.partition, expectedOffset: expected, firstAvailableOffset: reset.offset, reset: true }));
    }
    const cursors = (reply.cursors ?? []).map(({ topic, partition, offset }) => ({ topic, partition, offset }));
    for (const cursor of cursors) {
      const key = cursorKey(cursor.topic, cursor.partition);
      if (!state.next.has(key)) state.next.set(key, cursor);
    }
    state.learnIncarnations(reply.cursors ?? []);
    state.startNewLog(reply.cursors ?? []);
    // A new durable subscription stores where it starts, so a restart before its first message misses nothing
    // (with the incarnation the broker named: see markHandled).
    if (!state.confirmed && state.membership === undefined) state.committer?.advance(reply.cursors ?? []);
    state.confirmed = true;
    for (const waiter of state.confirmedWaiters.splice(0)) waiter.resolve();
  }

  private async unsubscribe(state: SubscriptionState): Promise<void> {
    if (!this.subscriptions.delete(state.id)) return;
    state.active = false;
    clearTimeout(state.missingTimer);
    state.ended.abort();
    state.queue.clear();
    await state.committer?.close();
    // A member leaves once its in-flight handler finished, with its final positions: its partitions move at once.
    await state.membership?.leave();
    const connection = state.connection;
    state.connection = undefined;
    if (connection?.open) {
      await connection.request({ type: 'unsubscribe', subscription: state.id }).catch(() => {
        // the connection closed meanwhile: the broker forgot the subscription with it
      });
    }
  }

  /**
   * The broker ended subscription `id` on `connection` (an `error` frame
   * naming it; its topic was deleted): it ends here too, and is reported.
   * With `topic`, only that topic is gone (deleted) and the subscription goes
   * on: its positions there are forgotten, so a topic created again under
   * the name is read from offset 0 rather than taken for duplicates.
   * Either way nothing more is committed for the topic.
   */
  onEnded(connection: BrokerConnection, id: number, error: RelayError, topic?: string): void {
    const state = this.subscriptions.get(id);
    if (state === undefined) return;
    if (topic === undefined) {
      // Whole (its topic deleted): true from any connection it was on, e.g. one it just left to move to the
      // leader, which may have started it after applying the deletion and so tells it nothing.
      if (state.connection === connection) state.connection = undefined; // that broker forgot it already
      this.endDeleted(state, error);
      return;
    }
    if (state.connection !== connection) return;
    state.forgetTopic(topic);
  }

  /** Ends `state`, whose topic was deleted, and reports it: nothing more is committed for the topic. */
  private endDeleted(state: SubscriptionState, error: RelayError): void {
    for (const cursor of state.next.values()) state.dropPartition(cursor.topic, cursor.partition);
    this.fail(state, error);
    this.listener.ended(error, { id: state.id, pattern: state.pattern });
  }

  private fail(state: SubscriptionState, error: RelayError): void {
    if (!this.subscriptions.delete(state.id)) return;
    state.active = false;
    clearTimeout(state.missingTimer);
    state.ended.abort(error); // the reason a pulling stream throws
    state.queue.clear();
    void state.committer?.close(); // a last attempt; nothing waits for it
    if (state.abandoned) {
      // Leaves now (a join ordered already); a subscribe still in flight is left alone, so the broker answers it
      // rather than drop it for the unsubscribe, and its answer makes the member leave again (see `leaveAgain`).
      void state.membership?.abandon();
    } else {
      state.membership?.stop();
      state.connection?.send({ type: 'unsubscribe', id: 0, subscription: state.id });
    }
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
