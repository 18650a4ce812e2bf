/**
 * What a Raft group owes whoever called `propose` (and `compact`): which
 * proposal is acknowledged, refused or left unknown, and when. Pure
 * bookkeeping — no timer, no promise, no I/O: the caller hands in what
 * happened (a proposal appended, an entry applied, the leader's progress, a
 * timeout, a storage failure) and gets back who settles and how. The broker's
 * `RaftGroup` turns the answers into resolved and rejected promises; the
 * simulator decides with the same code what it counts as acknowledged, so
 * its "no acknowledged value lost" checks the decisions that answer clients.
 *
 * The rules:
 * - A proposal appended at (`index`, `term`) is **acknowledged** when the
 *   entry applied at `index` has `term` (an index and a term identify one
 *   entry: Raft's log matching), with the state machine's result.
 * - It is **replaced** when the entry applied at `index` is a no-op or has
 *   another term: another leader's entry took its place, so it was never
 *   applied (a retry is safe; deduplication keeps it from being stored twice).
 * - With ack level `all` an applied proposal then waits until every voter's
 *   match index reaches it, as seen by this node while it leads.
 * - With ack level `leader` and a result known in advance (the leader's
 *   projection of its log), it is acknowledged as soon as this node's own
 *   write of the entry is done, before any other replica holds it: a crash
 *   of this node before the entry reaches a quorum may lose it. Applied
 *   first (a single voter commits at once), it is acknowledged then.
 * - Its outcome is **unknown** when the group gives up on it (storage failed,
 *   the group stopped, a later proposal took its index on this node, the node
 *   no longer leads): it may
 *   be committed by another leader, or (ack `all`) is committed but not known
 *   to be on every replica.
 * - A timeout removes a proposal that has not settled yet; every proposal
 *   settles at most once.
 */
import type { Status } from './types.js';

/**
 * `leader`: acknowledged once this node's own write of the entry is done
 * (needs a result known in advance); `quorum`: once applied (committed on a
 * majority); `all`: once every voter holds it too.
 */
export type ProposalAck = 'leader' | 'quorum' | 'all';

/** How one proposal ends. `W` is whatever the caller waits with (a promise's callbacks, a client value). */
export type Settlement<W, R> =
  | { readonly outcome: 'acknowledged'; readonly waiter: W; readonly index: number; readonly term: number; readonly result: R }
  | { readonly outcome: 'replaced'; readonly waiter: W; readonly index: number; readonly term: number }
  | {
      readonly outcome: 'unknown';
      readonly waiter: W;
      readonly index: number;
      readonly term: number;
      /** Committed and applied (an `all` acknowledgement still waiting for every replica), or possibly never committed. */
      readonly committed: boolean;
    };

/** A proposal given up on: it may be committed by another leader, or (`committed`) is but is not known to be on every replica. */
export type Abandoned<W, R> = Extract<Settlement<W, R>, { readonly outcome: 'unknown' }>;

interface Appended<W, R> {
  readonly term: number;
  readonly ack: ProposalAck;
  readonly waiter: W;
  /** Ack `leader`: the result applying it will have, known when it was appended. */
  readonly early?: R;
}

interface AwaitingAll<W, R> {
  readonly index: number;
  readonly term: number;
  readonly waiter: W;
  readonly result: R;
}

export class ProposalTracker<W, R> {
  /**
   * Proposals appended and not applied yet, by log index (one per index: a
   * leader's log only grows in its term). Created on the first proposal
   * (absent reads as empty): most of a broker's groups never propose
   * (followers, idle partitions), and at 10,000 groups empty Maps add up.
   */
  private appended: Map<number, Appended<W, R>> | undefined;
  /** Indexes of `leader` proposals waiting for this node's write, ascending (appends only grow the log). */
  private awaitingWrite: number[] = [];
  /** Applied `all` proposals waiting for every voter's match index, in index order. */
  private awaitingAll: AwaitingAll<W, R>[] = [];

  /** Proposals not settled yet. */
  get size(): number {
    return (this.appended?.size ?? 0) + this.awaitingAll.length;
  }

  /** Whether an `all` acknowledgement waits for the leader's progress (so {@link onProgress} is worth a status). */
  get waitingForAllReplicas(): boolean {
    return this.awaitingAll.length > 0;
  }

  /**
   * A proposal was appended at (`index`, `term`). Returns the proposal it
   * displaced, if this node had one waiting at the same index from an earlier
   * term (its log was cut back since): that one's outcome is unknown. Ack
   * `leader` needs `early`, the result applying the entry will have; without
   * it the proposal waits for its commit like `quorum`.
   */
  track(index: number, term: number, ack: ProposalAck, waiter: W, early?: R): Abandoned<W, R> | undefined {
    const appended = (this.appended ??= new Map());
    const displaced = appended.get(index);
    if (ack === 'leader' && early !== undefined) {
      appended.set(index, { term, ack, waiter, early });
      // A later term reusing lower indexes: those above it were cut back (their applies settle them).
      while (this.awaitingWrite.length > 0 && (this.awaitingWrite[this.awaitingWrite.length - 1] as number) >= index) this.awaitingWrite.pop();
      this.awaitingWrite.push(index);
    } else {
      appended.set(index, { term, ack: ack === 'leader' ? 'quorum' : ack, waiter });
    }
    if (displaced === undefined) return undefined;
    return { outcome: 'unknown', waiter: displaced.waiter, index, term: displaced.term, committed: false };
  }

