import { RelayError } from '@relaymq/sdk/protocol';
import type { PartitionLog, StoredMessage } from '../core/partition/partition.js';
import type { NodeId } from '../core/raft/index.js';
import type { PeerRpc } from '../net/peer-rpc.js';
import type { PeerTransport } from '../net/peer-transport.js';
import type { PartitionBounds } from './engine.js';
import {
  parsePartitionLeaders,
  parsePartitionLeadersResponse,
  parsePartitionRead,
  parsePartitionReadResponse,
  parsePartitionTime,
  parseTailNotice,
  type PartitionRead,
  type PartitionReadResponse,
  type TailNotice,
} from './peer-messages.js';

/** Peer method: committed messages of a partition from an offset, with its bounds. */
export const READ_METHOD = 'partition.read';
/** Peer method: the first offset of a partition stored at or after a time. */
export const TIME_METHOD = 'partition.time';
/** Peer method: the leaders of partitions as the answering replica knows them (`""` for one it does not host). */
export const LEADERS_METHOD = 'partition.leaders';
/** Peer channel: a replica tells the brokers reading from it that a partition grew. */
export const TAIL_CHANNEL = 'partition.tail';

/** A replica keeps sending tail notices to a reader this long after its last read or poll. */
export const WATCH_LEASE_MS = 10_000;
/** A reader polls each followed partition this often: renews its lease and catches a notice that was lost (a replica died, a link dropped). */
export const POLL_MS = 1_000;
/** A followed partition whose new messages no subscriber here read for this long is no longer followed. */
export const UNFOLLOW_MS = 30_000;
/** How long a metadata answer waits for replicas to name the leaders of partitions not hosted here. */
export const LEADERS_TIMEOUT_MS = 500;
/** One answer to `partition.read`: at most this many messages and bytes, whatever the reader asked. */
const READ_MAX_MESSAGES = 10_000;
const READ_MAX_BYTES = 4 * 1024 * 1024;

/** What {@link RemotePartitions} needs from the engine and the peer network. */
export interface RemotePartitionsOptions {
  self: NodeId;
  rpc: Pick<PeerRpc, 'call' | 'handle'>;
  transport: Pick<PeerTransport, 'send' | 'connectedPeers' | 'on' | 'off'>;
  /** The replicas of a partition (from the cluster metadata), or `undefined` when it does not exist. */
  replicasOf(topic: string, partition: number): readonly NodeId[] | undefined;
  /** This broker's own copy of a partition, when it hosts one: what it serves to other brokers. */
  localLog(topic: string, partition: number): PartitionLog | undefined;
  /** The partition's leader as this broker knows it (hosted partitions only): a hint for readers. */
  leaderOf(topic: string, partition: number): NodeId | undefined;
  /** A partition read from a replica has new committed messages (the engine emits `appended`). */
  onAppended(topic: string, partition: number): void;
  /** How long one read may wait for a replica before the next replica is tried. */
  readTimeoutMs: number;
  now: () => number;
  log: (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
  /** @defaultValue {@link POLL_MS} */
  pollMs?: number;
}

/** A partition this broker does not host but reads for its subscribers. */
interface Followed {
  topic: string;
  partition: number;
  /** The replica reads go to first: the leader when one is known, else the last that answered. */
  source: NodeId | undefined;
  /** Bounds as the source last reported them (raised by its tail notices). */
  start: number;
  end: number;
  /** Since when messages are known beyond what subscribers here read; `undefined` once they read. */
  unreadSinceMs: number | undefined;
  polling: boolean;
}

const key = (topic: string, partition: number): string => `${partition}:${topic}`;

/**
 * Serves every partition to this broker's subscribers, hosted here or not.
 * A broker holds replicas of only some partitions when the cluster is
 * larger than the replication factor; for the others it reads committed
 * messages from a replica over `partition.read` (the leader first, failing
 * over to the other replicas), paced by the subscriber's credit like a local
 * read. Between reads it follows the partition: the replica it reads from
 * pushes a tail notice when the partition grows, and a bounded poll renews
 * that and catches any notice lost on the way. As a replica, it answers
 * other brokers' reads and sends them those notices.
 */
export class RemotePartitions {
  private readonly followed = new Map<string, Followed>();
  /** As a replica: per partition, the brokers reading it and until when they are told of its growth. */
  private readonly watchers = new Map<string, { topic: string; partition: number; until: Map<NodeId, number> }>();
  /** Partitions that grew in this turn of the event loop: one notice each, however many batches applied. */
  private readonly grown = new Set<string>();
  private noticeScheduled = false;
  private readonly poller: ReturnType<typeof setInterval>;
  private closed = false;
  private readonly onMessage = (from: string, channel: string, payload: unknown): void => {
    if (channel !== TAIL_CHANNEL) return;
    let notice: TailNotice;
    try {
      notice = parseTailNotice(payload);
    } catch {
      return; // a malformed notice only costs a poll interval
    }
    this.noticed(from, notice);
  };

