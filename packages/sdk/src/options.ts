import { RelayError, type AckLevel } from './protocol/index.js';
import type { WebSocketConstructor } from './transport/websocket.js';

/** Reconnect backoff: exponential, randomized, capped (driven by p-retry). */
export interface ReconnectOptions {
  /**
   * First delay after a failed attempt.
   * @defaultValue `100`
   */
  initialDelayMs?: number;
  /**
   * Largest delay between attempts.
   * @defaultValue `5000`
   */
  maxDelayMs?: number;
  /**
   * Growth of the delay per failed attempt.
   * @defaultValue `2`
   */
  factor?: number;
  /**
   * Randomize each delay by a factor in [1, 2), so clients do not retry in lockstep.
   * @defaultValue `true`
   */
  jitter?: boolean;
  /**
   * Attempts per lost connection before giving up; `Infinity` never gives up.
   * @defaultValue `Infinity`
   */
  maxAttempts?: number;
}

/** The bounded buffer of unacknowledged publishes. */
export interface OutboxOptions {
  /**
   * Most unacknowledged messages. Keep it at or below the broker's `dedupeWindow`.
   * @defaultValue `10000`
   */
  maxMessages?: number;
  /**
   * Most bytes of unacknowledged message data.
   * @defaultValue `67108864` (64 MiB)
   */
  maxBytes?: number;
  /**
   * What `publish` does when the outbox is full: wait for room (`block`) or
   * fail at once with `OUTBOX_FULL` (`reject`).
   * @defaultValue `"block"`
   */
  policy?: 'block' | 'reject';
  /**
   * Most messages of one partition resent at once on a new connection
   * (failover, reconnect) or after a refusal: the rest of the partition's
   * unacknowledged messages follow, in order and with the same seqs, as acks
   * free the window. Without it a client whose connections fail over
   * repeatedly sends its whole outbox to every next broker. Publishing in
   * steady state is not windowed: the outbox (`maxMessages`, `maxBytes`)
   * bounds what is in flight there.
   * @defaultValue `1000`
   */
  resendMessages?: number;
  /**
   * Most bytes of one partition resent at once, with `resendMessages`:
   * whichever is reached first holds the rest back. A single message larger
   * than this is still sent, alone.
   * @defaultValue `1048576` (1 MiB)
   */
  resendBytes?: number;
}

/**
 * A token, or a function that returns one (e.g. fetches a fresh JWT); the
 * function is called again before every dial, so a reconnect after expiry
 * presents a new token.
 */
export type TokenSource = string | (() => string | Promise<string>);

/**
 * TLS settings of `wss://` connections, for Node (`ws`). In browsers the
 * platform's TLS and certificate store apply and this option is refused.
 */
export interface ClientTlsOptions {
  /** CA certificates (PEM) trusted for the brokers' certificates, instead of Node's default roots. */
  ca?: string | Uint8Array;
  /** Client certificate chain (PEM), for brokers that require mutual TLS. */
  cert?: string | Uint8Array;
  /** Private key (PEM) of `cert`. */
  key?: string | Uint8Array;
  /**
   * Refuse brokers whose certificate does not verify. Turn off only in tests.
   * @defaultValue `true`
   */
  rejectUnauthorized?: boolean;
}

/** When durable subscriptions commit their positions. */
export interface CommitOptions {
  /**
   * Longest time the position of a handled message waits before it is
   * committed; after a crash at most this much work is delivered again.
   * `0` commits after every message (one commit in flight at a time).
   * @defaultValue `1000`
   */
  intervalMs?: number;
  /**
   * Handled messages after which positions are committed at once, without
   * waiting for `intervalMs`.
   * @defaultValue `1000`
   */
  maxMessages?: number;
}

