import { RelayError, type ClusterView } from '@relaymq/sdk/protocol';
import type { LogEngine } from '../engine/engine.js';
import type { BrokerObserver } from '../observability/observer.js';
import type { ResolvedBrokerOptions } from '../options.js';
import type { Authenticator } from '../security/auth.js';
import type { Fanout } from './fanout.js';
import type { SecurityCounters } from '../security/counters.js';

/** What a session needs of the socket under it; `client-listener.ts` adapts `ws` to this. */
export interface ClientSocket {
  /** Queues bytes; `onWritten` runs once they left the process (or failed). */
  send(bytes: Uint8Array, onWritten: (err?: Error) => void): void;
  /** Closes cleanly after queued data. */
  close(code: number, reason: string): void;
  /** Drops the connection at once. */
  terminate(): void;
}

/** What a session needs of the broker around it. */
export interface SessionContext {
  readonly options: ResolvedBrokerOptions;
  readonly engine: LogEngine;
  /** Routes the engine's appends to the subscriptions that deliver them (one per broker, shared by its sessions). */
  readonly fanout: Fanout;
  cluster(): ClusterView;
  now(): number;
  newId(): string;
  /** Whether the broker is draining; new work is refused. */
  draining(): boolean;
  /** Whether the broker can serve (`/readyz`): told to clients in `welcome` and `cluster` frames. */
  ready(): boolean;
  /** Checks hello tokens; undefined when the broker does not authenticate. */
  readonly authenticator: Authenticator | undefined;
  /** Security events, counted for the broker's stats. */
  readonly counters: SecurityCounters;
  /** Receives traffic and latency figures, when operations are enabled. */
  readonly observer?: BrokerObserver;
}

/** Any failure as the client sees it: a `RelayError` as is, anything else `INTERNAL`. */
export function asRelayError(err: unknown): RelayError {
  if (err instanceof RelayError) return err;
  return new RelayError('INTERNAL', 'internal broker error', { cause: err });
}

/**
 * A broker that cannot serve says so (`NOT_READY`) instead of passing on why
 * it could not (a metadata leader it never found): the client then uses
 * another broker rather than waiting on this one. A leader the refusal named
 * stays named: in a split the brokers without the metadata leader are not
 * ready, and the broker across is the client's way to the partition.
 */
export function unlessNotReady(ctx: SessionContext, error: RelayError): RelayError {
  if (error.code !== 'NO_QUORUM' && error.code !== 'TIMEOUT' && error.code !== 'NOT_LEADER') return error;
  if (ctx.draining() || ctx.ready()) return error;
  const { leader } = error.details;
  return new RelayError('NOT_READY', `broker ${ctx.options.id} is not ready (not joined, or no metadata leader known): ${error.message}`, leader === undefined ? {} : { leader });
}

/** Data bytes of `messages`, as the observer counts traffic. */
export function dataBytes(messages: ReadonlyArray<{ data: Uint8Array }>): number {
  let bytes = 0;
  for (const message of messages) bytes += message.data.length;
  return bytes;
}

/**
 * The answer to a request naming `topic`'s partition `partition`, which this
 * broker's metadata lacks (`partitionsHere`: its count here, `undefined` for
 * no topic). The metadata may lag: the engine asks the metadata leader, and
 * `INVALID_TOPIC` / `INVALID_PARTITION` (which end the client's work) are
 * said only once it confirms; one it has, or one it cannot tell of, is
 * `NOT_READY` (the SDK asks again). Called on the error path only.
 */
export async function missingRefusal(ctx: SessionContext, topic: string, partition: number, partitionsHere: number | undefined): Promise<RelayError> {
  let missing: 'topic' | 'partition' | undefined = partitionsHere === undefined ? 'topic' : 'partition';
  if (ctx.engine.partitionMissing !== undefined) {
    try {
      missing = await ctx.engine.partitionMissing(topic, partition);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      return new RelayError('NOT_READY', `${topic}/${partition} is not in broker ${ctx.options.id}'s metadata and its metadata leader could not say whether it exists: ${why}`);
    }
  }
  if (missing === 'topic') return new RelayError('INVALID_TOPIC', `topic ${topic} does not exist`);
  if (missing === 'partition') {
    const has = partitionsHere === undefined ? '' : ` has ${partitionsHere} partitions;`;
    return new RelayError('INVALID_PARTITION', `topic ${topic}${has} partition ${partition} does not exist`);
  }
  return new RelayError('NOT_READY', `${topic}/${partition} exists but broker ${ctx.options.id} has not applied it yet`);
}
