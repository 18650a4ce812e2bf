import { EventEmitter } from 'eventemitter3';
import { Offset, type Client, type Consumer, type Publisher } from 'rabbitmq-stream-js-client';
import { RelayError, type AckLevel } from '@relaymq/sdk/protocol';
import type { AppendOutcome, ProducerBatch, StoredMessage } from '../../core/partition/partition.js';
import type { PartitionBounds } from '../engine.js';
import { waitFor } from '../wait-for.js';
import { bounded, sentAndConfirmed } from './bounded.js';
import { decodeMessage, encodeMessage, headerOptions } from './codec.js';
import type { BackboneConnection } from './connection.js';
import { publisherRef } from './naming.js';
import { TailCache } from './tail-cache.js';

export interface PartitionStreamOptions {
  stream: string;
  /** Bytes of the newest messages kept in memory for live subscribers. */
  cacheBytes: number;
  /** Recent seqs per producer whose offsets answer a republish. */
  dedupeWindow: number;
  /** An append or read not answered by the backbone within this long fails `TIMEOUT`. */
  requestTimeoutMs: number;
  /** A starting tail reads this many messages before the stream's last chunk, not the whole stream. */
  tailStartMessages: number;
  /** A republished seq the tail did not read is looked for this many offsets back before it is answered `too-old`. */
  republishLookbackMessages: number;
  now: () => number;
  log: (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
  /** New messages were read from the stream. */
  appended: () => void;
  /** Told each confirmed send's round trip, from its first message sent to the backbone's confirm, in seconds. */
  confirmed?: (seconds: number) => void;
}

/** The publisher of one relaymq producer in this stream, and the seq it sends next. */
interface ProducerPublisher {
  /** Undefined until declared, and once dropped (appends still chained on it fail `NOT_READY`). */
  publisher: Publisher | undefined;
  nextSeq: number;
  /** Appends of this producer, one after the other (pipelined batches keep their order). */
  chain: Promise<unknown>;
}

/** Messages read from the backbone by one partition stream since it started (`BackboneEngine.partitionStats`). */
export interface PartitionStreamStats {
  /** Read by the tail (a starting tail reads `tailStartMessages` plus the last chunk, whatever the stream's length). */
  tailRead: number;
  /** Read looking back for the offset of a republished seq the tail did not read. */
  lookbackRead: number;
}

/** Messages a republish's first look back reads; each further one reads twice as many, further back. */
const LOOKBACK_FIRST_STEP = 1024;

/** Producer publishers kept per stream; the least recently used is closed beyond it. */
const MAX_PUBLISHERS = 64;

/**
 * One partition stream as a gateway uses it: it tails the stream from its
 * newest `tailStartMessages` (the {@link TailCache} answers live reads,
 * bounds and append outcomes; older reads and republishes of older seqs go
 * to the backbone), appends through one deduplicating publisher per relaymq
 * producer (publisher reference from the producer id, publishing id = seq +
 * 1, RabbitMQ keeping the last id per reference with no time window), and
 * reads older messages through a short-lived consumer.
 */
export class PartitionStream {
  readonly cache: TailCache;
  readonly stats: PartitionStreamStats = { tailRead: 0, lookbackRead: 0 };
  private consumer: Consumer | undefined;
  private readonly publishers = new Map<string, ProducerPublisher>();
  private anonymous: Publisher | undefined;
  /** The last chunk's first offset as found at subscribe time: the tail is caught up once past it. */
  private caughtUp: Promise<void> | undefined;
  private closed = false;
  private settled = false;
  private resubscribing = false;
  /** The stream offset the current tail reads next. */
  private tailNext: () => bigint = () => 0n;
  /** Emits `read` after each message the tail read. */
  private readonly progress = new EventEmitter<{ read: () => void }>();

  constructor(
    private readonly connection: BackboneConnection,
    private readonly options: PartitionStreamOptions,
  ) {
    this.cache = new TailCache(options.cacheBytes, options.dedupeWindow);
  }

  /** Creates the stream with `args` and writes its header (both idempotent: racing gateways create it once). */
  static async create(connection: BackboneConnection, stream: string, args: Record<string, string | number>, timeoutMs: number): Promise<void> {
    // Both steps may run again: a connection that closes midway (a node restarting) is retried on the next one.
    await connection.retrying(timeoutMs, (client) => PartitionStream.createOn(client, connection, stream, args, timeoutMs));
  }

