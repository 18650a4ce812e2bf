/**
 * The working maps of one publisher flush, kept across flushes and emptied
 * after each. An awaited publish is a flush of its own: allocating these
 * anew each time was a tenth of the client's allocation per publish. A flush
 * never runs inside another (what it calls sends and settles; nothing calls
 * back into it synchronously), so one set serves every flush.
 */
export class FlushScratch<Entry, Connection> {
  /** Entries by batch key (partition, ack level, incarnation), in first-seen order. */
  readonly groups = new Map<string, Entry[]>();
  /** Per partition key: its route in this flush, or null while it waits for a route switch. */
  readonly routes = new Map<string, Connection | null>();
  /** Per partition key: the oldest incarnation with unsettled entries (publisher `heldBack`). */
  readonly oldest = new Map<string, number>();
  /** Resending partitions whose window this flush took already (publisher `resendWindow`). */
  readonly windowed = new Set<string>();
  /** Connections routed to, in first-seen order. */
  readonly connections: Connection[] = [];

  /** Empties every map; an empty one is left alone (`Map#clear` allocates a new table). */
  reset(): void {
    if (this.groups.size > 0) this.groups.clear();
    if (this.routes.size > 0) this.routes.clear();
    if (this.oldest.size > 0) this.oldest.clear();
    if (this.windowed.size > 0) this.windowed.clear();
    this.connections.length = 0;
  }
}
