/** Shared set-up for the gossip simulator tests. */
import { expect } from 'vitest';
import { startupBoundTicks } from './bounds.js';
import { InvariantChecker, converged, summarize } from './checkers.js';
import { Simulation, type SimOptions } from './sim.js';

/** Starts a cluster with the safety checker attached and runs it until it converged (asserting the startup bound). */
export function boot(options: SimOptions): { sim: Simulation; invariants: InvariantChecker; startupTicks: number } {
  const invariants = new InvariantChecker();
  const sim = new Simulation(options).observe(invariants).startAll();
  const bound = startupBoundTicks(sim.swimConfig, sim.ids.length);
  const startupTicks = sim.runUntil(() => converged(sim), bound);
  expect(startupTicks, `seed ${options.seed}: no convergence within the startup bound ${bound}`).toBeDefined();
  return { sim, invariants, startupTicks: startupTicks ?? bound };
}

/** Seeds 1..count, or the one in SWIM_SEED to replay a failure. */
export function seeds(count: number): number[] {
  const one = process.env.SWIM_SEED;
  if (one !== undefined && one !== '') return [Number(one)];
  return Array.from({ length: count }, (_, i) => i + 1);
}

/** One line of figures in the test output. */
export function report(label: string, values: readonly number[], extra = ''): void {
  const s = summarize(values);
  console.log(`[swim] ${label}: n=${s.n} min=${s.min} p50=${s.p50} p95=${s.p95} p99=${s.p99} max=${s.max} ticks${extra === '' ? '' : ` ${extra}`}`);
}
