import { connect, type Message, type RelayClient, type Subscription } from '@relaymq/sdk';
import type { Rng } from './rng.js';

/** The topic every producer writes and every subscriber reads. */
export const TOPIC = 'chaos.t0';
/** Keys per producer: enough to spread over the partitions, few enough to give each a long ordered history. */
export const KEYS_PER_PRODUCER = 8;
/** Publishes one producer keeps in flight, and its target rate. */
const PRODUCER_WINDOW = 16;
const PRODUCER_RATE_PER_S = 100;
/** Time a durable subscriber stays connected before it is closed and reopened (seeded in this range). */
const DURABLE_SESSION_MS = { min: 4000, max: 12_000 };
/** Bounds of the waits of the workload itself. */
const SUBSCRIBE_TIMEOUT_MS = 10_000;
const CLOSE_TIMEOUT_MS = 5000;

/** A message's identity, carried as its data: producer, key and that key's sequence number. */
export function messageId(producer: string, key: string, seq: number): string {
  return `${producer}|${key}|${seq}`;
}

export function parseMessageId(id: string): { producer: string; key: string; seq: number } | undefined {
  const match = /^([^|]+)\|([^|]+)\|(\d+)$/.exec(id);
  return match === null ? undefined : { producer: match[1] as string, key: match[2] as string, seq: Number(match[3]) };
}

/** One acknowledged publish. */
export interface Ack {
  id: string;
  producer: string;
  key: string;
  seq: number;
  partition: number;
  offset: number;
  duplicate: boolean;
  /** Ms since the run started. */
  atMs: number;
}

/** One refused publish (outcome: refused, or unknown for TIMEOUT-like codes). */
export interface Refusal {
  id: string;
  code: string;
  atMs: number;
  /** The error's message: says which broker path refused it. */
  message?: string;
}

/** A change of the broker a producer's client publishes through (its `failover`, `disconnected` and `connected` events). */
export interface ClientMove {
  /** Ms since the run started. */
  atMs: number;
  event: 'failover' | 'disconnected' | 'connected';
  /** Broker ids: `from` for failover and disconnected, `to` for failover and connected. */
  from?: string;
  to?: string;
  reason?: string;
}

/** What one subscriber received. */
export interface SubscriberLog {
  name: string;
  durable: boolean;
  /** Per session (a durable subscriber reopens), per partition: offsets and ids in arrival order. */
  sessions: Array<Map<number, Array<{ offset: number; id: string }>>>;
  gaps: number;
  errors: string[];
}

/** The consumer group of a run: its name, members (one broker each), session timeout and commit interval. */
export const GROUP = 'chaos-group';
export const GROUP_MEMBERS = 3;
/**
 * Shorter than the 10 s default (as in test/group-processes.test.ts) so a
 * member cut off by a fault can lose its partitions within the run: at 6 s,
 * seed 4001 (3/3) saw only the 5 rebalances of the members joining.
 */
const GROUP_SESSION_TIMEOUT_MS = 3000;
/**
 * Positions are committed this often (the SDK's `commit.intervalMs`). A member
 * that dies leaves about this much to be handled again; one cut off from the
 * coordinator, up to the session timeout more (docs/consumer-groups.md).
 */
const GROUP_COMMIT_INTERVAL_MS = 500;
/** Events one member records (a 100 s run handles a few tens of thousands): past it, the log says it overflowed. */
const MAX_GROUP_EVENTS = 1_000_000;

/**
 * One thing a group member saw, in the order it saw it. `at` is one counter
 * shared by every member of the run (they live in this process), so events of
 * different members are ordered too: a redelivery can be checked to come
 * after the assignment change that allows it.
 */
export type GroupEvent =
  | { kind: 'assigned'; at: number; atMs: number; partitions: number[] }
  | { kind: 'revoked'; at: number; atMs: number; partitions: number[]; reason: string }
  | { kind: 'handled'; at: number; atMs: number; partition: number; offset: number; id: string };

/** What one consumer-group member saw. */
export interface GroupMemberLog {
  name: string;
  /** The one broker its client was seeded with (its id, or its URL). */
  broker: string;
  events: GroupEvent[];
  /** Events not recorded past {@link MAX_GROUP_EVENTS}. */
  overflowed: number;
  errors: string[];
  /** The member's client changing brokers (at most {@link MAX_GROUP_MOVES}): which broker it heartbeated through when it lost its session. */
  moves: ClientMove[];
}

/** Client moves kept per group member. */
const MAX_GROUP_MOVES = 500;

const errorCode = (err: unknown): string => (typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : String(err));

