/**
 * The data of the SWIM core: members, the updates gossip carries, the
 * messages members exchange, and the events the core reports.
 */

/** A broker id, as in `id@host:port`. */
export type MemberId = string;

/**
 * - `alive`: answering probes (or not yet suspected).
 * - `suspect`: missed a probe; declared `dead` unless it refutes in time.
 * - `dead`: failed; kept as a tombstone until reaped.
 * - `left`: announced its own departure; kept as a tombstone until reaped.
 */
export type MemberState = 'alive' | 'suspect' | 'dead' | 'left';

/** Load a broker advertises so clients (and operators) can spread over the cluster. */
export interface MemberLoad {
  connections: number;
  partitionsLed: number;
}

/** What a member advertises about itself; changing it bumps its incarnation. */
export interface MemberMeta {
  /** The URL clients dial, e.g. `ws://10.0.0.7:7401`. */
  clientUrl: string;
  load?: MemberLoad;
}

export interface Member {
  id: MemberId;
  /** Peer address, `host:port`, where its gossip and Raft traffic goes. */
  address: string;
  meta: MemberMeta;
  /**
   * Only the member itself increments it: to refute a suspicion, to change its
   * meta, or to rejoin after a restart. A claim with a higher incarnation
   * overrides any claim with a lower one.
   */
  incarnation: number;
  state: MemberState;
}

/** A seed from the static configuration (`id@host:port`). */
export interface SeedPeer {
  id: MemberId;
  address: string;
}

/**
 * A piggy-backed membership update. Precedence for one member: a higher
 * incarnation wins; at equal incarnation `dead`/`left` beat `suspect`, which
 * beats `alive`.
 */
export type Update =
  | { kind: 'alive'; id: MemberId; incarnation: number; address: string; meta: MemberMeta }
  | { kind: 'suspect'; id: MemberId; incarnation: number; from: MemberId }
  | { kind: 'dead'; id: MemberId; incarnation: number; from: MemberId }
  | { kind: 'left'; id: MemberId; incarnation: number };

/** One entry of a full-state exchange. */
export interface MemberSnapshot {
  id: MemberId;
  address: string;
  meta: MemberMeta;
  incarnation: number;
  state: MemberState;
}

/**
 * Messages between members. The sender's id comes from the transport
 * (`step(from, message)`), never from the message.
 */
export type SwimMessage =
  /** Are you alive? `target` is the id the sender means, so a different process at that address does not answer. */
  | { type: 'ping'; seq: number; target: MemberId; updates: Update[] }
  /** Answer to a `ping` with the same `seq`, or relayed by an intermediary for a `ping-req`. */
  | { type: 'ack'; seq: number; updates: Update[] }
  /** From an intermediary: the target did not answer its ping in time (Lifeguard). */
  | { type: 'nack'; seq: number; updates: Update[] }
  /** Please ping `target` for me and relay its ack under my `seq`. */
  | { type: 'ping-req'; seq: number; target: MemberId; targetAddress: string; updates: Update[] }
  /** Updates only. */
  | { type: 'gossip'; updates: Update[] }
  /** Full-state exchange (push-pull): on join, periodically, and to reconnect. `reply` asks for the receiver's state back. */
  | { type: 'sync'; reply: boolean; members: MemberSnapshot[] };

export type SwimMessageType = SwimMessage['type'];

/** A message the runtime must send: best effort, loss is tolerated. */
export interface Outbound {
  /** The receiver's id (what the peer transport addresses). */
  to: MemberId;
  /**
   * The receiver's peer address, for a transport that dials by address;
   * undefined only when answering a member not yet known (reply on the link
   * the request came in on).
   */
  address: string | undefined;
  message: SwimMessage;
}

/**
 * What changed in this node's view, in order.
 * - `joined`: a member became known, or alive again after `dead`/`left`.
 * - `updated`: an alive member changed its address or meta.
 * - `suspected`, `failed` (declared dead), `left`: state changes of another member.
 * - `recovered`: a suspected member refuted the suspicion.
 * - `reaped`: a tombstone was forgotten.
 * - `refuted`: this node heard it was suspected or dead and bumped its incarnation.
 */
export type MembershipEventType = 'joined' | 'updated' | 'suspected' | 'recovered' | 'failed' | 'left' | 'reaped' | 'refuted';

export interface MembershipEvent {
  type: MembershipEventType;
  /** The member after the change (a copy). */
  member: Member;
  /** The node's tick when it happened. */
  tick: number;
}

/** What a `drain()` hands to the runtime. */
export interface SwimOutput {
  /** Send each (best effort); order within the batch does not matter for correctness. */
  messages: Outbound[];
  /** Apply in order, e.g. push the live member list to clients when any arrives. */
  events: MembershipEvent[];
}

/** Randomness, injected. `nextInt(n)` returns an integer in `[0, n)`. */
export interface RandomSource {
  nextInt(maxExclusive: number): number;
}
