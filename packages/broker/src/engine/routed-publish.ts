import { RelayError } from '@relaymq/sdk/protocol';
import type { AppendOutcome } from '../core/partition/partition.js';
import type { NodeId } from '../core/raft/index.js';
import type { PeerRpc } from '../net/peer-rpc.js';
import { DeadlineQueue, type Deadline } from '../runtime/deadline-queue.js';
import { parseForwarded, publishFailure, sentOnce, type ForwardedPublish } from './peer-messages.js';

/**
 * Publishes to a partition this broker does not host. In a cluster larger
 * than the replication factor most brokers host only some partitions; a
 * client's publish to any other used to be refused with `NOT_LEADER`, and the
 * client failed its whole connection over to another broker that hosted
 * other partitions only — a failover storm. Instead the publish goes through
 * to a replica (the leader last heard of first), which hands it to the
 * partition's leader; the answer names that leader, so the client can
 * publish there directly from then on. Only when no replica answers is the
 * client told `NOT_LEADER`, with the leader's id as a hint.
 */

/** The peer method a routed publish travels by. */
export const ROUTE_METHOD = 'publish.route';

/**
 * Brokers a routed publish may pass through before a replica takes it. Two
 * hops cover a sender whose metadata is stale by one reassignment; a bound
 * makes a loop between brokers with different views impossible.
 */
export const MAX_ROUTE_HOPS = 2;

/**
 * How long a routed publish waits for one replica before it goes to the next
 * one as well. A replica answers within milliseconds when healthy; one that
 * stopped (SIGSTOP, a stalled machine) keeps its connections open, so only a
 * bound like this notices it before the peer timeout (seconds). Short, since
 * a client that failed over from a stopped broker has already waited about
 * two ping intervals; a copy sent to a slow but healthy replica costs one
 * deduplicated append.
 */
export const ROUTE_HEDGE_MS = 300;
/**
 * A replica's hedge waits this many times its usual answer time when that is
 * longer than {@link ROUTE_HEDGE_MS}: a slow link (added latency) answers
 * every publish late but steadily, and hedging each one sent copies down a
 * second path that overtook the first, so the leader saw seqs out of order
 * (`SEQUENCE_GAP`, resends, more copies: a 4.1 s wait at 5/3 seed 310).
 */
const HEDGE_ANSWER_FACTOR = 2;
/** Weight of the newest answer time in a replica's running average. */
const ANSWER_EWMA_WEIGHT = 0.2;
/** How long a replica that left a routed publish unanswered is tried last (then first again, if it leads). */
const UNANSWERING_FORGET_MS = 5000;

/** What travels by {@link ROUTE_METHOD}: the publish and how many brokers it passed already. */
export interface RoutedPublish extends ForwardedPublish {
  hops: number;
}

/** A routed publish's answer: the outcomes, and the partition leader that stored them. */
export interface RouteResult {
  leader: NodeId | undefined;
  outcomes: AppendOutcome[];
}

/** What the router needs of the engine around it. */
export interface RouteContext {
  self: NodeId;
  rpc: PeerRpc;
  /** The partition's replicas per this broker's metadata (undefined: no such partition). */
  replicasOf(topic: string, partition: number): readonly NodeId[] | undefined;
  /** Whether a replica of the partition lives here. */
  hosts(topic: string, partition: number): boolean;
  /** The leader of a partition hosted here, as this broker's replica knows it. */
  hostedLeader(topic: string, partition: number): NodeId | undefined;
  /**
   * The leader of a partition hosted here if this replica heard from it just
   * now (see `RaftGroup.heardLeader`): a leader that is heard while nothing
   * it was sent is answered is losing its answers to this broker.
   */
  heardLeader?(topic: string, partition: number): NodeId | undefined;
  /** Publishes through this broker's replica of the partition (to its leader); resolves with that leader too. */
  publishHosted(forwarded: ForwardedPublish): Promise<RouteResult>;
  /** How long a replica may take to get a publish committed (its own bound); a hop waits a little longer. */
  requestTimeoutMs: number;
  /** Resolves once this broker can serve routed publishes (its logs and metadata are open). */
  whenOpened?: () => Promise<void>;
  /** Peers whose link to this broker dropped and has not come back (see lost-peers.ts). */
  lostPeers?: { has(peer: NodeId): boolean };
  /**
   * Every broker of the cluster. A follower's last hedge goes through brokers
   * that hold no replica: a one-way fault that loses its bytes to every other
   * replica leaves those ways open in a cluster larger than the replication factor.
   */
  brokers?: () => readonly NodeId[];
  /** Overrides {@link ROUTE_HEDGE_MS} (tests). */
  hedgeMs?: number;
}

