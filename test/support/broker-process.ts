import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

/** The built CLI: multi-process tests run the artifact users run (`npm test` builds first). */
export const CLI = fileURLToPath(new URL('../../packages/broker/dist/cli.js', import.meta.url));

const execFileAsync = promisify(execFile);

/** What a CLI run printed and how it exited. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI with only PATH and `env` set; resolves with exit code and output (never rejects on a non-zero exit). */
export async function runCli(args: string[], env: Record<string, string>, timeoutMs: number): Promise<CliRun> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: timeoutMs });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as CliRun;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/**
 * A broker running as its own OS process, for tests that kill -9 or SIGSTOP
 * real brokers. Every process started is killed by `stopAll()`.
 */
export class BrokerProcess {
  private static readonly running = new Set<BrokerProcess>();
  url = '';
  port = 0;
  /** The admin server's URL, when started with an admin port. */
  adminUrl: string | undefined;
  stderr = '';
  private exited: Promise<number | null>;

  private constructor(
    readonly id: string,
    private readonly child: ChildProcess,
  ) {
    BrokerProcess.running.add(this);
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    void this.exited.then(() => BrokerProcess.running.delete(this));
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-20_000);
    });
  }

  /**
   * Starts `relaymq broker` with `args` and resolves once it printed its listening line.
   * `env` adds environment variables; `baseArgs: false` drops the default `--id --port 0 --log-level warn`.
   */
  static async start(id: string, args: string[] = [], timeoutMs = 10_000, spawnOptions: { env?: Record<string, string>; baseArgs?: boolean } = {}): Promise<BrokerProcess> {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`);
    const base = spawnOptions.baseArgs === false ? [] : ['--id', id, '--port', '0', '--log-level', 'warn'];
    const child = spawn(process.execPath, [CLI, 'broker', ...base, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...spawnOptions.env },
    });
    const broker = new BrokerProcess(id, child);
    await new Promise<void>((resolve, reject) => {
      let stdout = '';
      const timer = setTimeout(() => reject(new Error(`broker ${id} did not start within ${timeoutMs} ms: ${broker.stderr}`)), timeoutMs);
      child.stdout?.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        const match = / listening on (ws:\/\/[^\s]+)/.exec(stdout);
        if (match === null) return;
        clearTimeout(timer);
        broker.url = match[1] as string;
        broker.adminUrl = / admin on (http:\/\/\S+)/.exec(stdout)?.[1];
        broker.port = Number(new URL(broker.url).port);
        resolve();
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`broker ${id} exited with ${code} before listening: ${broker.stderr}`));
      });
    });
    return broker;
  }

  get pid(): number {
    return this.child.pid as number;
  }

  /**
   * CPU seconds (user + system) the process used so far, from `/proc/<pid>/stat`
   * (clock ticks of 10 ms on Linux); undefined off Linux or once it exited.
   */
  cpuSeconds(): number | undefined {
    try {
      const stat = readFileSync(`/proc/${this.pid}/stat`, 'utf8');
      // The fields after the command name (in parentheses, which may hold spaces): utime and stime are the 12th and 13th.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticks = Number(fields[11]) + Number(fields[12]);
      return Number.isFinite(ticks) ? ticks / 100 : undefined;
    } catch {
      return undefined;
    }
  }

  /** Sends a signal and, for SIGKILL and SIGTERM, waits for the exit. */
  async signal(signal: 'SIGKILL' | 'SIGTERM' | 'SIGSTOP' | 'SIGCONT'): Promise<number | null | undefined> {
    this.child.kill(signal);
    if (signal === 'SIGKILL' || signal === 'SIGTERM') return this.exited;
    return undefined;
  }

  static async stopAll(): Promise<void> {
    await Promise.all(
      [...BrokerProcess.running].map(async (broker) => {
        broker.child.kill('SIGCONT');
        broker.child.kill('SIGKILL');
        await broker.exited;
      }),
    );
  }
}
