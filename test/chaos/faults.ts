import { randomUUID } from 'node:crypto';
import { open, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TMPFS_SIZE_MB, type ChaosCluster } from './cluster.js';
import { LAST_RUN_FILE } from '../../packages/broker/src/storage/last-run.js';
import type { FaultLink } from './link.js';
import { describeFault, type FaultEvent, type FaultFamily } from './schedule.js';

/** Chunk and bound of the ballast file that fills a tmpfs data directory. */
const BALLAST_CHUNK_BYTES = 1024 * 1024;
const BALLAST_MAX_CHUNKS = TMPFS_SIZE_MB + 8;

/** A fault as it happened. */
export interface InjectedFault {
  index: number;
  family: FaultFamily;
  description: string;
  startMs: number;
  endMs: number | undefined;
  /** Something that went wrong injecting or healing it (e.g. a broker that would not restart). */
  note?: string;
}

/** Families that cannot run here, with why (the run prints it and skips them). */
export function unavailableFamilies(cluster: ChaosCluster, faketime: { library: string } | { missing: string }): Map<FaultFamily, string> {
  const skipped = new Map<FaultFamily, string>();
  if ('missing' in faketime) skipped.set('clock-skew', faketime.missing);
  if (!cluster.storage.startsWith('tmpfs')) skipped.set('disk-full', `needs a size-limited tmpfs; data is on ${cluster.storage}`);
  return skipped;
}

/**
 * Injects and heals the faults of a schedule on a {@link ChaosCluster}.
 * `inject` returns once the fault is in place; `heal` undoes it (restarting
 * what it stopped) and must leave the cluster whole again.
 */
export class FaultInjector {
  readonly injected: InjectedFault[] = [];

  constructor(
    private readonly cluster: ChaosCluster,
    private readonly faketime: { library: string } | { missing: string },
    private readonly log: (line: string) => void,
  ) {}

  /** Runs one fault: inject, hold for its duration (or until `stop` says so), heal. */
  async run(event: FaultEvent, hold: (ms: number) => Promise<void>): Promise<void> {
    const record: InjectedFault = { index: event.index, family: event.family, description: describeFault(event), startMs: this.now(), endMs: undefined };
    this.injected.push(record);
    this.log(`fault #${event.index} at ${(record.startMs / 1000).toFixed(1)} s: ${record.description} for ${event.durationMs} ms`);
    let heal: () => Promise<void>;
    try {
      heal = await this.inject(event);
    } catch (err) {
      record.note = `inject failed: ${String(err)}`;
      this.log(`!! ${record.note}`);
      heal = async () => {};
    }
    await hold(event.durationMs);
    try {
      await heal();
    } catch (err) {
      record.note = `${record.note ?? ''} heal failed: ${String(err)}`.trim();
      this.log(`!! fault #${event.index}: ${record.note}`);
    }
    record.endMs = this.now();
  }

  private now(): number {
    return Date.now() - this.cluster.startedAtMs;
  }

  private links(a: string, b: string): FaultLink[] {
    return [this.cluster.peerLinks.get(`${a}->${b}`), this.cluster.peerLinks.get(`${b}->${a}`)].filter((l): l is FaultLink => l !== undefined);
  }

  private async restart(id: string, skewSeconds?: number): Promise<void> {
    const skew = skewSeconds === undefined || 'missing' in this.faketime ? undefined : { seconds: skewSeconds, library: this.faketime.library };
    if (!(await this.cluster.startBroker(id, skew))) throw new Error(`${id} did not start: ${this.cluster.broker(id).lastLines(5)}`);
  }

