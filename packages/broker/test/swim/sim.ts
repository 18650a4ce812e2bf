/**
 * A deterministic gossip simulator: N SWIM cores in one process, one seed.
 *
 * Each global tick: every up node whose turn it is ticks (in id order), its
 * output goes onto the simulated network, then every message due this tick
 * is delivered (messages sent with delay 0 arrive within the same tick: a
 * sub-tick LAN round trip). The network drops, delays, duplicates and
 * partitions (one-way or symmetric) messages; nodes crash, restart with a
 * new process, and may be slow: extra delay and loss on all their messages,
 * and ticking (and processing) only every k-th tick.
 *
 * Messages travel as JSON and are validated by `parseSwimMessage`, as the
 * peer transport would hand them over. Checkers observe events and run after
 * every tick; the trace records every event so a seed replays exactly.
 */
import { Swim, type SwimTestKnobs } from '../../src/core/swim/swim.js';
import { resolveSwimConfig, type SwimConfig, type SwimConfigOptions } from '../../src/core/swim/config.js';
import type { Member, MemberMeta, MembershipEvent, SeedPeer, SwimMessage } from '../../src/core/swim/types.js';
import { parseSwimMessage } from '../../src/core/swim/validate.js';
import { Prng, hash32, nodeRandom } from './random.js';

export interface NetworkFaults {
  /** Probability a message is lost. */
  lossRate: number;
  /** Delay of a message, uniform in [min, max] ticks; 0 arrives within the same tick. */
  minDelayTicks: number;
  maxDelayTicks: number;
  /** Probability a message is delivered twice (the copy with its own delay). */
  duplicateRate: number;
}

/** A slow but alive node: all its traffic is delayed and lossy, and it may tick less often. */
export interface SlowMode {
  /** Extra delay on each message to or from it, uniform in [0, extraDelayMaxTicks]. */
  extraDelayMaxTicks: number;
  /** Extra loss on each message to or from it. */
  lossRate: number;
  /** It ticks, and processes messages, only every `tickEvery` global ticks. */
  tickEvery: number;
}

export interface SimOptions {
  seed: number;
  /** Node count (ids n1..nN) or explicit ids. */
  nodes: number | string[];
  config?: SwimConfigOptions;
  network?: Partial<NetworkFaults>;
  knobs?: Partial<SwimTestKnobs>;
  /** Seeds every node joins with: the first node only (default) or every other node. */
  seeds?: 'first' | 'all';
}

export interface SimObserver {
  /** Called for every membership event, as it is drained. */
  onEvent?(sim: Simulation, observer: string, event: MembershipEvent): void;
  /** Called after every global tick. */
  afterTick?(sim: Simulation): void;
}

interface SimNode {
  id: string;
  address: string;
  meta: MemberMeta;
  swim: Swim | undefined;
  /** Process number: 0 for the first start, +1 per restart. */
  life: number;
  slow: SlowMode | undefined;
  /** Highest incarnation this node ever held, over all its lives. */
  maxIncarnation: number;
  /** Messages that arrived while a slow node was not processing. */
  inbox: Array<{ from: string; payload: unknown }>;
}

interface Envelope {
  from: string;
  to: string;
  /** JSON text, as on a wire. */
  payload: string;
}

const DEFAULT_FAULTS: NetworkFaults = { lossRate: 0, minDelayTicks: 0, maxDelayTicks: 1, duplicateRate: 0 };
/** A tick delivering more than this many messages is a livelock in the system under test. */
const MAX_DELIVERIES_PER_TICK = 100_000;
/** Trace lines kept; older lines are dropped (the determinism test compares full short runs). */
const MAX_TRACE_LINES = 200_000;

export class Simulation {
  readonly seed: number;
  readonly rng: Prng;
  readonly ids: readonly string[];
  /** The resolved configuration every node runs with. */
  readonly swimConfig: Readonly<SwimConfig>;
  readonly trace: string[] = [];
  tick = 0;
  faults: NetworkFaults;
  private readonly nodes = new Map<string, SimNode>();
  private readonly inflight = new Map<number, Envelope[]>();
  /** Directed links that drop everything: `from>to`. */
  private readonly blocked = new Set<string>();
  private readonly observers: SimObserver[] = [];
  private readonly config: SwimConfigOptions | undefined;
  private readonly knobs: SwimTestKnobs;
  private readonly seedMode: 'first' | 'all';
  /** Messages handed to the network, delivered, dropped, rejected by validation. */
  readonly counters = { sent: 0, delivered: 0, dropped: 0, invalid: 0 };

