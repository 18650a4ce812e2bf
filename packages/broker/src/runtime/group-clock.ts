/**
 * Which Raft groups of a broker need ticks. A quiesced group (idle, every
 * replica caught up: see `RaftConfig.quiesce`) is left out until something
 * wakes it, so an idle broker's tick costs nothing per group, and the
 * counters tell how much Raft work the broker does (ticks and messages per
 * second, from its own stats).
 */

/** A group the clock ticks. */
export interface ClockedGroup {
  readonly id: string;
  tick(): void;
}

/** Raft activity of a broker, since it started (counters) and now (gauges). */
export interface RaftActivity {
  /** Group ticks run (a quiesced group is not ticked, and not counted). */
  ticks: number;
  /** Raft messages handed to the peer transport, every group together. */
  messagesSent: number;
  /** Groups hosted here, the metadata group included. */
  groups: number;
  /** Of them, quiesced: not ticked until a message, a proposal or the failure detector wakes them. */
  quiesced: number;
}

export class GroupClock {
  private readonly active = new Set<ClockedGroup>();
  private readonly all = new Set<ClockedGroup>();
  private ticks = 0;
  private messagesSent = 0;

  /** `woke` is told of every group that needs ticks again after it quiesced, or is new. */
  constructor(private readonly woke: (group: ClockedGroup) => void = () => {}) {}

  /** Ticks every group that is not asleep. */
  tick(): void {
    for (const group of this.active) {
      this.ticks++;
      group.tick();
    }
  }

  /** `group` needs ticks (registers it if new). */
  wake(group: ClockedGroup): void {
    if (this.active.has(group)) return;
    this.all.add(group);
    this.active.add(group);
    this.woke(group);
  }

  /** Whether `group` quiesced: it is not ticked until something wakes it (a group not registered is not asleep). */
  asleep(group: ClockedGroup): boolean {
    return this.all.has(group) && !this.active.has(group);
  }

  /** `group` quiesced: no ticks until {@link wake}. */
  sleep(group: ClockedGroup): void {
    if (this.all.has(group)) this.active.delete(group);
  }

  /** `group` stopped. */
  remove(group: ClockedGroup): void {
    this.all.delete(group);
    this.active.delete(group);
  }

  /** Counts messages a group sent. */
  sent(count: number): void {
    this.messagesSent += count;
  }

  activity(): RaftActivity {
    return { ticks: this.ticks, messagesSent: this.messagesSent, groups: this.all.size, quiesced: this.all.size - this.active.size };
  }
}