const clientOptions = (brokers: string[], id: string) => ({
  brokers,
  clientId: id,
  connectTimeoutMs: 5000,
  reconnect: { initialDelayMs: 50, maxDelayMs: 1000 },
  closeTimeoutMs: 2000,
  publishTimeoutMs: 20_000,
});

/** A keyed producer: publishes at a bounded rate with a bounded window, records every outcome. */
class Producer {
  readonly acks: Ack[] = [];
  readonly refusals: Refusal[] = [];
  readonly moves: ClientMove[] = [];
  private readonly nextSeq = new Map<string, number>();
  private inFlight = 0;
  private stopped = false;
  private readonly settled = new Set<Promise<void>>();
  private wake: (() => void) | undefined;

  private constructor(
    readonly name: string,
    private readonly client: RelayClient,
    private readonly rng: Rng,
    private readonly startedAtMs: number,
  ) {}

  static async start(name: string, brokers: string[], rng: Rng, startedAtMs: number): Promise<Producer> {
    const client = await connect({ ...clientOptions(brokers, name), producerId: name });
    const producer = new Producer(name, client, rng, startedAtMs);
    const at = (): number => Date.now() - startedAtMs;
    client.on('failover', (e) => producer.moves.push({ atMs: at(), event: 'failover', from: e.from.id, to: e.to.id, reason: e.reason.message }));
    client.on('disconnected', (e) => producer.moves.push({ atMs: at(), event: 'disconnected', from: e.broker.id, reason: e.reason.message }));
    client.on('connected', (e) => producer.moves.push({ atMs: at(), event: 'connected', to: e.broker.id }));
    void producer.loop();
    return producer;
  }

  get firstAck(): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => (this.acks.length > 0 || this.stopped ? resolve() : void setTimeout(check, 20));
      check();
    });
  }

  private async loop(): Promise<void> {
    const intervalMs = 1000 / PRODUCER_RATE_PER_S;
    let nextAt = Date.now();
    while (!this.stopped) {
      if (this.inFlight >= PRODUCER_WINDOW) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        continue;
      }
      const wait = nextAt - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      nextAt = Math.max(nextAt + intervalMs, Date.now() - 1000);
      if (this.stopped) break;
      this.publishOne();
    }
  }

  private publishOne(): void {
    const key = `${this.name}-k${this.rng.int(0, KEYS_PER_PRODUCER - 1)}`;
    const seq = this.nextSeq.get(key) ?? 0;
    this.nextSeq.set(key, seq + 1);
    const id = messageId(this.name, key, seq);
    this.inFlight++;
    const done = this.client.publish(TOPIC, id, { key }).then(
      (r) => {
        this.acks.push({ id, producer: this.name, key, seq, partition: r.partition, offset: r.offset, duplicate: r.duplicate, atMs: Date.now() - this.startedAtMs });
      },
      (err: unknown) => {
        this.refusals.push({ id, code: errorCode(err), atMs: Date.now() - this.startedAtMs, message: err instanceof Error ? err.message : String(err) });
      },
    );
    const tracked = done.finally(() => {
      this.inFlight--;
      this.settled.delete(tracked);
      this.wake?.();
      this.wake = undefined;
    });
    this.settled.add(tracked);
  }

  /** Stops publishing and waits (bounded) for every publish in flight to settle. */
  async stop(timeoutMs: number): Promise<number> {
    this.stopped = true;
    this.wake?.();
    await Promise.race([Promise.all([...this.settled]), new Promise((resolve) => setTimeout(resolve, timeoutMs))]);
    return this.settled.size;
  }

  close(): Promise<void> {
    return this.client.close();
  }

  stats(): ReturnType<RelayClient['stats']> {
    return this.client.stats();
  }
}

/** A live (from earliest, one session) or durable (reopened now and then) subscriber. */
class Subscriber {
  readonly log: SubscriberLog;
  private client: RelayClient | undefined;
  private subscription: Subscription | undefined;
  private stopped = false;
  private cycling: Promise<void> = Promise.resolve();

  constructor(
    name: string,
    durable: boolean,
    private readonly brokers: string[],
    private readonly rng: Rng,
  ) {
    this.log = { name, durable, sessions: [], gaps: 0, errors: [] };
  }

  async start(): Promise<void> {
    await this.open();
    if (this.log.durable) this.cycling = this.cycle();
  }

  /** Total messages received. */
  get received(): number {
    return this.log.sessions.reduce((n, s) => n + [...s.values()].reduce((m, l) => m + l.length, 0), 0);
  }

