import { RelayError } from '@relaymq/sdk/protocol';
import {
  createRaftNode,
  type Snapshot,
  runReadyAsync,
  type Entry,
  type Message,
  type NodeId,
  type RaftConfigOptions,
  type RaftNode,
  type Status,
} from '../core/raft/index.js';
import type { PeerTransport } from '../net/peer-transport.js';
import { childLog } from '../observability/logger.js';
import type { BrokerObserver } from '../observability/observer.js';
import type { LogFunction } from '../options.js';
import type { DurableRaftStorage } from '../storage/raft-storage.js';
import { storageRelayError } from '../storage/segments/errors.js';
import { parseRaftMessage } from './raft-wire.js';

/** Settings of one group. */
export interface RaftGroupOptions<T, R, S = never> {
  /** Unique name of the group in the cluster, e.g. `meta` or `p/orders/0`. */
  id: string;
  self: NodeId;
  voters: readonly NodeId[];
  transport: PeerTransport;
  storage: DurableRaftStorage<T, S>;
  config?: RaftConfigOptions;
  /** Index the state machine already holds (its checkpoint): applying resumes after it. @defaultValue 0 */
  applied?: number;
  /** Validates an entry payload from a peer. */
  parseData: (data: unknown) => T | undefined;
  /** Applies a committed payload; its result goes to whoever proposed it here. */
  apply: (data: T, index: number) => R;
  /** Validates a snapshot payload from a peer; groups without snapshots leave it out (snapshots are then refused). */
  parseSnapshot?: (data: unknown) => S | undefined;
  /**
   * Replaces the state machine with a leader's snapshot, durably, before the
   * Raft log records it (so a crash in between leaves the state machine
   * ahead of the log, never behind it).
   */
  installSnapshot?: (snapshot: Snapshot<S>) => Promise<void>;
  /**
   * Resolves once the state machine can take entries again, when it cannot
   * now (its own storage failed and retries): applying waits rather than
   * losing or refusing a committed entry. `undefined` when it can.
   */
  whenWritable?: () => Promise<void> | undefined;
  /** Why the state machine cannot take entries now, if it cannot: proposals are refused with it. */
  stateFailure?: () => RelayError | undefined;
  /** The role or leader changed. */
  onLeaderChange?: (leader: NodeId | null) => void;
  /** Told of fsync durations and leader changes (operations); optional. */
  observer?: Pick<BrokerObserver, 'fsync' | 'leaderChanged'>;
  log: (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
}

interface Waiter<R> {
  term: number;
  timer: ReturnType<typeof setTimeout>;
  /** Ack level `all`: resolve only once every voter holds the entry, not just a quorum. */
  onAllReplicas: boolean;
  resolve: (result: R) => void;
  reject: (error: RelayError) => void;
}

/**
 * Runs one Raft group on this broker: feeds the pure core its peer messages
 * and ticks, and honours every `Ready` through the one runner (persist and
 * fsync → send → apply → advance). Proposals resolve with their applied
 * result once committed; a proposal overwritten by another leader's entry is
 * rejected with `NOT_LEADER`, so the client retries and deduplication
 * keeps the retry from being stored twice.
 */
export class RaftGroup<T, R, S = never> {
  readonly node: RaftNode<T, S>;
  private readonly channel: string;
  private readonly waiters = new Map<number, Waiter<R>>();
  /** Committed entries acknowledged only once every voter's match index reaches them (ack `all`). */
  private awaitingAll: Array<{ index: number; resolve: () => void; timer: ReturnType<typeof setTimeout> }> = [];
  private processing = false;
  private again = false;
  private stopped = false;
  /** Why the group stopped: proposals are refused with it. */
  private stopReason: RelayError | undefined;
  private leader: NodeId | null = null;
  /** Every line of this group carries its id (`group`). */
  private readonly log: LogFunction;
  /** Index of the last entry applied (or installed by a snapshot). */
  private appliedIndex: number;
  /** A compaction waiting for the gap between two Readys. */
  private compaction: { run: () => Promise<void>; done: (err?: unknown) => void } | undefined;

  constructor(private readonly options: RaftGroupOptions<T, R, S>) {
    this.channel = `raft/${options.id}`;
    this.log = childLog(options.log, { group: options.id });
    const hard = options.storage.hardState;
    this.appliedIndex = options.applied ?? 0;
    this.node = createRaftNode<T, S>({
      id: options.self,
      storage: options.storage.reader,
      voters: options.voters,
      // The runtime may use real randomness: it only jitters election timeouts.
      random: { nextInt: (maxExclusive) => Math.floor(Math.random() * maxExclusive) },
      config: options.config,
      applied: this.appliedIndex,
    });
    if (hard.term > 0) this.log('debug', 'raft group recovered', { term: hard.term, vote: hard.vote });
    // Alone in its group (a standalone broker): nobody to wait for, lead at once.
    if (options.voters.length === 1 && options.voters[0] === options.self) {
      this.node.campaign();
      queueMicrotask(() => this.process());
    }
  }

