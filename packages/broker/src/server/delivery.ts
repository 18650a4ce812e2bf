import {
  RelayError,
  isWildcard,
  type BrokerFrame,
  type Cursor,
  type DeliveryBatch,
  type StoredMessageFrame,
  type SubscribeFrame,
} from '@relaymq/sdk/protocol';
import type { EncodedMessages, StoredMessage } from '../core/partition/partition.js';
import type { LogEngine } from '../engine/engine.js';
import { atEndOfTick } from '../net/end-of-tick.js';
import type { ClientAccess } from './client-access.js';
import type { AppendListener } from './fanout.js';
import { encodeMessageFrame } from './encoded-delivery.js';
import { GroupMember } from './group-member.js';
import { asRelayError, dataBytes, type SessionContext } from './session-context.js';
import { Subscription, cursorKey } from './subscription.js';

/** Session timeout of a group whose first member named none (the SDK always names one). */
const GROUP_SESSION_TIMEOUT_MS = 10_000;
/** Most messages in one `message` frame (the byte limit below binds first for messages of 128 B and more). */
const MAX_DELIVERY_BATCH = 4096;
/** Most data bytes in one `message` frame (a single larger message still goes alone). */
const MAX_DELIVERY_BYTES = 512 * 1024;
/** A failed disk read for a subscriber is retried after this long. */
const READ_RETRY_MS = 1000;
/** What the delivery path needs of its session. */
export interface DeliverySession {
  readonly ctx: SessionContext;
  /** Whether the session is open (welcomed, not ended): nothing is delivered otherwise. */
  open(): boolean;
  access(): ClientAccess;
  send(frame: BrokerFrame): void;
  /** Sends a frame already encoded (a `message` frame built from stored bytes). */
  sendEncoded(bytes: Uint8Array): void;
  /** Whether the outbound side takes more (below its high-water mark). */
  hasRoom(): boolean;
}

/**
 * The delivery path of one session: its subscriptions with their cursors and
 * credit, and the pump that reads from the engine and pushes `message`
 * frames. It holds no queue per subscriber: it sends only what credit and
 * the outbound side allow, and reads again from the engine next time.
 *
 * Appends reach it through the broker's {@link Fanout} (only those of
 * partitions its subscriptions deliver), and a pass reads only the cursors
 * that may have something to send (`Subscription.ready`) of the
 * subscriptions holding such cursors ({@link pending}).
 */
export class Delivery implements AppendListener {
  /** Messages pushed since the session opened. */
  delivered = 0;
  private readonly subscriptions = new Map<number, Subscription>();
  /**
   * Subscriptions whose `subscribe` is still placing cursors (a time lookup may read the disk,
   * a durable one reads stored positions); an unsubscribe that overtakes one removes it. Each
   * start has its own token: one overtaken, then asked again under the same id, completes as
   * nothing, not as the new one.
   */
  private readonly starting = new Map<number, object>();
  /** Subscriptions waiting for a read from disk. */
  private readonly reading = new Set<Subscription>();
  /** The subscriptions of consumer-group members: group changes concern these only. */
  private readonly members = new Set<Subscription>();
  /** Subscriptions with cursors that may have something to send; the pump visits these only. */
  private readonly pending = new Set<Subscription>();
  private pumpScheduled = false;
  private readonly onGroupsChanged = (group: string | undefined): void => this.groupsChanged(group);

  constructor(private readonly session: DeliverySession) {}

  /** Subscriptions in place (those still starting not counted). */
  get count(): number {
    return this.subscriptions.size;
  }

  /** The session opened: follow consumer-group changes (appends come through the fan-out, per subscription). */
  start(): void {
    this.session.ctx.engine.consumerGroupEvents.on('changed', this.onGroupsChanged);
  }

  /** The session ended: forget every subscription. */
  stop(): void {
    this.session.ctx.engine.consumerGroupEvents.off('changed', this.onGroupsChanged);
    for (const subscription of this.subscriptions.values()) this.session.ctx.fanout.remove(subscription);
    this.subscriptions.clear();
    this.starting.clear();
    this.pending.clear();
    this.members.clear();
  }

