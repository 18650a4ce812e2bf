import { RelayError, assertPattern, patternProblem } from '@relaymq/sdk/protocol';
import { parsePeer, type PeerAddress } from './net/peer-transport.js';
import { createLogger, type LogFunction, type LogLevel } from './observability/logger.js';
import type { StorageLayout } from './storage/data-layout.js';
import type { FileSystem } from './storage/fs.js';
import { MIN_ADMIN_TOKEN_LENGTH } from './security/admin-token.js';
import { CLUSTER_ID_PATTERN } from './core/metadata/metadata.js';
import { STREAM_PREFIX_PATTERN } from './engine/backbone/naming.js';
import { parseBackboneUrls, type BackboneEndpoint } from './engine/backbone/url.js';
import { resolveRaftConfig } from './core/raft/index.js';
import { resolveSwimConfig } from './core/swim/index.js';
import {
  PEER_DEFAULTS,
  RAFT_PRESETS,
  SWIM_TIMING_PRESETS,
  TICK_MS,
  raftConfigOf,
  swimConfigOf,
  swimOptionOf,
  type PeerOptions,
  type RaftOptions,
  type ResolvedPeerOptions,
  type ResolvedRaftOptions,
  type ResolvedSwimOptions,
  type SwimOptions,
  type TimingPreset,
} from './tuning.js';

export type { PeerOptions, RaftOptions, SwimOptions, TimingPreset } from './tuning.js';

/** TLS for client connections (`wss://`). */
export interface ClientTlsOptions {
  /** Certificate chain, PEM text or a file path. */
  cert: string;
  /** Private key, PEM text or a file path. */
  key: string;
  /** CA certificates that sign client certificates, PEM text or a file path; needed by `requireClientCert`. */
  ca?: string;
  /**
   * Mutual TLS: refuse clients without a certificate signed by `ca`.
   * @defaultValue `false`
   */
  requireClientCert?: boolean;
}

/** TLS between brokers, on the peer port. */
export interface PeerTlsOptions {
  /** This broker's certificate chain, PEM text or a file path. */
  cert: string;
  /** Its private key, PEM text or a file path. */
  key: string;
  /** CA certificates peers' certificates must be signed by, PEM text or a file path. */
  ca: string;
  /**
   * Mutual TLS: an accepting broker also requires the dialing broker's
   * certificate, signed by `ca`. Without it, only the dialer verifies.
   * @defaultValue `true`
   */
  mutual?: boolean;
}

/** JWT verification (jose). At least one of `secret` and `jwksFile`. */
export interface JwtAuthOptions {
  /** Shared secret of HS256 tokens. */
  secret?: string;
  /** Path of a JWKS file (`{ "keys": [...] }`) with the public keys of RS256 and ES256 tokens. */
  jwksFile?: string;
  /** Required `iss`; unset: not checked. */
  issuer?: string;
  /** Required `aud` (one of the token's audiences); unset: not checked. */
  audience?: string;
  /**
   * Claim holding the principal name.
   * @defaultValue `"sub"`
   */
  principalClaim?: string;
  /**
   * Seconds of clock skew tolerated on `exp` and `nbf`.
   * @defaultValue `0`
   */
  clockToleranceSec?: number;
}

/** Authentication: a connection's `hello` must carry a token one of these accepts. */
export interface AuthOptions {
  /** Static tokens: token → principal name. */
  tokens?: Record<string, string>;
  jwt?: JwtAuthOptions;
}

/** Allow and deny topic patterns (`*` one segment, `>` the rest); deny wins. */
export interface TopicRules {
  /** Patterns the principal may use. Empty: nothing. */
  allow?: string[];
  /** Patterns the principal may not use, even when an allow pattern matches. */
  deny?: string[];
}

/** What one principal may do. */
export interface PrincipalRules {
  publish?: TopicRules;
  /** Subscribing, and reading topic metadata. */
  subscribe?: TopicRules;
}


