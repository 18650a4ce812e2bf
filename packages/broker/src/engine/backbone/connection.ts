import { EventEmitter } from 'eventemitter3';
import pRetry from 'p-retry';
import { connect, type Client, type Consumer, type Publisher } from 'rabbitmq-stream-js-client';
import { RelayError } from '@relaymq/sdk/protocol';
import { applyClientCompat } from './compat.js';
import type { BackboneEndpoint } from './url.js';

type Log = (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;

export interface BackboneConnectionEvents {
  /** A new client replaced one whose connection closed: consumers and publishers must be declared again on it. */
  reconnected: (client: Client) => void;
}

/** Reconnect pacing after the backbone connection is lost. */
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 2000;

/**
 * The gateway's connection to the backbone: a stream-protocol client on the
 * first endpoint that answers (in the configured order, then round-robin on
 * reconnects). When the client's locator connection closes (the node died),
 * it connects again, to the next endpoint that answers, and says so.
 */
export class BackboneConnection extends EventEmitter<BackboneConnectionEvents> {
  private current: Client | undefined;
  /** `host:port` (as configured) the current client was dialled at. */
  private currentNode: string | undefined;
  private next = 0;
  private closed = false;
  private reconnecting: Promise<Client> | undefined;
  /** Confirms awaited, per publisher (`extendedId`) and publishing id. */
  private readonly confirms = new Map<string, Map<bigint, { resolve: () => void; reject: (err: Error) => void }>>();

  constructor(
    private readonly endpoint: BackboneEndpoint,
    private readonly log: Log,
  ) {
    super();
    applyClientCompat();
  }

  /** Connects, trying each host once; rejects with `NOT_READY` naming every failure. */
  async start(): Promise<Client> {
    return this.connectAny();
  }

  /** The live client; `NOT_READY` while reconnecting. */
  client(): Client {
    if (this.current === undefined) throw new RelayError('NOT_READY', 'the backbone (RabbitMQ) is not connected; reconnecting');
    return this.current;
  }

  /** `host:port` as configured of the node the live client was dialled at (not the node's advertised address); undefined while reconnecting. */
  dialled(): string | undefined {
    return this.current === undefined ? undefined : this.currentNode;
  }

  /** The client, waiting for a reconnect in progress. */
  async ready(): Promise<Client> {
    if (this.current !== undefined) return this.current;
    if (this.reconnecting !== undefined) return this.reconnecting;
    throw new RelayError('NOT_READY', 'the backbone (RabbitMQ) is not connected');
  }

  /**
   * Runs `request` on the client, and again (with backoff) while it fails
   * because a backbone connection closed (`NOT_READY`: a node restarting, a
   * reconnect in progress), for at most `ms`. Only for requests that may run
   * twice: stream creation, reads, subscriptions that replace themselves.
   */
  async retrying<T>(ms: number, request: (client: Client) => Promise<T>): Promise<T> {
    return pRetry(async () => request(await this.ready()), {
      retries: 30,
      minTimeout: RETRY_MIN_MS,
      maxTimeout: RETRY_MAX_MS,
      maxRetryTime: ms,
      shouldRetry: ({ error }) => !this.closed && error instanceof RelayError && error.code === 'NOT_READY',
    });
  }

  /** The client's locator connection closed (its node went away): connect again, to whichever host answers. */
  lost(client: Client): void {
    if (this.closed || client !== this.current) return;
    this.current = undefined;
    void client.close().catch(() => undefined);
    this.reconnecting ??= this.reconnectLoop().finally(() => {
      this.reconnecting = undefined;
    });
    this.reconnecting.catch(() => undefined);
  }

  /**
   * Resolves once the backbone confirmed every id of `publishingIds` sent by
   * the publisher `extendedId` (a stream confirms after a quorum of its
   * replicas stored the message, or after finding it a duplicate); rejects
   * on a publish error or when `failAll` drops the publisher.
   */
  awaitConfirms(extendedId: string, publishingIds: readonly bigint[]): Promise<void> {
    let waiting = this.confirms.get(extendedId);
    if (waiting === undefined) {
      waiting = new Map();
      this.confirms.set(extendedId, waiting);
    }
    const table = waiting;
    return Promise.all(
      publishingIds.map((id) => new Promise<void>((resolve, reject) => table.set(id, { resolve, reject }))),
    ).then(() => undefined);
  }

  /** Rejects every confirm still awaited from publisher `extendedId` (its connection closed). */
  failAll(extendedId: string, err: Error): void {
    const waiting = this.confirms.get(extendedId);
    this.confirms.delete(extendedId);
    for (const [, w] of waiting ?? []) w.reject(err);
  }

  private confirmed(extendedId: string, ids: readonly bigint[]): void {
    const waiting = this.confirms.get(extendedId);
    if (waiting === undefined) return;
    for (const id of ids) {
      waiting.get(id)?.resolve();
      waiting.delete(id);
    }
  }

  private failed(extendedId: string, id: bigint, code: number): void {
    const waiting = this.confirms.get(extendedId);
    waiting?.get(id)?.reject(new RelayError('NOT_READY', `the backbone refused a message (stream protocol code ${code})`));
    waiting?.delete(id);
  }

  /**
   * Ends a consumer: unsubscribes it and forgets it (the client's
   * `Consumer.close` only releases its connection, leaving the subscription
   * delivering and the client closing it again later). A consumer of a
   * replaced client is gone with it.
   */
  async closeConsumer(consumer: Consumer): Promise<void> {
    await this.current?.closeConsumer(consumer.extendedId).catch(() => undefined);
  }

  /** Ends a publisher: deletes it on the server and forgets it (see {@link closeConsumer}). */
  async closePublisher(publisher: Publisher): Promise<void> {
    await this.current?.deletePublisher(publisher.extendedId).catch(() => undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const id of [...this.confirms.keys()]) this.failAll(id, new RelayError('SHUTTING_DOWN', 'the backbone engine is closed'));
    const client = this.current;
    this.current = undefined;
    await client?.close().catch(() => undefined);
  }

  private async reconnectLoop(): Promise<Client> {
    let delay = RETRY_MIN_MS;
    for (;;) {
      if (this.closed) throw new RelayError('SHUTTING_DOWN', 'backbone connection closed');
      try {
        const client = await this.connectAny();
        this.log('info', 'reconnected to the backbone', { host: client.getConnectionInfo().host, port: client.getConnectionInfo().port });
        this.emit('reconnected', client);
        return client;
      } catch (err) {
        this.log('warn', 'backbone unreachable; retrying', { error: (err as Error).message, retryInMs: delay });
        await new Promise((r) => setTimeout(r, delay).unref());
        delay = Math.min(delay * 2, RETRY_MAX_MS);
      }
    }
  }

  private async connectAny(): Promise<Client> {
    const { hosts, username, password, vhost } = this.endpoint;
    const errors: string[] = [];
    for (let i = 0; i < hosts.length; i++) {
      const host = hosts[(this.next + i) % hosts.length] as { host: string; port: number };
      try {
        let client: Client | undefined;
        client = await connect({
          hostname: host.host,
          port: host.port,
          username,
          password,
          vhost,
          heartbeat: 5,
          connectionName: 'relaymq-gateway',
          listeners: {
            connection_closed: () => {
              if (client !== undefined) this.lost(client);
            },
            // Every connection of the client (the pool's too) reports here; the publisher's extended id names it.
            publish_confirm: (confirm, connectionId) => this.confirmed(`${confirm.publisherId}@${connectionId}`, confirm.publishingIds),
            publish_error: (error, connectionId) => this.failed(`${error.publisherId}@${connectionId}`, error.publishingError.publishingId, error.publishingError.code),
          },
        });
        this.next = (this.next + i + 1) % hosts.length;
        if (this.closed) {
          await client.close().catch(() => undefined);
          throw new RelayError('SHUTTING_DOWN', 'backbone connection closed');
        }
        this.current = client;
        this.currentNode = `${host.host}:${host.port}`;
        return client;
      } catch (err) {
        errors.push(`${host.host}:${host.port}: ${(err as Error).message ?? String(err)}`);
      }
    }
    throw new RelayError('NOT_READY', `cannot connect to the backbone (RabbitMQ streams): ${errors.join('; ')}`);
  }
}
