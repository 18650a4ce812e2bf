/** A message handed to a subscriber. */
export interface Message<T = unknown> {
  topic: string;
  partition: number;
  offset: number;
  /** Broker append time, Unix ms. */
  timestamp: number;
  key?: string;
  headers?: Record<string, string>;
  /** The published value: bytes as published, or the decoded msgpack value. */
  data: T;
}

/**
 * Handles one message; the next one waits until a returned promise settles.
 * A handler that throws (or rejects) is called again under the
 * subscription's failure policy (`retry`, `deadLetter`).
 */
export type MessageHandler<T = unknown> = (message: Message<T>) => void | Promise<void>;
