import net from 'node:net';
import tls from 'node:tls';
import { EventEmitter } from 'eventemitter3';
import pRetry, { AbortError } from 'p-retry';
import { RelayError, decodeValue, encodeValue } from '@relaymq/sdk/protocol';
import type { TlsMaterial } from '../security/tls.js';
import { listenOn } from './listen.js';
import { atEndOfTick } from './end-of-tick.js';
import {
  BATCH_HEADER_BYTES,
  BATCH_MAX_MESSAGES,
  HEADER_BYTES,
  NO_FEATURES,
  PEER_SCAN_LIMITS,
  SINGLE_C,
  SINGLE_P,
  batchFrame,
  batchLimit,
  frame,
  framed,
  toldCapabilities,
  writeFramed,
  type Capabilities,
} from './peer-frames.js';

export { BATCH_MAX_MESSAGES } from './peer-frames.js';

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
  /**
   * This broker's incarnation and the peers' as first met (see
   * storage/identity.ts): a peer presenting another incarnation than the one
   * met before lost its data directory, and is refused (Raft amnesia). Unset
   * (brokers in memory): no incarnation is told, none checked.
   */
  identity?: PeerIdentity;
  /**
   * Whether this broker still introduces itself to peers that do not dial it
   * (see {@link INTRODUCE_AFTER_MS}): only while it is new to the cluster
   * (its metadata log is empty), so that once it belongs, links follow the
   * configured direction only and a peer address that is cut off (a network
   * partition) is never bypassed by a dial the other way.
   * @defaultValue always
   */
  introducing?: () => boolean;
  /**
   * Whether this broker tells peers it accepts batch frames (it reads them
   * either way). False makes it look like a broker from before batch frames
   * to its peers, which then send it single frames (tests of mixed versions).
   * @defaultValue true
   */
  batchFrames?: boolean;
  /**
   * Names of what this broker understands beyond the base protocol, told to
   * peers in its introduction (`features`): a sender uses a message form only
   * with peers that told they understand it ({@link PeerTransport.understands}),
   * so brokers of two versions keep talking during a rolling upgrade.
   * @defaultValue none
   */
  features?: readonly string[];
  log: (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
}

/** What the transport needs of broker identities. */
export interface PeerIdentity {
  incarnation: string;
  /** The cluster this broker belongs to, once known: peers of another cluster are refused. Unset: none checked. */
  clusterId?(): string | undefined;
  /** The incarnation `peer` had when first met, if it was. */
  known(peer: string): string | undefined;
  /** Records the incarnation of a peer met for the first time. */
  remember(peer: string, incarnation: string): void;
  /**
   * Whether `peer` may present another incarnation than the one recorded:
   * an operator let it come back on an empty data directory (`relaymq
   * cluster forget`). Unset: never.
   */
  replaceable?(peer: string): boolean;
  /** Records `incarnation` as `peer`'s in place of the one met before (only when {@link replaceable}). */
  replace?(peer: string, incarnation: string): void;
}

export interface PeerTransportEvents {
  /** A message on `channel` from peer `from`. The payload is plain decoded data: validate it. */
  message: (from: string, channel: string, payload: unknown) => void;
  /** A connection to `peer` is ready. */
  up: (peer: string) => void;
  /** The connection to `peer` closed; it is redialed with backoff. */
  down: (peer: string) => void;
  /**
   * A broker this one was not configured with introduced itself (a new broker
   * joining the cluster): it is a peer from now on, dialed back like any other.
   */
  added: (peer: PeerAddress) => void;
}

/**
 * A peer belongs to another cluster (both know their cluster id, and they
 * differ): the brokers never link. Fatal for a broker starting up against it.
 */
export class ForeignClusterError extends RelayError {
  constructor(message: string) {
    super('INVALID_ARGUMENT', message);
  }
}

/** The `code` of a `refused` frame sent to a broker of another cluster. */
const FOREIGN_CLUSTER = 'foreign-cluster';

/** At most this many peers (configured and joined): an introduction beyond it is refused. */
export const MAX_PEERS = 256;
/**
 * How long a broker that is not its pair's dialer (the higher id) waits
 * without a connection before dialing itself to introduce itself: a broker
 * the other side does not know yet (it joined later) would otherwise never
 * be dialed.
 */
