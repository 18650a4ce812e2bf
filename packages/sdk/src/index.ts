/**
 * `@relaymq/sdk` core: the client, independent of any runtime. It needs a
 * WebSocket constructor in the options; the `node` and `browser` entry points
 * supply one. Import it as `@relaymq/sdk/core` to bring your own
 * WebSocket (`options.WebSocket`).
 *
 * @module \@relaymq/sdk/core
 */
import { RelayClient } from './client.js';
import type { ClientOptions } from './options.js';

export { RelayClient, type ClientStats } from './client.js';
export type { BrokerRef, ClientEvents, ErrorContext } from './events.js';
export {
  CLIENT_DEFAULTS,
  type ClientOptions,
  type ClientTlsOptions,
  type CommitOptions,
  type OutboxOptions,
  type ReconnectOptions,
  type TokenSource,
} from './options.js';
export type { PublishOptions, PublishStats } from './publish/publisher.js';
export type { PublishReceipt } from './publish/outbox.js';
export type {
  GapEvent,
  Message,
  MessageHandler,
  MessageStream,
  SubscribeOptions,
  SubscribeStats,
  Subscription,
} from './subscribe/subscriber.js';
export { DEAD_LETTER_HEADERS, RETRY_DEFAULTS, type RetryOptions } from './subscribe/failure-policy.js';
export { DEFAULT_SESSION_TIMEOUT_MS } from './subscribe/subscriber.js';
export type { AssignedEvent, GroupPartitionRef, RevokedEvent } from './subscribe/group-membership.js';
export { messageTraceContext } from './subscribe/tracing.js';
export type { WebSocketConstructor, WebSocketLike } from './transport/websocket.js';
export {
  RelayError,
  ErrorCodes,
  isErrorCode,
  type ErrorCode,
  type RelayErrorDetails,
  type DialFailure,
  type DialFailureKind,
  type AckLevel,
  type StartPosition,
} from './protocol/index.js';

/**
 * Connects to the brokers in `options.brokers` and resolves once one accepted
 * the handshake. `options.WebSocket` is required here; prefer the default
 * entry point (`@relaymq/sdk`), which supplies it.
 */
export async function connect(options: ClientOptions): Promise<RelayClient> {
  const client = createClient(options);
  await client.start();
  return client;
}

/**
 * Creates a client without dialing, so listeners can be attached before the
 * first `connecting` event; then `await client.start()`.
 */
export function createClient(options: ClientOptions): RelayClient {
  return new RelayClient(options);
}
