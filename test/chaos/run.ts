import { spawnSync } from 'node:child_process';
import { check, readReplicas, replicaBounds } from './checker.js';
import { Cleanup } from './cleanup.js';
import { ChaosCluster, findFaketime } from './cluster.js';
import { FaultInjector, unavailableFamilies } from './faults.js';
import { producerFigures, replayCommand, type ChaosReport, type RunSettings } from './report.js';
import { Rng } from './rng.js';
import { FAULT_FAMILIES, planFaults, type FaultFamily } from './schedule.js';
import { TOPIC, Workload } from './workload.js';

/** Bounds of the phases after the faults. */
const READY_TIMEOUT_MS = 30_000;
/** Publishing continues this long after the heal, so a cluster that does not recover shows as a gap. */
const AFTER_HEAL_PUBLISH_MS = 3000;
const SETTLE_PUBLISHES_MS = 30_000;
const CONVERGE_TIMEOUT_MS = 30_000;
const DELIVER_TIMEOUT_MS = 30_000;

export interface RunOptions extends RunSettings {
  /** Keep the data directories and logs (copied off tmpfs) for inspection. */
  keep: boolean;
  log: (line: string) => void;
  /** The run's cleanup (the CLI installs its signal handlers); one is made when absent. */
  cleanup?: Cleanup;
}

/**
 * One chaos run: start the cluster, start the workload, inject the seeded
 * faults one at a time, heal, let everything settle (bounded), then read
 * every replica and check. Everything started is undone before it returns,
 * whatever happens.
 */
