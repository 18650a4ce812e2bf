/**
 * A 3-node NATS JetStream cluster for the side-by-side benchmark
 * (`npm run bench -- --compare nats`): `nats-server` processes on free
 * 127.0.0.1 ports, their stores in one temporary directory, and one R3
 * file-storage stream. It knows processes, ports and the stream's Raft group,
 * not a scenario. Every process and directory is registered with bench/lib.ts,
 * so an interrupted run (SIGINT, a failure) leaves none behind.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { NatsError, RetentionPolicy, StorageType, connect, type ConnectionOptions, type JetStreamManager, type NatsConnection, type StreamInfo } from 'nats';
import { freePorts, makeTempDir, removeTempDir, sleep, trackChild, waitFor } from './lib.js';

/** Where `nats-server` is looked for when RELAYMQ_BENCH_NATS_SERVER is not set: PATH, then Debian's location (not on a user's PATH). */
const NATS_SERVER_FALLBACK = '/usr/sbin/nats-server';
/** How long a server may take to print "Server is ready". */
const READY_TIMEOUT_MS = 15_000;
/** How long JetStream may take to elect its meta leader, a stream leader, or bring a restarted replica up to date. */
const JETSTREAM_TIMEOUT_MS = 30_000;
/** How long a server may take to exit after SIGTERM before it gets SIGKILL. */
const STOP_TIMEOUT_MS = 5_000;
const POLL_MS = 50;
/** JetStream's `err_code` for "no suitable peers for placement": the meta leader does not yet count enough current peers for R3. */
const NO_PEERS_FOR_PLACEMENT = 10005;

const SERVER_NAMES = ['n1', 'n2', 'n3'] as const;
/** The benchmark stream and the subjects it stores. */
export const STREAM = 'BENCH';
export const SUBJECTS = 'bench.>';

/** The `nats-server` binary and its version, or why there is none. */
export type NatsServerLookup = { path: string; version: string } | { missing: string };

/** Finds `nats-server`: RELAYMQ_BENCH_NATS_SERVER when set (and nothing else), else PATH, then /usr/sbin (Debian's package). */
export function findNatsServer(): NatsServerLookup {
  const chosen = process.env.RELAYMQ_BENCH_NATS_SERVER;
  const candidates = chosen !== undefined && chosen !== '' ? [chosen] : ['nats-server', NATS_SERVER_FALLBACK];
  for (const candidate of candidates) {
    if (candidate.includes('/') && !existsSync(candidate)) continue;
    const run = spawnSync(candidate, ['--version'], { encoding: 'utf8', timeout: 5_000 });
    if (run.status === 0) return { path: candidate, version: run.stdout.trim() };
  }
  return {
    missing: `nats-server not found (tried ${candidates.join(', ')}); install the Debian package "nats-server" or set RELAYMQ_BENCH_NATS_SERVER`,
  };
}

/** Polls `check` until it returns a value, or rejects after `timeoutMs`; a failing check (a server not answering yet) counts as "not yet". */
export function poll<V>(check: () => Promise<V | undefined>, what: string, timeoutMs = JETSTREAM_TIMEOUT_MS): Promise<V> {
  return waitFor(() => check().catch(() => undefined), what, timeoutMs, POLL_MS);
}

/** One server: fixed ports and store, so a restart comes back at the same address with its data. */
interface ServerSpec {
  name: string;
  clientPort: number;
  clusterPort: number;
  /** The HTTP monitoring port (`/jsz`), for JetStream's meta group state. */
  monitorPort: number;
  configFile: string;
}

interface RunningServer {
  child: ChildProcess;
  exited: Promise<void>;
}

/** Three `nats-server` processes forming one JetStream cluster, with the R3 file stream {@link STREAM}. */
export class JetStreamCluster {
  private readonly running = new Map<string, RunningServer>();

  private constructor(
    private readonly binary: string,
    /** The temporary directory holding the servers' configurations and stores; removed by {@link close}. */
    readonly root: string,
    private readonly specs: readonly ServerSpec[],
  ) {}