  /** Highest offset + 1 received per partition in the current session... or any session. */
  reached(partition: number): number {
    let max = 0;
    for (const s of this.log.sessions) for (const m of s.get(partition) ?? []) max = Math.max(max, m.offset + 1);
    return max;
  }

  private async open(): Promise<void> {
    const session = new Map<number, Array<{ offset: number; id: string }>>();
    const client = await connect(clientOptions(this.brokers, `${this.log.name}-${this.log.sessions.length}`));
    this.client = client;
    client.on('gap', () => this.log.gaps++);
    client.on('error', (err) => this.log.errors.push(String(err)));
    this.log.sessions.push(session);
    const handler = (message: Message): void => {
      let list = session.get(message.partition);
      if (list === undefined) session.set(message.partition, (list = []));
      list.push({ offset: message.offset, id: typeof message.data === 'string' ? message.data : JSON.stringify(message.data) });
    };
    const options = this.log.durable ? { from: 'earliest' as const, durable: this.log.name } : { from: 'earliest' as const };
    this.subscription = await withTimeout(client.subscribe(TOPIC, handler, options), SUBSCRIBE_TIMEOUT_MS, `${this.log.name} to subscribe`);
  }

  /** Closes and reopens the durable subscriber now and then (a consumer restart), bounded by `stop()`. */
  private async cycle(): Promise<void> {
    while (!this.stopped) {
      await new Promise((resolve) => setTimeout(resolve, this.rng.int(DURABLE_SESSION_MS.min, DURABLE_SESSION_MS.max)));
      if (this.stopped) return;
      await this.closeClient();
      for (let attempt = 0; !this.stopped; attempt++) {
        try {
          await this.open();
          break;
        } catch (err) {
          this.log.errors.push(`reopen: ${String(err)}`);
          await this.closeClient();
          await new Promise((resolve) => setTimeout(resolve, Math.min(200 * 2 ** attempt, 2000)));
        }
      }
    }
  }

  private async closeClient(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.subscription = undefined;
    await withTimeout(client?.close() ?? Promise.resolve(), CLOSE_TIMEOUT_MS, `${this.log.name} to close`).catch((err: unknown) => this.log.errors.push(String(err)));
  }

  /** Stops reopening; the current session keeps receiving until `close()`. */
  async stopCycling(): Promise<void> {
    this.stopped = true;
    await this.cycling;
    if (this.client === undefined) await this.open().catch((err: unknown) => this.log.errors.push(`final open: ${String(err)}`));
  }

  async close(): Promise<void> {
    this.stopped = true;
    await this.closeClient();
  }
}

/** A consumer-group member: one client seeded with one broker, in the group for the whole run. */
class GroupMember {
  readonly log: GroupMemberLog;
  private client: RelayClient | undefined;

  /** Highest offset + 1 handled per partition (kept as it goes: the final catch-up polls it). */
  private readonly reachedBy = new Map<number, number>();

  constructor(
    name: string,
    private readonly broker: string,
    brokerId: string,
    private readonly clock: { next: () => number; ms: () => number },
  ) {
    this.log = { name, broker: brokerId, events: [], overflowed: 0, errors: [], moves: [] };
  }

  private record(event: GroupEvent): void {
    if (event.kind === 'handled') this.reachedBy.set(event.partition, Math.max(this.reachedBy.get(event.partition) ?? 0, event.offset + 1));
    if (this.log.events.length < MAX_GROUP_EVENTS) this.log.events.push(event);
    else this.log.overflowed++;
  }

  async start(): Promise<void> {
    const client = await connect({ ...clientOptions([this.broker], this.log.name), commit: { intervalMs: GROUP_COMMIT_INTERVAL_MS } });
    this.client = client;
    // Listeners first: the first `assigned` can arrive before subscribe() resolves.
    client.on('assigned', (e) => this.record({ kind: 'assigned', at: this.clock.next(), atMs: this.clock.ms(), partitions: e.partitions.map((p) => p.partition) }));
    client.on('revoked', (e) => this.record({ kind: 'revoked', at: this.clock.next(), atMs: this.clock.ms(), partitions: e.partitions.map((p) => p.partition), reason: e.reason }));
    client.on('error', (err) => {
      if (this.log.errors.length < 100) this.log.errors.push(String(err));
    });
    const move = (m: ClientMove): void => void (this.log.moves.length < MAX_GROUP_MOVES && this.log.moves.push(m));
    client.on('failover', (e) => move({ atMs: this.clock.ms(), event: 'failover', from: e.from.id, to: e.to.id, reason: e.reason.message }));
    client.on('disconnected', (e) => move({ atMs: this.clock.ms(), event: 'disconnected', from: e.broker.id, reason: e.reason.message }));
    client.on('connected', (e) => move({ atMs: this.clock.ms(), event: 'connected', to: e.broker.id }));
    const handler = (message: Message): void => {
      this.record({ kind: 'handled', at: this.clock.next(), atMs: this.clock.ms(), partition: message.partition, offset: message.offset, id: typeof message.data === 'string' ? message.data : JSON.stringify(message.data) });
    };
    await withTimeout(client.subscribe(TOPIC, handler, { group: GROUP, from: 'earliest', sessionTimeoutMs: GROUP_SESSION_TIMEOUT_MS }), SUBSCRIBE_TIMEOUT_MS, `${this.log.name} to join ${GROUP}`);
  }

