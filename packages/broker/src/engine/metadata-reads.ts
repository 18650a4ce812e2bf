/**
 * Questions about the cluster metadata answered from an up-to-date view:
 * whether a topic or partition is missing (asked of the metadata leader,
 * which says "missing" only after a read barrier), a topic missing here
 * waited for before an operator changes it, and this broker's metadata
 * caught up to an index a durable position read or a group join was answered at.
 */
import type { EventEmitter } from 'eventemitter3';
import { RelayError } from '@relaymq/sdk/protocol';
import type { MetadataCommand, TopicMetadata } from '../core/metadata/metadata.js';
import type { NodeId } from '../core/raft/index.js';
import { isUnknownMethod } from '../net/peer-rpc.js';
import { PARTITION_COUNT_METHOD, TOPIC_MISSING_METHOD, parsePartitionCountAnswer } from './admin-commands.js';
import type { LedGroup, LeaderForwarding } from './leader-forwarding.js';
import { waitFor } from './wait-for.js';

/** What {@link MetadataReads} needs of the engine around it. */
export interface MetadataReadsContext {
  self: NodeId;
  /** The metadata group: its leader as this broker knows it and the index applied here (read at each use: made on open). */
  group: () => LedGroup & { readonly applied: number };
  /** `topic` in the metadata applied here. */
  topic: (topic: string) => TopicMetadata | undefined;
  /** Proposes a metadata entry here (this broker leads), resolving once applied. */
  propose: (command: MetadataCommand) => Promise<unknown>;
  /** Runs a metadata leader's request here or on the leader. */
  forwarding: Pick<LeaderForwarding, 'viaLeader'>;
  /** The metadata changed (`applied`), or the metadata group's leader did. */
  metaEvents: EventEmitter<{ applied: () => void; leader: () => void }>;
  /** How long a wait for this broker's metadata to catch up may take. */
  requestTimeoutMs: number;
}

/**
 * The least time between two metadata read barriers: a lookup of a missing
 * topic (rare: a subscription's, at most once a second) waits at most this,
 * and a client asking about missing topics in a loop cannot turn its reads
 * into more than ten replicated writes a second.
 */
const READ_BARRIER_SPACING_MS = 100;

/** {@link MetadataReads.leaderPartitionCount}'s questions about one topic. */
interface PartitionCountAsks {
  /** The question sent, until answered. */
  running: Promise<number | null> | undefined;
  /** The question not sent yet, which questions arriving meanwhile join. */
  next: NextPartitionCountAsk | undefined;
}

interface NextPartitionCountAsk {
  /** The highest partition asked about. */
  partition: number;
  answer: Promise<number | null>;
}

/**
 * How long a broker whose metadata is behind waits to apply the log up to a
 * durable position read or a consumer-group join the metadata leader
 * answered (a follower is usually a heartbeat behind), before it answers
 * `NOT_READY` (the client asks again).
 */
const POSITIONS_CATCH_UP_MS = 1000;

/**
 * The entry of a metadata read barrier: an empty `commit-positions`, which
 * changes nothing (an empty commit only reads, positions.ts) and which every
 * broker version parses. A command type of its own would stop the metadata
 * log's replication to older brokers during a rolling upgrade. A new object
 * each time: entries' encoded bodies are cached by object (entry-bodies.ts).
 */
function readBarrier(): MetadataCommand {
  return { type: 'commit-positions', durable: '_relaymq.read-barrier', positions: [] };
}

/**
 * The metadata questions of {@link ClusterEngine}: its lookups of missing
 * topics and partitions, the metadata leader's answers to them (with the read
 * barrier they share), and the waits for this broker's metadata to catch up.
 */
export class MetadataReads {
  /** The read barrier the metadata reads arrived in this turn share, until it is proposed (metaReadBarrier). */
  private nextReadBarrier: Promise<void> | undefined;
  /** When the last read barrier was proposed (`performance.now()`): the next waits out {@link READ_BARRIER_SPACING_MS}. */
  private lastReadBarrierAt = Number.NEGATIVE_INFINITY;
  /** Per topic, the metadata leader's partition count being asked and the next ask (see {@link leaderPartitionCount}). */
  private readonly partitionCountAsks = new Map<string, PartitionCountAsks>();
  /** Durable position reads waiting for this broker's metadata to apply an index (see metaAppliedUpTo). */
  private readonly appliedWaiters = new Set<{ readonly index: number; resolve(): void }>();
  /** A look at {@link appliedWaiters} is scheduled (see onMetaApplied). */
  private appliedLookScheduled = false;

  constructor(private readonly ctx: MetadataReadsContext) {
    ctx.metaEvents.on('applied', this.onMetaApplied);
  }

  /**
   * Whether `topic` is missing by the metadata leader's state, for a lookup
   * that must not create it: this broker's own metadata may lag (a follower
   * behind, which still knows a leader and so counts as ready) and miss a
   * topic created a moment ago.
   */
  async topicMissing(topic: string): Promise<boolean> {
    if (this.ctx.topic(topic) !== undefined) return false;
    return (await this.ctx.forwarding.viaLeader(this.ctx.group(), async () => this.topicMissingHere(topic), TOPIC_MISSING_METHOD, { topic })) === true;
  }

