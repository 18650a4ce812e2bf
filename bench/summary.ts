/**
 * The `summary` block of the benchmark's JSON: the headline figures of the
 * cluster runs next to their targets (issue 4: the cluster against NATS
 * JetStream R3; issue 5: durability; issue 12: durable as fast as in memory,
 * as ratios within the run; issue 15: consumer groups), and whether each is met. A figure that
 * was not measured in this run (`--only`, `--cluster-storage`, `--quick`) is
 * left out rather than reported as missed.
 */
import type { Cluster3Result } from './cluster.js';
import type { Floors } from './floors.js';
import type { GroupRebalanceResult } from './groups.js';

type Issue = 4 | 5 | 12 | 15;

/** One headline figure and its target: `atLeast` or `atMost` (never both). */
export interface SummaryFigure {
  value: number;
  unit: 'msg/s' | 'µs' | 'ms' | 'ratio';
  atLeast?: number;
  atMost?: number;
  met: boolean;
  /** Where the target comes from. */
  issue: Issue;
  /** Context: the figures behind a ratio, or why the run behind the figure stopped early. */
  note?: string;
}

export interface Summary {
  /** Figures met and missed out of those measured. */
  met: number;
  missed: number;
  /** By name: `<result key>.<figure>`, e.g. `cluster3Interval.pipelined128B`. */
  figures: Record<string, SummaryFigure>;
}

/** The cluster results of one run, by their key in the JSON. */
export interface ClusterResults {
  /** fsync always. */
  cluster3?: Cluster3Result;
  cluster3Interval?: Cluster3Result;
  cluster3Memory?: Cluster3Result;
}

/** Issue 4's targets (3 brokers, R=3, ack quorum), for a log that is not fsynced before the ack. */
const ISSUE4 = {
  pipelined128BMsgPerSec: 65_000,
  pipelined1KiBMsgPerSec: 30_000,
  awaitedP50Us: 400,
  awaitedP99Us: 2_000,
  stallMedianMs: 1_000,
  stallMaxMs: 2_000,
  replayMsgPerSec: 200_000,
} as const;

/** Issue 5's targets with fsync `always`. */
const ISSUE5 = {
  awaitedP50Us: 700,
  replayMsgPerSec: 200_000,
} as const;

/** Issue 12's targets with fsync `always`, against the in-memory cluster of the same run (issue 5 asked 0.8 at 128 B). */
const ISSUE12 = {
  pipelinedVsMemory: 0.85,
  awaitedP50VsMemory: 1.5,
} as const;

