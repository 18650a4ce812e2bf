/**
 * Swarm testing: one seed picks the cluster size, how harsh the network is
 * (loss, delay, duplication) and a random schedule of crashes, restarts,
 * partitions (one-way or symmetric), slow members, meta changes and
 * departures. Phase 1 runs it with the safety checker attached; phase 2 heals
 * everything and requires convergence within a bound.
 */
import { healBoundTicks } from './bounds.js';
import { InvariantChecker, converged } from './checkers.js';
import { Prng, hash32 } from './random.js';
import { Simulation } from './sim.js';

export interface SwarmResult {
  sim: Simulation;
  n: number;
  /** Ticks phase 2 took to converge, or undefined if it did not within `bound`. */
  healTicks: number | undefined;
  bound: number;
  actions: number;
}

export function runSwarm(seed: number, phaseTicks = 1500): SwarmResult {
  const pick = new Prng(hash32(`swarm/${seed}`));
  const n = pick.between(3, 7);
  const sim = new Simulation({
    seed,
    nodes: n,
    network: { lossRate: pick.next() * 0.1, minDelayTicks: 0, maxDelayTicks: pick.between(0, 3), duplicateRate: pick.next() * 0.05 },
    seeds: pick.chance(0.5) ? 'all' : 'first',
  });
  sim.observe(new InvariantChecker()).startAll();
  const randomId = (ids: readonly string[]): string | undefined => ids[pick.nextInt(Math.max(1, ids.length))];
  let actions = 0;
  while (sim.tick < phaseTicks) {
    sim.run(pick.between(20, 150));
    actions++;
    const live = sim.liveIds();
    const down = sim.ids.filter((id) => !sim.isUp(id));
    switch (pick.nextInt(8)) {
      case 0: {
        const victim = randomId(live);
        if (victim !== undefined && live.length > 1) sim.crash(victim);
        break;
      }
      case 1: {
        const back = randomId(down);
        if (back !== undefined) sim.start(back, pick.chance(0.5) ? { meta: { clientUrl: `ws://${back}.restarted:${7400 + pick.nextInt(100)}` } } : {});
        break;
      }
      case 2: {
        const shuffled = [...sim.ids];
        const cut = pick.between(1, n - 1);
        for (let i = shuffled.length - 1; i > 0; i--) {
          const j = pick.nextInt(i + 1);
          [shuffled[i], shuffled[j]] = [shuffled[j] as string, shuffled[i] as string];
        }
        sim.partition(shuffled.slice(0, cut), shuffled.slice(cut), { oneWay: pick.chance(0.3) });
        break;
      }
      case 3:
        sim.heal();
        break;
      case 4: {
        const slow = randomId(sim.ids);
        if (slow !== undefined) {
          sim.setSlow(slow, pick.chance(0.3) ? undefined : { extraDelayMaxTicks: pick.between(0, 3), lossRate: pick.next() * 0.3, tickEvery: pick.between(1, 3) });
        }
        break;
      }
      case 5:
      case 6: {
        const who = randomId(live);
        if (who !== undefined) {
          sim.updateMeta(who, { clientUrl: sim.metaOf(who).clientUrl, load: { connections: pick.nextInt(1000), partitionsLed: pick.nextInt(20) } });
        }
        break;
      }
      case 7: {
        const who = randomId(live);
        if (who !== undefined && live.length > 1) {
          sim.leave(who);
          sim.run(pick.between(1, 30));
          sim.crash(who);
        }
        break;
      }
    }
  }
  // Phase 2: heal the network, restore every member, and require convergence.
  sim.heal();
  sim.faults = { lossRate: 0.01, minDelayTicks: 0, maxDelayTicks: 1, duplicateRate: 0 };
  for (const id of sim.ids) {
    sim.setSlow(id, undefined);
    if (!sim.isUp(id)) sim.start(id);
  }
  const bound = healBoundTicks(sim.swimConfig, n) + sim.swimConfig.joinRetryTicks;
  const healTicks = sim.runUntil(() => converged(sim), bound);
  return { sim, n, healTicks, bound, actions };
}