  constructor(private readonly options: RemotePartitionsOptions) {
    options.rpc.handle(READ_METHOD, async (from, body) => this.serveRead(from, parsePartitionRead(body)));
    options.rpc.handle(TIME_METHOD, async (_from, body) => {
      const { topic, partition, timeMs } = parsePartitionTime(body);
      return this.hostedLog(topic, partition).offsetForTime(timeMs);
    });
    options.rpc.handle(LEADERS_METHOD, async (_from, body) => ({
      leaders: parsePartitionLeaders(body).map(({ topic, partitions }) =>
        partitions.map((p) => (this.options.localLog(topic, p) === undefined ? '' : (this.options.leaderOf(topic, p) ?? ''))),
      ),
    }));
    options.transport.on('message', this.onMessage);
    this.poller = setInterval(() => this.poll(), options.pollMs ?? POLL_MS);
    this.poller.unref();
  }

  // ---- reading partitions hosted elsewhere ------------------------------------------

  /**
   * Committed messages of a partition hosted elsewhere, from `offset`. At the
   * known end of a followed partition it answers `[]` at once, without a
   * peer round trip: a tail notice or the poll says when there is more.
   */
  read(topic: string, partition: number, offset: number, maxCount: number, maxBytes: number): StoredMessage[] | Promise<StoredMessage[]> {
    const followed = this.followed.get(key(topic, partition));
    if (followed !== undefined) {
      followed.unreadSinceMs = undefined;
      if (offset >= followed.end) return [];
    }
    return this.fetch(topic, partition, { topic, partition, from: offset, max: maxCount, maxBytes }, true).then((r) => r.messages);
  }

  /** Like {@link read}, for a partition hosted here whose own read failed: another replica answers, and nothing is followed. */
  async readFromReplica(topic: string, partition: number, offset: number, maxCount: number, maxBytes: number): Promise<StoredMessage[]> {
    return (await this.fetch(topic, partition, { topic, partition, from: offset, max: maxCount, maxBytes }, false)).messages;
  }

  /**
   * The leader of each partition of each topic (`partitions` each), for a
   * client's metadata request: this broker's own view where it hosts a
   * replica; for the others, asked of their replicas at once (one call per
   * broker for all the topics, {@link LEADERS_TIMEOUT_MS} at most), a
   * replica naming itself preferred, else the leader last heard of (`""`
   * when none). A broker holds replicas of only some partitions when the
   * cluster is larger than the replication factor, and otherwise hears of
   * the others' leaders only from the publishes it routes: a client seeded
   * with it could not find them.
   */
  async leadersOf(topics: ReadonlyArray<{ topic: string; partitions: number }>): Promise<string[][]> {
    const leaders = topics.map(({ topic, partitions }) => Array.from({ length: partitions }, (_, p) => this.options.leaderOf(topic, p) ?? ''));
    const connected = new Set(this.options.transport.connectedPeers());
    /** Per broker, per topic asked (by its index in `topics`), the partitions it holds replicas of. */
    const asks = new Map<NodeId, Map<number, number[]>>();
    topics.forEach(({ topic, partitions }, t) => {
      for (let p = 0; p < partitions; p++) {
        if (this.options.localLog(topic, p) !== undefined) continue;
        for (const replica of this.options.replicasOf(topic, p) ?? []) {
          if (replica === this.options.self || !connected.has(replica)) continue;
          let byTopic = asks.get(replica);
          if (byTopic === undefined) asks.set(replica, (byTopic = new Map()));
          const list = byTopic.get(t);
          if (list === undefined) byTopic.set(t, [p]);
          else list.push(p);
        }
      }
    });
    const selfNamed = new Set<string>();
    await Promise.all(
      [...asks].map(async ([peer, byTopic]) => {
        const asked = [...byTopic].map(([t, partitions]) => ({ topic: (topics[t] as { topic: string }).topic, partitions }));
        let named: string[][];
        try {
          named = parsePartitionLeadersResponse(await this.options.rpc.call(peer, LEADERS_METHOD, { topics: asked }, LEADERS_TIMEOUT_MS), asked);
        } catch {
          return; // unreachable or slow: the other replicas answer, or the leader last heard of stays
        }
        [...byTopic].forEach(([t, partitions], i) => {
          partitions.forEach((p, j) => {
            const leader = (named[i] as string[])[j] as string;
            const id = `${t}:${p}`;
            if (leader === '' || selfNamed.has(id)) return;
            (leaders[t] as string[])[p] = leader;
            if (leader === peer) selfNamed.add(id);
          });
        });
      }),
    );
    return leaders;
  }

