import type { AddressInfo } from 'node:net';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { ClientSocket } from '../runtime/session.js';

/** Handlers the client listener calls for each connection. */
export interface ConnectionHandler {
  /** A connection opened; returns the callbacks for its traffic. */
  open(socket: ClientSocket): {
    message(bytes: Uint8Array): void;
    text(): void;
    closed(): void;
  };
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
 * Listens for client WebSocket connections. `maxPayload` makes `ws` refuse
 * (close code 1009) any message larger than the limit before it is buffered
 * whole, so an oversized frame never reaches the decoder.
 */
export async function listenForClients(host: string, port: number, maxPayload: number, handler: ConnectionHandler): Promise<ClientListener> {
  const server = new WebSocketServer({ host, port, maxPayload, perMessageDeflate: false, clientTracking: true });
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  server.on('error', () => {}); // listen errors after start surface per connection

  server.on('connection', (ws: WebSocket) => {
    const socket: ClientSocket = {
      send: (bytes, onWritten) => ws.send(bytes, { binary: true }, onWritten),
      close: (code, reason) => ws.close(code, reason),
      terminate: () => ws.terminate(),
    };
    const events = handler.open(socket);
    ws.on('message', (data, isBinary) => (isBinary ? events.message(toBytes(data)) : events.text()));
    ws.on('close', () => events.closed());
    // A socket error (reset, oversized message) is followed by 'close'; nothing else to do.
    ws.on('error', () => {});
  });

  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const ws of server.clients) ws.terminate();
        server.close(() => resolve());
      }),
  };
}
