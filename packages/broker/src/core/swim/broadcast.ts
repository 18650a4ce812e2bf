/**
 * The bounded broadcast queue (memberlist's TransmitLimitedQueue): updates
 * waiting to be piggy-backed on probes or sent in gossip rounds.
 *
 * - Each update is transmitted `retransmitLimit(n)` times, then dropped.
 * - Least-transmitted first, and among equals the newest first, so fresh news
 *   (a refutation, a death) overtakes old news.
 * - A new update about a member replaces any queued one about it: only the
 *   latest claim is worth sending.
 * - Bounded in items and estimated bytes; beyond, the most transmitted, then
 *   oldest, updates are dropped and counted.
 */
import type { Update } from './types.js';

/** `retransmitMult × ⌈log10(n + 1)⌉`: how many times an update is sent in a cluster of `n`. */
export function retransmitLimit(retransmitMult: number, n: number): number {
  return retransmitMult * Math.max(1, Math.ceil(Math.log10(Math.max(1, n) + 1)));
}

/** Rough msgpack size of an update, in bytes: what budgets are counted in. */
export function estimateUpdateBytes(update: Update): number {
  // map header + kind + incarnation, then the strings with their headers.
  let bytes = 24 + update.id.length;
  switch (update.kind) {
    case 'alive':
      bytes += 24 + update.address.length + update.meta.clientUrl.length + (update.meta.load === undefined ? 0 : 40);
      break;
    case 'suspect':
    case 'dead':
      bytes += 8 + update.from.length;
      break;
    case 'left':
      break;
  }
  return bytes;
}

interface Item {
  update: Update;
  bytes: number;
  transmits: number;
  /** Insertion order: higher is newer. */
  order: number;
}

export interface BroadcastQueueLimits {
  maxItems: number;
  maxBytes: number;
}

export interface BroadcastQueueStats {
  items: number;
  bytes: number;
  /** Updates dropped because the queue was full. */
  dropped: number;
  /** Queued updates replaced by a newer one about the same member. */
  replaced: number;
}

export class BroadcastQueue {
  private readonly items = new Map<string, Item>();
  private totalBytes = 0;
  private nextOrder = 0;
  private dropped = 0;
  private replaced = 0;

  constructor(private readonly limits: BroadcastQueueLimits) {}

  get length(): number {
    return this.items.size;
  }

  stats(): BroadcastQueueStats {
    return { items: this.items.size, bytes: this.totalBytes, dropped: this.dropped, replaced: this.replaced };
  }

  /** Queues `update`, replacing any queued update about the same member. */
  enqueue(update: Update): void {
    const previous = this.items.get(update.id);
    if (previous !== undefined) {
      this.remove(update.id, previous);
      this.replaced++;
    }
    const item: Item = { update, bytes: estimateUpdateBytes(update), transmits: 0, order: this.nextOrder++ };
    this.items.set(update.id, item);
    this.totalBytes += item.bytes;
    // Over a limit: drop the most transmitted, oldest items first (never the one just added while others remain).
    while (this.items.size > this.limits.maxItems || (this.totalBytes > this.limits.maxBytes && this.items.size > 1)) {
      const victim = this.pickVictim(update.id);
      if (victim === undefined) break;
      this.remove(victim.update.id, victim);
      this.dropped++;
    }
  }

  /**
   * Takes updates that fit in `maxBytes` for one message, least transmitted
   * and newest first, counting a transmission for each; an update sent
   * `limit` times leaves the queue. Updates about members in `exclude` stay
   * untouched (the message already says something about them).
   */
  take(maxBytes: number, limit: number, exclude?: ReadonlySet<string>): Update[] {
    if (this.items.size === 0) return [];
    const ordered = [...this.items.values()].sort((a, b) => a.transmits - b.transmits || b.order - a.order);
    const out: Update[] = [];
    let budget = maxBytes;
    for (const item of ordered) {
      if (item.bytes > budget || exclude?.has(item.update.id) === true) continue;
      budget -= item.bytes;
      out.push(item.update);
      item.transmits++;
      if (item.transmits >= limit) this.remove(item.update.id, item);
    }
    return out;
  }

  /** Whether an update about `id` is still waiting to be sent `limit` times. */
  has(id: string): boolean {
    return this.items.has(id);
  }

  private remove(id: string, item: Item): void {
    this.items.delete(id);
    this.totalBytes -= item.bytes;
  }

  private pickVictim(keep: string): Item | undefined {
    let victim: Item | undefined;
    for (const item of this.items.values()) {
      if (item.update.id === keep) continue;
      if (victim === undefined || item.transmits > victim.transmits || (item.transmits === victim.transmits && item.order < victim.order)) {
        victim = item;
      }
    }
    return victim;
  }
}
