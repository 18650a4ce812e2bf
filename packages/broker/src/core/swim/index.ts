/**
 * The SWIM membership core: pure, tick-driven failure detection and
 * dissemination (ping, indirect ping, suspicion with incarnations,
 * refutation, Lifeguard local health), plus full-state sync for joins and
 * partition healing. See docs/gossip.md.
 */
export { createSwim, type Swim, type SwimInit, type SwimStats } from './swim.js';
export {
  SWIM_DEFAULTS,
  SWIM_PRESETS,
  resolveSwimConfig,
  type SwimConfig,
  type SwimConfigOptions,
  type SwimPreset,
} from './config.js';
export { parseSwimMessage, SWIM_WIRE_LIMITS, type ParseResult } from './validate.js';
export { suspicionBounds, expectedConfirmations, suspicionTimeoutTicks, type SuspicionBounds } from './suspicion.js';
export { retransmitLimit } from './broadcast.js';
export { clusterView, changesClusterView } from './view.js';
export type {
  Member,
  MemberId,
  MemberLoad,
  MemberMeta,
  MemberSnapshot,
  MemberState,
  MembershipEvent,
  MembershipEventType,
  Outbound,
  RandomSource,
  SeedPeer,
  SwimMessage,
  SwimOutput,
  Update,
} from './types.js';