export async function runChaos(options: RunOptions): Promise<ChaosReport> {
  const startedAtMs = Date.now();
  const cleanup = options.cleanup ?? new Cleanup();
  const { log } = options;
  const settings: RunSettings = {
    brokers: options.brokers, replicationFactor: options.replicationFactor, seconds: options.seconds, seed: options.seed,
    faults: options.faults, partitions: options.partitions, producers: options.producers, tmpfs: options.tmpfs,
    storageLayout: options.storageLayout ?? 'unified',
    fsync: options.fsync ?? 'always',
  };
  const replay = replayCommand(settings, FAULT_FAMILIES);
  const commit = currentCommit();
  log(`chaos: ${replay}`);
  const rng = new Rng(options.seed);
  const notes: string[] = [];
  let workload: Workload | undefined;
  try {
    const cluster = await ChaosCluster.start({ brokers: options.brokers, replicationFactor: options.replicationFactor, partitions: options.partitions, tmpfs: options.tmpfs, keep: options.keep, storageLayout: settings.storageLayout ?? 'unified', fsync: settings.fsync ?? 'always', cleanup, log });
    const notReady = await cluster.waitReady(READY_TIMEOUT_MS);
    if (notReady.length > 0) throw new Error(`brokers ${notReady.join(', ')} not ready within ${READY_TIMEOUT_MS} ms`);

    const faketime = findFaketime();
    const skipped = unavailableFamilies(cluster, faketime);
    for (const [family, why] of skipped) if (options.faults.includes(family)) log(`skipping fault family ${family}: ${why}`);
    const families = options.faults.filter((f) => !skipped.has(f));
    const plan = planFaults(rng.fork('faults'), cluster.ids, families, options.seconds * 1000);
    log(`plan: ${plan.length} faults over ${options.seconds} s`);

    workload = await Workload.start({ brokers: cluster.clientUrls, brokerIds: cluster.ids, producers: options.producers, rng: rng.fork('workload'), startedAtMs: cluster.startedAtMs });
    const publishFromMs = Date.now() - cluster.startedAtMs;
    const injector = new FaultInjector(cluster, faketime, log);
    const phaseStart = Date.now();
    const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
    for (const event of plan) {
      const wait = phaseStart + event.atMs - Date.now();
      if (wait > 0) await sleep(wait);
      await injector.run(event, sleep);
    }
    const rest = phaseStart + options.seconds * 1000 - Date.now();
    if (rest > 0) await sleep(rest);

    log('heal: every link, every broker running without skew');
    cluster.healLinks();
    await cluster.ensureAllRunning();
    const stillNotReady = await cluster.waitReady(READY_TIMEOUT_MS);
    if (stillNotReady.length > 0) notes.push(`brokers ${stillNotReady.join(', ')} not ready ${READY_TIMEOUT_MS / 1000} s after the heal`);
    await sleep(AFTER_HEAL_PUBLISH_MS);
    const publishToMs = Date.now() - cluster.startedAtMs;
    const unsettled = await workload.stopProducing(SETTLE_PUBLISHES_MS);
    if (unsettled > 0) notes.push(`${unsettled} publishes unsettled ${SETTLE_PUBLISHES_MS / 1000} s after publishing stopped`);

    // Replicas converge (followers apply commits a heartbeat later): wait until every copy has the same end, bounded.
    const adminUrls = cluster.brokers.map((b) => ({ id: b.id, adminUrl: b.adminUrl }));
    const ends = new Map<number, number>();
    const deadline = Date.now() + CONVERGE_TIMEOUT_MS;
    for (;;) {
      const bounds = await replicaBounds(adminUrls, TOPIC, options.partitions);
      ends.clear();
      let converged = true;
      for (const b of bounds) {
        if (b instanceof Error) {
          converged = false;
          continue;
        }
        const known = ends.get(b.partition);
        if (known !== undefined && known !== b.end) converged = false;
        ends.set(b.partition, Math.max(known ?? 0, b.end));
      }
      if (converged || Date.now() > deadline) {
        if (!converged) notes.push(`replicas did not converge within ${CONVERGE_TIMEOUT_MS / 1000} s after the heal`);
        break;
      }
      await sleep(250);
    }
    if (!(await workload.waitDelivered(ends, DELIVER_TIMEOUT_MS))) notes.push(`subscribers or the group did not reach the end of every partition within ${DELIVER_TIMEOUT_MS / 1000} s`);

    const { replicas, unreadable } = await readReplicas(adminUrls, TOPIC, options.partitions);
    const result = check({ partitions: options.partitions, replicationFactor: Math.min(options.replicationFactor, options.brokers), replicas, unreadable, acks: workload.acks, subscribers: workload.logs, refusals: workload.refusals, group: workload.groupLogs });

    const windows = injector.injected.map((f) => ({ family: f.family, startMs: f.startMs, endMs: f.endMs ?? publishToMs }));
    const producers = workload.producers.map((p) => producerFigures(p.name, p.acks, p.refusals, publishFromMs, publishToMs, windows, p.moves));
    const faultsByFamily: Partial<Record<FaultFamily, number>> = {};
    for (const f of injector.injected) faultsByFamily[f.family] = (faultsByFamily[f.family] ?? 0) + 1;
    for (const f of injector.injected) if (f.note !== undefined) notes.push(`fault #${f.index} (${f.description}): ${f.note}`);
    const report: ChaosReport = {
      ok: result.ok && cluster.startFailures.length === 0,
      settings,
      replay,
      commit,
      storage: cluster.storage,
      faultsByFamily,
      skippedFamilies: Object.fromEntries([...skipped].filter(([f]) => options.faults.includes(f))),
      faults: injector.injected,
      startFailures: cluster.startFailures,
      acked: result.acked,
      producers,
      availability: producers.reduce((sum, p) => sum + p.availability, 0) / Math.max(1, producers.length),
      check: result,
      notes,
      durationMs: Date.now() - startedAtMs,
    };
    await workload.close();
    workload = undefined;
    if (options.keep) log(`keeping logs and data in ${cluster.baseDir}`);
    return report;
  } finally {
    await workload?.close();
    await cleanup.run();
  }
}

/** The checked-out commit (with `+` when the tree has changes), or undefined outside a git checkout. */
function currentCommit(): string | undefined {
  const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  if (head.status !== 0) return undefined;
  const dirty = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).stdout.trim() !== '';
  return `${head.stdout.trim()}${dirty ? '+' : ''}`;
}