export function summarize(results: ClusterResults, groups?: GroupRebalanceResult, floors?: Floors): Summary {
  const figures: Record<string, SummaryFigure> = {};
  const atLeast = (name: string, value: number | undefined, unit: SummaryFigure['unit'], target: number, issue: Issue): void => {
    if (value === undefined || !Number.isFinite(value)) return;
    figures[name] = { value, unit, atLeast: target, met: value >= target, issue };
  };
  const atMost = (name: string, value: number | undefined, unit: SummaryFigure['unit'], target: number, issue: Issue): void => {
    if (value === undefined || !Number.isFinite(value)) return;
    figures[name] = { value, unit, atMost: target, met: value <= target, issue };
  };

  const failover = (key: string, result: Cluster3Result, issue: 4 | 5): void => {
    const stall = result.failoverStall;
    if (stall === undefined) return;
    atMost(`${key}.failoverStallMedian`, stall.medianMs, 'ms', ISSUE4.stallMedianMs, issue);
    atMost(`${key}.failoverStallMax`, stall.maxMs, 'ms', ISSUE4.stallMaxMs, issue);
    for (const name of [`${key}.failoverStallMedian`, `${key}.failoverStallMax`]) {
      const figure = figures[name];
      if (figure !== undefined && stall.error !== undefined) figure.note = `stopped after ${stall.kills} of the planned kills: ${stall.error}`;
    }
  };

  // Issue 4's figures hold for the logs NATS is compared with: in memory, and fsync `interval`.
  for (const key of ['cluster3Memory', 'cluster3Interval'] as const) {
    const result = results[key];
    if (result === undefined) continue;
    atLeast(`${key}.pipelined128B`, result.pipelined128B?.msgPerSec, 'msg/s', ISSUE4.pipelined128BMsgPerSec, 4);
    atLeast(`${key}.pipelined1KiB`, result.pipelined1KiB?.msgPerSec, 'msg/s', ISSUE4.pipelined1KiBMsgPerSec, 4);
    atMost(`${key}.awaitedP50`, result.sequentialPublish?.p50Us, 'µs', ISSUE4.awaitedP50Us, 4);
    atMost(`${key}.awaitedP99`, result.sequentialPublish?.p99Us, 'µs', ISSUE4.awaitedP99Us, 4);
    failover(key, result, 4);
    atLeast(`${key}.replayFromDisk`, result.replayFromDisk?.msgPerSec, 'msg/s', ISSUE4.replayMsgPerSec, 4);
  }

  // fsync `always`: issue 5's targets, and issue 12's against the in-memory cluster.
  const always = results.cluster3;
  if (always !== undefined) {
    failover('cluster3', always, 4);
    const memory = results.cluster3Memory;
    const ratio = (name: string, ours: number | undefined, theirs: number | undefined, target: number, bound: 'atLeast' | 'atMost', note: string): void => {
      if (ours === undefined || theirs === undefined || !(theirs > 0)) return;
      (bound === 'atLeast' ? atLeast : atMost)(name, Math.round((100 * ours) / theirs) / 100, 'ratio', target, 12);
      const figure = figures[name];
      if (figure !== undefined) figure.note = note;
    };
    const always128B = always.pipelined128B?.msgPerSec;
    const memory128B = memory?.pipelined128B?.msgPerSec;
    ratio('cluster3.pipelined128BVsMemory', always128B, memory128B, ISSUE12.pipelinedVsMemory, 'atLeast', `fsync always ${always128B} msg/s, in memory ${memory128B} msg/s`);
    const always1KiB = always.pipelined1KiB?.msgPerSec;
    const memory1KiB = memory?.pipelined1KiB?.msgPerSec;
    // The three brokers share one disk: at the in-memory rate their three copies need this bandwidth.
    const needed = memory1KiB === undefined ? '' : `; three replicas at the in-memory rate write ${Math.round((3 * 1024 * memory1KiB) / 1e6)} MB/s of payload to the one disk`;
    const disk = floors === undefined ? '' : `, which takes ${floors.fdatasyncWriteMBps} MB/s written in 256 KiB fdatasynced batches (floors)`;
    ratio('cluster3.pipelined1KiBVsMemory', always1KiB, memory1KiB, ISSUE12.pipelinedVsMemory, 'atLeast', `fsync always ${always1KiB} msg/s, in memory ${memory1KiB} msg/s${needed}${disk}`);
    const alwaysP50 = always.sequentialPublish?.p50Us;
    const memoryP50 = memory?.sequentialPublish?.p50Us;
    // A follower answers only after its fdatasync, which no step of the in-memory path overlaps; the leader and both
    // followers sync each ack at once, on the one disk the three brokers share here.
    const shared = floors?.fdatasync4KiBThreeAtOnceP50Us;
    const floor = floors === undefined || memoryP50 === undefined || !(memoryP50 > 0) ? undefined : memoryP50 + (shared ?? floors.fdatasync4KiBP50Us);
    const least = floor === undefined ? '' : `, so fsync always takes at least the in-memory p50 plus one${shared === undefined ? '' : ' of those'}: ${Math.round(floor)} µs, ${(floor / (memoryP50 as number)).toFixed(2)}× in memory`;
    const atOnce = shared === undefined ? '' : `; three at once, one per broker, as an ack makes them: ${shared} µs each`;
    const sync = floors === undefined ? '' : `; a 4 KiB write + fdatasync alone: ${floors.fdatasync4KiBP50Us} µs (floors)${atOnce}${least}`;
    ratio('cluster3.awaitedP50VsMemory', alwaysP50, memoryP50, ISSUE12.awaitedP50VsMemory, 'atMost', `fsync always ${alwaysP50} µs, in memory ${memoryP50} µs${sync}`);
    atMost('cluster3.awaitedP50', always.sequentialPublish?.p50Us, 'µs', ISSUE5.awaitedP50Us, 5);
    atLeast('cluster3.replayFromDisk', always.replayFromDisk?.msgPerSec, 'msg/s', ISSUE5.replayMsgPerSec, 5);
  }

  // Issue 15: consumer groups rebalance without stopping the partitions that stay put.
  if (groups !== undefined) atMost('groups.maxPauseUnmoved', groups.maxPauseUnmovedMs, 'ms', groups.goalMs, 15);

  const all = Object.values(figures);
  const met = all.filter((figure) => figure.met).length;
  return { met, missed: all.length - met, figures };
}
