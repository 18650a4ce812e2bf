import type { OutgoingMessage } from '@relaymq/sdk/protocol';

/**
 * One message of a {@link ProducerBatch}, as it arrived on the wire: `data`
 * with its optional `encoding` (absent: `raw`), `key` and `headers`.
 *
 * @internal Exported for tests and tools in this repository; not a stable API.
 */
export type BatchMessage = OutgoingMessage;

/**
 * The outcome of one message of a batch.
 *
 * @internal Exported for tests and tools in this repository; not a stable API.
 */
export type AppendOutcome =
  | { kind: 'stored'; offset: number }
  | { kind: 'duplicate'; offset: number }
  | { kind: 'gap'; expectedSeq: number }
  | { kind: 'too-old'; expectedSeq: number };

/**
 * The one shape of a publish between the client session and the partition
 * log: messages from one producer with consecutive seqs (message `i` has
 * `firstSeq + i`). The session builds it from the wire batch, the engines
 * hand it on as it is, and {@link applyPublish} stores it.
 *
 * @internal Exported for tests and tools in this repository; not a stable API.
 */
export interface ProducerBatch {
  /** The producer as deduplication knows it (principal-scoped, with its incarnation). */
  producerId: string;
  /** Seq of the first message. */
  firstSeq: number;
  messages: BatchMessage[];
}