  /** Starts the three servers, waits for JetStream's meta group to be whole, and creates the stream (R3, file storage, limits retention). */
  static async start(binary: string): Promise<JetStreamCluster> {
    const ports = await freePorts(3 * SERVER_NAMES.length);
    const root = makeTempDir('relaymq-bench-nats-');
    const specs = SERVER_NAMES.map((name, i) => ({
      name,
      clientPort: ports[i] as number,
      clusterPort: ports[SERVER_NAMES.length + i] as number,
      monitorPort: ports[2 * SERVER_NAMES.length + i] as number,
      configFile: join(root, `${name}.conf`),
    }));
    for (const spec of specs) {
      const store = join(root, spec.name);
      mkdirSync(store);
      const routes = specs.filter((s) => s !== spec).map((s) => `nats-route://127.0.0.1:${s.clusterPort}`);
      writeFileSync(
        spec.configFile,
        [
          `server_name: ${spec.name}`,
          `listen: 127.0.0.1:${spec.clientPort}`,
          `http: 127.0.0.1:${spec.monitorPort}`,
          `jetstream { store_dir: "${store}", max_memory_store: 256MB, max_file_store: 8GB }`,
          `cluster { name: relaymq-bench, listen: 127.0.0.1:${spec.clusterPort}, routes: [${routes.join(', ')}] }`,
          '',
        ].join('\n'),
      );
    }
    const cluster = new JetStreamCluster(binary, root, specs);
    try {
      await Promise.all(specs.map((spec) => cluster.spawn(spec)));
      await cluster.metaReady();
      const nc = await cluster.connect();
      try {
        // JetStream answers account info (which jetstreamManager() asks for) once its meta group elected a leader.
        const jsm = await poll(() => nc.jetstreamManager({ timeout: 2_000 }), 'the JetStream meta leader');
        await addStream(jsm);
      } finally {
        await nc.close();
      }
      await cluster.settled();
    } catch (err) {
      await cluster.close();
      throw err;
    }
    return cluster;
  }

  /**
   * Resolves once JetStream's meta group is whole: every server names the same meta leader and the
   * leader reports both other servers as current peers, so an R3 stream can be placed. Servers print
   * "Server is ready" before their routes and the meta group have formed; on a loaded machine an R3
   * stream created at that point is refused with "no suitable peers for placement".
   */
  private metaReady(timeoutMs = JETSTREAM_TIMEOUT_MS): Promise<void> {
    let last: unknown;
    return poll(
      async () => {
        const views = await Promise.all(this.specs.map((spec) => jsz(spec.monitorPort)));
        last = views.map((view, i) => ({ server: this.specs[i]?.name, meta: view.meta_cluster }));
        const leader = views[0]?.meta_cluster?.leader;
        if (leader === undefined || leader === '' || !views.every((view) => view.meta_cluster?.leader === leader)) return undefined;
        const peers = views[this.specs.findIndex((spec) => spec.name === leader)]?.meta_cluster?.replicas ?? [];
        return peers.length === SERVER_NAMES.length - 1 && peers.every((peer) => peer.current && peer.offline !== true) ? true : undefined;
      },
      'the JetStream meta group (a leader named by all 3 servers, both other peers current)',
      timeoutMs,
    )
      .then(() => undefined)
      .catch((err: unknown) => {
        throw new Error(`${err instanceof Error ? err.message : String(err)}; last /jsz meta_cluster: ${JSON.stringify(last)}`);
      });
  }