/** Options of `connect()`. Only `brokers` is required. */
export interface ClientOptions {
  /** Seed broker URLs (`ws://` or `wss://`). Seeds are never forgotten. */
  brokers: string[];
  /**
   * WebSocket constructor. The Node entry point supplies `ws`; the browser entry point the global.
   * Required when importing `@relaymq/sdk/core` directly.
   */
  WebSocket?: WebSocketConstructor;
  /**
   * Client id shown to brokers.
   * @defaultValue a random UUID
   */
  clientId?: string;
  /**
   * Stable producer id, the key of idempotent publishing. Reuse it only for one
   * client at a time.
   * @defaultValue a random UUID
   */
  producerId?: string;
  /**
   * Token sent in the handshake, for brokers that require authentication: a
   * string, or a (possibly async) provider called again on every (re)connect.
   */
  token?: TokenSource;
  /** TLS for `wss://` brokers (Node only). */
  tls?: ClientTlsOptions;
  /**
   * Brokers kept connected at once (warm standby); capped by the brokers known.
   * With `discovery`, the client also keeps one connection to each other
   * broker that leads a partition it publishes to, so publishes go to their
   * leader directly rather than being forwarded. While a broker refuses a
   * partition and names another as the way to it (a split between brokers),
   * up to 4 more are dialed for a while (see docs/reliability.md, "Routing
   * across a split").
   * @defaultValue `2`
   */
  poolSize?: number;
  /**
   * Learn brokers from the cluster. Turn off when only a load balancer is reachable.
   * @defaultValue `true`
   */
  discovery?: boolean;
  reconnect?: ReconnectOptions;
  outbox?: OutboxOptions;
  /**
   * Default ack level of `publish`: `quorum`, `all`, `leader` (acknowledged
   * on the leader's write alone; lost if the leader fails before it is
   * replicated) or `none` (see {@link AckLevel}).
   * @defaultValue `"quorum"`
   */
  ack?: AckLevel;
  /**
   * How long `publish` waits for its ack before rejecting with `TIMEOUT`
   * (the message stays in the outbox: its outcome is unknown, never duplicated).
   * @defaultValue `30000`
   */
  publishTimeoutMs?: number;
  /**
   * How long requests (subscribe, metadata) and a connection handshake may take.
   * @defaultValue `10000`
   */
  requestTimeoutMs?: number;
  /**
   * How long `connect()` waits for the first broker before rejecting with `NOT_CONNECTED`.
   * @defaultValue `30000`
   */
  connectTimeoutMs?: number;
  /**
   * Interval of client pings; an idle broker silent for twice as long is considered dead.
   * While publishes or requests await answers on a connection and another
   * broker is connected, a broker silent for 500 ms is probed with a ping, and
   * judged dead when that ping goes unanswered for 1 s, or three smoothed round
   * trips on a link that is always slower (a stopped broker keeps its TCP
   * connection open; a slow one answers late and is kept). An interval below
   * 1 s shortens both. Lower it for faster failover from a stopped broker, at
   * the cost of more pings and of judging a broker stalled that long (a long
   * GC pause) dead.
   * @defaultValue `5000`
   */
  pingIntervalMs?: number;
  /**
   * Messages a subscription may have in flight to this client (its credit):
   * sent by the broker and not yet handled. Credit goes back to the broker
   * as messages are handled, a quarter of the window at a time.
   * @defaultValue `10000`
   */
  subscriptionCredit?: number;
  /**
   * Payload bytes a subscription may have in flight to this client, with
   * `subscriptionCredit`: whichever runs out first pauses the broker, so a
   * slow handler holds at most this much (plus one message) queued here.
   * @defaultValue `8388608` (8 MiB)
   */
  subscriptionCreditBytes?: number;
  /**
   * How long `close()` waits for the outbox to drain.
   * @defaultValue `5000`
   */
  closeTimeoutMs?: number;
  /** Batching of durable subscription positions (see `SubscribeOptions.durable`). */
  commit?: CommitOptions;
}

/** Options with defaults applied. */
export interface ResolvedClientOptions {
  brokers: string[];
  WebSocket: WebSocketConstructor;
  clientId: string;
  producerId: string;
  token: TokenSource | undefined;
  tls: ClientTlsOptions | undefined;
  poolSize: number;
  discovery: boolean;
  reconnect: Required<ReconnectOptions>;
  outbox: Required<OutboxOptions>;
  ack: AckLevel;
  publishTimeoutMs: number;
  requestTimeoutMs: number;
  connectTimeoutMs: number;
  pingIntervalMs: number;
  subscriptionCredit: number;
  subscriptionCreditBytes: number;
  closeTimeoutMs: number;
  commit: Required<CommitOptions>;
}

/** Defaults of {@link ClientOptions}, in one place. */
export const CLIENT_DEFAULTS = Object.freeze({
  poolSize: 2,
  discovery: true,
  reconnect: Object.freeze({ initialDelayMs: 100, maxDelayMs: 5000, factor: 2, jitter: true, maxAttempts: Infinity }),
  outbox: Object.freeze({ maxMessages: 10_000, maxBytes: 64 * 1024 * 1024, policy: 'block' as const, resendMessages: 1000, resendBytes: 1024 * 1024 }),
  ack: 'quorum' as const,
  publishTimeoutMs: 30_000,
  requestTimeoutMs: 10_000,
  connectTimeoutMs: 30_000,
  pingIntervalMs: 5000,
  subscriptionCredit: 10_000,
  subscriptionCreditBytes: 8 * 1024 * 1024,
  closeTimeoutMs: 5000,
  commit: Object.freeze({ intervalMs: 1000, maxMessages: 1000 }),
});

