/**
 * Discovery and metadata: members given one seed learn the whole cluster;
 * client URLs and load reach every member within a bound; a restarted member
 * rejoins with a higher incarnation; a member that leaves is marked `left`,
 * never `dead`, and its tombstone is reaped.
 */
import { describe, expect, it } from 'vitest';
import { rejoinBoundTicks, selfRecordBoundTicks, startupBoundTicks } from './bounds.js';
import { FalseDeathChecker, InvariantChecker, converged } from './checkers.js';
import { boot, report, seeds } from './harness.js';
import { Simulation } from './sim.js';
import type { MemberMeta } from '../../src/core/swim/types.js';
import { clusterView } from '../../src/core/swim/view.js';

const NET = { lossRate: 0.01, maxDelayTicks: 1 };

describe('discovery', () => {
  it('members given one seed learn the whole cluster, even when the seed starts last', () => {
    const took: number[] = [];
    let bound = 0;
    for (const seed of seeds(15)) {
      const sim = new Simulation({ seed, nodes: 7, network: NET }).observe(new InvariantChecker());
      for (const id of sim.ids.slice(1)) sim.start(id);
      sim.run(50); // n2..n7 retry their seed n1, which is not up yet (n2 waits for n1 too: its seed is n1)
      sim.start('n1');
      bound = startupBoundTicks(sim.swimConfig, 7);
      const t = sim.runUntil(() => converged(sim), bound);
      expect(t, `seed ${seed}: not converged within ${bound}`).toBeDefined();
      took.push(t ?? bound);
      // What any broker would push to its clients: every broker's client URL, alive.
      const all = sim.ids.map((id) => ({ id, url: sim.metaOf(id).clientUrl, state: 'alive' }));
      for (const observer of sim.ids) expect(clusterView(sim.swimOf(observer).members()).brokers).toEqual(all);
    }
    report('discovery through one late seed (n=7)', took, `(bound ${bound})`);
  });
});

describe('metadata', () => {
  it('client URL and load changes reach every member within the bound', () => {
    const took: number[] = [];
    let bound = 0;
    for (const seed of seeds(20)) {
      const { sim } = boot({ seed, nodes: 5, network: { lossRate: 0.03, maxDelayTicks: 1 } });
      bound = selfRecordBoundTicks(sim.swimConfig, 5);
      // Two members change at once: one its load, one its client URL.
      const load: MemberMeta = { clientUrl: 'ws://10.0.0.2:7401', load: { connections: 10 + seed, partitionsLed: 3 } };
      const moved: MemberMeta = { clientUrl: 'wss://b4.example:443', load: { connections: 0, partitionsLed: 0 } };
      const before = sim.swimOf('n2').local().incarnation;
      sim.updateMeta('n2', load);
      sim.updateMeta('n4', moved);
      expect(sim.swimOf('n2').local().incarnation).toBe(before + 1);
      const t = sim.runUntil(() => converged(sim), bound);
      expect(t, `seed ${seed}: meta not everywhere within ${bound}`).toBeDefined();
      took.push(t ?? bound);
      for (const observer of sim.ids) expect(sim.view(observer, 'n2')?.meta).toEqual(load);
      // An unchanged meta is not news.
      expect(sim.swimOf('n2').updateMeta(load)).toBe(false);
    }
    report('meta propagation (n=5, 3% loss)', took, `(bound ${bound})`);
  });
});

describe('restart', () => {
  it('a restarted member rejoins with a higher incarnation and its new meta, whether or not it was declared dead', () => {
    const took: number[] = [];
    let bound = 0;
    for (const seed of seeds(20)) {
      const { sim } = boot({ seed, nodes: 5, network: NET });
      const old = sim.view('n1', 'n3')?.incarnation ?? 0;
      sim.crash('n3');
      // Odd seeds: back before anyone noticed; even seeds: after everyone declared it dead.
      if (seed % 2 === 0) {
        const t = sim.runUntil(() => sim.liveIds().every((o) => sim.view(o, 'n3')?.state === 'dead'), 1000);
        expect(t, `seed ${seed}: n3 not declared dead`).toBeDefined();
      } else sim.run(5);
      const traced = sim.trace.length;
      sim.start('n3', { meta: { clientUrl: 'ws://10.0.0.3:7411' } });
      expect(sim.swimOf('n3').local().incarnation).toBe(0);
      bound = rejoinBoundTicks(sim.swimConfig, 5);
      const t = sim.runUntil(() => converged(sim), bound);
      expect(t, `seed ${seed}: restarted member not rejoined within ${bound}`).toBeDefined();
      took.push(t ?? bound);
      for (const observer of sim.ids) expect(sim.view(observer, 'n3')?.incarnation).toBeGreaterThan(old);
      // A dead member coming back is `joined` again; one never noticed gone is `updated` (new meta).
      const expected = seed % 2 === 0 ? / n1 joined n3@/ : / n1 updated n3@/;
      expect(sim.trace.slice(traced).some((l) => expected.test(l)), `seed ${seed}: ${String(expected)}`).toBe(true);
    }
    report('rejoin after restart (n=5)', took, `(bound ${bound})`);
  });
});

describe('leave', () => {
  it('a member that leaves is marked left everywhere, never dead, then reaped', () => {
    for (const seed of seeds(10)) {
      const deaths = new FalseDeathChecker();
      const { sim } = boot({ seed, nodes: 5, network: NET, config: { tombstoneTicks: 400 } });
      sim.observe(deaths);
      sim.leave('n3');
      const left = sim.runUntil(() => sim.liveIds().every((o) => sim.view(o, 'n3')?.state === 'left'), selfRecordBoundTicks(sim.swimConfig, 5));
      expect(left, `seed ${seed}: not left everywhere`).toBeDefined();
      sim.runUntil(() => sim.swimOf('n3').leaveSent, 50);
      expect(sim.swimOf('n3').leaveSent).toBe(true);
      sim.crash('n3');
      sim.run(300);
      expect(sim.trace.filter((l) => / failed n3@/.test(l))).toEqual([]);
      expect(converged(sim)).toBe(true);
      sim.run(200);
      for (const observer of sim.liveIds()) expect(sim.view(observer, 'n3'), `seed ${seed}: reaped`).toBeUndefined();
      expect(deaths.falseDeaths).toEqual([]);
    }
  });
});
