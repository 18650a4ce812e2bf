import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { freePorts } from './ports.js';

/**
 * A RabbitMQ cluster for tests: N nodes as separate OS processes on loopback
 * ports chosen here, each with its own temporary directories, the
 * `rabbitmq_stream` plugin enabled, and a private `epmd` so nothing on the
 * machine (a system RabbitMQ, another test's cluster) is shared or touched.
 *
 * How the nodes start: node 1 first, then nodes 2..N together, configured
 * (classic config peer discovery) to join node 1 during their first boot. No
 * node restarts its app and no `rabbitmqctl` runs: booting three standalone
 * nodes and joining two with `rabbitmqctl` (stop_app, join_cluster,
 * start_app) was 1.6 times slower than one boot of all three (medians of 3
 * alternating starts in one run on 2 cores at a load of 13-24: 21.1 s against
 * 13.3 s). Node 1 must have finished its own first boot before another node
 * joins it: RabbitMQ 3.10's classic config discovery takes no lock, and a node
 * that joins while node 1 is still initialising (its tables exist, its
 * feature flags and default user not yet) copies a half-made state. Seen under
 * load (a CI run and reproductions at a load of 15-25): node 1 crashed with
 * `user_already_exists` (a joiner seeded the default user first), and a node
 * that joined before `stream_queue` was enabled logged "Server startup
 * complete; 1 plugins started" without opening its stream listener (the
 * plugin starts none while that flag is off), so clients got ECONNREFUSED.
 *
 * Each node's process is the Erlang VM itself (`beam.smp`): the start script
 * is told to exec the VM (`RABBITMQ_ALLOW_INPUT` with `-noinput`), so
 * {@link RabbitNode.kill} signals the broker and not a wrapper shell; the
 * VM's helper processes (`erl_child_setup`, `inet_gethost`) are killed after
 * it, and {@link RabbitCluster.stop} leaves no process behind.
 */

/** Where Debian's package puts the scripts that run RabbitMQ as the calling user (`/usr/sbin/rabbitmq-server` would `su rabbitmq`). */
const SCRIPTS_DIR = process.env.RELAYMQ_RABBITMQ_SCRIPTS ?? '/usr/lib/rabbitmq/bin';
const SERVER = join(SCRIPTS_DIR, 'rabbitmq-server');
const CTL = join(SCRIPTS_DIR, 'rabbitmqctl');
/** The line a node logs once every plugin is started and its listeners are open. */
const STARTED = 'Server startup complete';
/** The line a blank node logs when peer discovery found the node it joins. */
const JOINED = 'selected for auto-clustering';
/** The line a node logs when its stream listener is open (before {@link STARTED}); `port` is its stream port. */
const LISTENING = (port: number): string => `started Stream TCP listener on 127.0.0.1:${port}`;
/** Default bound on starting a cluster: a 3-node start took 9.5-18 s on a 2-core machine at a load of 13-24. */
const DEFAULT_START_TIMEOUT_MS = 90_000;
/** Attempts at starting a node (or, on a first boot, the whole cluster) when a start fails for a transient reason. */
const START_ATTEMPTS = 3;
/**
 * What a node logs before exiting when another start may succeed: a port taken between choosing it
 * and binding it (listener or distribution port), epmd not answering the registration, the
 * cluster's tables or schema not reachable yet (a peer still booting or restarting under load),
 * the default user seeded twice (a node that joined a half-initialised node 1).
 */
const TRANSIENT_START_FAILURES = [
  /eaddrinuse/i,
  /user_already_exists/,
  /register\/listen error/,
  /could not start distribution/i,
  // Its Erlang distribution port taken meanwhile by another process (not an Erlang node): other ports next time.
  /dist_port_already_used/,
  /schema_integrity_check_failed/,
  /timeout_waiting_for_tables/,
  /timeout_waiting_for_khepri/,
];

