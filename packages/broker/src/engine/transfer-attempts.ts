/**
 * Leadership transfers a partition's leader asked for that did not take:
 * the target campaigned (the term rose) but this broker leads again. A
 * target that cannot win — a broker that just joined and is not linked to
 * the other voters yet — would otherwise be asked again at every round of
 * the preferred-leader pass, and each attempt costs an election: publishing
 * stalls for each. Such a target is left alone for a while.
 */
import type { NodeId } from '../core/raft/index.js';

/** How long a target whose transfer did not take is not asked again. */
export const FAILED_TRANSFER_PAUSE_MS = 10_000;

export class TransferAttempts {
  /** By group: the last transfer asked for, in which term, and when. */
  private readonly asked = new Map<string, { target: NodeId; term: number; atMs: number }>();

  constructor(
    private readonly now: () => number,
    private readonly pauseMs: number = FAILED_TRANSFER_PAUSE_MS,
  ) {}

  /** Whether leadership of `group` may be handed to `target` now, by its leader in `term`. */
  mayTransfer(group: string, target: NodeId, term: number): boolean {
    const last = this.asked.get(group);
    if (last === undefined || last.target !== target) return true;
    // Asked in this term: the transfer may still be under way (asking again is harmless). A later term with this
    // broker leading: it did not take.
    if (last.term >= term) return true;
    if (this.now() - last.atMs >= this.pauseMs) {
      this.asked.delete(group);
      return true;
    }
    return false;
  }

  /** Leadership of `group` was asked to go to `target` by its leader in `term`. */
  asking(group: string, target: NodeId, term: number): void {
    this.asked.set(group, { target, term, atMs: this.now() });
  }

  /** The group stopped here. */
  forget(group: string): void {
    this.asked.delete(group);
  }
}
