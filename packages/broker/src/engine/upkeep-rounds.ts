import type { PartitionUpkeep } from './hosted-partition.js';

/**
 * Which partition upkeeps a maintenance round visits, so that an idle
 * broker's rounds cost what changed, not what it hosts (issue 13: at 10,000
 * partitions, visiting every replica four times a second was most of an
 * idle broker's CPU).
 *
 * An upkeep leaves the rounds once its `maintain` says it is settled
 * (nothing due until its partition changes) and its group is `quiet`
 * (quiesced, everything committed applied): a quiesced group applies
 * nothing, so only its waking can make upkeep due again, and
 * {@link changed} (the group woke, a read failed) brings it back. Settled
 * while its group is awake is not enough: a group applies entries the
 * state machine never sees (a new leader's empty entry, a configuration
 * change), which make a snapshot due all the same; left to a periodic
 * sweep, those of every group created or re-elected at once came due
 * together, a burst of a thousand snapshots in one round of an idle broker.
 *
 * Besides, every upkeep is visited once every `sweepRounds` rounds, a share
 * of them each round (not all at once), for what no event reports (damage
 * found by a read that did not go through the engine).
 */
export class UpkeepRounds {
  private readonly upkeeps = new Map<string, PartitionUpkeep>();
  /** Ids of the upkeeps the next round visits. */
  private readonly restless = new Set<string>();
  /** Where the sweep is in {@link upkeeps}: it goes on from there each round. */
  private sweep: Iterator<string> | undefined;
  /** How many upkeeps the last round visited. */
  lastVisited = 0;

  /** `quiet(id)`: whether partition `id`'s group quiesced with everything committed applied. */
  constructor(
    private readonly sweepRounds: number,
    private readonly quiet: (id: string) => boolean,
  ) {}

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

  /** Partition `id` may have upkeep due (its group woke, a read of it failed): the next round visits it. */
  changed(id: string): void {
    if (this.upkeeps.has(id)) this.restless.add(id);
  }

  /** One round: the restless upkeeps and the sweep's share start their due step. */
  run(): void {
    const visits = new Set(this.restless);
    for (const id of this.sweepShare()) visits.add(id);
    for (const id of visits) {
      const upkeep = this.upkeeps.get(id);
      if (upkeep === undefined) continue;
      if (upkeep.maintain() && this.quiet(id)) this.restless.delete(id);
      else this.restless.add(id);
    }
    this.lastVisited = visits.size;
  }

  /** The next `1 / sweepRounds` of the upkeeps, going on where the last round's share ended. */
  private sweepShare(): string[] {
    const share: string[] = [];
    const count = Math.min(Math.ceil(this.upkeeps.size / this.sweepRounds), this.upkeeps.size);
    while (share.length < count) {
      this.sweep ??= this.upkeeps.keys();
      const next = this.sweep.next();
      if (next.done === true) {
        this.sweep = undefined;
        continue;
      }
      share.push(next.value);
    }
    return share;
  }
}