const ackLevels: readonly AckLevel[] = ['none', 'leader', 'quorum', 'all'];

function invalid(field: string, problem: string, value: unknown): RelayError {
  return new RelayError('INVALID_ARGUMENT', `option ${field} ${problem}, got ${JSON.stringify(value)}`);
}

function integer(field: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(field, `must be an integer from ${min} to ${max}`, value);
  }
  return value;
}

/** Checks a broker URL: `ws://` or `wss://` with a host. */
export function checkBrokerUrl(url: unknown, field = 'brokers'): string {
  if (typeof url !== 'string') throw invalid(field, 'must hold URL strings', url);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalid(field, 'must hold valid URLs', url);
  }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') throw invalid(field, 'must hold ws:// or wss:// URLs', url);
  return url;
}

function randomId(): string {
  return globalThis.crypto.randomUUID();
}

const knownOptions: readonly string[] = [...Object.keys(CLIENT_DEFAULTS), 'brokers', 'WebSocket', 'clientId', 'producerId', 'token', 'tls'];
const knownNested: Readonly<Record<string, readonly string[]>> = {
  reconnect: Object.keys(CLIENT_DEFAULTS.reconnect),
  outbox: Object.keys(CLIENT_DEFAULTS.outbox),
  commit: Object.keys(CLIENT_DEFAULTS.commit),
  tls: ['ca', 'cert', 'key', 'rejectUnauthorized'],
};

/** Edit distance of two short names, to suggest the option a typo meant. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length] as number;
}

/**
 * Rejects keys of `value` that are not in `known`, like the broker does: a
 * typo (`reconect`) must not silently fall back to a default.
 */
function rejectUnknown(prefix: string, value: object, known: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue;
    const lower = key.toLowerCase();
    const close = known.filter((name) => editDistance(lower, name.toLowerCase()) <= Math.max(1, Math.floor(name.length / 4)));
    const hint = close.length > 0 ? ` (did you mean ${close.map((name) => prefix + name).join(' or ')}?)` : '';
    throw new RelayError('INVALID_ARGUMENT', `option ${prefix}${key} is not a known option${hint}`);
  }
}

