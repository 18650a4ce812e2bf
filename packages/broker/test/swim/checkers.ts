/**
 * Checkers for the gossip simulator, separate from the system under test.
 * They run as the simulation goes (on every event, after every tick) and
 * either throw on an invariant violation or record what they measure.
 */
import type { MembershipEvent } from '../../src/core/swim/types.js';
import type { SimObserver, Simulation } from './sim.js';

/**
 * Safety: what must never happen, whatever the faults.
 * - No node believes a member has an incarnation that member never held
 *   (only a member raises its own incarnation).
 * - A running node never sees itself suspect or dead.
 * - A node's incarnation never decreases within one process.
 * - Every queue stays within its configured bound.
 */
export class InvariantChecker implements SimObserver {
  /** Last incarnation seen per process (`id/life`); one entry per start, bounded by the run's restarts. */
  private readonly lastIncarnation = new Map<string, number>();
  checks = 0;

  afterTick(sim: Simulation): void {
    for (const id of sim.ids) {
      if (!sim.isUp(id)) continue;
      const swim = sim.swimOf(id);
      const self = swim.local();
      const fail = (what: string): never => {
        throw new Error(`seed ${sim.seed} tick ${sim.tick}: ${id}: ${what}`);
      };
      if (self.state === 'suspect' || self.state === 'dead') fail(`sees itself ${self.state}`);
      const key = `${id}/${sim.lifeOf(id)}`;
      const last = this.lastIncarnation.get(key);
      if (last !== undefined && self.incarnation < last) fail(`incarnation went back from ${last} to ${self.incarnation}`);
      this.lastIncarnation.set(key, self.incarnation);
      for (const member of swim.members()) {
        if (member.incarnation > sim.maxIncarnation(member.id)) {
          fail(`believes ${member.id} has incarnation ${member.incarnation}, above its highest ${sim.maxIncarnation(member.id)}`);
        }
      }
      const stats = swim.stats();
      const c = swim.config;
      const total = stats.members.alive + stats.members.suspect + stats.members.dead + stats.members.left;
      if (total > c.maxMembers) fail(`${total} members > maxMembers`);
      if (stats.broadcasts.items > c.maxBroadcasts) fail(`broadcast queue ${stats.broadcasts.items} > maxBroadcasts`);
      if (stats.broadcasts.bytes > c.maxBroadcastBytes) fail(`broadcast queue ${stats.broadcasts.bytes} B > maxBroadcastBytes`);
      if (stats.pendingRelays > c.maxPendingIndirect) fail(`relays ${stats.pendingRelays} > maxPendingIndirect`);
      if (stats.outboxDropped > 0 || stats.eventsDropped > 0) fail('dropped output although drained after every call');
      this.checks++;
    }
  }
}

/** A `failed` event about a member whose process was running at that moment. */
export interface FalseDeath {
  tick: number;
  observer: string;
  member: string;
  incarnation: number;
}

/**
 * Records every `failed` event about a member that was up at that moment. Use
 * it in runs without partitions: there, every such event is a false death.
 */
export class FalseDeathChecker implements SimObserver {
  readonly falseDeaths: FalseDeath[] = [];
  suspicions = 0;
  refutations = 0;

  onEvent(sim: Simulation, observer: string, event: MembershipEvent): void {
    if (event.type === 'suspected') this.suspicions++;
    if (event.type === 'refuted') this.refutations++;
    if (event.type === 'failed' && sim.isUp(event.member.id)) {
      this.falseDeaths.push({ tick: sim.tick, observer, member: event.member.id, incarnation: event.member.incarnation });
    }
  }
}

/**
 * Detection latency of crashes: for each crash, the ticks until each member
 * running at that time marked the crashed member dead.
 */
export class DetectionChecker implements SimObserver {
  private readonly crashes = new Map<string, { tick: number; watchers: Set<string>; detected: Map<string, number> }>();

  /** Call when `id` is crashed, with the members that keep running. */
  crashed(sim: Simulation, id: string, watchers: readonly string[]): void {
    this.crashes.set(id, { tick: sim.tick, watchers: new Set(watchers), detected: new Map() });
  }

  onEvent(sim: Simulation, observer: string, event: MembershipEvent): void {
    const crash = this.crashes.get(event.member.id);
    if (crash === undefined || !crash.watchers.has(observer) || crash.detected.has(observer)) return;
    if (event.type === 'failed') crash.detected.set(observer, sim.tick - crash.tick);
  }

  /** True once every watcher that is still up marked `id` dead. */
  allDetected(sim: Simulation, id: string): boolean {
    const crash = this.crashes.get(id);
    if (crash === undefined) return false;
    for (const w of crash.watchers) if (sim.isUp(w) && !crash.detected.has(w)) return false;
    return true;
  }

  /** Ticks from the crash to each watcher's detection. */
  latencies(id: string): number[] {
    return [...(this.crashes.get(id)?.detected.values() ?? [])];
  }
}

/**
 * Convergence: every running, non-leaving node sees exactly the running,
 * non-leaving nodes as `alive`, each with the meta it currently advertises,
 * and everything else as not alive.
 */
export function converged(sim: Simulation): boolean {
  const live = sim.liveIds();
  const liveSet = new Set(live);
  for (const observer of live) {
    const seen = sim.swimOf(observer).members();
    let alive = 0;
    for (const member of seen) {
      if (member.state === 'suspect') return false;
      if (member.state !== 'alive') {
        if (liveSet.has(member.id)) return false;
        continue;
      }
      if (!liveSet.has(member.id)) return false;
      if (!sameMeta(member.meta, sim.metaOf(member.id))) return false;
      alive++;
    }
    if (alive !== live.length) return false;
  }
  return true;
}

function sameMeta(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** p50, p95, p99 and max of a sample (nearest rank). */
export function summarize(values: readonly number[]): { n: number; min: number; p50: number; p95: number; p99: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
  return { n: sorted.length, min: sorted[0] ?? Number.NaN, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: sorted[sorted.length - 1] ?? Number.NaN };
}
