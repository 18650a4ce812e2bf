/**
 * The `comparison` block of `npm run bench -- --compare nats`: each headline
 * figure of relaymq's cluster (fsync `interval` and `always`) next to NATS
 * JetStream's from the same run, their ratio (relaymq / JetStream), and issue
 * 12's target for it. A figure one side did not measure is left out.
 */
import type { Cluster3Result } from './cluster.js';
import type { JetStreamResult } from './jetstream.js';

/** One figure of both systems. */
export interface ComparedFigure {
  relaymq: number;
  jetstream: number;
  unit: 'msg/s' | 'µs' | 'ms';
  /** relaymq / JetStream. */
  ratio: number;
  /** Which way is better: more throughput, less latency or stall. */
  better: 'higher' | 'lower';
  /** relaymq is ahead: ratio above 1 for `higher`, below 1 for `lower`. */
  ahead: boolean;
  /** Issue 12's target for this figure: `ahead`, or the largest ratio allowed; absent when there is none. */
  target?: 'ahead' | { atMost: number };
  met?: boolean;
  /** Context: a run that stopped early, or which JetStream client path the figure comes from. */
  note?: string;
}

/** relaymq with one fsync setting against JetStream. */
export interface ComparedMode {
  /** The relaymq result key behind the figures, and its brokers' fsync setting. */
  relaymqKey: 'cluster3Interval' | 'cluster3';
  fsync: 'interval' | 'always';
  figures: Record<string, ComparedFigure>;
  met: number;
  missed: number;
}

export interface Comparison {
  /** What each side ran with. */
  settings: { relaymq: string; jetstream: string };
  /** relaymq `--fsync interval`: written before the ack, fsynced on a timer, as JetStream. Issue 12: ahead on every figure. */
  fsyncInterval?: ComparedMode;
  /** relaymq `--fsync always` (the default): fsynced on a quorum before the ack. Issue 12: ahead on throughput, failover and replay; awaited p50 at most 2× JetStream's. */
  fsyncAlways?: ComparedMode;
}

/** The machine's 1-minute load average when each side of a scenario started (the comparison runs scenario by scenario). */
export type LoadByScenario = Partial<Record<string, { relaymq: number; jetstream: number }>>;

type Figure = { name: string; unit: ComparedFigure['unit']; better: ComparedFigure['better']; relaymq: (r: Cluster3Result) => number | undefined; jetstream: (j: JetStreamResult) => number | undefined };

const FIGURES: readonly Figure[] = [
  { name: 'pipelined128B', unit: 'msg/s', better: 'higher', relaymq: (r) => r.pipelined128B?.msgPerSec, jetstream: (j) => j.pipelined128B?.msgPerSec },
  { name: 'pipelined1KiB', unit: 'msg/s', better: 'higher', relaymq: (r) => r.pipelined1KiB?.msgPerSec, jetstream: (j) => j.pipelined1KiB?.msgPerSec },
  { name: 'awaitedP50', unit: 'µs', better: 'lower', relaymq: (r) => r.sequentialPublish?.p50Us, jetstream: (j) => j.sequentialPublish?.p50Us },
  { name: 'awaitedP99', unit: 'µs', better: 'lower', relaymq: (r) => r.sequentialPublish?.p99Us, jetstream: (j) => j.sequentialPublish?.p99Us },
  { name: 'endToEndP50', unit: 'µs', better: 'lower', relaymq: (r) => r.publishToDeliver?.p50Us, jetstream: (j) => j.publishToDeliver?.p50Us },
  { name: 'endToEndP99', unit: 'µs', better: 'lower', relaymq: (r) => r.publishToDeliver?.p99Us, jetstream: (j) => j.publishToDeliver?.p99Us },
  { name: 'failoverStallMedian', unit: 'ms', better: 'lower', relaymq: (r) => r.failoverStall?.medianMs, jetstream: (j) => j.failoverStall?.medianMs },
  { name: 'failoverStallMax', unit: 'ms', better: 'lower', relaymq: (r) => r.failoverStall?.maxMs, jetstream: (j) => j.failoverStall?.maxMs },
  { name: 'replayFromDisk', unit: 'msg/s', better: 'higher', relaymq: (r) => r.replayFromDisk?.msgPerSec, jetstream: (j) => j.replayFromDisk?.msgPerSec },
];

