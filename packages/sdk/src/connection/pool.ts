import pRetry, { AbortError } from 'p-retry';
import { RelayError, type ClusterFrame, type ClusterView } from '../protocol/index.js';
import type { ResolvedClientOptions } from '../options.js';
import { BrokerConnection, type PushFrame } from './connection.js';

/** What the pool reports to the client above it. */
export interface PoolListener {
  /** The active connection changed: `next` is undefined when none is left. */
  activeChanged(next: BrokerConnection | undefined, previous: BrokerConnection | undefined, reason: RelayError | undefined): void;
  /** A dial is starting. */
  dialing(url: string, attempt: number): void;
  /** A dial failed; the next comes after a backoff delay. */
  dialFailed(url: string, attempt: number, error: RelayError): void;
  /** Discovery changed the set of known brokers. */
  brokersChanged(added: string[], removed: string[]): void;
  /** Every slot gave up (only with a finite `reconnect.maxAttempts`). */
  gaveUp(error: RelayError): void;
  /** A pooled connection opened (active or standby). */
  connectionOpened?(connection: BrokerConnection): void;
  /** A pooled connection closed (active or standby). */
  connectionClosed(connection: BrokerConnection): void;
  /** Whether publishes sent on `connection` await their answers (absent: none do). */
  awaitsAnswers?(connection: BrokerConnection): boolean;
  /** A frame pushed by a broker on any pooled connection. */
  frame(connection: BrokerConnection, frame: PushFrame): void;
}

/** Least time between two standbys closed to reach partition leaders: no churn when leaders move. */
const REBALANCE_MS = 5000;
/** A broker counts as a leader in use this long after a publish needed it. */
const WANTED_MS = 30_000;
/** How long an urgent request for a broker (see {@link BrokerPool.reach}) stays outstanding. */
const URGENT_MS = 10_000;
/**
 * Slots beyond `poolSize` while urgent requests are outstanding: enough for
 * every broker of a five-broker cluster, whose split may put the partitions'
 * quorums behind three different brokers (chaos 5/3 seed 361: with two extra
 * slots, the third was refused a connection and its partition failed over).
 */
const URGENT_EXTRA_SLOTS = 4;
/** Least time between two standbys closed for urgent requests once the pool is full. */
const URGENT_REBALANCE_MS = 1000;
/** A broker whose dial failed this recently is not dialed first even when asked for urgently. */
const FRESH_FAILURE_MS = 1000;
/**
 * How many `settledMs` (heartbeat intervals) a broker {@link BrokerPool.moveOff}
 * left is not moved to again by another move, and comes after the other ready
 * standbys in any failover: when every broker the client knows is cut off
 * from the coordinator, a move cannot help, and moving back and forth every
 * two intervals would cycle the connection its publishes use each time.
 */
const MOVED_OFF_INTERVALS = 10;

function shuffled<T>(items: T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
  }
  return copy;
}

/**
 * Keeps up to `poolSize` connections to distinct brokers (warm standby) and
 * picks the active one. Each slot redials with exponential backoff and jitter
 * (p-retry), trying the known brokers in a shuffled order; every attempt
 * creates a new socket, so host names are resolved again each time.
 */
export class BrokerPool {
  /** Open connections, in the order they opened. */
  readonly connections = new Set<BrokerConnection>();
  active: BrokerConnection | undefined;
  private readonly discovered = new Set<string>();
  private readonly dialingUrls = new Set<string>();
  /** Brokers a dial just connected to, until the connection is held: a second dial reaching one is refused (one connection per broker). */
  private readonly dialedNotHeld = new Set<string>();
  private readonly abort = new AbortController();
  private runningSlots = 0;
  /** When each broker last failed a dial; fresh failures are tried last. */
  private readonly lastFailureMs = new Map<string, number>();
  /** Load each broker advertised in the latest cluster view. */
  private readonly loads = new Map<string, number>();
  /** Client URL of each broker id, from cluster views. */
  private readonly urlsById = new Map<string, string>();
  /** Brokers that lead partitions this client publishes to, and when that was last needed. */
  private readonly wanted = new Map<string, number>();
  /** Brokers with a leader link running (see {@link prefer}). */
  private readonly leaderLinks = new Set<string>();
  /** Connections opened by leader links (beyond `poolSize`). */
  private readonly linked = new Set<BrokerConnection>();
  private lastLinkSweepMs = Number.NEGATIVE_INFINITY;
  /** Brokers asked for urgently (a refusal named them as the way to a partition), and when. */
  private readonly urgent = new Map<string, number>();
  private lastRebalanceMs = Number.NEGATIVE_INFINITY;
  private lastUrgentRebalanceMs = Number.NEGATIVE_INFINITY;
  /** Connections whose broker said it cannot serve (welcome or cluster frame `ready: false`). */
  private readonly notReady = new WeakSet<BrokerConnection>();
  /** When the active connection last changed, for any reason (see {@link moveOff}). */
  private activeSinceMs = Number.NEGATIVE_INFINITY;
  /** Brokers {@link moveOff} left, by id, until when they are not moved to again (see {@link MOVED_OFF_INTERVALS}). */
  private readonly movedOffUntil = new Map<string, number>();
  private closed = false;

