/**
 * Peers whose link to this broker went down and has not come back: a split,
 * a partitioned or killed broker. A peer never connected yet (this broker is
 * starting) is not lost: only a link seen to drop is evidence. Transient
 * silence (a loaded machine, a paused peer) leaves the link open and the
 * peer not lost, so nothing here turns slowness into a refusal.
 */
import type { NodeId } from '../core/raft/index.js';

/** What the tracker needs of the peer transport. */
export interface LinkEvents {
  on(event: 'up' | 'down', listener: (peer: string) => void): unknown;
}

export class LostPeers {
  private readonly lost = new Set<NodeId>();

  /** `changed` runs after every change, so waiters can look again. */
  constructor(transport: LinkEvents, changed: () => void = () => {}) {
    transport.on('down', (peer) => {
      this.lost.add(peer);
      changed();
    });
    transport.on('up', (peer) => {
      if (this.lost.delete(peer)) changed();
    });
  }

  has(peer: NodeId): boolean {
    return this.lost.has(peer);
  }

  get size(): number {
    return this.lost.size;
  }
}