export const INTRODUCE_AFTER_MS = 1000;
/**
 * A dialed peer must answer our introduction within this long, or the
 * connection is dropped and dialed again. Long: a broker that just restarted
 * may be replaying its logs (its event loop busy) before it can answer.
 */
export const HANDSHAKE_TIMEOUT_MS = 60_000;

/** Messages to one peer waiting to be flushed (see {@link PeerTransport.send}): channel and payload, alternating. */
interface Outbox {
  items: unknown[];
  scheduled: boolean;
  /** A flush to this peer went out in this turn of the event loop already: more wait for its end, to go together. */
  busy: boolean;
  /** The scheduled flush of this link and the end of its busy turn, made at the first send (not one pair of closures per turn). */
  flushScheduled?: () => void;
  endBusy?: () => void;
}

interface Link {
  peer: PeerAddress;
  socket: net.Socket | undefined;
  /**
   * Whether this side is the pair's dialer (the lower id): its connection is
   * the one kept. The other side dials only to introduce itself, when it has
   * had no connection for {@link INTRODUCE_AFTER_MS}, and its connection is
   * replaced once the dialer's is up.
   */
  dials: boolean;
  /** Whether `socket` was dialed by this side. */
  outbound: boolean;
  /** Dials in a row that the peer did not welcome (refused, closed, or another broker answered): the backoff grows with it. */
  failedHandshakes: number;
  dropped: number;
  /**
   * The largest batch frame the peer on `socket` accepts (see {@link
   * batchLimit}), 0 when it accepts single frames only: messages to it are
   * then written one frame each, as before batch frames.
   */
  batchBytes: number;
  /** What the peer on `socket` told it understands (see {@link PeerTransportOptions.features}). */
  features: ReadonlySet<string>;
  /** Messages queued for the next batch frame (only while `batchBytes` > 0). */
  outbox: Outbox;
  /**
   * The last flush to this peer did not fit one batch frame (a bulk
   * transfer): flushes encode message by message until one is small again,
   * rather than encoding each batch twice.
   */
  bulk: boolean;
}

/** Frames and messages through the transport since it started, every peer together. */
export interface PeerTrafficStats {
  /** Messages handed to peers' sockets (a batch frame carries several). */
  messagesSent: number;
  /** Frames written to peers' sockets. */
  framesSent: number;
  messagesReceived: number;
  framesReceived: number;
}

/**
 * One TCP connection per pair of brokers, multiplexing every protocol
 * (gossip, each Raft group) by channel name. Frames are a 4-byte length and a
 * msgpack map `{ c: channel, p: payload }` (one message), or a msgpack array
 * `[channel, payload, channel, payload, ...]` (a batch frame: every message
 * queued to that peer within one tick, encoded and written once,
 * and handed on one `message` event each on the other side). Batch frames go
 * only to peers that said in their introduction that they accept them
 * (`batch`: the largest they take), so a broker from before them gets single
 * frames (rolling upgrades). The broker with the lower id dials
 * and redials with backoff; the other accepts. Sending never blocks: a message
 * to a peer that is down or too far behind is dropped, as the network would.
 */
export class PeerTransport extends EventEmitter<PeerTransportEvents> {
  private readonly links = new Map<string, Link>();
  private readonly server: net.Server;
  private readonly abort = new AbortController();
  /** Every connection this side dialed that is still open (under way, waiting for a welcome, or a link's): closed with the transport. */
  private readonly dialed = new Set<net.Socket>();
  private closed = false;
  private boundPort = 0;
  private readonly traffic: PeerTrafficStats = { messagesSent: 0, framesSent: 0, messagesReceived: 0, framesReceived: 0 };

