import type { ChaosFsync, StartFailure } from './cluster.js';
import type { CheckResult } from './checker.js';
import type { InjectedFault } from './faults.js';
import type { FaultFamily } from './schedule.js';
import type { Ack, ClientMove, Refusal } from './workload.js';

/** A run's settings: exactly what the replay command repeats. */
export interface RunSettings {
  brokers: number;
  replicationFactor: number;
  seconds: number;
  seed: number;
  /** The fault families asked for (all by default). */
  faults: FaultFamily[];
  partitions: number;
  producers: number;
  tmpfs: boolean;
  /** The brokers' `--storage-layout` (docs/storage.md). @defaultValue `unified` (before issue 12's default switch, `split`) */
  storageLayout?: 'split' | 'unified';
  /** The brokers' `--fsync` (docs/storage.md); `mixed`: `always` on odd-numbered brokers (c1, c3, ...), `interval` on the others. @defaultValue `always` */
  fsync?: ChaosFsync;
}

/** Per producer: acknowledgements, the longest wait between two, availability. */
export interface ProducerFigures {
  producer: string;
  acked: number;
  refused: Record<string, number>;
  /** Longest time without an acknowledgement, ms, from the first publish to the end of publishing. */
  longestGapMs: number;
  /** When that gap started, ms since the run started. */
  longestGapAtMs: number;
  /** Longest gap that overlaps no crash of every broker (the one-fault-at-a-time bound applies to these). */
  longestGapOutsideCrashAllMs: number;
  /**
   * Per fault family, the longest gap that overlaps a fault of that family
   * and no other (`none`: no fault; `several`: more than one), so a long wait
   * names its cause; the one-fault-at-a-time bound applies to the families.
   */
  longestGapByFamily: Partial<Record<FaultFamily | 'none' | 'several', number>>;
  /** When each of those gaps started, ms since the run started (to find the fault that caused it). */
  longestGapByFamilyAtMs: Partial<Record<FaultFamily | 'none' | 'several', number>>;
  /** Share of whole seconds of the publishing phase with at least one acknowledgement. */
  availability: number;
  /** The producer's client changing brokers, in order (at most {@link MAX_MOVES_REPORTED}): explains a long wait. */
  moves: ClientMove[];
}

/** Client moves kept per producer in the report. */
export const MAX_MOVES_REPORTED = 500;

/** A fault's window, ms since the run started. */
export interface FaultWindow {
  family: FaultFamily;
  startMs: number;
  endMs: number;
}

export interface ChaosReport {
  ok: boolean;
  settings: RunSettings;
  replay: string;
  /** The commit the run tested (seed plus commit replays it), when known. */
  commit: string | undefined;
  storage: string;
  faultsByFamily: Partial<Record<FaultFamily, number>>;
  skippedFamilies: Partial<Record<FaultFamily, string>>;
  faults: InjectedFault[];
  startFailures: StartFailure[];
  acked: number;
  producers: ProducerFigures[];
  availability: number;
  check: CheckResult;
  /** Problems of the run itself (e.g. publishes still unsettled after the heal). */
  notes: string[];
  durationMs: number;
}

/** The command that replays a run (the same seed gives the same fault plan and workload keys). */
export function replayCommand(s: RunSettings, allFamilies: readonly FaultFamily[]): string {
  const parts = ['npm run chaos --', '--brokers', String(s.brokers), '--replication-factor', String(s.replicationFactor), '--seconds', String(s.seconds), '--seed', String(s.seed)];
  if (s.faults.length !== allFamilies.length) parts.push('--faults', s.faults.join(','));
  if (s.partitions !== 6) parts.push('--partitions', String(s.partitions));
  if (s.producers !== 3) parts.push('--producers', String(s.producers));
  if (!s.tmpfs) parts.push('--no-tmpfs');
  if (s.storageLayout !== undefined && s.storageLayout !== 'unified') parts.push('--storage-layout', s.storageLayout);
  if (s.fsync !== undefined && s.fsync !== 'always') parts.push('--fsync', s.fsync);
  return parts.join(' ');
}

/**
 * Gap and availability figures of one producer over [fromMs, toMs] (ms since
 * the run started); `faults` are the windows of the faults injected.
 */