  /**
   * `topic` as this broker applied it, for an operator's change: one missing
   * here that the metadata leader has (this broker behind) is waited for,
   * bounded. `INVALID_TOPIC` only once the leader confirmed it missing;
   * `NOT_READY` when the leader cannot tell or this broker does not catch up.
   */
  async topicToChange(topic: string): Promise<TopicMetadata> {
    const known = this.ctx.topic(topic);
    if (known !== undefined) return known;
    const missing = await this.topicMissing(topic).catch((err: unknown) => {
      throw new RelayError('NOT_READY', `topic ${topic} is not in broker ${this.ctx.self}'s metadata and its metadata leader could not say whether it exists: ${err instanceof Error ? err.message : String(err)}`);
    });
    if (missing) throw new RelayError('INVALID_TOPIC', `no topic "${topic}"`);
    return waitFor(this.ctx.metaEvents, 'applied', () => this.ctx.topic(topic), this.ctx.requestTimeoutMs, `topic ${topic} to reach this broker's metadata`).catch(() => {
      throw new RelayError('NOT_READY', `topic ${topic} exists but broker ${this.ctx.self} has not applied it yet; retry`);
    });
  }

  /**
   * Whether `topic`'s partition `partition`, missing here, exists (the
   * metadata leader has it), then once this broker applied it, bounded; for
   * an operator's change, as {@link topicToChange}. `NOT_READY` when the
   * leader cannot tell or this broker does not catch up.
   */
  async partitionToChange(topic: string, partition: number): Promise<boolean> {
    const missing = await this.partitionMissing(topic, partition).catch((err: unknown) => {
      throw new RelayError('NOT_READY', `${topic}/${partition} is not in broker ${this.ctx.self}'s metadata and its metadata leader could not say whether it exists: ${err instanceof Error ? err.message : String(err)}`);
    });
    if (missing !== undefined) return false;
    const applied = (): true | undefined => (this.ctx.topic(topic)?.partitions[partition] !== undefined ? true : undefined);
    return waitFor(this.ctx.metaEvents, 'applied', applied, this.ctx.requestTimeoutMs, `${topic}/${partition} to reach this broker's metadata`).catch(() => {
      throw new RelayError('NOT_READY', `${topic}/${partition} exists but broker ${this.ctx.self} has not applied it yet; retry`);
    });
  }

  /** See {@link LogEngine.partitionMissing}: the leader's count, by {@link PARTITION_COUNT_METHOD}. */
  async partitionMissing(topic: string, partition: number): Promise<'topic' | 'partition' | undefined> {
    const here = this.ctx.topic(topic)?.partitions.length;
    if (here !== undefined && partition < here) return undefined;
    let partitions: number | null;
    try {
      partitions = await this.leaderPartitionCount(topic, partition);
    } catch (err) {
      if (!isUnknownMethod(err, PARTITION_COUNT_METHOD)) throw err;
      // A leader of an older version: the answer before it, for a partition of a topic known here; a topic it can tell.
      if (here !== undefined) return 'partition';
      return (await this.topicMissing(topic)) ? 'topic' : undefined;
    }
    return partitions === null ? 'topic' : partition >= partitions ? 'partition' : undefined;
  }

  /**
   * The metadata leader's count of `topic`'s partitions, as {@link partitionCountHere}
   * answers it. A "missing" comes from a request sent after this call, so it
   * is no older than the question. Questions about one topic are shared: one
   * request in flight, and the next, which every question arriving meanwhile
   * joins, asked for the highest partition among them (a leader that has it
   * has the lower ones). When the request in flight is answered, its "it
   * exists" (or its failure: `NOT_READY` either way) answers the next too;
   * only its "missing" may predate them, and the next is sent. A producer
   * sending to a partition that does not exist, however fast, costs the
   * leader about one request per round trip, not one per batch.
   */
  private leaderPartitionCount(topic: string, partition: number): Promise<number | null> {
    const asks = this.partitionCountAsks.get(topic) ?? { running: undefined, next: undefined };
    this.partitionCountAsks.set(topic, asks);
    if (asks.next !== undefined) {
      asks.next.partition = Math.max(asks.next.partition, partition);
      return asks.next.answer;
    }
    const inFlight = asks.running;
    const next: NextPartitionCountAsk = { partition, answer: Promise.resolve(null) };
    next.answer = (async () => {
      // Questions arriving in this turn join (and wait for the one in flight, if any).
      let earlier: { count: number | null } | { error: unknown } | undefined;
      try {
        earlier = inFlight === undefined ? await undefined : { count: await inFlight };
      } catch (error) {
        earlier = { error };
      }
      asks.next = undefined;
      if (earlier !== undefined) {
        if ('error' in earlier) throw earlier.error;
        if (earlier.count !== null && earlier.count > next.partition) return earlier.count;
      }
      const body = { topic, partition: next.partition };
      const sent = this.ctx.forwarding
        .viaLeader(this.ctx.group(), async () => ({ partitions: await this.partitionCountHere(topic, body.partition) }), PARTITION_COUNT_METHOD, body)
        .then(parsePartitionCountAnswer);
      asks.running = sent;
      try {
        return await sent;
      } finally {
        if (asks.running === sent) asks.running = undefined;
      }
    })();
    const settled = (): void => {
      if (asks.running === undefined && asks.next === undefined && this.partitionCountAsks.get(topic) === asks) this.partitionCountAsks.delete(topic);
    };
    void next.answer.then(settled, settled);
    asks.next = next;
    return next.answer;
  }

