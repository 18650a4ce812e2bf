import { RelayError, type AssignmentFrame, type Cursor, type GroupCursor } from '../protocol/index.js';

/** A partition a group member was given or lost. */
export interface GroupPartitionRef {
  topic: string;
  partition: number;
}

/** Partitions granted to this client as a group member. */
export interface AssignedEvent {
  group: string;
  partitions: GroupPartitionRef[];
}

/**
 * Partitions this client no longer handles as a group member: `rebalance`
 * (it finished its in-flight message, committed and released them for
 * another member), `lost` (the group gave them away without a release: the
 * session expired, e.g. the process was paused) or `fenced` (the broker
 * refused a commit for them: the positions handled since the last commit
 * will be handled again by their new owner).
 */
export interface RevokedEvent {
  group: string;
  partitions: GroupPartitionRef[];
  reason: 'rebalance' | 'lost' | 'fenced';
}

/** What a membership needs from its subscription and the client. */
export interface MembershipHooks {
  /** Sends a group request over the active connection; rejects when none is open or the broker refuses. */
  request(frame: { type: 'group-commit'; group: string; member: string; positions: GroupCursor[]; release?: boolean; leave?: boolean } | { type: 'group-heartbeat'; group: string; member: string }): Promise<void>;
  /** Drops queued messages of a partition and forgets its pending position. */
  dropPartition(topic: string, partition: number): void;
  /** A partition was granted from `offset`: delivery restarts there. */
  startPartition(topic: string, partition: number, offset: number): void;
  /**
   * A partition held in a log that is gone (see {@link GroupMembership.logLost})
   * was granted again in the new one from `firstAvailableOffset`: raise a `gap`
   * event with `reset: true` (the member expected `expectedOffset` of the old log).
   */
  reset?(topic: string, partition: number, expectedOffset: number, firstAvailableOffset: number): void;
  /** Resolves once no handler runs for the partition. */
  idle(topic: string, partition: number): Promise<void>;
  /** The group no longer knows the member: subscribe again (a new join). */
  rejoin(): void;
  assigned(event: AssignedEvent): void;
  revoked(event: RevokedEvent): void;
  /**
   * Heartbeats keep failing through a broker that is up but cannot reach the
   * coordinator (cut off from its peers): move the client's traffic to
   * another broker, as a failover does, so the member rejoins there before
   * its session expires; a no-op when there is none, or when the client
   * changed broker less than `settledMs` (a heartbeat interval) ago.
   */
  moveAway?(reason: RelayError, settledMs: number): void;
}

/** Heartbeat failures after which another broker may well answer (a closed connection fails over by itself). */
const MOVE_ON: ReadonlySet<string> = new Set(['TIMEOUT', 'NOT_READY', 'NO_QUORUM', 'NOT_LEADER', 'SHUTTING_DOWN']);

/**
 * When failing heartbeats move the member. An ordinary metadata election (a
 * few hundred ms) fails or slows the heartbeats sent during it on every
 * broker alike, and the new coordinator restarts every member's session
 * clock, so one failure is no reason to leave: moving then would cycle the
 * active connection, publishes included, of every member at once. Two
 * failures in a row, one interval apart, have outlasted an election and put
 * the session at risk. A heartbeat fails when refused with a code of
 * {@link MOVE_ON} or left unanswered for a quarter interval (the request
 * timeout may be as long as the session; a later answer still renews the
 * lease and ends the streak). The second failure comes two intervals (refused)
 * to 2.25 intervals (unanswered) after the last acknowledged heartbeat was
 * sent: at least three quarters of an interval before the coordinator may
 * expire the member, for the rejoin through the new broker.
 *
 * Why a quarter, on a slow cluster (every broker's metadata commits slow:
 * fsync, load, an election). I = interval, hb0 the last acknowledged, hb1 sent
 * at I, hb2 at 2I. hb1 counts at 1.25I if unanswered, but its answer, when it
 * comes, ends the streak; hb2 counts at 2.25I. So a move needs hb1 unanswered
 * for 1.25I, not 0.25I: heartbeats answered within 1.25I (1.25 s at a 3 s
 * session) never move anyone, whatever their latency (tested). Half an
 * interval would tolerate 1.5I but move at 2.5I, leaving half an interval
 * for the close and the join through the new broker (itself a metadata commit:
 * ~0.4I seen at a 3 s session on a loaded machine), too tight before expiry
 * at 3I. Slower than 1.25I everywhere, a move happens, and BrokerPool.moveOff
 * then bounds the churn (not back to a broker it left for ten intervals).
 */
