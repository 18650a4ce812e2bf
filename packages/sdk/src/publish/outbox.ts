import type { AckLevel, Encoding, RelayError } from '../protocol/index.js';
import type { DeadlineSlot } from './deadlines.js';

/** What `publish` resolves with. */
export interface PublishReceipt {
  topic: string;
  partition: number;
  /** Offset in the partition; `-1` for `ack: 'none'`, which is never acknowledged. */
  offset: number;
  /** True when the broker had already stored this message (a republish after failover). */
  duplicate: boolean;
}

/** One publish, from `publish()` until its ack or final refusal. */
export interface OutboxEntry {
  topic: string;
  key: string | undefined;
  headers: Record<string, string> | undefined;
  data: Uint8Array;
  encoding: Encoding;
  ack: AckLevel;
  /** Bytes counted against the outbox limit and frame size. */
  size: number;
  /** Assigned when admitted to the outbox (-1 before). */
  partition: number;
  /** `partition:topic`, the key of the publisher's per-partition maps; set with `partition` ('' before). */
  partitionKey: string;
  /** The producer incarnation the seq belongs to (see `PublishBatch.incarnation`). */
  incarnation: number;
  seq: number;
  /** Correlation id of the latest send; 0 when not sent on the current connection. */
  attemptId: number;
  /** The connection the latest attempt went out on. */
  sentOn: object | undefined;
  /** Times sent; above 1 means republished. */
  sends: number;
  /**
   * Of `sends`, those answered `RATE_LIMITED`, which a broker says before it
   * hands a publish to its engine: they stored nothing (see `refusesForGood`).
   */
  unproposedSends: number;
  /** The latest refusal that left its outcome unknown: named when the publish times out. */
  lastRefusal: RelayError | undefined;
  /** Whether the caller's promise already settled (ack, refusal or timeout). */
  settled: boolean;
  resolve: (receipt: PublishReceipt) => void;
  reject: (error: Error) => void;
  /** How long the caller waits for the outcome (`publishTimeoutMs` or the call's `timeoutMs`). */
  timeoutMs: number;
  /** Its place among the publishes' timeouts (see deadlines.ts). */
  deadline: DeadlineSlot<OutboxEntry> | undefined;
}

/** The key of a partition in the publisher's per-partition maps (`OutboxEntry.partitionKey`). */
export const partitionKey = (topic: string, partition: number): string => `${partition}:${topic}`;

/**
 * The bounded set of publishes not yet acknowledged, in publish order. It is
 * what gets republished, in this order, after a reconnect.
 */
export class Outbox {
  private readonly entries = new Set<OutboxEntry>();
  /** The same entries per partition (by `partitionKey`), in publish order: a partition's are found without a scan of all. */
  private readonly byPartition = new Map<string, Set<OutboxEntry>>();
  private totalBytes = 0;

  constructor(
    readonly maxMessages: number,
    readonly maxBytes: number,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  /** Whether an entry of `size` bytes fits now. An empty outbox takes any single entry. */
  hasRoom(size: number): boolean {
    if (this.entries.size === 0) return true;
    return this.entries.size < this.maxMessages && this.totalBytes + size <= this.maxBytes;
  }

  /** Admits `entry`, whose partition is assigned (it must not change while the entry is here). */
  add(entry: OutboxEntry): void {
    this.entries.add(entry);
    this.totalBytes += entry.size;
    const partition = this.byPartition.get(entry.partitionKey);
    if (partition === undefined) this.byPartition.set(entry.partitionKey, new Set([entry]));
    else partition.add(entry);
  }

  has(entry: OutboxEntry): boolean {
    return this.entries.has(entry);
  }

  delete(entry: OutboxEntry): boolean {
    if (!this.entries.delete(entry)) return false;
    this.totalBytes -= entry.size;
    const partition = this.byPartition.get(entry.partitionKey);
    partition?.delete(entry);
    if (partition?.size === 0) this.byPartition.delete(entry.partitionKey);
    return true;
  }

  /** Entries in publish order. */
  [Symbol.iterator](): IterableIterator<OutboxEntry> {
    return this.entries.values();
  }

  /** Entries of one partition, in seq order (a copy: the caller may settle them while it goes through). */
  partition(topic: string, partition: number): OutboxEntry[] {
    return [...(this.byPartition.get(partitionKey(topic, partition)) ?? [])];
  }
}
