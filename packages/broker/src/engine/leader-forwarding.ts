/**
 * Requests that only a group's leader can serve: run here when this broker
 * leads, otherwise forwarded to the leader over peer RPC, waiting (bounded)
 * for a leader when there is none or it just went away.
 */
import { EventEmitter } from 'eventemitter3';
import pRetry from 'p-retry';
import { RelayError } from '@relaymq/sdk/protocol';
import type { NodeId } from '../core/raft/index.js';
import type { PeerRpc } from '../net/peer-rpc.js';
import type { RecordPage } from '../storage/segment-raft-storage.js';
import { parseFetchResponse, parseRecordPage, publishFailure, RECORDS_METHOD, type FetchRequest, type FetchResponse, type RecordsRequest } from './peer-messages.js';
import { waitFor } from './wait-for.js';

/** A group as forwarding sees it: its id and its leader as this broker knows it. */
export interface LedGroup {
  readonly id: string;
  readonly leader: NodeId | null;
  /** The voter this broker, leading, hands leadership to while it does (absent or null: none). */
  readonly transferring?: NodeId | null;
}

export interface LeaderForwardingContext {
  self: NodeId;
  rpc: PeerRpc;
  /** How long a request may wait for a leader and its answer. */
  requestTimeoutMs: number;
  now: () => number;
  /** Peers whose link to this broker went down and has not come back (see lost-peers.ts); absent: none ever. */
  lostPeers?: { has(peer: NodeId): boolean; readonly size: number };
  /** The voters of a group hosted here (absent or empty: unknown). */
  votersOf?: (group: LedGroup) => readonly NodeId[];
}

/** Carries a cut-off refusal out of a wait (anything else thrown there means: no leader yet). */
class CutOff {
  constructor(readonly error: RelayError) {}
}

export class LeaderForwarding {
  /**
   * Emits `leader` whenever some group's leader changes: requests waiting for
   * a leader look again, and forwards to an old leader give up (each listener
   * checks its own group, so one event serves both).
   */
  private readonly leaderChanges = new EventEmitter<{ leader: () => void }>();

  constructor(private readonly ctx: LeaderForwardingContext) {}

  /** The group's Raft runner reports a new leader (or none): waiting requests look again, forwards to the old one give up. */
  leaderChanged(): void {
    this.leaderChanges.emit('leader');
  }

  /**
   * Runs `local` when this broker leads `group`, otherwise forwards to the
   * leader. When the leader is unknown, unreachable or just lost its role, it
   * waits for the next one (bounded by `requestTimeoutMs`) instead of
   * bouncing the client: only when no leader can be reached in time does it
   * answer `NO_QUORUM`, which sends the client to another broker. When this
   * broker has lost its links to so many replicas that no leader it could
   * reach can exist (a split that put the partition's quorum on the other
   * side), it answers `NO_QUORUM` at once, naming one of those replicas as
   * `leader`: the client's own link to it may well be open (see
   * {@link cutOff}).
   *
   * `resent` tells a result whose request went to an earlier leader too (it
   * may have proposed it before stepping down): a publish's outcomes then
   * pass through `sentOnce` (peer-messages.ts).
   */
  viaLeader<R>(group: LedGroup, local: () => Promise<R>, method: string, body: unknown, resent: (result: R) => R = (r) => r): Promise<R> {
    const { self, now } = this.ctx;
    const deadline = now() + this.ctx.requestTimeoutMs;
    // The common case, this broker leading and nothing cutting it off (what the first look of `forward` finds
    // at once): run `local` with no wait and no async frame around it; only a failure goes through `forward`.
    if (group.leader !== self || this.ctx.lostPeers?.size) return this.forward(group, local, method, body, resent, deadline);
    let here: Promise<R>;
    try {
      here = local();
    } catch (err) {
      here = Promise.reject(err);
    }
    return here.then(undefined, (err: unknown) => this.forward(group, local, method, body, resent, deadline, { error: err, leader: self }));
  }

