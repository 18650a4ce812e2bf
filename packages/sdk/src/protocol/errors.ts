/**
 * Every failure relaymq reports carries one of these stable codes, on the wire
 * (`error` and `nack` frames) and in the SDK (`RelayError.code`). Codes are
 * part of the public API: they are only ever added, never renamed.
 *
 * | code | meaning | retriable |
 * | --- | --- | --- |
 * | `PROTOCOL_ERROR` | a frame could not be decoded or failed validation; the connection is closed | no |
 * | `UNSUPPORTED_VERSION` | the peer speaks a protocol version this side does not | no |
 * | `PAYLOAD_TOO_LARGE` | a frame or message exceeds `maxPayload` | no |
 * | `INVALID_TOPIC` | a topic or pattern does not follow the grammar (wildcards in a publish topic included); or the topic does not exist where it must (an admin request), or was deleted (its subscription ended; a commit's positions naming a deleted incarnation of it were not stored) | no |
 * | `INVALID_ARGUMENT` | an option or argument has the wrong type or range | no |
 * | `INVALID_PARTITION` | a partition number is outside the topic's partitions | no |
 * | `SEQUENCE_GAP` | a publish skipped producer sequence numbers; the broker expects an earlier seq first | yes (the SDK resends in order) |
 * | `SEQUENCE_TOO_OLD` | a republished seq fell out of the broker's deduplication window; its outcome is unknown | no |
 * | `NOT_LEADER` | this broker does not lead the partition; `leader` hints where to go | yes |
 * | `NOT_READY` | the broker cannot serve yet (not joined its cluster, no metadata leader known); use another broker | yes |
 * | `NO_QUORUM` | the partition cannot reach a quorum of replicas | yes |
 * | `TIMEOUT` | no answer within the configured time | maybe: the outcome is unknown |
 * | `OUTBOX_FULL` | the SDK outbox is at its limit and the policy is `reject` | yes, later |
 * | `CONNECTION_CLOSED` | the connection closed before an answer arrived | yes |
 * | `NOT_CONNECTED` | no broker is reachable right now | yes |
 * | `CLIENT_CLOSED` | the client was closed by the application | no |
 * | `SUBSCRIPTION_NOT_FOUND` | the subscription id is unknown to the broker | no |
 * | `UNAUTHORIZED` | authentication failed or is missing | no |
 * | `FORBIDDEN` | the principal may not publish or subscribe to this topic | no |
 * | `LIMIT_EXCEEDED` | a broker limit (connections total or per address, subscriptions per connection) was reached | maybe |
 * | `RATE_LIMITED` | the connection published faster than the broker's `publishRateLimit`; the batch was not stored | yes (the SDK resends it after a pause) |
 * | `SLOW_CONSUMER` | the connection did not read what the broker sent (backlog over `maxOutboundBytes`, or stuck at `outboundHighWaterBytes` for `slowConsumerTimeoutMs`); it is closed | yes (reconnect and read faster) |
 * | `SHUTTING_DOWN` | the broker is draining; reconnect elsewhere | yes |
 * | `STORAGE_FULL` | the partition's disk is full; nothing was stored, reads go on, writes resume once space returns | yes, later (not by the SDK) |
 * | `STORAGE_ERROR` | the partition's disk failed a write or holds damaged data; nothing was stored | maybe, later |
 * | `INTERNAL` | an unexpected failure inside the broker | maybe |
 * | `FENCED` | a consumer-group member committed for a partition it no longer owns (its epoch is stale), or the group no longer knows it (session expired); nothing of it was stored | no (the member learns its new assignment) |
 */
