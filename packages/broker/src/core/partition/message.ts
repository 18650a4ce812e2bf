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