  private spawn(spec: ServerSpec): Promise<void> {
    const child = spawn(this.binary, ['-c', spec.configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    trackChild(child);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    this.running.set(spec.name, { child, exited });
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (message: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(new Error(`nats-server ${spec.name}: ${message}`));
      };
      // nats-server logs to stderr; its last lines say why it would not start (routes refused while peers start are normal).
      const last: string[] = [];
      const why = (): string => (last.length === 0 ? '' : `; last log lines:\n${last.join('\n')}`);
      const timer = setTimeout(() => fail(`not ready within ${READY_TIMEOUT_MS} ms${why()}`), READY_TIMEOUT_MS);
      child.once('error', (err) => fail(`cannot start: ${err.message}`));
      child.once('exit', (code, signal) => setImmediate(() => fail(`exited before it was ready (code ${code}, signal ${signal})${why()}`)));
      createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => {
        if (line.includes('[FTL]')) process.stderr.write(`[nats ${spec.name}] ${line}\n`);
        if (settled) return;
        last.push(line);
        if (last.length > 5) last.shift();
        if (!line.includes('Server is ready')) return;
        settled = true;
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Client URLs, in server order (`n1`, `n2`, `n3`). */
  get urls(): string[] {
    return this.specs.map((spec) => `nats://127.0.0.1:${spec.clientPort}`);
  }

  /** The client URL of server `name`. */
  url(name: string): string {
    const spec = this.specs.find((s) => s.name === name);
    if (spec === undefined) throw new Error(`no server ${name}`);
    return `nats://127.0.0.1:${spec.clientPort}`;
  }

  /** Running servers by name, with their process ids (for CPU figures). */
  get pids(): Record<string, number> {
    return Object.fromEntries([...this.running].map(([name, server]) => [name, server.child.pid as number]));
  }

  /**
   * A connection to the cluster, `first` tried first (the rest in order, no
   * randomizing), reconnecting every 100 ms without limit.
   */
  connect(first?: string, options: Partial<ConnectionOptions> = {}): Promise<NatsConnection> {
    const urls = first === undefined ? this.urls : [this.url(first), ...this.urls.filter((u) => u !== this.url(first))];
    return connect({ servers: urls, noRandomize: true, reconnectTimeWait: 100, reconnectJitter: 0, maxReconnectAttempts: -1, ...options });
  }

  /** The stream's state as one running server reports it. */
  private async streamInfo(): Promise<StreamInfo> {
    const nc = await this.connect(this.running.keys().next().value, { maxReconnectAttempts: 0, timeout: 2_000 });
    try {
      const jsm = await nc.jetstreamManager({ timeout: 2_000 });
      return await jsm.streams.info(STREAM);
    } finally {
      await nc.close();
    }
  }

  /** The stream leader's server name as a running server reports it; undefined while there is none. */
  async leader(): Promise<string | undefined> {
    const leader = (await this.streamInfo()).cluster?.leader;
    return leader !== undefined && this.running.has(leader) ? leader : undefined;
  }

  /**
   * The stream leader's server name once the stream has a running leader and
   * both other replicas are online and current (a restarted one caught up).
   */
  settled(timeoutMs = JETSTREAM_TIMEOUT_MS): Promise<string> {
    return poll(
      async () => {
        const cluster = (await this.streamInfo()).cluster;
        const leader = cluster?.leader;
        const replicas = cluster?.replicas ?? [];
        const ok = leader !== undefined && this.running.has(leader) && replicas.length === 2 && replicas.every((r) => r.current && r.offline !== true);
        return ok ? leader : undefined;
      },
      `a leader of stream ${STREAM} with both replicas current`,
      timeoutMs,
    );
  }

  /** SIGKILL of server `name` (a crash); the signal is sent before this returns its promise. */
  kill(name: string): Promise<void> {
    const server = this.running.get(name);
    if (server === undefined) throw new Error(`no running server ${name}`);
    this.running.delete(name);
    server.child.kill('SIGKILL');
    return server.exited;
  }

  /** Starts a killed or stopped server again: same name, ports and store. */
  restart(name: string): Promise<void> {
    const spec = this.specs.find((s) => s.name === name);
    if (spec === undefined || this.running.has(name)) throw new Error(`cannot restart ${name}`);
    return this.spawn(spec);
  }

  /** Stops every server (SIGTERM, a clean shutdown) and starts them again on their stores: later reads come from disk. */
  async restartAll(): Promise<void> {
    await this.stopAll();
    await Promise.all(this.specs.map((spec) => this.spawn(spec)));
  }

  private async stopAll(): Promise<void> {
    await Promise.all(
      [...this.running.values()].map(async ({ child, exited }) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }),
    );
    this.running.clear();
  }

  /** Stops every server and removes the stores. */
  async close(): Promise<void> {
    await this.stopAll();
    removeTempDir(this.root);
  }
}

/** The part of a server's `/jsz` monitoring answer {@link JetStreamCluster} reads. */
interface Jsz {
  meta_cluster?: { leader?: string; cluster_size?: number; replicas?: Array<{ name: string; current: boolean; offline?: boolean }> };
}

async function jsz(port: number): Promise<Jsz> {
  const response = await fetch(`http://127.0.0.1:${port}/jsz`, { signal: AbortSignal.timeout(2_000) });
  if (!response.ok) throw new Error(`/jsz on port ${port}: HTTP ${response.status}`);
  return (await response.json()) as Jsz;
}

/**
 * Creates the benchmark stream (R3, file storage, limits retention). The meta leader may still
 * refuse placement for a moment after {@link JetStreamCluster.metaReady} (a peer's state not yet
 * current as the leader sees it): that one refusal is retried, within {@link JETSTREAM_TIMEOUT_MS};
 * any other error is thrown at once.
 */
async function addStream(jsm: JetStreamManager): Promise<void> {
  const deadline = performance.now() + JETSTREAM_TIMEOUT_MS;
  for (;;) {
    try {
      await jsm.streams.add({ name: STREAM, subjects: [SUBJECTS], storage: StorageType.File, num_replicas: 3, retention: RetentionPolicy.Limits });
      return;
    } catch (err) {
      const noPeers = err instanceof NatsError && err.api_error?.err_code === NO_PEERS_FOR_PLACEMENT;
      if (!noPeers || performance.now() > deadline) throw err;
      await sleep(200);
    }
  }
}