  /** The normal entry (`index`, `term`) was applied with `result`. */
  onApplied(index: number, term: number, result: R): Settlement<W, R> | undefined {
    const proposal = this.appended?.get(index);
    if (proposal === undefined) return undefined;
    this.appended?.delete(index);
    if (proposal.term !== term) return { outcome: 'replaced', waiter: proposal.waiter, index, term: proposal.term };
    if (proposal.ack === 'all') {
      this.awaitingAll.push({ index, term, waiter: proposal.waiter, result });
      return undefined;
    }
    return { outcome: 'acknowledged', waiter: proposal.waiter, index, term, result };
  }

  /**
   * This node's log is written (as durably as its fsync policy makes it) up
   * to (`index`, `term`), the last entry written: `leader` proposals of that
   * term up to it are acknowledged with their early result. (An entry of
   * `term` at `index` means every entry of `term` below it is this node's
   * own, as its leader appended it: a leader never overwrites its term.)
   */
  onWritten(index: number, term: number): Settlement<W, R>[] {
    const settled: Settlement<W, R>[] = [];
    while (this.awaitingWrite.length > 0 && (this.awaitingWrite[0] as number) <= index) {
      const at = this.awaitingWrite.shift() as number;
      const proposal = this.appended?.get(at);
      if (proposal === undefined || proposal.ack !== 'leader') continue; // settled already (applied, expired, displaced)
      if (proposal.term !== term) continue; // another term's write: its apply settles it (replaced)
      this.appended?.delete(at);
      settled.push({ outcome: 'acknowledged', waiter: proposal.waiter, index: at, term, result: proposal.early as R });
    }
    return settled;
  }

  /** A no-op (a new leader's first entry) was applied at `index`: a proposal waiting there was replaced. */
  onNoopApplied(index: number): Settlement<W, R> | undefined {
    const proposal = this.appended?.get(index);
    if (proposal === undefined) return undefined;
    this.appended?.delete(index);
    return { outcome: 'replaced', waiter: proposal.waiter, index, term: proposal.term };
  }

  /**
   * The node's status after a batch: while it leads, `all` proposals whose
   * entry every voter now holds are acknowledged. A follower knows no match
   * index, so nothing settles there (a timeout still applies).
   */
  onProgress(status: Pick<Status, 'role' | 'progress'>): Settlement<W, R>[] {
    if (this.awaitingAll.length === 0 || status.role !== 'leader' || status.progress.length === 0) return [];
    const lowestMatch = Math.min(...status.progress.map((p) => p.match));
    const settled: Settlement<W, R>[] = [];
    this.awaitingAll = this.awaitingAll.filter((waiting) => {
      if (waiting.index > lowestMatch) return true;
      settled.push({ outcome: 'acknowledged', waiter: waiting.waiter, index: waiting.index, term: waiting.term, result: waiting.result });
      return false;
    });
    return settled;
  }

  /**
   * The node's role after a batch. A node that no longer leads (check-quorum
   * stepped it down in a minority, or another leader took over) cannot commit
   * what it proposed, so every proposal still waiting here ends now with an
   * unknown outcome rather than at its timeout: another leader may still
   * commit it, and the client's retry with the same producer and seq is
   * deduplicated. A leader keeps its proposals.
   */
  onRole(status: Pick<Status, 'role'>): Abandoned<W, R>[] {
    if (status.role === 'leader' || this.size === 0) return [];
    return this.abandonAll();
  }

  /** The proposal at `index` waited too long: forgets it. Returns false if it had settled already. */
  expire(index: number, waiter: W): boolean {
    if (this.appended?.get(index)?.waiter === waiter) {
      this.appended.delete(index);
      return true;
    }
    const before = this.awaitingAll.length;
    this.awaitingAll = this.awaitingAll.filter((waiting) => waiting.waiter !== waiter);
    return this.awaitingAll.length < before;
  }

  /** The group gives up on every proposal (storage failed, or it stops): each one's outcome is unknown. */
  abandonAll(): Abandoned<W, R>[] {
    const settled: Abandoned<W, R>[] = [];
    for (const [index, proposal] of this.appended ?? []) settled.push({ outcome: 'unknown', waiter: proposal.waiter, index, term: proposal.term, committed: false });
    for (const waiting of this.awaitingAll) settled.push({ outcome: 'unknown', waiter: waiting.waiter, index: waiting.index, term: waiting.term, committed: true });
    this.appended = undefined;
    this.awaitingAll = [];
    this.awaitingWrite = [];
    return settled;
  }
}

/**
 * At most one pending compaction (a rewrite of the Raft log), which the
 * group runs between two Readys, never while one is being honoured.
 */
export class CompactionGate<J> {
  private pending: J | undefined;

  get isPending(): boolean {
    return this.pending !== undefined;
  }

  /** Queues `job`; false when one is pending already (it is refused). */
  request(job: J): boolean {
    if (this.pending !== undefined) return false;
    this.pending = job;
    return true;
  }

  /** The pending job, now that the group is between two Readys (it leaves the gate), or cancelled (stop, fence). */
  take(): J | undefined {
    const job = this.pending;
    this.pending = undefined;
    return job;
  }
}