  constructor(options: SimOptions) {
    this.seed = options.seed;
    this.rng = new Prng(hash32(`net/${options.seed}`));
    this.ids = typeof options.nodes === 'number' ? Array.from({ length: options.nodes }, (_, i) => `n${i + 1}`) : [...options.nodes];
    this.faults = { ...DEFAULT_FAULTS, ...options.network };
    this.config = options.config;
    this.swimConfig = resolveSwimConfig(options.config);
    this.knobs = { refute: true, awareness: true, ...options.knobs };
    this.seedMode = options.seeds ?? 'first';
    this.ids.forEach((id, i) => {
      this.nodes.set(id, {
        id,
        address: `10.0.0.${i + 1}:7501`,
        meta: { clientUrl: `ws://10.0.0.${i + 1}:7401` },
        swim: undefined,
        life: -1,
        slow: undefined,
        maxIncarnation: 0,
        inbox: [],
      });
    });
  }

  observe(observer: SimObserver): this {
    this.observers.push(observer);
    return this;
  }

  /** Starts every node (in id order) and has it join its seeds. */
  startAll(): this {
    for (const id of this.ids) this.start(id);
    return this;
  }

  /** Starts (or restarts) a node's process: a new core with a new random stream, joining its seeds. */
  start(id: string, options: { incarnation?: number; meta?: MemberMeta } = {}): void {
    const node = this.node(id);
    node.life++;
    node.inbox = [];
    if (options.meta !== undefined) node.meta = options.meta;
    const swim = new Swim(
      {
        id,
        address: node.address,
        meta: node.meta,
        random: nodeRandom(this.seed, id, node.life),
        ...(this.config === undefined ? {} : { config: this.config }),
        ...(options.incarnation === undefined ? {} : { incarnation: options.incarnation }),
      },
      this.knobs,
    );
    node.swim = swim;
    this.log(`start ${id} life=${node.life} inc=${swim.local().incarnation}`);
    swim.join(this.seedsFor(id));
    this.flush(node);
  }

  /** Stops a node's process: it stops ticking, and messages to it are lost. */
  crash(id: string): void {
    const node = this.node(id);
    node.swim = undefined;
    node.inbox = [];
    this.log(`crash ${id}`);
  }

  /** The node announces it leaves; it keeps running until `stop`. */
  leave(id: string): void {
    this.swimOf(id).leave();
    this.log(`leave ${id}`);
    this.flush(this.node(id));
  }

  updateMeta(id: string, meta: MemberMeta): void {
    const node = this.node(id);
    node.meta = meta;
    this.swimOf(id).updateMeta(meta);
    this.log(`meta ${id} ${JSON.stringify(meta)}`);
    this.flush(node);
  }

  setSlow(id: string, slow: SlowMode | undefined): void {
    this.node(id).slow = slow;
    this.log(`slow ${id} ${JSON.stringify(slow ?? null)}`);
  }

  /** Drops every message from a member of `a` to a member of `b` (and back unless `oneWay`). */
  partition(a: readonly string[], b: readonly string[], options: { oneWay?: boolean } = {}): void {
    for (const x of a) {
      for (const y of b) {
        this.blocked.add(`${x}>${y}`);
        if (options.oneWay !== true) this.blocked.add(`${y}>${x}`);
      }
    }
    this.log(`partition ${a.join(',')} ${options.oneWay === true ? '->' : '|'} ${b.join(',')}`);
  }

  heal(): void {
    this.blocked.clear();
    this.log('heal');
  }

  get partitioned(): boolean {
    return this.blocked.size > 0;
  }

  isUp(id: string): boolean {
    return this.node(id).swim !== undefined;
  }

  /** Up nodes that have not announced leaving. */
  liveIds(): string[] {
    return this.ids.filter((id) => {
      const swim = this.node(id).swim;
      return swim !== undefined && swim.local().state !== 'left';
    });
  }

  swimOf(id: string): Swim {
    const swim = this.node(id).swim;
    if (swim === undefined) throw new Error(`${id} is down`);
    return swim;
  }

  /** What `observer` believes about `id`. */
  view(observer: string, id: string): Member | undefined {
    return this.swimOf(observer).member(id);
  }

  /** The meta node `id` currently advertises (ground truth). */
  metaOf(id: string): MemberMeta {
    return this.node(id).meta;
  }

  /** Process number of a node: 0 for its first start, +1 per restart. */
  lifeOf(id: string): number {
    return this.node(id).life;
  }

  maxIncarnation(id: string): number {
    return this.node(id).maxIncarnation;
  }

  run(ticks: number): void {
    for (let i = 0; i < ticks; i++) this.step();
  }

