import type { Cursor } from '@relaymq/sdk/protocol';
import type { GroupRecord } from '../../core/metadata/groups.js';
import type { BackboneMetadata, BackboneTopic } from './metadata.js';

/**
 * Compaction of the metadata stream (pure parts; meta-log.ts does the I/O).
 *
 * Now and then a gateway writes a snapshot of its applied state into the
 * metadata stream: the state exactly as of one entry (`upTo`, the stream
 * offset of the last entry it covers), captured while applying that entry,
 * so it equals the state of every gateway that applied the stream up to
 * there. It is written as one or more parts (a frame of the stream protocol
 * is at most 1 MiB), and once read back complete the offset of its first
 * part is stored with RabbitMQ's server-side offset tracking under
 * {@link SNAPSHOT_REFERENCE}. A gateway starting up queries that offset,
 * reads the snapshot there, and tails the stream from `upTo + 1`: it
 * applies the entries written since the snapshot, not the whole history.
 *
 * The stream gets a size retention ({@link metaRetention}) so old segments
 * go away; what keeps state from being lost is that a snapshot is written
 * long before the entries it needs could be removed:
 * - RabbitMQ deletes the oldest segments only while the stream is larger
 *   than `max-length-bytes` (B), so the newest B - G bytes always survive
 *   (G the segment size, B/8);
 * - the coordinator gateway snapshots after B/16 bytes of entries since the
 *   last complete snapshot's `upTo`, any other gateway after B/8 (should the
 *   coordinator be gone); counted bytes include a per-record overhead
 *   ({@link RECORD_OVERHEAD_BYTES}) above what RabbitMQ stores;
 * - so what a new gateway needs (entries after the pointed snapshot's
 *   `upTo`, and the snapshot itself) is at most B/8 of entries, plus the
 *   entries written while a snapshot was being written, plus the pointed
 *   snapshot and those written since (one per writer): within 7B/8 for
 *   snapshots up to B/8 (a larger one is logged as an error: raise B).
 *   Snapshot bytes do not count toward the next snapshot (a snapshot larger
 *   than B/16 would otherwise call for the next one at once).
 * Concurrent gateways may snapshot at once: each snapshot is valid on its
 * own (state as of its `upTo`), parts are matched by snapshot id, and the
 * stored pointer only moves forward (a gateway stores it only above the
 * offset it finds stored).
 */

/** The reference under which the offset of the latest complete snapshot's first part is stored. */
export const SNAPSHOT_REFERENCE = 'relaymq-meta-snapshot';
/** Application property marking a snapshot part: its value is the snapshot id. */
export const SNAPSHOT_PROPERTY = 'relaymq-snapshot';
/** Bytes of state per part (a stream protocol frame is at most 1 MiB by default). */
export const SNAPSHOT_PART_BYTES = 512 * 1024;
/** Counted per record on top of its payload: chunk header and AMQP framing, more than RabbitMQ stores for one record. */
export const RECORD_OVERHEAD_BYTES = 128;

/** Incomplete snapshots an assembler keeps. */
const MAX_PENDING_SNAPSHOTS = 8;

/** The metadata state as a snapshot holds it. */
export interface SnapshotData {
  topics: Array<[string, BackboneTopic]>;
  positions: Array<{ durable: string; positions: Cursor[] }>;
  groups: GroupRecord[];
}

/** One part of a snapshot, as its application properties and body carry it. */
export interface SnapshotPart {
  id: string;
  /** Stream offset of the last entry the snapshot covers. */
  upTo: bigint;
  part: number;
  parts: number;
  data: Buffer;
}

/** A complete snapshot read from the stream. */
export interface Snapshot {
  id: string;
  upTo: bigint;
  /** Stream offset of its first part (what the pointer stores). */
  firstOffset: bigint;
  data: SnapshotData;
}

/** `state` as a snapshot holds it. */
export function captureState(state: BackboneMetadata): SnapshotData {
  return {
    topics: [...state.topics].map(([name, t]) => [name, { ...t }]),
    positions: state.positions.toRecords(),
    groups: state.groups.toRecords(),
  };
}

/** Replaces `state` with `data` (from {@link captureState}). */
export function restoreState(state: BackboneMetadata, data: SnapshotData): void {
  state.topics.clear();
  for (const [name, t] of data.topics) state.topics.set(name, { ...t });
  state.positions.restore(data.positions);
  state.groups.restore(data.groups);
}

/** The parts of snapshot `id` of `data` as of entry `upTo`. */
export function encodeSnapshot(id: string, upTo: bigint, data: SnapshotData, partBytes = SNAPSHOT_PART_BYTES): SnapshotPart[] {
  const bytes = Buffer.from(JSON.stringify(data), 'utf8');
  const parts = Math.max(1, Math.ceil(bytes.length / partBytes));
  return Array.from({ length: parts }, (_, part) => ({ id, upTo, part, parts, data: bytes.subarray(part * partBytes, (part + 1) * partBytes) }));
}

/** The application properties carrying `part`'s header (strings: the client writes numbers as 32-bit integers). */
export function partProperties(part: SnapshotPart): Record<string, string> {
  return { [SNAPSHOT_PROPERTY]: part.id, upTo: part.upTo.toString(), part: String(part.part), parts: String(part.parts) };
}

