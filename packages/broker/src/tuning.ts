/**
 * Timing of the cluster protocols, in one place: the `raft`, `swim` and
 * `peer` sections of the broker options, their named presets, and their
 * conversion to the tick-based configurations of the pure cores (one tick of
 * {@link TICK_MS} ms drives every Raft group and SWIM). Validation is in
 * `options.ts`, with every other option.
 */
import type { RaftConfigOptions } from './core/raft/index.js';
import type { SwimConfigOptions } from './core/swim/index.js';
import { TICK_MS, ticksFromMs } from './runtime/ticker.js';

export { TICK_MS };

/** Named timing presets of the `raft` and `swim` sections. */
export type TimingPreset = 'local' | 'lan' | 'wan';

/**
 * Raft timing of every group (the metadata group and each partition's).
 * Milliseconds, rounded up to whole ticks of {@link TICK_MS} ms; fields set
 * here override the preset's.
 */
export interface RaftOptions {
  /**
   * `lan` (the default): a data centre. `local`: brokers on one host,
   * elections after 250 ms. `wan`: brokers across regions, heartbeats every
   * 250 ms and elections after 2.5 s.
   * @defaultValue `"lan"`
   */
  preset?: TimingPreset;
  /**
   * Time between two heartbeats of a leader; at least one tick, shorter than `electionTimeoutMs`.
   * @defaultValue `50` (lan)
   */
  heartbeatMs?: number;
  /**
   * Time a follower waits without hearing from a leader before it campaigns,
   * drawn each term between this and twice this. Also the leader's lease: a
   * leader that has not heard from a quorum for this long steps down.
   * @defaultValue `500` (lan)
   */
  electionTimeoutMs?: number;
  /**
   * Whether an idle group quiesces: once nothing is proposed and every
   * follower is caught up, it stops ticking and heartbeating until a
   * proposal, a message or the failure detector (a leader's broker suspected
   * by gossip) wakes it. `false` keeps every group ticking and heartbeating
   * all the time. That costs CPU and peer traffic in proportion to the
   * partitions hosted even when nothing is published (measured before
   * quiescence existed: about 3% of a core per 100 partitions, 27-32% at
   * 1,000, so about 3,000 idle partitions keep a core busy), in exchange for
   * followers that notice a silent leader by their own election timers
   * rather than through gossip. Not a timing field: presets leave it alone.
   * @defaultValue `true`
   */
  quiesce?: boolean;
}

/**
 * SWIM membership (gossip) timing: memberlist's figures. Durations in
 * milliseconds, rounded up to whole ticks of {@link TICK_MS} ms; fields set
 * here override the preset's. Conflicting settings (a probe timeout not
 * shorter than the probe interval…) are rejected by name.
 */
export interface SwimOptions {
  /**
   * `lan` (the default): memberlist's LAN figures. `local`: brokers on one
   * host (loopback), quicker timeouts and suspicion. `wan`: memberlist's WAN
   * figures (probes every 5 s, 3 s timeout, slower gossip).
   * @defaultValue `"lan"`
   */
  preset?: TimingPreset;
  /** Time between the starts of two probes of one member each. @defaultValue `1000` (lan) */
  probeIntervalMs?: number;
  /** Wait for a direct ack before asking others to probe; shorter than `probeIntervalMs` by at least two ticks. @defaultValue `500` (lan) */
  probeTimeoutMs?: number;
  /** Members asked to probe a member that missed its direct ack. @defaultValue `3` (lan) */
  indirectChecks?: number;
  /** Time between two gossip rounds; at most `probeIntervalMs`. @defaultValue `200` (lan) */
  gossipIntervalMs?: number;
  /** Members each gossip round sends to. @defaultValue `3` (lan) */
  gossipFanout?: number;
  /** An update is sent `retransmitMult × ⌈log10(n + 1)⌉` times. @defaultValue `4` (lan) */
  retransmitMult?: number;
  /** Shortest suspicion: `suspicionMult × max(1, log10 n) × probeIntervalMs`; at least 2. @defaultValue `4` (lan) */
  suspicionMult?: number;
  /** Longest suspicion (no confirmation yet), as a multiple of the shortest. @defaultValue `6` (lan) */
  suspicionMaxTimeoutMult?: number;
  /** Most a member that misses acks slows its own probing by (Lifeguard). @defaultValue `8` (lan) */
  awarenessMaxMultiplier?: number;
  /** Time between two full-state exchanges with a random member. @defaultValue `30000` (lan) */
  pushPullIntervalMs?: number;
  /** Time between two attempts to reach a dead member or an unreachable seed (heals partitions). @defaultValue `5000` (lan) */
  reconnectIntervalMs?: number;
  /** Time between two join attempts while no seed answered. @defaultValue `1000` (lan) */
  joinRetryMs?: number;
  /** How long gossip still goes to a member declared dead (so it can refute); `0`: not at all. @defaultValue `30000` (lan) */
  gossipToTheDeadMs?: number;
  /** How long a dead or left member is remembered. @defaultValue `300000` (lan) */
  tombstoneMs?: number;
}