  constructor(
    private readonly options: ResolvedClientOptions,
    private readonly listener: PoolListener,
  ) {}

  /** Seeds first, then discovered brokers. */
  get knownBrokers(): string[] {
    return [...this.options.brokers, ...[...this.discovered].filter((url) => !this.options.brokers.includes(url))];
  }

  start(): void {
    this.fillSlots();
  }

  /** Drops the active connection for `reason`; traffic moves to a standby. */
  failover(reason: RelayError): void {
    this.active?.close(reason);
  }

  /**
   * Moves traffic off the active broker, as {@link failover} does, because
   * something only the cluster behind it answers keeps failing there (a group
   * member's heartbeats: that broker cannot reach the coordinator). Only when
   * it can help, else a no-op returning false: a ready standby must be open to
   * take over (a client that knows one broker would only close and redial it),
   * and the active connection must have been in place for `settledMs` (it just
   * changed, for another member or any failover: one move per `settledMs`
   * for the whole client, and the failures may concern the broker just left).
   */
  moveOff(reason: RelayError, settledMs: number): boolean {
    const active = this.active;
    const now = Date.now();
    if (active === undefined || !active.open || now - this.activeSinceMs < settledMs) return false;
    // Not back to a broker left by a recent move (both cut off: no ping-pong); bestStandby ranks it after this one.
    if (![...this.connections].some((c) => c !== active && c.open && !this.notReady.has(c) && !c.pingOverdue(now) && !this.movedOffRecently(c, now))) return false;
    this.lastFailureMs.set(active.url, now); // redialed last, as a standby at most
    this.movedOffUntil.set(active.brokerId, now + MOVED_OFF_INTERVALS * settledMs);
    active.close(reason);
    return true;
  }

  /**
   * An open pooled connection, other than the one to broker `brokerId`, to a
   * broker that says it can serve and answers its pings: the active one if it
   * qualifies, else the standby {@link bestStandby} would pick (one not left
   * by a recent {@link moveOff} first, then the shortest round trip). For one
   * subscription that broker `brokerId` keeps refusing while the client's
   * other traffic is served there (see `LeaderLinks.elsewhere`): nothing is
   * closed, and the connection returned is marked in use ({@link prefer}).
   */
  readyElsewhere(brokerId: string): BrokerConnection | undefined {
    const now = Date.now();
    const usable = (c: BrokerConnection): boolean => c.brokerId !== brokerId && c.open && !this.notReady.has(c) && !c.pingOverdue(now);
    const active = this.active;
    let found = active !== undefined && usable(active) ? active : undefined;
    if (found === undefined) {
      const rank = (c: BrokerConnection): number[] => [this.movedOffRecently(c, now) ? 1 : 0, c.rttMs ?? Infinity];
      for (const connection of this.connections) {
        if (usable(connection) && (found === undefined || ranksBefore(rank(connection), rank(found)))) found = connection;
      }
    }
    if (found !== undefined) this.prefer(found.brokerId);
    return found;
  }

  private movedOffRecently(connection: BrokerConnection, now: number): boolean {
    const until = this.movedOffUntil.get(connection.brokerId);
    if (until === undefined) return false;
    if (now < until) return true;
    this.movedOffUntil.delete(connection.brokerId);
    return false;
  }