/** Issue 12's target for a figure of relaymq with fsync `always` (with `interval`, every figure must be ahead). */
function alwaysTarget(name: string): ComparedFigure['target'] {
  if (name === 'awaitedP50') return { atMost: 2 };
  return ['pipelined128B', 'pipelined1KiB', 'failoverStallMedian', 'failoverStallMax', 'replayFromDisk'].includes(name) ? 'ahead' : undefined;
}

function compareMode(relaymq: Cluster3Result, relaymqKey: ComparedMode['relaymqKey'], jetstream: JetStreamResult): ComparedMode {
  const fsync = relaymqKey === 'cluster3' ? 'always' : 'interval';
  const figures: Record<string, ComparedFigure> = {};
  for (const figure of FIGURES) {
    const ours = figure.relaymq(relaymq);
    const theirs = figure.jetstream(jetstream);
    if (ours === undefined || theirs === undefined || !Number.isFinite(ours) || !Number.isFinite(theirs) || theirs <= 0) continue;
    const ratio = Math.round((100 * ours) / theirs) / 100;
    const ahead = figure.better === 'higher' ? ours > theirs : ours < theirs;
    const compared: ComparedFigure = { relaymq: ours, jetstream: theirs, unit: figure.unit, ratio, better: figure.better, ahead };
    const target = fsync === 'interval' ? 'ahead' : alwaysTarget(figure.name);
    if (target !== undefined) {
      compared.target = target;
      compared.met = target === 'ahead' ? ahead : ours / theirs <= target.atMost;
    }
    const notes: string[] = [];
    if (figure.name.startsWith('failoverStall')) {
      if (relaymq.failoverStall?.error !== undefined) notes.push(`relaymq run stopped early: ${relaymq.failoverStall.error}`);
      if (jetstream.failoverStall?.error !== undefined) notes.push(`JetStream run stopped early: ${jetstream.failoverStall.error}`);
    }
    if (figure.name.startsWith('pipelined')) {
      const js = figure.name === 'pipelined128B' ? jetstream.pipelined128B : jetstream.pipelined1KiB;
      if (js !== undefined) notes.push(`JetStream: the better of js.publish ${js.jsPublish.msgPerSec} and reply inbox ${js.replyInbox.msgPerSec} msg/s`);
    }
    if (notes.length > 0) compared.note = notes.join('; ');
    figures[figure.name] = compared;
  }
  const judged = Object.values(figures).filter((f) => f.met !== undefined);
  const met = judged.filter((f) => f.met === true).length;
  return { relaymqKey, fsync, figures, met, missed: judged.length - met };
}

/** The comparison of whichever relaymq fsync settings ran with the JetStream result. */
export function compare(relaymq: { cluster3?: Cluster3Result; cluster3Interval?: Cluster3Result }, jetstream: JetStreamResult, ack: string): Comparison {
  const modes = [
    relaymq.cluster3Interval === undefined ? undefined : 'fsync interval (cluster3Interval: written before the ack, fsynced on a timer)',
    relaymq.cluster3 === undefined ? undefined : 'fsync always (cluster3: fsynced on a quorum before the ack)',
  ].filter((mode) => mode !== undefined);
  const comparison: Comparison = {
    settings: {
      relaymq: `3 brokers, R=3, ack ${ack}; ${modes.length === 0 ? 'no disk mode ran' : modes.join(' and ')}`,
      jetstream: `3 servers (${jetstream.server}), stream R3, ${jetstream.durability}; client ${jetstream.client}`,
    },
  };
  if (relaymq.cluster3Interval !== undefined) comparison.fsyncInterval = compareMode(relaymq.cluster3Interval, 'cluster3Interval', jetstream);
  if (relaymq.cluster3 !== undefined) comparison.fsyncAlways = compareMode(relaymq.cluster3, 'cluster3', jetstream);
  return comparison;
}
