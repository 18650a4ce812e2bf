/**
 * `@relaymq/sdk`: the relaymq client. In Node.js it uses the `ws`
 * WebSocket; bundlers resolve the same import to the browser build, which
 * uses the global `WebSocket` (and refuses the Node-only `tls` option).
 *
 * @module \@relaymq/sdk
 */
import WebSocket from 'ws';
import { RelayClient } from './client.js';
import { RelayError } from './protocol/index.js';
import type { ClientOptions, ClientTlsOptions } from './options.js';
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

/** `NodeWebSocket` with TLS settings (CA, client certificate) for `wss://`. */
function tlsWebSocket(tls: ClientTlsOptions): WebSocketConstructor {
  const { ca, cert, key, rejectUnauthorized } = tls;
  const settings = { ca: pemBuffer(ca), cert: pemBuffer(cert), key: pemBuffer(key), rejectUnauthorized: rejectUnauthorized ?? true };
  return class extends WebSocket {
    constructor(url: string) {
      super(url, { generateMask: () => {}, perMessageDeflate: false, ...settings });
    }
  } as unknown as WebSocketConstructor;
}

function pemBuffer(value: string | Uint8Array | undefined): Buffer | undefined {
  return value === undefined ? undefined : Buffer.from(value);
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
  if (options.tls !== undefined && options.WebSocket !== undefined) {
    throw new RelayError('INVALID_ARGUMENT', 'option tls configures the built-in WebSocket; with option WebSocket, configure TLS on that constructor');
  }
  const Socket = options.tls === undefined ? (NodeWebSocket as unknown as WebSocketConstructor) : tlsWebSocket(options.tls);
  return new RelayClient(options, Socket);
}
