/**
 * SWIM configuration: one documented object, frozen defaults, named presets
 * that override a few fields, and {@link resolveSwimConfig} that rejects
 * invalid or conflicting settings by name instead of resolving them silently.
 *
 * Time is in ticks: the core knows no milliseconds. The figures below are
 * memberlist's for ticks of 100 ms (`probeIntervalTicks: 10` is its one-second
 * LAN probe interval); the broker takes its `swim` options in milliseconds
 * (`tuning.ts`, the same presets) and converts them to its own tick.
 */
import { RelayError } from '@relaymq/sdk/protocol';
import { SWIM_WIRE_LIMITS } from './validate.js';

export interface SwimConfig {
  /**
   * Ticks between the starts of two probes. Each probe pings one member,
   * chosen round-robin over a shuffled list, so every live member is probed
   * at least once every `2 × (n − 1)` probe intervals.
   * @defaultValue 10 (1 s)
   */
  probeIntervalTicks: number;
  /**
   * Ticks to wait for a direct ack before asking `indirectChecks` peers to
   * probe the target. Must be shorter than `probeIntervalTicks`: the rest of
   * the interval is the indirect round. Scaled by the local health multiplier.
   * @defaultValue 5 (500 ms)
   */
  probeTimeoutTicks: number;
  /**
   * Peers asked to ping a target that missed its direct ack (`ping-req`).
   * @defaultValue 3
   */
  indirectChecks: number;
  /**
   * Ticks between two gossip rounds. Each round sends queued updates to
   * `gossipFanout` random live (or recently dead) members.
   * @defaultValue 2 (200 ms)
   */
  gossipIntervalTicks: number;
  /**
   * Members each gossip round sends to.
   * @defaultValue 3
   */
  gossipFanout: number;
  /**
   * An update is transmitted `retransmitMult × ⌈log10(n + 1)⌉` times before it
   * leaves the broadcast queue.
   * @defaultValue 4
   */
  retransmitMult: number;
  /**
   * Minimum suspicion timeout is `suspicionMult × max(1, log10(n)) ×
   * probeIntervalTicks`. Also sets how many independent confirmations are
   * expected (`suspicionMult − 2`) to shrink the timeout toward the minimum.
   * @defaultValue 4
   */
  suspicionMult: number;
  /**
   * Maximum suspicion timeout, as a multiple of the minimum; used while no
   * other member has confirmed the suspicion (Lifeguard).
   * @defaultValue 6
   */
  suspicionMaxTimeoutMult: number;
  /**
   * Upper bound of the local health multiplier (Lifeguard): a member that
   * misses acks and nacks scales its probe timeout and interval by up to this
   * factor, so a slow member stops accusing healthy ones.
   * @defaultValue 8
   */
  awarenessMaxMultiplier: number;
  /**
   * Ticks between two full-state exchanges (`sync`) with one random live
   * member: repairs whatever gossip missed.
   * @defaultValue 300 (30 s)
   */
  pushPullIntervalTicks: number;
  /**
   * Ticks between two attempts to sync with a dead member or an unreachable
   * seed, taken round-robin: this is what heals a partition after both sides
   * declared each other dead.
   * @defaultValue 50 (5 s)
   */
  reconnectIntervalTicks: number;
  /**
   * Ticks between two join attempts (a `sync` to every seed) while no seed has
   * answered yet.
   * @defaultValue 10 (1 s)
   */
  joinRetryTicks: number;
  /**
   * Ticks after a member is declared dead during which gossip still goes to
   * it, so a member declared dead by mistake hears it and refutes.
   * @defaultValue 300 (30 s)
   */
  gossipToTheDeadTicks: number;
  /**
   * Ticks a dead or left member is kept as a tombstone (blocking stale alive
   * updates of its old incarnation) before it is reaped.
   * @defaultValue 3000 (5 min)
   */
  tombstoneTicks: number;
  /**
   * Members this node keeps (self and tombstones included). An update about a
   * new member beyond it is dropped and counted.
   * @defaultValue 512
   */
  maxMembers: number;
  /**
   * Updates kept in the broadcast queue; the oldest, most retransmitted ones
   * are dropped beyond it.
   * @defaultValue 1024
   */
  maxBroadcasts: number;
  /**
   * Estimated bytes of the updates kept in the broadcast queue.
   * @defaultValue 262144 (256 KiB)
   */
  maxBroadcastBytes: number;
  /**
   * Estimated bytes of updates piggy-backed on one ping, ack, nack or ping-req.
   * @defaultValue 1024
   */
  maxPiggybackBytes: number;
  /**
   * Estimated bytes of updates in one gossip message.
   * @defaultValue 8192
   */
  maxGossipBytes: number;
  /**
   * Indirect probes this node relays at once on behalf of others; further
   * `ping-req`s are dropped (the requester then counts a missing nack).
   * @defaultValue 64
   */
  maxPendingIndirect: number;
  /**
   * Messages the core holds between two `drain()` calls; beyond it the oldest
   * are dropped and counted (gossip tolerates loss).
   * @defaultValue 4096
   */
  maxOutboxMessages: number;
  /**
   * Membership events held between two `drain()` calls; beyond it the oldest
   * are dropped and counted.
   * @defaultValue 4096
   */
  maxPendingEvents: number;
}

