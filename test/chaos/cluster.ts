import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, type WriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI } from '../support/broker-process.js';
import { freePorts } from '../support/ports.js';
import { mountTmpfs, tmpfsUnavailable } from '../support/tmpfs.js';
import type { Cleanup } from './cleanup.js';
import { FaultLink } from './link.js';

/** The brokers' `--fsync` in a run: every broker's, or `mixed`. */
export type ChaosFsync = 'always' | 'interval' | 'mixed';

/** Size of each broker's tmpfs data directory: small enough that the disk-full fault fills it in a moment. */
export const TMPFS_SIZE_MB = 64;
/** Time a broker gets to print its listening line. */
const START_TIMEOUT_MS = 20_000;
/** Time a signalled broker gets to exit before it is killed. */
const EXIT_TIMEOUT_MS = 10_000;
/** Drain budget of a graceful shutdown (SIGTERM). */
const DRAIN_TIMEOUT_MS = 2000;
/** Attempts to start a broker (a failed start is recorded, then retried). */
const START_ATTEMPTS = 3;

/** Where Debian's faketime package puts the preload library (the multi-threaded one, for node). */
const LIBFAKETIME = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1', '/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1', '/usr/lib/faketime/libfaketimeMT.so.1'];

/** The libfaketime library when Debian's `faketime` is installed, else why not. */
export function findFaketime(): { library: string } | { missing: string } {
  if (spawnSync('faketime', ['--help'], { stdio: 'ignore' }).error !== undefined) return { missing: 'the faketime command is not installed (apt-get install faketime)' };
  const library = LIBFAKETIME.find((path) => existsSync(path));
  return library === undefined ? { missing: `faketime is installed but none of ${LIBFAKETIME.join(', ')} exists` } : { library };
}

export interface ClusterOptions {
  brokers: number;
  replicationFactor: number;
  partitions: number;
  /** Mount a size-limited tmpfs per data directory (needs root); otherwise plain directories. */
  tmpfs: boolean;
  /** Keep logs and data (copied off tmpfs) after the run. */
  keep: boolean;
  /** Every broker's `--storage-layout`. */
  storageLayout: 'split' | 'unified';
  /** The brokers' `--fsync`: every broker's, or `mixed` (`always` on c1, c3, ..., `interval` on the others). */
  fsync: ChaosFsync;
  cleanup: Cleanup;
  /** Progress lines. */
  log: (line: string) => void;
}

/** Why a broker did not start, kept for the report (a broker that cannot start after a fault is a finding). */
export interface StartFailure {
  broker: string;
  atMs: number;
  reason: string;
}

type BrokerState = 'running' | 'paused' | 'stopped';

/** One broker process slot: the same ports, data directory and links across restarts. */
export class ChaosBroker {
  state: BrokerState = 'stopped';
  /** Wall-clock skew of the running process, seconds (0: none). */
  skewSeconds = 0;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private tail: string[] = [];
  /** Lines recorded since the slot was created. */
  private recorded = 0;

  constructor(
    readonly id: string,
    readonly clientPort: number,
    readonly peerPort: number,
    readonly adminPort: number,
    readonly dataDir: string,
    readonly args: string[],
    private readonly logFile: WriteStream,
  ) {}

