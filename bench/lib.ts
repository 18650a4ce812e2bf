/**
 * Small helpers shared by the benchmarks: a broker in a child process,
 * timing, percentiles and progress output. Nothing here knows a scenario.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type * as Broker from '@relaymq/broker';
import type * as Sdk from '@relaymq/sdk';

/** Repository root (bench/ sits directly under it). */
export const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The built broker CLI; `npm run bench` builds it first. */
const BROKER_CLI = fileURLToPath(new URL('../packages/broker/dist/cli.js', import.meta.url));

/** The built SDK for Node: what `npm install @relaymq/sdk` users run. */
const SDK_DIST = fileURLToPath(new URL('../packages/sdk/dist/node.js', import.meta.url));

/** Which SDK the benchmark drives: the build (default) or the TypeScript sources through tsx. */
export type SdkBuild = 'dist' | 'source';

/**
 * Loads the SDK. `dist` is the published build; `source` goes through tsx,
 * whose on-the-fly transform (esbuild `keepNames`, wrapping every named
 * closure in `__name()`) costs the client 10-25% throughput, so it is not
 * what users get. Both are typed by the sources.
 */
export async function loadSdk(build: SdkBuild): Promise<typeof Sdk> {
  if (build === 'source') return import('@relaymq/sdk');
  // RELAYMQ_BENCH_SDK_DIST: another build's dist/node.js (a before/after in one run, with RELAYMQ_BENCH_BROKER_CLI).
  const other = process.env.RELAYMQ_BENCH_SDK_DIST;
  if (other !== undefined) return (await import(pathToFileURL(other).href)) as typeof Sdk;
  if (!existsSync(SDK_DIST)) throw new Error(`${SDK_DIST} is missing: run \`npm run build\` (npm run bench does)`);
  return (await import(pathToFileURL(SDK_DIST).href)) as typeof Sdk;
}

/** The built broker library (`npm run bench` builds it first). */
const BROKER_DIST = fileURLToPath(new URL('../packages/broker/dist/index.js', import.meta.url));

/**
 * Loads the built broker library, for a benchmark that runs brokers in its
 * own process. Not `import('@relaymq/broker')`: under tsx that resolves, by
 * the tsconfig paths, to the TypeScript sources, whose transform wraps every
 * named closure (`__name`) and so changes what each object costs.
 */
export async function loadBroker(): Promise<typeof Broker> {
  if (!existsSync(BROKER_DIST)) throw new Error(`${BROKER_DIST} is missing: run \`npm run build\` (npm run bench does)`);
  return (await import(pathToFileURL(BROKER_DIST).href)) as typeof Broker;
}

/** How long a broker may take to print its listening line. */
const BROKER_READY_TIMEOUT_MS = 15_000;
/** How long a broker may take to exit after SIGTERM before it gets SIGKILL. */
const BROKER_STOP_TIMEOUT_MS = 5_000;
/** `CLK_TCK` for /proc/<pid>/stat times: 100 on every mainstream Linux. */
const PROC_TICKS_PER_SECOND = 100;

/** Progress for humans, on stderr: stdout carries only the JSON result. */
export function progress(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

/** Monotonic time in seconds, for throughput runs. */
export function nowSeconds(): number {
  return Number(process.hrtime.bigint()) / 1e9;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** An error's message, for progress lines and the JSON. */
export const describe = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Polls `check` every `intervalMs` until it returns a value, or rejects after `timeoutMs`. */
export async function waitFor<V>(check: () => Promise<V | undefined> | V | undefined, what: string, timeoutMs: number, intervalMs = 10): Promise<V> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** The median of `values` (the mean of the middle two for an even count); NaN for none. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Latency figures, in microseconds. */
export interface LatencySummary {
  count: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
  meanUs: number;
}

/** The `p`-th percentile (0-100) of ascending `sorted`, nearest-rank method. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}

/** Summarizes latency samples given in milliseconds (as `performance.now()` differences). */
export function summarizeLatency(samplesMs: readonly number[]): LatencySummary {
  const us = samplesMs.map((ms) => ms * 1000).sort((a, b) => a - b);
  const round = (value: number): number => Math.round(value * 10) / 10;
  const sum = us.reduce((total, value) => total + value, 0);
  return {
    count: us.length,
    p50Us: round(percentile(us, 50)),
    p99Us: round(percentile(us, 99)),
    maxUs: round(us[us.length - 1] ?? Number.NaN),
    meanUs: round(sum / us.length),
  };
}

/** A payload of `size` bytes (not all zero, so nothing can special-case it). */
export function payload(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + 7) & 0xff;
  return bytes;
}

/**
 * CPU seconds (user + system) used so far by process `pid`, read from
 * /proc; undefined where /proc is not available (non-Linux).
 */
export function processCpuSeconds(pid: number): number | undefined {
  const split = processCpuSplit(pid);
  return split === undefined ? undefined : split.user + split.system;
}

/** CPU seconds used so far by process `pid` in user and in system (kernel) mode, from /proc; undefined where unavailable. */
export function processCpuSplit(pid: number): { user: number; system: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of stat(5), i.e. 11 and 12 after the name and state.
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
    return { user: utime / PROC_TICKS_PER_SECOND, system: stime / PROC_TICKS_PER_SECOND };
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) used so far by this process. */
export function ownCpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/** A broker running in a child process. */
export interface BrokerProcess {
  readonly id: string;
  readonly url: string;
  readonly pid: number;
  /** SIGTERM, then SIGKILL after a grace period; resolves once it exited. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL at once (a crash: nothing flushed, nothing handed over); resolves once it exited. */
  kill(): Promise<void>;
}

/** Live child processes, so an interrupted run can still kill them. */
const children = new Set<ChildProcess>();
/** Temporary directories of this run, removed on exit whatever happens. */
const tempDirs = new Set<string>();

/**
 * Registers a child process of this run (a broker, or another system's
 * server), so that {@link killChildren} kills it if the run is interrupted.
 */
export function trackChild(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
}

/** Pids of the child processes still running (the brokers of a cluster run). */
export function childPids(): number[] {
  return [...children].flatMap((child) => (child.pid !== undefined && child.exitCode === null && child.signalCode === null ? [child.pid] : []));
}

/**
 * Microseconds that `pid`'s main thread has so far spent runnable but waiting
 * for a CPU (the second field of Linux's /proc/<pid>/schedstat); undefined
 * where that file is missing. Time a publish lost to the OS scheduler.
 */
export function runQueueWaitUs(pid: number): number | undefined {
  try {
    const field = readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1];
    return field === undefined ? undefined : Number(field) / 1000;
  } catch {
    return undefined;
  }
}

