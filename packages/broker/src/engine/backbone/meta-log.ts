import { EventEmitter } from 'eventemitter3';
import { Offset, type Client, type Consumer, type Publisher } from 'rabbitmq-stream-js-client';
import { RelayError } from '@relaymq/sdk/protocol';
import type { BackboneConnection } from './connection.js';
import { bounded } from './bounded.js';
import { BackboneMetadata, parseMetaEntry, type MetaCommand, type MetaEntry, type MetaResult } from './metadata.js';

export interface MetaLogEvents {
  /** `entry` was applied here with `result` (by whichever gateway proposed it). */
  applied: (entry: MetaEntry, result: MetaResult) => void;
}

export interface MetaLogOptions {
  stream: string;
  /** Replicas of the metadata stream when this gateway creates it. */
  replicationFactor: number;
  /** A proposal not read back within this long is answered `TIMEOUT` (it may still apply). */
  requestTimeoutMs: number;
  /** Unique per gateway process: makes proposal ids unique. */
  incarnation: string;
}

interface Pending {
  resolve: (result: MetaResult) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * The metadata stream as a replicated state machine: every gateway tails it
 * from its first entry and applies each entry to its {@link BackboneMetadata}
 * in stream order; a proposal is appended and resolves with its result once
 * this gateway reads it back, so it has applied everything ordered before
 * it. The stream has no retention: it is the deployment's metadata.
 */
export class MetaLog extends EventEmitter<MetaLogEvents> {
  readonly state = new BackboneMetadata();
  private consumer: Consumer | undefined;
  private publisher: Publisher | undefined;
  /** Stream offset of the next entry to apply. */
  private nextOffset = 0n;
  private counter = 0;
  private readonly pending = new Map<string, Pending>();
  private closed = false;
  private resubscribing = false;

  constructor(
    private readonly connection: BackboneConnection,
    private readonly options: MetaLogOptions,
  ) {
    super();
    connection.on('reconnected', (client) => void this.resubscribe(client));
  }

  /** Creates the stream when missing, tails it, and resolves once everything written before is applied here. */
  async start(): Promise<void> {
    const client = this.connection.client();
    await bounded(client.createStream({ stream: this.options.stream, arguments: { 'initial-cluster-size': this.options.replicationFactor } }), this.options.requestTimeoutMs, 'creating the metadata stream');
    await this.subscribe(client);
    await this.propose({ type: 'barrier' });
  }

  /** Appends `command` and resolves with its result as applied here. */
  async propose(command: MetaCommand): Promise<MetaResult> {
    if (this.closed) throw new RelayError('SHUTTING_DOWN', 'the backbone engine is closed');
    const id = `${this.options.incarnation}:${++this.counter}`;
    const entry: MetaEntry = { id, command };
    const applied = new Promise<MetaResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RelayError('TIMEOUT', `the backbone's metadata stream did not answer within ${this.options.requestTimeoutMs} ms (${command.type})`));
      }, this.options.requestTimeoutMs);
      timer.unref();
      this.pending.set(id, { resolve, reject, timer });
    });
    try {
      const publisher = await this.metaPublisher();
      await bounded(publisher.send(Buffer.from(JSON.stringify(entry))).then(() => publisher.flush()), this.options.requestTimeoutMs, 'writing to the metadata stream');
    } catch (err) {
      const pending = this.pending.get(id);
      if (pending !== undefined) {
        clearTimeout(pending.timer);
        this.pending.delete(id);
      }
      this.publisher = undefined;
      throw err instanceof RelayError ? err : new RelayError('NOT_READY', `cannot write to the backbone's metadata stream: ${(err as Error).message}`);
    }
    return applied;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new RelayError('SHUTTING_DOWN', 'the backbone engine is closed'));
    }
    this.pending.clear();
    this.removeAllListeners();
  }

  private async metaPublisher(): Promise<Publisher> {
    if (this.publisher !== undefined && !this.publisher.closed) return this.publisher;
    const client = await this.connection.ready();
    this.publisher = await bounded(client.declarePublisher({ stream: this.options.stream }), this.options.requestTimeoutMs, 'declaring a publisher on the metadata stream');
    return this.publisher;
  }

  private async subscribe(client: Client): Promise<void> {
    this.consumer = await bounded(client.declareConsumer(
      {
        stream: this.options.stream,
        offset: this.nextOffset === 0n ? Offset.first() : Offset.offset(this.nextOffset),
        // The node serving this consumer went away: tail again on whatever connection is current.
        connectionClosedListener: () => this.tailLost(),
      },
      (message) => {
        const offset = message.offset ?? this.nextOffset;
        // A resubscription may deliver the start of a chunk again.
        if (offset < this.nextOffset) return;
        this.nextOffset = offset + 1n;
        const entry = parseMetaEntry(message.content);
        if (entry !== undefined) this.apply(entry);
      },
    ), this.options.requestTimeoutMs, 'subscribing to the metadata stream');
  }

  private async resubscribe(client: Client): Promise<void> {
    this.publisher = undefined;
    this.tailLost(client);
  }

  /** The tail's consumer is gone: subscribe again from the next entry, retrying with capped backoff while open. */
  private tailLost(client?: Client): void {
    if (this.closed || this.resubscribing) return;
    this.resubscribing = true;
    const old = this.consumer;
    this.consumer = undefined;
    if (old !== undefined) void this.connection.closeConsumer(old);
    void (async () => {
      try {
        for (let attempt = 0; !this.closed; attempt++) {
          try {
            await this.subscribe(attempt === 0 && client !== undefined ? client : await this.connection.ready());
            return;
          } catch {
            await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** attempt, 2000)).unref());
          }
        }
      } finally {
        this.resubscribing = false;
      }
    })();
  }

  private apply(entry: MetaEntry): void {
    const result = this.state.apply(entry.command);
    this.emit('applied', entry, result);
    const pending = this.pending.get(entry.id);
    if (pending !== undefined) {
      clearTimeout(pending.timer);
      this.pending.delete(entry.id);
      pending.resolve(result);
    }
  }
}