/** Options of {@link startBroker}. Every field is optional; see the defaults. */
export interface BrokerOptions {
  /**
   * Broker id, unique in the cluster.
   * @defaultValue `"b1"`
   */
  id?: string;
  /**
   * Interface to listen on for clients.
   * @defaultValue `"127.0.0.1"`
   */
  host?: string;
  /**
   * Client port; `0` picks a free one (read it back from `broker.port`).
   * @defaultValue `7401`
   */
  port?: number;
  /**
   * URL advertised to clients; derived from host and port when unset.
   * @defaultValue `ws://<host>:<port>`
   */
  advertisedUrl?: string;
  /**
   * Port for other brokers (gossip and replication); `0` picks a free one.
   * Used only when `peers` is set.
   * @defaultValue `7501`
   */
  peerPort?: number;
  /**
   * The other brokers of the cluster, as `id@host:port` (their peer ports).
   * Empty: a standalone broker.
   * @defaultValue `[]`
   */
  peers?: string[];
  /**
   * Peer addresses (`host:port`, or `id@host:port`) of running brokers of a
   * cluster this broker joins: it introduces itself to them, learns the
   * others by gossip, and the metadata leader admits it (a learner first,
   * then a metadata voter while there are fewer than `metadataVoters`).
   * Use it (instead of `peers`) to add a broker to a running cluster.
   * @defaultValue `[]`
   */
  join?: string[];
  /**
   * How many brokers vote in the metadata group. Brokers that join beyond it
   * are non-voting members (they receive the metadata, host replicas and
   * serve clients), so a large cluster does not run a large voter group.
   * Brokers listed in `peers` at a cluster's first start all vote.
   * @defaultValue `3`
   */
  metadataVoters?: number;
  /**
   * Replica moves in progress at once in the cluster (a decommission, a
   * replacement or a rebalance starts them up to this cap); the metadata
   * leader's setting counts. An operator's `relaymq cluster move` is refused
   * (`moves-at-cap`) while this many are in progress, by the setting of the
   * broker asked.
   * @defaultValue `4`
   */
  maxConcurrentMoves?: number;
  /**
   * Self-healing: a broker the metadata leader cannot reach for this long
   * is replaced — its replicas are re-created on the other brokers (every
   * partition gets back to its replication factor) and it is taken out of
   * the metadata group. `0` never replaces a broker.
   * @defaultValue `900000` (15 minutes)
   */
  replacementTimeoutMs?: number;
  /**
   * Spread partition replicas evenly over the brokers by itself, whenever
   * their counts differ by more than one (a broker joined or left), then
   * leaderships; `false`: only `relaymq cluster rebalance` does. The
   * metadata leader's setting counts: set it on every broker.
   * @defaultValue `true`
   */
  autoRebalance?: boolean;
  /**
   * Bytes per second a new replica copies into this broker while a move
   * catches it up (the segments it fetches from the partition's leader);
   * `0` does not throttle.
   * @defaultValue `0`
   */
  moveBytesPerSecond?: number;
  /**
   * Directory for this broker's data: each partition's segment log and
   * checkpoint, and the Raft logs (term, vote, entries), all surviving a
   * restart. Set on a standalone broker too, it stores topics on disk (a
   * cluster of one). Unset: everything in memory — fine for tests, unsafe
   * for a cluster whose brokers restart, and a cluster's Raft logs then grow
   * without bound (they are compacted only on disk).
   */
  dataDir?: string;
  /**
   * With `dataDir`: when a publish is fsynced. `always`: on every replica
   * that counts toward the quorum before the ack (group commit: one fsync
   * covers every publish that arrived meanwhile). `interval`: written before
   * the ack, fsynced every `fsyncIntervalMs`; a power loss or OS crash of a
   * quorum of brokers within that window loses acknowledged publishes (a
   * process crash loses nothing: the OS has the data). Ack `leader` waits
   * for the leader's own write only, as this policy makes it durable.
   * @defaultValue `"always"`
   */
  fsync?: 'always' | 'interval';
  /**
   * With `fsync: "interval"`: the longest time between a write and its fsync.
   * @defaultValue `1000`
   */
  fsyncIntervalMs?: number;
  /**
   * With `dataDir`: how long and how much each partition keeps. Whole
   * segments are deleted, oldest first, once every message in them is older
   * than `maxAgeMs`, or while the partition holds more than `maxBytes` or
   * `maxMessages`. Subscribers that needed deleted messages get a `gap` event.
   * With `backbone`: `maxAgeMs` and `maxBytes` become stream arguments;
   * `maxMessages` is refused (`INVALID_ARGUMENT`), RabbitMQ streams cannot count messages.
   * @defaultValue `{}` (keep everything)
   */
  retention?: RetentionOptions;
  /**
   * With `dataDir`: how partitions are stored (docs/storage.md).
   * @defaultValue `{}` (the layout the data directory records; `unified` for a new one)
   */
  storage?: StorageOptions;
  /** With `dataDir` or `backbone`: retention of the topics matching a pattern (the first match wins) instead of `retention`. @defaultValue `[]` */
  topicRetention?: Array<{ pattern: string } & RetentionOptions>;
  /**
   * With `dataDir`: Raft log bytes a partition leader keeps for a replica
   * that lags behind (down, or slow) before it compacts anyway; that replica
   * then catches up from a snapshot, copying the messages it lacks.
   * @defaultValue `268435456` (256 MiB)
   */
  raftLogMaxBytes?: number;
  /**
   * With `dataDir`: size of a partition's segment files; retention deletes whole segments.
   * @defaultValue `67108864` (64 MiB)
   */
  segmentBytes?: number;
  /**
   * With `dataDir`: segment files the broker keeps open at most, over all its
   * partitions. Beyond it the least recently used idle ones are closed and
   * reopened when next read or written; a file being read, written, or
   * written and not yet fsynced stays open (the bound is exceeded by those
   * while they are busy). Raft logs have their own bound
   * ({@link BrokerOptions.maxOpenRaftLogFiles}): size `ulimit -n` for both
   * plus the connections.
   * @defaultValue `1024`
   */
  maxOpenSegmentFiles?: number;
  /**
   * With `dataDir`: Raft log files (one per partition group, and the
   * metadata group's) the broker keeps open at most. Beyond it the least
   * recently used idle ones are closed and reopened on the next write; a log
   * being written, written and not yet fsynced, or recovering from a failed
   * write stays open (the bound is exceeded by those while they are busy).
   * @defaultValue `1024`
   */
  maxOpenRaftLogFiles?: number;
  /**
   * Replicas of each partition in a cluster, capped by the number of brokers.
   * @defaultValue `3`
   */
  replicationFactor?: number;
  /**
   * Partitions of a topic created implicitly on first use.
   * @defaultValue `1`
   */
  defaultPartitions?: number;
  /**
   * Largest frame accepted from a client, in bytes; checked before decoding.
   * @defaultValue `1048576` (1 MiB)
   */
  maxPayload?: number;
  /**
   * Interval of broker pings; a client silent for twice as long is dropped.
   * @defaultValue `5000`
   */
  heartbeatMs?: number;
  /**
   * Time a new connection has to send its `hello` — with a valid token, when
   * `auth` is set; then it is closed with `UNAUTHORIZED`.
   * @defaultValue `10000`
   */
  helloTimeoutMs?: number;
  /**
   * Recent seqs per producer and partition kept to answer a republish with its original offset.
   * Must be at least the SDK's `outbox.maxMessages`.
   * @defaultValue `16384`
   */
  dedupeWindow?: number;
  /**
   * Without `dataDir`: data bytes each partition keeps in memory; the oldest
   * messages are removed first, and a subscriber that needed them gets a `gap` event.
   * @defaultValue `67108864` (64 MiB)
   */
  retentionBytes?: number;
  /**
   * Largest credit a subscription may hold, i.e. messages in flight to one subscriber.
   * @defaultValue `10000`
   */
  maxCredit?: number;
  /**
   * Bytes queued on one connection's socket beyond which delivery pauses until it drains.
   * @defaultValue `4194304` (4 MiB)
   */
  outboundHighWaterBytes?: number;
  /**
   * Bytes queued on one connection beyond which it is cut off with
   * `SLOW_CONSUMER` (delivery pauses at `outboundHighWaterBytes` already; this
   * bounds everything else a client that stopped reading makes the broker queue).
   * At least `outboundHighWaterBytes + maxPayload`.
   * @defaultValue `16777216` (16 MiB)
   */
  maxOutboundBytes?: number;
  /**
   * How long a connection's queue may stay at `outboundHighWaterBytes` (the
   * client reads nothing) before it is cut off with `SLOW_CONSUMER`.
   * @defaultValue `30000`
   */
  slowConsumerTimeoutMs?: number;
  /**
   * Client connections open at once; more are refused with `LIMIT_EXCEEDED`.
   * @defaultValue `10000`
   */
  maxConnections?: number;
  /**
   * Client connections open at once from one IP address.
   * @defaultValue `1000`
   */
  maxConnectionsPerIp?: number;
  /**
   * Subscriptions one connection may hold; more are refused with `LIMIT_EXCEEDED`.
   * @defaultValue `1000`
   */
  maxSubscriptionsPerConnection?: number;
  /**
   * Messages per second one connection may publish (a token bucket); a batch
   * over the rate is nacked with `RATE_LIMITED` (the SDK resends it after a
   * pause). `0`: unlimited.
   * @defaultValue `0`
   */
  publishRateLimit?: number;
  /**
   * Messages a connection may publish at once above `publishRateLimit` (the bucket size).
   * Only with `publishRateLimit`.
   * @defaultValue `publishRateLimit` (one second's worth)
   */
  publishBurst?: number;
  /** TLS for clients: the broker then accepts only `wss://`. Unset: plain `ws://`. */
  tls?: ClientTlsOptions;
  /** TLS between brokers on the peer port. Unset: plain TCP (trusted networks only). */
  peerTls?: PeerTlsOptions;
  /**
   * Authentication. Set, every connection must present a valid token in
   * `hello` within `helloTimeoutMs`, and may use only the topics `acl` grants
   * it (deny by default). Unset: anyone may do anything.
   */
  auth?: AuthOptions;
  /**
   * Topic permissions by principal (needs `auth`). The entry `"*"` applies
   * to every principal in addition to its own. A principal without allow
   * patterns may use no topic.
   * @defaultValue `{}` (nothing allowed)
   */
  acl?: Record<string, PrincipalRules>;
  /**
   * On shutdown, how long clients get to move away after `goaway` before they are disconnected.
   * @defaultValue `2000`
   */
  drainTimeoutMs?: number;
  /**
   * The file system data is stored through, for tests that inject faults
   * (a full disk, failing fsyncs). @defaultValue Node's `fs`
   * @internal For tests; not a stable API.
   */
  fileSystem?: FileSystem;
  /**
   * Port of the admin HTTP server (`/metrics`, `/healthz`, `/readyz`,
   * `/api/cluster`, the dashboard at `/`); `0` picks a free one (read it back
   * from `broker.adminUrl`). Unset: no admin server.
   */
  adminPort?: number;
  /**
   * Interface the admin server listens on. Keep it private: without
   * `adminProtectReads` anyone who reaches it reads the cluster's state.
   * @defaultValue the value of `host`
   */
  adminHost?: string;
  /**
   * The cluster this broker belongs to (1-64 of `[A-Za-z0-9_-]`). With a
   * data directory: recorded there on first use, and the start fails when
   * the directory records another. Unset: the cluster's metadata leader
   * names a new cluster (a UUID) and every broker records it. Either way,
   * brokers of two clusters refuse each other's peer links.
   */
  clusterId?: string;
  /**
   * Run as a stateless gateway over an existing replicated log instead of
   * the embedded Raft cluster (README "Running on an existing RabbitMQ"):
   * partitions, topics, durable positions and consumer groups live in
   * RabbitMQ streams. `peers` then only gossip membership between gateways;
   * `dataDir` and `join` do not apply.
   */
  backbone?: BackboneOptions;
  /**
   * The admin token (at least 16 characters): the admin port's mutating
   * endpoints (creating topics, adding and removing brokers) need it as
   * `Authorization: Bearer <token>`, compared in constant time. Unset: the
   * mutating endpoints are disabled (403).
   */
  adminToken?: string;
  /**
   * Read-only admin endpoints (the dashboard, `/api/*`, `/metrics`) need the
   * admin token too; `/healthz` and `/readyz` stay open for probes. Needs `adminToken`.
   * @defaultValue `false`
   */
  adminProtectReads?: boolean;
  /** Webhook alerts; unset: none. See {@link AlertOptions}. */
  alerts?: AlertOptions;
  /**
   * Level of the built-in structured (pino, JSON lines on stderr) logger.
   * Conflicts with `log`, which replaces the built-in logger.
   * @defaultValue `"silent"`
   */
  logLevel?: LogLevel | 'silent';
  /** Receives one line per notable event; replaces the built-in logger (tests inject a silent one). */
  log?: LogFunction;
  /**
   * Raft timing of every group, in milliseconds: a preset (`local`, `lan`,
   * `wan`) and fields that override it. See {@link RaftOptions}.
   * @defaultValue `{ preset: "lan" }` (heartbeats every 50 ms, elections after 500–1000 ms)
   */
  raft?: RaftOptions;
  /**
   * Membership gossip (SWIM) timing, in milliseconds: a preset (`local`,
   * `lan`, `wan`) and fields that override it. See {@link SwimOptions}.
   * @defaultValue `{ preset: "lan" }` (a probe every second, 500 ms probe timeout)
   */
  swim?: SwimOptions;
  /** Limits and timeouts of the links and requests between brokers. See {@link PeerOptions}. @defaultValue {@link PEER_DEFAULTS} */
  peer?: PeerOptions;
}