export function producerFigures(
  producer: string,
  acks: readonly Ack[],
  refusals: readonly Refusal[],
  fromMs: number,
  toMs: number,
  faults: readonly FaultWindow[] = [],
  moves: readonly ClientMove[] = [],
): ProducerFigures {
  const crashes = faults.filter((f) => f.family === 'crash-all');
  const longestGapByFamily: Partial<Record<FaultFamily | 'none' | 'several', number>> = {};
  const longestGapByFamilyAtMs: Partial<Record<FaultFamily | 'none' | 'several', number>> = {};
  const noteGap = (family: FaultFamily | 'none' | 'several', gap: number, atMs: number): void => {
    if (gap < (longestGapByFamily[family] ?? 0)) return;
    longestGapByFamily[family] = gap;
    longestGapByFamilyAtMs[family] = atMs;
  };
  const times = acks.map((a) => a.atMs).sort((a, b) => a - b);
  let longestGapMs = 0;
  let longestGapAtMs = fromMs;
  let longestGapOutsideCrashAllMs = 0;
  let previous = fromMs;
  for (const t of [...times, toMs]) {
    const gap = t - previous;
    if (gap > longestGapMs) {
      longestGapMs = gap;
      longestGapAtMs = previous;
    }
    const start = previous;
    if (gap > longestGapOutsideCrashAllMs && !crashes.some((c) => c.startMs < t && c.endMs > start)) longestGapOutsideCrashAllMs = gap;
    const overlapping = faults.filter((f) => f.startMs < t && f.endMs > start);
    noteGap(overlapping.length === 0 ? 'none' : overlapping.length === 1 ? (overlapping[0] as FaultWindow).family : 'several', gap, start);
    previous = Math.max(previous, t);
  }
  const seconds = Math.max(1, Math.floor((toMs - fromMs) / 1000));
  const covered = new Set(times.filter((t) => t >= fromMs && t < fromMs + seconds * 1000).map((t) => Math.floor((t - fromMs) / 1000)));
  const refused: Record<string, number> = {};
  for (const r of refusals) refused[r.code] = (refused[r.code] ?? 0) + 1;
  return { producer, acked: acks.length, refused, longestGapMs, longestGapAtMs, longestGapOutsideCrashAllMs, longestGapByFamily, longestGapByFamilyAtMs, availability: covered.size / seconds, moves: moves.slice(0, MAX_MOVES_REPORTED) };
}