/** Whether RabbitMQ can run here: `{ ok: false, reason }` names what is missing, for a printed skip. */
export type RabbitAvailability = { ok: true } | { ok: false; reason: string };

/** One RabbitMQ node of a {@link RabbitCluster}. */
export interface RabbitNode {
  /** The Erlang node name, e.g. `rmq-3f9a1c-2@localhost`. */
  readonly name: string;
  /** The node's stream protocol port on 127.0.0.1 (also its advertised port). */
  readonly streamPort: number;
  /** The node's AMQP 0-9-1 port on 127.0.0.1. */
  readonly amqpPort: number;
  /** `rabbitmq-stream://user:pass@127.0.0.1:streamPort`. */
  readonly streamUrl: string;
  /** The Erlang VM's pid while the node runs; undefined once it exited. */
  readonly pid: number | undefined;
  /** Whether the node's process is alive (started, not yet exited). */
  readonly running: boolean;
  /** Sends `signal` (default SIGKILL) to the VM and resolves once it exited; its helper processes are killed with it. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Stops the node gracefully (SIGTERM, which RabbitMQ handles as `rabbitmqctl stop`) and resolves once it exited. */
  stop(): Promise<void>;
  /** Starts the node again on the same ports and data, resolving once it logged startup complete (it rejoins its cluster). */
  start(timeoutMs?: number): Promise<void>;
  /** The tail (last 20,000 characters) of the node's console log, for failure messages. */
  readonly log: string;
  /**
   * How the node's last process ended, once it did: its exit code or signal, whether the harness
   * sent that signal (an unexpected SIGKILL came from elsewhere) and how long after startup complete.
   */
  readonly lastExit: NodeExit | undefined;
}

/** How a node's process ended; see {@link RabbitNode.lastExit}. */
export interface NodeExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** The signal the harness itself sent ({@link RabbitNode.kill} / {@link RabbitNode.stop}), if any. */
  readonly sentByHarness: NodeJS.Signals | undefined;
  /** Milliseconds from the node's startup-complete line to its exit; undefined when it never got there. */
  readonly afterStartupMs: number | undefined;
  /** Wall-clock time of the exit (ISO 8601). */
  readonly at: string;
}

/** A running cluster started by {@link startRabbitCluster}. */
export interface RabbitCluster {
  readonly nodes: readonly RabbitNode[];
  /** Each node's stream URL, in node order. */
  readonly streamUrls: readonly string[];
  readonly username: string;
  readonly password: string;
  /** Milliseconds from the call to {@link startRabbitCluster} until every node ran clustered. */
  readonly startupMs: number;
  /** Runs `rabbitmqctl` against node `index` (0-based) and resolves with its stdout; rejects on a non-zero exit. */
  ctl(index: number, args: string[], timeoutMs?: number): Promise<string>;
  /** The names of the nodes node `index` sees running in its cluster, sorted. */
  runningNodes(index?: number): Promise<string[]>;
  /** Every live process the cluster started (each VM, its helper processes, the private epmd). */
  pids(): number[];
  /**
   * For a failure message: each node's state (running with its pid, or how it exited) and the
   * last `lines` lines of its console log.
   */
  diagnose(lines?: number): string;
  /** Kills every process the cluster started and removes its temporary directory; safe to call twice. */
  stop(): Promise<void>;
}

/** Options of {@link startRabbitCluster}. */
export interface RabbitClusterOptions {
  /** Number of nodes. */
  nodes: 1 | 3;
  /**
   * Bound on the whole start, in milliseconds.
   * @defaultValue 90_000
   */
  timeoutMs?: number;
}