  /** Stops following and serving reads of `topic`'s partitions (it was deleted: one created again starts at 0). */
  forgetTopic(topic: string): void {
    for (const [id, followed] of this.followed) if (followed.topic === topic) this.followed.delete(id);
    for (const [id, watched] of this.watchers) if (watched.topic === topic) this.watchers.delete(id);
  }

  /** Bounds as last known (`0..0` for a partition never read). */
  bounds(topic: string, partition: number): PartitionBounds {
    const followed = this.followed.get(key(topic, partition));
    return followed === undefined ? { start: 0, end: 0 } : { start: followed.start, end: followed.end };
  }

  /** Whether `topic`/`partition` is followed: {@link bounds} are a replica's, not `0..0` for a partition never read. */
  follows(topic: string, partition: number): boolean {
    return this.followed.has(key(topic, partition));
  }

  /** Bounds as a replica reports them now; the partition is followed from then on. */
  async currentBounds(topic: string, partition: number): Promise<PartitionBounds> {
    const from = this.followed.get(key(topic, partition))?.end ?? 0;
    const { start, end } = await this.fetch(topic, partition, { topic, partition, from, max: 0, maxBytes: 0 }, true);
    return { start, end };
  }

  /** First offset stored at or after `timeMs`, as a replica answers it. */
  async offsetForTime(topic: string, partition: number, timeMs: number): Promise<number> {
    let last: unknown;
    for (const peer of this.candidates(topic, partition)) {
      try {
        const offset = await this.options.rpc.call(peer, TIME_METHOD, { topic, partition, timeMs }, this.options.readTimeoutMs);
        if (typeof offset === 'number' && Number.isSafeInteger(offset) && offset >= 0) return offset;
        last = new RelayError('PROTOCOL_ERROR', `malformed ${TIME_METHOD} answer from ${peer}`);
      } catch (err) {
        last = err;
      }
    }
    throw unreachable(topic, partition, last);
  }

  /** Partitions followed now (for tests and metrics). */
  followedCount(): number {
    return this.followed.size;
  }

  close(): void {
    this.closed = true;
    clearInterval(this.poller);
    this.options.transport.off('message', this.onMessage);
    this.followed.clear();
    this.watchers.clear();
  }

  /** Replicas to ask, in order: the followed source (the leader when known), then the others, connected ones first; never this broker. */
  private candidates(topic: string, partition: number): NodeId[] {
    const replicas = this.options.replicasOf(topic, partition);
    if (replicas === undefined) throw new RelayError('INVALID_PARTITION', `topic ${topic} has no partition ${partition}`);
    const source = this.followed.get(key(topic, partition))?.source;
    const connected = new Set(this.options.transport.connectedPeers());
    const others = replicas.filter((r) => r !== this.options.self && r !== source);
    const ordered = [...others.filter((r) => connected.has(r)), ...others.filter((r) => !connected.has(r))];
    return source !== undefined && source !== this.options.self && replicas.includes(source) ? [source, ...ordered] : ordered;
  }

  /** Asks the replicas in turn until one answers; records what it said when `follow` is set. */
  private async fetch(topic: string, partition: number, request: PartitionRead, follow: boolean): Promise<PartitionReadResponse> {
    let last: unknown;
    for (const peer of this.candidates(topic, partition)) {
      try {
        const response = parsePartitionReadResponse(await this.options.rpc.call(peer, READ_METHOD, request, this.options.readTimeoutMs));
        if (follow && !this.closed) this.learn(topic, partition, peer, response);
        return response;
      } catch (err) {
        last = err;
        this.options.log('debug', 'reading a partition from a replica failed; trying the next', { topic, partition, replica: peer, error: String(err) });
      }
    }
    throw unreachable(topic, partition, last);
  }