/** Limits and timeouts of the links and requests between brokers. */
export interface PeerOptions {
  /**
   * How long a publish or topic creation waits for a leader and a commit,
   * and a request to another broker for its answer.
   * @defaultValue `2000`, or `4 × raft.electionTimeoutMs` when that is longer
   */
  requestTimeoutMs?: number;
  /**
   * How long a subscriber's read of a partition hosted on other brokers waits
   * for one replica before it tries the next; capped by `requestTimeoutMs`.
   * @defaultValue `3000`
   */
  readTimeoutMs?: number;
  /** Largest frame accepted from another broker, in bytes. @defaultValue `67108864` (64 MiB) */
  maxFrameBytes?: number;
  /** Bytes queued to one broker beyond which new messages to it are dropped (Raft and gossip resend); at least `maxFrameBytes`. @defaultValue `67108864` (64 MiB) */
  maxQueuedBytes?: number;
  /** First delay before redialing a broker whose link dropped; it doubles up to `reconnectMaxDelayMs`. @defaultValue `50` */
  reconnectInitialDelayMs?: number;
  /**
   * Longest delay between two redials of a broker: a healed link is back
   * within it. Kept short because a link still down after its network healed
   * keeps the partitions whose replicas it joins unavailable (and a second
   * fault meanwhile compounds the first). @defaultValue `500`
   */
  reconnectMaxDelayMs?: number;
}

/** The `raft` section resolved: every timing field set; `quiesce` only when it was given (the groups default to `true`). */
export type ResolvedRaftOptions = Required<Omit<RaftOptions, 'quiesce'>> & Pick<RaftOptions, 'quiesce'>;
export type ResolvedSwimOptions = Required<SwimOptions>;
export type ResolvedPeerOptions = Required<PeerOptions>;

type RaftTiming = Omit<ResolvedRaftOptions, 'preset' | 'quiesce'>;
type SwimTiming = Omit<ResolvedSwimOptions, 'preset'>;

/** The `raft` presets; `lan` is the default and the timing every earlier version used. */
export const RAFT_PRESETS: Readonly<Record<TimingPreset, Readonly<RaftTiming>>> = Object.freeze({
  local: Object.freeze({ heartbeatMs: 50, electionTimeoutMs: 250 }),
  lan: Object.freeze({ heartbeatMs: 50, electionTimeoutMs: 500 }),
  wan: Object.freeze({ heartbeatMs: 250, electionTimeoutMs: 2500 }),
});

const SWIM_LAN: Readonly<SwimTiming> = Object.freeze({
  probeIntervalMs: 1000,
  probeTimeoutMs: 500,
  indirectChecks: 3,
  gossipIntervalMs: 200,
  gossipFanout: 3,
  retransmitMult: 4,
  suspicionMult: 4,
  suspicionMaxTimeoutMult: 6,
  awarenessMaxMultiplier: 8,
  pushPullIntervalMs: 30_000,
  reconnectIntervalMs: 5000,
  joinRetryMs: 1000,
  gossipToTheDeadMs: 30_000,
  tombstoneMs: 300_000,
});

