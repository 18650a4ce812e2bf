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

describe('UpkeepRounds', () => {
  it('visits every partition once, then only those that changed or are still busy, and all of them every sweep', () => {
    const rounds = new UpkeepRounds(10);
    const upkeeps = Array.from({ length: 1000 }, () => upkeep());
    upkeeps.forEach((u, i) => rounds.set(`p/t/${i}`, u));
    (upkeeps[7] as { busy: boolean }).busy = true;
    rounds.run();
    expect(rounds.lastVisited, 'a new upkeep is visited').toBe(1000);
    for (let round = 2; round <= 5; round++) {
      rounds.run();
      expect(rounds.lastVisited, `idle round ${round}: only the busy partition`).toBe(1);
    }
    rounds.changed('p/t/42');
    rounds.changed('p/t/unknown');
    rounds.run();
    expect(rounds.lastVisited).toBe(2);
    expect(upkeeps[42]?.visits).toBe(2);
    (upkeeps[7] as { busy: boolean }).busy = false;
    rounds.run();
    rounds.run();
    expect(rounds.lastVisited, 'settled: none').toBe(0);
    for (let round = 9; round <= 10; round++) rounds.run();
    expect(rounds.lastVisited, 'round 10 sweeps all').toBe(1000);
    rounds.delete('p/t/7');
    rounds.changed('p/t/7');
    rounds.run();
    expect(rounds.lastVisited, 'a deleted upkeep is not visited').toBe(0);
    expect([...rounds.values()]).toHaveLength(999);
  });
});