  close(): void {
    this.closed = true;
    this.abort.abort(new RelayError('CLIENT_CLOSED', 'client closed'));
    for (const connection of [...this.connections]) connection.close();
  }

  /** The open pooled connection to broker `id`, if any. */
  connectionTo(id: string): BrokerConnection | undefined {
    for (const connection of this.connections) if (connection.brokerId === id && connection.open) return connection;
    return undefined;
  }

  /**
   * Asks for a connection to broker `id`, which leads a partition this client
   * publishes to, so its publishes go there directly instead of being
   * forwarded by another broker. A leader not pooled yet gets a link of its
   * own, beyond `poolSize` (the active broker and its warm standbys stay as
   * they are): one connection per broker at most, redialed with the reconnect
   * backoff while the broker leads partitions in use, and closed once it has
   * led none for {@link WANTED_MS} (unless it became the active one), looked
   * at on each call and every {@link REBALANCE_MS} while a link is held.
   * Called on every send that routes by leader; cheap when already pooled.
   */
  prefer(id: string): void {
    if (this.closed || !this.options.discovery) return;
    const now = Date.now();
    this.wanted.set(id, now);
    this.closeUnwantedLinks(now);
    if (this.leaderLinks.has(id) || this.connectionTo(id) !== undefined) return;
    const url = this.urlsById.get(id);
    if (url === undefined || this.dialingUrls.has(url)) return;
    this.leaderLinks.add(id);
    void this.runLeaderLink(id, url).finally(() => this.leaderLinks.delete(id));
  }

  /** One leader link: dial `url` (broker `id`) with backoff until connected, hold it, again while `id` is wanted. */
  private async runLeaderLink(id: string, url: string): Promise<void> {
    const wanted = (): boolean => !this.closed && this.isWanted(id, Date.now()) && this.connectionTo(id) === undefined;
    while (wanted()) {
      // No longer wanted, or a slot dials it (that connection serves): stop.
      const connection = await this.dialWithBackoff(() => (!wanted() || this.dialingUrls.has(url) ? undefined : url), Infinity);
      if (connection === undefined) return;
      this.linked.add(connection);
      // Swept while held too: once nothing uses the leader (its subscriptions ended), nothing calls prefer() again.
      const sweep = setInterval(() => this.closeUnwantedLinks(Date.now()), REBALANCE_MS);
      sweep.unref?.();
      await this.hold(connection);
      clearInterval(sweep);
      this.linked.delete(connection);
    }
  }

  /**
   * Closes leader links to brokers no partition in use has needed for
   * {@link WANTED_MS} (looked at once per {@link REBALANCE_MS}); a link that
   * became the active connection stays.
   */
  private closeUnwantedLinks(now: number): void {
    if (now - this.lastLinkSweepMs < REBALANCE_MS) return;
    this.lastLinkSweepMs = now;
    for (const connection of this.linked) {
      if (connection === this.active || !connection.open || this.isWanted(connection.brokerId, now)) continue;
      connection.close(new RelayError('NOT_LEADER', `broker ${connection.brokerId} leads no partition in use any more`));
    }
  }