  /**
   * {@link viaLeader}'s loop: waits for a leader, runs or forwards there, and
   * looks again after a failure that allows it (`failed`: the attempt already
   * made, here, before the loop), until `deadline`.
   */
  private async forward<R>(
    group: LedGroup,
    local: () => Promise<R>,
    method: string,
    body: unknown,
    resent: (result: R) => R,
    deadline: number,
    failed?: { error: unknown; leader: NodeId },
  ): Promise<R> {
    const { self, rpc, requestTimeoutMs, now } = this.ctx;
    let avoid: NodeId | undefined;
    let attempted = false;
    /** This broker refused it while handing leadership away: wait for the transfer's end, whichever way it goes. */
    let transferring = false;
    /** The TIMEOUT of a publish whose leader stepped down: its outcome, should no next leader answer. */
    let unknown: RelayError | undefined;
    const failedAt = (err: unknown, leader: NodeId): void => {
      const code = err instanceof RelayError ? err.code : 'INTERNAL';
      // A publish whose leader stepped down before committing it (a leadership transfer, an election) has an
      // unknown outcome there; the next leader holds it (the resend is a duplicate, told as stored: `resent`) or
      // not (stored now). Resent there, the client hears no TIMEOUT for a leadership change, which it would
      // answer by resending later or moving its connection to another broker. A remote leader's TIMEOUT may come
      // before this broker heard of the change: it waits for another leader, within the deadline — a leader that
      // merely could not commit answers TIMEOUT only after its own timeout, as long as this broker's deadline.
      const stepped = method === 'publish' && code === 'TIMEOUT';
      if (stepped) unknown = err as RelayError;
      // The leader went away or stepped down between our look and our request: find the next one. A publish
      // it (or an earlier leader) may have proposed is never refused for good: the SDK would store it twice.
      if (!stepped && code !== 'NOT_CONNECTED' && code !== 'NOT_LEADER' && code !== 'SHUTTING_DOWN') {
        throw this.routed(group, method === 'publish' ? publishFailure(err, attempted, `publish to the leader of ${group.id}`) : err);
      }
      // Refused here for a leadership transfer: the new leader takes it once elected (usually within a few
      // heartbeats); an aborted transfer (this broker still leads) must not leave it waiting for a change
      // that never comes.
      transferring = leader === self && code === 'NOT_LEADER' && (group.transferring ?? null) !== null;
      avoid = transferring || (stepped && group.leader !== leader) ? undefined : leader;
      attempted = true;
    };
    let attempt = 0;
    if (failed !== undefined) {
      failedAt(failed.error, failed.leader);
      attempt = 1;
    }
    for (; now() < deadline && attempt < 100; attempt++) {
      const leader = await waitFor(
        this.leaderChanges,
        'leader',
        () => {
          const cut = this.cutOff(group);
          if (cut !== undefined) throw cut;
          const known = group.leader;
          if (known === null || known === avoid) return undefined;
          // An aborted transfer leaves this broker leading: the request runs here again, at once.
          return transferring && known === self && (group.transferring ?? null) !== null ? undefined : known;
        },
        Math.max(1, deadline - now()),
        `a leader of ${group.id}`,
      ).catch((err: unknown) => {
        // A publish resent after its leader stepped down keeps its unknown outcome (TIMEOUT), with the hint.
        if (err instanceof CutOff) throw unknown === undefined ? err.error : this.routed(group, unknown); // else retriable: nothing (more) was proposed through this broker
        return undefined;
      });
      if (leader === undefined) break;
      try {
        // A little longer than the leader's own commit timeout, so its answer (even TIMEOUT) gets back.
        const result = leader === self ? await local() : ((await this.whileLeading(group, leader, rpc.call(leader, method, body, requestTimeoutMs + 1000))) as R);
        return attempted ? resent(result) : result;
      } catch (err) {
        failedAt(err, leader);
      }
    }
    if (unknown !== undefined) throw this.routed(group, unknown);
    throw new RelayError('NO_QUORUM', `no reachable leader for ${group.id}: this broker cannot reach a quorum of its replicas`);
  }

  /**
   * Why no leader of `group` can be reached from here, when that is certain
   * from the links alone: the leader this broker names (if any, and not
   * itself) sits behind a lost link, and so many voters do that those left
   * (this broker included) are no quorum — no leader can be elected or keep
   * leading on this side. Only links seen to drop count (never silence, never
   * a link not yet dialed), so a loaded machine or a starting broker never
   * gets here. The hint is the leader last named if it is among the lost,
   * else the first lost voter: any of them reaches the leader of their side.
   */
  private cutOff(group: LedGroup): CutOff | undefined {
    const { self, lostPeers, votersOf } = this.ctx;
    if (lostPeers === undefined || lostPeers.size === 0 || votersOf === undefined) return undefined;
    const lost = (peer: NodeId): boolean => lostPeers.has(peer);
    const leader = group.leader;
    if (leader !== null && leader !== self && !lost(leader)) return undefined;
    const voters = votersOf(group);
    const unreachable = voters.filter((v) => v !== self && lost(v));
    if (unreachable.length === 0 || voters.length - unreachable.length > voters.length / 2) return undefined;
    const hint = leader !== null && unreachable.includes(leader) ? leader : (unreachable[0] as NodeId);
    return new CutOff(
      new RelayError('NO_QUORUM', `broker ${self} lost its links to ${unreachable.join(', ')} of the replicas of ${group.id}: no leader is reachable from here; try ${hint}`, {
        leader: hint,
      }),
    );
  }

