import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { ClientSocket } from './session-context.js';
import { listenOn } from '../net/listen.js';
import type { TlsMaterial } from '../security/tls.js';

/** Handlers the client listener calls for each connection. */
export interface ConnectionHandler {
  /** A connection opened from `remoteAddress`; returns the callbacks for its traffic. */
  open(
    socket: ClientSocket,
    remoteAddress: string,
  ): {
    message(bytes: Uint8Array): void;
    text(): void;
    closed(): void;
  };
  /** A TLS handshake failed (a plain-text client, or no valid client certificate). */
  tlsFailed?(error: Error): void;
}

/** TLS of the client port: key material, and whether clients must present a certificate. */
export interface ClientListenerTls extends TlsMaterial {
  requireClientCert: boolean;
}

/** A listening WebSocket server for clients. */
export interface ClientListener {
  readonly port: number;
  close(): Promise<void>;
}

function toBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return data;
}

/** Where and how {@link listenForClients} listens. */
export interface ClientListenerOptions {
  host: string;
  port: number;
  /** Largest message accepted; larger ones close the connection (1009) before they are buffered. */
  maxPayload: number;
  /**
   * Time a socket has to finish its TLS handshake and its HTTP upgrade
   * request, so connections that never become WebSockets do not linger.
   */
  handshakeTimeoutMs: number;
  /** Serve `wss://` only. Unset: plain `ws://`. */
  tls?: ClientListenerTls;
}

/**
 * Listens for client WebSocket connections, over TLS (`wss://`) when `tls`
 * is given — and then only over TLS. `maxPayload` makes `ws` refuse (close
 * code 1009) any message larger than the limit before it is buffered whole,
 * so an oversized frame never reaches the decoder.
 */
export async function listenForClients(options: ClientListenerOptions, handler: ConnectionHandler): Promise<ClientListener> {
  const { host, port, maxPayload, handshakeTimeoutMs, tls } = options;
  let http: HttpServer | HttpsServer;
  if (tls === undefined) {
    http = createHttpServer();
  } else {
    http = createHttpsServer({
      cert: tls.cert,
      key: tls.key,
      ca: tls.ca,
      requestCert: tls.requireClientCert,
      rejectUnauthorized: tls.requireClientCert,
      handshakeTimeout: handshakeTimeoutMs,
    });
    http.on('tlsClientError', (err) => handler.tlsFailed?.(err));
  }
  // Only upgrades are served: a socket that has not become a WebSocket in time is dropped.
  const upgraded = new WeakSet<object>();
  http.on(tls === undefined ? 'connection' : 'secureConnection', (socket: Duplex) => {
    const timer = setTimeout(() => {
      if (!upgraded.has(socket)) socket.destroy();
    }, handshakeTimeoutMs);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  });
  http.on('request', (_request, response) => {
    response.writeHead(426, { 'content-type': 'text/plain' }).end('relaymq speaks WebSocket only\n');
  });
  const server = new WebSocketServer({ server: http, maxPayload, perMessageDeflate: false, clientTracking: true });
  // ws re-emits the HTTP server's errors on itself, and an 'error' without a listener
  // throws: a port in use would crash the process instead of rejecting listenOn.
  server.on('error', () => {}); // errors after start surface per connection
  await listenOn(http, 'client', host, port);
  http.on('error', () => {});

  server.on('connection', (ws: WebSocket, request) => {
    const socket: ClientSocket = {
      send: (bytes, onWritten) => ws.send(bytes, { binary: true }, onWritten),
      close: (code, reason) => ws.close(code, reason),
      terminate: () => ws.terminate(),
    };
    upgraded.add(request.socket);
    const events = handler.open(socket, request.socket.remoteAddress ?? 'unknown');
    ws.on('message', (data, isBinary) => (isBinary ? events.message(toBytes(data)) : events.text()));
    ws.on('close', () => events.closed());
    // A socket error (reset, oversized message) is followed by 'close'; nothing else to do.
    ws.on('error', () => {});
  });

  return {
    port: (http.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const ws of server.clients) ws.terminate();
        server.close(() => {
          http.close(() => resolve());
          http.closeAllConnections(); // sockets that never upgraded (e.g. stuck in a handshake)
        });
      }),
  };
}