/** Whether this machine can run {@link startRabbitCluster}: the RabbitMQ scripts, epmd and the stream plugin must be installed. */
export function rabbitAvailable(): RabbitAvailability {
  if (process.platform !== 'linux') return { ok: false, reason: `RabbitMQ tests run on Linux only (this is ${process.platform})` };
  if (!existsSync(SERVER)) {
    return { ok: false, reason: `${SERVER} not found: install rabbitmq-server (apt-get install rabbitmq-server) or set RELAYMQ_RABBITMQ_SCRIPTS` };
  }
  if (epmdPath() === undefined) return { ok: false, reason: 'epmd (Erlang) not found next to erl or on PATH' };
  if (!streamPluginInstalled()) return { ok: false, reason: 'the rabbitmq_stream plugin is not installed next to rabbitmq-server' };
  return { ok: true };
}

/**
 * Starts a RabbitMQ cluster of `nodes` nodes on 127.0.0.1 and resolves once
 * every node runs, clustered, with its stream listener open. On failure
 * everything started so far is stopped and removed before the rejection.
 */
export async function startRabbitCluster(options: RabbitClusterOptions): Promise<RabbitCluster> {
  const availability = rabbitAvailable();
  if (!availability.ok) throw new Error(`RabbitMQ is not available: ${availability.reason}`);
  const began = Date.now();
  const deadline = began + (options.timeoutMs ?? DEFAULT_START_TIMEOUT_MS);
  const cluster = await RabbitClusterImpl.prepare(options.nodes);
  try {
    await cluster.boot(deadline);
    cluster.startupMs = Date.now() - began;
    return cluster;
  } catch (error) {
    await cluster.stop();
    throw error;
  }
}

/**
 * Every process the clusters of this test process run and every directory
 * they use, so nothing outlives the test process: at exit the processes are
 * killed, and a watchdog (a shell loop, running only while something is
 * registered) kills them and removes the directories within a second when
 * this process dies without an exit handler (SIGKILL, an interrupted run).
 */
class Leftovers {
  private readonly children = new Set<ChildProcess>();
  private readonly dirs = new Set<string>();
  private readonly file = join(tmpdir(), `relaymq-rabbitmq-watch-${process.pid}`);
  private watchdog: ChildProcess | undefined;

  constructor() {
    process.once('exit', () => {
      for (const child of this.children) killGroup(child, 'SIGKILL');
    });
  }

  /** Registers a child spawned `detached` (its own process group) until it exits. */
  addChild(child: ChildProcess): void {
    this.children.add(child);
    child.once('exit', () => {
      this.children.delete(child);
      this.sync();
    });
    this.sync();
  }

  addDir(dir: string): void {
    this.dirs.add(dir);
    this.sync();
  }

  deleteDir(dir: string): void {
    this.dirs.delete(dir);
    this.sync();
  }

  private sync(): void {
    if (this.children.size === 0 && this.dirs.size === 0) {
      this.watchdog?.kill('SIGKILL');
      this.watchdog = undefined;
      rmSync(this.file, { force: true });
      return;
    }
    const pids = [...this.children].map((child) => child.pid).filter((pid) => pid !== undefined);
    writeFileSync(this.file, [...pids.map((pid) => `pid ${pid}`), ...[...this.dirs].map((dir) => `dir ${dir}`), ''].join('\n'));
    if (this.watchdog !== undefined) return;
    this.watchdog = spawn('/bin/sh', ['-c', WATCHDOG, 'relaymq-rabbitmq-watchdog', String(process.pid), this.file], { stdio: 'ignore', detached: true });
    this.watchdog.unref();
  }
}

/** Waits for its parent (`$1`) to die, then kills the process groups and removes the directories listed in `$2`. */
const WATCHDOG = `
while kill -0 "$1" 2>/dev/null; do sleep 1; done
[ -f "$2" ] || exit 0
while read -r kind value; do [ "$kind" = pid ] && kill -9 "-$value" 2>/dev/null; done < "$2"
sleep 1
while read -r kind value; do [ "$kind" = dir ] && rm -rf -- "$value"; done < "$2"
rm -f -- "$2"
`;

const leftovers = new Leftovers();

