import { RelayError, assertPattern } from '@relaymq/sdk/protocol';
import { parsePeer, type PeerAddress } from './net/peer-transport.js';
import { createLogger } from './observability/logger.js';

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
   * Directory for this broker's data: each partition's segment log and
   * checkpoint, and the Raft logs (term, vote, entries), all surviving a
   * restart. Set on a standalone broker too, it stores topics on disk (a
   * cluster of one). Unset: everything in memory — fine for tests, unsafe
   * for a cluster whose brokers restart.
   */
  dataDir?: string;
  /**
   * With `dataDir`: when a publish is fsynced. `always`: on every replica
   * that counts toward the quorum before the ack (group commit: one fsync
   * covers every publish that arrived meanwhile). `interval`: written before
   * the ack, fsynced every `fsyncIntervalMs`; a power loss or OS crash of a
   * quorum of brokers within that window loses acknowledged publishes (a
   * process crash loses nothing: the OS has the data).
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
   * @defaultValue `{}` (keep everything)
   */
  retention?: RetentionOptions;
  /** With `dataDir`: retention of the topics matching a pattern (the first match wins) instead of `retention`. @defaultValue `[]` */
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
   * Time a new connection has to send its `hello`.
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
   * On shutdown, how long clients get to move away after `goaway` before they are disconnected.
   * @defaultValue `2000`
   */
  drainTimeoutMs?: number;
  /**
   * Port of the admin HTTP server (`/metrics`, `/healthz`, `/readyz`,
   * `/api/cluster`, the dashboard at `/`); `0` picks a free one (read it back
   * from `broker.adminUrl`). Unset: no admin server.
   */
  adminPort?: number;
  /**
   * Interface the admin server listens on. Keep it private: the admin port
   * has no authentication.
   * @defaultValue the value of `host`
   */
  adminHost?: string;
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
}

/** Severity of a log line. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** The logging seam every broker module uses. */
export type LogFunction = (level: LogLevel, message: string, fields?: Record<string, unknown>) => void;

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

/** Retention limits of a partition on disk; each is optional. */
export interface RetentionOptions {
  maxAgeMs?: number;
  maxBytes?: number;
  maxMessages?: number;
}

/** Options with every default applied. */
export type ResolvedBrokerOptions = Required<Omit<BrokerOptions, 'advertisedUrl' | 'peers' | 'dataDir' | 'adminPort' | 'adminHost' | 'alerts' | 'log'>> & {
  advertisedUrl: string | undefined;
  dataDir: string | undefined;
  peers: PeerAddress[];
  adminPort: number | undefined;
  adminHost: string;
  alerts: ResolvedAlertOptions | undefined;
  /** The `log` option, or the built-in pino logger at `logLevel`. */
  log: LogFunction;
};

/** Defaults of {@link BrokerOptions}, in one place. */
export const BROKER_DEFAULTS = Object.freeze({
  id: 'b1',
  host: '127.0.0.1',
  port: 7401,
  peerPort: 7501,
  replicationFactor: 3,
  defaultPartitions: 1,
  maxPayload: 1024 * 1024,
  heartbeatMs: 5000,
  helloTimeoutMs: 10_000,
  dedupeWindow: 16_384,
  retentionBytes: 64 * 1024 * 1024,
  maxCredit: 10_000,
  outboundHighWaterBytes: 4 * 1024 * 1024,
  drainTimeoutMs: 2000,
  fsync: 'always' as 'always' | 'interval',
  fsyncIntervalMs: 1000,
  retention: {} as RetentionOptions,
  topicRetention: [] as Array<{ pattern: string } & RetentionOptions>,
  segmentBytes: 64 * 1024 * 1024,
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

const knownOptions = new Set([...Object.keys(BROKER_DEFAULTS), 'advertisedUrl', 'peers', 'dataDir', 'log', 'adminPort', 'adminHost', 'alerts']);
const logLevels = ['debug', 'info', 'warn', 'error', 'silent'] as const;

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
    drainTimeoutMs: integer('drainTimeoutMs', o.drainTimeoutMs, 0, 600_000),
    fsync: oneOf('fsync', o.fsync, ['always', 'interval'] as const),
    fsyncIntervalMs: integer('fsyncIntervalMs', o.fsyncIntervalMs, 1, 3_600_000),
    retention: resolveRetention('retention', o.retention),
    topicRetention: resolveTopicRetention(o.topicRetention),
    segmentBytes: integer('segmentBytes', o.segmentBytes, 4096, 1024 * 1024 * 1024),
    raftLogMaxBytes: integer('raftLogMaxBytes', o.raftLogMaxBytes, 0, Number.MAX_SAFE_INTEGER),
    adminPort: o.adminPort === undefined ? undefined : integer('adminPort', o.adminPort, 0, 65535),
    adminHost: o.adminHost === undefined ? (o.host as string) : text('adminHost', o.adminHost, /^\S{1,255}$/, 'a host name or address'),
    alerts: o.alerts === undefined ? undefined : resolveAlerts(o.alerts),
    logLevel: oneOf('logLevel', o.logLevel, logLevels),
    log: () => {},
  };
  if (resolved.fsync === 'always' && options.fsyncIntervalMs !== undefined) throw invalid('fsyncIntervalMs', 'is only meaningful with fsync "interval"');
  if (o.log !== undefined && typeof o.log !== 'function') throw invalid('log', 'must be a function');
  if (o.log !== undefined && options.logLevel !== undefined) {
    throw invalid('logLevel', 'conflicts with log: logLevel sets the built-in logger, log replaces it; give one');
  }
  resolved.log = o.log ?? createLogger({ brokerId: resolved.id, level: resolved.logLevel });
  return resolved;
}

function oneOf<const V extends string>(field: string, value: unknown, values: readonly V[]): V {
  if (typeof value !== 'string' || !(values as readonly string[]).includes(value)) throw invalid(field, `must be one of ${values.join(', ')}, got ${JSON.stringify(value)}`);
  return value as V;
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