// Defined beside the logger (which options.ts imports), so the two modules do not import each other.
export type { LogFunction, LogLevel } from './observability/logger.js';

/** Webhook alerts: what to watch and where to send it. */
export interface AlertOptions {
  /** URLs that receive a JSON `POST` per alert fired or resolved. */
  webhooks: string[];
  /**
   * How long a partition may stay leaderless or under-replicated, or a
   * configured peer stay unseen since start, before it alerts. (A broker
   * gossip declares dead, or that left, alerts at once.)
   * @defaultValue `30000`
   */
  graceMs?: number;
  /**
   * Disk use of `dataDir`, in percent, at which the disk alert fires.
   * @defaultValue `90`
   */
  diskFullPercent?: number;
  /**
   * How often conditions are evaluated.
   * @defaultValue `5000`
   */
  checkIntervalMs?: number;
  /**
   * Retries of a failed delivery, with exponential backoff starting at
   * `retryDelayMs` and doubling each time.
   * @defaultValue `5`
   */
  retries?: number;
  /** @defaultValue `500` */
  retryDelayMs?: number;
  /**
   * Time one delivery attempt may take.
   * @defaultValue `5000`
   */
  timeoutMs?: number;
}

/** Alert options with every default applied. */
export type ResolvedAlertOptions = Required<AlertOptions>;

/** Defaults of {@link AlertOptions}. */
export const ALERT_DEFAULTS = Object.freeze({
  graceMs: 30_000,
  diskFullPercent: 90,
  checkIntervalMs: 5000,
  retries: 5,
  retryDelayMs: 500,
  timeoutMs: 5000,
});

/** Where a backbone gateway's log lives (see {@link BrokerOptions.backbone}). */
export interface BackboneOptions {
  /** The only kind so far. */
  kind?: 'rabbitmq-stream';
  /**
   * `rabbitmq-stream://user:pass@h1:5552,h2:5552/vhost` (one or more; a
   * list item without `://` is one more host of the URL before it, as a
   * comma-separated flag splits it).
   */
  urls: string[];
  /** First part of every stream name, so deployments can share a RabbitMQ; default `relaymq`. */
  streamPrefix?: string;
  /** A backbone round trip (publish confirm, metadata command, read) not answered within this long fails `TIMEOUT`; default 10000. */
  requestTimeoutMs?: number;
  /**
   * A gateway tails each partition stream from this many messages before its last chunk, not from its first message, so
   * it serves a partition in a time independent of the stream's length; reads of older offsets go to RabbitMQ. Default
   * 10000 (an SDK's whole default outbox, so a failover republish is normally answered from the tail).
   */
  tailStartMessages?: number;
  /**
   * A republished seq whose offset the tail did not read (stored before it started) is looked for up to this many offsets
   * further back in the stream and answered `duplicate` with it; beyond, the publish fails `SEQUENCE_TOO_OLD`. Default 100000.
   */
  republishLookbackMessages?: number;
  /** The metadata stream is compacted: a gateway writes a snapshot of the metadata after this many entries; default 10000. */
  metaSnapshotEveryEntries?: number;
  /**
   * Retention of the metadata stream (`<prefix>:__meta`) in bytes, B: segments of B/8 and a snapshot after B/16 bytes of
   * entries keep every entry a starting gateway needs (README, "Running on an existing RabbitMQ"); applies when the stream is created; default 268435456.
   */
  metaMaxBytes?: number;
}

