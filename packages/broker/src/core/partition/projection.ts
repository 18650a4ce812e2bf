import { applyPublish, type ApplyTarget } from './apply.js';
import type { PublishCommand } from './command.js';
import type { AppendOutcome } from './partition.js';
import type { SeqCheck, SeqTable } from './producers.js';

/** The committed partition a projection starts from: its end and idempotence table, as applied so far. */
export interface ProjectionBase {
  readonly endOffset: number;
  readonly producers: SeqTable;
}

/** What one projected entry added on top of the base, to drop once the base applied it. */
interface ProjectedEntry {
  index: number;
  /** Messages it stores. */
  stored: number;
  producerId: string;
  /** Seqs of `producerId` it records (the last `stored` ones when it deduplicates). */
  recorded: number;
}

/** One producer's seqs recorded by projected entries: `offsets[i]` is the offset of seq `firstSeq + i`. */
interface ProjectedSeqs {
  firstSeq: number;
  offsets: number[];
}

/**
 * A partition's leader's view of the partition as it will be once every
 * entry in its log is applied: the committed partition (the base) plus the
 * entries appended after it. Projecting an entry gives the outcomes applying
 * it will have (offsets, duplicates, gaps: `applyPublish` on a projected
 * target), which is what lets ack `leader` answer before the entry commits.
 * Entries must be projected in log order, each once; once the base applied
 * an entry ({@link applied}) its part is dropped here. Holds no messages,
 * only per-producer offsets of the entries not applied yet. Pure.
 */
export class PartitionProjection {
  private readonly entries: ProjectedEntry[] = [];
  /** Messages the projected entries store, beyond the base's end. */
  private pendingStored = 0;
  /**
   * Seqs recorded by projected entries, by producer. Created on the first
   * record (and dropped again by {@link reset}): a broker holds a projection
   * per partition it may lead, and most never see a deduplicated publish.
   */
  private seqs: Map<string, ProjectedSeqs> | undefined;
  /** The projected idempotence table `applyPublish` reads and writes; built on the first {@link project}. */
  private table: SeqTable | undefined;

  /** @param dedupeWindow - the base table's window: how far back a seq is still answered as a duplicate. */
  constructor(
    private readonly base: ProjectionBase,
    private readonly dedupeWindow: number,
  ) {}

  /** The outcomes applying `command` (the entry at `index`) will have, after every entry projected before it. */
  project(command: PublishCommand, index: number): AppendOutcome[] {
    const entry: ProjectedEntry = { index, stored: 0, producerId: command.producerId, recorded: 0 };
    const target: ApplyTarget = {
      producers: (this.table ??= {
        check: (producerId, seq) => this.check(producerId, seq),
        record: (producerId, seq, offset) => this.record(producerId, seq, offset),
      }),
      store: (messages) => {
        const first = this.base.endOffset + this.pendingStored;
        this.pendingStored += messages.length;
        entry.stored += messages.length;
        return first;
      },
    };
    const outcomes = applyPublish(target, command);
    entry.recorded = command.dedupe ? entry.stored : 0;
    if (entry.stored > 0) this.entries.push(entry);
    return outcomes;
  }

  /** The base applied every entry up to `index`: their part of the projection is its own now. */
  applied(index: number): void {
    while (this.entries.length > 0 && (this.entries[0] as ProjectedEntry).index <= index) {
      const entry = this.entries.shift() as ProjectedEntry;
      this.pendingStored -= entry.stored;
      if (entry.recorded === 0) continue;
      const seqs = this.seqs?.get(entry.producerId) as ProjectedSeqs;
      seqs.offsets.splice(0, entry.recorded);
      seqs.firstSeq += entry.recorded;
      if (seqs.offsets.length === 0) this.seqs?.delete(entry.producerId);
    }
  }

  /** Forgets every projected entry: the next one is projected on the base as it is. */
  reset(): void {
    this.entries.length = 0;
    this.pendingStored = 0;
    this.seqs = undefined;
  }

  /** Entries projected and not applied by the base yet (that store something). */
  get pending(): number {
    return this.entries.length;
  }

  /** The base's answer, with the seqs recorded by projected entries on top (the same rules as `ProducerTable.check`). */
  private check(producerId: string, seq: number): SeqCheck {
    const seqs = this.seqs?.get(producerId);
    if (seqs === undefined) return this.base.producers.check(producerId, seq);
    const nextSeq = seqs.firstSeq + seqs.offsets.length;
    if (seq === nextSeq) return { kind: 'new' };
    if (seq > nextSeq) return { kind: 'gap', expectedSeq: nextSeq };
    if (seq < nextSeq - this.dedupeWindow) return { kind: 'too-old', expectedSeq: nextSeq };
    if (seq >= seqs.firstSeq) return { kind: 'duplicate', offset: seqs.offsets[seq - seqs.firstSeq] as number };
    // Stored by the base: it answers with the offset (within its window, which ends where this one starts).
    return this.base.producers.check(producerId, seq);
  }

  private record(producerId: string, seq: number, offset: number): void {
    const bySeq = (this.seqs ??= new Map());
    let seqs = bySeq.get(producerId);
    if (seqs === undefined) {
      seqs = { firstSeq: seq, offsets: [] };
      bySeq.set(producerId, seqs);
    }
    if (seq !== seqs.firstSeq + seqs.offsets.length) throw new Error(`projection of producer ${producerId}: recorded seq ${seq}, expected ${seqs.firstSeq + seqs.offsets.length}`);
    seqs.offsets.push(offset);
  }
}