  /**
   * On the metadata leader: `topic`'s partition count (`null`: no such topic),
   * at once when it has `partition`, else after a read barrier, as
   * {@link topicMissingHere} says "missing".
   */
  async partitionCountHere(topic: string, partition: number): Promise<number | null> {
    if (this.ctx.group().leader !== this.ctx.self) throw new RelayError('NOT_LEADER', `broker ${this.ctx.self} does not lead the metadata`);
    const before = this.ctx.topic(topic)?.partitions.length;
    if (before !== undefined && partition < before) return before;
    await this.metaReadBarrier();
    return this.ctx.topic(topic)?.partitions.length ?? null;
  }

  /**
   * On the metadata leader: whether `topic` is missing (a broker that no
   * longer leads says so, and the request finds the leader). Its applied
   * state may be stale: deposed without having noticed, or elected and not
   * yet through the entries of earlier terms. So "missing" (which ends a
   * subscription) is said only after a read barrier; "exists" at once (a
   * stale one only makes the lookup ask again).
   */
  async topicMissingHere(topic: string): Promise<boolean> {
    if (this.ctx.group().leader !== this.ctx.self) throw new RelayError('NOT_LEADER', `broker ${this.ctx.self} does not lead the metadata`);
    if (this.ctx.topic(topic) !== undefined) return false;
    await this.metaReadBarrier();
    return this.ctx.topic(topic) === undefined;
  }

  /**
   * A read barrier on the metadata group (Raft thesis §6.4, by way of the
   * log): an entry proposed here commits only while this broker leads with
   * a quorum behind it, and is answered once applied here, after every entry
   * committed before it. The reads that arrived within one turn of the event
   * loop share one entry, proposed after the last of them came; never one
   * proposed before a read arrived (acknowledgements gathered before a read
   * prove nothing about it). Barriers are spaced by READ_BARRIER_SPACING_MS,
   * so clients asking about missing topics, however fast, add at most ten
   * metadata entries a second. Rejects with `NOT_LEADER` (the request finds the
   * leader) or `NOT_READY` (not through within the request timeout: the
   * caller asks again).
   */
  metaReadBarrier(): Promise<void> {
    this.nextReadBarrier ??= new Promise<void>((resolve) => {
      const wait = this.lastReadBarrierAt + READ_BARRIER_SPACING_MS - performance.now();
      if (wait > 0) setTimeout(resolve, wait);
      else setImmediate(resolve);
    }).then(async () => {
      this.nextReadBarrier = undefined;
      this.lastReadBarrierAt = performance.now();
      try {
        await this.ctx.propose(readBarrier());
      } catch (err) {
        if (err instanceof RelayError && err.code === 'NOT_LEADER') throw err;
        throw new RelayError('NOT_READY', `metadata read barrier of broker ${this.ctx.self} not through: ${err instanceof Error ? err.message : String(err)}`);
      }
    });
    return this.nextReadBarrier;
  }

  /**
   * Resolves once this broker's metadata applied entry `index` (where the
   * metadata leader answered `what`); rejects with `NOT_READY` when it has
   * not within {@link POSITIONS_CATCH_UP_MS}.
   */
  metaAppliedUpTo(index: number, what = 'the durable positions read'): Promise<void> {
    if (this.ctx.group().applied >= index) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        index,
        resolve: (): void => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.appliedWaiters.delete(waiter);
        reject(new RelayError('NOT_READY', `broker ${this.ctx.self} has not applied the metadata log up to ${what} (entry ${index}) yet`));
      }, POSITIONS_CATCH_UP_MS);
      this.appliedWaiters.add(waiter);
    });
  }

  /**
   * The metadata applied an entry: the waiters of {@link metaAppliedUpTo} are looked at once the apply returned
   * (`applied` is emitted as an entry applies, before the group counts it applied). One look for every entry
   * announced until then, whatever the waiters: a catch-up applies thousands in one Ready, while as many durable
   * subscribes may wait.
   */
  private readonly onMetaApplied = (): void => {
    if (this.appliedWaiters.size === 0 || this.appliedLookScheduled) return;
    this.appliedLookScheduled = true;
    setImmediate(() => {
      this.appliedLookScheduled = false;
      const applied = this.ctx.group().applied;
      for (const waiter of this.appliedWaiters) {
        if (applied < waiter.index) continue;
        this.appliedWaiters.delete(waiter);
        waiter.resolve();
      }
    });
  };
}