class RabbitClusterImpl implements RabbitCluster {
  startupMs = 0;
  private stopped = false;

  private constructor(
    readonly dir: string,
    readonly username: string,
    readonly password: string,
    readonly nodes: NodeProcess[],
    private readonly epmd: ChildProcess,
    private readonly env: Record<string, string>,
  ) {}

  /** Writes every node's files and starts the private epmd; the nodes are not started yet. */
  static async prepare(count: number): Promise<RabbitClusterImpl> {
    const dir = await mkdtemp(join(tmpdir(), 'relaymq-rabbitmq-'));
    leftovers.addDir(dir);
    let epmd: ChildProcess | undefined;
    try {
      const id = randomBytes(3).toString('hex');
      const password = randomBytes(12).toString('hex');
      const username = 'relaymq';
      const home = join(dir, 'home');
      await mkdir(home);
      // The Erlang cookie every node and rabbitmqctl share; Erlang refuses a cookie file others can read.
      await writeFile(join(home, '.erlang.cookie'), randomBytes(16).toString('hex'));
      await chmod(join(home, '.erlang.cookie'), 0o400);
      // An empty env file, so /etc/rabbitmq/rabbitmq-env.conf (node name, ports) does not apply.
      await writeFile(join(dir, 'rabbitmq-env.conf'), '');
      const ports = await freePorts(1 + count * 3);
      const epmdPort = ports.pop() as number;
      const env: Record<string, string> = {
        HOME: home,
        ERL_EPMD_PORT: String(epmdPort),
        RABBITMQ_CONF_ENV_FILE: join(dir, 'rabbitmq-env.conf'),
        // No busy-waiting schedulers: three VMs on a shared 2-core machine would spin against each other.
        RABBITMQ_SCHEDULER_BUSY_WAIT_THRESHOLD: 'none',
      };
      epmd = spawn(epmdPath() as string, ['-port', String(epmdPort), '-address', '127.0.0.1'], { stdio: 'ignore', detached: true });
      leftovers.addChild(epmd);
      const nodes: NodeProcess[] = [];
      for (let i = 0; i < count; i++) {
        const [amqpPort, streamPort, distPort] = ports.slice(i * 3, i * 3 + 3) as [number, number, number];
        const seed = i === 0 ? undefined : `rmq-${id}-1@localhost`;
        const node = new NodeProcess(`rmq-${id}-${i + 1}@localhost`, join(dir, `node-${i + 1}`), amqpPort, streamPort, distPort, username, password, env, seed);
        await node.writeFiles();
        nodes.push(node);
      }
      const cluster = new RabbitClusterImpl(dir, username, password, nodes, epmd, env);
      await cluster.waitForEpmd(epmdPort);
      return cluster;
    } catch (error) {
      if (epmd !== undefined) await exitOf(epmd, 'SIGKILL');
      await rm(dir, { recursive: true, force: true });
      leftovers.deleteDir(dir);
      throw error;
    }
  }

  get streamUrls(): string[] {
    return this.nodes.map((node) => node.streamUrl);
  }