  /**
   * {@link prefer}, telling whether a connection to `id` is open or being
   * dialed now (false: not soon, if ever — discovery off, an unknown broker,
   * no slot free for it).
   *
   * `urgent`: a broker refused a partition and named `id` as the way to it
   * (the brokers pooled cannot reach its leader, say across a split, while
   * this client's link to `id` may be open). While such requests are
   * outstanding (for {@link URGENT_MS}, or until connected) the pool may grow
   * to `poolSize` + {@link URGENT_EXTRA_SLOTS}, and a free slot dials `id`
   * first; when it is full, the standby wanted least recently is closed (at
   * most once per {@link URGENT_REBALANCE_MS}) and its slot dials `id`. The
   * active connection is never closed. Back to `poolSize` as connections
   * close (their slots end while no urgent request is outstanding).
   */
  reach(id: string, urgent = true): boolean {
    if (this.closed || !this.options.discovery) return false;
    const now = Date.now();
    this.wanted.set(id, now);
    if (this.connectionTo(id) !== undefined) return true;
    const url = this.urlsById.get(id);
    if (url === undefined) return false;
    if (this.dialingUrls.has(url)) return true;
    if (urgent) {
      this.urgent.set(id, now);
      if (this.runningSlots < this.wantedSlots()) {
        this.fillSlots(); // the new slot dials it first (nextCandidate)
        return true;
      }
      // A slot between dials (backing off) dials it next: nextCandidate puts brokers asked for urgently first.
      if (this.connections.size < this.wantedSlots()) return true;
      if (this.connections.size >= this.wantedSlots() && now - this.lastUrgentRebalanceMs >= URGENT_REBALANCE_MS) {
        const standbys = [...this.connections].filter((c) => c !== this.active && c.open);
        const wantedAt = (c: BrokerConnection): number => this.wanted.get(c.brokerId) ?? Number.NEGATIVE_INFINITY;
        const victim = standbys.sort((a, b) => wantedAt(a) - wantedAt(b))[0];
        if (victim !== undefined && wantedAt(victim) < now) {
          this.lastUrgentRebalanceMs = now;
          victim.close(new RelayError('NOT_LEADER', `moving this standby to broker ${id}, the way to a partition the pooled brokers cannot reach`));
          return true;
        }
      }
    }
    if (now - this.lastRebalanceMs < REBALANCE_MS) return false;
    if (this.connections.size < this.wantedSlots()) return false; // a free slot dials it next (nextCandidate prefers it)
    const victim = [...this.connections].find((c) => c !== this.active && c.open && !this.isWanted(c.brokerId, now));
    if (victim === undefined) return false;
    this.lastRebalanceMs = now;
    victim.close(new RelayError('NOT_LEADER', `moving this standby to broker ${id}, which leads a partition in use`));
    return true;
  }

  private isWanted(id: string, now: number): boolean {
    return now - (this.wanted.get(id) ?? Number.NEGATIVE_INFINITY) < WANTED_MS;
  }

  /** A `cluster` frame from a pooled broker: its readiness, then its view of the membership. */
  clusterFrame(connection: BrokerConnection, frame: ClusterFrame): void {
    if (frame.ready === false) this.notReady.add(connection);
    else this.notReady.delete(connection);
    this.learn(frame.cluster, frame.ready !== false);
    this.leaveIfNotReady();
  }

  /** Whether the broker behind `connection` said it can serve (absent: it did). */
  isReady(connection: BrokerConnection): boolean {
    return !this.notReady.has(connection);
  }

  /**
   * Applies a broker's view of the cluster to the discovered set. A broker
   * that is not ready (it has not joined, or lost its cluster) may see only
   * itself: its view adds brokers but removes none.
   */
  learn(view: ClusterView, ready = true): void {
    if (!this.options.discovery) return;
    for (const broker of view.brokers) {
      if (broker.load !== undefined) this.loads.set(broker.url, broker.load.connections + broker.load.partitionsLed);
      this.urlsById.set(broker.id, broker.url);
    }
    const seen = new Set(view.brokers.filter((b) => b.state !== 'dead').map((b) => b.url));
    const added = [...seen].filter((url) => !this.discovered.has(url) && !this.options.brokers.includes(url));
    const removed = ready ? [...this.discovered].filter((url) => !seen.has(url)) : [];
    for (const url of added) this.discovered.add(url);
    for (const url of removed) this.discovered.delete(url);
    if (added.length > 0 || removed.length > 0) {
      this.listener.brokersChanged(added, removed);
      this.fillSlots();
    }
  }

  private wantedSlots(): number {
    const { poolSize } = this.options;
    // A slot per urgent request beyond the connections open, up to URGENT_EXTRA_SLOTS beyond poolSize.
    const urgent = this.urgentUrls(Date.now()).size;
    const slots = urgent === 0 ? poolSize : Math.min(poolSize + URGENT_EXTRA_SLOTS, Math.max(poolSize, this.connections.size) + urgent);
    return Math.min(slots, this.knownBrokers.length);
  }

  /** URLs of brokers asked for urgently within {@link URGENT_MS} and not connected. */
  private urgentUrls(now: number): Set<string> {
    const urls = new Set<string>();
    for (const [id, since] of this.urgent) {
      if (now - since >= URGENT_MS || this.connectionTo(id) !== undefined) {
        this.urgent.delete(id);
        continue;
      }
      const url = this.urlsById.get(id);
      if (url !== undefined) urls.add(url);
    }
    return urls;
  }

