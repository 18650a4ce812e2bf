import type { DialFailure, RelayError } from './protocol/index.js';
import type { GapEvent, Message } from './subscribe/subscriber.js';

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
   * A handler threw, a payload did not decode, or the broker refused the
   * positions of a durable subscription for good. The client keeps going.
   */
  error: (error: unknown, context?: { message?: Message; durable?: string }) => void;
  /** The client is closed and will do nothing more. */
  closed: (event: { reason: RelayError }) => void;
}