  /**
   * Starts node 1, then the other nodes together, and resolves once each logged startup complete with
   * its stream listener open, the joining ones clustered with node 1. A node that fails for a
   * transient reason fails the attempt: every node is killed, and the cluster boots again on fresh
   * ports and empty data ({@link START_ATTEMPTS} attempts in all, within `deadline`).
   */
  async boot(deadline: number): Promise<void> {
    const [seed, ...joiners] = this.nodes as [NodeProcess, ...NodeProcess[]];
    for (let attempt = 1; ; attempt++) {
      // Node 1 completes its first boot before any node joins it (see the top of this file).
      let failure: unknown;
      try {
        await seed.startOnce(deadline - Date.now());
        const results = await Promise.allSettled(joiners.map((node) => node.startOnce(deadline - Date.now())));
        failure = results.find((result): result is PromiseRejectedResult => result.status === 'rejected')?.reason;
      } catch (error) {
        failure = error;
      }
      if (failure === undefined) break;
      await Promise.all(this.nodes.map((node) => node.kill('SIGKILL')));
      if (!(failure instanceof NodeStartError) || !failure.transient || attempt >= START_ATTEMPTS || Date.now() >= deadline) {
        throw new Error(`the RabbitMQ cluster did not start (attempt ${attempt}/${START_ATTEMPTS}): ${String(failure)}\n${this.diagnose()}`);
      }
      console.warn(`rabbitmq harness: cluster start ${attempt}/${START_ATTEMPTS} failed (${failure.node}: ${failure.reason}); starting it again on other ports`);
      const ports = await freePorts(this.nodes.length * 3);
      for (const [i, node] of this.nodes.entries()) await node.reset(ports.slice(i * 3, i * 3 + 3) as [number, number, number]);
    }
    // Each joining node logs which node it clustered with; one that gave up would have started standalone.
    for (const node of this.nodes.slice(1)) {
      if (!node.clustered) throw new Error(`${node.name} did not join ${this.nodes[0]?.name}\n${this.diagnose()}`);
    }
  }

  diagnose(lines = 30): string {
    return this.nodes
      .map((node) => {
        const state = node.running ? `running (pid ${node.pid})` : node.lastExit === undefined ? 'never started' : describeExit(node.lastExit);
        const tail = node.log.trimEnd().split('\n').slice(-lines).join('\n');
        return `--- ${node.name} (stream port ${node.streamPort}): ${state}; last ${lines} log lines:\n${tail}`;
      })
      .join('\n');
  }

  async ctl(index: number, args: string[], timeoutMs = 30_000): Promise<string> {
    const node = this.nodes[index];
    if (node === undefined) throw new RangeError(`no node ${index} in a ${this.nodes.length}-node cluster`);
    // The CLI's own distribution port: a free one, so parallel CLI runs (and other clusters) do not collide.
    const [cliPort] = (await freePorts(1)) as [number];
    const env = { ...this.env, RABBITMQ_CTL_DIST_PORT_MIN: String(cliPort), RABBITMQ_CTL_DIST_PORT_MAX: String(cliPort) };
    return run(CTL, ['-n', node.name, '-q', ...args], env, timeoutMs);
  }

  async runningNodes(index = 0): Promise<string[]> {
    // The output is an Erlang list of atoms: [a@localhost,'b@localhost'].
    const out = await this.ctl(index, ['eval', 'rabbit_nodes:all_running().']);
    return [...out.matchAll(/'?([\w.-]+@[\w.-]+)'?/g)].map((match) => match[1] as string).sort();
  }

  pids(): number[] {
    const roots = [...this.nodes.map((node) => node.pid), this.epmd.pid].filter((pid): pid is number => pid !== undefined);
    return withDescendants(roots).map((process) => process.pid);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all(this.nodes.map((node) => node.kill('SIGKILL')));
    await exitOf(this.epmd, 'SIGKILL');
    await rm(this.dir, { recursive: true, force: true });
    leftovers.deleteDir(this.dir);
  }

  private async waitForEpmd(port: number): Promise<void> {
    await waitForPort(port, 'epmd', Date.now() + 10_000, () => {
      if (this.epmd.exitCode !== null) throw new Error(`epmd exited with ${this.epmd.exitCode} (port ${port} taken?)`);
    });
  }
}

class NodeProcess implements RabbitNode {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private tail = '';
  /** The signal {@link kill} sent to the current process, if any. */
  private sentSignal: NodeJS.Signals | undefined;
  lastExit: NodeExit | undefined;
  /** Whether the node logged, since its last start, that its stream listener is open. */
  private listening = false;
  /** Whether the node logged, since its last start, that it joined its seed (the line may be gone from the tail by then). */
  clustered = false;

