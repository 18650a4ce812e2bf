import { EventEmitter } from 'eventemitter3';
import { Offset, type Client, type Consumer, type Publisher } from 'rabbitmq-stream-js-client';
import { RelayError } from '@relaymq/sdk/protocol';
import type { BackboneConnection } from './connection.js';
import { bounded } from './bounded.js';
import { BackboneMetadata, parseMetaEntry, type MetaCommand, type MetaEntry, type MetaResult } from './metadata.js';
import {
  captureState,
  CompactionPolicy,
  encodeSnapshot,
  metaRetention,
  parseSnapshotPart,
  partProperties,
  restoreState,
  SNAPSHOT_REFERENCE,
  SnapshotAssembler,
  type MetaRetention,
  type Snapshot,
  type SnapshotData,
} from './meta-snapshot.js';

type Log = (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;

/** Looks, 50 ms apart, for the resubscription in progress to return before a skipped tail is replaced (10 s at most). */
const RESUBSCRIBE_WAIT_STEPS = 200;

export interface MetaLogEvents {
  /** `entry` was applied here with `result` (by whichever gateway proposed it). */
  applied: (entry: MetaEntry, result: MetaResult) => void;
  /** The state was replaced by a snapshot (entries this gateway had not applied were deleted by retention): no `applied` for them. */
  restored: () => void;
}

export interface MetaLogOptions {
  stream: string;
  /** Replicas of the metadata stream when this gateway creates it. */
  replicationFactor: number;
  /** A proposal not read back within this long is answered `TIMEOUT` (it may still apply). */
  requestTimeoutMs: number;
  /** Unique per gateway process: makes proposal ids unique. */
  incarnation: string;
  /** Compaction (meta-snapshot.ts): a snapshot after this many entries, and the stream's retention in bytes. */
  snapshotEveryEntries: number;
  maxBytes: number;
  /** Whether this gateway is the one expected to write snapshots (others do at twice the thresholds). */
  isCoordinator: () => boolean;
  log: Log;
}

/** What this gateway's metadata tail did, for operators and tests. */
export interface MetaLogStats {
  /** Entries applied since this gateway started (not counting what its starting snapshot covered). */
  applied: number;
  /** The snapshot this gateway started from: the offset of its first part and the last entry it covers. */
  startedFrom?: { offset: number; upTo: number };
  /** Snapshots this gateway wrote and stored the pointer of. */
  snapshotsWritten: number;
  /** The newest complete snapshot read from the stream. */
  latestSnapshot?: { offset: number; upTo: number };
}

/**
 * Start barriers tried before giving up. On a stream RabbitMQ has just
 * created (its members still electing a leader), a consumer or publisher
 * declared in the first moments can stay silent for good; a barrier not read
 * back declares both again before the next try.
 */
const START_BARRIER_ATTEMPTS = 3;

interface Pending {
  resolve: (result: MetaResult) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * The metadata stream as a replicated state machine: every gateway tails it
 * and applies each entry to its {@link BackboneMetadata} in stream order; a
 * proposal is appended and resolves with its result once this gateway reads
 * it back, so it has applied everything ordered before it. A gateway starts
 * from the latest snapshot (found through RabbitMQ's offset tracking) and
 * applies only the entries after it; snapshots are written now and then and
 * the stream has a size retention (meta-snapshot.ts says why no state is
 * lost with it).
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
  private started = false;
  private snapshotting = false;
  private readonly retention: MetaRetention;
  private readonly policy: CompactionPolicy;
  private readonly assembler = new SnapshotAssembler();
  /** Snapshots this gateway wrote, by id, until read back. */
  private readonly writing = new Map<string, (snapshot: Snapshot) => void>();
  private readonly counters: MetaLogStats = { applied: 0, snapshotsWritten: 0 };

  constructor(
    private readonly connection: BackboneConnection,
    private readonly options: MetaLogOptions,
  ) {
    super();
    this.retention = metaRetention(options.maxBytes);
    this.policy = new CompactionPolicy(options.snapshotEveryEntries, this.retention.snapshotEveryBytes);
    connection.on('reconnected', (client) => void this.resubscribe(client));
  }

  /**
   * Creates the stream when missing (with its retention), loads the latest
   * snapshot, tails the stream from the entry after it, and resolves once
   * everything written before is applied here.
   */
  async start(): Promise<void> {
    const args = { 'initial-cluster-size': this.options.replicationFactor, ...this.retention.streamArguments };
    // Each step may run again on the next connection when one closes midway (a node restarting under the gateway's start).
    const retrying = <T>(step: (client: Client) => Promise<T>): Promise<T> => this.connection.retrying(this.options.requestTimeoutMs, step);
    await retrying((client) => bounded(client.createStream({ stream: this.options.stream, arguments: args }), this.options.requestTimeoutMs, 'creating the metadata stream'));
    await retrying((client) => this.loadSnapshot(client));
    await retrying((client) => this.subscribe(client));
    for (let attempt = 1; ; attempt++) {
      try {
        await retrying(() => this.propose({ type: 'barrier' }));
        break;
      } catch (err) {
        if (this.closed || attempt >= START_BARRIER_ATTEMPTS || !(err instanceof RelayError && err.code === 'TIMEOUT')) throw err;
        this.options.log('warn', 'the metadata stream did not read back the start barrier; declaring its consumer and publisher again', { stream: this.options.stream, attempt });
        await this.redeclareTail(retrying);
      }
    }
    this.started = true;
  }

  stats(): MetaLogStats {
    return { ...this.counters };
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
    // Where this tail starts: an entry, or the next one if it is a hole; past it, retention may have deleted entries (see `resumedPast`).
    const from = this.nextOffset;
    let replaced = false;
    this.consumer = await bounded(client.declareConsumer(
      {
        stream: this.options.stream,
        offset: from === 0n ? Offset.first() : Offset.offset(from),
        // The node serving this consumer went away: tail again on whatever connection is current.
        connectionClosedListener: () => this.tailLost(),
      },
      (message) => {
        if (replaced) return;
        const offset = message.offset ?? this.nextOffset;
        // A resubscription may deliver the start of a chunk again.
        if (offset < this.nextOffset) return;
        if (from > 0n && this.nextOffset === from && offset > from + 1n) {
          // More than a hole past where it resumed: retention may have deleted entries not applied here.
          replaced = true;
          void this.resumedPast(offset);
          return;
        }
        if (this.nextOffset === 0n && offset > 0n) {
          this.options.log('error', 'the metadata stream no longer holds its first entries and no snapshot covers them: topics, positions or groups may be missing here', { stream: this.options.stream, firstOffset: String(offset) });
        }
        this.nextOffset = offset + 1n;
        const part = parseSnapshotPart(message.applicationProperties, message.content);
        if (part !== undefined) {
          const snapshot = this.assembler.add(part, offset);
          if (snapshot !== undefined) this.snapshotRead(snapshot);
          return;
        }
        const entry = parseMetaEntry(message.content);
        if (entry !== undefined) this.apply(entry, offset, message.content.length);
      },
    ), this.options.requestTimeoutMs, 'subscribing to the metadata stream');
  }

  /** Replaces the tail's consumer and drops the publisher (the next proposal declares one). */
  private async redeclareTail(retrying: <T>(step: (client: Client) => Promise<T>) => Promise<T>): Promise<void> {
    const [publisher, consumer] = [this.publisher, this.consumer];
    this.publisher = undefined;
    this.consumer = undefined;
    if (publisher !== undefined) void this.connection.closePublisher(publisher);
    if (consumer !== undefined) void this.connection.closeConsumer(consumer);
    // Entries the old consumer delivers meanwhile are skipped by offset in the new one.
    await retrying((client) => this.subscribe(client));
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

  private apply(entry: MetaEntry, offset: bigint, bytes: number): void {
    const result = this.state.apply(entry.command);
    this.counters.applied++;
    this.policy.entryApplied(offset, bytes);
    this.emit('applied', entry, result);
    const pending = this.pending.get(entry.id);
    if (pending !== undefined) {
      clearTimeout(pending.timer);
      this.pending.delete(entry.id);
      pending.resolve(result);
    }
    if (this.started && !this.snapshotting && !this.closed && this.policy.due(this.options.isCoordinator())) {
      // Captured now, while applying: the state exactly as of this entry.
      void this.writeSnapshot(offset, captureState(this.state));
    }
  }

  /** A complete snapshot was read from the stream (written by any gateway). */
  private snapshotRead(snapshot: Snapshot): void {
    this.policy.snapshotRead(snapshot.upTo);
    const latest = this.counters.latestSnapshot;
    if (latest === undefined || snapshot.upTo > BigInt(latest.upTo)) this.counters.latestSnapshot = { offset: Number(snapshot.firstOffset), upTo: Number(snapshot.upTo) };
    this.writing.get(snapshot.id)?.(snapshot);
  }

  /**
   * The state as of the entry at `upTo` goes into the stream; once read back
   * complete, the stored pointer moves to it (forward only: a concurrent
   * gateway may have stored a newer one).
   */
  private async writeSnapshot(upTo: bigint, data: SnapshotData): Promise<void> {
    this.snapshotting = true;
    const id = `${this.options.incarnation}:s${++this.counter}`;
    const parts = encodeSnapshot(id, upTo, data);
    const bytes = parts.reduce((n, p) => n + p.data.length, 0);
    const since = this.policy.since();
    if (bytes > this.retention.maxSafeSnapshotBytes) {
      this.options.log('error', 'the metadata snapshot is too large for the metadata stream\'s retention; raise backbone.metaMaxBytes', { bytes, metaMaxBytes: this.options.maxBytes });
    }
    try {
      const readBack = bounded(new Promise<Snapshot>((resolve) => this.writing.set(id, resolve)), this.options.requestTimeoutMs, 'reading back the metadata snapshot');
      readBack.catch(() => undefined);
      const publisher = await this.metaPublisher();
      // One part per frame: a frame is at most 1 MiB.
      for (const part of parts) {
        await bounded(publisher.send(part.data, { applicationProperties: partProperties(part) }).then(() => publisher.flush()), this.options.requestTimeoutMs, 'writing a metadata snapshot');
      }
      const snapshot = await readBack;
      const client = await this.connection.ready();
      const stored = await this.storedPointer(client);
      if (stored === undefined || snapshot.firstOffset > stored) await this.storePointer(client, snapshot.firstOffset);
      this.counters.snapshotsWritten++;
      this.options.log('info', 'metadata snapshot written', { upTo: String(upTo), offset: String(snapshot.firstOffset), bytes, parts: parts.length, entriesSince: since.entries });
    } catch (err) {
      // The next entry tries again; until then the previous snapshot stands.
      this.options.log('warn', 'could not write a metadata snapshot', { error: (err as Error).message });
    } finally {
      this.writing.delete(id);
      this.snapshotting = false;
    }
  }

  /** The stored offset of the latest snapshot's first part; `undefined` when none was ever stored. */
  private async storedPointer(client: Client): Promise<bigint | undefined> {
    try {
      return await bounded(client.queryOffset({ reference: SNAPSHOT_REFERENCE, stream: this.options.stream }), this.options.requestTimeoutMs, 'querying the metadata snapshot pointer');
    } catch (err) {
      // The server answers "no offset" (code 19) for a reference never stored.
      if (/code 19\b/.test((err as Error).message)) return undefined;
      throw err;
    }
  }

  /** Stores the pointer (a fire-and-forget command) and waits until the server answers it. */
  private async storePointer(client: Client, offset: bigint): Promise<void> {
    const locator = (client as unknown as { locatorConnection: { storeOffset(params: { reference: string; stream: string; offsetValue: bigint }): Promise<void> } }).locatorConnection;
    await locator.storeOffset({ reference: SNAPSHOT_REFERENCE, stream: this.options.stream, offsetValue: offset });
    const deadline = Date.now() + this.options.requestTimeoutMs;
    for (;;) {
      const stored = await this.storedPointer(client);
      if (stored !== undefined && stored >= offset) return;
      if (Date.now() > deadline) throw new RelayError('TIMEOUT', 'the metadata snapshot pointer was not stored');
      await new Promise((resolve) => setTimeout(resolve, 20).unref());
    }
  }

  /** Starts this gateway's state from the latest snapshot, when one was stored; the tail then reads from the entry after it. */
  private async loadSnapshot(client: Client): Promise<void> {
    const pointer = await this.storedPointer(client);
    if (pointer === undefined) return;
    const snapshot = await this.readSnapshot(client, pointer);
    restoreState(this.state, snapshot.data);
    this.nextOffset = snapshot.upTo + 1n;
    this.counters.startedFrom = { offset: Number(snapshot.firstOffset), upTo: Number(snapshot.upTo) };
    this.snapshotRead(snapshot);
  }

  /**
   * The tail, resumed at `nextOffset`, was first delivered `first`, further
   * on than a hole explains: RabbitMQ starts a consumer whose offset
   * retention deleted at the first one it still holds, and the entries
   * between would never be applied here. The latest snapshot covers them
   * (retention keeps it, meta-snapshot.ts): the state restarts from it, and
   * the tail from the entry after it.
   */
  private async resumedPast(first: bigint): Promise<void> {
    try {
      const client = await this.connection.ready();
      const pointer = await this.storedPointer(client);
      const snapshot = pointer === undefined ? undefined : await this.readSnapshot(client, pointer);
      if (snapshot !== undefined && snapshot.upTo >= this.nextOffset) {
        this.options.log('warn', 'the metadata stream no longer holds entries this gateway has not applied: starting again from the latest snapshot', { stream: this.options.stream, nextOffset: String(this.nextOffset), firstOffset: String(first), snapshotUpTo: String(snapshot.upTo) });
        restoreState(this.state, snapshot.data);
        this.nextOffset = snapshot.upTo + 1n;
        this.snapshotRead(snapshot);
        this.emit('restored');
      } else {
        // Holes only (tracking chunks), unless no snapshot reaches the first entry held.
        if ((snapshot?.upTo ?? -1n) + 1n < first) {
          this.options.log('error', 'the metadata stream no longer holds entries this gateway has not applied and no snapshot covers them: topics, positions or groups may be missing here', { stream: this.options.stream, nextOffset: String(this.nextOffset), firstOffset: String(first) });
        }
        this.nextOffset = first;
      }
    } catch (err) {
      // Tried again by the next tail, from the same offset.
      this.options.log('warn', 'could not read the metadata snapshot after a resumed tail skipped entries', { error: (err as Error).message });
    }
    // A new tail from `nextOffset` (tailLost closes the old one), once the resubscription that declared it has returned.
    for (let i = 0; i < RESUBSCRIBE_WAIT_STEPS && this.resubscribing && !this.closed; i++) await new Promise((resolve) => setTimeout(resolve, 50).unref());
    this.tailLost();
  }

  /** The snapshot whose first part is at `pointer`, read whole. */
  private async readSnapshot(client: Client, pointer: bigint): Promise<Snapshot> {
    let found: (snapshot: Snapshot) => void = () => undefined;
    const complete = new Promise<Snapshot>((resolve) => (found = resolve));
    const assembler = new SnapshotAssembler();
    const consumer = await bounded(client.declareConsumer({ stream: this.options.stream, offset: Offset.offset(pointer) }, (message) => {
      const offset = message.offset ?? 0n;
      if (offset < pointer) return;
      const part = parseSnapshotPart(message.applicationProperties, message.content);
      const snapshot = part === undefined ? undefined : assembler.add(part, offset);
      if (snapshot !== undefined) found(snapshot);
    }), this.options.requestTimeoutMs, 'subscribing to the metadata snapshot');
    try {
      return await bounded(complete, this.options.requestTimeoutMs, `reading the metadata snapshot at offset ${pointer}`);
    } finally {
      void this.connection.closeConsumer(consumer);
    }
  }
}