/**
 * The `swim` presets. `lan` and `local` are the SWIM core's presets of the
 * same names (which the gossip simulator checks), in milliseconds; `wan` is
 * memberlist's WAN configuration. `lan` is the default.
 */
export const SWIM_TIMING_PRESETS: Readonly<Record<TimingPreset, Readonly<SwimTiming>>> = Object.freeze({
  lan: SWIM_LAN,
  local: Object.freeze({
    ...SWIM_LAN,
    probeTimeoutMs: 200,
    gossipIntervalMs: 100,
    indirectChecks: 1,
    retransmitMult: 2,
    suspicionMult: 3,
    pushPullIntervalMs: 15_000,
    reconnectIntervalMs: 2000,
    gossipToTheDeadMs: 15_000,
  }),
  wan: Object.freeze({
    ...SWIM_LAN,
    probeIntervalMs: 5000,
    probeTimeoutMs: 3000,
    gossipIntervalMs: 500,
    gossipFanout: 4,
    suspicionMult: 6,
    pushPullIntervalMs: 60_000,
    gossipToTheDeadMs: 60_000,
  }),
});

/** Defaults of the `peer` section (`requestTimeoutMs` also follows the Raft election timeout, see {@link PeerOptions}). */
export const PEER_DEFAULTS: Readonly<ResolvedPeerOptions> = Object.freeze({
  requestTimeoutMs: 2000,
  readTimeoutMs: 3000,
  maxFrameBytes: 64 * 1024 * 1024,
  maxQueuedBytes: 64 * 1024 * 1024,
  reconnectInitialDelayMs: 50,
  reconnectMaxDelayMs: 500,
});

/** The tick-based Raft configuration of every group (`quiesce` only when the options set it). */
export function raftConfigOf(raft: RaftTiming & Pick<RaftOptions, 'quiesce'>, tickMs: number = TICK_MS): RaftConfigOptions {
  const config: RaftConfigOptions = { heartbeatTicks: ticksFromMs(raft.heartbeatMs, tickMs), electionTicks: ticksFromMs(raft.electionTimeoutMs, tickMs) };
  if (raft.quiesce !== undefined) config.quiesce = raft.quiesce;
  return config;
}

/** Ticks of a duration that may be 0 (turned off). */
const ticksOrZero = (ms: number, tickMs: number): number => (ms === 0 ? 0 : ticksFromMs(ms, tickMs));

/** The tick-based SWIM configuration. */
export function swimConfigOf(swim: SwimTiming, tickMs: number = TICK_MS): SwimConfigOptions {
  return {
    probeIntervalTicks: ticksFromMs(swim.probeIntervalMs, tickMs),
    probeTimeoutTicks: ticksFromMs(swim.probeTimeoutMs, tickMs),
    indirectChecks: swim.indirectChecks,
    gossipIntervalTicks: ticksFromMs(swim.gossipIntervalMs, tickMs),
    gossipFanout: swim.gossipFanout,
    retransmitMult: swim.retransmitMult,
    suspicionMult: swim.suspicionMult,
    suspicionMaxTimeoutMult: swim.suspicionMaxTimeoutMult,
    awarenessMaxMultiplier: swim.awarenessMaxMultiplier,
    pushPullIntervalTicks: ticksFromMs(swim.pushPullIntervalMs, tickMs),
    reconnectIntervalTicks: ticksFromMs(swim.reconnectIntervalMs, tickMs),
    joinRetryTicks: ticksFromMs(swim.joinRetryMs, tickMs),
    gossipToTheDeadTicks: ticksOrZero(swim.gossipToTheDeadMs, tickMs),
    tombstoneTicks: ticksFromMs(swim.tombstoneMs, tickMs),
  };
}

/** The `swim` option a field of the core's tick-based configuration comes from (`probeTimeoutTicks` → `probeTimeoutMs`). */
export function swimOptionOf(coreField: string): keyof SwimTiming | undefined {
  const name = coreField.replace(/Ticks$/, 'Ms');
  return Object.hasOwn(SWIM_LAN, name) ? (name as keyof SwimTiming) : undefined;
}
