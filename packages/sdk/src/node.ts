/**
 * `@relaymq/sdk` for Node.js: the core with the `ws` WebSocket supplied.
 *
 * @packageDocumentation
 */
import WebSocket from 'ws';
import { RelayClient } from './client.js';
import type { ClientOptions } from './options.js';
import type { WebSocketConstructor } from './transport/websocket.js';

export * from './index.js';

const NodeWebSocket = WebSocket as unknown as WebSocketConstructor;

/**
 * Connects to the brokers in `options.brokers` (using `ws` unless
 * `options.WebSocket` is given) and resolves once one accepted the handshake.
 *
 * @example
 * ```ts
 * const client = await connect({ brokers: ['ws://127.0.0.1:7401', 'ws://127.0.0.1:7402'] });
 * ```
 */
export async function connect(options: ClientOptions): Promise<RelayClient> {
  const client = new RelayClient(options, NodeWebSocket);
  await client.start();
  return client;
}