  async subscribe(frame: SubscribeFrame): Promise<void> {
    const { ctx } = this.session;
    if (this.subscriptions.has(frame.subscription) || this.starting.has(frame.subscription)) {
      this.session.send({ type: 'error', id: frame.id, code: 'INVALID_ARGUMENT', message: `subscription ${frame.subscription} already exists` });
      return;
    }
    const refuse = (code: 'FORBIDDEN' | 'LIMIT_EXCEEDED', message: string): void => {
      this.session.send({ type: 'error', id: frame.id, code, message });
    };
    if (this.subscriptions.size >= ctx.options.maxSubscriptionsPerConnection) {
      ctx.counters.subscriptionsRejected++;
      refuse('LIMIT_EXCEEDED', `a connection may hold ${ctx.options.maxSubscriptionsPerConnection} subscriptions (maxSubscriptionsPerConnection)`);
      return;
    }
    const access = this.session.access();
    // An exact topic is checked now; a wildcard is filtered per topic, so it never yields a topic the principal may not read.
    if (!isWildcard(frame.pattern) && !access.permissions.mayRead(frame.pattern)) {
      ctx.counters.denied++;
      refuse('FORBIDDEN', `${access.describe()} may not subscribe to ${frame.pattern}`);
      return;
    }
    const credit = Math.min(frame.credit, ctx.options.maxCredit);
    const permissions = access.permissions;
    const member =
      frame.group === undefined || frame.member === undefined ? undefined : new GroupMember(access.owned(frame.group), frame.member, frame.from);
    const subscription = new Subscription(frame.subscription, frame.pattern, frame.from, credit, (topic) => permissions.mayRead(topic), member);
    if (frame.creditBytes !== undefined) subscription.creditBytes = frame.creditBytes;
    const token = {};
    this.starting.set(frame.subscription, token);
    const stillStarting = (): boolean => this.starting.get(frame.subscription) === token && this.starting.delete(frame.subscription);
    let started: Awaited<ReturnType<Subscription['start']>>;
    try {
      if (member !== undefined) await this.join(member, frame);
      // Durable: stored positions come first, except where the client resumes from a position of its own.
      // They name no incarnation: a topic deleted and created again here while they were read must not take them.
      const before = frame.durable === undefined ? undefined : incarnationsOf(ctx.engine, subscription);
      const resume =
        frame.durable === undefined
          ? frame.resume
          : withStoredPositions(frame.resume, await ctx.engine.positions(access.owned(frame.durable), frame.pattern));
      started = await subscription.start(ctx.engine, resume, before);
    } catch (err) {
      if (!stillStarting()) return; // unsubscribed or closed meanwhile
      const error = asRelayError(err);
      this.session.send({ type: 'error', id: frame.id, code: error.code, message: error.message });
      return;
    }
    if (!stillStarting() || !this.session.open()) return;
    const { cursors, resets, stale } = started;
    if (stale.length > 0 && !isWildcard(frame.pattern)) {
      // Its positions are in a topic deleted since (this one was created again under the name): it ends, as at a deletion.
      this.session.send({ type: 'subscribed', id: frame.id, subscription: frame.subscription, cursors: [] });
      const message = `topic ${frame.pattern} was deleted (its resume positions are of an earlier incarnation); subscription ${frame.subscription} ended`;
      this.session.send({ type: 'error', code: 'INVALID_TOPIC', message, subscription: frame.subscription });
      return;
    }
    // A wildcard one goes on and reads those topics from where `from` says: the client forgets its positions there first.
    for (const topic of stale) {
      const message = `topic ${topic} was deleted (the resume positions are of an earlier incarnation); subscription ${frame.subscription} goes on without them`;
      this.session.send({ type: 'error', code: 'INVALID_TOPIC', message, subscription: frame.subscription, topic });
    }
    this.subscriptions.set(frame.subscription, subscription);
    ctx.fanout.add(subscription, this);
    this.pending.add(subscription);
    if (member !== undefined) this.members.add(subscription);
    const reply: BrokerFrame = { type: 'subscribed', id: frame.id, subscription: frame.subscription, cursors };
    if (resets.length > 0) reply.resets = resets;
    this.session.send(reply);
    if (member !== undefined) this.refreshMember(subscription);
    this.schedulePump();
  }