  /**
   * A failure that names no leader gets the replica {@link cutOff} would name,
   * when the links now leave no quorum on this side: a leader that stepped
   * down by check-quorum in a split ends its waiting proposals with
   * `TIMEOUT`, and without a hint its client could only fail over to another
   * broker of the same side. The code is kept (the outcome stays unknown).
   */
  private routed(group: LedGroup, err: unknown): unknown {
    if (!(err instanceof RelayError) || err.details.leader !== undefined || err.code !== 'TIMEOUT') return err;
    const cut = this.cutOff(group);
    if (cut === undefined) return err;
    return new RelayError(err.code, `${err.message}; ${cut.error.message}`, { ...err.details, leader: cut.error.details.leader, cause: err });
  }

  /** Peer links came or went: requests waiting for a leader look again (see {@link cutOff}). */
  linksChanged(): void {
    this.leaderChanges.emit('leader');
  }

  /**
   * `call` to `leader`, given up (`NOT_LEADER`) as soon as the group knows
   * another leader. A stopped leader (SIGSTOP, a stalled machine) keeps its
   * connection open and would hold the forward for its whole timeout, while
   * the others elect a new leader within about a second. The copy left with
   * it carries the same producer and seq, so the partition stores it once
   * whichever arrives.
   */
  private whileLeading<R>(group: LedGroup, leader: NodeId, call: Promise<R>): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const stopWatching = (): void => {
        this.leaderChanges.off('leader', onMove);
      };
      const onMove = (): void => {
        const now = group.leader;
        if (now === null || now === leader) return; // an election under way: the old leader may still answer
        stopWatching();
        call.catch(() => {}); // its answer no longer matters
        reject(new RelayError('NOT_LEADER', `broker ${leader} no longer leads ${group.id}; ${now} does`));
      };
      this.leaderChanges.on('leader', onMove);
      onMove(); // it may have moved since the caller looked
      call.then(
        (value) => {
          stopWatching();
          resolve(value);
        },
        (err: unknown) => {
          stopWatching();
          reject(err);
        },
      );
    });
  }

  /** Fetches a partition's messages from the group's leader, waiting for one and retrying (bounded) while it changes. */
  fetchFromLeader(group: LedGroup, topic: string, partition: number, offset: number): Promise<FetchResponse> {
    const request: FetchRequest = { topic, partition, offset };
    return this.callLeader(group, 'partition.fetch', request, parseFetchResponse, `${topic}/${partition} from ${offset}`);
  }

  /** Fetches committed records of a unified partition from the group's leader (a backfill below a snapshot), as {@link fetchFromLeader}. */
  fetchRecordsFromLeader(group: LedGroup, topic: string, partition: number, fromIndex: number): Promise<RecordPage> {
    const request: RecordsRequest = { topic, partition, fromIndex };
    return this.callLeader(group, RECORDS_METHOD, request, parseRecordPage, `${topic}/${partition} records from ${fromIndex}`);
  }

  private async callLeader<R>(group: LedGroup, method: string, request: unknown, parse: (body: unknown) => R, what: string): Promise<R> {
    try {
      // About 10 s in all: a leader is usually back within an election timeout.
      return await pRetry(
        async () => {
          const leader = group.leader;
          if (leader === null || leader === this.ctx.self) throw new RelayError('NOT_LEADER', `no other broker leads ${group.id} now`);
          return parse(await this.ctx.rpc.call(leader, method, request, this.ctx.requestTimeoutMs));
        },
        { retries: 50, minTimeout: 200, maxTimeout: 200 },
      );
    } catch (err) {
      throw new RelayError('NO_QUORUM', `could not fetch ${what}: ${String(err)}`, { cause: err });
    }
  }
}
