import type { Encoding } from '@relaymq/sdk/protocol';

/** A message as stored in a partition log. */
export interface StoredMessage {
  offset: number;
  /** Append time, Unix ms; never decreases within a partition. */
  timestamp: number;
  key?: string;
  headers?: Record<string, string>;
  data: Uint8Array;
  encoding: Encoding;
}