  get adminUrl(): string {
    return `http://127.0.0.1:${this.adminPort}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The last lines the broker wrote (stdout and stderr). */
  lastLines(count = 20): string {
    return count <= 0 ? '' : this.tail.slice(-count).join('\n');
  }

  /** Starts the process and resolves once it listens; rejects with its output when it exits or hangs first. */
  async start(env: Record<string, string> = {}): Promise<void> {
    if (this.state !== 'stopped') throw new Error(`${this.id} is already ${this.state}`);
    const child = spawn(process.execPath, [CLI, 'broker', ...this.args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    this.child = child;
    this.state = 'running';
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        if (this.child === child) this.state = 'stopped';
        this.record(`[chaos] ${this.id} exited (code ${code}, signal ${signal})`);
        resolve();
      }),
    );
    let output = '';
    const linesBefore = this.recorded;
    const listening = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.id} did not listen within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
      const onData = (chunk: Buffer): void => {
        const text = chunk.toString();
        this.logFile.write(text);
        for (const line of text.split('\n')) if (line !== '') this.record(line);
        output += text;
        if (/ listening on ws:\/\//.test(output)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      void this.exited.then(() => {
        clearTimeout(timer);
        // Only this start's lines: the cause is usually the last one.
        reject(new Error(`${this.id} exited before listening:\n${this.lastLines(Math.min(10, this.recorded - linesBefore))}`));
      });
    });
    try {
      await listening;
    } catch (err) {
      await this.kill();
      throw err;
    }
  }

  private record(line: string): void {
    this.recorded++;
    this.tail.push(line);
    if (this.tail.length > 200) this.tail.splice(0, this.tail.length - 200);
  }

  /** kill -9 (a paused process is killed too), resolved once it exited. */
  async kill(): Promise<void> {
    if (this.state === 'stopped') return;
    this.child?.kill('SIGKILL');
    await this.exited;
  }

  /** A graceful shutdown; killed when it does not exit in time. */
  async terminate(): Promise<void> {
    if (this.state === 'stopped') return;
    if (this.state === 'paused') this.resume();
    this.child?.kill('SIGTERM');
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), DRAIN_TIMEOUT_MS + EXIT_TIMEOUT_MS);
    await this.exited;
    clearTimeout(timer);
  }

  pause(): void {
    if (this.state !== 'running') return;
    this.child?.kill('SIGSTOP');
    this.state = 'paused';
  }

  resume(): void {
    if (this.state !== 'paused') return;
    this.child?.kill('SIGCONT');
    this.state = 'running';
  }
}

/**
 * A cluster of real broker processes for a chaos run. Every broker-to-broker
 * link (one proxy per direction: `c1->c2` is what c1 dials to reach c2) and
 * every client link (`client->c1`, the URL brokers advertise) goes through a
 * {@link FaultLink}. Data directories are size-limited tmpfs mounts when
 * possible. Everything is registered with the run's {@link Cleanup}.
 */
export class ChaosCluster {
  readonly brokers: ChaosBroker[] = [];
  /** Peer links by `from->to`. */
  readonly peerLinks = new Map<string, FaultLink>();
  /** Client links by broker id. */
  readonly clientLinks = new Map<string, FaultLink>();
  readonly startFailures: StartFailure[] = [];
  readonly startedAtMs = Date.now();
  /** How the data directories are backed: `tmpfs` or `directory`, with why. */
  storage = 'directory';

  private constructor(
    readonly options: ClusterOptions,
    readonly baseDir: string,
  ) {}

  static async start(options: ClusterOptions): Promise<ChaosCluster> {
    const baseDir = await mkdtemp(join(tmpdir(), 'relaymq-chaos-'));
    const cluster = new ChaosCluster(options, baseDir);
    if (!options.keep) options.cleanup.add(`remove ${baseDir}`, () => rm(baseDir, { recursive: true, force: true }));
    await cluster.create();
    return cluster;
  }

  get ids(): string[] {
    return this.brokers.map((b) => b.id);
  }

  get clientUrls(): string[] {
    return this.ids.map((id) => `ws://127.0.0.1:${(this.clientLinks.get(id) as FaultLink).port}`);
  }

  broker(id: string): ChaosBroker {
    const broker = this.brokers.find((b) => b.id === id);
    if (broker === undefined) throw new Error(`no broker ${id}`);
    return broker;
  }