  private fillSlots(): void {
    while (!this.closed && this.runningSlots < this.wantedSlots()) {
      this.runningSlots++;
      void this.runSlot().finally(() => {
        this.runningSlots--;
        if (!this.closed && this.runningSlots === 0 && this.connections.size === 0) {
          this.listener.gaveUp(new RelayError('NOT_CONNECTED', 'no broker reachable; reconnect attempts exhausted'));
        }
      });
    }
  }

  /** One slot: dial (with backoff) until connected, hold the connection until it closes, repeat. */
  private async runSlot(): Promise<void> {
    const { maxAttempts } = this.options.reconnect;
    while (!this.closed && this.runningSlots <= this.wantedSlots()) {
      const connection = await this.dialWithBackoff(() => this.nextCandidate(), maxAttempts === Infinity ? Infinity : maxAttempts - 1);
      if (connection === undefined) return; // aborted by close(), or attempts exhausted
      await this.hold(connection);
    }
  }

  /**
   * Dials the URL `next` names, with the reconnect backoff between failed
   * attempts (p-retry), until one connects; undefined once the pool closed,
   * `next` names none (no longer needed) or `retries` ran out.
   */
  private async dialWithBackoff(next: () => string | undefined, retries: number): Promise<BrokerConnection | undefined> {
    const { reconnect } = this.options;
    let url = '';
    try {
      return await pRetry(
        async (attempt) => {
          const candidate = next();
          if (candidate === undefined) throw new AbortError('no longer needed');
          url = candidate;
          this.dialingUrls.add(url);
          this.listener.dialing(url, attempt);
          try {
            return await this.dial(url);
          } finally {
            this.dialingUrls.delete(url);
          }
        },
        {
          retries,
          minTimeout: reconnect.initialDelayMs,
          maxTimeout: reconnect.maxDelayMs,
          factor: reconnect.factor,
          randomize: reconnect.jitter,
          signal: this.abort.signal,
          onFailedAttempt: ({ error, attemptNumber }) => {
            this.lastFailureMs.set(url, Date.now());
            if (!this.closed) this.listener.dialFailed(url, attemptNumber, asRelayError(error));
          },
        },
      );
    } catch {
      return undefined;
    }
  }

  private async dial(url: string): Promise<BrokerConnection> {
    const connection = await BrokerConnection.open(url, this.options);
    if (this.closed) {
      connection.close();
      throw new RelayError('CLIENT_CLOSED', 'client closed');
    }
    for (const other of this.connections) {
      if (other.brokerId === connection.brokerId) {
        connection.close();
        throw new RelayError('NOT_CONNECTED', `${url} is broker ${connection.brokerId}, already pooled via ${other.url}`);
      }
    }
    // Another dial reached the same broker and is on its way to being held: one connection per broker.
    if (this.dialedNotHeld.has(connection.brokerId)) {
      connection.close();
      throw new RelayError('NOT_CONNECTED', `${url} is broker ${connection.brokerId}, just connected by another dial`);
    }
    this.dialedNotHeld.add(connection.brokerId);
    return connection;
  }

  /** Uses a connection until it closes, keeping the active choice up to date. */
  private hold(connection: BrokerConnection): Promise<void> {
    return new Promise((resolve) => {
      this.connections.add(connection);
      this.dialedNotHeld.delete(connection.brokerId);
      connection.on('frame', (frame) => this.listener.frame(connection, frame));
      // Silence is judged sooner while answers are owed and another pooled broker could take over: answers owed
      // here, or owed elsewhere — a failover may move them here, so a stopped standby must be found out first.
      connection.awaitingAnswers = () => {
        const others = [...this.connections].filter((other) => other !== connection && other.open);
        return others.length > 0 && (this.owesAnswers(connection) || others.some((other) => this.owesAnswers(other)));
      };
      connection.once('closed', (reason) => {
        this.connections.delete(connection);
        this.listener.connectionClosed(connection);
        if (this.active === connection) {
          this.active = this.bestStandby();
          this.activeSinceMs = Date.now();
          this.listener.activeChanged(this.active, connection, reason);
        }
        resolve();
      });
      const ready = connection.welcome.ready !== false;
      if (!ready) this.notReady.add(connection);
      this.learn(connection.welcome.cluster, ready);
      if (this.active === undefined) {
        this.active = connection;
        this.activeSinceMs = Date.now();
        this.listener.activeChanged(connection, undefined, undefined);
      }
      this.listener.connectionOpened?.(connection);
      this.leaveIfNotReady();
    });
  }

