/**
 * The idempotence table of one partition: per producer, the next expected seq
 * and the offsets of its most recent seqs, so that a republish after a
 * failover is answered with the offset it was first stored at.
 */

/** What the table says about an incoming (producerId, seq). */
export type SeqCheck =
  | { kind: 'new' }
  | { kind: 'duplicate'; offset: number }
  | { kind: 'gap'; expectedSeq: number }
  | { kind: 'too-old'; expectedSeq: number };

/** One producer's row, as persisted: `recent[i]` is the offset of seq `nextSeq - recent.length + i`. */
export interface ProducerRecord {
  producerId: string;
  /** The seq the producer sends next. */
  nextSeq: number;
  /** Offsets of its most recent seqs (at most the window), oldest first. */
  recent: number[];
}

/**
 * What the apply step asks of an idempotence table: where an incoming
 * (producerId, seq) stands, and that a new one was stored.
 */
export interface SeqTable {
  check(producerId: string, seq: number): SeqCheck;
  /** Records that `seq` (which {@link SeqTable.check} called new) was stored at `offset`. */
  record(producerId: string, seq: number, offset: number): void;
}

interface ProducerWindow {
  nextSeq: number;
  /** Ring buffer: offsets[seq % window] for the last `window` seqs. */
  offsets: number[];
}

export class ProducerTable implements SeqTable {
  /** Created by the first producer: an idle partition's table holds none, and an empty map costs about 270 bytes. */
  private producers: Map<string, ProducerWindow> | undefined;

  /** @param window - how many recent seqs per producer keep their offset. */
  constructor(readonly window: number) {}

  check(producerId: string, seq: number): SeqCheck {
    const producer = this.producers?.get(producerId);
    const nextSeq = producer?.nextSeq ?? 0;
    if (seq === nextSeq) return { kind: 'new' };
    if (seq > nextSeq) return { kind: 'gap', expectedSeq: nextSeq };
    if (producer === undefined || seq < nextSeq - this.window) return { kind: 'too-old', expectedSeq: nextSeq };
    return { kind: 'duplicate', offset: producer.offsets[seq % this.window] as number };
  }

  /** Records that `seq` (which {@link check} called new) was stored at `offset`. */
  record(producerId: string, seq: number, offset: number): void {
    let producer = this.producers?.get(producerId);
    if (producer === undefined) {
      producer = { nextSeq: 0, offsets: [] };
      (this.producers ??= new Map()).set(producerId, producer);
    }
    if (seq !== producer.nextSeq) throw new Error(`producer ${producerId}: recorded seq ${seq}, expected ${producer.nextSeq}`);
    producer.offsets[seq % this.window] = offset;
    producer.nextSeq = seq + 1;
  }

  /** The table as rows, for a checkpoint or a snapshot. */
  toRecords(): ProducerRecord[] {
    const rows: ProducerRecord[] = [];
    for (const [producerId, producer] of this.producers ?? []) {
      const count = Math.min(producer.nextSeq, this.window);
      const recent: number[] = [];
      for (let seq = producer.nextSeq - count; seq < producer.nextSeq; seq++) recent.push(producer.offsets[seq % this.window] as number);
      rows.push({ producerId, nextSeq: producer.nextSeq, recent });
    }
    return rows;
  }

  /** Replaces the table with `rows` (from {@link toRecords}). */
  restore(rows: readonly ProducerRecord[]): void {
    this.producers = undefined;
    for (const row of rows) {
      const offsets: number[] = [];
      const recent = row.recent.slice(-this.window);
      recent.forEach((offset, i) => {
        offsets[(row.nextSeq - recent.length + i) % this.window] = offset;
      });
      (this.producers ??= new Map()).set(row.producerId, { nextSeq: row.nextSeq, offsets });
    }
  }

  /** Number of producers tracked. */
  get size(): number {
    return this.producers?.size ?? 0;
  }
}