/** The snapshot part a record carries, or `undefined` when it is not one. */
export function parseSnapshotPart(properties: Record<string, unknown> | undefined, body: Buffer): SnapshotPart | undefined {
  const id = properties?.[SNAPSHOT_PROPERTY];
  if (typeof id !== 'string') return undefined;
  const part = Number(properties?.part);
  const parts = Number(properties?.parts);
  const upTo = properties?.upTo;
  if (!Number.isInteger(part) || !Number.isInteger(parts) || part < 0 || part >= parts || typeof upTo !== 'string' || !/^\d+$/.test(upTo)) return undefined;
  return { id, upTo: BigInt(upTo), part, parts, data: body };
}

/**
 * Collects snapshot parts read in stream order and answers each snapshot
 * once all its parts were read. Parts of concurrent snapshots may
 * interleave with each other and with entries; beyond
 * {@link MAX_PENDING_SNAPSHOTS} incomplete ones (their writers died midway)
 * the oldest is dropped.
 */
export class SnapshotAssembler {
  private readonly pending = new Map<string, { firstOffset: bigint; upTo: bigint; parts: Buffer[]; seen: number }>();

  /** Adds `part`, read at `offset`; the snapshot when this completed it. */
  add(part: SnapshotPart, offset: bigint): Snapshot | undefined {
    let entry = this.pending.get(part.id);
    if (entry === undefined) {
      if (part.part !== 0) return undefined; // its first part was before where reading started
      entry = { firstOffset: offset, upTo: part.upTo, parts: new Array<Buffer>(part.parts), seen: 0 };
      this.pending.set(part.id, entry);
      if (this.pending.size > MAX_PENDING_SNAPSHOTS) this.pending.delete(this.pending.keys().next().value as string);
    }
    if (entry.parts[part.part] === undefined) entry.seen++;
    entry.parts[part.part] = part.data;
    if (entry.seen < part.parts) return undefined;
    this.pending.delete(part.id);
    return { id: part.id, upTo: entry.upTo, firstOffset: entry.firstOffset, data: JSON.parse(Buffer.concat(entry.parts).toString('utf8')) as SnapshotData };
  }
}

/** The metadata stream's retention and the snapshot thresholds that make it safe (see the module comment). */
export interface MetaRetention {
  /** Arguments of the metadata stream when a gateway creates it. */
  streamArguments: { 'max-length-bytes': number; 'stream-max-segment-size-bytes': number };
  /** Counted bytes of entries after which the coordinator snapshots (others at twice). */
  snapshotEveryBytes: number;
  /** A snapshot above this is logged as an error: the retention cannot keep it and what follows it safely. */
  maxSafeSnapshotBytes: number;
}

/** Retention of `maxBytes` (B) for the metadata stream: segments of B/8, snapshots after B/16 counted bytes. */
export function metaRetention(maxBytes: number): MetaRetention {
  return {
    streamArguments: { 'max-length-bytes': maxBytes, 'stream-max-segment-size-bytes': Math.floor(maxBytes / 8) },
    snapshotEveryBytes: Math.floor(maxBytes / 16),
    maxSafeSnapshotBytes: Math.floor(maxBytes / 8),
  };
}

/**
 * When this gateway writes a snapshot: after `everyEntries` entries or
 * `everyBytes` counted bytes since the last complete snapshot's `upTo`
 * (twice as many when it is not the coordinator, so another gateway takes
 * over when the coordinator is gone). Every gateway counts the same entries.
 */
export class CompactionPolicy {
  private entries = 0;
  private bytes = 0;
  /** `upTo` of the newest complete snapshot read. */
  private latest: bigint | undefined;
  /** Per entry applied since that snapshot: its offset and the counted bytes before it. */
  private readonly marks: Array<{ offset: bigint; before: number }> = [];
  private totalBytes = 0;

  constructor(
    private readonly everyEntries: number,
    private readonly everyBytes: number,
  ) {}

  /** An entry of `payloadBytes` was applied at `offset`. */
  entryApplied(offset: bigint, payloadBytes: number): void {
    this.marks.push({ offset, before: this.totalBytes });
    this.totalBytes += payloadBytes + RECORD_OVERHEAD_BYTES;
    this.entries++;
    this.bytes += payloadBytes + RECORD_OVERHEAD_BYTES;
    // Only marks after the latest snapshot matter; a snapshot is due well before this many (when none succeeds, the oldest go).
    if (this.marks.length > 4 * this.everyEntries) this.marks.splice(0, this.marks.length - 2 * this.everyEntries);
  }

  /** A complete snapshot covering entries up to `upTo` was read: count from there. */
  snapshotRead(upTo: bigint): void {
    if (this.latest !== undefined && upTo <= this.latest) return;
    this.latest = upTo;
    const first = this.marks.findIndex((m) => m.offset > upTo);
    this.marks.splice(0, first < 0 ? this.marks.length : first);
    this.entries = this.marks.length;
    this.bytes = this.marks.length === 0 ? 0 : this.totalBytes - (this.marks[0] as { before: number }).before;
  }

  /** Whether a snapshot is due (`coordinator`: this gateway is the one expected to write it). */
  due(coordinator: boolean): boolean {
    const factor = coordinator ? 1 : 2;
    return this.entries >= factor * this.everyEntries || this.bytes >= factor * this.everyBytes;
  }

  /** Entries and counted bytes since the latest snapshot read, for logs and tests. */
  since(): { entries: number; bytes: number } {
    return { entries: this.entries, bytes: this.bytes };
  }
}