  private static async createOn(client: Client, connection: BackboneConnection, stream: string, args: Record<string, string | number>, timeoutMs: number): Promise<void> {
    await bounded(client.createStream({ stream, arguments: args }), timeoutMs, `creating stream ${stream}`);
    const publisher = await bounded(client.declarePublisher({ stream, publisherRef: 'relaymq-header' }), timeoutMs, `declaring a publisher on ${stream}`);
    try {
      if ((await bounded(publisher.getLastPublishingId(), timeoutMs, `querying ${stream}`)) >= 1n) return;
      const confirmed = connection.awaitConfirms(publisher.extendedId, [1n]);
      confirmed.catch(() => undefined); // as in appendInOrder: a send that throws leaves it unawaited
      await publisher.basicSend(1n, Buffer.from('relaymq partition stream'), headerOptions());
      await publisher.flush();
      await bounded(confirmed, timeoutMs, `writing the header of ${stream}`);
    } finally {
      await connection.closePublisher(publisher);
    }
  }

  /** Starts tailing; resolves once everything stored before is read (the stream's last chunk reached). */
  start(client: Promise<Client>): Promise<void> {
    this.caughtUp ??= client.then((c) => this.subscribe(c)).then(() => {
      this.settled = true;
    });
    return this.caughtUp;
  }

  /** The connection was replaced: tail again from where it stopped, declare publishers anew. */
  async restart(client: Client): Promise<void> {
    if (this.closed) return;
    this.consumer = undefined;
    this.anonymous = undefined;
    for (const [, p] of this.publishers) if (p.publisher !== undefined) this.connection.failAll(p.publisher.extendedId, new RelayError('NOT_READY', 'the backbone connection was replaced'));
    this.publishers.clear();
    if (this.caughtUp === undefined) return;
    this.tailLost(client);
    await this.caughtUp.catch(() => undefined);
  }

  bounds(): PartitionBounds {
    return { start: this.cache.startOffset, end: this.cache.endOffset };
  }

  async currentBounds(): Promise<PartitionBounds> {
    await this.ready();
    return this.bounds();
  }

  /**
   * Appends `batch` (see {@link LogEngine.append}): with `none`, sent
   * without deduplication and not awaited; otherwise through the producer's
   * publisher, answered once the backbone confirmed (a quorum of the
   * stream's replicas stored it) and this gateway read it back.
   */
  append(batch: ProducerBatch, ack: AckLevel): Promise<AppendOutcome[]> {
    const now = this.options.now();
    if (ack === 'none') return this.ready().then(() => this.sendUnconfirmed(batch, now));
    // Linked to the producer's chain before any await: pipelined batches keep the order they were handed in.
    const entry = this.producerEntry(batch.producerId);
    const run = entry.chain.then(() => this.appendInOrder(entry, batch, now));
    entry.chain = run.catch(() => undefined);
    return run;
  }

  private async sendUnconfirmed(batch: ProducerBatch, now: number): Promise<AppendOutcome[]> {
    const publisher = await this.anonymousPublisher();
    for (const m of batch.messages) await publisher.send(Buffer.from(m.data), encodeMessage(m, now));
    await publisher.flush();
    return [];
  }

  /** Messages from `offset`: from memory when held, else read from the backbone. */
  read(offset: number, maxCount: number, maxBytes: number): StoredMessage[] | Promise<StoredMessage[]> {
    const held = this.cache.read(offset, maxCount, maxBytes);
    if (held !== undefined) return held;
    return this.readFromBackbone(offset, maxCount, maxBytes);
  }

  async offsetForTime(timeMs: number): Promise<number> {
    await this.ready();
    const held = this.cache.offsetForTime(timeMs);
    if (held !== undefined) return held;
    // Older than memory holds: scan from the chunk the backbone finds for a little earlier (its clock and chunk timestamps are not ours).
    let found: number | undefined;
    await this.scan(Offset.timestamp(new Date(timeMs - 60_000)), (m) => {
      if (m.timestamp >= timeMs) found = m.offset;
      return found === undefined;
    });
    return found ?? this.cache.endOffset;
  }

  async close(): Promise<void> {
    this.closed = true;
    const consumer = this.consumer;
    this.consumer = undefined;
    if (consumer !== undefined) await this.connection.closeConsumer(consumer);
    for (const [, p] of this.publishers) if (p.publisher !== undefined) await this.connection.closePublisher(p.publisher);
    this.publishers.clear();
    if (this.anonymous !== undefined) await this.connection.closePublisher(this.anonymous);
  }

