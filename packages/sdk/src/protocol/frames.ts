/**
 * The frames of the relaymq wire protocol. Each WebSocket binary message holds
 * exactly one frame, a msgpack map with a `type` field. Batching is inside the
 * frames (`publish.messages`, `ack.acks`, `message.messages`), so one socket
 * write carries many messages.
 *
 * Request/response pairs are correlated by a numeric `id` chosen by the
 * requester (unique per connection while outstanding).
 */

import type { AssignmentFrame, GroupCommitFrame, GroupHeartbeatFrame } from './groups.js';

/** Version of the wire protocol spoken by this build. */
export const PROTOCOL_VERSION = 1;

/**
 * How many replicas must store a publish before it is acknowledged:
 *
 * - `quorum` (the default): a majority of the partition's replicas stored
 *   it (fsynced, with the brokers' default `fsync: always`). Survives the
 *   loss of any minority of replicas.
 * - `all`: every replica stored it.
 * - `leader`: the partition's leader wrote it to its own log (fsynced with
 *   `fsync: always`, handed to the OS with `interval`), before any other
 *   replica has it — like Kafka's `acks=1`. Faster, with a loss window: if
 *   the leader crashes or is cut off before the message reaches a quorum,
 *   a new leader may not have it and it is lost although acknowledged. The
 *   idempotent resend after a failover cannot bring it back (its ack
 *   removed it from the outbox).
 * - `none`: fire-and-forget, at most once: no ack frame is sent and it is
 *   never deduplicated.
 *
 * On a single broker `leader`, `quorum` and `all` are the same.
 */
export type AckLevel = 'none' | 'leader' | 'quorum' | 'all';

/** How `data` bytes are to be read: `raw` bytes, or a `msgpack`-encoded value. */
export type Encoding = 'raw' | 'msgpack';

/**
 * Where a new subscription starts in each partition it matches:
 * `new` (only messages published after it), `earliest` (everything retained),
 * `{ offset }` (that offset of every matching partition) or `{ time }` (the
 * first message stored at or after that Unix time in milliseconds).
 */
export type StartPosition = 'new' | 'earliest' | { offset: number } | { time: number };

/** A position in one partition: the next offset to deliver. */
export interface Cursor {
  topic: string;
  partition: number;
  offset: number;
  /**
   * Which life of `topic` the offset belongs to (a topic deleted and created
   * again under its name is another incarnation, offsets from 0). A broker
   * tells it in `subscribed` cursors when its engine tracks incarnations; a
   * client sends it back with `resume` positions, and a broker whose topic
   * has another incarnation does not resume there (see docs/protocol.md).
   * In a `commit`, a broker stores no position of a deleted incarnation.
   * Absent: unknown, the offset is taken as it is.
   */
  incarnation?: number;
}

/** Load a broker advertises so clients can spread over the cluster. */
export interface BrokerLoad {
  connections: number;
  partitionsLed: number;
}

/** One broker as seen by the cluster. */
export interface BrokerInfo {
  id: string;
  /** The URL clients dial, e.g. `ws://127.0.0.1:7401`. */
  url: string;
  state: 'alive' | 'suspect' | 'dead';
  load?: BrokerLoad;
}

/** A broker's view of the cluster. */
export interface ClusterView {
  brokers: BrokerInfo[];
}

/** Limits a broker announces in its `welcome`. */
export interface BrokerLimits {
  /** Largest frame, in bytes, the broker accepts. */
  maxPayload: number;
  /** How many recent seqs per producer and partition the broker can still answer as duplicates. */
  dedupeWindow: number;
  /** Largest credit a subscription may hold. */
  maxCredit: number;
}

// ---- client → broker -------------------------------------------------------

/** First frame of a connection. */
export interface HelloFrame {
  type: 'hello';
  version: number;
  clientId: string;
  /** Stable id of this client's producer; the key of idempotent publishing. */
  producerId: string;
  token?: string;
}

/** One message of a publish batch. */
export interface OutgoingMessage {
  data: Uint8Array;
  /** How to read `data`; absent means `raw`. */
  encoding?: Encoding;
  key?: string;
  headers?: Record<string, string>;
}

/**
 * Consecutive messages for one partition at one ack level. Ids and seqs count
 * up from the first, so a batch names them once instead of per message.
 */
