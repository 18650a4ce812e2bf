import { describe, expect, it } from 'vitest';
import type { PartitionUpkeep } from './hosted-partition.js';
import { UpkeepRounds } from './upkeep-rounds.js';

/** An upkeep that is settled unless `busy`, and counts its visits. */
function upkeep(): PartitionUpkeep & { busy: boolean; visits: number } {
  return {
    busy: false,
    visits: 0,
    maintain() {
      this.visits += 1;
      return !this.busy;
    },
    finish: async () => {},
    close: async () => {},
  };
}

/** `count` upkeeps in rounds sweeping all of them every `sweepRounds` rounds; their groups are quiet unless listed in `awake`. */
function rounds(count: number, sweepRounds: number) {
  const awake = new Set<string>();
  const r = new UpkeepRounds(sweepRounds, (id) => !awake.has(id));
  const upkeeps = Array.from({ length: count }, () => upkeep());
  upkeeps.forEach((u, i) => r.set(`p/t/${i}`, u));
  return { rounds: r, upkeeps, awake };
}

describe('UpkeepRounds', () => {
  it('visits every partition once, then only those that changed or are still busy, besides the sweep share', () => {
    const { rounds: r, upkeeps } = rounds(1000, 10);
    (upkeeps[7] as { busy: boolean }).busy = true;
    r.run();
    expect(r.lastVisited, 'a new upkeep is visited').toBe(1000);
    for (let round = 2; round <= 5; round++) {
      r.run();
      expect(r.lastVisited, `idle round ${round}: the busy partition and a tenth of all`).toBeLessThanOrEqual(101);
      expect(upkeeps[7]?.visits).toBe(round);
    }
    const before = upkeeps[42]?.visits ?? 0;
    r.changed('p/t/42');
    r.changed('p/t/unknown');
    r.run();
    expect(upkeeps[42]?.visits).toBe(before + 1);
    (upkeeps[7] as { busy: boolean }).busy = false;
    r.run();
    const settled = upkeeps[7]?.visits ?? 0;
    r.run();
    expect(upkeeps[7]?.visits, 'settled: left out until the sweep comes back to it').toBe(settled);
    r.delete('p/t/7');
    r.changed('p/t/7');
    for (let round = 0; round < 10; round++) r.run();
    expect(upkeeps[7]?.visits, 'a deleted upkeep is not visited').toBe(settled);
    expect([...r.values()]).toHaveLength(999);
  });

  it('sweeps every upkeep once per sweep, a share each round, not all in one round', () => {
    const { rounds: r, upkeeps } = rounds(1000, 20);
    r.run(); // the first visit of new upkeeps
    for (const u of upkeeps) u.visits = 0;
    const visited: number[] = [];
    for (let round = 0; round < 20; round++) {
      r.run();
      visited.push(r.lastVisited);
    }
    expect(Math.max(...visited), 'a round visits a twentieth').toBe(50);
    expect(upkeeps.every((u) => u.visits === 1), 'each upkeep once in twenty rounds').toBe(true);
  });

  it('keeps visiting a settled upkeep while its group is awake (it may apply entries the upkeep is not told of), and lets it go once quiet', () => {
    const { rounds: r, upkeeps, awake } = rounds(100, 1000);
    awake.add('p/t/3');
    r.run();
    for (let round = 0; round < 5; round++) r.run();
    expect(upkeeps[3]?.visits, 'awake: every round').toBe(6);
    expect(upkeeps[99]?.visits, 'quiet and settled: once, and the sweep not back yet').toBe(1);
    awake.delete('p/t/3');
    r.run();
    r.run();
    expect(upkeeps[3]?.visits, 'quiet: left after one more visit').toBe(7);
  });
});
