import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { ClientSocket } from '../runtime/session.js';
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

/**
 * Listens for client WebSocket connections, over TLS (`wss://`) when `tls`
 * is given — and then only over TLS. `maxPayload` makes `ws` refuse (close
 * code 1009) any message larger than the limit before it is buffered whole,
 * so an oversized frame never reaches the decoder.
 */
export async function listenForClients(
  host: string,
  port: number,
  maxPayload: number,
  handler: ConnectionHandler,
  tls?: ClientListenerTls,
): Promise<ClientListener> {
  let https: HttpsServer | undefined;
  let server: WebSocketServer;
  const common = { maxPayload, perMessageDeflate: false, clientTracking: true };
  if (tls === undefined) {
    server = new WebSocketServer({ host, port, ...common });
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
    });
  } else {
    https = createHttpsServer({
      cert: tls.cert,
      key: tls.key,
      ca: tls.ca,
      requestCert: tls.requireClientCert,
      rejectUnauthorized: tls.requireClientCert,
    });
    https.on('tlsClientError', (err) => handler.tlsFailed?.(err));
    server = new WebSocketServer({ server: https, ...common });
    const listening = https;
    await new Promise<void>((resolve, reject) => {
      listening.once('error', reject);
      listening.listen(port, host, () => {
        listening.off('error', reject);
        resolve();
      });
    });
  }
  server.on('error', () => {}); // listen errors after start surface per connection

  server.on('connection', (ws: WebSocket, request) => {
    const socket: ClientSocket = {
      send: (bytes, onWritten) => ws.send(bytes, { binary: true }, onWritten),
      close: (code, reason) => ws.close(code, reason),
      terminate: () => ws.terminate(),
    };
    const events = handler.open(socket, request.socket.remoteAddress ?? 'unknown');
    ws.on('message', (data, isBinary) => (isBinary ? events.message(toBytes(data)) : events.text()));
    ws.on('close', () => events.closed());
    // A socket error (reset, oversized message) is followed by 'close'; nothing else to do.
    ws.on('error', () => {});
  });

  const address = (https ?? server).address() as AddressInfo;
  return {
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const ws of server.clients) ws.terminate();
        server.close(() => {
          if (https === undefined) return resolve();
          https.close(() => resolve());
          https.closeAllConnections(); // sockets that never upgraded (e.g. stuck in a handshake)
        });
      }),
  };
}