  /** Resolves once the tail has read everything stored before it started. */
  async ready(): Promise<void> {
    if (this.caughtUp === undefined) throw new RelayError('INTERNAL', `partition stream ${this.options.stream} used before start`);
    await bounded(this.caughtUp, this.options.requestTimeoutMs, `${this.options.stream} is not readable from the backbone`);
  }

  /** The stream's name. */
  get name(): string {
    return this.options.stream;
  }

  /** The tail has caught up (reads of recent offsets are answered from memory). */
  get isReady(): boolean {
    return this.settled;
  }

  private async appendInOrder(entry: ProducerPublisher, batch: ProducerBatch, now: number): Promise<AppendOutcome[]> {
    const { producerId, firstSeq, messages } = batch;
    const publisher = entry.publisher;
    if (publisher === undefined) throw new RelayError('NOT_READY', `the publisher of this producer on ${this.options.stream} was dropped; publish again`);
    if (firstSeq > entry.nextSeq) {
      // Looks like a gap, but this gateway's count may be stale (the producer published through another gateway meanwhile):
      // ask the backbone, which keeps the producer's last seq. Answering a false gap would make the SDK renumber its
      // messages onto seqs the backbone already holds, and drop them as duplicates.
      const last = await bounded(publisher.getLastPublishingId(), this.options.requestTimeoutMs, `querying the producer's last seq on ${this.options.stream}`);
      entry.nextSeq = Math.max(entry.nextSeq, Number(last));
    }
    const outcomes: AppendOutcome[] = new Array(messages.length);
    const send: number[] = [];
    for (let i = 0; i < messages.length; i++) {
      const seq = firstSeq + i;
      if (seq > entry.nextSeq) {
        for (let j = i; j < messages.length; j++) outcomes[j] = { kind: 'gap', expectedSeq: entry.nextSeq };
        break;
      }
      if (seq === entry.nextSeq) {
        send.push(i);
        entry.nextSeq++;
      }
    }
    const ids = send.map((i) => BigInt(firstSeq + i + 1));
    if (send.length > 0) {
      const confirmed = this.connection.awaitConfirms(publisher.extendedId, ids);
      const sentAt = performance.now();
      try {
        const sending = (async () => {
          for (const i of send) {
            const m = messages[i] as (typeof messages)[number];
            await publisher.basicSend(BigInt(firstSeq + i + 1), Buffer.from(m.data), encodeMessage(m, now, { id: producerId, seq: firstSeq + i }));
          }
          await publisher.flush();
        })();
        await sentAndConfirmed(sending, confirmed, this.options.requestTimeoutMs, this.options.stream, send.length);
        this.options.confirmed?.((performance.now() - sentAt) / 1000);
      } catch (err) {
        // What the backbone holds is unknown: the next append asks it again.
        this.options.log('warn', 'backbone append failed', { stream: this.options.stream, error: (err as Error).message });
        this.dropPublisher(producerId, entry, err as Error);
        throw err instanceof RelayError ? err : new RelayError('NOT_READY', `backbone publish failed: ${(err as Error).message}`);
      }
    }
    // Every seq below the next one is stored (now or before): its offset comes from the stream as read here.
    const lastSeq = firstSeq + messages.length - 1;
    const known = Math.min(lastSeq, entry.nextSeq - 1);
    if (known >= firstSeq) await this.readBack(producerId, known, send.length > 0);
    const sent = new Set(send);
    // Republished seqs stored before the tail started (or beyond the window it keeps): their offsets are looked for further back.
    const unseen: number[] = [];
    for (let i = 0; i < messages.length; i++) if (outcomes[i] === undefined && this.cache.offsetOf(producerId, firstSeq + i) === undefined) unseen.push(firstSeq + i);
    const older = unseen.length === 0 ? undefined : await this.lookBack(producerId, unseen);
    for (let i = 0; i < messages.length; i++) {
      if (outcomes[i] !== undefined) continue;
      const seq = firstSeq + i;
      const offset = this.cache.offsetOf(producerId, seq) ?? older?.get(seq);
      if (offset === undefined) outcomes[i] = { kind: 'too-old', expectedSeq: entry.nextSeq };
      else outcomes[i] = sent.has(i) ? { kind: 'stored', offset } : { kind: 'duplicate', offset };
    }
    return outcomes;
  }