  get id(): string {
    return this.options.id;
  }

  /** Index of the last entry the state machine applied. */
  get applied(): number {
    return this.appliedIndex;
  }

  /** The term of entry `index`, while the log still holds it. */
  termOf(index: number): number | undefined {
    return this.options.storage.reader.term(index);
  }

  /**
   * Runs `compact` (which may rewrite the Raft log) between two Readys, so it
   * never races a write; resolves once it ran.
   */
  compact(compact: () => Promise<void>): Promise<void> {
    if (this.stopReason !== undefined) return Promise.reject(this.stopReason);
    if (this.compaction !== undefined) return Promise.reject(new Error(`group ${this.options.id}: a compaction is already pending`));
    return new Promise((resolve, reject) => {
      this.compaction = { run: compact, done: (err) => (err === undefined ? resolve() : reject(err)) };
      this.process();
    });
  }

  /** The peer-transport channel of this group. */
  get channelName(): string {
    return this.channel;
  }

  isLeader(): boolean {
    return this.node.role === 'leader';
  }

  status(): Status {
    return this.node.status();
  }

  tick(): void {
    if (this.stopped) return;
    this.node.tick();
    this.process();
  }

  /** A message for this group from a peer. */
  receive(from: string, payload: unknown): void {
    if (this.stopped) return;
    const message = parseRaftMessage(payload, this.options.parseData, this.options.parseSnapshot);
    if (message === undefined || message.from !== from || message.to !== this.options.self) {
      this.log('warn', 'dropping malformed raft message', { from, term: this.node.status().term });
      return;
    }
    this.node.step(message);
    this.process();
  }