  private async create(): Promise<void> {
    const { brokers: count, cleanup, log } = this.options;
    const ids = Array.from({ length: count }, (_, i) => `c${i + 1}`);
    const ports = await freePorts(count * 3);
    const port = (kind: number, i: number): number => ports[kind * count + i] as number;
    await mkdir(join(this.baseDir, 'logs'));
    await mkdir(join(this.baseDir, 'data'));
    const unmountable = this.options.tmpfs ? tmpfsUnavailable() : 'not asked (--no-tmpfs)';
    const mounts = unmountable === undefined;
    this.storage = mounts ? `tmpfs (${TMPFS_SIZE_MB} MiB per broker)` : `plain directories (${unmountable})`;
    for (const [i, id] of ids.entries()) {
      for (const [j, other] of ids.entries()) {
        if (i === j) continue;
        const link = await FaultLink.start(`${id}->${other}`, port(1, j));
        cleanup.add(`close link ${link.name}`, () => link.close());
        this.peerLinks.set(link.name, link);
      }
      const clientLink = await FaultLink.start(`client->${id}`, port(0, i));
      cleanup.add(`close link ${clientLink.name}`, () => clientLink.close());
      this.clientLinks.set(id, clientLink);
    }
    for (const [i, id] of ids.entries()) {
      const dataDir = join(this.baseDir, 'data', id);
      await mkdir(dataDir);
      if (mounts) {
        const unmount = mountTmpfs(dataDir, `${TMPFS_SIZE_MB}m`);
        cleanup.add(`unmount ${dataDir}`, () => {
          if (this.options.keep) spawnSync('cp', ['-a', dataDir, join(this.baseDir, `kept-${id}`)]);
          unmount();
        });
      }
      const peers = ids.filter((other) => other !== id).map((other) => `${other}@127.0.0.1:${(this.peerLinks.get(`${id}->${other}`) as FaultLink).port}`);
      const args = [
        '--id', id,
        '--port', String(port(0, i)),
        '--peer-port', String(port(1, i)),
        '--admin-port', String(port(2, i)),
        '--peers', peers.join(','),
        '--data-dir', dataDir,
        '--storage-layout', this.options.storageLayout,
        '--fsync', this.options.fsync === 'mixed' ? (i % 2 === 0 ? 'always' : 'interval') : this.options.fsync,
        '--replication-factor', String(this.options.replicationFactor),
        '--default-partitions', String(this.options.partitions),
        '--advertised-url', `ws://127.0.0.1:${(this.clientLinks.get(id) as FaultLink).port}`,
        '--drain-timeout-ms', String(DRAIN_TIMEOUT_MS),
        // Brokers log warnings and errors; CHAOS_BROKER_LOG_LEVEL=info (or debug) traces a slow seed's replay (not RELAYMQ_*: brokers warn about unknown ones).
        '--log-level', process.env.CHAOS_BROKER_LOG_LEVEL ?? 'warn',
      ];
      const logFile = createWriteStream(join(this.baseDir, 'logs', `${id}.log`), { flags: 'a' });
      const broker = new ChaosBroker(id, port(0, i), port(1, i), port(2, i), dataDir, args, logFile);
      this.brokers.push(broker);
      cleanup.add(`kill ${id}`, async () => {
        await broker.kill();
        await new Promise<void>((resolve) => logFile.end(() => resolve()));
      });
    }
    log(`cluster: ${count} brokers, replication factor ${this.options.replicationFactor}, ${this.options.partitions} partitions, data on ${this.storage}, files in ${this.baseDir}`);
    await Promise.all(this.brokers.map((b) => this.startBroker(b.id)));
  }

  /**
   * Starts a stopped broker (with its wall clock skewed by `skewSeconds`
   * through libfaketime when given). A failed start is recorded as a finding
   * and retried a bounded number of times.
   */
  async startBroker(id: string, skew?: { seconds: number; library: string }): Promise<boolean> {
    const broker = this.broker(id);
    const env: Record<string, string> =
      skew === undefined ? {} : { LD_PRELOAD: skew.library, FAKETIME: `${skew.seconds >= 0 ? '+' : ''}${skew.seconds}s`, FAKETIME_DONT_FAKE_MONOTONIC: '1' };
    for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
      try {
        await broker.start(env);
        broker.skewSeconds = skew?.seconds ?? 0;
        return true;
      } catch (err) {
        const reason = String(err instanceof Error ? err.message : err);
        this.startFailures.push({ broker: id, atMs: Date.now() - this.startedAtMs, reason });
        this.options.log(`!! ${id} failed to start (attempt ${attempt}/${START_ATTEMPTS}): ${reason.split('\n').slice(0, 4).join(' | ')}`);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
    return false;
  }

  /** Resumes paused brokers and starts stopped ones (without skew), so the run can heal. */
  async ensureAllRunning(): Promise<void> {
    for (const b of this.brokers) b.resume();
    await Promise.all(this.brokers.filter((b) => b.state === 'stopped' || b.skewSeconds !== 0).map(async (b) => {
      if (b.skewSeconds !== 0) await b.terminate();
      await this.startBroker(b.id);
    }));
  }

  /** Heals every link. */
  healLinks(): void {
    for (const link of [...this.peerLinks.values(), ...this.clientLinks.values()]) link.heal();
  }

  /** Resolves once every broker's /readyz answers 200, or returns the ones that did not within `timeoutMs`. */
  async waitReady(timeoutMs: number): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    const pending = new Set(this.ids);
    while (pending.size > 0 && Date.now() < deadline) {
      for (const id of [...pending]) {
        const ok = await fetch(`${this.broker(id).adminUrl}/readyz`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false);
        if (ok) pending.delete(id);
      }
      if (pending.size > 0) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    return [...pending];
  }
}
