/**
 * Coalesced heartbeats (issue 13): the heartbeats every Raft group of this
 * broker sends to one peer broker in an event-loop turn (a tick of the
 * broker's one ticker drives them all at once) travel as one message,
 * `(group channel, term, commit, quiesce)` per group, and so do the answers;
 * the other side fans them back out to its groups as the very messages the
 * groups sent. The Raft core is untouched: it still emits one heartbeat per
 * follower, and receives one (the simulator drives the same core and runner);
 * pre-vote, check-quorum and quiescence see the same messages as before.
 *
 * Only peers that told they understand them ({@link COALESCED_HEARTBEATS},
 * see `PeerTransportOptions.features`) get coalesced heartbeats; a broker
 * from before gets each group's own, on the group's channel.
 */
import type { Message, NodeId } from '../core/raft/index.js';
import type { PeerTransport } from '../net/peer-transport.js';

/** The peer-transport channel of coalesced heartbeats and answers. */
export const HEARTBEAT_CHANNEL = 'raft-heartbeats';
/** The feature a broker tells its peers when it reads {@link HEARTBEAT_CHANNEL}. */
export const COALESCED_HEARTBEATS = 'coalesced-heartbeats';

/** Bit of an entry's flags: the heartbeat (or answer) is marked `quiesce`. */
const QUIESCE = 1;

/**
 * What goes to one peer: heartbeats as `channel, term, commit, flags`, and
 * answers as `channel, term, flags`, flattened.
 */
interface Coalesced {
  h: Array<string | number>;
  r: Array<string | number>;
}

export interface HeartbeatCoalescerOptions {
  self: NodeId;
  transport: Pick<PeerTransport, 'send' | 'understands'>;
  /** Hands a heartbeat (or answer) that came coalesced to the group on `channel`, as if it had come on that channel. */
  deliver: (from: NodeId, channel: string, message: Message<never, never>) => void;
}

/** Heartbeats and answers a broker's groups exchanged with peers since start, counted one per group. */
export interface HeartbeatStats {
  /** Group heartbeats and answers sent inside coalesced messages. */
  coalescedSent: number;
  /** Coalesced messages sent (one per peer and turn that had any). */
  messagesSent: number;
}

/** Collects one turn's heartbeats per peer, and fans out those received. */
export class HeartbeatCoalescer {
  private readonly pending = new Map<NodeId, Coalesced>();
  private scheduled = false;
  private readonly counters: HeartbeatStats = { coalescedSent: 0, messagesSent: 0 };

  constructor(private readonly options: HeartbeatCoalescerOptions) {}

  /**
   * Takes `message` of the group on `channel` when it is a heartbeat or an
   * answer to one and its peer reads coalesced heartbeats: it leaves with
   * every other one to that peer at the end of this turn. False: the caller
   * sends it as it is.
   */
  send(channel: string, message: Message<unknown, unknown>): boolean {
    if (message.type !== 'heartbeat' && message.type !== 'heartbeat-resp') return false;
    // An answer that says more than its term (`unsynced`, `recovering` and its start term: fsync interval, a power cut;
    // `commit`: to a leader that removed itself) goes as it is.
    if (message.type === 'heartbeat-resp' && (message.unsynced === true || message.recovering === true || message.commit !== undefined)) return false;
    if (!this.options.transport.understands(message.to, COALESCED_HEARTBEATS)) return false;
    let out = this.pending.get(message.to);
    if (out === undefined) {
      out = { h: [], r: [] };
      this.pending.set(message.to, out);
    }
    const flags = message.quiesce === true ? QUIESCE : 0;
    if (message.type === 'heartbeat') out.h.push(channel, message.term, message.commit, flags);
    else out.r.push(channel, message.term, flags);
    this.counters.coalescedSent++;
    if (!this.scheduled) {
      this.scheduled = true;
      // After this turn's synchronous work and promise jobs: every group a tick drove has sent its heartbeats by then.
      process.nextTick(() => this.flush());
    }
    return true;
  }

  /** Sends what was collected, one message per peer. */
  flush(): void {
    this.scheduled = false;
    for (const [peer, out] of this.pending) {
      this.counters.messagesSent++;
      this.options.transport.send(peer, HEARTBEAT_CHANNEL, out); // a peer gone meanwhile loses them, as the network would
    }
    this.pending.clear();
  }

  /** Fans a coalesced message from `from` out to its groups; malformed entries are skipped (the groups validate the rest). */
  receive(from: NodeId, payload: unknown): void {
    const { h, r } = (typeof payload === 'object' && payload !== null ? payload : {}) as { h?: unknown; r?: unknown };
    const to = this.options.self;
    if (Array.isArray(h)) {
      for (let i = 0; i + 3 < h.length; i += 4) {
        const [channel, term, commit, flags] = [h[i], h[i + 1], h[i + 2], h[i + 3]];
        if (typeof channel !== 'string' || typeof term !== 'number' || typeof commit !== 'number') continue;
        const base = { type: 'heartbeat' as const, from, to, term, commit };
        this.options.deliver(from, channel, flags === QUIESCE ? { ...base, quiesce: true } : base);
      }
    }
    if (Array.isArray(r)) {
      for (let i = 0; i + 2 < r.length; i += 3) {
        const [channel, term, flags] = [r[i], r[i + 1], r[i + 2]];
        if (typeof channel !== 'string' || typeof term !== 'number') continue;
        const base = { type: 'heartbeat-resp' as const, from, to, term };
        this.options.deliver(from, channel, flags === QUIESCE ? { ...base, quiesce: true } : base);
      }
    }
  }

  stats(): HeartbeatStats {
    return { ...this.counters };
  }
}
