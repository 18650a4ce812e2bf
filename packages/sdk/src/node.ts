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

/**
 * `ws` with a zero masking key: RFC 6455 masking protects intermediaries from
 * script in browsers; a Node client is not such script, and with a zero key
 * neither side spends time XOR-ing every byte.
 */
class NodeWebSocket extends WebSocket {
  constructor(url: string) {
    super(url, { generateMask: () => {}, perMessageDeflate: false });
  }
}

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
  const client = createClient(options);
  await client.start();
  return client;
}

/**
 * Creates a client without dialing, so listeners can be attached before the
 * first `connecting` event; then `await client.start()`.
 */
export function createClient(options: ClientOptions): RelayClient {
  return new RelayClient(options, NodeWebSocket as unknown as WebSocketConstructor);
}
