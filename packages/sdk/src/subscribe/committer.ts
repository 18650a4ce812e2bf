import { RelayError, type Cursor } from '../protocol/index.js';

/** When the SDK stores the positions of a durable subscription (resolved `ClientOptions.commit`). */
export interface CommitPolicy {
  /** Longest time a handled message waits for its position to be committed; 0 commits after every message. */
  intervalMs: number;
  /** Handled messages that trigger a commit at once, before `intervalMs` passed. */
  maxMessages: number;
}

/** Timer functions, injected so tests control time. */
export interface CommitTimers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** What the committer needs from the rest of the SDK. */
export interface CommitterHooks {
  /** Sends a commit; resolves once the broker stored the positions. */
  send(positions: Cursor[]): Promise<void>;
  /** A commit the broker refused for good (not retried); the positions are dropped. */
  refused(error: RelayError): void;
}

/** Counters of one committer. */
export interface CommitCounters {
  /** Commits the broker acknowledged. */
  commits: number;
  /** Commits that failed and were retried or dropped. */
  commitFailures: number;
  /** Commits sent and not yet answered (at most one per committer). */
  commitsInFlight: number;
}

/** Delay before a failed commit is retried when the policy commits after every message. */
const MIN_RETRY_MS = 100;

const positionKey = (topic: string, partition: number): string => `${partition}:${topic}`;

/**
 * Batches the positions of one durable subscription: handled offsets are
 * collected per partition and sent as one `commit` at most every
 * `intervalMs`, or at once after `maxMessages` handled messages. At most one
 * commit is in flight and one more queued behind it, so a fast handler costs a
 * commit per round trip, not per message. A failed commit keeps its positions
 * pending and is retried; positions only ever move forward.
 */
export class PositionCommitter {
  /** Positions handled but not yet handed to `send`. */
  private readonly pending = new Map<string, Cursor>();
  private uncommittedMessages = 0;
  private timer: unknown;
  private inFlight: Promise<void> | undefined;
  private queued: Promise<void> | undefined;
  /**
   * Partitions forgotten while the commit in flight was out (at most one is): should it fail, their positions are
   * not put back. Those of a deleted topic would otherwise replace the position of the topic created again.
   */
  private readonly forgottenInFlight = new Set<string>();
  /** Every position of the commit in flight was forgotten ({@link forgetAll}): should it fail, none is put back. */
  private inFlightForgotten = false;
  private closed = false;