  /** Records a replica's answer: the source to ask next (its leader, if it knows one) and the bounds; wakes subscribers if the end rose. */
  private learn(topic: string, partition: number, peer: NodeId, response: PartitionReadResponse): void {
    const replicas = this.options.replicasOf(topic, partition) ?? [];
    const leader = response.leader;
    const source = leader !== undefined && leader !== this.options.self && replicas.includes(leader) ? leader : peer;
    const id = key(topic, partition);
    let followed = this.followed.get(id);
    if (followed === undefined) {
      followed = { topic, partition, source, start: response.start, end: response.end, unreadSinceMs: undefined, polling: false };
      this.followed.set(id, followed);
      return;
    }
    followed.source = source;
    const rose = response.end > followed.end;
    followed.start = response.start;
    // The source's word, even when lower: a lagging replica must not make every read a round trip for nothing.
    followed.end = response.end;
    if (rose) this.woke(followed);
  }

  private noticed(from: NodeId, notice: TailNotice): void {
    const followed = this.followed.get(key(notice.topic, notice.partition));
    if (followed === undefined || notice.end <= followed.end) return;
    if (!(this.options.replicasOf(notice.topic, notice.partition) ?? []).includes(from)) return;
    followed.end = notice.end;
    this.woke(followed);
  }

  private woke(followed: Followed): void {
    followed.unreadSinceMs ??= this.options.now();
    this.options.onAppended(followed.topic, followed.partition);
  }

  /** Renews every followed partition's lease and bounds; drops those whose news went unread for {@link UNFOLLOW_MS}. */
  private poll(): void {
    const now = this.options.now();
    for (const [id, followed] of this.followed) {
      if (followed.unreadSinceMs !== undefined && now - followed.unreadSinceMs > UNFOLLOW_MS) {
        this.followed.delete(id);
        continue;
      }
      if (followed.polling) continue;
      followed.polling = true;
      const { topic, partition } = followed;
      this.fetch(topic, partition, { topic, partition, from: followed.end, max: 0, maxBytes: 0 }, true)
        .catch((err: unknown) => this.options.log('debug', 'polling a partition failed', { topic, partition, error: String(err) }))
        .finally(() => {
          followed.polling = false;
        });
    }
    this.expireWatchers(now);
  }

  // ---- serving partitions hosted here ----------------------------------------------

  /** Tells the brokers reading a hosted partition that it grew (called for every applied batch; coalesced per turn). */
  localAppended(topic: string, partition: number): void {
    if (!this.watchers.has(key(topic, partition))) return;
    this.grown.add(key(topic, partition));
    if (this.noticeScheduled) return;
    this.noticeScheduled = true;
    setImmediate(() => {
      this.noticeScheduled = false;
      const now = this.options.now();
      for (const id of this.grown) {
        const watched = this.watchers.get(id);
        const log = watched === undefined ? undefined : this.options.localLog(watched.topic, watched.partition);
        if (watched === undefined || log === undefined) continue;
        const notice: TailNotice = { topic: watched.topic, partition: watched.partition, end: log.endOffset };
        for (const [peer, until] of watched.until) if (until >= now) this.options.transport.send(peer, TAIL_CHANNEL, notice);
      }
      this.grown.clear();
    });
  }

  private hostedLog(topic: string, partition: number): PartitionLog {
    const log = this.options.localLog(topic, partition);
    if (log === undefined) {
      throw new RelayError('NOT_LEADER', `broker ${this.options.self} holds no replica of ${topic}/${partition}`, { leader: this.options.leaderOf(topic, partition) ?? '' });
    }
    return log;
  }

  private async serveRead(from: NodeId, request: PartitionRead): Promise<PartitionReadResponse> {
    const log = this.hostedLog(request.topic, request.partition);
    const id = key(request.topic, request.partition);
    let watched = this.watchers.get(id);
    if (watched === undefined) {
      watched = { topic: request.topic, partition: request.partition, until: new Map() };
      this.watchers.set(id, watched);
    }
    watched.until.set(from, this.options.now() + WATCH_LEASE_MS);
    const max = Math.min(request.max, READ_MAX_MESSAGES);
    const messages = max === 0 ? [] : await log.read(request.from, max, Math.min(request.maxBytes, READ_MAX_BYTES));
    const response: PartitionReadResponse = { start: log.startOffset, end: log.endOffset, messages };
    const leader = this.options.leaderOf(request.topic, request.partition);
    if (leader !== undefined) response.leader = leader;
    return response;
  }

  private expireWatchers(now: number): void {
    for (const [id, watched] of this.watchers) {
      for (const [peer, until] of watched.until) if (until < now) watched.until.delete(peer);
      if (watched.until.size === 0) this.watchers.delete(id);
    }
  }
}

function unreachable(topic: string, partition: number, cause: unknown): RelayError {
  return new RelayError('NO_QUORUM', `no replica of ${topic}/${partition} could be read: ${String(cause)}`, { cause });
}
