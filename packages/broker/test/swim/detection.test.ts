/**
 * A crashed member is marked dead by every live member within the bound the
 * configuration implies, for clusters of 3, 5 and 7, under light loss and
 * sub-tick to one-tick delays.
 */
import { describe, expect, it } from 'vitest';
import { confirmedDetectionBoundTicks, detectionBoundTicks } from './bounds.js';
import { DetectionChecker } from './checkers.js';
import { boot, report, seeds } from './harness.js';
import type { SwimPreset } from '../../src/core/swim/config.js';

describe('crash detection', () => {
  const cases: Array<{ n: number; preset: SwimPreset; count: number; maxDelayTicks: number }> = [
    { n: 3, preset: 'lan', count: 25, maxDelayTicks: 1 },
    { n: 5, preset: 'lan', count: 25, maxDelayTicks: 1 },
    { n: 7, preset: 'lan', count: 15, maxDelayTicks: 1 },
    { n: 5, preset: 'local', count: 15, maxDelayTicks: 0 },
  ];
  for (const { n, preset, count, maxDelayTicks } of cases) {
    it(`${n} members, ${preset} preset: every live member declares a crashed one dead within the bound`, () => {
      const latencies: number[] = [];
      let bound = 0;
      let tight = 0;
      for (const seed of seeds(count)) {
        const { sim, invariants } = boot({ seed, nodes: n, config: { preset }, network: { lossRate: 0.01, maxDelayTicks } });
        const detection = new DetectionChecker();
        sim.observe(detection);
        bound = detectionBoundTicks(sim.swimConfig, n);
        tight = confirmedDetectionBoundTicks(sim.swimConfig, n);
        sim.run(sim.rng.between(0, 2 * sim.swimConfig.probeIntervalTicks));
        const victim = sim.ids[sim.rng.nextInt(n)] as string;
        sim.crash(victim);
        detection.crashed(sim, victim, sim.liveIds());
        const took = sim.runUntil(() => detection.allDetected(sim, victim), bound);
        expect(took, `seed ${seed}: ${victim} not dead everywhere within ${bound} ticks`).toBeDefined();
        const observed = detection.latencies(victim);
        expect(Math.max(...observed), `seed ${seed}: tight bound`).toBeLessThanOrEqual(tight);
        latencies.push(...observed);
        expect(invariants.checks).toBeGreaterThan(0);
      }
      report(`detection n=${n} ${preset}`, latencies, `(bound ${bound}, confirmed bound ${tight})`);
    });
  }
});