  /** Makes the client a member of its group (ordered by the coordinator); throws the refusal. */
  private async join(member: GroupMember, frame: SubscribeFrame): Promise<void> {
    const result = await this.session.ctx.engine.groupCommand({
      type: 'group-join',
      group: member.group,
      member: member.member,
      pattern: frame.pattern,
      sessionTimeoutMs: frame.sessionTimeoutMs ?? GROUP_SESSION_TIMEOUT_MS,
    });
    if (result.kind === 'group-refused') throw new RelayError(result.code, result.message);
  }

  /** Consumer groups changed in this broker's metadata: members here follow their new assignments. */
  private groupsChanged(group: string | undefined): void {
    let changed = false;
    for (const subscription of this.members) {
      if (group !== undefined && subscription.member?.group !== group) continue;
      changed = this.refreshMember(subscription) || changed;
    }
    if (changed) this.schedulePump();
  }

  /** Sends a member its assignment when it changed; the frame precedes any message of a newly granted partition. */
  private refreshMember(subscription: Subscription): boolean {
    if (subscription.member === undefined || !this.session.open()) return false;
    const { member } = subscription;
    const frame = member.refresh(this.session.ctx.engine, subscription.id, subscription.cursors, (topic) => subscription.matches(topic));
    this.learnStarts(subscription, member);
    if (frame === undefined) return false;
    this.session.send(frame);
    // Granted partitions have new cursors (revoked ones left: the pump drops their keys).
    subscription.markAllReady();
    this.pending.add(subscription);
    return true;
  }

  /**
   * Learns the start of partitions the member was granted but `refresh`
   * left out (its `from` time's offset, or the bounds of a partition hosted
   * elsewhere and never read here: see `GroupMember.takeUnknownStarts`),
   * then refreshes it again; after a failure, once `member.startRetryMs()`
   * passed (a pause that grows with the failures in a row). Only while the subscription lasts.
   */
  private learnStarts(subscription: Subscription, member: GroupMember): void {
    const engine = this.session.ctx.engine;
    const again = (): void => {
      if (this.members.has(subscription) && this.refreshMember(subscription)) this.schedulePump();
    };
    for (const item of member.takeUnknownStarts()) {
      member.learnStart(engine, item).then(again, () => setTimeout(again, member.startRetryMs()).unref());
    }
  }

  credit(id: number, credit: number, bytes = 0): void {
    const subscription = this.subscriptions.get(id);
    if (subscription === undefined) return; // credit racing an unsubscribe is harmless
    subscription.credit = Math.min(subscription.credit + credit, this.session.ctx.options.maxCredit);
    subscription.creditBytes += bytes; // Infinity (no byte limit) stays so
    // New credit reads every cursor of this subscription (as a pass always did): a partition that became readable
    // without an append being announced (a restart re-applying its log) is found here, as before.
    subscription.markAllReady();
    this.pending.add(subscription);
    this.schedulePump();
  }

  unsubscribe(id: number, subscription: number): void {
    const removed = this.subscriptions.get(subscription);
    if (removed !== undefined) {
      this.subscriptions.delete(subscription);
      this.session.ctx.fanout.remove(removed);
      this.pending.delete(removed);
      this.members.delete(removed);
    } else if (!this.starting.delete(subscription)) {
      this.session.send({ type: 'error', id, code: 'SUBSCRIPTION_NOT_FOUND', message: `no subscription ${subscription}` });
      return;
    }
    this.session.send({ type: 'unsubscribed', id, subscription });
  }

  /**
   * The fan-out's call: `topic`, which `subscription` matches, was deleted.
   * A subscription to that topic alone ends: the client is told with an
   * `error` frame naming the subscription (`INVALID_TOPIC`). A wildcard one
   * goes on without the topic's cursors (a topic created again under the
   * name is new to it, read from its start); the client is told with an
   * `error` frame naming the subscription and the topic, so it forgets its
   * positions there as well.
   */
  topicDeleted(subscription: Subscription, topic: string): void {
    if (this.subscriptions.get(subscription.id) !== subscription) return;
    if (!isWildcard(subscription.pattern)) {
      this.subscriptions.delete(subscription.id);
      this.session.ctx.fanout.remove(subscription);
      this.pending.delete(subscription);
      this.members.delete(subscription);
      this.session.send({ type: 'error', code: 'INVALID_TOPIC', message: `topic ${topic} was deleted; subscription ${subscription.id} ended`, subscription: subscription.id });
      return;
    }
    const had = [...subscription.cursors.values()].some((cursor) => cursor.topic === topic);
    subscription.forgetTopic(topic);
    // The client forgets its positions there too (it would take a new topic's first offsets for duplicates).
    if (had) this.session.send({ type: 'error', code: 'INVALID_TOPIC', message: `topic ${topic} was deleted; subscription ${subscription.id} goes on without it`, subscription: subscription.id, topic });
  }