  /**
   * Waits until the tail read the producer's seqs up to `known` (all stored):
   * those just sent arrive on the tail; when only republished seqs are
   * asked, they may be stored before the tail started, so it waits for the
   * tail to reach the stream's end as of now instead.
   */
  private async readBack(producerId: string, known: number, sentAny: boolean): Promise<void> {
    if (this.cache.nextSeq(producerId) > known) return;
    if (sentAny) {
      await waitFor(this.progress, 'read', () => (this.cache.nextSeq(producerId) > known ? true : undefined), this.options.requestTimeoutMs, `confirmed messages read back from ${this.options.stream}`);
      return;
    }
    const client = await this.connection.ready();
    await this.readUpTo(await this.probe(client, Offset.last()), () => this.cache.nextSeq(producerId) > known);
  }

  /**
   * Offsets of `seqs` of `producerId` that the tail did not read: the
   * stream is read backwards from where the tail's knowledge of the
   * producer starts, in ranges of growing size, at most
   * `republishLookbackMessages` offsets (or to the stream's start). Seqs
   * rise with offsets, so it stops at the first range holding an older seq.
   */
  private async lookBack(producerId: string, seqs: number[]): Promise<Map<number, number>> {
    const wanted = new Set(seqs);
    const lowest = Math.min(...seqs);
    const found = new Map<number, number>();
    let hi = this.cache.searchBelow(producerId);
    const floor = Math.max(this.cache.startOffset, hi - this.options.republishLookbackMessages);
    let below = false;
    for (let step = LOOKBACK_FIRST_STEP; hi > floor && !below && found.size < wanted.size; step *= 2) {
      const lo = Math.max(floor, hi - step);
      await this.scan(Offset.offset(BigInt(lo + 1)), (m, producer) => {
        this.stats.lookbackRead++;
        if (producer?.id === producerId) {
          if (wanted.has(producer.seq)) found.set(producer.seq, m.offset);
          if (producer.seq < lowest) below = true;
        }
        return m.offset + 1 < hi;
      }, hi);
      hi = lo;
    }
    if (found.size < wanted.size) this.options.log('info', 'republished seqs not found looking back', { stream: this.options.stream, producerId, missing: wanted.size - found.size, lookedBackTo: hi });
    return found;
  }

  /** The producer's publisher entry, created (and its declaration chained first) when missing. */
  private producerEntry(producerId: string): ProducerPublisher {
    const existing = this.publishers.get(producerId);
    if (existing !== undefined) {
      // Most recently used last.
      this.publishers.delete(producerId);
      this.publishers.set(producerId, existing);
      return existing;
    }
    const entry: ProducerPublisher = { publisher: undefined, nextSeq: 0, chain: Promise.resolve() };
    entry.chain = this.ready()
      .then(() => this.connection.ready())
      .then(async (client) => {
        const publisher = await bounded(client.declarePublisher({
          stream: this.options.stream,
          publisherRef: publisherRef(producerId),
          // Publishers of one stream share a connection and only the first one's listener is called: drop them all.
          connectionClosedListener: () => this.dropPublishers(new RelayError('NOT_READY', `the backbone connection publishing to ${this.options.stream} closed`)),
        }), this.options.requestTimeoutMs, `declaring a publisher on ${this.options.stream}`);
        entry.publisher = publisher;
        // The backbone's last publishing id for the reference is the producer's last stored seq + 1.
        entry.nextSeq = Number(await bounded(publisher.getLastPublishingId(), this.options.requestTimeoutMs, `querying the producer's last seq on ${this.options.stream}`));
      })
      .catch((err: unknown) => {
        if (this.publishers.get(producerId) === entry) this.publishers.delete(producerId);
        throw err instanceof RelayError ? err : new RelayError('NOT_READY', `cannot publish to ${this.options.stream}: ${(err as Error).message}`);
      });
    this.publishers.set(producerId, entry);
    if (this.publishers.size > MAX_PUBLISHERS) {
      const [oldestId, oldest] = this.publishers.entries().next().value as [string, ProducerPublisher];
      this.publishers.delete(oldestId);
      void oldest.chain.then(() => (oldest.publisher === undefined ? undefined : this.connection.closePublisher(oldest.publisher))).catch(() => undefined);
    }
    return entry;
  }

  private dropPublishers(err: Error): void {
    if (this.publishers.size > 0) this.options.log('warn', 'backbone publishers dropped', { stream: this.options.stream, publishers: this.publishers.size, error: err.message });
    for (const [producerId, entry] of [...this.publishers]) this.dropPublisher(producerId, entry, err);
    this.anonymous = undefined;
  }