export function parseRouted(body: unknown): RoutedPublish {
  const { topic, partition, ack, command } = parseForwarded(body);
  const hops = (body as { hops?: unknown }).hops;
  if (!Number.isSafeInteger(hops) || (hops as number) < 0) throw new RelayError('INVALID_ARGUMENT', 'malformed routed publish');
  return { topic, partition, ack, command, hops: hops as number }; // one literal: a spread and more properties is slow (cluster.ts append)
}

function parseRouteResult(body: unknown): RouteResult {
  const o = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  if (!Array.isArray(o.outcomes)) throw new RelayError('PROTOCOL_ERROR', 'malformed routed publish answer');
  return { leader: typeof o.leader === 'string' ? o.leader : undefined, outcomes: o.outcomes as AppendOutcome[] };
}

const partitionKey = (topic: string, partition: number): string => `${partition}:${topic}`;

/** Routes a client's publishes (hedged unless this replica leads), and remembers partition leaders as answers name them. */
export class PublishRouter {
  /** Partition leaders as answers named them: the way in for partitions not hosted here, the way to spare for hosted ones. */
  private readonly leaders = new Map<string, NodeId>();
  /** Paths (a replica; this replica to a leader) that left a publish unanswered past its hedge delay (paused, stalled, answers lost), and when; cleared when they answer. */
  private readonly unanswering = new Map<string, number>();
  /** Each path's running average time to answer a publish, in ms. */
  private readonly answerMs = new Map<string, number>();
  /** When each path last answered a publish (any publish): a slow path still answers, a lost one does not. */
  private readonly answeredAt = new Map<string, number>();
  /** The deposition checks of the publishes this broker took as the leader and has not answered (see {@link proposeHere}). */
  private readonly takenHere = new DeadlineQueue();
  /** `self>self`, the path of a publish taken here as the leader (made once, not per publish). */
  private readonly selfPath: string;

  constructor(private readonly ctx: RouteContext) {
    this.selfPath = `${ctx.self}>${ctx.self}`;
    ctx.rpc.handle(ROUTE_METHOD, async (_from, body) => {
      const routed = parseRouted(body);
      // A broker still starting knows no metadata yet: it would take every partition for its own.
      await ctx.whenOpened?.();
      return this.route(routed);
    });
  }

  /** Forgets the leaders heard of `topic`'s partitions (it was deleted; one created again has new groups). */
  forgetTopic(topic: string): void {
    const suffix = `:${topic}`;
    for (const key of this.leaders.keys()) if (key.endsWith(suffix) && /^\d+$/.test(key.slice(0, -suffix.length))) this.leaders.delete(key);
  }

  /** The leader of a partition not hosted here, as last heard. */
  leaderOf(topic: string, partition: number): NodeId | undefined {
    return this.leaders.get(partitionKey(topic, partition));
  }