/** Kills every child still running and removes the temporary directories, synchronously (for exit and signal handlers). */
export function killChildren(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  children.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

/** A fresh temporary directory, removed by {@link removeTempDir} or, at the latest, on exit. */
export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/**
 * `count` distinct ports that were free on 127.0.0.1 a moment ago (listen on
 * port 0, note the port, close), for brokers that must know each other's peer
 * port up front and keep their client port across a restart.
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<net.Server>((resolve, reject) => {
          const server = net.createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((server) => (server.address() as net.AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  return ports;
}

/**
 * Starts `relaymq broker` from the built CLI in its own process (so broker
 * and benchmark do not share an event loop) on 127.0.0.1:`port` (0: any free
 * port) and resolves once it printed `relaymq broker <id> listening on <url>`.
 */
export function spawnBroker(id: string, extraArgs: readonly string[] = [], port = 0): Promise<BrokerProcess> {
  // RELAYMQ_BENCH_BROKER_CLI: another build's dist/cli.js (restart.ts --clis compares builds in one run).
  const args = [process.env.RELAYMQ_BENCH_BROKER_CLI ?? BROKER_CLI, 'broker', '--id', id, '--host', '127.0.0.1', '--port', String(port), '--log-level', 'warn', ...extraArgs];
  const nodeArgs = process.env.RELAYMQ_BENCH_BROKER_NODE_ARGS?.split(' ').filter((a) => a !== '') ?? [];
  const child = spawn(process.execPath, [...nodeArgs, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  // Broker logs (warn and above) are passed on to stderr, tagged.
  createInterface({ input: child.stderr }).on('line', (line) => process.stderr.write(`[broker ${id}] ${line}\n`));

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), BROKER_STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    })();
    return stopping;
  };
  const kill = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGKILL');
    await exited;
  };

  return new Promise<BrokerProcess>((resolve, reject) => {
    let settled = false;
    const fail = (message: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void stop();
      reject(new Error(`broker ${id}: ${message}`));
    };
    const timer = setTimeout(() => fail(`not ready within ${BROKER_READY_TIMEOUT_MS} ms`), BROKER_READY_TIMEOUT_MS);
    child.once('error', (err) => fail(`cannot start: ${err.message}`));
    child.once('exit', (code, signal) => fail(`exited before it was ready (code ${code}, signal ${signal})`));
    // RELAYMQ_BENCH_BROKER_STDOUT=<dir>: each broker's stdout also goes to <dir>/<id>.stdout (V8 writes
    // --trace-gc and --trace-gc-nvp there, which would otherwise be read here for the ready line and dropped).
    const stdoutDir = process.env.RELAYMQ_BENCH_BROKER_STDOUT;
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (stdoutDir !== undefined) appendFileSync(join(stdoutDir, `${id}.stdout`), `${line}\n`);
      const match = /^relaymq broker (\S+) listening on (\S+)(?: peers on \d+)?(?: admin on \S+)?$/.exec(line.trim());
      if (match === null || settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ id: match[1] as string, url: match[2] as string, pid: child.pid as number, stop, kill });
    });
  });
}
