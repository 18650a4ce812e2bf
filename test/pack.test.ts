import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The packages as a user gets them: `npm pack` both workspaces, install the
 * tarballs into an application outside the repository, and run the
 * installed `relaymq` binary and SDK there. Needs the built `dist/` (npm test
 * builds first) and the dependencies in the npm cache (`npm ci` put them there).
 */

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const VERSION = (JSON.parse(await readFile(join(ROOT, 'packages/broker/package.json'), 'utf8')) as { version: string }).version;

/** npm's own settings from the `npm test` that runs us (workspace, package) must not leak into the nested npm runs. */
function npmEnv(): NodeJS.ProcessEnv {
  const keep = new Set(['npm_config_cache', 'npm_config_registry', 'npm_config_userconfig']);
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.toLowerCase().startsWith('npm_') || keep.has(name.toLowerCase())));
  return { ...env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };
}

async function npm(args: string[], cwd: string, timeoutMs: number): Promise<string> {
  const { stdout } = await run('npm', args, { cwd, env: npmEnv(), timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

interface PackResult {
  name: string;
  filename: string;
  size: number;
  files: Array<{ path: string }>;
}

let dir = '';
let app = '';
let packed: PackResult[] = [];
let installMode = '';

beforeAll(async () => {
  for (const pkg of ['sdk', 'broker']) {
    if (!existsSync(join(ROOT, 'packages', pkg, 'dist'))) throw new Error(`packages/${pkg}/dist is missing: run npm run build first (npm test does)`);
  }
  dir = await mkdtemp(join(tmpdir(), 'relaymq-pack-'));
  packed = JSON.parse(await npm(['pack', '--json', '--pack-destination', dir, '-w', '@relaymq/sdk', '-w', '@relaymq/broker'], ROOT, 60_000)) as PackResult[];
  app = join(dir, 'app');
  await mkdir(app);
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'relaymq-pack-app', private: true, type: 'module' }, null, 2));
  const tarballs = packed.map((p) => join(dir, p.filename));
  try {
    await npm(['install', '--offline', '--no-audit', '--no-fund', ...tarballs], app, 120_000);
    installMode = 'offline';
  } catch {
    // A dependency missing from the cache (a platform-specific optional one): let npm fetch just that.
    await npm(['install', '--prefer-offline', '--no-audit', '--no-fund', ...tarballs], app, 120_000);
    installMode = 'prefer-offline';
  }
}, 240_000);