export interface PublishBatch {
  topic: string;
  partition: number;
  ack: AckLevel;
  /** Correlation id of the first message; message `i` has `firstId + i`, echoed in its `ack` or `nack`. */
  firstId: number;
  /** Per producer and partition, gap-free, starting at 0: message `i` has `firstSeq + i`. */
  firstSeq: number;
  /**
   * The producer's incarnation in this partition (absent: 0). The SDK starts a
   * new one, with seqs from 0, when the old one cannot continue (a message
   * refused for good, or a broker that lost the producer's state); the broker
   * deduplicates per (producerId, incarnation), so copies of the old
   * incarnation still in flight can never be stored under new numbers.
   */
  incarnation?: number;
  messages: OutgoingMessage[];
}

export interface PublishFrame {
  type: 'publish';
  batches: PublishBatch[];
}

export interface SubscribeFrame {
  type: 'subscribe';
  id: number;
  /** Client-chosen subscription number, unique on the connection. */
  subscription: number;
  pattern: string;
  from: StartPosition;
  /** Positions already known to the client (after a failover); they override `from`. */
  resume: Cursor[];
  /** Initial number of messages the broker may send. */
  credit: number;
  /**
   * Initial payload (`data`) bytes the broker may send; absent: no byte
   * limit, only `credit`. A message larger than what is left still goes
   * while any byte credit is left, so a delivery may overshoot by one
   * message; the credit goes negative and later grants make up for it.
   */
  creditBytes?: number;
  /**
   * Name of a durable subscription (1–128 characters of `[A-Za-z0-9_.-]`).
   * Partitions with a position stored under this name start there; `resume`
   * still overrides it, and `from` applies only where neither is known.
   */
  durable?: string;
  /**
   * Name of a consumer group (same grammar as `durable`): the client becomes
   * member `member` of it, and the broker delivers only the partitions
   * assigned to the member (see `assignment`). Excludes `durable`.
   */
  group?: string;
  /** The member id, with `group`: chosen by the client, kept through reconnects. */
  member?: string;
  /** With `group`: how long the member may go without a heartbeat before it loses its partitions. */
  sessionTimeoutMs?: number;
}

/**
 * Stores positions of a durable subscription: for each partition, the next
 * offset to deliver (the last handled offset + 1). The broker keeps the
 * larger of the stored and the committed offset, so a stale or reordered
 * commit never moves a position back. A position naming an incarnation of
 * its topic deleted since is not stored: the others are, and the broker
 * answers `INVALID_TOPIC` naming it (brokers before incarnations ignore the field).
 */
export interface CommitFrame {
  type: 'commit';
  id: number;
  durable: string;
  positions: Cursor[];
}

/** Grants more credit to a subscription. */
export interface CreditFrame {
  type: 'credit';
  subscription: number;
  credit: number;
  /** More payload bytes, for a subscription that named `creditBytes` (ignored by one that did not). */
  bytes?: number;
}

export interface UnsubscribeFrame {
  type: 'unsubscribe';
  id: number;
  subscription: number;
}

/** Asks for topic metadata; missing topics are created with the default partition count, unless `create` is false. */
export interface MetadataFrame {
  type: 'metadata';
  id: number;
  topics: string[];
  /**
   * `false`: a lookup, which never creates a topic (as Kafka's
   * `allow_auto_topic_creation`): a missing topic is answered with an `error`
   * `INVALID_TOPIC` naming it. Absent or `true`: missing topics are created.
   * Brokers before this field ignore it and create them.
   */
  create?: boolean;
}

// ---- broker → client -------------------------------------------------------

export interface WelcomeFrame {
  type: 'welcome';
  version: number;
  brokerId: string;
  clientId: string;
  producerId: string;
  cluster: ClusterView;
  /**
   * Whether this broker can serve now: joined its cluster, a metadata leader
   * known, not draining. Absent (older brokers): ready. Clients prefer ready
   * brokers and ignore membership removals from one that is not.
   */
  ready?: boolean;
  limits: BrokerLimits;
  /** The broker pings at this interval and drops connections silent for twice as long. */
  heartbeatMs: number;
  /**
   * Names the broker's log when it does not survive a restart (an in-memory
   * broker: a new one at each start); absent where offsets are never reused
   * (a cluster, a backbone). Another `logId` than the one a client's positions
   * and group grants came from means those are of a log that is gone: its
   * offsets and the group's epochs started over.
   */
  logId?: string;
}

/**
 * Acknowledges `count` consecutive messages: ids `id … id+count-1` are stored
 * at offsets `offset … offset+count-1`.
 */
export interface Ack {
  id: number;
  offset: number;
  count: number;
  /** True when these (producerId, seq) had already been stored; the offsets are the original ones. */
  duplicate: boolean;
  /** Set when the answering broker forwarded the batch: the partition leader, to publish to directly. */
  leader?: string;
}

export interface AckFrame {
  type: 'ack';
  acks: Ack[];
}

