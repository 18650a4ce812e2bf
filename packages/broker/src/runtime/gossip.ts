import { EventEmitter } from 'eventemitter3';
import type { ClusterView } from '@relaymq/sdk/protocol';
import {
  changesClusterView,
  clusterView,
  createSwim,
  parseSwimMessage,
  type MemberLoad,
  type Swim,
  type SwimConfigOptions,
} from '../core/swim/index.js';
import { parsePeer, type PeerAddress, type PeerTransport } from '../net/peer-transport.js';
import type { Ticker } from './ticker.js';

/** The peer-transport channel gossip travels on. */
const CHANNEL = 'swim';
/** Load changes are advertised at most this often (each one bumps the incarnation and spreads). */
const LOAD_ADVERTISE_MS = 2000;

export interface GossipEvents {
  /** The member list changed (joined, failed, left, meta updated). */
  changed: () => void;
  /** Member `id` is suspected, declared dead, or left: Raft groups it leads here must not wait on its lease. */
  memberDown: (id: string) => void;
  /** Member `id`, once suspected or dead, is alive again (it refuted the suspicion, or came back). */
  memberUp: (id: string) => void;
}

export interface GossipOptions {
  id: string;
  /** This broker's peer address, `host:port`. */
  address: string;
  clientUrl: string;
  peers: PeerAddress[];
  transport: PeerTransport;
  /** The broker's ticker, shared with its Raft groups. */
  ticker: Ticker;
  /** In ticks of that ticker (the broker converts its `swim` options). */
  config?: SwimConfigOptions;
  log: (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
}

/**
 * Drives the pure SWIM core: ticks it on the broker's ticker, feeds it the
 * messages of the `swim` channel, sends what it emits, and turns its member
 * list into the cluster view clients receive.
 */
export class GossipRunner extends EventEmitter<GossipEvents> {
  private readonly swim: Swim;
  private stopTicking: (() => void) | undefined;
  private lastLoad: MemberLoad | undefined;
  private lastLoadAdvertisedMs = 0;
  private readonly onMessage = (from: string, channel: string, payload: unknown): void => {
    if (channel !== CHANNEL) return;
    const parsed = parseSwimMessage(payload);
    if (!parsed.ok) {
      this.options.log('warn', 'dropping malformed gossip', { from, reason: parsed.reason });
      return;
    }
    this.swim.step(from, parsed.message);
    this.flush();
  };

  /** A broker not configured here introduced itself on the transport: gossip with it (it learns the others from us). */
  private readonly onAdded = (peer: PeerAddress): void => {
    this.swim.join([{ id: peer.id, address: `${peer.host}:${peer.port}` }]);
    this.flush();
  };

  constructor(private readonly options: GossipOptions) {
    super();
    this.swim = createSwim({
      id: options.id,
      address: options.address,
      meta: { clientUrl: options.clientUrl },
      // Outside the pure core, plain randomness is fine: it only orders probes and gossip targets.
      random: { nextInt: (maxExclusive) => Math.floor(Math.random() * maxExclusive) },
      config: options.config,
    });
  }

  start(): void {
    this.options.transport.on('message', this.onMessage);
    this.options.transport.on('added', this.onAdded);
    this.swim.join(this.options.peers.filter((p) => p.id !== this.options.id).map((p) => ({ id: p.id, address: `${p.host}:${p.port}` })));
    this.flush();
    this.stopTicking = this.options.ticker.add(() => {
      this.swim.tick();
      this.flush();
    });
  }

  /** Advertises this broker's load (rate-limited: each change spreads through the cluster). */
  advertiseLoad(load: MemberLoad, nowMs: number): void {
    const same = this.lastLoad?.connections === load.connections && this.lastLoad.partitionsLed === load.partitionsLed;
    if (same || nowMs - this.lastLoadAdvertisedMs < LOAD_ADVERTISE_MS) return;
    this.lastLoad = load;
    this.lastLoadAdvertisedMs = nowMs;
    this.swim.updateMeta({ clientUrl: this.options.clientUrl, load });
    this.flush();
  }

  /** The cluster as clients see it: every member known, with its client URL and state. */
  view(): ClusterView {
    return clusterView(this.swim.members());
  }

  /** Leaves the cluster gracefully (others mark this member `left` at once, not after suspicion). */
  stop(): void {
    this.swim.leave();
    this.flush();
    this.stopTicking?.();
    this.options.transport.off('message', this.onMessage);
    this.options.transport.off('added', this.onAdded);
  }

  private link(id: string, address: string): void {
    let peer: PeerAddress;
    try {
      peer = parsePeer(`${id}@${address}`);
    } catch {
      this.options.log('warn', 'gossip named a member with an unusable peer address', { member: id, address });
      return;
    }
    this.options.transport.addPeer(peer);
  }

  private flush(): void {
    const { messages, events } = this.swim.drain();
    for (const { to, message } of messages) this.options.transport.send(to, CHANNEL, message);
    let changed = false;
    for (const event of events) {
      if (event.type !== 'updated') this.options.log('info', `member ${event.type}`, { member: event.member.id, state: event.member.state });
      // A member learned from gossip (a broker that joined through another one): link to it too.
      if (event.type === 'joined') this.link(event.member.id, event.member.address);
      if (event.type === 'suspected' || event.type === 'failed' || event.type === 'left') this.emit('memberDown', event.member.id);
      if (event.type === 'recovered' || event.type === 'joined') this.emit('memberUp', event.member.id);
      changed ||= changesClusterView(event);
    }
    if (changed) this.emit('changed');
  }
}
