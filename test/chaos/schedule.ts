import type { Rng } from './rng.js';

/** Every fault family the suite injects. */
export const FAULT_FAMILIES = [
  'kill',
  'pause',
  'partition',
  'one-way',
  'split',
  'latency',
  'restart',
  'crash-all',
  'client-cut',
  'clock-skew',
  'disk-full',
  'reboot',
] as const;
export type FaultFamily = (typeof FAULT_FAMILIES)[number];

/** One fault: injected at `atMs` (from the start of the fault phase), healed `durationMs` later. */
export interface FaultEvent {
  index: number;
  family: FaultFamily;
  atMs: number;
  durationMs: number;
  /** Brokers it strikes (for `split`: the minority side). */
  targets: string[];
  /** For `one-way`: traffic from `targets[0]` to these brokers is lost. For `latency`: the delay. */
  peers?: string[];
  latencyMs?: number;
  /** For `clock-skew`: seconds the wall clock is moved. */
  skewSeconds?: number;
}

/** Bounds of the schedule: faults last 1–4 s, with 0.5–2.5 s of calm between them. */
export const FAULT_DURATION_MS = { min: 1000, max: 4000 };
export const CALM_MS = { min: 500, max: 2500 };
/** The most faults one run injects, whatever its length. */
export const MAX_FAULTS = 500;

/**
 * The seeded fault plan of a run: one fault at a time over `faultPhaseMs`,
 * drawn from `families` in turn-shuffled rounds so every family appears
 * early even in a short run. Pure: the same seed gives the same plan.
 */
export function planFaults(rng: Rng, ids: readonly string[], families: readonly FaultFamily[], faultPhaseMs: number): FaultEvent[] {
  const events: FaultEvent[] = [];
  let atMs = rng.int(CALM_MS.min, CALM_MS.max);
  let round: FaultFamily[] = [];
  while (events.length < MAX_FAULTS && families.length > 0) {
    if (round.length === 0) round = rng.sample(families, families.length);
    const family = round.shift() as FaultFamily;
    const durationMs = rng.int(FAULT_DURATION_MS.min, FAULT_DURATION_MS.max);
    if (atMs + durationMs > faultPhaseMs) break;
    const event: FaultEvent = { index: events.length, family, atMs, durationMs, targets: [] };
    const minority = Math.floor((ids.length - 1) / 2);
    switch (family) {
      case 'crash-all':
        event.targets = [...ids];
        break;
      case 'split':
        event.targets = rng.sample(ids, Math.max(1, minority));
        break;
      case 'one-way': {
        const [from] = rng.sample(ids, 1);
        event.targets = [from as string];
        event.peers = rng.sample(
          ids.filter((id) => id !== from),
          rng.int(1, ids.length - 1),
        );
        break;
      }
      case 'latency':
        event.targets = rng.sample(ids, rng.int(1, minority));
        event.latencyMs = rng.int(50, 400);
        break;
      case 'clock-skew':
        event.targets = rng.sample(ids, 1);
        event.skewSeconds = rng.pick([-1, 1]) * rng.int(5, 120);
        break;
      default:
        event.targets = rng.sample(ids, 1);
    }
    events.push(event);
    atMs += durationMs + rng.int(CALM_MS.min, CALM_MS.max);
  }
  return events;
}

/** A one-line description of a fault, for logs and reports. */
export function describeFault(event: FaultEvent): string {
  const on = event.targets.join(',');
  switch (event.family) {
    case 'one-way':
      return `one-way: ${on} -> ${event.peers?.join(',')} lost`;
    case 'latency':
      return `latency ${event.latencyMs} ms on every link of ${on}`;
    case 'split':
      return `split: minority ${on} | majority the rest`;
    case 'clock-skew':
      return `clock-skew ${(event.skewSeconds ?? 0) > 0 ? '+' : ''}${event.skewSeconds} s on ${on}`;
    default:
      return `${event.family} ${on}`;
  }
}
