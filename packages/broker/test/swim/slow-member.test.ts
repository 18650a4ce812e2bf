/**
 * A slow but alive member is never declared dead: others suspect it when its
 * acks are late, it hears the suspicion (gossip, or the suspect notice on the
 * next ping) and refutes with a higher incarnation before the suspicion times
 * out. Lifeguard's local health keeps the slow member from accusing healthy
 * ones as often. With refutation switched off (a test-only knob) the same
 * runs do find false deaths: the checker is not vacuous.
 */
import { describe, expect, it } from 'vitest';
import { FalseDeathChecker, InvariantChecker } from './checkers.js';
import { seeds } from './harness.js';
import { Simulation, type SlowMode } from './sim.js';
import type { SwimTestKnobs } from '../../src/core/swim/swim.js';

const RUN_TICKS = 3000; // 5 minutes at 100 ms a tick
const NODES = 5;
const SLOW = 'n3';

interface Outcome {
  falseDeaths: number;
  suspicionsOfSlow: number;
  refutationsBySlow: number;
  /** Suspicions the slow member started against healthy members (each refuted). */
  accusationsBySlow: number;
}

function runSlow(seed: number, slow: SlowMode, knobs: Partial<SwimTestKnobs> = {}): Outcome {
  const deaths = new FalseDeathChecker();
  const sim = new Simulation({ seed, nodes: NODES, network: { lossRate: 0.01, maxDelayTicks: 1 }, knobs }).observe(deaths);
  if (knobs.refute !== false) sim.observe(new InvariantChecker());
  sim.startAll();
  sim.run(100);
  sim.setSlow(SLOW, slow);
  let suspicionsOfSlow = 0;
  sim.observe({ onEvent: (_, observer, e) => void (e.type === 'suspected' && e.member.id === SLOW && observer !== SLOW && suspicionsOfSlow++) });
  sim.run(RUN_TICKS);
  let accusationsBySlow = 0;
  for (const id of sim.ids) if (id !== SLOW) accusationsBySlow += sim.swimOf(id).stats().refutations;
  return { falseDeaths: deaths.falseDeaths.length, suspicionsOfSlow, refutationsBySlow: sim.swimOf(SLOW).stats().refutations, accusationsBySlow };
}

function total(outcomes: Outcome[], key: keyof Outcome): number {
  return outcomes.reduce((sum, o) => sum + o[key], 0);
}

/** Delay up to about half the probe timeout (5 ticks), on every message to or from it, plus 20% loss. */
const HALF_TIMEOUT_LOSSY: SlowMode = { extraDelayMaxTicks: 2, lossRate: 0.2, tickEvery: 1 };
/** Ticks (and processes messages) only every second tick, with delay and 10% loss. */
const HALF_RATE: SlowMode = { extraDelayMaxTicks: 2, lossRate: 0.1, tickEvery: 2 };
/** Loses almost a third of its messages. */
const VERY_LOSSY: SlowMode = { extraDelayMaxTicks: 0, lossRate: 0.3, tickEvery: 1 };

describe('a slow member', () => {
  const modes: Array<[string, SlowMode, number]> = [
    ['delayed up to half the probe timeout, 20% loss', HALF_TIMEOUT_LOSSY, 20],
    ['ticking at half rate', HALF_RATE, 8],
    ['losing 30% of its messages', VERY_LOSSY, 8],
  ];
  for (const [label, mode, count] of modes) {
    it(`${label}: never declared dead over ${RUN_TICKS} ticks`, () => {
      const outcomes = seeds(count).map((seed) => {
        const o = runSlow(seed, mode);
        expect(o.falseDeaths, `seed ${seed}: false deaths`).toBe(0);
        return o;
      });
      console.log(
        `[swim] slow (${label}): ${outcomes.length} seeds x ${RUN_TICKS} ticks: false deaths 0, suspicions of it ${total(outcomes, 'suspicionsOfSlow')}, its refutations ${total(outcomes, 'refutationsBySlow')}`,
      );
    });
  }

  it('without refutation (test knob) the same runs find false deaths', () => {
    const outcomes = seeds(5).map((seed) => runSlow(seed, HALF_TIMEOUT_LOSSY, { refute: false }));
    const falseDeaths = total(outcomes, 'falseDeaths');
    console.log(`[swim] slow without refutation: ${outcomes.length} seeds: ${falseDeaths} false-death events`);
    for (const o of outcomes) expect(o.falseDeaths).toBeGreaterThan(0);
  });

  it('local health (Lifeguard) makes the slow member accuse healthy ones less often', () => {
    const withAwareness = seeds(8).map((seed) => runSlow(seed, HALF_TIMEOUT_LOSSY));
    const without = seeds(8).map((seed) => runSlow(seed, HALF_TIMEOUT_LOSSY, { awareness: false }));
    const a = total(withAwareness, 'accusationsBySlow');
    const b = total(without, 'accusationsBySlow');
    console.log(`[swim] accusations of healthy members by the slow one: ${a} with local health, ${b} without`);
    expect(a).toBeLessThan(b);
    expect(total(without, 'falseDeaths')).toBe(0);
  });
});