/** {@link BackboneOptions} resolved: the URLs parsed into hosts and credentials. */
export interface ResolvedBackboneOptions {
  kind: 'rabbitmq-stream';
  urls: string[];
  endpoint: BackboneEndpoint;
  streamPrefix: string;
  requestTimeoutMs: number;
  tailStartMessages: number;
  republishLookbackMessages: number;
  metaSnapshotEveryEntries: number;
  metaMaxBytes: number;
}

/** Retention limits of a partition on disk; each is optional. */
export interface RetentionOptions {
  maxAgeMs?: number;
  maxBytes?: number;
  maxMessages?: number;
}

/** How partitions are stored on disk (docs/storage.md). */
export interface StorageOptions {
  /**
   * `unified`: the partition's segment log is its Raft log, so a message is
   * written once (issue 12). `split` (the layout before it): each partition
   * replica writes a message twice, into its Raft log file and, once
   * committed, into its segment log (with checkpoints). A data directory
   * keeps the layout it was created with: a broker given none uses it (a
   * directory from before `unified` was the default stays `split`), and a
   * broker given the other one refuses to start on it.
   * @defaultValue the layout the data directory records; `"unified"` for a new one
   */
  layout?: StorageLayout;
}

/** Options with every default applied. */
export type ResolvedBrokerOptions = Required<
  Omit<BrokerOptions, 'advertisedUrl' | 'peers' | 'join' | 'dataDir' | 'fileSystem' | 'tls' | 'peerTls' | 'auth' | 'clusterId' | 'adminPort' | 'adminHost' | 'adminToken' | 'adminProtectReads' | 'alerts' | 'log' | 'raft' | 'swim' | 'peer' | 'storage' | 'backbone'>
> & {
  backbone: ResolvedBackboneOptions | undefined;
  advertisedUrl: string | undefined;
  /** `layout` as given; the broker settles it against the data directory when it starts (storage/data-layout.ts). */
  storage: StorageOptions;
  fileSystem: FileSystem | undefined;
  dataDir: string | undefined;
  peers: PeerAddress[];
  /** `--join` addresses; `id` when given as `id@host:port`. */
  join: JoinAddress[];
  tls: ClientTlsOptions | undefined;
  peerTls: PeerTlsOptions | undefined;
  auth: AuthOptions | undefined;
  clusterId: string | undefined;
  adminPort: number | undefined;
  adminHost: string;
  adminToken: string | undefined;
  adminProtectReads: boolean;
  alerts: ResolvedAlertOptions | undefined;
  /** The `log` option, or the built-in pino logger at `logLevel`. */
  log: LogFunction;
  /** The preset's timing with the fields given over it. */
  raft: ResolvedRaftOptions;
  swim: ResolvedSwimOptions;
  peer: ResolvedPeerOptions;
};

/** Defaults of {@link BrokerOptions}, in one place. */
export const BROKER_DEFAULTS = Object.freeze({
  id: 'b1',
  host: '127.0.0.1',
  port: 7401,
  peerPort: 7501,
  replicationFactor: 3,
  metadataVoters: 3,
  maxConcurrentMoves: 4,
  replacementTimeoutMs: 900_000,
  autoRebalance: true,
  moveBytesPerSecond: 0,
  defaultPartitions: 1,
  maxPayload: 1024 * 1024,
  heartbeatMs: 5000,
  helloTimeoutMs: 10_000,
  dedupeWindow: 16_384,
  retentionBytes: 64 * 1024 * 1024,
  maxCredit: 10_000,
  outboundHighWaterBytes: 4 * 1024 * 1024,
  maxOutboundBytes: 16 * 1024 * 1024,
  slowConsumerTimeoutMs: 30_000,
  maxConnections: 10_000,
  maxConnectionsPerIp: 1000,
  maxSubscriptionsPerConnection: 1000,
  publishRateLimit: 0,
  drainTimeoutMs: 2000,
  acl: Object.freeze({}) as Readonly<Record<string, PrincipalRules>>,
  fsync: 'always' as 'always' | 'interval',
  fsyncIntervalMs: 1000,
  retention: {} as RetentionOptions,
  topicRetention: [] as Array<{ pattern: string } & RetentionOptions>,
  storage: {} as StorageOptions,
  segmentBytes: 64 * 1024 * 1024,
  maxOpenSegmentFiles: 1024,
  maxOpenRaftLogFiles: 1024,
  logLevel: 'silent',
  raftLogMaxBytes: 256 * 1024 * 1024,
});

const INVALID_PREFIX = 'broker option ';

function invalid(field: string, problem: string): RelayError {
  return new RelayError('INVALID_ARGUMENT', `${INVALID_PREFIX}${field} ${problem}`);
}

/** The option an error of {@link resolveBrokerOptions} names (e.g. `port`, `alerts.graceMs`), so a caller can say where it came from. */
export function optionOfError(err: unknown): string | undefined {
  if (!(err instanceof RelayError) || !err.message.startsWith(INVALID_PREFIX)) return undefined;
  return err.message.slice(INVALID_PREFIX.length).split(' ')[0];
}