  /** Highest offset + 1 handled per partition by this member. */
  reached(partition: number): number {
    return this.reachedBy.get(partition) ?? 0;
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await withTimeout(client?.close() ?? Promise.resolve(), CLOSE_TIMEOUT_MS, `${this.log.name} to close`).catch((err: unknown) => this.log.errors.push(String(err)));
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]);
}

export interface WorkloadOptions {
  brokers: string[];
  /** The brokers' ids, in the order of `brokers` (names the broker each group member was seeded with). */
  brokerIds?: string[];
  producers: number;
  rng: Rng;
  startedAtMs: number;
}

/** The producers and subscribers of a run. */
export class Workload {
  private constructor(
    readonly producers: Producer[],
    readonly subscribers: Subscriber[],
    readonly members: GroupMember[],
  ) {}

  /**
   * Starts the producers, waits for the first ack (the topic exists), then one
   * live and one durable subscriber from earliest, and a consumer group of
   * {@link GROUP_MEMBERS} members, each seeded with a different broker.
   */
  static async start(options: WorkloadOptions): Promise<Workload> {
    const producers: Producer[] = [];
    const subscribers: Subscriber[] = [];
    const members: GroupMember[] = [];
    const workload = new Workload(producers, subscribers, members);
    try {
      for (let i = 1; i <= options.producers; i++) producers.push(await Producer.start(`p${i}`, options.brokers, options.rng.fork(`producer-${i}`), options.startedAtMs));
      await withTimeout((producers[0] as Producer).firstAck, 30_000, 'the first acknowledgement');
      subscribers.push(new Subscriber('live', false, options.brokers, options.rng.fork('live')));
      subscribers.push(new Subscriber('durable', true, options.brokers, options.rng.fork('durable')));
      for (const s of subscribers) await s.start();
      let at = 0;
      const clock = { next: (): number => at++, ms: (): number => Date.now() - options.startedAtMs };
      for (let i = 0; i < GROUP_MEMBERS; i++) members.push(new GroupMember(`g${i + 1}`, options.brokers[i % options.brokers.length] as string, options.brokerIds?.[i % options.brokers.length] ?? options.brokers[i % options.brokers.length] as string, clock));
      for (const m of members) await m.start();
    } catch (err) {
      await workload.close();
      throw err;
    }
    return workload;
  }

  get acks(): Ack[] {
    return this.producers.flatMap((p) => p.acks);
  }

  get refusals(): Refusal[] {
    return this.producers.flatMap((p) => p.refusals);
  }

  /** Stops publishing; returns how many publishes were still unsettled after `timeoutMs`. */
  async stopProducing(timeoutMs: number): Promise<number> {
    const pending = await Promise.all(this.producers.map((p) => p.stop(timeoutMs)));
    await Promise.all(this.subscribers.map((s) => s.stopCycling()));
    return pending.reduce((a, b) => a + b, 0);
  }

  /** Waits (bounded) until every subscriber, and the group (some member per partition), reached `ends` (per partition); returns whether they did. */
  async waitDelivered(ends: Map<number, number>, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    const groupReached = (p: number): number => Math.max(0, ...this.members.map((m) => m.reached(p)));
    const done = (): boolean => this.subscribers.every((s) => [...ends].every(([p, end]) => s.reached(p) >= end)) && [...ends].every(([p, end]) => groupReached(p) >= end);
    while (!done() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    return done();
  }

  get logs(): SubscriberLog[] {
    return this.subscribers.map((s) => s.log);
  }

  get groupLogs(): GroupMemberLog[] {
    return this.members.map((m) => m.log);
  }

  async close(): Promise<void> {
    await Promise.all([
      ...this.producers.map((p) => withTimeout(p.close(), CLOSE_TIMEOUT_MS, `${p.name} to close`).catch(() => {})),
      ...this.subscribers.map((s) => s.close()),
      ...this.members.map((m) => m.close()),
    ]);
  }
}