  /**
   * Delivers soon: new messages, new credit, or room again on the outbound
   * side. Coalesced: what comes in one turn of the event loop makes one
   * delivery pass, in a `setImmediate`, or with `thisTurn` (new messages)
   * in this turn, once the callbacks it queued ran: a tick queued from a
   * microtask runs when the microtask queue is drained, so the appends of
   * one callback (every entry a Raft Ready applies, every batch a publish
   * frame stores) still make one pass, after the acknowledgements their
   * promise chains write, without waiting behind the turn's other I/O
   * callbacks (issue 12, publish → deliver on 3 brokers, a subscriber on a
   * follower: fan-out to frame p50 29-32 µs, p90 90-99 µs before, 25 and
   * 56 after; on the leader the pass waits for the acks' chain either way).
   * The other reasons (credit, room, a completed read) may come many to a turn.
   */
  schedulePump(thisTurn = false): void {
    if (this.pumpScheduled || !this.session.open()) return;
    this.pumpScheduled = true;
    const run = (): void => {
      this.pumpScheduled = false;
      this.pump();
    };
    if (thisTurn) atEndOfTick(run);
    else setImmediate(run);
  }

  /** The fan-out's call: `topic`/`partition`, which `subscription`'s pattern matches, got messages. */
  appended(subscription: Subscription, topic: string, partition: number): boolean {
    if (this.subscriptions.get(subscription.id) !== subscription || !subscription.delivers(topic, partition)) return false;
    // An append announced for a topic deleted meanwhile places no cursor.
    if ((this.session.ctx.engine.partitionCount(topic) ?? 0) <= partition) return false;
    subscription.appended(this.session.ctx.engine, topic, partition);
    this.pending.add(subscription);
    this.schedulePump(true);
    return true;
  }

  /**
   * Sends what credit and the socket allow; never buffers messages of its own.
   * Reads served from memory go out at once; a read that needs the disk
   * pauses its subscription until it completes (one at a time, in order).
   * Only ready cursors are read: one that has nothing leaves the ready set.
   */
  private pump(): void {
    if (!this.session.open()) return;
    const { engine, fanout } = this.session.ctx;
    for (const subscription of this.pending) {
      const { ready, cursors } = subscription;
      while (ready.size > 0 && !this.reading.has(subscription) && subscription.credit > 0 && subscription.creditBytes > 0 && this.session.hasRoom()) {
        const batches: DeliveryBatch[] = [];
        let bytes = 0;
        let count = 0;
        // The frame's byte limit, or less when the subscription's byte credit is lower (a larger message still goes alone).
        const frameBytes = Math.min(MAX_DELIVERY_BYTES, subscription.creditBytes);
        for (const key of ready) {
          const room = Math.min(subscription.credit, MAX_DELIVERY_BATCH) - count;
          if (room <= 0 || bytes >= frameBytes) break;
          const cursor = cursors.get(key);
          if (cursor === undefined) {
            ready.delete(key); // revoked from a group member
            continue;
          }
          fanout.stats.cursorsVisited++;
          // A replica storing its messages encoded serves them as stored (issue 12, "encode once").
          const encoded = engine.readEncoded?.(cursor.topic, cursor.partition, cursor.offset, room, frameBytes - bytes);
          if (encoded !== undefined) {
            this.readEncoded(subscription, cursor, encoded, room, frameBytes - bytes);
            break;
          }
          const stored = engine.read(cursor.topic, cursor.partition, cursor.offset, room, frameBytes - bytes);
          if (!Array.isArray(stored)) {
            this.readFromDisk(subscription, cursor, stored);
            break;
          }
          const read = advance(engine, cursor, stored);
          if (read.length === 0) {
            ready.delete(key); // caught up: the next append brings it back
            continue;
          }
          batches.push(...read);
          for (const message of stored) bytes += message.data.length;
          count += stored.length;
        }
        if (count === 0) break;
        this.deliver(subscription, batches, count, bytes);
      }
      if (ready.size === 0) this.pending.delete(subscription);
    }
  }