function integer(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(field, `must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function text(field: string, value: unknown, pattern: RegExp, describe: string): string {
  if (typeof value !== 'string' || !pattern.test(value)) throw invalid(field, `must be ${describe}, got ${JSON.stringify(value)}`);
  return value;
}

function boolean(field: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw invalid(field, `must be true or false, got ${JSON.stringify(value)}`);
  return value;
}

/** The admin token: printable, no white space (it travels in an HTTP header), long enough not to be guessed. */
function adminTokenOption(value: unknown): string {
  if (typeof value !== 'string' || !/^[\x21-\x7e]+$/.test(value) || value.length > 4096) {
    throw invalid('adminToken', 'must be printable ASCII without spaces (at most 4096 characters)');
  }
  if (value.length < MIN_ADMIN_TOKEN_LENGTH) throw invalid('adminToken', `must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters, got ${value.length}`);
  return value;
}

const knownOptions = new Set([...Object.keys(BROKER_DEFAULTS), 'advertisedUrl', 'peers', 'join', 'dataDir', 'fileSystem', 'log', 'publishBurst', 'tls', 'peerTls', 'auth', 'clusterId', 'adminPort', 'adminHost', 'adminToken', 'adminProtectReads', 'alerts', 'raft', 'swim', 'peer', 'backbone']);
const logLevels = ['debug', 'info', 'warn', 'error', 'silent'] as const;

/**
 * Why a gateway refuses `<field>.maxMessages` (to follow the option's name):
 * RabbitMQ streams retain by age (`max-age`) and size (`max-length-bytes`)
 * only, and a limit silently not applied would keep data an operator
 * expects deleted. `field` names the option (`retention`, `topicRetention[2]`).
 */
function maxMessagesUnsupported(field: string): string {
  return `has no RabbitMQ stream equivalent and is refused with backbone (streams retain by age and size only): use ${field}.maxBytes (max-length-bytes) or ${field}.maxAgeMs (max-age)`;
}

/**
 * Applies defaults and validates every option, naming the first bad field.
 * Unknown fields are rejected too: a typo must not silently fall back to a default.
 */
export function resolveBrokerOptions(options: BrokerOptions = {}): ResolvedBrokerOptions {
  for (const key of Object.keys(options)) {
    if (!knownOptions.has(key)) throw invalid(key, 'is not a known option');
  }
  const o = { ...BROKER_DEFAULTS, ...stripUndefined(options) };
  const resolved: ResolvedBrokerOptions = {
    id: text('id', o.id, /^[A-Za-z0-9_-]{1,64}$/, '1-64 characters of [A-Za-z0-9_-]'),
    host: text('host', o.host, /^\S{1,255}$/, 'a host name or address'),
    port: integer('port', o.port, 0, 65535),
    advertisedUrl: o.advertisedUrl === undefined ? undefined : text('advertisedUrl', o.advertisedUrl, /^wss?:\/\/\S+$/, 'a ws:// or wss:// URL'),
    peerPort: integer('peerPort', o.peerPort, 0, 65535),
    peers: resolvePeers(o.id, o.peers),
    join: resolveJoin(o.join),
    metadataVoters: integer('metadataVoters', o.metadataVoters, 1, 9),
    maxConcurrentMoves: integer('maxConcurrentMoves', o.maxConcurrentMoves, 1, 64),
    replacementTimeoutMs: integer('replacementTimeoutMs', o.replacementTimeoutMs, 0, 30 * 24 * 3_600_000),
    autoRebalance: boolean('autoRebalance', o.autoRebalance),
    moveBytesPerSecond: integer('moveBytesPerSecond', o.moveBytesPerSecond, 0, Number.MAX_SAFE_INTEGER),
    clusterId: o.clusterId === undefined ? undefined : text('clusterId', o.clusterId, CLUSTER_ID_PATTERN, '1-64 characters of [A-Za-z0-9_-]'),
    dataDir: o.dataDir === undefined ? undefined : text('dataDir', o.dataDir, /^.{1,4096}$/, 'a directory path'),
    replicationFactor: integer('replicationFactor', o.replicationFactor, 1, 16),
    defaultPartitions: integer('defaultPartitions', o.defaultPartitions, 1, 1024),
    maxPayload: integer('maxPayload', o.maxPayload, 1024, 64 * 1024 * 1024),
    heartbeatMs: integer('heartbeatMs', o.heartbeatMs, 50, 3_600_000),
    helloTimeoutMs: integer('helloTimeoutMs', o.helloTimeoutMs, 10, 3_600_000),
    dedupeWindow: integer('dedupeWindow', o.dedupeWindow, 1, 1_048_576),
    retentionBytes: integer('retentionBytes', o.retentionBytes, 1, Number.MAX_SAFE_INTEGER),
    maxCredit: integer('maxCredit', o.maxCredit, 1, 1_000_000),
    outboundHighWaterBytes: integer('outboundHighWaterBytes', o.outboundHighWaterBytes, 1024, 1024 * 1024 * 1024),
    maxOutboundBytes: integer('maxOutboundBytes', o.maxOutboundBytes, 1024, Number.MAX_SAFE_INTEGER),
    slowConsumerTimeoutMs: integer('slowConsumerTimeoutMs', o.slowConsumerTimeoutMs, 10, 3_600_000),
    maxConnections: integer('maxConnections', o.maxConnections, 1, 1_000_000),
    maxConnectionsPerIp: integer('maxConnectionsPerIp', o.maxConnectionsPerIp, 1, 1_000_000),
    maxSubscriptionsPerConnection: integer('maxSubscriptionsPerConnection', o.maxSubscriptionsPerConnection, 1, 1_000_000),
    publishRateLimit: integer('publishRateLimit', o.publishRateLimit, 0, 100_000_000),
    publishBurst: 0,
    drainTimeoutMs: integer('drainTimeoutMs', o.drainTimeoutMs, 0, 600_000),
    tls: resolveClientTls(o.tls),
    peerTls: resolvePeerTls(o.peerTls),
    auth: resolveAuth(o.auth),
    acl: resolveAcl(o.acl),
    fsync: oneOf('fsync', o.fsync, ['always', 'interval'] as const),
    fsyncIntervalMs: integer('fsyncIntervalMs', o.fsyncIntervalMs, 1, 3_600_000),
    retention: resolveRetention('retention', o.retention),
    topicRetention: resolveTopicRetention(o.topicRetention),
    storage: resolveStorage(o.storage),
    segmentBytes: integer('segmentBytes', o.segmentBytes, 4096, 1024 * 1024 * 1024),
    maxOpenSegmentFiles: integer('maxOpenSegmentFiles', o.maxOpenSegmentFiles, 1, 1_000_000),
    maxOpenRaftLogFiles: integer('maxOpenRaftLogFiles', o.maxOpenRaftLogFiles, 1, 1_000_000),
    raftLogMaxBytes: integer('raftLogMaxBytes', o.raftLogMaxBytes, 0, Number.MAX_SAFE_INTEGER),
    fileSystem: o.fileSystem,
    adminPort: o.adminPort === undefined ? undefined : integer('adminPort', o.adminPort, 0, 65535),
    adminHost: o.adminHost === undefined ? (o.host as string) : text('adminHost', o.adminHost, /^\S{1,255}$/, 'a host name or address'),
    adminToken: o.adminToken === undefined ? undefined : adminTokenOption(o.adminToken),
    adminProtectReads: o.adminProtectReads === undefined ? false : boolean('adminProtectReads', o.adminProtectReads),
    alerts: o.alerts === undefined ? undefined : resolveAlerts(o.alerts),
    backbone: o.backbone === undefined ? undefined : resolveBackbone(o.backbone),
    logLevel: oneOf('logLevel', o.logLevel, logLevels),
    log: () => {},
    raft: resolveRaft(o.raft ?? {}),
    swim: resolveSwim(o.swim ?? {}),
    peer: PEER_DEFAULTS,
  };
  resolved.peer = resolvePeer(o.peer ?? {}, resolved);
  if (resolved.adminProtectReads && resolved.adminToken === undefined) throw invalid('adminProtectReads', 'needs adminToken: the read endpoints would need a token no one has');
  if (resolved.storage.layout === 'unified' && resolved.dataDir === undefined) throw invalid('storage.layout', '"unified" needs dataDir: it is how partitions are stored on disk');
  if (resolved.fsync === 'always' && options.fsyncIntervalMs !== undefined) throw invalid('fsyncIntervalMs', 'is only meaningful with fsync "interval"');
  if (o.log !== undefined && typeof o.log !== 'function') throw invalid('log', 'must be a function');
  if (o.log !== undefined && options.logLevel !== undefined) {
    throw invalid('logLevel', 'conflicts with log: logLevel sets the built-in logger, log replaces it; give one');
  }
  resolved.log = o.log ?? createLogger({ brokerId: resolved.id, level: resolved.logLevel });
  if (resolved.maxOutboundBytes < resolved.outboundHighWaterBytes + resolved.maxPayload) {
    throw invalid('maxOutboundBytes', `must be at least outboundHighWaterBytes + maxPayload (${resolved.outboundHighWaterBytes + resolved.maxPayload}), got ${resolved.maxOutboundBytes}`);
  }
  if (o.publishBurst !== undefined && resolved.publishRateLimit === 0) throw invalid('publishBurst', 'needs publishRateLimit');
  resolved.publishBurst = o.publishBurst === undefined ? resolved.publishRateLimit : integer('publishBurst', o.publishBurst, 1, 100_000_000);
  if (options.acl !== undefined && resolved.auth === undefined) throw invalid('acl', 'needs auth: without authentication there are no principals');
  if (resolved.backbone !== undefined && resolved.dataDir !== undefined) throw invalid('dataDir', 'does not apply with backbone: a gateway keeps no data (RabbitMQ holds it)');
  if (resolved.backbone !== undefined && resolved.join.length > 0) throw invalid('join', 'does not apply with backbone: list the other gateways in peers');
  if (resolved.backbone !== undefined) {
    // RabbitMQ streams cannot count messages: refused rather than silently not applied.
    if (resolved.retention.maxMessages !== undefined) throw invalid('retention.maxMessages', maxMessagesUnsupported('retention'));
    const i = resolved.topicRetention.findIndex((r) => r.maxMessages !== undefined);
    if (i >= 0) throw invalid(`topicRetention[${i}].maxMessages`, maxMessagesUnsupported(`topicRetention[${i}]`));
  }
  return resolved;
}

function resolveBackbone(value: unknown): ResolvedBackboneOptions {
  const o = record('backbone', value, ['kind', 'urls', 'streamPrefix', 'requestTimeoutMs', 'tailStartMessages', 'republishLookbackMessages', 'metaSnapshotEveryEntries', 'metaMaxBytes']);
  if (o.kind !== undefined && o.kind !== 'rabbitmq-stream') throw invalid('backbone.kind', `must be "rabbitmq-stream", got ${JSON.stringify(o.kind)}`);
  const list = typeof o.urls === 'string' ? [o.urls] : o.urls;
  if (!Array.isArray(list) || list.length === 0 || !list.every((u) => typeof u === 'string')) {
    throw invalid('backbone.urls', 'must be a non-empty list of rabbitmq-stream:// URLs');
  }
  // A comma-separated flag splits `rabbitmq-stream://u:p@h1,h2` into a URL and a bare host: join them again.
  const urls: string[] = [];
  for (const item of list as string[]) {
    if (item.includes('://') || urls.length === 0) urls.push(item);
    else urls[urls.length - 1] += `,${item}`;
  }
  let endpoint: BackboneEndpoint;
  try {
    endpoint = parseBackboneUrls(urls);
  } catch (err) {
    throw invalid('backbone.urls', (err as Error).message);
  }
  return {
    kind: 'rabbitmq-stream',
    urls,
    endpoint,
    streamPrefix: o.streamPrefix === undefined ? 'relaymq' : text('backbone.streamPrefix', o.streamPrefix, STREAM_PREFIX_PATTERN, '1-64 characters of [A-Za-z0-9_.-]'),
    requestTimeoutMs: o.requestTimeoutMs === undefined ? 10_000 : integer('backbone.requestTimeoutMs', o.requestTimeoutMs, 100, 600_000),
    tailStartMessages: o.tailStartMessages === undefined ? 10_000 : integer('backbone.tailStartMessages', o.tailStartMessages, 0, 100_000_000),
    republishLookbackMessages: o.republishLookbackMessages === undefined ? 100_000 : integer('backbone.republishLookbackMessages', o.republishLookbackMessages, 0, 100_000_000),
    metaSnapshotEveryEntries: o.metaSnapshotEveryEntries === undefined ? 10_000 : integer('backbone.metaSnapshotEveryEntries', o.metaSnapshotEveryEntries, 10, 10_000_000),
    metaMaxBytes: o.metaMaxBytes === undefined ? 256 * 1024 * 1024 : integer('backbone.metaMaxBytes', o.metaMaxBytes, 64 * 1024, 2 ** 40),
  };
}

/** Checks that `value` is a plain object holding only `allowed` keys. */
function record(field: string, value: unknown, allowed: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(field, `must be an object, got ${JSON.stringify(value)}`);
  for (const key of Object.keys(value)) if (!allowed.includes(key)) throw invalid(`${field}.${key}`, 'is not a known option');
  return value as Record<string, unknown>;
}

function optionalText(field: string, value: unknown): string | undefined {
  return value === undefined ? undefined : text(field, value, /^[\s\S]{1,65536}$/, 'a non-empty string');
}

function resolveClientTls(value: unknown): ClientTlsOptions | undefined {
  if (value === undefined) return undefined;
  const o = record('tls', value, ['cert', 'key', 'ca', 'requireClientCert']);
  const requireClientCert = o.requireClientCert ?? false;
  if (typeof requireClientCert !== 'boolean') throw invalid('tls.requireClientCert', 'must be a boolean');
  const ca = optionalText('tls.ca', o.ca);
  if (requireClientCert && ca === undefined) throw invalid('tls.requireClientCert', 'needs tls.ca to verify client certificates');
  return { cert: text('tls.cert', o.cert, /^[\s\S]+$/, 'PEM text or a file path'), key: text('tls.key', o.key, /^[\s\S]+$/, 'PEM text or a file path'), ca, requireClientCert };
}

function resolvePeerTls(value: unknown): PeerTlsOptions | undefined {
  if (value === undefined) return undefined;
  const o = record('peerTls', value, ['cert', 'key', 'ca', 'mutual']);
  const mutual = o.mutual ?? true;
  if (typeof mutual !== 'boolean') throw invalid('peerTls.mutual', 'must be a boolean');
  const pemOrPath = (field: string, v: unknown): string => text(`peerTls.${field}`, v, /^[\s\S]+$/, 'PEM text or a file path');
  return { cert: pemOrPath('cert', o.cert), key: pemOrPath('key', o.key), ca: pemOrPath('ca', o.ca), mutual };
}

function resolveAuth(value: unknown): AuthOptions | undefined {
  if (value === undefined) return undefined;
  const o = record('auth', value, ['tokens', 'jwt']);
  if (o.tokens === undefined && o.jwt === undefined) throw invalid('auth', 'needs tokens, jwt or both');
  const resolved: AuthOptions = {};
  if (o.tokens !== undefined) {
    const tokens = record('auth.tokens', o.tokens, Object.keys(o.tokens as object));
    for (const [token, principal] of Object.entries(tokens)) {
      if (token.length < 8) throw invalid('auth.tokens', 'holds a token shorter than 8 characters');
      text('auth.tokens', principal, /^\S{1,256}$/, 'a map of token to principal name (1-256 non-space characters)');
    }
    resolved.tokens = tokens as Record<string, string>;
  }
  if (o.jwt !== undefined) {
    const jwt = record('auth.jwt', o.jwt, ['secret', 'jwksFile', 'issuer', 'audience', 'principalClaim', 'clockToleranceSec']);
    const secret = optionalText('auth.jwt.secret', jwt.secret);
    if (secret !== undefined && secret.length < 32) throw invalid('auth.jwt.secret', 'must be at least 32 characters (HS256 needs 256 bits)');
    const jwksFile = optionalText('auth.jwt.jwksFile', jwt.jwksFile);
    if (secret === undefined && jwksFile === undefined) throw invalid('auth.jwt', 'needs secret (HS256), jwksFile (RS256/ES256) or both');
    resolved.jwt = {
      secret,
      jwksFile,
      issuer: optionalText('auth.jwt.issuer', jwt.issuer),
      audience: optionalText('auth.jwt.audience', jwt.audience),
      principalClaim: text('auth.jwt.principalClaim', jwt.principalClaim ?? 'sub', /^[A-Za-z0-9_.:-]{1,128}$/, 'a claim name'),
      clockToleranceSec: integer('auth.jwt.clockToleranceSec', jwt.clockToleranceSec ?? 0, 0, 3600),
    };
  }
  return resolved;
}

function resolveAcl(value: unknown): Record<string, PrincipalRules> {
  const acl = record('acl', value, Object.keys(value as object));
  const resolved: Record<string, PrincipalRules> = {};
  for (const [principal, rules] of Object.entries(acl)) {
    const field = `acl.${principal}`;
    const r = record(field, rules, ['publish', 'subscribe']);
    const entry: PrincipalRules = {};
    for (const kind of ['publish', 'subscribe'] as const) {
      if (r[kind] === undefined) continue;
      const lists = record(`${field}.${kind}`, r[kind], ['allow', 'deny']);
      const patterns = (list: 'allow' | 'deny'): string[] => {
        const v = lists[list] ?? [];
        if (!Array.isArray(v)) throw invalid(`${field}.${kind}.${list}`, 'must be an array of topic patterns');
        for (const p of v) {
          const problem = typeof p === 'string' ? patternProblem(p) : 'is not a string';
          if (problem !== undefined) throw invalid(`${field}.${kind}.${list}`, `holds ${JSON.stringify(p)}, which ${problem}`);
        }
        return v as string[];
      };
      entry[kind] = { allow: patterns('allow'), deny: patterns('deny') };
    }
    resolved[principal] = entry;
  }
  return resolved;
}

function oneOf<const V extends string>(field: string, value: unknown, values: readonly V[]): V {
  if (typeof value !== 'string' || !(values as readonly string[]).includes(value)) throw invalid(field, `must be one of ${values.join(', ')}, got ${JSON.stringify(value)}`);
  return value as V;
}

/** `storage`: only `layout`, one of the two layouts, or none (the data directory's). */
function resolveStorage(value: unknown): StorageOptions {
  const o = record('storage', value, ['layout']);
  return o.layout === undefined ? {} : { layout: oneOf('storage.layout', o.layout, ['split', 'unified'] as const) };
}

const RETENTION_KEYS = new Set(['maxAgeMs', 'maxBytes', 'maxMessages']);

function resolveRetention(field: string, value: unknown, extraKeys: readonly string[] = []): RetentionOptions {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(field, 'must be an object of maxAgeMs, maxBytes, maxMessages');
  const result: RetentionOptions = {};
  for (const [key, limit] of Object.entries(value as Record<string, unknown>)) {
    if (extraKeys.includes(key) || limit === undefined) continue;
    if (!RETENTION_KEYS.has(key)) throw invalid(`${field}.${key}`, 'is not a known option (maxAgeMs, maxBytes, maxMessages)');
    result[key as keyof RetentionOptions] = integer(`${field}.${key}`, limit, 0, Number.MAX_SAFE_INTEGER);
  }
  return result;
}

function resolveTopicRetention(value: unknown): Array<{ pattern: string } & RetentionOptions> {
  if (!Array.isArray(value)) throw invalid('topicRetention', 'must be an array of { pattern, maxAgeMs?, maxBytes?, maxMessages? }');
  return value.map((entry: unknown, i) => {
    const field = `topicRetention[${i}]`;
    const pattern = typeof entry === 'object' && entry !== null ? (entry as { pattern?: unknown }).pattern : undefined;
    if (typeof pattern !== 'string') throw invalid(`${field}.pattern`, 'must be a topic pattern');
    try {
      assertPattern(pattern);
    } catch (err) {
      throw invalid(`${field}.pattern`, (err as Error).message);
    }
    return { pattern, ...resolveRetention(field, entry, ['pattern']) };
  });
}

const knownAlertOptions = new Set([...Object.keys(ALERT_DEFAULTS), 'webhooks']);

function resolveAlerts(alerts: unknown): ResolvedAlertOptions {
  if (typeof alerts !== 'object' || alerts === null || Array.isArray(alerts)) throw invalid('alerts', 'must be an object');
  for (const key of Object.keys(alerts)) {
    if (!knownAlertOptions.has(key)) throw invalid(`alerts.${key}`, 'is not a known option');
  }
  const a = { ...ALERT_DEFAULTS, ...stripUndefined(alerts as AlertOptions) };
  if (!Array.isArray(a.webhooks) || a.webhooks.length === 0 || a.webhooks.length > 16) {
    throw invalid('alerts.webhooks', 'must list 1 to 16 http:// or https:// URLs');
  }
  return {
    webhooks: a.webhooks.map((url) => text('alerts.webhooks', url, /^https?:\/\/\S+$/, 'http:// or https:// URLs')),
    graceMs: integer('alerts.graceMs', a.graceMs, 0, 86_400_000),
    diskFullPercent: integer('alerts.diskFullPercent', a.diskFullPercent, 1, 100),
    checkIntervalMs: integer('alerts.checkIntervalMs', a.checkIntervalMs, 10, 3_600_000),
    retries: integer('alerts.retries', a.retries, 0, 20),
    retryDelayMs: integer('alerts.retryDelayMs', a.retryDelayMs, 1, 600_000),
    timeoutMs: integer('alerts.timeoutMs', a.timeoutMs, 10, 600_000),
  };
}

const timingPresets = ['local', 'lan', 'wan'] as const satisfies readonly TimingPreset[];

/** A duration of a timing section: whole milliseconds, at least one tick (`0` only where `mayBeOff`). */
function duration(field: string, value: unknown, mayBeOff = false): number {
  if (mayBeOff && value === 0) return 0;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < TICK_MS || value > 86_400_000) {
    throw invalid(field, `must be an integer number of milliseconds from ${TICK_MS} (one tick) to 86400000${mayBeOff ? ', or 0' : ''}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function resolveRaft(value: unknown): ResolvedRaftOptions {
  const o = record('raft', value, ['preset', 'heartbeatMs', 'electionTimeoutMs', 'quiesce']);
  const preset = oneOf('raft.preset', o.preset ?? 'lan', timingPresets);
  const { quiesce, ...timing } = stripUndefined(o);
  const t = { ...RAFT_PRESETS[preset], ...timing };
  const raft: ResolvedRaftOptions = {
    preset,
    heartbeatMs: duration('raft.heartbeatMs', t.heartbeatMs),
    electionTimeoutMs: duration('raft.electionTimeoutMs', t.electionTimeoutMs),
  };
  if (quiesce !== undefined) {
    if (typeof quiesce !== 'boolean') throw invalid('raft.quiesce', `must be true or false, got ${JSON.stringify(quiesce)}`);
    raft.quiesce = quiesce;
  }
  const ticks = raftConfigOf(raft);
  if ((ticks.heartbeatTicks ?? 0) >= (ticks.electionTicks ?? 0)) {
    // Name the field the caller set: that is the one to change.
    const field = o.heartbeatMs === undefined && o.electionTimeoutMs !== undefined ? 'raft.electionTimeoutMs' : 'raft.heartbeatMs';
    throw invalid(field, `must leave raft.heartbeatMs (${raft.heartbeatMs}) shorter than raft.electionTimeoutMs (${raft.electionTimeoutMs}) by at least one ${TICK_MS} ms tick: followers would campaign between two heartbeats`);
  }
  resolveRaftConfig(ticks); // the core's own checks, which the above already covers
  return raft;
}

const SWIM_COUNTS = { indirectChecks: 0, gossipFanout: 1, retransmitMult: 1, suspicionMult: 1, suspicionMaxTimeoutMult: 1, awarenessMaxMultiplier: 1 } as const;

function resolveSwim(value: unknown): ResolvedSwimOptions {
  const o = record('swim', value, ['preset', ...Object.keys(SWIM_TIMING_PRESETS.lan)]);
  const preset = oneOf('swim.preset', o.preset ?? 'lan', timingPresets);
  const t: Record<string, unknown> = { ...SWIM_TIMING_PRESETS[preset], ...stripUndefined(o) };
  const swim = { preset } as ResolvedSwimOptions;
  const fields = swim as unknown as Record<string, number>;
  for (const key of Object.keys(SWIM_TIMING_PRESETS.lan)) {
    const min = SWIM_COUNTS[key as keyof typeof SWIM_COUNTS];
    fields[key] = min === undefined ? duration(`swim.${key}`, t[key], key === 'gossipToTheDeadMs') : integer(`swim.${key}`, t[key], min, 1000);
  }
  try {
    resolveSwimConfig(swimConfigOf(swim));
  } catch (err) {
    // The core names its tick-based field: report the option it comes from.
    const coreField = err instanceof RelayError ? /^swim option (\w+):/.exec(err.message)?.[1] : undefined;
    const option = coreField === undefined ? undefined : swimOptionOf(coreField);
    if (option === undefined) throw err;
    throw invalid(`swim.${option}`, `conflicts with another swim setting (in ${TICK_MS} ms ticks: ${(err as RelayError).message.replace(/^swim option \w+: /, '')})`);
  }
  return swim;
}

function resolvePeer(value: unknown, resolved: Pick<ResolvedBrokerOptions, 'raft'>): ResolvedPeerOptions {
  const o = record('peer', value, Object.keys(PEER_DEFAULTS));
  // A request must outlive an election (at most twice the election timeout), or every failover times out.
  const longestElectionMs = 2 * resolved.raft.electionTimeoutMs;
  const p = { ...PEER_DEFAULTS, requestTimeoutMs: Math.max(PEER_DEFAULTS.requestTimeoutMs, 2 * longestElectionMs), ...stripUndefined(o) };
  const peer: ResolvedPeerOptions = {
    requestTimeoutMs: integer('peer.requestTimeoutMs', p.requestTimeoutMs, 100, 600_000),
    readTimeoutMs: integer('peer.readTimeoutMs', p.readTimeoutMs, 100, 600_000),
    maxFrameBytes: integer('peer.maxFrameBytes', p.maxFrameBytes, 1024 * 1024, 1024 * 1024 * 1024),
    maxQueuedBytes: integer('peer.maxQueuedBytes', p.maxQueuedBytes, 1024 * 1024, Number.MAX_SAFE_INTEGER),
    reconnectInitialDelayMs: integer('peer.reconnectInitialDelayMs', p.reconnectInitialDelayMs, 1, 600_000),
    reconnectMaxDelayMs: integer('peer.reconnectMaxDelayMs', p.reconnectMaxDelayMs, 1, 600_000),
  };
  if (peer.requestTimeoutMs <= longestElectionMs) {
    throw invalid('peer.requestTimeoutMs', `must be longer than the longest Raft election (2 × raft.electionTimeoutMs = ${longestElectionMs}), got ${peer.requestTimeoutMs}: requests would time out during every failover`);
  }
  if (peer.maxQueuedBytes < peer.maxFrameBytes) throw invalid('peer.maxQueuedBytes', `must be at least peer.maxFrameBytes (${peer.maxFrameBytes}), got ${peer.maxQueuedBytes}`);
  if (peer.reconnectMaxDelayMs < peer.reconnectInitialDelayMs) {
    throw invalid('peer.reconnectMaxDelayMs', `must be at least peer.reconnectInitialDelayMs (${peer.reconnectInitialDelayMs}), got ${peer.reconnectMaxDelayMs}`);
  }
  return peer;
}

/** A `--join` address: a running broker's peer port, its id optional. */
export interface JoinAddress {
  id?: string;
  host: string;
  port: number;
}

function resolveJoin(join: unknown): JoinAddress[] {
  if (join === undefined) return [];
  if (!Array.isArray(join)) throw invalid('join', 'must be an array of "host:port" (or "id@host:port") strings');
  return join.map((spec) => {
    if (typeof spec !== 'string') throw invalid('join', `must hold "host:port" strings, got ${JSON.stringify(spec)}`);
    if (spec.includes('@')) {
      try {
        return parsePeer(spec);
      } catch (err) {
        throw invalid('join', (err as Error).message);
      }
    }
    const match = /^([^\s:@]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(spec);
    const port = Number(match?.[2]);
    if (match === null || port < 1 || port > 65535) throw invalid('join', `"${spec}" must look like host:port (a running broker's peer port, e.g. 127.0.0.1:7501)`);
    return { host: (match[1] as string).replace(/^\[|\]$/g, ''), port };
  });
}

function resolvePeers(id: unknown, peers: unknown): PeerAddress[] {
  if (peers === undefined) return [];
  if (!Array.isArray(peers)) throw invalid('peers', 'must be an array of "id@host:port" strings');
  const parsed = peers.map((spec) => {
    if (typeof spec !== 'string') throw invalid('peers', `must hold "id@host:port" strings, got ${JSON.stringify(spec)}`);
    try {
      return parsePeer(spec);
    } catch (err) {
      throw invalid('peers', (err as Error).message);
    }
  });
  const ids = new Set<string>();
  for (const peer of parsed) {
    if (peer.id === id) throw invalid('peers', `lists this broker's own id "${peer.id}"; list only the others`);
    if (ids.has(peer.id)) throw invalid('peers', `lists "${peer.id}" twice`);
    ids.add(peer.id);
  }
  return parsed;
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
