/**
 * After a partition heals, membership converges: every live member sees
 * exactly the live members as alive, each with its current meta, within the
 * heal bound (one reconnect interval plus the spread of the refutations the
 * reconnect provokes).
 */
import { describe, expect, it } from 'vitest';
import { healBoundTicks } from './bounds.js';
import { converged } from './checkers.js';
import { boot, report, seeds } from './harness.js';

const SIDE_A = ['n1', 'n2'];
const SIDE_B = ['n3', 'n4', 'n5'];

describe('partitions', () => {
  const cases: Array<{ label: string; ticks: number; oneWay: boolean; config?: { tombstoneTicks: number; gossipToTheDeadTicks: number } }> = [
    { label: 'symmetric, long enough for both sides to declare the other dead', ticks: 1000, oneWay: false },
    { label: 'one-way (A cannot reach B)', ticks: 1000, oneWay: true },
    { label: 'shorter than a suspicion timeout', ticks: 30, oneWay: false },
    { label: 'outlasting the tombstones (healed through the seeds)', ticks: 900, oneWay: false, config: { tombstoneTicks: 600, gossipToTheDeadTicks: 300 } },
  ];
  for (const c of cases) {
    it(`${c.label}: converges within the heal bound`, () => {
      const heal: number[] = [];
      let bound = 0;
      for (const seed of seeds(15)) {
        const { sim } = boot({ seed, nodes: 5, network: { lossRate: 0.01, maxDelayTicks: 1 }, ...(c.config === undefined ? {} : { config: c.config }) });
        sim.partition(SIDE_A, SIDE_B, { oneWay: c.oneWay });
        sim.run(c.ticks);
        if (c.ticks >= 1000) {
          // B has given up on A (A's acks and refutations never reach it). So has A on B if the cut is
          // symmetric; one-way, B's fresh incarnations still reach A, whose view of B may flap.
          for (const b of SIDE_B) for (const a of SIDE_A) expect(sim.view(b, a)?.state, `seed ${seed}: ${b} sees ${a}`).toBe('dead');
          if (!c.oneWay) for (const a of SIDE_A) for (const b of SIDE_B) expect(sim.view(a, b)?.state, `seed ${seed}: ${a} sees ${b}`).toBe('dead');
        }
        if (c.config !== undefined) expect(sim.view('n3', 'n1'), `seed ${seed}: tombstone reaped`).toBeUndefined();
        sim.heal();
        bound = healBoundTicks(sim.swimConfig, 5);
        const took = sim.runUntil(() => converged(sim), bound);
        expect(took, `seed ${seed}: no convergence within ${bound} ticks of the heal`).toBeDefined();
        heal.push(took ?? bound);
      }
      report(`heal (${c.label})`, heal, `(bound ${bound})`);
    });
  }
});
