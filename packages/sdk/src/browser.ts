/**
 * `@relaymq/sdk` for browsers: the core with the global `WebSocket` supplied.
 *
 * @packageDocumentation
 */
import { RelayClient } from './client.js';
import { RelayError } from './protocol/index.js';
import type { ClientOptions } from './options.js';
import type { WebSocketConstructor } from './transport/websocket.js';

export * from './index.js';

/**
 * Connects to the brokers in `options.brokers` with the global `WebSocket`
 * and resolves once one accepted the handshake.
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
  if (options.tls !== undefined) {
    throw new RelayError('INVALID_ARGUMENT', 'option tls is for Node; in a browser, wss:// uses the platform TLS and certificate store');
  }
  return new RelayClient(options, globalThis.WebSocket as unknown as WebSocketConstructor | undefined);
}