  /**
   * Whether `subscription` is still this session's and open, and `cursor` still its cursor: not one of a topic
   * deleted while the disk was read (its messages are the old topic's), nor, for a group member, of a partition
   * revoked meanwhile (granted again, it has a new cursor: the grant's position, maybe of the topic created again).
   */
  private stillDelivers(subscription: Subscription, cursor: Cursor): boolean {
    if (!this.session.open() || this.subscriptions.get(subscription.id) !== subscription) return false;
    if (subscription.cursors.get(cursorKey(cursor.topic, cursor.partition)) !== cursor) {
      this.schedulePump();
      return false;
    }
    return true;
  }

  /**
   * Delivers an encoded read (messages as stored, see {@link LogEngine.readEncoded})
   * once it completes, then pumps again; a failed one is read again the
   * usual way ({@link readFromDisk}: the engine may read another replica).
   */
  private readEncoded(subscription: Subscription, cursor: Cursor, reading: Promise<EncodedMessages>, maxCount: number, maxBytes: number): void {
    this.reading.add(subscription);
    reading.then(
      (messages) => {
        this.reading.delete(subscription);
        if (!this.stillDelivers(subscription, cursor)) return;
        const { engine } = this.session.ctx;
        if (messages.count > 0) {
          cursor.offset = messages.firstOffset + messages.count;
          subscription.credit -= messages.count;
          subscription.creditBytes -= messages.dataBytes;
          this.delivered += messages.count;
          this.session.ctx.observer?.delivered(cursor.topic, messages.count, messages.dataBytes);
          const incarnation = subscription.untold.size > 0 ? subscription.tell(cursor.topic) : undefined;
          this.session.sendEncoded(encodeMessageFrame(subscription.id, cursor.topic, cursor.partition, messages, incarnation));
        }
        // Caught up with what this replica applied: the cursor leaves the ready set, and the next append brings it
        // back (an append announced while the read ran has raised the end already). Reading it again at once
        // looped while the partition was idle: a read per turn of the event loop for every caught-up subscriber,
        // which took the CPU from the Raft traffic that brings the next message (issue 12, publish → deliver).
        // Else it stays ready, behind the others, as after any read that needed the disk.
        if (cursor.offset >= engine.bounds(cursor.topic, cursor.partition).end) subscription.ready.delete(cursorKey(cursor.topic, cursor.partition));
        else toBack(subscription, cursor);
        this.schedulePump();
      },
      () => {
        this.reading.delete(subscription);
        if (!this.stillDelivers(subscription, cursor)) return;
        const { engine } = this.session.ctx;
        this.readFromDisk(subscription, cursor, Promise.resolve().then(() => engine.read(cursor.topic, cursor.partition, cursor.offset, maxCount, maxBytes)));
      },
    );
  }

  /** Delivers a disk read once it completes, then pumps again; a failed read is retried a little later. */
  private readFromDisk(subscription: Subscription, cursor: Cursor, reading: Promise<StoredMessage[]>): void {
    this.reading.add(subscription);
    reading.then(
      (stored) => {
        this.reading.delete(subscription);
        if (!this.stillDelivers(subscription, cursor)) return;
        const read = advance(this.session.ctx.engine, cursor, stored);
        // The cursor stays ready: a read that needed the disk (or a replica) and found nothing is tried again, as before.
        toBack(subscription, cursor);
        if (read.length > 0) this.deliver(subscription, read, stored.length, dataBytes(stored));
        this.schedulePump();
      },
      (err: unknown) => {
        this.session.ctx.options.log('warn', 'reading for a subscriber failed; retrying', { topic: cursor.topic, partition: cursor.partition, offset: cursor.offset, error: String(err) });
        toBack(subscription, cursor);
        setTimeout(() => {
          this.reading.delete(subscription);
          if (this.session.open() && this.subscriptions.get(subscription.id) === subscription) this.schedulePump();
        }, READ_RETRY_MS).unref();
      },
    );
  }

