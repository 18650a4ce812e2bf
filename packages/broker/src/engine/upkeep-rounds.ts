import type { PartitionUpkeep } from './hosted-partition.js';

/**
 * Which partition upkeeps a maintenance round visits, so that an idle
 * broker's rounds cost what changed, not what it hosts (issue 13: at 10,000
 * partitions, visiting every replica four times a second was most of an
 * idle broker's CPU).
 *
 * An upkeep whose `maintain` says it is settled (nothing due until its
 * partition changes) leaves the rounds; {@link changed} (an entry applied, a
 * snapshot installed) brings it back. Every `sweepEvery` rounds all of them
 * are visited anyway, for what no event reports (damage a read found on an
 * idle partition that no engine read reported, a fence).
 */
export class UpkeepRounds {
  private readonly upkeeps = new Map<string, PartitionUpkeep>();
  /** Ids of the upkeeps the next round visits. */
  private readonly restless = new Set<string>();
  private round = 0;
  /** How many upkeeps the last round visited. */
  lastVisited = 0;

  constructor(private readonly sweepEvery: number) {}

  /** Adds a partition's upkeep; the next round visits it. */
  set(id: string, upkeep: PartitionUpkeep): void {
    this.upkeeps.set(id, upkeep);
    this.restless.add(id);
  }

  get(id: string): PartitionUpkeep | undefined {
    return this.upkeeps.get(id);
  }

  delete(id: string): void {
    this.upkeeps.delete(id);
    this.restless.delete(id);
  }

  /** Every upkeep, visited or not. */
  values(): IterableIterator<PartitionUpkeep> {
    return this.upkeeps.values();
  }

  /** Partition `id` changed (applied an entry, installed a snapshot): the next round visits it. */
  changed(id: string): void {
    if (this.upkeeps.has(id)) this.restless.add(id);
  }

  /** One round: the restless upkeeps (every one, each `sweepEvery` rounds) start their due step. */
  run(): void {
    this.round += 1;
    const ids = this.round % this.sweepEvery === 0 ? [...this.upkeeps.keys()] : [...this.restless];
    for (const id of ids) {
      const upkeep = this.upkeeps.get(id);
      if (upkeep === undefined) continue;
      if (upkeep.maintain()) this.restless.delete(id);
      else this.restless.add(id);
    }
    this.lastVisited = ids.length;
  }
}