/** The human-readable report. */
export function formatReport(r: ChaosReport): string {
  const lines: string[] = [];
  const s = r.settings;
  lines.push(`chaos ${r.ok ? 'PASSED' : 'FAILED'}: seed ${s.seed}, ${s.brokers} brokers, replication factor ${s.replicationFactor}, ${s.seconds} s, ${s.partitions} partitions, ${s.producers} producers, data on ${r.storage}`);
  lines.push(`faults: ${Object.entries(r.faultsByFamily).map(([f, n]) => `${f} ${n}`).join(', ') || 'none'}`);
  for (const [family, why] of Object.entries(r.skippedFamilies)) lines.push(`skipped ${family}: ${why}`);
  lines.push(`acknowledged: ${r.acked} (${r.check.duplicateAcks} answered as duplicates); stored per partition: ${r.check.stored.join(' ')}`);
  for (const p of r.producers) {
    const refused = Object.entries(p.refused).map(([c, n]) => `${c} ${n}`).join(', ');
    lines.push(`  ${p.producer}: ${p.acked} acked${refused === '' ? '' : `, refused ${refused}`}, longest gap ${(p.longestGapMs / 1000).toFixed(2)} s (from ${(p.longestGapAtMs / 1000).toFixed(1)} s; ${(p.longestGapOutsideCrashAllMs / 1000).toFixed(2)} s outside crash-all), availability ${(p.availability * 100).toFixed(1)}%`);
  }
  const byFamily: Partial<Record<string, number>> = {};
  for (const p of r.producers) for (const [f, ms] of Object.entries(p.longestGapByFamily)) byFamily[f] = Math.max(byFamily[f] ?? 0, ms ?? 0);
  lines.push(`longest gap by the fault it overlaps: ${Object.entries(byFamily).map(([f, ms]) => `${f} ${((ms ?? 0) / 1000).toFixed(2)} s`).join(', ')}`);
  const single = longestSingleFaultGap(r);
  if (single !== undefined) {
    const fault = r.faults.find((f) => f.family === single.family && f.startMs < single.atMs + single.ms && (f.endMs ?? Number.POSITIVE_INFINITY) > single.atMs);
    const cause = fault === undefined ? single.family : `fault #${fault.index}: ${fault.description}`;
    lines.push(`longest wait under one fault: ${(single.ms / 1000).toFixed(2)} s (${single.producer}, from ${(single.atMs / 1000).toFixed(1)} s, ${cause})`);
    const moves = r.producers.find((p) => p.producer === single.producer)?.moves ?? [];
    for (const m of moves.filter((m) => m.atMs >= single.atMs - 1000 && m.atMs <= single.atMs + single.ms)) lines.push(`  ${describeMove(m)}`);
  }
  lines.push(`availability: ${(r.availability * 100).toFixed(1)}% of seconds had an ack, averaged over producers`);
  for (const f of r.startFailures) lines.push(`broker start failure: ${f.broker} at ${(f.atMs / 1000).toFixed(1)} s: ${f.reason.split('\n').slice(0, 3).join(' | ')}`);
  const v = r.check.violations;
  const g = r.check.group;
  if (g !== undefined) {
    const revoked = Object.entries(g.revoked).map(([reason, n]) => `${reason} ${n}`).join(', ') || 'none';
    lines.push(`group: ${g.members} members, ${g.handled} handled, ${r.check.violations.groupLost} lost, ${r.check.violations.groupReordered} reordered, ${g.redeliveredAfterRebalance} redelivered after rebalance, ${g.rebalances} rebalances (revoked: ${revoked})${g.overflowed > 0 ? `, ${g.overflowed} events not recorded` : ''}`);
    for (const x of g.expiries) lines.push(`  revoked (${x.reason}): partitions ${x.partitions.join(',')} of ${x.member} at ${(x.atMs / 1000).toFixed(1)} s (connected through ${x.via ?? 'unknown'})`);
    for (const d of g.redeliveries) lines.push(`  redelivered: ${d.count} of partition ${d.partition} from offset ${d.fromOffset} to ${d.member}, granted at ${(d.sessionStartMs / 1000).toFixed(1)} s (last revoked: ${d.previousRevoked ?? 'never'})`);
    lines.push(`  ${g.byMember.map((m) => `${m.name} (seeded with ${m.broker}): ${m.handled} handled${m.errors > 0 ? `, ${m.errors} errors` : ''}`).join('; ')}`);
  }
  lines.push(`checker: ${Object.entries(v).map(([k, n]) => `${n} ${k}`).join(', ')}`);
  for (const [kind, list] of Object.entries(r.check.examples)) for (const e of list ?? []) lines.push(`  ${kind}: ${e}`);
  for (const n of r.notes) lines.push(`note: ${n}`);
  lines.push(`took ${(r.durationMs / 1000).toFixed(1)} s`);
  if (!r.ok) lines.push(`replay: ${r.replay}${r.commit === undefined ? '' : `   (at commit ${r.commit})`}`);
  return lines.join('\n');
}

function describeMove(m: ClientMove): string {
  const at = `${(m.atMs / 1000).toFixed(2)} s`;
  if (m.event === 'failover') return `${at} client failover ${m.from} -> ${m.to}: ${m.reason}`;
  if (m.event === 'disconnected') return `${at} client disconnected from ${m.from}: ${m.reason}`;
  return `${at} client connected to ${m.to}`;
}

/** The longest gap of any producer that overlaps exactly one fault (crash-all aside): what the 3 s goal bounds. */
export function longestSingleFaultGap(r: Pick<ChaosReport, 'producers'>): { producer: string; family: FaultFamily; ms: number; atMs: number } | undefined {
  let worst: { producer: string; family: FaultFamily; ms: number; atMs: number } | undefined;
  for (const p of r.producers) {
    for (const [family, ms] of Object.entries(p.longestGapByFamily) as [FaultFamily | 'none' | 'several', number][]) {
      if (family === 'none' || family === 'several' || family === 'crash-all' || ms <= (worst?.ms ?? 0)) continue;
      worst = { producer: p.producer, family, ms, atMs: p.longestGapByFamilyAtMs[family] ?? 0 };
    }
  }
  return worst;
}