  private deliver(subscription: Subscription, batches: DeliveryBatch[], count: number, bytes: number): void {
    subscription.credit -= count;
    subscription.creditBytes -= bytes;
    this.delivered += count;
    const observer = this.session.ctx.observer;
    if (observer !== undefined) for (const batch of batches) observer.delivered(batch.topic, batch.messages.length, dataBytes(batch.messages));
    if (subscription.untold.size > 0) {
      for (const batch of batches) {
        const incarnation = subscription.tell(batch.topic);
        if (incarnation !== undefined) batch.incarnation = incarnation;
      }
    }
    this.session.send({ type: 'message', subscription: subscription.id, batches });
  }
}

/**
 * Puts a ready cursor after the subscription's other ready ones, once a read
 * of it that needed the disk (or a replica) completed: a delivery pass reads
 * from the first ready cursor, and on a unified partition every read needs the
 * disk, so a cursor that stays ready (caught up, or its reads failing) would
 * otherwise be read first forever and the subscription's other partitions
 * never (chaos seed 712 unified: five of six partitions never delivered).
 */
function toBack(subscription: Subscription, cursor: Cursor): void {
  const key = cursorKey(cursor.topic, cursor.partition);
  if (subscription.ready.delete(key)) subscription.ready.add(key);
}

/**
 * Moves `cursor` past `stored` (messages read from it, in offset order) and
 * returns them as delivery batches: one per run of consecutive offsets, so
 * a dense read is one batch. A batch starting above the cursor where the
 * engine's offsets may have holes and the cursor is not below the
 * partition's start skipped a hole, and says so (`from`); below the start,
 * retention removed messages: the batch says nothing and the client reports
 * a gap, as with every engine.
 */
export function advance(engine: Pick<LogEngine, 'offsetHoles' | 'bounds'>, cursor: Cursor, stored: readonly StoredMessage[]): DeliveryBatch[] {
  const batches: DeliveryBatch[] = [];
  let start = 0;
  for (let i = 1; i <= stored.length; i++) {
    if (i < stored.length && (stored[i] as StoredMessage).offset === (stored[i - 1] as StoredMessage).offset + 1) continue;
    const first = stored[start] as StoredMessage;
    const batch: DeliveryBatch = { topic: cursor.topic, partition: cursor.partition, firstOffset: first.offset, messages: stored.slice(start, i).map(toFrame) };
    if (first.offset > cursor.offset && engine.offsetHoles === true && cursor.offset >= engine.bounds(cursor.topic, cursor.partition).start) batch.from = cursor.offset;
    batches.push(batch);
    cursor.offset = (stored[i - 1] as StoredMessage).offset + 1;
    start = i;
  }
  return batches;
}

/** A stored message as it goes on the wire; its offset is implied by its batch. */
function toFrame(message: StoredMessage): StoredMessageFrame {
  const frame: StoredMessageFrame = { timestamp: message.timestamp, data: message.data };
  if (message.encoding !== 'raw') frame.encoding = message.encoding;
  if (message.key !== undefined) frame.key = message.key;
  if (message.headers !== undefined) frame.headers = message.headers;
  return frame;
}

/** The incarnation of each topic `subscription` matches now (none when the engine tracks no incarnations). */
function incarnationsOf(engine: LogEngine, subscription: Subscription): Map<string, number> {
  const found = new Map<string, number>();
  if (engine.topicIncarnation === undefined) return found;
  for (const topic of engine.topics()) {
    const incarnation = subscription.matches(topic) ? engine.topicIncarnation(topic) : undefined;
    if (incarnation !== undefined) found.set(topic, incarnation);
  }
  return found;
}

/** The client's resume cursors, plus the stored durable positions of partitions it did not name. */
function withStoredPositions(resume: readonly Cursor[], stored: readonly Cursor[]): Cursor[] {
  const named = new Set(resume.map((c) => cursorKey(c.topic, c.partition)));
  return [...resume, ...stored.filter((c) => !named.has(cursorKey(c.topic, c.partition)))];
}
