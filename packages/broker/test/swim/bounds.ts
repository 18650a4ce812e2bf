/**
 * Liveness bounds computed from the configuration, in ticks. The simulator
 * tests assert observed times against them; docs/gossip.md explains them.
 *
 * They hold for a healthy health score (Lifeguard multiplier 1) and light
 * loss: a lost ack or nack can push one probe into the next round.
 */
import { retransmitLimit } from '../../src/core/swim/broadcast.js';
import type { SwimConfig } from '../../src/core/swim/config.js';
import { expectedConfirmations, suspicionBounds } from '../../src/core/swim/suspicion.js';

type Config = Readonly<SwimConfig>;

/**
 * Every live member finishes a probe of a given member within this many ticks:
 * probe order is round-robin over a shuffled list of the `n − 1` others, so a
 * member probed first in one round and last in the next waits `2(n − 1) − 1`
 * intervals, plus the interval of the probe itself, plus one interval of
 * start phase.
 */
export function probeRoundTicks(config: Config, n: number): number {
  return config.probeIntervalTicks * (2 * (n - 1) + 1);
}

/**
 * Slack for an update to reach every live member once it is known somewhere:
 * gossip rounds while it is still being retransmitted (`⌈limit / fanout⌉`
 * rounds), and one more probe interval for a lost message to be made up by
 * the next probe exchange.
 */
export function disseminationTicks(config: Config, n: number): number {
  const rounds = Math.ceil(retransmitLimit(config.retransmitMult, n) / config.gossipFanout);
  return rounds * config.gossipIntervalTicks + config.probeIntervalTicks;
}

/**
 * A crashed member is marked dead by every live member within
 * `probeRound + suspicion max + dissemination`: some member probes it and
 * suspects it within a probe round; the suspicion lasts at most its maximum
 * (no confirmation at all); the death then spreads.
 */
export function detectionBoundTicks(config: Config, n: number): number {
  return probeRoundTicks(config, n) + suspicionBounds(config, n).maxTicks + disseminationTicks(config, n);
}

/**
 * The tighter bound Lifeguard's confirmations give: within a probe round every
 * live member has independently suspected the crashed member; once the
 * expected confirmations reach the first accuser (one dissemination later)
 * its timeout is the minimum. So: probe round + suspicion min + 2 × dissemination.
 */
export function confirmedDetectionBoundTicks(config: Config, n: number): number {
  const k = expectedConfirmations(config.suspicionMult, n);
  const d = disseminationTicks(config, n);
  return probeRoundTicks(config, n) + suspicionBounds(config, n).minTicks + (k > 0 ? 2 * d : d);
}

/**
 * A member's own record (its incarnation and meta) reaches every live member
 * within a probe round: it rides on every ping and ack that member exchanges
 * (gossip is usually much faster).
 */
export function selfRecordBoundTicks(config: Config, n: number): number {
  return probeRoundTicks(config, n) + disseminationTicks(config, n);
}

/**
 * After a partition heals, membership converges within one reconnect interval
 * (each member syncs with a dead member, all across the cut, round-robin), then
 * the refutations this provokes spread as self records.
 */
export function healBoundTicks(config: Config, n: number): number {
  return config.reconnectIntervalTicks + selfRecordBoundTicks(config, n);
}

/** A cluster started at once converges within a join retry plus the spread of every self record. */
export function startupBoundTicks(config: Config, n: number): number {
  return config.joinRetryTicks + selfRecordBoundTicks(config, n);
}

/** A restarted member is alive everywhere, with its new meta, within a join retry plus the spread of its refutation. */
export function rejoinBoundTicks(config: Config, n: number): number {
  return config.joinRetryTicks + selfRecordBoundTicks(config, n);
}
