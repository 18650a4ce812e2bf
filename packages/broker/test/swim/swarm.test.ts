/**
 * Swarm: each seed draws its own cluster size, network harshness and fault
 * schedule. Safety is checked after every tick (the invariant checker throws
 * with the seed); after the heal, convergence within the bound is required.
 * Replay one seed with SWIM_SEED=<seed>.
 */
import { describe, expect, it } from 'vitest';
import { report, seeds } from './harness.js';
import { runSwarm } from './swarm.js';

describe('swarm', () => {
  it('random faults never break safety, and membership converges once they stop', () => {
    const heal: number[] = [];
    let actions = 0;
    for (const seed of seeds(40)) {
      const result = runSwarm(seed);
      expect(result.healTicks, `seed ${seed} (n=${result.n}): no convergence within ${result.bound} ticks of the heal`).toBeDefined();
      heal.push(result.healTicks ?? result.bound);
      actions += result.actions;
    }
    report('swarm convergence after heal (n=3..7)', heal, `(${actions} fault actions; bound = heal + join retry, 164..204)`);
  });
});