  private async inject(event: FaultEvent): Promise<() => Promise<void>> {
    const { cluster } = this;
    const ids = cluster.ids;
    const [target] = event.targets as [string];
    switch (event.family) {
      case 'kill':
        await cluster.broker(target).kill();
        return () => this.restart(target);
      case 'pause':
        cluster.broker(target).pause();
        return async () => cluster.broker(target).resume();
      case 'reboot':
        // A power cut without the loss (chaos cannot drop a page cache): its replicas restart recovering (fsync interval).
        await cluster.broker(target).kill();
        await recordOtherBoot(cluster.broker(target).dataDir);
        return () => this.restart(target);
      case 'restart':
        await cluster.broker(target).terminate();
        await this.restart(target);
        return async () => {};
      case 'crash-all':
        await Promise.all(ids.map((id) => cluster.broker(id).kill()));
        return async () => {
          await Promise.all(ids.map((id) => this.restart(id)));
        };
      case 'partition':
      case 'split': {
        const side = new Set(event.targets);
        const cut = ids.filter((id) => side.has(id)).flatMap((a) => ids.filter((b) => !side.has(b)).flatMap((b) => this.links(a, b)));
        cut.forEach((l) => l.block());
        return async () => cut.forEach((l) => l.heal());
      }
      case 'one-way': {
        // Bytes from target to each peer are lost, on whichever connection carries them.
        const touched: FaultLink[] = [];
        for (const peer of event.peers ?? []) {
          const out = cluster.peerLinks.get(`${target}->${peer}`);
          const back = cluster.peerLinks.get(`${peer}->${target}`);
          out?.drop('forward');
          back?.drop('backward');
          touched.push(...[out, back].filter((l): l is FaultLink => l !== undefined));
        }
        return async () => touched.forEach((l) => l.heal());
      }
      case 'latency': {
        const slow = event.targets.flatMap((t) => [...ids.filter((id) => id !== t).flatMap((id) => this.links(t, id)), cluster.clientLinks.get(t) as FaultLink]);
        slow.forEach((l) => l.delay(event.latencyMs ?? 100));
        return async () => slow.forEach((l) => l.heal());
      }
      case 'client-cut': {
        const link = cluster.clientLinks.get(target) as FaultLink;
        link.block();
        return async () => link.heal();
      }
      case 'clock-skew':
        await cluster.broker(target).terminate();
        await this.restart(target, event.skewSeconds);
        return async () => {
          await cluster.broker(target).terminate();
          await this.restart(target);
        };
      case 'disk-full': {
        const ballast = join(cluster.broker(target).dataDir, 'chaos-ballast');
        const undo = cluster.options.cleanup.add(`remove ${ballast}`, () => unlink(ballast).catch(() => {}));
        const filled = await fill(ballast);
        this.log(`   ${target}: ballast of ${filled} MiB fills its tmpfs`);
        return undo;
      }
    }
  }
}

/** Writes 1 MiB chunks to `path` until the file system is full (bounded); returns how many fit. */
/**
 * Makes the killed broker's record of its last run (storage/last-run.ts) name
 * another boot, as after a power cut: its restart then judges that it may
 * have lost what it acknowledged before fsync. A broker that left no record yet is left alone.
 */
async function recordOtherBoot(dataDir: string): Promise<void> {
  const path = join(dataDir, LAST_RUN_FILE);
  const text = await readFile(path, 'utf8').catch(() => undefined);
  if (text === undefined) return;
  await writeFile(path, JSON.stringify({ ...(JSON.parse(text) as object), bootId: `chaos-reboot-${randomUUID()}` }));
}

async function fill(path: string): Promise<number> {
  const file = await open(path, 'w');
  const chunk = Buffer.alloc(BALLAST_CHUNK_BYTES, 0xaa);
  let written = 0;
  try {
    for (; written < BALLAST_MAX_CHUNKS; written++) await file.write(chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
    // Fill the last partial page run too, so the broker's next write fails.
    for (let size = BALLAST_CHUNK_BYTES / 2; size >= 4096; size /= 2) await file.write(chunk.subarray(0, size)).catch(() => {});
  } finally {
    await file.close();
  }
  return written;
}