/** Refusal of one published message. */
export interface NackFrame {
  type: 'nack';
  id: number;
  code: string;
  message: string;
  leader?: string;
  expectedSeq?: number;
}

export interface SubscribedFrame {
  type: 'subscribed';
  id: number;
  subscription: number;
  /** Start position of every partition the pattern matched when subscribing. */
  cursors: Cursor[];
  /**
   * Resumed positions the broker could not honour because they lie beyond the
   * partition's end: the log was lost (an in-memory broker restarted) and its
   * offsets start over. Delivery restarts at the cursor given here.
   */
  resets?: Cursor[];
}

/** A stored message as delivered to subscribers; its offset follows from its batch. */
export interface StoredMessageFrame {
  /** Broker time of the append, Unix milliseconds. */
  timestamp: number;
  data: Uint8Array;
  /** Absent means `raw`. */
  encoding?: Encoding;
  key?: string;
  headers?: Record<string, string>;
}

/** Consecutive messages of one partition: message `i` has offset `firstOffset + i`. */
export interface DeliveryBatch {
  topic: string;
  partition: number;
  firstOffset: number;
  messages: StoredMessageFrame[];
  /**
   * Offsets `from` up to `firstOffset` (excluded) hold no message: a hole in
   * a partition whose offsets are not dense (the RabbitMQ backbone), not a
   * gap (nothing was removed). Absent when the batch continues where the
   * previous one of its partition ended, or after a retention gap.
   */
  from?: number;
  /**
   * The incarnation of `topic` (see {@link Cursor.incarnation}), on a batch of
   * a topic whose incarnation the subscription was not told yet on this
   * connection (one its `subscribed` cursors did not name: created after it
   * subscribed, or created again after a deletion): the first delivery of it
   * only. Absent otherwise, and from brokers whose engine tracks none.
   */
  incarnation?: number;
}

export interface MessageFrame {
  type: 'message';
  subscription: number;
  batches: DeliveryBatch[];
}

/** Answers a `commit` once its positions are stored (in a cluster: replicated on a quorum). */
export interface CommittedFrame {
  type: 'committed';
  id: number;
}

export interface UnsubscribedFrame {
  type: 'unsubscribed';
  id: number;
  subscription: number;
}

export interface TopicInfo {
  topic: string;
  partitions: number;
  /** In a cluster: the id of each partition's leader as the answering broker knows it (`""` when unknown). */
  leaders?: string[];
}

export interface TopicsFrame {
  type: 'topics';
  id: number;
  topics: TopicInfo[];
}

/** Membership update pushed to clients. */
export interface ClusterFrame {
  type: 'cluster';
  cluster: ClusterView;
  /** The sender's readiness now, as in `welcome` (absent: ready); pushed again whenever it changes. */
  ready?: boolean;
}

/** The broker is going away (shutdown): move to another broker. */
export interface GoawayFrame {
  type: 'goaway';
  code: string;
  message: string;
}

/**
 * An error. With an `id` it answers that request (subscribe, unsubscribe,
 * metadata) and the connection stays open; without one it is fatal and the
 * connection closes right after.
 */
export interface ErrorFrame {
  type: 'error';
  code: string;
  message: string;
  id?: number;
  /**
   * Set (without `id`): the broker ended this subscription, e.g. its topic
   * was deleted (`INVALID_TOPIC`); the connection and its other
   * subscriptions go on. Without `id` or `subscription` the error concerns
   * the connection, which closes.
   */
  subscription?: number;
  /**
   * With `subscription`: only this topic of the (wildcard) subscription is
   * gone (deleted), the subscription goes on. Its positions in the topic are
   * forgotten: a topic created again under the name is read from its start.
   */
  topic?: string;
}

// ---- both directions -------------------------------------------------------

export interface PingFrame {
  type: 'ping';
  id: number;
}

export interface PongFrame {
  type: 'pong';
  id: number;
}

/** Frames a client sends. */
export type ClientFrame =
  | HelloFrame
  | PublishFrame
  | SubscribeFrame
  | CreditFrame
  | UnsubscribeFrame
  | CommitFrame
  | MetadataFrame
  | GroupCommitFrame
  | GroupHeartbeatFrame
  | PingFrame
  | PongFrame;

/** Frames a broker sends. */
export type BrokerFrame =
  | WelcomeFrame
  | AckFrame
  | NackFrame
  | SubscribedFrame
  | MessageFrame
  | UnsubscribedFrame
  | CommittedFrame
  | TopicsFrame
  | ClusterFrame
  | GoawayFrame
  | ErrorFrame
  | AssignmentFrame
  | PingFrame
  | PongFrame;

/** Any frame. */
export type Frame = ClientFrame | BrokerFrame;