  constructor(
    readonly name: string,
    private readonly dir: string,
    public amqpPort: number,
    public streamPort: number,
    private distPort: number,
    private readonly username: string,
    private readonly password: string,
    private readonly env: Record<string, string>,
    /** The node this one joins on its first boot (undefined for the first node). */
    private readonly seed: string | undefined,
  ) {}

  get streamUrl(): string {
    return `rabbitmq-stream://${this.username}:${this.password}@127.0.0.1:${this.streamPort}`;
  }

  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  get log(): string {
    return this.tail;
  }

  async writeFiles(): Promise<void> {
    await mkdir(join(this.dir, 'log'), { recursive: true });
    await writeFile(
      join(this.dir, 'rabbitmq.conf'),
      [
        `listeners.tcp.1 = 127.0.0.1:${this.amqpPort}`,
        `stream.listeners.tcp.1 = 127.0.0.1:${this.streamPort}`,
        // What the stream protocol's metadata tells clients to connect to for this node's leaders and replicas.
        'stream.advertised_host = 127.0.0.1',
        `stream.advertised_port = ${this.streamPort}`,
        `default_user = ${this.username}`,
        `default_pass = ${this.password}`,
        'loopback_users = none',
        'log.console = true',
        'log.console.level = info',
        'log.file = false',
        ...(this.seed === undefined
          ? []
          : [
              // Join the first node while booting: a blank node retries until the seed's database is up
              // (every 500 ms, bounded by the cluster's start timeout), so all nodes can start at once.
              'cluster_formation.peer_discovery_backend = classic_config',
              `cluster_formation.classic_config.nodes.1 = ${this.seed}`,
              'cluster_formation.discovery_retry_limit = 1000',
              'cluster_formation.discovery_retry_interval = 500',
            ]),
        '',
      ].join('\n'),
    );
    await writeFile(join(this.dir, 'enabled_plugins'), '[rabbitmq_stream].\n');
  }