afterAll(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

describe('npm pack', () => {
  it('ships README, LICENSE, CHANGELOG, package.json and dist, and no sources or tests', () => {
    expect(packed.map((p) => p.name).sort()).toEqual(['@relaymq/broker', '@relaymq/sdk']);
    for (const p of packed) {
      const files = p.files.map((f) => f.path);
      expect(files, p.name).toEqual(expect.arrayContaining(['README.md', 'LICENSE', 'CHANGELOG.md', 'package.json']));
      expect(files.every((f) => ['README.md', 'LICENSE', 'CHANGELOG.md', 'package.json', 'bin/relaymq.js'].includes(f) || f.startsWith('dist/')), `${p.name}: ${files.join(' ')}`).toBe(true);
      expect(files.some((f) => f.endsWith('.test.js') || f.startsWith('src/')), p.name).toBe(false);
    }
    const broker = packed.find((p) => p.name === '@relaymq/broker') as PackResult;
    expect(broker.files.map((f) => f.path)).toEqual(expect.arrayContaining(['bin/relaymq.js', 'dist/cli.js', 'dist/index.js', 'dist/index.d.ts']));
    const sdk = packed.find((p) => p.name === '@relaymq/sdk') as PackResult;
    expect(sdk.files.map((f) => f.path)).toEqual(expect.arrayContaining(['dist/node.js', 'dist/node.d.ts', 'dist/browser.js', 'dist/index.d.ts', 'dist/protocol/index.d.ts']));
  });

  it('declares repository, homepage, keywords, license and top-level types', async () => {
    expect(['offline', 'prefer-offline']).toContain(installMode);
    for (const name of ['sdk', 'broker']) {
      const manifest = JSON.parse(await readFile(join(app, 'node_modules', '@relaymq', name, 'package.json'), 'utf8')) as Record<string, unknown>;
      expect(manifest, name).toMatchObject({ license: 'MIT', repository: { type: 'git', directory: `packages/${name}` } });
      expect(manifest.homepage, name).toMatch(/^https:\/\//);
      expect((manifest.keywords as string[]).length, name).toBeGreaterThan(3);
      expect(existsSync(join(app, 'node_modules', '@relaymq', name, manifest.types as string)), `${name} types`).toBe(true);
      expect(existsSync(join(app, 'node_modules', '@relaymq', name, manifest.main as string)), `${name} main`).toBe(true);
    }
  });
});

describe('the installed packages', () => {
  it('npx relaymq --version prints the package version', async () => {
    // Offline: were the local bin missing, npx must fail rather than fetch an unrelated "relaymq" from the registry.
    const { stdout } = await run('npx', ['relaymq', '--version'], { cwd: app, env: { ...npmEnv(), npm_config_offline: 'true' }, timeout: 30_000 });
    expect(stdout.trim()).toBe(VERSION);
  }, 60_000);

  it('a broker started by the installed CLI carries a message from the installed SDK', async () => {
    await writeFile(
      join(app, 'roundtrip.mjs'),
      `import { connect, RelayError as ApplicationError } from '@relaymq/sdk';
import { RelayError } from '@relaymq/sdk/protocol';
import { createClient } from '@relaymq/sdk/core';
import { startBroker } from '@relaymq/broker';
if (typeof RelayError !== 'function' || typeof createClient !== 'function' || typeof startBroker !== 'function') throw new Error('missing exports');
// Why the protocol is an export and not bundled into the broker: one RelayError class for both packages.
if (RelayError !== ApplicationError) throw new Error('@relaymq/sdk and @relaymq/sdk/protocol export two RelayError classes');
let refused;
try {
  await startBroker({ port: 0, nonsense: true });
} catch (err) {
  refused = err;
}
if (!(refused instanceof ApplicationError) || refused.code !== 'INVALID_ARGUMENT') throw new Error('the broker threw another error class than the SDK RelayError: ' + refused);
const client = await connect({ brokers: [process.argv[2]] });
const receipt = await client.publish('pack.check', { hello: 'from a tarball' });
let sub;
const received = new Promise((resolve) => {
  sub = client.subscribe('pack.check', (msg) => resolve(msg.data), { from: 'earliest' });
});
await sub;
console.log(JSON.stringify({ receipt, data: await received }));
await client.close();
`,
    );
    const broker = spawn(join(app, 'node_modules', '.bin', 'relaymq'), ['broker', '--id', 'p1', '--port', '0', '--log-level', 'warn'], {
      cwd: app,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const url = await listeningUrl(broker, 15_000);
      const { stdout } = await run(process.execPath, ['roundtrip.mjs', url], { cwd: app, timeout: 20_000 });
      expect(JSON.parse(stdout)).toEqual({ receipt: { topic: 'pack.check', partition: 0, offset: 0, duplicate: false }, data: { hello: 'from a tarball' } });
    } finally {
      await stop(broker, 10_000);
    }
  }, 60_000);

  it('types resolve under node10, node16 and bundler resolution', async () => {
    await writeFile(
      join(app, 'check.ts'),
      `import { connect, type RelayClient } from '@relaymq/sdk';
import { RelayError } from '@relaymq/sdk/protocol';
import { startBroker, type BrokerOptions } from '@relaymq/broker';
const options: BrokerOptions = { port: 0 };
export async function check(): Promise<RelayClient> {
  const broker = await startBroker(options);
  if (!(new RelayError('TIMEOUT', 'x') instanceof Error)) throw new Error('unreachable');
  return connect({ brokers: [broker.url] });
}
`,
    );
    const settings: Array<[string, string]> = [
      ['node10', 'commonjs'],
      ['node16', 'node16'],
      ['bundler', 'esnext'],
    ];
    const results = await Promise.all(
      settings.map(async ([resolution, module]) => {
        const args = [TSC, '--noEmit', '--strict', '--skipLibCheck', '--target', 'es2022', '--module', module, '--moduleResolution', resolution, 'check.ts'];
        const { stdout } = await run(process.execPath, args, { cwd: app, timeout: 100_000 }).catch((err: { stdout: string }) => ({ stdout: err.stdout }));
        return [resolution, stdout] as const;
      }),
    );
    expect(results).toEqual(settings.map(([resolution]) => [resolution, '']));
  }, 120_000);
});

/** Resolves with the URL of the broker's listening line; rejects if it exits or stays silent for `timeoutMs`. */
function listeningUrl(child: ChildProcess, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`no listening line after ${timeoutMs} ms; stderr: ${err}`)), timeoutMs);
    child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /listening on (\S+)/.exec(out);
      if (match !== null) {
        clearTimeout(timer);
        resolve(match[1] as string);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the broker exited with ${code}: ${err}`));
    });
  });
}

/** SIGTERM, then SIGKILL if the process is still there after `timeoutMs`. */
async function stop(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
}