/** The defaults: memberlist's LAN figures, in ticks of 100 ms. */
export const SWIM_DEFAULTS: Readonly<SwimConfig> = Object.freeze({
  probeIntervalTicks: 10,
  probeTimeoutTicks: 5,
  indirectChecks: 3,
  gossipIntervalTicks: 2,
  gossipFanout: 3,
  retransmitMult: 4,
  suspicionMult: 4,
  suspicionMaxTimeoutMult: 6,
  awarenessMaxMultiplier: 8,
  pushPullIntervalTicks: 300,
  reconnectIntervalTicks: 50,
  joinRetryTicks: 10,
  gossipToTheDeadTicks: 300,
  tombstoneTicks: 3000,
  maxMembers: 512,
  maxBroadcasts: 1024,
  maxBroadcastBytes: 262_144,
  maxPiggybackBytes: 1024,
  maxGossipBytes: 8192,
  maxPendingIndirect: 64,
  maxOutboxMessages: 4096,
  maxPendingEvents: 4096,
});

export type SwimPreset = 'local' | 'lan';

/**
 * Named presets, each overriding a few defaults.
 * - `lan`: the defaults (memberlist's LAN figures).
 * - `local`: brokers on one host (loopback, sub-millisecond round trips):
 *   shorter probe timeout, faster gossip, fewer indirect checks and
 *   retransmissions, quicker suspicion (memberlist's local figures).
 */
export const SWIM_PRESETS: Readonly<Record<SwimPreset, Readonly<Partial<SwimConfig>>>> = Object.freeze({
  lan: Object.freeze({}),
  local: Object.freeze({
    probeTimeoutTicks: 2,
    gossipIntervalTicks: 1,
    indirectChecks: 1,
    retransmitMult: 2,
    suspicionMult: 3,
    pushPullIntervalTicks: 150,
    reconnectIntervalTicks: 20,
    gossipToTheDeadTicks: 150,
  }),
});

export interface SwimConfigOptions extends Partial<SwimConfig> {
  /** Preset applied over the defaults before the explicit fields. @defaultValue 'lan' */
  preset?: SwimPreset;
}

/** A setting that is invalid or conflicts with another: an `INVALID_ARGUMENT` naming the field. */
function invalid(field: string, message: string): RelayError {
  return new RelayError('INVALID_ARGUMENT', `swim option ${field}: ${message}`);
}

const FIELDS = Object.keys(SWIM_DEFAULTS) as Array<keyof SwimConfig>;
/** Fields that may be 0; every other field must be at least 1. */
const MAY_BE_ZERO: ReadonlySet<keyof SwimConfig> = new Set(['indirectChecks', 'gossipToTheDeadTicks']);