  /**
   * Publishes through this broker's replica when one lives here; otherwise
   * passes the publish to a replica, the leader last heard of first, the next
   * one when a replica cannot be reached or no longer holds the partition —
   * and the next one as well when a replica has not answered within
   * {@link ROUTE_HEDGE_MS}: a paused or stalled broker keeps its connections
   * open and would hold the publish for the whole peer timeout. Every copy
   * carries the same producer and seq, so the partition stores it once
   * whichever arrives; the first answer wins.
   *
   * A client's publish to a replica that does not lead is hedged the same
   * way, through the other followers, then through brokers that hold no
   * replica: the leader may be taking the forwards while its answers are lost
   * on the way back (a one-way partition), which held the client for the
   * whole fault however long it lasted. A copy that
   * came from another broker is never hedged again, so copies stay bounded.
   */
  route(routed: RoutedPublish): Promise<RouteResult> {
    // Not async: the common way (this replica leads) returns the proposal's own promise, with no frame around it.
    try {
      return this.routeNow(routed);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private routeNow(routed: RoutedPublish): Promise<RouteResult> {
    const { topic, partition } = routed;
    const self = this.ctx.self;
    const replicas = this.ctx.replicasOf(topic, partition);
    if (this.ctx.hosts(topic, partition)) {
      // A follower that stopped hearing its leader (the leader's bytes to it are what a one-way fault loses) knows
      // none: the leader the last answer named is the one not to send copies to.
      const leader = this.ctx.hostedLeader(topic, partition) ?? this.leaders.get(partitionKey(topic, partition));
      if (routed.hops > 0 || replicas === undefined) return this.ctx.publishHosted(routed);
      if (leader === self) return this.proposeHere(routed);
      // Through this replica (to the leader) first; the other followers when its answer is late. The way through
      // this replica is judged per leader: its link to one leader may be lost while its link to another is not.
      const path = (r: NodeId): string => (r === self ? `${self}>${leader ?? ''}` : r);
      // Brokers without a replica last: each passes the copy on to a replica (one hop more, within MAX_ROUTE_HOPS).
      const beyond = (this.ctx.brokers?.() ?? []).filter((b) => b !== self && !replicas.includes(b));
      const heard = (): NodeId | undefined => this.ctx.heardLeader?.(topic, partition);
      return this.spread(routed, this.inOrder([self, ...replicas.filter((r) => r !== self && r !== leader), ...beyond], path), undefined, path, heard);
    }
    if (replicas === undefined) throw new RelayError('INVALID_PARTITION', `topic ${topic} has no partition ${partition}`);
    const key = partitionKey(topic, partition);
    const known = this.leaders.get(key);
    const hint = known !== undefined && replicas.includes(known) ? known : replicas[0];
    if (routed.hops >= MAX_ROUTE_HOPS) {
      throw new RelayError('NOT_LEADER', `broker ${self} holds no replica of ${topic}/${partition} and the publish passed ${routed.hops} brokers already`, hintOf(hint));
    }
    return this.spread(routed, this.inOrder([...(hint === undefined ? [] : [hint]), ...replicas.filter((r) => r !== hint && r !== self)]), hint);
  }

  /**
   * A client's publish this replica takes as the leader. If it is deposed
   * before the publish is answered, its proposal goes on to the new leader
   * (see `LeaderForwarding`), but a one-way fault that deposed it loses those
   * bytes too, and the client waited out the fault (3/3 seed 902: 2.9 s). So
   * once it has followed another leader for a whole hedge delay with the
   * publish still unanswered, the publish ends in `TIMEOUT` (outcome unknown)
   * naming that leader, and the client republishes there over its own link.
   */
  private proposeHere(routed: RoutedPublish): Promise<RouteResult> {
    const proposal = this.ctx.publishHosted(routed);
    const heardLeader = this.ctx.heardLeader;
    if (heardLeader === undefined) return proposal;
    const { topic, partition } = routed;
    const self = this.ctx.self;
    const lateAfter = this.hedgeDelay(this.selfPath);
    // The checks wait in one queue with the other publishes taken here: one timer, not one per publish.
    const checks = this.takenHere;
    return new Promise<RouteResult>((resolve, reject) => {
      let following: NodeId | undefined;
      let followingSince = 0;
      const check: Deadline = {
        atMs: checks.now() + lateAfter,
        queuePrev: undefined, // the queue's links, in the literal (see raft-group.ts awaitEntry)
        queueNext: undefined,
        expire: (): void => {
          const leader = heardLeader(topic, partition);
          const deposed = leader !== undefined && leader !== self ? leader : undefined;
          // Publishes this broker forwards to the successor since are answered: the way is slow, not lost.
          const answering = (this.answeredAt.get(`${self}>${deposed ?? ''}`) ?? Number.NEGATIVE_INFINITY) > Math.max(followingSince, Date.now() - lateAfter);
          if (deposed !== undefined && deposed === following && !answering) {
            reject(new RelayError('TIMEOUT', `broker ${self} led ${topic}/${partition} when it took the publish and follows ${deposed} now, which has not answered: outcome unknown, publish to ${deposed}`, { leader: deposed }));
            return;
          }
          if (deposed !== following) followingSince = Date.now();
          following = deposed;
          check.atMs = checks.now() + lateAfter;
          checks.add(check);
        },
      };
      checks.add(check);
      proposal.then(
        (result) => {
          checks.delete(check);
          resolve(result);
        },
        (err: unknown) => {
          checks.delete(check);
          reject(err);
        },
      );
    });
  }

  /** `candidates` with the paths that left a publish unanswered last, until they answer again. */
  private inOrder(candidates: NodeId[], path: (target: NodeId) => string = (target) => target): NodeId[] {
    const now = Date.now();
    const demoted = (r: NodeId): boolean => now - (this.unanswering.get(path(r)) ?? Number.NEGATIVE_INFINITY) < UNANSWERING_FORGET_MS;
    return [...candidates.filter((r) => !demoted(r)), ...candidates.filter(demoted)];
  }

  /**
   * Sends `routed` to the brokers of `order` one after the other — the next
   * when one cannot take it or is late to answer — until one answers; `self`
   * in `order` publishes through this broker's own replica. `hint` is the
   * leader named when nobody could be reached; `path` names the way to a
   * target under which its lateness and answer times are kept.
   *
   * When every way is late and `heardLeader` names a leader this broker still
   * hears, the answers are being lost on the way back (this broker's bytes to
   * every other one are: a one-way fault in a cluster no larger than the
   * replication factor). The publish then ends in `TIMEOUT` (outcome unknown)
   * naming that leader, so the client republishes to it over its own link
   * instead of waiting out the fault.
   */
  private spread(
    routed: RoutedPublish,
    order: readonly NodeId[],
    hint: NodeId | undefined,
    path: (target: NodeId) => string = (target) => target,
    heardLeader?: () => NodeId | undefined,
  ): Promise<RouteResult> {
    const { topic, partition } = routed;
    const replicas = this.ctx.replicasOf(topic, partition) ?? [];
    const key = partitionKey(topic, partition);
    const known = this.leaders.get(key);
    const body: RoutedPublish = { topic, partition, ack: routed.ack, command: routed.command, hops: routed.hops + 1 };
    return new Promise<RouteResult>((resolve, reject) => {
      const startedAt = Date.now();
      /** The leader heard when last looked, and since when: a leader heard throughout is judged from the start. */
      let heard = heardLeader?.();
      let heardSince = startedAt;
      let next = 0;
      let running = 0;
      let settled = false;
      /** A replica took the request before it failed, or several copies went out: a later refusal proves nothing. */
      let attempted = false;
      let unreachable: unknown;
      let answered: { err: unknown; target: string } | undefined;
      let hedge: ReturnType<typeof setTimeout> | undefined;
      let lostAnswers: ReturnType<typeof setTimeout> | undefined;
      const finish = (outcome: RouteResult | RelayError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(hedge);
        clearTimeout(lostAnswers);
        if (outcome instanceof RelayError) reject(outcome);
        else resolve(outcome);
      };
      const giveUpIfDone = (): void => {
        if (running > 0 || (next < order.length && answered === undefined)) return;
        if (answered !== undefined) finish(this.withReachableHint(publishFailure(answered.err, attempted, `publish routed to broker ${answered.target}`), replicas, known));
        else finish(new RelayError('NOT_LEADER', `broker ${this.ctx.self} reached no replica of ${topic}/${partition} (${String(unreachable)})`, hintOf(hint)));
      };
      const launch = (): void => {
        clearTimeout(hedge);
        if (settled || answered !== undefined || next >= order.length) return;
        const target = order[next++] as NodeId;
        if (next > 1) attempted = true; // an earlier copy is still on its way, or reached a replica
        running++;
        if (next < order.length) {
          hedge = setTimeout(() => {
            this.unanswering.set(path(target), Date.now());
            launch();
          }, this.hedgeDelay(path(target)));
        } else if (heardLeader !== undefined) {
          const lateAfter = this.hedgeDelay(path(target));
          const launched = order.slice(0, next);
          const checkAnswersLost = (): void => {
            if (settled || answered !== undefined) return;
            const leader = heardLeader();
            if (leader !== heard) {
              heard = leader;
              heardSince = Date.now();
            }
            // Answers to other publishes still come back on one of these ways: it is slow (added latency), not lost.
            const since = Math.max(startedAt, Date.now() - lateAfter);
            const answering = launched.some((t) => (this.answeredAt.get(path(t)) ?? Number.NEGATIVE_INFINITY) > since);
            // A leader heard for less than a whole delay was just elected: the copies that waited for it reached it
            // only now (a new group's first publish), and it has had no time to answer them yet.
            const justElected = Date.now() - heardSince < lateAfter;
            if (leader === undefined || leader === this.ctx.self || answering || justElected) {
              lostAnswers = setTimeout(checkAnswersLost, lateAfter); // an election, this one leads now, or a slow way: wait on
              return;
            }
            this.unanswering.set(path(target), Date.now());
            const message = `broker ${this.ctx.self} hears leader ${leader} of ${topic}/${partition} but no way it sent the publish answered: outcome unknown, publish to ${leader}`;
            finish(new RelayError('TIMEOUT', message, { leader }));
          };
          lostAnswers = setTimeout(checkAnswersLost, lateAfter);
        }
        const sentAt = Date.now();
        const call =
          target === this.ctx.self
            ? this.ctx.publishHosted(routed)
            : // Longer than the replica's own bounds (finding a leader, then its forward), so its answer (even TIMEOUT) gets back.
              this.ctx.rpc.call(target, ROUTE_METHOD, body, 2 * this.ctx.requestTimeoutMs + 2000);
        call.then(
          (answer) => {
            running--;
            this.unanswering.delete(path(target));
            const took = Date.now() - sentAt;
            this.answeredAt.set(path(target), Date.now());
            const average = this.answerMs.get(path(target));
            this.answerMs.set(path(target), average === undefined ? took : average + ANSWER_EWMA_WEIGHT * (took - average));
            let result: RouteResult;
            try {
              result = parseRouteResult(answer);
            } catch (err) {
              // The replica answered, so it may well have stored the publish: its outcome is unknown, not refused.
              answered ??= { err, target };
              attempted = true;
              giveUpIfDone();
              return;
            }
            if (settled) return;
            const leader = result.leader ?? target;
            this.leaders.set(key, leader);
            const outcomes = next > 1 ? sentOnce(result.outcomes) : result.outcomes;
            finish({ leader, outcomes });
          },
          (err: unknown) => {
            running--;
            const code = err instanceof RelayError ? err.code : 'INTERNAL';
            if (code !== 'TIMEOUT') this.unanswering.delete(path(target));
            // Unreachable, or its metadata says it is no replica: another replica may take it. Anything else is the answer,
            // told as the client must take it: a publish a replica may have proposed is never refused for good.
            if (code !== 'NOT_CONNECTED' && code !== 'NOT_LEADER' && code !== 'SHUTTING_DOWN') {
              answered ??= { err, target };
              giveUpIfDone();
              return;
            }
            if (this.leaders.get(key) === target) this.leaders.delete(key);
            unreachable = err;
            // The request may have reached it before its link went down: it may be stored.
            attempted = true;
            launch();
            giveUpIfDone();
          },
        );
      };
      launch();
    });
  }

  /**
   * How long to wait on a path (a replica, or this one to a leader) before a copy goes to the next replica:
   * {@link ROUTE_HEDGE_MS}, or {@link HEDGE_ANSWER_FACTOR} times its usual
   * answer time when that is longer (a slow but steady link), at most the
   * request timeout. A paused replica was quick before it stopped, so it is
   * still left after {@link ROUTE_HEDGE_MS}.
   */
  private hedgeDelay(path: string): number {
    const floor = this.ctx.hedgeMs ?? ROUTE_HEDGE_MS;
    const usual = this.answerMs.get(path) ?? 0;
    return Math.max(floor, Math.min(this.ctx.requestTimeoutMs, HEDGE_ANSWER_FACTOR * usual));
  }

  /**
   * A replica answered `NO_QUORUM` (it reaches no leader) without a hint,
   * which peer RPC does not carry: name a replica whose link from here is
   * lost (the leader last heard of first), since the leader the answering
   * replica cannot reach is behind such a link too, and the client's own
   * link to it may be open.
   */
  private withReachableHint(error: RelayError, replicas: readonly NodeId[], known: NodeId | undefined): RelayError {
    const lost = this.ctx.lostPeers;
    if (error.code !== 'NO_QUORUM' || error.details.leader !== undefined || lost === undefined) return error;
    const behind = replicas.filter((r) => r !== this.ctx.self && lost.has(r));
    const hint = known !== undefined && behind.includes(known) ? known : behind[0];
    if (hint === undefined) return error;
    return new RelayError('NO_QUORUM', `${error.message}; broker ${this.ctx.self} lost its links to ${behind.join(', ')}: try ${hint}`, { leader: hint });
  }
}

const hintOf = (leader: NodeId | undefined): { leader?: string } => (leader === undefined ? {} : { leader });