const FAILURES_TO_MOVE = 2;
/** A heartbeat unanswered for this fraction of the heartbeat interval has failed (see {@link FAILURES_TO_MOVE}). */
const UNANSWERED_FRACTION = 0.25;

/** Delay before a failed release is sent again. */
const RELEASE_RETRY_MS = 200;

const partitionKey = (topic: string, partition: number): string => `${partition}:${topic}`;

/**
 * The client side of one consumer-group member: which partitions it owns
 * (with their epochs), the position after the last message handled in each,
 * the release of partitions the coordinator revokes (after their in-flight
 * handler), heartbeats, and the lease that stops handling when heartbeats
 * stopped being acknowledged for a session timeout (the coordinator may have
 * given the partitions to another member meanwhile).
 */
export class GroupMembership {
  readonly member: string;
  private readonly owned = new Map<string, { topic: string; partition: number; epoch: number }>();
  /** Next offset to commit per owned partition: after the last handled message, or where the grant started. */
  private readonly handledNext = new Map<string, number>();
  private readonly releasing = new Set<string>();
  /** The last epoch released per partition: a grant under it or an older one is stale. */
  private readonly releasedEpochs = new Map<string, number>();
  /** Partitions taken only to release them (revoked before their grant was seen): the app never heard of them. */
  private readonly unannounced = new Set<string>();
  /**
   * Partitions held when their log was lost ({@link logLost}), with the offset
   * expected next there: their next grant reports the reset. At most one entry
   * per partition of the group's topics.
   */
  private readonly lostLogPositions = new Map<string, number>();
  private leaseUntilMs = 0;
  private leaseWaiters: Array<() => void> = [];
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  /** Heartbeats failed in a row since the last one acknowledged (or the join, or the last move): see {@link FAILURES_TO_MOVE}. */
  private failedInARow = 0;
  /** Joins (subscribes) refused with a code of {@link MOVE_ON} in a row since the last one confirmed: see {@link joinRefused}. */
  private refusedJoins = 0;
  /** Timers of heartbeats in flight that judge them unanswered. */
  private readonly unansweredTimers = new Set<ReturnType<typeof setTimeout>>();
  private ended = false;