  /**
   * Proposes `data` and resolves with its applied result once committed.
   * Rejects at once with `NOT_LEADER` (with a leader hint) when this broker
   * does not lead the group, or `LIMIT_EXCEEDED` when too much is uncommitted.
   */
  propose(data: T, timeoutMs: number, onAllReplicas = false): Promise<R> {
    if (this.stopReason !== undefined) return Promise.reject(this.stopReason);
    // The log cannot be written (a full disk): refuse at once rather than time out; it retries by itself.
    const failure = this.options.storage.failure ?? this.options.stateFailure?.();
    if (failure !== undefined) return Promise.reject(failure);
    const result = this.node.propose(data);
    if (!result.ok) {
      if (result.reason === 'overloaded') return Promise.reject(new RelayError('LIMIT_EXCEEDED', `group ${this.options.id} has too much uncommitted`));
      const hint = result.leader ?? undefined;
      return Promise.reject(
        new RelayError('NOT_LEADER', `broker ${this.options.self} does not lead ${this.options.id}`, hint === undefined ? {} : { leader: hint }),
      );
    }
    const index = result.lastIndex;
    const promise = new Promise<R>((resolve, reject) => {
      // A leader cut off from its quorum cannot commit; the caller learns it in bounded time (outcome unknown).
      const timer = setTimeout(() => {
        const timedOut = new RelayError('TIMEOUT', `entry ${index} of ${this.options.id} not acknowledged within ${timeoutMs} ms`);
        if (this.waiters.get(index)?.timer === timer) {
          this.waiters.delete(index);
          reject(timedOut);
        } else if (this.awaitingAll.some((w) => w.timer === timer)) {
          this.awaitingAll = this.awaitingAll.filter((w) => w.timer !== timer);
          reject(timedOut);
        }
      }, timeoutMs);
      this.waiters.set(index, {
        term: result.term,
        timer,
        onAllReplicas,
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
    });
    this.process();
    return promise;
  }

  /** Hands leadership to `to` (graceful shutdown); false when this broker does not lead. */
  transferLeadership(to: NodeId): boolean {
    const result = this.node.transferLeadership(to);
    this.process();
    return result.ok;
  }

  stop(reason = new RelayError('SHUTTING_DOWN', `group ${this.options.id} stopped`)): void {
    this.stopReason = reason;
    this.stopped = true;
    for (const waiting of this.awaitingAll) clearTimeout(waiting.timer);
    this.awaitingAll = [];
    for (const [index, waiter] of this.waiters) {
      waiter.reject(reason);
      this.waiters.delete(index);
    }
    this.compaction?.done(reason);
    this.compaction = undefined;
  }

  /** Drains every Ready, one at a time (the runner's order must never interleave). */
  private process(): void {
    if (this.processing) {
      this.again = true;
      return;
    }
    this.processing = true;
    void (async () => {
      try {
        do {
          this.again = false;
          while (!this.stopped && (await runReadyAsync(this.node, this.io))) {
            // keep going until the core has nothing more
          }
          const compaction = this.compaction;
          if (compaction !== undefined && !this.stopped) {
            this.compaction = undefined;
            await compaction.run().then(
              () => compaction.done(),
              (err: unknown) => compaction.done(err),
            );
            this.again = true;
          }
        } while (this.again && !this.stopped);
      } catch (err) {
        // Stopping (shutdown) aborts a write being retried: nothing to report.
        if (this.stopped) return;
        // A failed write: the node cannot continue safely on this state. Stop the group loudly.
        // Publishes are then refused with a storage code; what was acknowledged is on disk already. A restart recovers.
        this.log('error', 'raft group stopped after a storage failure', { term: this.node.status().term, error: String(err) });
        this.stop(storageRelayError(err, `group ${this.options.id} stopped: its log could not be written`));
      } finally {
        this.processing = false;
      }
      this.noticeLeader();
      this.checkAllReplicas();
    })();
  }

  private readonly io = {
    storage: {
      applySnapshot: async (snapshot: Snapshot<S>): Promise<void> => {
        if (this.options.installSnapshot === undefined) throw new Error(`group ${this.options.id} cannot install snapshots`);
        await this.options.installSnapshot(snapshot);
        this.options.storage.applySnapshot(snapshot);
        this.appliedIndex = Math.max(this.appliedIndex, snapshot.meta.index);
      },
      append: (entries: readonly Entry<T>[]): void => this.options.storage.append(entries),
      setHardState: (hardState: Parameters<DurableRaftStorage<T, S>['setHardState']>[0]): void => this.options.storage.setHardState(hardState),
      sync: async (): Promise<void> => {
        const observer = this.options.observer;
        if (observer === undefined) return this.options.storage.sync();
        const started = performance.now();
        await this.options.storage.sync();
        observer.fsync((performance.now() - started) / 1000);
      },
    },
    send: (messages: readonly Message<T, S>[]): void => {
      for (const message of messages) this.options.transport.send(message.to, this.channel, message);
    },
    restore: (): void => {
      // installSnapshot already replaced the state machine, before the log recorded the snapshot.
    },
    apply: async (entries: readonly Entry<T>[]): Promise<void> => {
      const blocked = this.options.whenWritable?.();
      if (blocked !== undefined) await blocked;
      for (const entry of entries) {
        this.appliedIndex = entry.index;
        const waiter = this.waiters.get(entry.index);
        if (waiter !== undefined) this.waiters.delete(entry.index);
        if (entry.type !== 'normal') {
          waiter?.reject(new RelayError('NOT_LEADER', `entry ${entry.index} of ${this.options.id} was replaced by another leader`));
          continue;
        }
        const result = this.options.apply(entry.data, entry.index);
        if (waiter === undefined) continue;
        if (waiter.term !== entry.term) {
          waiter.reject(new RelayError('NOT_LEADER', `entry ${entry.index} of ${this.options.id} was replaced by another leader`));
        } else if (waiter.onAllReplicas) {
          this.awaitingAll.push({ index: entry.index, resolve: () => waiter.resolve(result), timer: waiter.timer });
        } else {
          waiter.resolve(result);
        }
      }
    },
  };

  /** Resolves `all` acknowledgements whose entry every voter now holds (their timeout still applies). */
  private checkAllReplicas(): void {
    if (this.awaitingAll.length === 0 || !this.isLeader()) return;
    const lowestMatch = Math.min(...this.node.status().progress.map((p) => p.match));
    this.awaitingAll = this.awaitingAll.filter((waiting) => {
      if (waiting.index > lowestMatch) return true;
      waiting.resolve();
      return false;
    });
  }

  private noticeLeader(): void {
    const leader = this.node.leader;
    if (leader === this.leader) return;
    this.leader = leader;
    const term = this.node.status().term;
    this.log('info', leader === null ? 'raft group lost its leader' : 'raft group has a new leader', { leader, term });
    this.options.observer?.leaderChanged(this.options.id, leader, term);
    this.options.onLeaderChange?.(leader);
  }
}