  private dropPublisher(producerId: string, entry: ProducerPublisher, err: Error): void {
    if (this.publishers.get(producerId) === entry) this.publishers.delete(producerId);
    const publisher = entry.publisher;
    entry.publisher = undefined;
    if (publisher === undefined) return;
    this.connection.failAll(publisher.extendedId, err);
    void this.connection.closePublisher(publisher);
  }

  private async anonymousPublisher(): Promise<Publisher> {
    if (this.anonymous !== undefined && !this.anonymous.closed) return this.anonymous;
    const client = await this.connection.ready();
    this.anonymous = await bounded(client.declarePublisher({ stream: this.options.stream }), this.options.requestTimeoutMs, `declaring a publisher on ${this.options.stream}`);
    return this.anonymous;
  }

  /** Subscribes the tail from where the cache ends (near the stream's end when new), and resolves once it reached the stream's last chunk. */
  private async subscribe(client: Client): Promise<void> {
    const fresh = this.cache.endOffset === 0 && this.cache.startOffset === 0;
    // Probes are closed once the tail holds the connection they share: closing the last consumer of a connection closes it,
    // under a consumer being declared on it.
    const probes: Array<() => void> = [];
    try {
      await this.subscribeFrom(client, fresh ? await this.tailStart(client, probes) : BigInt(this.cache.endOffset + 1));
    } finally {
      for (const close of probes) close();
    }
    // The last chunk's first offset: every stream holds at least its header, so this always answers.
    await this.readUpTo(await this.probe(client, Offset.last()));
  }

  /** Declares the tail's consumer, reading from stream offset `start` (relaymq offset + 1, the header being stream offset 0). */
  private async subscribeFrom(client: Client, start: bigint): Promise<void> {
    // The stream offset the tail reads next.
    let streamNext = start;
    const from = start === 0n ? Offset.first() : Offset.offset(start);
    this.consumer = await bounded(client.declareConsumer(
      {
        stream: this.options.stream,
        offset: from,
        // The node serving this consumer went away (or the stream was deleted): tail again, on whatever connection is current.
        connectionClosedListener: () => this.tailLost(),
      },
      (message) => {
        const offset = message.offset ?? 0n;
        // A subscription starts at its offset's chunk: the messages before it in the chunk were read already (or are not wanted).
        if (offset < streamNext) return;
        streamNext = offset + 1n;
        this.stats.tailRead++;
        const decoded = decodeMessage(message, offset);
        if (decoded === undefined) this.cache.skipTo(Number(offset));
        else this.cache.add(decoded.stored, decoded.producer);
        this.wake();
      },
    ), this.options.requestTimeoutMs, `subscribing to ${this.options.stream}`);
    this.tailNext = () => streamNext;
  }

  /**
   * Where a new tail starts reading (a stream offset): `tailStartMessages`
   * before the last chunk, so that a gateway serves in a time independent
   * of the stream's length; the stream's start (0) when it holds fewer.
   * The cache learns the stream's first offset (its bounds) either way.
   */
  private async tailStart(client: Client, probes: Array<() => void>): Promise<bigint> {
    const from = (await this.probe(client, Offset.last(), probes)) - BigInt(this.options.tailStartMessages);
    if (from <= 1n) return 0n;
    const first = await this.probe(client, Offset.first(), probes);
    if (first >= from) return 0n;
    this.cache.startAt(first === 0n ? 0 : Number(first) - 1, Number(from) - 1);
    return from;
  }

  /** Resolves once the tail read the message at stream offset `last` (or past it), or `enough()` says it need not wait longer. */
  private async readUpTo(last: bigint, enough: () => boolean = () => false): Promise<void> {
    await waitFor(this.progress, 'read', () => (this.tailNext() > last || enough() ? true : undefined), this.options.requestTimeoutMs, `${this.options.stream} read up to its last chunk`);
  }