export const ErrorCodes = [
  'PROTOCOL_ERROR',
  'UNSUPPORTED_VERSION',
  'PAYLOAD_TOO_LARGE',
  'INVALID_TOPIC',
  'INVALID_ARGUMENT',
  'INVALID_PARTITION',
  'SEQUENCE_GAP',
  'SEQUENCE_TOO_OLD',
  'NOT_LEADER',
  'NOT_READY',
  'NO_QUORUM',
  'TIMEOUT',
  'OUTBOX_FULL',
  'CONNECTION_CLOSED',
  'NOT_CONNECTED',
  'CLIENT_CLOSED',
  'SUBSCRIPTION_NOT_FOUND',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'LIMIT_EXCEEDED',
  'RATE_LIMITED',
  'SLOW_CONSUMER',
  'SHUTTING_DOWN',
  'STORAGE_FULL',
  'STORAGE_ERROR',
  'INTERNAL',
  'FENCED',
] as const;

/** A stable, machine-readable error code. See {@link ErrorCodes} for the table. */
export type ErrorCode = (typeof ErrorCodes)[number];

const codeSet: ReadonlySet<string> = new Set(ErrorCodes);

/** True when `value` is one of the known {@link ErrorCode}s. */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && codeSet.has(value);
}

/** Codes after which the same request may succeed on another attempt or broker. */
const retriable: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'SEQUENCE_GAP',
  'NOT_LEADER',
  'NOT_READY',
  'NO_QUORUM',
  'CONNECTION_CLOSED',
  'NOT_CONNECTED',
  'RATE_LIMITED',
  'SLOW_CONSUMER',
  'SHUTTING_DOWN',
]);

/**
 * Why a dial to a broker failed, as far as the platform says: `refused`
 * (nothing listens), `not-found` (the host name does not resolve),
 * `unreachable` (no route, network down, TCP timeout), `tls` (certificate or
 * TLS handshake), `unauthorized` (token refused), `rejected` (the broker or a
 * proxy refused the connection for another reason), `timeout` (no handshake
 * answer in time), `closed` (closed during the handshake), `unknown` (the
 * platform gave no cause; browsers never do for network errors).
 */
export type DialFailureKind = 'refused' | 'not-found' | 'unreachable' | 'tls' | 'unauthorized' | 'rejected' | 'timeout' | 'closed' | 'unknown';

/** The last failed dial to one broker URL. */
export interface DialFailure {
  url: string;
  kind: DialFailureKind;
  /** The platform's own code when it gave one, e.g. `ECONNREFUSED`, `ENOTFOUND`, `DEPTH_ZERO_SELF_SIGNED_CERT`. */
  systemCode?: string;
  /** What went wrong, for people (the URL is not repeated). */
  message: string;
}

/** Extra, code-specific facts attached to an error. */
export interface RelayErrorDetails {
  /**
   * For a failed dial (a `reconnecting` event's error), its cause; for the
   * `NOT_CONNECTED` of `connect()`, the last cause of each broker URL tried.
   */
  dialFailures?: DialFailure[];
  /** For `NOT_LEADER`: the id of the broker believed to lead the partition. */
  leader?: string;
  /** For `SEQUENCE_GAP`: the seq the broker expects next. */
  expectedSeq?: number;
  /** Anything the error wraps. */
  cause?: unknown;
}

/**
 * The one error class of relaymq, shared by broker and SDK.
 *
 * @example
 * ```ts
 * try { await client.publish('orders', data); }
 * catch (err) { if (err instanceof RelayError && err.code === 'OUTBOX_FULL') backOff(); }
 * ```
 */
export class RelayError extends Error {
  override readonly name = 'RelayError';
  /** The stable code; match on this, never on the message. */
  readonly code: ErrorCode;
  /** Code-specific facts, e.g. the leader hint of a `NOT_LEADER`. */
  readonly details: RelayErrorDetails;

  constructor(code: ErrorCode, message: string, details: RelayErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.details = details;
  }

  /** Whether the same request may succeed if tried again (possibly elsewhere). */
  get retriable(): boolean {
    return retriable.has(this.code);
  }
}

/** Shorthand used by validators: a `PROTOCOL_ERROR` with a message. */
export function protocolError(message: string): RelayError {
  return new RelayError('PROTOCOL_ERROR', message);
}
