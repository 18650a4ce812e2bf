/** One seed drives everything: the same seed gives the same event trace, tick for tick. */
import { describe, expect, it } from 'vitest';
import { runSwarm } from './swarm.js';

describe('determinism', () => {
  it('the same seed replays the same trace; another seed does not', () => {
    const a = runSwarm(7, 800).sim.trace;
    const b = runSwarm(7, 800).sim.trace;
    const c = runSwarm(8, 800).sim.trace;
    expect(a.length).toBeGreaterThan(100);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
  });
});