  /**
   * Starts the node and resolves once it logged startup complete. A start that fails for a
   * reason another attempt may not meet ({@link TRANSIENT_START_FAILURES}: a port taken meanwhile,
   * the cluster's tables not reachable yet) is tried again, {@link START_ATTEMPTS} times in all,
   * within the same `timeoutMs`.
   */
  async start(timeoutMs = DEFAULT_START_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.startOnce(deadline - Date.now());
      } catch (error) {
        if (!(error instanceof NodeStartError) || !error.transient || attempt >= START_ATTEMPTS || Date.now() >= deadline) throw error;
        console.warn(`rabbitmq harness: ${this.name} start ${attempt}/${START_ATTEMPTS} failed (${error.reason}); starting it again`);
      }
    }
  }

  /** Picks new ports and forgets the node's data: only for a node that never started (a first boot that failed). */
  async reset(ports: readonly [number, number, number]): Promise<void> {
    if (this.running) throw new Error(`${this.name} is running`);
    [this.amqpPort, this.streamPort, this.distPort] = ports;
    await rm(join(this.dir, 'mnesia'), { recursive: true, force: true });
    await this.writeFiles();
  }

  /** One start: resolves on startup complete, rejects with a {@link NodeStartError} when the node exits first or after `timeoutMs`. */
  startOnce(timeoutMs: number): Promise<void> {
    if (this.running) return Promise.reject(new Error(`${this.name} is already running`));
    const child = spawn(SERVER, [], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group: a Ctrl-C meant for the test runner does not reach it
      env: {
        ...process.env,
        ...this.env,
        RABBITMQ_NODENAME: this.name,
        RABBITMQ_MNESIA_BASE: join(this.dir, 'mnesia'),
        RABBITMQ_LOG_BASE: join(this.dir, 'log'),
        RABBITMQ_LOGS: '-',
        RABBITMQ_CONFIG_FILE: join(this.dir, 'rabbitmq.conf'),
        RABBITMQ_ENABLED_PLUGINS_FILE: join(this.dir, 'enabled_plugins'),
        RABBITMQ_DIST_PORT: String(this.distPort),
        // Exec the VM in place of the script (so child.pid is beam.smp), with no Erlang shell.
        RABBITMQ_ALLOW_INPUT: 'true',
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-noinput -start_epmd false -kernel inet_dist_use_interface {127,0,0,1}',
      },
    });
    this.child = child;
    this.tail = '';
    this.clustered = false;
    this.listening = false;
    this.sentSignal = undefined;
    let startedAt: number | undefined;
    leftovers.addChild(child);
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.once('exit', (code, signal) => {
      const exit: NodeExit = {
        code,
        signal,
        sentByHarness: this.sentSignal,
        afterStartupMs: startedAt === undefined ? undefined : Date.now() - startedAt,
        at: new Date().toISOString(),
      };
      this.lastExit = exit;
      this.tail = `${this.tail}\n[rabbitmq harness] ${this.name} (pid ${child.pid}) ${describeExit(exit)}\n`.slice(-20_000);
    });
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        // Not left running half-started: the next attempt (or the caller's cleanup) starts from a dead node.
        void this.kill('SIGKILL');
        reject(new NodeStartError(this.name, `did not start within ${timeoutMs} ms`, false, this.tail));
      }, Math.max(timeoutMs, 1));
      const logDir = process.env.RELAYMQ_RABBITMQ_LOG_DIR;
      const logFile = logDir === undefined || logDir === '' ? undefined : join(logDir, `${this.name}.log`);
      const onData = (chunk: Buffer): void => {
        if (logFile !== undefined) appendFileSync(logFile, chunk);
        this.tail = (this.tail + chunk.toString()).slice(-20_000);
        if (this.tail.includes(JOINED)) this.clustered = true;
        if (this.tail.includes(LISTENING(this.streamPort))) this.listening = true;
        if (startedAt !== undefined || !this.tail.includes(STARTED)) return;
        startedAt = Date.now();
        clearTimeout(timer);
        if (this.listening) {
          resolve();
          return;
        }
        // The stream plugin opens no listener while the stream_queue feature flag is off (a node that
        // joined a half-initialised cluster): a node no client can reach is a failed start.
        void this.kill('SIGKILL');
        reject(new NodeStartError(this.name, 'logged startup complete without its stream listener', true, this.tail));
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (startedAt !== undefined) return;
        const transient = TRANSIENT_START_FAILURES.find((pattern) => pattern.test(this.tail));
        reject(new NodeStartError(this.name, `exited (${signal ?? code}) before startup complete`, transient !== undefined, this.tail, transient?.source));
      });
    });
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.child === undefined || !this.running) return;
    const helpers = withDescendants([this.child.pid as number]).slice(1);
    this.sentSignal = signal;
    this.child.kill(signal);
    await this.exited;
    // erl_child_setup and inet_gethost exit when the VM's pipes close; this makes it immediate.
    for (const helper of helpers) {
      try {
        if (procStat(helper.pid)?.comm === helper.comm) process.kill(helper.pid, 'SIGKILL');
      } catch {
        // it exited meanwhile
      }
    }
  }

  stop(): Promise<void> {
    return this.kill('SIGTERM');
  }
}

/** A node start that failed; `transient` when the log shows a reason another attempt may not meet. */
class NodeStartError extends Error {
  constructor(
    readonly node: string,
    readonly reason: string,
    readonly transient: boolean,
    log: string,
    matched?: string,
  ) {
    super(`${node} ${reason}${matched === undefined ? '' : ` (transient: /${matched}/)`}:\n${log.slice(-4000)}`);
    this.name = 'NodeStartError';
  }
}