/** Defaults, then the preset, then the explicit fields; throws an `INVALID_ARGUMENT` {@link RelayError} naming the first bad field. */
export function resolveSwimConfig(options: SwimConfigOptions = {}): Readonly<SwimConfig> {
  const { preset = 'lan', ...fields } = options;
  if (!Object.hasOwn(SWIM_PRESETS, preset)) {
    throw invalid('preset', `unknown preset "${String(preset)}" (expected ${Object.keys(SWIM_PRESETS).join(', ')})`);
  }
  for (const key of Object.keys(fields)) {
    if (!(FIELDS as string[]).includes(key)) throw invalid(key, `unknown option "${key}"`);
  }
  const config: SwimConfig = { ...SWIM_DEFAULTS, ...SWIM_PRESETS[preset] };
  for (const key of FIELDS) {
    const value = fields[key];
    if (value !== undefined) config[key] = value;
  }
  for (const key of FIELDS) {
    const value = config[key];
    const min = MAY_BE_ZERO.has(key) ? 0 : 1;
    if (!Number.isSafeInteger(value) || value < min) {
      throw invalid(key, `${key} must be an integer >= ${min}, got ${String(value)}`);
    }
  }
  const conflict = (field: keyof SwimConfig, ok: boolean, message: string): void => {
    if (!ok) throw invalid(field, message);
  };
  conflict(
    'probeTimeoutTicks',
    config.probeTimeoutTicks < config.probeIntervalTicks - 1,
    `probeTimeoutTicks (${config.probeTimeoutTicks}) must be shorter than probeIntervalTicks (${config.probeIntervalTicks}) by at least 2 ticks, leaving room for the indirect probe`,
  );
  conflict(
    'gossipIntervalTicks',
    config.gossipIntervalTicks <= config.probeIntervalTicks,
    `gossipIntervalTicks (${config.gossipIntervalTicks}) must not exceed probeIntervalTicks (${config.probeIntervalTicks}): refutations must spread faster than members are probed`,
  );
  conflict(
    'suspicionMult',
    config.suspicionMult >= 2,
    `suspicionMult (${config.suspicionMult}) must be >= 2: a suspicion shorter than two probe intervals cannot be refuted in time`,
  );
  conflict(
    'gossipToTheDeadTicks',
    config.gossipToTheDeadTicks <= config.tombstoneTicks,
    `gossipToTheDeadTicks (${config.gossipToTheDeadTicks}) must not exceed tombstoneTicks (${config.tombstoneTicks}): a reaped member cannot be gossiped to`,
  );
  conflict(
    'reconnectIntervalTicks',
    config.reconnectIntervalTicks < config.tombstoneTicks,
    `reconnectIntervalTicks (${config.reconnectIntervalTicks}) must be shorter than tombstoneTicks (${config.tombstoneTicks}), or dead members are reaped before a reconnect is tried`,
  );
  conflict(
    'maxPiggybackBytes',
    config.maxPiggybackBytes <= config.maxGossipBytes,
    `maxPiggybackBytes (${config.maxPiggybackBytes}) must not exceed maxGossipBytes (${config.maxGossipBytes})`,
  );
  conflict(
    'maxBroadcastBytes',
    config.maxBroadcastBytes >= config.maxGossipBytes,
    `maxBroadcastBytes (${config.maxBroadcastBytes}) must hold at least one gossip message (maxGossipBytes ${config.maxGossipBytes})`,
  );
  conflict('maxMembers', config.maxMembers >= 2, `maxMembers (${config.maxMembers}) must be >= 2`);
  conflict(
    'maxMembers',
    config.maxMembers <= SWIM_WIRE_LIMITS.maxSyncMembers,
    `maxMembers (${config.maxMembers}) must not exceed the ${SWIM_WIRE_LIMITS.maxSyncMembers} members a sync may carry`,
  );
  return Object.freeze(config);
}

/**
 * Ticks an intermediary waits for the target's ack before it sends a nack to
 * the requester: half the time left in the probe interval after the direct
 * timeout, so the nack is back before the requester's deadline even when each
 * hop takes a tick.
 */
export function indirectNackTicks(config: Readonly<SwimConfig>): number {
  return Math.max(1, Math.floor((config.probeIntervalTicks - config.probeTimeoutTicks) / 2));
}
