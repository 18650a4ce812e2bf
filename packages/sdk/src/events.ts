import type { DialFailure, RelayError } from './protocol/index.js';
import type { GapEvent, Message } from './subscribe/subscriber.js';
import type { AssignedEvent, RevokedEvent } from './subscribe/group-membership.js';

/** What an `error` event is about. */
export interface ErrorContext {
  /** The message being handled or decoded. */
  message?: Message;
  /** Handler calls that failed, when the message was skipped after them. */
  attempts?: number;
  /** True when publishing the message to its dead-letter topic failed (it is tried again). */
  deadLetter?: boolean;
  /** The durable name whose positions the broker refused. */
  durable?: string;
  /**
   * The subscription the broker ended (its topic was deleted: code
   * `INVALID_TOPIC`). It delivers nothing more; subscribe again to go on.
   */
  subscription?: { id: number; pattern: string };
}

/** A broker the client talks to. */
export interface BrokerRef {
  id: string;
  url: string;
}

/**
 * Typed events of a client. Every state change is one of these; the client
 * never gives up or closes without saying so.
 */
export interface ClientEvents {
  /** A dial to `url` starts (attempt counts from 1 per lost connection). */
  connecting: (event: { url: string; attempt: number }) => void;
  /** The client has an active broker again (first connect, or after being disconnected). */
  connected: (event: { broker: BrokerRef }) => void;
  /** The active broker was lost and no standby was connected. */
  disconnected: (event: { broker: BrokerRef; reason: RelayError }) => void;
  /**
   * A dial failed, from the first attempt on; the next attempt follows after a
   * backoff delay. `cause` says why (refused, not found, TLS, unauthorized,
   * timeout…), with the platform's code such as `ECONNREFUSED` when it gave one.
   */
  reconnecting: (event: { url: string; attempt: number; error: RelayError; cause: DialFailure }) => void;
  /** Traffic moved from one broker to another, with no dial in between when a standby was ready. */
  failover: (event: { from: BrokerRef; to: BrokerRef; reason: RelayError }) => void;
  /** Discovery learned or forgot brokers. Seeds are never removed. */
  brokers: (event: { added: string[]; removed: string[] }) => void;
  /** Messages a subscriber needed were removed by retention. */
  gap: (event: GapEvent) => void;
  /**
   * A message was skipped after its handler's last failed attempt (see the
   * `retry` and `deadLetter` subscribe options), a dead-letter publish failed
   * (it is retried), a payload did not decode, or the broker refused the
   * positions of a durable subscription for good. The client keeps going.
   * With no listener, the error is printed with `console.error`: never swallowed.
   */
  error: (error: unknown, context?: ErrorContext) => void;
  /** A consumer-group subscription was granted partitions; their messages follow, from the group's committed position. */
  assigned: (event: AssignedEvent) => void;
  /**
   * A consumer-group subscription no longer handles partitions: released for
   * another member (`rebalance`), or taken away (`lost`, `fenced`).
   */
  revoked: (event: RevokedEvent) => void;
  /** The client is closed and will do nothing more. */
  closed: (event: { reason: RelayError }) => void;
}