/** `exited with code 1`, `killed by SIGKILL (not sent by the harness)`, plus when, for failure messages. */
function describeExit(exit: NodeExit): string {
  const how = exit.signal !== null ? `killed by ${exit.signal} (${exit.sentByHarness === exit.signal ? 'sent by the harness' : `not sent by the harness${exit.sentByHarness === undefined ? '' : `, which sent ${exit.sentByHarness}`}`})` : `exited with code ${exit.code}`;
  const when = exit.afterStartupMs === undefined ? 'before startup complete' : `${exit.afterStartupMs} ms after startup complete`;
  return `${how} at ${exit.at}, ${when}`;
}

/** Runs `command` and resolves with its stdout; rejects with its output on a non-zero exit or after `timeoutMs`. */
function run(command: string, args: string[], env: Record<string, string>, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env }, detached: true });
    leftovers.addChild(child);
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const timer = setTimeout(() => killGroup(child, 'SIGKILL'), Math.max(timeoutMs, 1));
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${command} ${args.join(' ')} failed (${signal ?? code}${signal === 'SIGKILL' ? `, timeout ${timeoutMs} ms` : ''}):\n${out}`));
    });
  });
}

/** Polls until 127.0.0.1:`port` accepts a connection; `check` may throw to give up early. */
async function waitForPort(port: number, what: string, deadline: number, check: () => void = () => {}): Promise<void> {
  while (!(await connects(port))) {
    check();
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} on 127.0.0.1:${port}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Sends `signal` to the child's process group (it was spawned detached, so the group is its pid); no-op once gone. */
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // the group is gone already
  }
}

/** SIGKILLs `child`'s group and resolves once `child` exited. */
function exitOf(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  killGroup(child, signal);
  return exited;
}

/** Whether `pid` is a live process (a zombie, exited but not reaped, counts as dead). */
export function processAlive(pid: number): boolean {
  const stat = procStat(pid);
  return stat !== undefined && stat.state !== 'Z';
}

/** `roots` and their live descendants, from /proc (the VM's helpers start their own sessions, so a process group does not hold them). */
function withDescendants(roots: number[]): Array<{ pid: number; comm: string }> {
  const children = new Map<number, Array<{ pid: number; comm: string }>>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = procStat(Number(entry));
    if (stat === undefined || stat.state === 'Z') continue;
    const siblings = children.get(stat.ppid) ?? [];
    siblings.push({ pid: Number(entry), comm: stat.comm });
    children.set(stat.ppid, siblings);
  }
  const found = roots.filter(processAlive).map((pid) => ({ pid, comm: procStat(pid)?.comm ?? '' }));
  for (let i = 0; i < found.length; i++) found.push(...(children.get((found[i] as { pid: number }).pid) ?? []));
  return found;
}

function procStat(pid: number): { comm: string; state: string; ppid: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // pid (comm) state ppid ...: the command name may hold spaces and parentheses.
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { comm, state: fields[0] as string, ppid: Number(fields[1]) };
  } catch {
    return undefined;
  }
}

function epmdPath(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir !== '' && existsSync(join(dir, 'epmd'))) return join(dir, 'epmd');
  }
  try {
    const erts = readdirSync('/usr/lib/erlang').find((entry) => entry.startsWith('erts-'));
    if (erts !== undefined && existsSync(join('/usr/lib/erlang', erts, 'bin', 'epmd'))) return join('/usr/lib/erlang', erts, 'bin', 'epmd');
  } catch {
    // no Erlang in /usr/lib
  }
  return undefined;
}

function streamPluginInstalled(): boolean {
  const libs = join(SCRIPTS_DIR, '..', 'lib');
  const roots = [join(SCRIPTS_DIR, '..', 'plugins')];
  try {
    for (const entry of readdirSync(libs)) roots.push(join(libs, entry, 'plugins'));
  } catch {
    // a generic-unix layout has plugins/ beside sbin/
  }
  return roots.some((root) => {
    try {
      return readdirSync(root).some((entry) => entry.startsWith('rabbitmq_stream-'));
    } catch {
      return false;
    }
  });
}