  constructor(
    readonly group: string,
    readonly sessionTimeoutMs: number,
    private readonly hooks: MembershipHooks,
    private readonly now: () => number = () => Date.now(),
  ) {
    this.member = `${now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
  }

  /** Heartbeats every third of the session timeout while the membership lasts. */
  start(): void {
    this.heartbeatTimer ??= setInterval(() => void this.heartbeat(), this.heartbeatIntervalMs());
  }

  private heartbeatIntervalMs(): number {
    return Math.max(20, Math.floor(this.sessionTimeoutMs / 3));
  }

  /**
   * The epoch of the grant under which this partition's messages may be
   * handled now, or `undefined` (not owned, or being released).
   */
  grantOf(topic: string, partition: number): number | undefined {
    const key = partitionKey(topic, partition);
    return this.releasing.has(key) ? undefined : this.owned.get(key)?.epoch;
  }

  /**
   * Whether a message of this partition may be handled now; with `epoch`,
   * only under that grant (a message received under an earlier grant went
   * with it: the grant since starts where the group's position says).
   */
  owns(topic: string, partition: number, epoch?: number): boolean {
    const current = this.grantOf(topic, partition);
    return current !== undefined && (epoch === undefined || epoch === current);
  }

  /** The join (a subscribe) sent at `sentAtMs` was confirmed: it counts as a heartbeat. */
  joined(sentAtMs: number): void {
    this.renewLease(sentAtMs);
    this.failedInARow = 0; // the coordinator answered
    this.refusedJoins = 0;
  }

  /**
   * The join (a subscribe) was refused with `reason` and is asked again of the
   * same broker. Refused twice in a row with a code of {@link MOVE_ON} (its
   * metadata stays behind the coordinator's: `NOT_READY` once it waited for
   * the join to apply there), that broker is moved off, as after failing
   * heartbeats: staying would ask it for good, while every join renews the
   * member's session and the coordinator keeps the partitions it granted the
   * member, delivered by nobody.
   */
  joinRefused(reason: RelayError): void {
    if (this.ended || !MOVE_ON.has(reason.code)) return;
    if (++this.refusedJoins < FAILURES_TO_MOVE) return;
    this.refusedJoins = 0;
    this.hooks.moveAway?.(reason, this.heartbeatIntervalMs());
  }

  /** Whether {@link leaseValid} would resolve at once: the lease runs (or the membership ended). No promise, for the per-message path. */
  leaseHeld(): boolean {
    return this.ended || this.now() < this.leaseUntilMs;
  }

  /** Resolves once the lease is valid (heartbeats acknowledged within the session timeout) or the membership ended. */
  async leaseValid(): Promise<void> {
    while (!this.ended && this.now() >= this.leaseUntilMs) {
      await new Promise<void>((resolve) => {
        this.leaseWaiters.push(resolve);
        // Bounded: checked again at the next heartbeat interval at most.
        setTimeout(resolve, Math.max(20, Math.floor(this.sessionTimeoutMs / 3)));
      });
    }
  }

  /**
   * The broker names another log than the one this member's grants came from
   * (an in-memory broker restarted: its logs, groups and epoch counters started
   * over). Called before anything is sent to it. The group that granted them is
   * gone, so they are lost (a `revoked` event, reason `lost`; nothing handled
   * in the old log is committed to the new one) and their epochs mean nothing
   * any more: a grant in the new log is a new one under whatever epoch, not
   * one held (the same epoch), older than one held, or released already. A
   * partition granted again reports the reset (see {@link MembershipHooks.reset}).
   * Released epochs are forgotten only here, never on a rejoin to the same log:
   * there a release answered before the rejoin must stay released.
   */
  logLost(): void {
    if (this.ended) return;
    const lost: GroupPartitionRef[] = [];
    for (const [key, owned] of [...this.owned]) {
      if (!this.unannounced.has(key)) {
        lost.push({ topic: owned.topic, partition: owned.partition });
        this.lostLogPositions.set(key, this.handledNext.get(key) ?? 0);
      }
      this.lose(key, owned);
    }
    this.releasedEpochs.clear();
    if (lost.length > 0) this.hooks.revoked({ group: this.group, partitions: lost, reason: 'lost' });
  }

  /** A message was handled: its position is the partition's next commit. */
  handled(topic: string, partition: number, offset: number): boolean {
    const key = partitionKey(topic, partition);
    if (!this.owned.has(key)) return false;
    this.handledNext.set(key, offset + 1);
    return true;
  }

  /** Attaches the epoch of each owned partition to positions to commit; drops positions of partitions no longer owned. */
  fence(positions: readonly Cursor[]): GroupCursor[] {
    const out: GroupCursor[] = [];
    for (const c of positions) {
      const owned = this.owned.get(partitionKey(c.topic, c.partition));
      // The epoch fences it (a topic deleted and created again is granted under a new one); no incarnation.
      if (owned !== undefined) out.push({ topic: c.topic, partition: c.partition, offset: c.offset, epoch: owned.epoch });
    }
    return out;
  }

  /** The broker refused positions as `FENCED`: the member lost those partitions (or the group forgot it). */
  fenced(positions: readonly GroupCursor[]): void {
    const lost: GroupPartitionRef[] = [];
    for (const c of positions) {
      const key = partitionKey(c.topic, c.partition);
      const owned = this.owned.get(key);
      if (owned === undefined || owned.epoch !== c.epoch) continue;
      const announced = !this.unannounced.has(key);
      this.lose(key, owned);
      if (announced) lost.push({ topic: c.topic, partition: c.partition });
    }
    if (lost.length > 0) this.hooks.revoked({ group: this.group, partitions: lost, reason: 'fenced' });
  }

  /** The broker's view of the member's assignment. */
  onAssignment(frame: AssignmentFrame): void {
    if (this.ended) return;
    const seen = new Set<string>();
    const granted: GroupPartitionRef[] = [];
    const lostUnseen: GroupPartitionRef[] = [];
    for (const entry of frame.partitions) {
      const key = partitionKey(entry.topic, entry.partition);
      seen.add(key);
      const owned = this.owned.get(key);
      if (entry.revoking === true) {
        if (owned !== undefined && owned.epoch === entry.epoch) {
          if (!this.releasing.has(key)) void this.release(key, owned);
          continue;
        }
        // Granted and revoked before this member saw the grant (its broker applied both before its frame): nothing
        // was handled under that epoch, so it is released at once at the position the broker names. Ignoring it
        // would leave it the member's in the table, delivered to nobody, for good.
        if (entry.offset === undefined || entry.epoch <= (this.releasedEpochs.get(key) ?? -1)) continue;
        if (owned !== undefined && owned.epoch > entry.epoch) continue;
        if (owned !== undefined) {
          // An older grant it still held (or was releasing) was taken meanwhile.
          const announced = !this.unannounced.has(key);
          this.lose(key, owned);
          if (announced) lostUnseen.push({ topic: owned.topic, partition: owned.partition });
        }
        this.lostLogPositions.delete(key); // another member handles it from here
        const unseen = { topic: entry.topic, partition: entry.partition, epoch: entry.epoch };
        this.owned.set(key, unseen);
        this.handledNext.set(key, entry.offset);
        this.unannounced.add(key);
        void this.release(key, unseen);
        continue;
      }
      // The same grant seen again (resubscribed on another broker): keep going; the broker resends from the
      // committed position and what was already received is dropped as a duplicate, so nothing is handled twice.
      // While releasing it, the revocation may have been withdrawn (the member to get it left): the release still
      // goes through (the coordinator honours it) and a grant under a new epoch follows; handling it meanwhile
      // would only hand those messages out twice.
      if (owned !== undefined && owned.epoch === entry.epoch) continue;
      // A grant under an epoch already released, from a broker that applied the release later than it answered.
      if (entry.epoch <= (this.releasedEpochs.get(key) ?? -1)) continue;
      // An older grant than the one held is taken too (started over from its position): a broker shows a member it
      // subscribed to anew no table older than its join (it waits to apply the coordinator's answer), so that grant
      // is the group's current one, under an epoch counter that started over (an in-memory broker restarted and
      // forgot its groups: ignoring it would leave the partition the member's, handled by nobody, for good).
      if (entry.offset !== undefined || owned === undefined || owned.epoch !== entry.epoch) {
        // A grant (or a grant again): start over from where the broker says.
        if (owned !== undefined) this.hooks.dropPartition(entry.topic, entry.partition);
        this.releasing.delete(key);
        this.unannounced.delete(key);
        const offset = entry.offset ?? this.handledNext.get(key) ?? 0;
        this.owned.set(key, { topic: entry.topic, partition: entry.partition, epoch: entry.epoch });
        this.handledNext.set(key, offset);
        const expected = this.lostLogPositions.get(key);
        if (expected !== undefined) {
          this.lostLogPositions.delete(key);
          this.hooks.reset?.(entry.topic, entry.partition, expected, offset);
        }
        this.hooks.startPartition(entry.topic, entry.partition, offset);
        granted.push({ topic: entry.topic, partition: entry.partition });
      }
    }
    const lost: GroupPartitionRef[] = lostUnseen;
    for (const [key, owned] of [...this.owned]) {
      if (seen.has(key)) continue;
      // Gone without a release: expired, or taken while we were cut off.
      if (this.releasing.has(key)) continue;
      this.lose(key, owned);
      lost.push({ topic: owned.topic, partition: owned.partition });
    }
    if (lost.length > 0) this.hooks.revoked({ group: this.group, partitions: lost, reason: 'lost' });
    if (granted.length > 0) this.hooks.assigned({ group: this.group, partitions: granted });
  }

  /**
   * Leaves the group (unsubscribe, close): once no handler runs, commits the
   * final positions and leaves in one request, so the partitions move at once.
   */
  async leave(): Promise<void> {
    if (this.ended) return;
    this.stop();
    const owned = [...this.owned.values()];
    await Promise.all(owned.map((o) => this.hooks.idle(o.topic, o.partition)));
    const positions = owned.map((o) => ({ topic: o.topic, partition: o.partition, epoch: o.epoch, offset: this.handledNext.get(partitionKey(o.topic, o.partition)) ?? 0 }));
    await this.hooks.request({ type: 'group-commit', group: this.group, member: this.member, positions, leave: true }).catch(() => {
      // Not stored: the coordinator expires the member after the session timeout instead.
    });
  }

  /**
   * Leaves the group for a join its caller gave up on (the subscribe timed
   * out, maybe after the coordinator ordered the join and granted the member
   * partitions, which it would keep until the session expired, delivered by
   * nobody): stops, and asks the coordinator to forget the member. Nothing was
   * handled (no grant is taken before the join is confirmed), so no position
   * goes with it. Best effort, and safe to repeat: a join still on its way may
   * be ordered after this leave, and is left again once answered (see
   * `Subscriber`).
   */
  async abandon(): Promise<void> {
    this.stop();
    await this.hooks.request({ type: 'group-commit', group: this.group, member: this.member, positions: [], leave: true }).catch(() => {
      // Not stored: the coordinator expires the member after the session timeout instead.
    });
  }

  /** Stops heartbeats without leaving (the client is closing for good after a failure). */
  stop(): void {
    this.ended = true;
    clearInterval(this.heartbeatTimer);
    for (const timer of this.unansweredTimers) clearTimeout(timer);
    this.unansweredTimers.clear();
    for (const waiter of this.leaseWaiters.splice(0)) waiter();
  }

  private async heartbeat(): Promise<void> {
    if (this.ended) return;
    const sentAt = this.now();
    // Each heartbeat counts once, by a quarter interval after it was sent (refused, or unanswered by then), and a
    // move only comes when one counts: every heartbeat in flight then has counted already, so those that fail as
    // the move closes their connection cannot move the client again.
    let failed = false;
    const fail = (reason: RelayError): void => {
      if (failed || this.ended) return;
      failed = true;
      if (++this.failedInARow < FAILURES_TO_MOVE) return;
      this.failedInARow = 0;
      this.hooks.moveAway?.(reason, this.heartbeatIntervalMs());
    };
    const unansweredMs = Math.floor(this.heartbeatIntervalMs() * UNANSWERED_FRACTION);
    const unanswered = setTimeout(() => {
      this.unansweredTimers.delete(unanswered);
      fail(new RelayError('TIMEOUT', `group-heartbeat unanswered after ${unansweredMs} ms`));
    }, unansweredMs);
    this.unansweredTimers.add(unanswered);
    try {
      await this.hooks.request({ type: 'group-heartbeat', group: this.group, member: this.member });
      this.renewLease(sentAt);
      this.failedInARow = 0;
    } catch (err) {
      if (!(err instanceof RelayError) || this.ended) return;
      if (err.code !== 'FENCED') {
        if (MOVE_ON.has(err.code)) fail(err);
        return;
      }
      this.failedInARow = 0; // the coordinator answered
      // The group forgot us (session expired): everything we owned is someone else's now; join again.
      const lost = [...this.owned.entries()].filter(([key]) => !this.unannounced.has(key)).map(([, owned]) => ({ topic: owned.topic, partition: owned.partition }));
      for (const [key, owned] of [...this.owned.entries()]) this.lose(key, owned);
      if (lost.length > 0) this.hooks.revoked({ group: this.group, partitions: lost, reason: 'lost' });
      this.hooks.rejoin();
    } finally {
      clearTimeout(unanswered);
      this.unansweredTimers.delete(unanswered);
    }
  }

  private renewLease(sentAtMs: number): void {
    // The coordinator saw us at or after `sentAtMs`, so it cannot expire us before this.
    this.leaseUntilMs = Math.max(this.leaseUntilMs, sentAtMs + this.sessionTimeoutMs);
    for (const waiter of this.leaseWaiters.splice(0)) waiter();
  }

  private lose(key: string, owned: { topic: string; partition: number }): void {
    this.owned.delete(key);
    this.unannounced.delete(key);
    this.handledNext.delete(key);
    this.releasing.delete(key);
    this.hooks.dropPartition(owned.topic, owned.partition);
  }

  /** Revoked: finish the in-flight handler, then commit and release in one request. */
  private async release(key: string, owned: { topic: string; partition: number; epoch: number }): Promise<void> {
    this.releasing.add(key);
    this.hooks.dropPartition(owned.topic, owned.partition);
    await this.hooks.idle(owned.topic, owned.partition);
    for (;;) {
      if (this.ended || this.owned.get(key)?.epoch !== owned.epoch || !this.releasing.has(key)) return;
      const position = { topic: owned.topic, partition: owned.partition, epoch: owned.epoch, offset: this.handledNext.get(key) ?? 0 };
      try {
        await this.hooks.request({ type: 'group-commit', group: this.group, member: this.member, positions: [position], release: true });
        // The coordinator released it, even if the revocation was withdrawn meanwhile; a grant under a new epoch
        // follows if it comes back. Already granted again under a newer epoch: that grant stands, nothing was revoked.
        if (this.owned.get(key)?.epoch !== owned.epoch) return;
        this.releasedEpochs.set(key, owned.epoch);
        const announced = !this.unannounced.has(key);
        this.lose(key, owned);
        if (announced) this.hooks.revoked({ group: this.group, partitions: [{ topic: owned.topic, partition: owned.partition }], reason: 'rebalance' });
        return;
      } catch (err) {
        if (err instanceof RelayError && err.code === 'FENCED') {
          this.fenced([position]);
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, RELEASE_RETRY_MS));
      }
    }
  }
}
