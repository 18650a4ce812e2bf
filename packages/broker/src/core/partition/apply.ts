import type { AppendOutcome, BatchMessage } from './batch.js';
import type { PublishCommand } from './command.js';
import type { SeqTable } from './producers.js';

/**
 * What {@link applyPublish} needs of a partition: its idempotence table and
 * where messages go. The in-memory and on-disk logs implement it, and so
 * does a leader's projection of its uncommitted tail (projection.ts).
 */
export interface ApplyTarget {
  readonly producers: SeqTable;
  /** Stores `messages` at the next offsets, without any check, and returns the first one. */
  store(messages: readonly BatchMessage[], timestampMs: number): number;
}

/**
 * Applies a publish: the one apply step of every embedded engine (the
 * in-memory engine and the replicated partition's state machine).
 * Deterministic, so every replica gets the same outcomes. With `dedupe`
 * (any ack level but `none`) each message is checked against the producer's
 * next seq: seqs already stored are answered `duplicate` (or `too-old`
 * beyond the window), a seq that skips ahead is a `gap` and so is every one
 * after it, and the rest are stored together.
 */
export function applyPublish(target: ApplyTarget, command: PublishCommand): AppendOutcome[] {
  const { producerId, firstSeq, messages, timestampMs } = command;
  const outcomes: AppendOutcome[] = [];
  if (!command.dedupe) {
    const first = target.store(messages, timestampMs);
    for (let i = 0; i < messages.length; i++) outcomes.push({ kind: 'stored', offset: first + i });
    return outcomes;
  }
  let fresh = 0;
  for (; fresh < messages.length; fresh++) {
    const check = target.producers.check(producerId, firstSeq + fresh);
    if (check.kind === 'new') break;
    outcomes.push(check);
  }
  if (fresh === messages.length) return outcomes;
  // From the first new seq on every seq is the next one: stored in one go.
  const first = target.store(fresh === 0 ? messages : messages.slice(fresh), timestampMs);
  for (let i = fresh; i < messages.length; i++) {
    const offset = first + i - fresh;
    target.producers.record(producerId, firstSeq + i, offset);
    outcomes.push({ kind: 'stored', offset });
  }
  return outcomes;
}