  /** Steps until `done()` holds (checked after each tick); the ticks it took, or undefined if it did not within `maxTicks`. */
  runUntil(done: () => boolean, maxTicks: number): number | undefined {
    const start = this.tick;
    for (let i = 0; i < maxTicks; i++) {
      this.step();
      if (done()) return this.tick - start;
    }
    return undefined;
  }

  /** One global tick. */
  step(): void {
    this.tick++;
    for (const id of this.ids) {
      const node = this.node(id);
      if (node.swim === undefined || !this.turnOf(node)) continue;
      // A slow node processes what queued up while it was not running, then ticks.
      const inbox = node.inbox;
      node.inbox = [];
      for (const m of inbox) this.deliverTo(node, m.from, m.payload);
      node.swim.tick();
      this.flush(node);
    }
    const due = this.inflight.get(this.tick);
    let deliveries = 0;
    while (due !== undefined && due.length > 0) {
      if (++deliveries > MAX_DELIVERIES_PER_TICK) throw new Error(`seed ${this.seed}: more than ${MAX_DELIVERIES_PER_TICK} deliveries in tick ${this.tick}`);
      const envelope = due.shift() as Envelope;
      const node = this.node(envelope.to);
      if (node.swim === undefined) {
        this.counters.dropped++;
        continue;
      }
      const payload: unknown = JSON.parse(envelope.payload);
      if (this.turnOf(node)) this.deliverTo(node, envelope.from, payload);
      else node.inbox.push({ from: envelope.from, payload });
    }
    this.inflight.delete(this.tick);
    for (const observer of this.observers) observer.afterTick?.(this);
  }

  private turnOf(node: SimNode): boolean {
    const every = node.slow?.tickEvery ?? 1;
    return every <= 1 || (this.tick + hash32(node.id)) % every === 0;
  }

  private deliverTo(node: SimNode, from: string, payload: unknown): void {
    const swim = node.swim;
    if (swim === undefined) return;
    const parsed = parseSwimMessage(payload);
    if (!parsed.ok) {
      this.counters.invalid++;
      throw new Error(`seed ${this.seed}: invalid message from ${from}: ${parsed.reason}`);
    }
    this.counters.delivered++;
    swim.step(from, parsed.message);
    this.flush(node);
  }

  /** Drains a node: its messages onto the network, its events to the trace and observers. */
  private flush(node: SimNode): void {
    const swim = node.swim;
    if (swim === undefined) return;
    const { messages, events } = swim.drain();
    node.maxIncarnation = Math.max(node.maxIncarnation, swim.local().incarnation);
    for (const event of events) {
      this.trace.push(`${this.tick} ${node.id} ${event.type} ${event.member.id}@${event.member.incarnation}`);
      for (const observer of this.observers) observer.onEvent?.(this, node.id, event);
    }
    if (this.trace.length > MAX_TRACE_LINES) this.trace.splice(0, this.trace.length - MAX_TRACE_LINES);
    for (const out of messages) this.transmit(node.id, out.to, out.message);
  }

  private transmit(from: string, to: string, message: SwimMessage): void {
    this.counters.sent++;
    if (!this.nodes.has(to) || this.blocked.has(`${from}>${to}`)) {
      this.counters.dropped++;
      return;
    }
    const copies = this.rng.chance(this.faults.duplicateRate) ? 2 : 1;
    const payload = JSON.stringify(message);
    for (let c = 0; c < copies; c++) {
      let loss = this.faults.lossRate;
      let delay = this.rng.between(this.faults.minDelayTicks, this.faults.maxDelayTicks);
      for (const slow of [this.node(from).slow, this.node(to).slow]) {
        if (slow === undefined) continue;
        loss = 1 - (1 - loss) * (1 - slow.lossRate);
        delay += this.rng.between(0, slow.extraDelayMaxTicks);
      }
      if (this.rng.chance(loss)) {
        this.counters.dropped++;
        continue;
      }
      const at = this.tick + delay;
      let bucket = this.inflight.get(at);
      if (bucket === undefined) this.inflight.set(at, (bucket = []));
      bucket.push({ from, to, payload });
    }
  }

  private seedsFor(id: string): SeedPeer[] {
    const others = this.ids.filter((x) => x !== id);
    const chosen = this.seedMode === 'all' ? others : this.ids[0] === id ? others.slice(0, 1) : this.ids.slice(0, 1);
    return chosen.map((x) => ({ id: x, address: this.node(x).address }));
  }

  private log(line: string): void {
    this.trace.push(`${this.tick} sim ${line}`);
  }

  private node(id: string): SimNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`unknown node ${id}`);
    return node;
  }
}