/** Applies defaults and validates, naming the first bad field; unknown fields are rejected. */
export function resolveClientOptions(options: ClientOptions, fallbackWebSocket?: WebSocketConstructor): ResolvedClientOptions {
  if (typeof options !== 'object' || options === null) throw invalid('options', 'must be an object', options);
  rejectUnknown('', options, knownOptions);
  for (const [field, known] of Object.entries(knownNested)) {
    const value: unknown = (options as unknown as Record<string, unknown>)[field];
    if (value === undefined) continue;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(field, 'must be an object', value);
    rejectUnknown(`${field}.`, value, known);
  }
  if (!Array.isArray(options.brokers) || options.brokers.length === 0) {
    throw invalid('brokers', 'must be a non-empty array of ws:// URLs', options.brokers);
  }
  const WebSocket = options.WebSocket ?? fallbackWebSocket;
  if (typeof WebSocket !== 'function') throw invalid('WebSocket', 'must be a WebSocket constructor', typeof WebSocket);
  const reconnect = { ...CLIENT_DEFAULTS.reconnect, ...options.reconnect };
  const commit = { ...CLIENT_DEFAULTS.commit, ...options.commit };
  const outbox = { ...CLIENT_DEFAULTS.outbox, ...options.outbox };
  const ack = options.ack ?? CLIENT_DEFAULTS.ack;
  if (!ackLevels.includes(ack)) throw invalid('ack', `must be one of ${ackLevels.join(', ')}`, ack);
  if (outbox.policy !== 'block' && outbox.policy !== 'reject') throw invalid('outbox.policy', 'must be "block" or "reject"', outbox.policy);
  if (typeof reconnect.jitter !== 'boolean') throw invalid('reconnect.jitter', 'must be a boolean', reconnect.jitter);
  if (typeof reconnect.factor !== 'number' || !(reconnect.factor >= 1) || !Number.isFinite(reconnect.factor)) {
    throw invalid('reconnect.factor', 'must be a finite number >= 1', reconnect.factor);
  }
  if (reconnect.maxAttempts !== Infinity) integer('reconnect.maxAttempts', reconnect.maxAttempts, 1);
  const initialDelayMs = integer('reconnect.initialDelayMs', reconnect.initialDelayMs, 0);
  const maxDelayMs = integer('reconnect.maxDelayMs', reconnect.maxDelayMs, 0);
  if (maxDelayMs < initialDelayMs) {
    throw invalid('reconnect.maxDelayMs', `must be at least reconnect.initialDelayMs (${initialDelayMs})`, maxDelayMs);
  }
  const id = (field: 'clientId' | 'producerId'): string => {
    const value = options[field] ?? randomId();
    if (typeof value !== 'string' || value.length === 0 || value.length > 256) throw invalid(field, 'must be a string of 1-256 characters', value);
    return value;
  };
  return {
    brokers: options.brokers.map((url) => checkBrokerUrl(url)),
    WebSocket,
    clientId: id('clientId'),
    producerId: id('producerId'),
    token: resolveToken(options.token),
    tls: resolveTls(options.tls),
    poolSize: integer('poolSize', options.poolSize ?? CLIENT_DEFAULTS.poolSize, 1, 16),
    discovery: options.discovery ?? CLIENT_DEFAULTS.discovery,
    reconnect: { initialDelayMs, maxDelayMs, factor: reconnect.factor, jitter: reconnect.jitter, maxAttempts: reconnect.maxAttempts },
    outbox: {
      maxMessages: integer('outbox.maxMessages', outbox.maxMessages, 1),
      maxBytes: integer('outbox.maxBytes', outbox.maxBytes, 1),
      policy: outbox.policy,
      resendMessages: integer('outbox.resendMessages', outbox.resendMessages, 1),
      resendBytes: integer('outbox.resendBytes', outbox.resendBytes, 1),
    },
    ack,
    publishTimeoutMs: integer('publishTimeoutMs', options.publishTimeoutMs ?? CLIENT_DEFAULTS.publishTimeoutMs, 1),
    requestTimeoutMs: integer('requestTimeoutMs', options.requestTimeoutMs ?? CLIENT_DEFAULTS.requestTimeoutMs, 1),
    connectTimeoutMs: integer('connectTimeoutMs', options.connectTimeoutMs ?? CLIENT_DEFAULTS.connectTimeoutMs, 1),
    pingIntervalMs: integer('pingIntervalMs', options.pingIntervalMs ?? CLIENT_DEFAULTS.pingIntervalMs, 10),
    subscriptionCredit: integer('subscriptionCredit', options.subscriptionCredit ?? CLIENT_DEFAULTS.subscriptionCredit, 1, 1_000_000),
    subscriptionCreditBytes: integer('subscriptionCreditBytes', options.subscriptionCreditBytes ?? CLIENT_DEFAULTS.subscriptionCreditBytes, 1, Number.MAX_SAFE_INTEGER),
    closeTimeoutMs: integer('closeTimeoutMs', options.closeTimeoutMs ?? CLIENT_DEFAULTS.closeTimeoutMs, 0),
    commit: {
      intervalMs: integer('commit.intervalMs', commit.intervalMs, 0, 3_600_000),
      maxMessages: integer('commit.maxMessages', commit.maxMessages, 1),
    },
  };
}

function resolveToken(token: unknown): TokenSource | undefined {
  if (token === undefined || typeof token === 'function') return token as TokenSource | undefined;
  if (typeof token !== 'string' || token.length === 0) throw invalid('token', 'must be a non-empty string or a function returning one', typeof token);
  return token;
}

function resolveTls(tls: unknown): ClientTlsOptions | undefined {
  if (tls === undefined) return undefined;
  if (typeof tls !== 'object' || tls === null) throw invalid('tls', 'must be an object', tls);
  const o = tls as Record<string, unknown>;
  for (const field of ['ca', 'cert', 'key']) {
    const value = o[field];
    if (value !== undefined && typeof value !== 'string' && !(value instanceof Uint8Array)) throw invalid(`tls.${field}`, 'must be PEM text (string or bytes)', typeof value);
  }
  if ((o.cert === undefined) !== (o.key === undefined)) throw invalid('tls.cert', 'and tls.key must be given together', Object.keys(o));
  if (o.rejectUnauthorized !== undefined && typeof o.rejectUnauthorized !== 'boolean') throw invalid('tls.rejectUnauthorized', 'must be a boolean', o.rejectUnauthorized);
  return { ...(o as ClientTlsOptions) };
}