  /**
   * The tail's consumer is gone (its node died, the stream's leader moved,
   * the connection was replaced): subscribe again from where it stopped,
   * retrying with capped backoff for as long as this stream is open.
   * Readers meanwhile wait on `caughtUp` (bounded by the request timeout).
   */
  private tailLost(client?: Client): void {
    if (this.closed || this.caughtUp === undefined || this.resubscribing) return;
    this.resubscribing = true;
    const old = this.consumer;
    this.consumer = undefined;
    // Closed in case it still lives (another consumer's connection closed, not its own): one tail per stream.
    if (old !== undefined) void this.connection.closeConsumer(old);
    this.options.log('warn', 'backbone partition tail lost; subscribing again', { stream: this.options.stream, from: this.cache.endOffset });
    this.caughtUp = (async () => {
      try {
        for (let attempt = 0; ; attempt++) {
          if (this.closed) throw new RelayError('SHUTTING_DOWN', `${this.options.stream} is closed`);
          try {
            await this.subscribe(attempt === 0 && client !== undefined ? client : await this.connection.ready());
            this.options.log('info', 'backbone partition tail resubscribed', { stream: this.options.stream, from: this.cache.endOffset, attempts: attempt + 1 });
            return;
          } catch (err) {
            if (attempt % 10 === 0) this.options.log('warn', 'backbone partition tail not resubscribed yet', { stream: this.options.stream, error: (err as Error).message });
            await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** attempt, 2000)).unref());
          }
        }
      } finally {
        this.resubscribing = false;
      }
    })();
    this.caughtUp.catch(() => undefined);
  }

  /**
   * Stream offset of the first message a consumer from `offset` is
   * delivered (a chunk's first message for `Offset.last()`). The consumer
   * is closed at once, or by the caller when it passes `closers`.
   */
  private async probe(client: Client, offset: Offset, closers?: Array<() => void>): Promise<bigint> {
    let resolveFirst: (offset: bigint) => void = () => undefined;
    const first = new Promise<bigint>((resolve) => (resolveFirst = resolve));
    // Consumers of a stream share a connection, and only the listener of the one that opened it is called: this one's says the tail is lost too.
    const probe = await bounded(client.declareConsumer({ stream: this.options.stream, offset, connectionClosedListener: () => this.tailLost() }, (m) => resolveFirst(m.offset ?? 0n)), this.options.requestTimeoutMs, `subscribing to ${this.options.stream}`);
    try {
      return await bounded(first, this.options.requestTimeoutMs, `${this.options.stream} did not deliver a message`);
    } finally {
      const close = (): void => void this.connection.closeConsumer(probe);
      if (closers === undefined) close();
      else closers.push(close);
    }
  }

  private wake(): void {
    this.progress.emit('read');
    this.options.appended();
  }

  private async readFromBackbone(offset: number, maxCount: number, maxBytes: number): Promise<StoredMessage[]> {
    const out: StoredMessage[] = [];
    let bytes = 0;
    const end = this.cache.endOffset;
    if (offset >= end) return out;
    await this.scan(Offset.offset(BigInt(offset + 1)), (m) => {
      if (m.offset < offset) return true;
      if (out.length > 0 && bytes + m.data.byteLength > maxBytes) return false;
      out.push(m);
      bytes += m.data.byteLength;
      return out.length < maxCount && m.offset + 1 < end;
    });
    // Past `offset`: a hole (a segment's tracking chunk) or retention removed it; the stream's first message says which.
    // One offset skipped is a hole: retention removes whole segments, and a segment starts with its tracking chunk.
    const first = out[0];
    if (first !== undefined && first.offset > offset + 1) this.cache.retainedFrom(await this.probeFirst());
    return out;
  }

  /** Offset of the stream's first message still stored (retention deletes whole segments). */
  private async probeFirst(): Promise<number> {
    let found: number | undefined;
    await this.scan(Offset.first(), (m) => {
      found = m.offset;
      return false;
    });
    return found ?? this.cache.endOffset;
  }

  /** Reads the stream from `from` with a short-lived consumer, until `each` says stop or the message before `end` (default: the end known here) is read. */
  private async scan(from: Offset, each: (m: StoredMessage, producer?: { id: string; seq: number }) => boolean, end = this.cache.endOffset): Promise<void> {
    if (end <= this.cache.startOffset) return;
    const client = await this.connection.ready();
    let done: () => void = () => undefined;
    const finished = new Promise<void>((resolve) => (done = resolve));
    let stopped = false;
    const consumer = await bounded(client.declareConsumer({ stream: this.options.stream, offset: from, connectionClosedListener: () => this.tailLost() }, (message) => {
      if (stopped) return;
      const decoded = decodeMessage(message, message.offset ?? 0n);
      const offset = Number(message.offset ?? 0n) - 1;
      if (decoded !== undefined && !each(decoded.stored, decoded.producer)) stopped = true;
      if (stopped || offset + 1 >= end) {
        stopped = true;
        done();
      }
    }), this.options.requestTimeoutMs, `reading ${this.options.stream}`);
    try {
      await bounded(finished, this.options.requestTimeoutMs, `reading ${this.options.stream}`);
    } finally {
      void this.connection.closeConsumer(consumer);
    }
  }
}