  /** Whether requests or publishes sent on `connection` await their answers. */
  private owesAnswers(connection: BrokerConnection): boolean {
    return connection.requestsPending || this.listener.awaitsAnswers?.(connection) === true;
  }

  /**
   * Moves traffic off an active broker that is not ready once a ready one is
   * pooled: closing it hands over to the best standby, as any failover does.
   * Without a ready standby it stays (it may yet become ready) while the
   * other slots dial.
   */
  private leaveIfNotReady(): void {
    const active = this.active;
    if (active === undefined || !this.notReady.has(active) || !active.open) return;
    const standby = [...this.connections].find((c) => c !== active && c.open && !this.notReady.has(c));
    if (standby === undefined) return;
    this.lastFailureMs.set(active.url, Date.now()); // redialed last, as a standby at most
    active.close(new RelayError('NOT_READY', `broker ${active.brokerId} is not ready; moving to broker ${standby.brokerId}`));
  }

  /**
   * The standby to move traffic to: a ready one before one that is not, one
   * answering its pings before one with a ping overdue (a stopped broker not
   * yet judged dead), one not left by a recent {@link moveOff} before one
   * that was, then the shortest round trip.
   */
  private bestStandby(): BrokerConnection | undefined {
    const now = Date.now();
    const rank = (c: BrokerConnection): number[] => [
      this.notReady.has(c) ? 1 : 0,
      c.pingOverdue(now) ? 1 : 0, // a live broker cut off from the coordinator before one that may be dead
      this.movedOffRecently(c, now) ? 1 : 0,
      c.rttMs ?? Infinity,
    ];
    let best: { connection: BrokerConnection; rank: number[] } | undefined;
    for (const connection of this.connections) {
      if (!connection.open) continue;
      const candidate = { connection, rank: rank(connection) };
      if (best === undefined || ranksBefore(candidate.rank, best.rank)) best = candidate;
    }
    return best?.connection;
  }

  /**
   * The next broker to dial: known, not connected, not being dialed. Those
   * that never failed come first, then those that failed longest ago; among
   * equals a leader of partitions in use (see {@link prefer}), then the least
   * loaded (connections plus partitions led, as advertised), then a random
   * one, so clients spread over the cluster without a balancer.
   */
  private nextCandidate(): string {
    const inUse = new Set([...this.connections].map((c) => c.url));
    const free = this.knownBrokers.filter((url) => !inUse.has(url) && !this.dialingUrls.has(url));
    const candidates = shuffled(free.length > 0 ? free : this.knownBrokers);
    const now = Date.now();
    const wantedUrls = new Set([...this.urlsById].filter(([id]) => this.isWanted(id, now)).map(([, url]) => url));
    const urgentUrls = this.urgentUrls(now);
    // Asked for urgently, and not just failed: first, whatever older failures say.
    const urgentNow = (url: string): number =>
      Number(urgentUrls.has(url) && now - (this.lastFailureMs.get(url) ?? Number.NEGATIVE_INFINITY) >= FRESH_FAILURE_MS);
    candidates.sort(
      (a, b) =>
        urgentNow(b) - urgentNow(a) ||
        (this.lastFailureMs.get(a) ?? 0) - (this.lastFailureMs.get(b) ?? 0) ||
        Number(wantedUrls.has(b)) - Number(wantedUrls.has(a)) ||
        (this.loads.get(a) ?? 0) - (this.loads.get(b) ?? 0),
    );
    return candidates[0] as string;
  }
}

/** Whether rank `a` comes strictly before `b`, compared element by element. */
function ranksBefore(a: number[], b: number[]): boolean {
  for (let i = 0; i < a.length; i++) if ((a[i] as number) !== (b[i] as number)) return (a[i] as number) < (b[i] as number);
  return false;
}

function asRelayError(error: unknown): RelayError {
  return error instanceof RelayError ? error : new RelayError('NOT_CONNECTED', String(error), { cause: error });
}
