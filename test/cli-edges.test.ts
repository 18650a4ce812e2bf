import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CONFIG_FIELDS, effectiveConfig, flagName } from '../packages/broker/src/config.js';
import { resolveBrokerOptions } from '../packages/broker/src/options.js';
import { CLI, runCli, type CliRun } from './support/broker-process.js';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';

/** The `relaymq` command's edges: version, help of every command, and startup failures that exit 2 with one line. */

const run = promisify(execFile);

/** Runs the built CLI; resolves with exit code and output (never rejects on a non-zero exit). */
const relaymq = (args: string[], env: Record<string, string> = {}): Promise<CliRun> => runCli(args, env, 15_000);

/** A port held by this test process, so the broker finds it in use. */
async function occupiedPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return { port: (server.address() as { port: number }).port, server };
}

let dir = '';
const held: Server[] = [];
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'relaymq-cli-edges-'));
});
afterAll(async () => {
  for (const server of held) server.close();
  await rm(dir, { recursive: true, force: true });
});

describe('relaymq --version and --help', () => {
  it('--version prints the version of @relaymq/broker', async () => {
    const { version } = JSON.parse(await readFile(new URL('../packages/broker/package.json', import.meta.url), 'utf8')) as { version: string };
    const { code, stdout, stderr } = await relaymq(['--version']);
    expect({ code, stdout, stderr }).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
  });

  it('npx relaymq works from the repository root (the committed launcher npm ci links), and says to build when dist/ is missing', { timeout: 60_000 }, async () => {
    const { version } = JSON.parse(await readFile(new URL('../packages/broker/package.json', import.meta.url), 'utf8')) as { version: string };
    const root = fileURLToPath(new URL('..', import.meta.url));
    const npx = await run('npx', ['--no-install', 'relaymq', '--version'], { cwd: root, timeout: 30_000 });
    expect(npx.stdout).toBe(`${version}\n`);
    // A fresh clone: the launcher is there (npm links it at npm ci) but the build is not.
    const clone = join(dir, 'fresh-clone');
    await mkdir(join(clone, 'bin'), { recursive: true });
    await copyFile(new URL('../packages/broker/bin/relaymq.js', import.meta.url), join(clone, 'bin', 'relaymq.js'));
    const fresh = await run(process.execPath, [join(clone, 'bin', 'relaymq.js'), '--version']).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }),
    );
    expect(fresh).toEqual({ code: 2, stderr: 'relaymq: the broker is not built (packages/broker/dist/cli.js is missing): run `npm run build` in the repository first\n' });
  });

  it('every command takes --help and -h', async () => {
    for (const command of ['broker', 'status', 'dev']) {
      for (const flag of ['--help', '-h']) {
        const { code, stdout, stderr } = await relaymq([command, flag]);
        expect(stderr, `${command} ${flag}`).toBe('');
        expect(code, `${command} ${flag}`).toBe(0);
        expect(stdout, `${command} ${flag}`).toMatch(new RegExp(`^usage: relaymq ${command}`));
      }
    }
    const top = await relaymq(['--help']);
    expect(top.code).toBe(0);
    for (const command of ['broker', 'status', 'dev', '--version']) expect(top.stdout).toContain(command);
  }, 90_000); // seven CLI starts, slow on a loaded machine

  it('broker --help lists every option the parser accepts, with the default the broker resolves', async () => {
    const { stdout } = await relaymq(['broker', '--help']);
    const lines = stdout.split('\n');
    const defaults = effectiveConfig(resolveBrokerOptions({ logLevel: 'info' }));
    const valueAt = (path: string): unknown => path.split('.').reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], defaults);
    for (const field of CONFIG_FIELDS) {
      const flag = `--${flagName(field.path)}`;
      const at = lines.findIndex((l) => l.startsWith(`  ${flag}${field.aliases === undefined ? ' ' : ','}`));
      expect(at, `${flag} is listed`).toBeGreaterThan(-1);
      for (const alias of field.aliases ?? []) expect(lines[at], `${flag} names its alias`).toContain(`--${alias}`);
      // A long flag puts its help on the next line.
      const text = /^\s{2}\S.*\s{2,}\S/.test(lines[at] as string) ? (lines[at] as string) : `${lines[at]} ${lines[at + 1]}`;
      expect(text, `${flag} states its default`).toMatch(/\(default .+\)$/);
      const value = valueAt(field.path);
      if (field.defaultText === undefined && (typeof value === 'number' || typeof value === 'string') && value !== '') {
        expect(text, `${flag} default`).toContain(`(default ${value}`);
      }
    }
    expect(lines.filter((l) => /^ {2}-/.test(l)).length).toBe(CONFIG_FIELDS.length + 3); // + --config, --print-config, --help
  });

  it('dev --help states every option with its default', async () => {
    const { stdout } = await relaymq(['dev', '--help']);
    for (const [flag, fallback] of [
      ['--count <n>', '3'],
      ['--port <n>', '7401'],
      ['--peer-port <n>', '7501'],
      ['--admin-port <n>', '9401'],
      ['--log-level <level>', 'info'],
      ['--data <dir>', 'a temporary directory, deleted on exit'],
    ] as const) {
      expect(stdout).toMatch(new RegExp(`^  ${flag}\\s.*\\(default ${fallback}\\)$`, 'm'));
    }
  });
});

