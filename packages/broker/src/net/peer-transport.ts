import net from 'node:net';
import tls from 'node:tls';
import { EventEmitter } from 'eventemitter3';
import pRetry from 'p-retry';
import { RelayError, decodeValue, encodeValue, type ScanLimits } from '@relaymq/sdk/protocol';
import type { TlsMaterial } from '../security/tls.js';
import { listenOn } from './listen.js';

/** A peer broker: `id@host:port` on the command line. */
export interface PeerAddress {
  id: string;
  host: string;
  port: number;
}

/** Parses `id@host:port`; throws `INVALID_ARGUMENT` naming what is wrong. */
export function parsePeer(spec: string): PeerAddress {
  const match = /^([A-Za-z0-9_-]{1,64})@([^\s:@]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(spec);
  const port = Number(match?.[3]);
  if (match === null || port < 1 || port > 65535) {
    throw new RelayError('INVALID_ARGUMENT', `peer "${spec}" must look like id@host:port (e.g. b2@127.0.0.1:7502)`);
  }
  return { id: match[1] as string, host: (match[2] as string).replace(/^\[|\]$/g, ''), port };
}

export interface PeerTransportOptions {
  /** This broker's id. */
  id: string;
  host: string;
  /** Peer port to listen on; 0 picks a free one. */
  port: number;
  peers: PeerAddress[];
  /** Largest frame accepted from a peer. */
  maxFrameBytes: number;
  /** Bytes queued to one peer beyond which new messages to it are dropped (the protocols above retry). */
  maxQueuedBytes: number;
  reconnect: { initialDelayMs: number; maxDelayMs: number };
  /**
   * TLS on every peer connection: each side presents `cert`, a dialer checks
   * the accepting broker's certificate against `ca` (and its address against
   * the certificate's names); with `mutual`, the accepting side requires and
   * checks the dialer's certificate too. Unset: plain TCP.
   */
  tls?: TlsMaterial & { mutual: boolean };
  log: (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
}

export interface PeerTransportEvents {
  /** A message on `channel` from peer `from`. The payload is plain decoded data: validate it. */
  message: (from: string, channel: string, payload: unknown) => void;
  /** A connection to `peer` is ready. */
  up: (peer: string) => void;
  /** The connection to `peer` closed; it is redialed with backoff. */
  down: (peer: string) => void;
}

/** Peer frames carry Raft batches: deeper than client frames, same other rules. */
const PEER_SCAN_LIMITS: ScanLimits = { maxDepth: 16, maxElements: 4_000_000, allowTimestamp: false };
const HEADER_BYTES = 4;

/** A length-prefixed frame. */
function frame(channel: string, payload: unknown): Buffer {
  const body = encodeValue({ c: channel, p: payload });
  const bytes = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  bytes.writeUInt32BE(body.length, 0);
  bytes.set(body, HEADER_BYTES);
  return bytes;
}

interface Link {
  peer: PeerAddress;
  socket: net.Socket | undefined;
  /** Whether this side dials (the lower id does), so each pair has one connection. */
  dials: boolean;
  dropped: number;
}

/**
 * One TCP connection per pair of brokers, multiplexing every protocol
 * (gossip, each Raft group) by channel name. Frames are a 4-byte length and a
 * msgpack map `{ c: channel, p: payload }`. The broker with the lower id dials
 * and redials with backoff; the other accepts. Sending never blocks: a message
 * to a peer that is down or too far behind is dropped, as the network would.
 */
export class PeerTransport extends EventEmitter<PeerTransportEvents> {
  private readonly links = new Map<string, Link>();
  private readonly server: net.Server;
  private readonly abort = new AbortController();
  private closed = false;
  private boundPort = 0;

  constructor(private readonly options: PeerTransportOptions) {
    super();
    for (const peer of options.peers) {
      if (peer.id === options.id) continue;
      this.links.set(peer.id, { peer, socket: undefined, dials: options.id < peer.id, dropped: 0 });
    }
    const peerTls = options.tls;
    if (peerTls === undefined) {
      this.server = net.createServer((socket) => this.accept(socket));
    } else {
      this.server = tls.createServer(
        { cert: peerTls.cert, key: peerTls.key, ca: peerTls.ca, requestCert: peerTls.mutual, rejectUnauthorized: peerTls.mutual },
        (socket) => this.accept(socket),
      );
      this.server.on('tlsClientError', (err, socket) => {
        options.log('warn', 'peer TLS handshake failed', { from: socket.remoteAddress, error: err.message });
      });
    }
  }

  get port(): number {
    return this.boundPort;
  }

  /** Ids of peers with an open connection. */
  connectedPeers(): string[] {
    return [...this.links.values()].filter((l) => l.socket !== undefined).map((l) => l.peer.id);
  }

  async listen(): Promise<void> {
    await listenOn(this.server, 'peer', this.options.host, this.options.port);
    this.boundPort = (this.server.address() as net.AddressInfo).port;
    for (const link of this.links.values()) if (link.dials) void this.dialLoop(link);
  }

  /** Sends a message; returns false when it was dropped (peer down or backlogged). */
  send(to: string, channel: string, payload: unknown): boolean {
    const link = this.links.get(to);
    const socket = link?.socket;
    if (link === undefined || socket === undefined) return false;
    if (socket.writableLength > this.options.maxQueuedBytes) {
      link.dropped++;
      return false;
    }
    if (!socket.writableCorked) {
      socket.cork();
      process.nextTick(() => socket.uncork()); // many sends in one tick leave in one write
    }
    socket.write(frame(channel, payload));
    return true;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.abort.abort();
    for (const link of this.links.values()) link.socket?.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async dialLoop(link: Link): Promise<void> {
    while (!this.closed) {
      let socket: net.Socket;
      try {
        socket = await pRetry(() => this.dial(link.peer), {
          retries: Infinity,
          minTimeout: this.options.reconnect.initialDelayMs,
          maxTimeout: this.options.reconnect.maxDelayMs,
          randomize: true,
          signal: this.abort.signal,
        });
      } catch {
        return; // closed
      }
      // Introduce ourselves with the first frame, then the link is up.
      socket.write(frame('hello', { id: this.options.id }));
      await this.attach(link, socket);
    }
  }

  private dial(peer: PeerAddress): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const peerTls = this.options.tls;
      const socket =
        peerTls === undefined
          ? net.connect({ host: peer.host, port: peer.port, noDelay: true })
          : tls.connect({ host: peer.host, port: peer.port, cert: peerTls.cert, key: peerTls.key, ca: peerTls.ca, rejectUnauthorized: true });
      socket.once(peerTls === undefined ? 'connect' : 'secureConnect', () => {
        socket.off('error', reject);
        socket.setNoDelay(true);
        resolve(socket);
      });
      socket.once('error', (err) => {
        socket.destroy();
        reject(new RelayError('NOT_CONNECTED', `peer ${peer.id}: ${err.message}`));
      });
    });
  }

  /** An inbound connection: it must introduce itself as a configured peer that dials us. */
  private accept(socket: net.Socket): void {
    socket.setNoDelay(true);
    const reader = this.readFrames(socket, (channel, payload) => {
      const id = typeof payload === 'object' && payload !== null ? (payload as { id?: unknown }).id : undefined;
      const link = typeof id === 'string' ? this.links.get(id) : undefined;
      if (channel !== 'hello' || link === undefined || link.dials) {
        this.options.log('warn', 'refusing peer connection', { from: socket.remoteAddress, id: String(id) });
        socket.destroy();
        return;
      }
      link.socket?.destroy(); // a newer connection replaces a stale one
      void this.attach(link, socket, reader);
    });
  }

  /** Uses `socket` for `link` until it closes. */
  private attach(link: Link, socket: net.Socket, reader = this.readFrames(socket, () => {})): Promise<void> {
    link.socket = socket;
    reader.onFrame = (channel, payload) => {
      if (link.socket === socket) this.emit('message', link.peer.id, channel, payload);
    };
    this.emit('up', link.peer.id);
    return new Promise((resolve) => {
      socket.once('close', () => {
        if (link.socket === socket) {
          link.socket = undefined;
          this.emit('down', link.peer.id);
        }
        resolve();
      });
    });
  }

  /**
   * Splits the byte stream into frames for `reader.onFrame` (which may be
   * swapped, e.g. after the introduction); a malformed frame closes the connection.
   */
  private readFrames(socket: net.Socket, onFrame: FrameHandler): { onFrame: FrameHandler } {
    const reader = { onFrame };
    let buffered: Buffer = Buffer.alloc(0);
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      while (buffered.length >= HEADER_BYTES && !socket.destroyed) {
        const length = buffered.readUInt32BE(0);
        if (length > this.options.maxFrameBytes) {
          this.options.log('warn', 'peer frame too large; closing', { length, from: socket.remoteAddress });
          socket.destroy();
          return;
        }
        if (buffered.length < HEADER_BYTES + length) return;
        const body = buffered.subarray(HEADER_BYTES, HEADER_BYTES + length);
        buffered = buffered.subarray(HEADER_BYTES + length);
        let frame: unknown;
        try {
          frame = decodeValue(body, PEER_SCAN_LIMITS);
        } catch (err) {
          this.options.log('warn', 'undecodable peer frame; closing', { error: String(err) });
          socket.destroy();
          return;
        }
        const { c, p } = (typeof frame === 'object' && frame !== null ? frame : {}) as { c?: unknown; p?: unknown };
        if (typeof c !== 'string') {
          socket.destroy();
          return;
        }
        reader.onFrame(c, p);
      }
    });
    return reader;
  }
}

type FrameHandler = (channel: string, payload: unknown) => void;