  constructor(private readonly options: PeerTransportOptions) {
    super();
    for (const peer of options.peers) {
      if (peer.id === options.id) continue;
      this.links.set(peer.id, { peer, socket: undefined, dials: options.id < peer.id, outbound: false, failedHandshakes: 0, dropped: 0, batchBytes: 0, features: NO_FEATURES, outbox: { items: [], scheduled: false, busy: false }, bulk: false });
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

  /** Whether `peer`, linked now, told in its introduction that it understands `feature` (see {@link PeerTransportOptions.features}). */
  understands(peer: string, feature: string): boolean {
    const link = this.links.get(peer);
    return link?.socket !== undefined && link.features.has(feature);
  }

  /** Ids of peers with an open connection. */
  connectedPeers(): string[] {
    return [...this.links.values()].filter((l) => l.socket !== undefined).map((l) => l.peer.id);
  }

  async listen(): Promise<void> {
    await listenOn(this.server, 'peer', this.options.host, this.options.port);
    this.boundPort = (this.server.address() as net.AddressInfo).port;
    for (const link of this.links.values()) void this.dialLoop(link);
  }

  /** Frames and messages sent and received since start, every peer together. */
  stats(): PeerTrafficStats {
    return { ...this.traffic };
  }

  /** What this broker tells a peer it connects to (or accepts): id, peer address, the batch frames it accepts, incarnation, cluster id. */
  private introduction(): { id: string; address: string; batch?: number; features?: readonly string[]; incarnation?: string; cluster?: string } {
    const features = this.options.features ?? [];
    const intro = {
      id: this.options.id,
      address: this.address,
      ...(this.options.batchFrames === false ? {} : { batch: batchLimit(this.options.maxFrameBytes) }),
      ...(features.length === 0 ? {} : { features }),
    };
    const identity = this.options.identity;
    if (identity === undefined) return intro;
    const cluster = identity.clusterId?.();
    return cluster === undefined ? { ...intro, incarnation: identity.incarnation } : { ...intro, incarnation: identity.incarnation, cluster };
  }

  /**
   * Why a peer must be refused, if it must: it belongs to another cluster,
   * or has amnesia (see {@link checkIncarnation}). The cluster comes first, so
   * a foreign broker's incarnation is never recorded.
   */
  private checkPeer(peer: string, payload: unknown): { reason: string; foreign: boolean } | undefined {
    const intro = (typeof payload === 'object' && payload !== null ? payload : {}) as { incarnation?: unknown; cluster?: unknown };
    const foreign = this.checkCluster(peer, intro.cluster);
    if (foreign !== undefined) return { reason: foreign, foreign: true };
    const amnesia = this.checkIncarnation(peer, intro.incarnation);
    return amnesia === undefined ? undefined : { reason: amnesia, foreign: false };
  }

  /** Why `peer` of cluster `cluster` is refused, when both sides know their cluster and they differ. Logged as an error here. */
  private checkCluster(peer: string, cluster: unknown): string | undefined {
    const mine = this.options.identity?.clusterId?.();
    if (mine === undefined || typeof cluster !== 'string' || cluster.length === 0 || cluster === mine) return undefined;
    const reason =
      `broker ${peer} belongs to cluster ${cluster.slice(0, 64)}, broker ${this.options.id} to cluster ${mine}: brokers of two clusters never link. ` +
      `A broker whose data directory is another cluster's must get an empty data directory to join, or be pointed at its own cluster`;
    this.options.log('error', 'refusing a broker of another cluster', { peer, cluster: cluster.slice(0, 64), mine });
    return reason;
  }

  /**
   * Why `peer` must be refused, if it must: it presents another incarnation
   * than the one met before (its data directory is new: Raft amnesia). A peer
   * met for the first time is remembered. Logged as an error here.
   */
  private checkIncarnation(peer: string, incarnation: unknown): string | undefined {
    const identity = this.options.identity;
    if (identity === undefined || typeof incarnation !== 'string' || incarnation.length === 0 || incarnation.length > 128) return undefined;
    const known = identity.known(peer);
    if (known === undefined) {
      identity.remember(peer, incarnation);
      return undefined;
    }
    if (known === incarnation) return undefined;
    if (identity.replaceable?.(peer) === true && identity.replace !== undefined) {
      identity.replace(peer, incarnation);
      this.options.log('warn', 'accepting a new incarnation of a broker an operator let come back on an empty data directory', { peer, incarnation, known });
      return undefined;
    }
    const reason =
      `broker ${peer} presents incarnation ${incarnation}, but this cluster knows ${peer} as incarnation ${known}: ` +
      `its data directory was lost or replaced, and a broker that forgot its Raft votes must not vote again. ` +
      `Restore its data directory, start the new broker under a new id, or once ${peer} was replaced or removed let it come back (relaymq cluster forget ${peer}, then relaymq cluster add ${peer})`;
    this.options.log('error', 'refusing a broker with amnesia', { peer, incarnation, known, reason });
    return reason;
  }

  /** This broker's peer address as others dial it (`host:port`), told in its introduction. */
  private get address(): string {
    return `${this.options.host}:${this.boundPort}`;
  }

  /** Ids of every peer this transport links to (configured, joined or learned). */
  peerIds(): string[] {
    return [...this.links.keys()];
  }

  /**
   * Links to a peer learned after start (from gossip, or from `--join`): it is
   * dialed as a configured one would be. False when it was known already
   * (or is this broker, or the peer limit is reached).
   */
  addPeer(peer: PeerAddress): boolean {
    if (peer.id === this.options.id || this.links.has(peer.id) || this.closed) return false;
    if (this.links.size >= MAX_PEERS) {
      this.options.log('warn', 'not linking to a new peer: too many peers', { peer: peer.id, max: MAX_PEERS });
      return false;
    }
    const link: Link = { peer, socket: undefined, dials: this.options.id < peer.id, outbound: false, failedHandshakes: 0, dropped: 0, batchBytes: 0, features: NO_FEATURES, outbox: { items: [], scheduled: false, busy: false }, bulk: false };
    this.links.set(peer.id, link);
    this.options.log('info', 'linking to a new peer', { peer: peer.id, address: `${peer.host}:${peer.port}` });
    if (this.boundPort !== 0) void this.dialLoop(link);
    return true;
  }

  /**
   * Asks the broker at `host:port` who it is (for `--join`, which names an
   * address only): dials it, introduces this broker (so it links back), and
   * resolves with its id and address from its answer. Rejects with
   * `NOT_CONNECTED` when it cannot be reached or does not answer in `timeoutMs`.
   */
  async introduce(host: string, port: number, timeoutMs: number): Promise<PeerAddress> {
    const socket = await this.dial({ id: `${host}:${port}`, host, port });
    try {
      return await new Promise<PeerAddress>((resolve, reject) => {
        const timer = setTimeout(() => reject(new RelayError('NOT_CONNECTED', `${host}:${port} did not answer within ${timeoutMs} ms`)), timeoutMs);
        this.readFrames(socket, (channel, payload) => {
          const peer = channel === 'welcome' ? parseIntroduction(payload) : undefined;
          clearTimeout(timer);
          const foreign = peer === undefined ? undefined : this.checkCluster(peer.id, (payload as { cluster?: unknown }).cluster);
          if (channel === 'refused') {
            const reason = `${host}:${port} refused this broker: ${refusalReason(payload)}`;
            reject(refusedAsForeign(payload) ? new ForeignClusterError(reason) : new RelayError('NOT_CONNECTED', reason));
          } else if (peer === undefined) reject(new RelayError('NOT_CONNECTED', `${host}:${port} is not a relaymq broker's peer port`));
          else if (foreign !== undefined) reject(new ForeignClusterError(`${host}:${port}: ${foreign}`));
          else resolve(peer);
        });
        socket.once('close', () => reject(new RelayError('NOT_CONNECTED', `${host}:${port} closed the connection`)));
        socket.write(frame('hello', { ...this.introduction(), probe: true }));
      });
    } finally {
      socket.destroy();
    }
  }

  /**
   * Sends a message; returns false when it was dropped (peer down or
   * backlogged). To a peer that accepts batch frames it is queued, and
   * leaves in one frame with everything else queued to that peer: at the end
   * of this tick (see {@link atEndOfTick}) when it is the first to that peer
   * in this turn of the event loop (a lone message, e.g. a leader's append or
   * a follower's answer, leaves at once), otherwise at the end of the turn
   * (under load, everything the turn sends after the first goes together). A
   * message queued to a connection that closes before it leaves is lost, as
   * the network would lose it.
   */
  send(to: string, channel: string, payload: unknown): boolean {
    const link = this.links.get(to);
    const socket = link?.socket;
    if (link === undefined || socket === undefined) return false;
    if (socket.writableLength > this.options.maxQueuedBytes) {
      link.dropped++;
      return false;
    }
    if (link.batchBytes > 0) {
      const outbox = link.outbox;
      outbox.items.push(channel, payload);
      if (outbox.items.length >= 2 * BATCH_MAX_MESSAGES) this.flush(link);
      else if (!outbox.scheduled) {
        outbox.scheduled = true;
        const endBusy = (outbox.endBusy ??= () => void (outbox.busy = false));
        const flush = (outbox.flushScheduled ??= (): void => {
          outbox.scheduled = false;
          if (!outbox.busy) {
            outbox.busy = true;
            setImmediate(endBusy);
          }
          this.flush(link);
        });
        if (outbox.busy) setImmediate(flush);
        else atEndOfTick(flush);
      }
      return true;
    }
    if (!socket.writableCorked) {
      socket.cork();
      process.nextTick(() => socket.uncork()); // many sends in one tick leave in one write
    }
    socket.write(frame(channel, payload));
    this.traffic.messagesSent++;
    this.traffic.framesSent++;
    return true;
  }

  /**
   * Writes what is queued to `link`'s peer: one batch frame, encoded at once.
   * When that does not fit the peer's batch limit (large messages: a bulk
   * transfer), each message is encoded alone and the encodings are grouped
   * into batch frames that fit, and a message that fits none goes in a
   * single frame, as before batches; the flushes that follow start that way
   * until one is small again, rather than encoding each batch twice.
   */
  private flush(link: Link): void {
    const items = link.outbox.items;
    if (items.length === 0) return;
    link.outbox.items = [];
    const socket = link.socket;
    if (socket === undefined || socket.destroyed) return; // closed meanwhile: lost, as on the network
    const count = items.length / 2;
    this.traffic.messagesSent += count;
    if (!link.bulk) {
      const body = encodeValue(items);
      if (body.length <= link.batchBytes) {
        writeFramed(socket, body);
        this.traffic.framesSent++;
        return;
      }
    }
    let total = 0;
    let group: Uint8Array[] = [];
    let groupBytes = 0;
    const writeGroup = (): void => {
      if (group.length === 0) return;
      socket.write(batchFrame(group, groupBytes));
      this.traffic.framesSent++;
      group = [];
      groupBytes = 0;
    };
    socket.cork();
    for (let i = 0; i < items.length; i += 2) {
      const channel = encodeValue(items[i]);
      const payload = encodeValue(items[i + 1]);
      const bytes = channel.length + payload.length;
      total += bytes;
      if (BATCH_HEADER_BYTES + bytes > link.batchBytes) {
        writeGroup();
        socket.write(framed(Buffer.concat([SINGLE_C, channel, SINGLE_P, payload])));
        this.traffic.framesSent++;
        continue;
      }
      if (BATCH_HEADER_BYTES + groupBytes + bytes > link.batchBytes) writeGroup();
      group.push(channel, payload);
      groupBytes += bytes;
    }
    writeGroup();
    socket.uncork();
    link.bulk = total > link.batchBytes;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.abort.abort();
    // What this turn queued leaves first: a broker's last words (its gossip leave) are sent just before it closes.
    for (const link of this.links.values()) this.flush(link);
    for (const link of this.links.values()) link.socket?.destroy();
    for (const socket of this.dialed) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /**
   * Keeps `link` connected. The dialer (lower id) dials whenever it has no
   * connection of its own; the other side dials only after
   * {@link INTRODUCE_AFTER_MS} without any connection (its peer may not know
   * it yet), and keeps that connection until the dialer's replaces it.
   */
  private async dialLoop(link: Link): Promise<void> {
    const connected = (): boolean => link.socket !== undefined && (link.outbound || !link.dials);
    while (!this.closed) {
      if (connected()) {
        await closeOf(link.socket as net.Socket);
        continue;
      }
      if (!link.dials && !((await this.quietFor(link, INTRODUCE_AFTER_MS)) && (this.options.introducing?.() ?? true))) continue;
      let socket: net.Socket;
      try {
        socket = await pRetry(
          () => {
            if (connected()) throw new AbortError('connected meanwhile');
            return this.dial(link.peer);
          },
          {
            retries: Infinity,
            minTimeout: this.options.reconnect.initialDelayMs,
            maxTimeout: this.options.reconnect.maxDelayMs,
            randomize: true,
            signal: this.abort.signal,
          },
        );
      } catch {
        if (this.closed) return;
        continue; // the other side connected meanwhile
      }
      if (this.closed) {
        socket.destroy(); // closed while the dial was under way
        return;
      }
      if (connected()) {
        socket.destroy(); // the other side connected meanwhile: one connection per pair
        continue;
      }
      // Introduce ourselves with the first frame; the link is up once the peer welcomed us (nothing is sent before:
      // a peer that lost its data must not hear a single Raft message).
      socket.write(frame('hello', this.introduction()));
      const welcomed = await this.handshake(link, socket);
      if (welcomed === undefined) {
        // A refusal we sent (socket ended) goes out before the close; the peer hangs up on reading it.
        if (socket.writableEnded) setTimeout(() => socket.destroy(), HANDSHAKE_TIMEOUT_MS).unref();
        else socket.destroy();
        // Refused or closed before the welcome: back off like failed dials do (doubling up to the cap), then try again.
        const { initialDelayMs, maxDelayMs } = this.options.reconnect;
        await this.quietFor(link, Math.min(maxDelayMs, initialDelayMs * 2 ** Math.min(link.failedHandshakes++, 20)));
        continue;
      }
      if (this.closed || (!link.dials && link.socket !== undefined)) {
        // Our introduction crossed the dialer's own connection, accepted here meanwhile: the dialer's is the one kept
        // (attaching ours would close it, while the dialer replaces ours with it: both would be lost).
        socket.destroy();
        continue;
      }
      await this.attach(link, socket, true, welcomed.told, welcomed.reader, welcomed.early);
    }
  }

  /**
   * Waits for the answer to our `hello`: `welcome` (with an incarnation that
   * matches what we know of the peer) lets the link up; `refused`, another
   * incarnation, a close or silence for {@link HANDSHAKE_TIMEOUT_MS} do not.
   * Frames that follow the welcome in the same read are kept for the link.
   */
  private handshake(link: Link, socket: net.Socket): Promise<{ reader: { onFrame: FrameHandler }; early: Array<[string, unknown]>; told: Capabilities } | undefined> {
    return new Promise((resolve) => {
      const early: Array<[string, unknown]> = [];
      let answered = false;
      let told = toldCapabilities(undefined);
      const finish = (ok: boolean): void => {
        clearTimeout(timer);
        socket.off('close', onClose);
        resolve(ok ? { reader, early, told } : undefined);
      };
      const onClose = (): void => finish(false);
      const timer = setTimeout(() => finish(false), HANDSHAKE_TIMEOUT_MS);
      const reader = this.readFrames(socket, (channel, payload) => {
        if (answered) {
          early.push([channel, payload]);
          return;
        }
        answered = true;
        if (channel === 'refused') {
          this.options.log('error', 'a peer refused this broker', { peer: link.peer.id, reason: refusalReason(payload) });
          finish(false);
        } else if (channel !== 'welcome') {
          finish(true); // a peer from before welcomes: its first frame is traffic
          early.push([channel, payload]);
        } else {
          const welcomer = parseIntroduction(payload);
          if (welcomer !== undefined && welcomer.id !== link.peer.id) {
            // Another broker listens at this peer's address (it moved, or its port was reused): not our peer, and its
            // incarnation must not be recorded as this peer's.
            this.options.log('warn', 'a peer address is held by another broker', { peer: link.peer.id, address: `${link.peer.host}:${link.peer.port}`, answered: welcomer.id });
            finish(false);
            return;
          }
          const refusal = this.checkPeer(link.peer.id, payload);
          told = toldCapabilities(payload);
          // Told, not just hung up on: the peer we dialed may never dial us itself while our dials keep coming (it
          // waits for a quiet spell to introduce itself), so its operator sees the refusal on its side too.
          if (refusal !== undefined) socket.end(refusedFrame(refusal));
          finish(refusal === undefined);
        }
      });
      socket.once('close', onClose);
    });
  }

  /** Waits `ms`; true when `link` had no connection all along (false as soon as one comes up, or on close). */
  private quietFor(link: Link, ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (quiet: boolean): void => {
        clearTimeout(timer);
        this.off('up', onUp);
        this.abort.signal.removeEventListener('abort', onAbort);
        resolve(quiet);
      };
      const onUp = (peer: string): void => {
        if (peer === link.peer.id) done(false);
      };
      const onAbort = (): void => done(false);
      const timer = setTimeout(() => done(link.socket === undefined && !this.closed), ms);
      this.on('up', onUp);
      this.abort.signal.addEventListener('abort', onAbort);
    });
  }

  private dial(peer: PeerAddress): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const peerTls = this.options.tls;
      const socket =
        peerTls === undefined
          ? net.connect({ host: peer.host, port: peer.port, noDelay: true })
          : tls.connect({ host: peer.host, port: peer.port, cert: peerTls.cert, key: peerTls.key, ca: peerTls.ca, rejectUnauthorized: true });
      if (this.closed) socket.destroy();
      this.dialed.add(socket);
      socket.once('close', () => this.dialed.delete(socket));
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

  /**
   * An inbound connection: it must introduce itself (`hello` with its id and
   * peer address). A broker not configured here is a new one joining: it is
   * added as a peer (and dialed back when this side is the pair's dialer).
   * A probe (`--join` asking who listens here) is answered and closed.
   */
  private accept(socket: net.Socket): void {
    socket.setNoDelay(true);
    const reader = this.readFrames(socket, (channel, payload) => {
      const introduced = channel === 'hello' ? parseIntroduction(payload) : undefined;
      // A broker listening on every interface names none: dial it back where it came from.
      const unspecified = introduced !== undefined && (introduced.host === '0.0.0.0' || introduced.host === '::') && socket.remoteAddress !== undefined;
      const hello = unspecified ? { ...introduced, host: (socket.remoteAddress as string).replace(/^::ffff:/, '') } : introduced;
      const id = hello?.id ?? (typeof payload === 'object' && payload !== null ? String((payload as { id?: unknown }).id) : undefined);
      if (hello === undefined || hello.id === this.options.id) {
        this.options.log('warn', 'refusing peer connection: no valid introduction', { from: socket.remoteAddress, id });
        socket.destroy();
        return;
      }
      const refusal = this.checkPeer(hello.id, payload);
      if (refusal !== undefined) {
        socket.end(refusedFrame(refusal));
        setTimeout(() => socket.destroy(), 1000).unref();
        return;
      }
      let link = this.links.get(hello.id);
      const probe = (payload as { probe?: unknown }).probe === true;
      // The dialer keeps its own connection: the peer's is dropped before it is welcomed (it waits for ours).
      if (!probe && link !== undefined && link.dials && link.socket !== undefined && link.outbound) {
        socket.destroy();
        return;
      }
      socket.write(frame('welcome', this.introduction()));
      if (link === undefined) {
        if (!this.addPeer(hello)) {
          socket.destroy();
          return;
        }
        link = this.links.get(hello.id) as Link;
        this.options.log('info', 'a new broker introduced itself; it is a peer from now on', { peer: hello.id, address: `${hello.host}:${hello.port}` });
        this.emit('added', hello);
      }
      if (probe) return; // it only asked who we are; it dials again
      // A newer connection replaces a stale one.
      link.socket?.destroy();
      void this.attach(link, socket, false, toldCapabilities(payload), reader);
    });
  }

  /** Uses `socket` for `link` until it closes; `told`: what the peer on it told of itself. */
  private attach(
    link: Link,
    socket: net.Socket,
    outbound: boolean,
    told: Capabilities,
    reader = this.readFrames(socket, () => {}),
    early: Array<[string, unknown]> = [],
  ): Promise<void> {
    if (socket.destroyed) return Promise.resolve();
    const replaced = link.socket;
    link.socket = socket;
    link.outbound = outbound;
    link.batchBytes = told.batchBytes;
    link.features = told.features;
    link.bulk = false;
    link.failedHandshakes = 0;
    if (replaced !== undefined && replaced !== socket) replaced.destroy();
    reader.onFrame = (channel, payload) => {
      if (channel === 'welcome' || channel === 'refused') {
        // Introductions are the transport's own: the peer answering a dial may have lost its data (or we ours).
        const refusal =
          channel === 'refused'
            ? `refused by ${link.peer.id}: ${refusalReason(payload)}`
            : this.checkPeer(link.peer.id, payload)?.reason;
        if (refusal !== undefined) {
          if (channel === 'refused') this.options.log('error', 'a peer refused this broker', { peer: link.peer.id, reason: refusal });
          if (link.socket === socket) link.socket = undefined;
          socket.destroy();
        }
        return;
      }
      if (link.socket === socket) this.emit('message', link.peer.id, channel, payload);
    };
    this.emit('up', link.peer.id);
    for (const [channel, payload] of early) reader.onFrame(channel, payload);
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
    // Chunks are kept apart until the frame they carry is whole, then joined once: joining on every
    // chunk copied a 4 MiB frame (a partition fetch, a Raft batch) about 64 times over, in 64 KiB chunks.
    let chunks: Buffer[] = [];
    let chunkBytes = 0;
    /** Bytes needed before anything can be parsed: a header, or the whole frame once its header is in. */
    let needed = HEADER_BYTES;
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      chunkBytes += chunk.length;
      if (chunkBytes < needed) return;
      let buffered = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, chunkBytes);
      chunks = [];
      chunkBytes = 0;
      needed = HEADER_BYTES;
      while (buffered.length >= HEADER_BYTES && !socket.destroyed) {
        const length = buffered.readUInt32BE(0);
        if (length > this.options.maxFrameBytes) {
          this.options.log('warn', 'peer frame too large; closing', { length, from: socket.remoteAddress });
          socket.destroy();
          return;
        }
        if (buffered.length < HEADER_BYTES + length) {
          needed = HEADER_BYTES + length;
          break;
        }
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
        this.traffic.framesReceived++;
        if (Array.isArray(frame)) {
          // A batch frame: channel, payload, channel, payload...
          if (frame.length % 2 !== 0 || frame.length === 0) {
            socket.destroy();
            return;
          }
          for (let i = 0; i < frame.length && !socket.destroyed; i += 2) {
            const channel: unknown = frame[i];
            if (typeof channel !== 'string') {
              socket.destroy();
              return;
            }
            this.traffic.messagesReceived++;
            reader.onFrame(channel, frame[i + 1]);
          }
          continue;
        }
        const { c, p } = (typeof frame === 'object' && frame !== null ? frame : {}) as { c?: unknown; p?: unknown };
        if (typeof c !== 'string') {
          socket.destroy();
          return;
        }
        this.traffic.messagesReceived++;
        reader.onFrame(c, p);
      }
      if (buffered.length > 0) {
        chunks = [buffered];
        chunkBytes = buffered.length;
      }
    });
    return reader;
  }
}