  /** @param counters - where commits and failures are counted (may be shared by many committers). */
  constructor(
    private readonly policy: CommitPolicy,
    private readonly hooks: CommitterHooks,
    readonly counters: CommitCounters = { commits: 0, commitFailures: 0, commitsInFlight: 0 },
    private readonly timers: CommitTimers = { setTimeout: (cb, ms) => setTimeout(cb, ms), clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>) },
  ) {}

  /**
   * The handler finished the message at `offset`: the partition's position
   * becomes `offset + 1`. `incarnation`: the topic's, as a broker told it when
   * the message arrived (sent with the position, so a broker whose topic was
   * deleted since stores nothing of it); absent when none was told.
   */
  handled(topic: string, partition: number, offset: number, incarnation?: number): void {
    if (this.closed) return;
    this.raise(incarnation === undefined ? { topic, partition, offset: offset + 1 } : { topic, partition, offset: offset + 1, incarnation });
    this.uncommittedMessages++;
    if (this.policy.intervalMs === 0 || this.uncommittedMessages >= this.policy.maxMessages) void this.flush();
    else this.schedule(this.policy.intervalMs);
  }

  /** Positions to store without a handled message (where a new durable subscription starts). */
  advance(positions: readonly Cursor[]): void {
    if (this.closed || positions.length === 0) return;
    for (const position of positions) this.raise(position);
    void this.flush();
  }

  /** Forgets the pending position of one partition (a group member lost it: the position is no longer its to commit). */
  forget(topic: string, partition: number): void {
    const key = positionKey(topic, partition);
    this.pending.delete(key);
    if (this.inFlight !== undefined) this.forgottenInFlight.add(key);
  }

  /**
   * Forgets every pending position, and those of the commit in flight should
   * it fail: they are of a log that is gone (an in-memory broker restarted),
   * whose offsets mean nothing in the new one.
   */
  forgetAll(): void {
    this.pending.clear();
    this.uncommittedMessages = 0;
    if (this.inFlight !== undefined) this.inFlightForgotten = true;
  }

  /** Whether positions wait to be sent or are being sent. */
  get busy(): boolean {
    return this.pending.size > 0 || this.inFlight !== undefined;
  }

  /**
   * Sends every pending position now and resolves once they were stored, or
   * the attempt failed (they then stay pending for a retry). Never rejects.
   */
  flush(): Promise<void> {
    this.cancelTimer();
    if (this.queued !== undefined) return this.queued;
    if (this.inFlight === undefined) return this.sendPending();
    const queued = this.inFlight.then(() => {
      this.queued = undefined;
      return this.sendPending();
    });
    this.queued = queued;
    return queued;
  }

  /** Flushes one last time, then stops: later handled messages are not committed. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    this.cancelTimer();
  }

  /**
   * Positions only move forward within one incarnation of their topic; a later
   * incarnation (the topic deleted and created again, offsets from 0) replaces
   * an earlier one's position whatever its offset, and is never replaced by it
   * (a failed commit of the old one put back). Unknown incarnations compare as before.
   */
  private raise(position: Cursor): void {
    const key = positionKey(position.topic, position.partition);
    const current = this.pending.get(key);
    const { incarnation } = position;
    if (current === undefined || (incarnation !== undefined && current.incarnation !== undefined && incarnation > current.incarnation)) {
      const fresh: Cursor = { topic: position.topic, partition: position.partition, offset: position.offset };
      if (incarnation !== undefined) fresh.incarnation = incarnation;
      this.pending.set(key, fresh);
      return;
    }
    if (incarnation !== undefined && current.incarnation !== undefined && incarnation < current.incarnation) return;
    if (position.offset > current.offset) current.offset = position.offset;
    if (current.incarnation === undefined && incarnation !== undefined) current.incarnation = incarnation;
  }

  private sendPending(): Promise<void> {
    if (this.pending.size === 0) return Promise.resolve();
    const positions = [...this.pending.values()];
    this.pending.clear();
    this.forgottenInFlight.clear();
    this.inFlightForgotten = false;
    this.uncommittedMessages = 0;
    this.counters.commitsInFlight++;
    const flight = this.hooks.send(positions).then(
      () => {
        this.counters.commitsInFlight--;
        this.counters.commits++;
      },
      (err: unknown) => {
        this.counters.commitsInFlight--;
        this.counters.commitFailures++;
        const error = err instanceof RelayError ? err : new RelayError('INTERNAL', String(err), { cause: err });
        if (!error.retriable && error.code !== 'TIMEOUT') {
          this.hooks.refused(error);
          return;
        }
        // Not stored (or unknown): keep them, under anything handled since, and try again later.
        for (const position of positions) {
          if (!this.inFlightForgotten && !this.forgottenInFlight.has(positionKey(position.topic, position.partition))) this.raise(position);
        }
        if (!this.closed) this.schedule(Math.max(this.policy.intervalMs, MIN_RETRY_MS));
      },
    );
    const settled = flight.then(() => {
      if (this.inFlight === settled) this.inFlight = undefined;
    });
    this.inFlight = settled;
    return settled;
  }

  private schedule(delayMs: number): void {
    if (this.timer !== undefined) return;
    this.timer = this.timers.setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, delayMs);
  }

  private cancelTimer(): void {
    if (this.timer === undefined) return;
    this.timers.clearTimeout(this.timer);
    this.timer = undefined;
  }
}