describe('relaymq status and the admin token', () => {
  const fixture = new Fixture();
  afterEach(() => fixture.cleanup());
  const TOKEN = 'status-admin-token-0123456789abc';

  it('sends --admin-token or $RELAYMQ_ADMIN_TOKEN, which a broker with protected reads requires', { timeout: 60_000 }, async () => {
    const broker = await fixture.broker({ id: 'st1', adminPort: 0, adminToken: TOKEN, adminProtectReads: true });
    const admin = broker.adminUrl as string;

    // No token: the broker's refusal, on one line naming the URL, exit 1.
    const refused = await relaymq(['status', '--broker', admin]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toMatch(new RegExp(`^relaymq: cannot read cluster status from ${admin}/api/cluster: this admin endpoint needs the admin token: .*\\(UNAUTHORIZED\\)\n$`));
    const wrong = await relaymq(['status', '--broker', admin, '--admin-token', 'not-the-admin-token-at-all']);
    expect(wrong).toEqual({ code: 1, stdout: '', stderr: `relaymq: cannot read cluster status from ${admin}/api/cluster: the admin token is not valid (UNAUTHORIZED)\n` });

    // The flag, then the environment: the whole report, exit 0 (one healthy broker).
    const flagged = await relaymq(['status', '--broker', admin, '--admin-token', TOKEN]);
    expect(flagged.stderr).toBe('');
    expect(flagged.code).toBe(0);
    expect(flagged.stdout).toMatch(/^cluster as seen by st1: HEALTHY\n/);
    const fromEnv = await relaymq(['status', '--json'], { RELAYMQ_ADMIN_URL: admin, RELAYMQ_ADMIN_TOKEN: TOKEN });
    expect(fromEnv.code).toBe(0);
    expect((JSON.parse(fromEnv.stdout) as { broker: string; healthy: boolean })).toMatchObject({ broker: 'st1', healthy: true });
    // The flag wins over the environment.
    expect((await relaymq(['status', '--broker', admin, '--admin-token', 'not-the-admin-token-at-all'], { RELAYMQ_ADMIN_TOKEN: TOKEN })).code).toBe(1);

    const help = await relaymq(['status', '--help']);
    expect(help.stdout).toMatch(/^ {2}--admin-token <token> .*\(default \$RELAYMQ_ADMIN_TOKEN\)$/m);
  });
});

describe('relaymq broker startup failures exit 2 with one line', () => {
  it('names the port that is already in use: client, peer or admin', { timeout: 60_000 }, async () => {
    const taken = await occupiedPort();
    held.push(taken.server);
    const p = taken.port;
    const cases: Array<[string[], string]> = [
      [['--port', String(p)], `relaymq: client port 127.0.0.1:${p} is already in use (EADDRINUSE)`],
      [['--port', '0', '--peer-port', String(p), '--peers', 'x2@127.0.0.1:1'], `relaymq: peer port 127.0.0.1:${p} is already in use (EADDRINUSE)`],
      [['--port', '0', '--admin-port', String(p)], `relaymq: admin port 127.0.0.1:${p} is already in use (EADDRINUSE)`],
    ];
    for (const [args, message] of cases) {
      const { code, stdout, stderr } = await relaymq(['broker', '--log-level', 'silent', ...args]);
      expect(stderr, args.join(' ')).toBe(`${message}\n`);
      expect(stdout, args.join(' ')).toBe('');
      expect(code, args.join(' ')).toBe(2);
    }
  });

  it('prints only that line at the default log level too (no log line claims it listened or closed)', { timeout: 60_000 }, async () => {
    const taken = await occupiedPort();
    held.push(taken.server);
    const p = taken.port;
    // With a data directory, so a cluster broker has no in-memory warning to give before it fails.
    const cases: Array<[string[], string]> = [
      [['--port', String(p)], `relaymq: client port 127.0.0.1:${p} is already in use (EADDRINUSE)`],
      [['--port', '0', '--peer-port', String(p), '--peers', 'x2@127.0.0.1:1', '--data-dir', join(dir, 'peer-case')], `relaymq: peer port 127.0.0.1:${p} is already in use (EADDRINUSE)`],
      [['--port', '0', '--admin-port', String(p)], `relaymq: admin port 127.0.0.1:${p} is already in use (EADDRINUSE)`],
      [['--port', '0', '--tls-cert', join(dir, 'missing.pem'), '--tls-key', join(dir, 'missing.pem')], `relaymq: broker option tls.cert: cannot read ${join(dir, 'missing.pem')}`],
    ];
    for (const [args, message] of cases) {
      const { code, stdout, stderr } = await relaymq(['broker', ...args]);
      expect(stderr.trimEnd().split('\n'), args.join(' ')).toHaveLength(1);
      expect(stderr.startsWith(message), `${args.join(' ')}: ${stderr}`).toBe(true);
      expect(stdout, args.join(' ')).toBe('');
      expect(code, args.join(' ')).toBe(2);
    }
  });

  it('names the file it cannot read: config, TLS material, JWKS, data directory', { timeout: 60_000 }, async () => {
    const aFile = join(dir, 'plain-file');
    await writeFile(aFile, 'not a directory');
    await mkdir(join(dir, 'a-directory'));
    const cases: Array<[string[], RegExp]> = [
      [['--config', join(dir, 'a-directory')], /^relaymq: config file .*a-directory: cannot be read \(EISDIR\)$/],
      [['--tls-cert', join(dir, 'missing.pem'), '--tls-key', join(dir, 'missing.pem')], /^relaymq: broker option tls\.cert: cannot read .*missing\.pem: ENOENT/],
      [['--auth', JSON.stringify({ jwt: { jwksFile: join(dir, 'missing.json') } })], /^relaymq: broker option auth\.jwt\.jwksFile: cannot read a JSON JWKS from .*missing\.json/],
      [['--data-dir', join(aFile, 'data')], /^relaymq: .*(ENOTDIR|not a directory).*plain-file/],
    ];
    for (const [args, message] of cases) {
      const { code, stdout, stderr } = await relaymq(['broker', '--port', '0', '--log-level', 'silent', ...args]);
      expect(stderr.trimEnd().split('\n'), args.join(' ')).toHaveLength(1);
      expect(stderr.trimEnd(), args.join(' ')).toMatch(message);
      expect(stdout, args.join(' ')).toBe('');
      expect(code, args.join(' ')).toBe(2);
    }
  });
});

describe('relaymq dev', () => {
  /** Starts `relaymq dev` with one broker on free ports, waits for it, stops it with SIGINT; resolves with its output. */
  async function devRun(extra: string[], ready = /\[b1\] relaymq broker b1 listening on/, base = ['--count', '1', '--port', '0', '--peer-port', '0', '--admin-port', '0']): Promise<{ code: number | null; stdout: string }> {
    const child = spawn(process.execPath, [CLI, 'dev', ...base, '--log-level', 'warn', ...extra], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`relaymq dev did not start within 15 s: ${stdout}`)), 15_000);
        const check = (): void => {
          if (ready.test(stdout)) {
            clearTimeout(timer);
            resolve();
          } else if (stdout.includes('EADDRINUSE')) {
            clearTimeout(timer);
            reject(new Error(`relaymq dev could not bind a port: ${stdout}`));
          }
        };
        child.stdout.on('data', check);
        void exited.then(() => {
          clearTimeout(timer);
          reject(new Error(`relaymq dev exited early: ${stdout}`));
        });
      });
    } finally {
      child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    return { code: await exited, stdout };
  }

  it('gives each broker free ports for 0 and says where they listen once all do; refuses peer port 0 for several', { timeout: 60_000 }, async () => {
    // b2 takes the peer port after b1's, which another test's process may hold by then (CI saw b2 exit 2 with
    // EADDRINUSE): then the cluster starts again on new ports, three times at most.
    const start = async (attempt: number): Promise<{ code: number | null; stdout: string }> => {
      const [peerPort] = await freePorts(1);
      try {
        return await devRun([], /relaymq dev: ready: .*\n/, ['--count', '2', '--port', '0', '--peer-port', String(peerPort), '--admin-port', '0']);
      } catch (err) {
        if (attempt < 3 && String(err).includes('EADDRINUSE')) return start(attempt + 1);
        throw err;
      }
    };
    const { code, stdout } = await start(1);
    expect(code).toBe(0);
    expect(stdout).toContain('relaymq dev: starting 2 brokers (b1, b2) on 127.0.0.1; Ctrl-C stops them\n');
    const ready = /relaymq dev: ready: b1 ws:\/\/127\.0\.0\.1:(\d+) \(dashboard http:\/\/127\.0\.0\.1:(\d+)\/\), b2 ws:\/\/127\.0\.0\.1:(\d+) \(dashboard http:\/\/127\.0\.0\.1:(\d+)\/\)\n/.exec(stdout);
    expect(ready, stdout).not.toBeNull();
    const ports = (ready as RegExpExecArray).slice(1).map(Number);
    for (const port of ports) expect(port, stdout).toBeGreaterThan(1024);
    expect(new Set(ports).size).toBe(4);
    expect(stdout).not.toMatch(/:0\b/);

    // Several brokers cannot find each other on free peer ports: a usage error, before any directory is made.
    const refused = await relaymq(['dev', '--count', '2', '--port', '0', '--peer-port', '0']);
    expect(refused).toEqual({ code: 2, stdout: '', stderr: 'relaymq: --peer-port 0 works with --count 1 only: each broker is told the others\' peer ports before they start\n' });
  });

  it('stops every broker and exits 1 when one exits before the cluster is ready', { timeout: 60_000 }, async () => {
    // b2's peer port (the one after b1's) is held here, so b2 exits with EADDRINUSE while b1 starts.
    const { port, server } = await occupiedPort();
    try {
      const child = spawn(process.execPath, [CLI, 'dev', '--count', '2', '--port', '0', '--peer-port', String(port - 1), '--admin-port', '0', '--log-level', 'warn'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
      clearTimeout(killer);
      expect(code, stdout).toBe(1);
      // Usually b2; b1 when another process took the port below ours meanwhile. Either way nothing keeps running.
      expect(stdout).toMatch(/relaymq dev: b[12] exited \(2\) before the cluster was ready; stopping the others\n/);
      expect(stdout).not.toContain('relaymq dev: ready:');
      expect(stdout).toMatch(/\[b1\] exited \(/);
      expect(stdout).toMatch(/\[b2\] exited \(/);
      const data = /data in (\S+) \(temporary/.exec(stdout)?.[1];
      expect(data, stdout).toBeDefined();
      expect(existsSync(data as string)).toBe(false);
    } finally {
      server.close();
    }
  });

  it('removes its temporary data directory on exit', { timeout: 60_000 }, async () => {
    const { code, stdout } = await devRun([]);
    expect(stdout).toContain('relaymq dev: starting 1 broker (b1) on 127.0.0.1');
    const data = /data in (\S+) \(temporary/.exec(stdout)?.[1];
    expect(data, stdout).toBeDefined();
    expect(stdout).toContain(`relaymq dev: removed ${data}`);
    expect(existsSync(data as string)).toBe(false);
    expect(code).toBe(0);
  });

  it('keeps the data directory given with --data', { timeout: 60_000 }, async () => {
    const data = join(dir, 'dev-data');
    const { code, stdout } = await devRun(['--data', data]);
    expect(stdout).toContain(`data in ${data}\n`);
    expect(stdout).not.toContain('removed');
    expect(existsSync(join(data, 'b1'))).toBe(true);
    expect(code).toBe(0);
  });

  /** Whether any process of group `pgid` is still running. */
  function groupAlive(pgid: number): boolean {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch {
      return false;
    }
  }

  it('npm run dev prints no build log, and a SIGTERM to npm alone stops the brokers and removes the temporary data', { timeout: 90_000 }, async () => {
    // Its own process group, as in a terminal: the test signals npm alone, then checks nothing of the group is left.
    const npm = spawn('npm', ['run', 'dev', '--', '--count', '1', '--port', '0', '--peer-port', '0', '--admin-port', '0', '--log-level', 'warn'], {
      cwd: new URL('..', import.meta.url),
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const pgid = npm.pid as number;
    let output = '';
    npm.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    npm.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    /** Resolves once `done()` holds, checked every 100 ms; rejects after `ms`. */
    const until = (done: () => boolean, ms: number, what: string): Promise<void> =>
      new Promise((resolve, reject) => {
        const started = Date.now();
        const timer = setInterval(() => {
          if (done()) {
            clearInterval(timer);
            resolve();
          } else if (Date.now() - started > ms) {
            clearInterval(timer);
            reject(new Error(`${what} within ${ms} ms; output:\n${output}`));
          }
        }, 100);
      });
    try {
      await until(() => /\[b1\] relaymq broker b1 listening on/.test(output), 60_000, 'relaymq dev did not start');
      const data = /data in (\S+) \(temporary/.exec(output)?.[1] as string;
      expect(existsSync(data), output).toBe(true);
      npm.kill('SIGTERM');
      await until(() => !groupAlive(pgid), 30_000, 'brokers still running after npm was stopped');
      expect(existsSync(data), output).toBe(false);
      // Quiet: npm's header (and any notice of npm's own), then only relaymq dev's lines and its brokers' (no build output).
      const lines = output.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('> ') && !/^npm (warn|notice) /.test(l));
      expect(lines.filter((l) => !/^(relaymq dev: |\[b1\] )/.test(l)), output).toEqual([]);
      expect(output).not.toMatch(/tsup|Build success|DTS/);
    } finally {
      if (groupAlive(pgid)) process.kill(-pgid, 'SIGKILL');
    }
  });
});