type FrameHandler = (channel: string, payload: unknown) => void;

/** Whether a `refused` frame says this broker belongs to another cluster. */
function refusedAsForeign(payload: unknown): boolean {
  return typeof payload === 'object' && payload !== null && (payload as { code?: unknown }).code === FOREIGN_CLUSTER;
}

function refusalReason(payload: unknown): string {
  const reason = typeof payload === 'object' && payload !== null ? (payload as { reason?: unknown }).reason : undefined;
  return typeof reason === 'string' ? reason.slice(0, 1000) : 'no reason given';
}

/** Resolves once `socket` closed. */
function closeOf(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) resolve();
    else socket.once('close', () => resolve());
  });
}

/** A broker's introduction (`hello`, `welcome`): its id and peer address `host:port`; `undefined` when malformed. */
function parseIntroduction(payload: unknown): PeerAddress | undefined {
  if (typeof payload !== 'object' || payload === null) return undefined;
  const { id, address } = payload as { id?: unknown; address?: unknown };
  if (typeof id !== 'string' || typeof address !== 'string') return undefined;
  try {
    return parsePeer(`${id}@${address}`);
  } catch {
    return undefined;
  }
}

/** The `refused` frame that tells a peer why this broker will not talk to it (and, for another cluster, so in a code). */
function refusedFrame(refusal: { reason: string; foreign: boolean }): ReturnType<typeof frame> {
  return frame('refused', refusal.foreign ? { reason: refusal.reason, code: FOREIGN_CLUSTER } : { reason: refusal.reason });
}
