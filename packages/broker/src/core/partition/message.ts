import type { Encoding } from '@relaymq/sdk/protocol';

/**
 * A message as stored in a partition log.
 *
 * @internal Exported for tests and tools in this repository; not a stable API.
 */
export interface StoredMessage {
  offset: number;
  /** Append time, Unix ms; never decreases within a partition. */
  timestamp: number;
  key?: string;
  headers?: Record<string, string>;
  data: Uint8Array;
  encoding: Encoding;
}

/**
 * Consecutive stored messages of one partition, already encoded as the
 * elements of a delivery batch's `messages` array (`StoredMessageFrame`
 * maps, msgpack): what a unified partition serves from its stored bytes
 * (issue 12, "encode once"; storage/encoded-messages.ts).
 *
 * @internal
 */
export interface EncodedMessages {
  /** The offset of the first message (message `i` has `firstOffset + i`). */
  firstOffset: number;
  /** Messages in {@link bytes}; 0 when there was nothing to read. */
  count: number;
  /** Bytes of the messages' `data` (flow control and metrics count these). */
  dataBytes: number;
  /** The messages' maps, concatenated (no array header). */
  bytes: Uint8Array;
}
