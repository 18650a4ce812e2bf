import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { get } from './support/admin.js';
import { BrokerProcess, CLI, runCli, type CliRun } from './support/broker-process.js';
import { Fixture } from './support/cluster.js';
import { waitFor } from './support/wait.js';

const fixture = new Fixture();
afterEach(async () => {
  await fixture.cleanup();
  await BrokerProcess.stopAll();
});

/** Runs the built CLI; resolves with exit code and output (never rejects on a non-zero exit). */
const relaymq = (args: string[], env: Record<string, string> = {}): Promise<CliRun> => runCli(args, env, 15_000);

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'relaymq-cli-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('relaymq broker configuration', () => {
  it('--print-config merges file < environment < flags and redacts secrets', async () => {
    const file = join(dir, 'b1.yaml');
    await writeFile(
      file,
      ['id: b1', 'port: 7001', 'peerPort: 7501', 'heartbeatMs: 3000', 'alerts:', '  webhooks: ["https://ops:hunter2@hooks.example.com/x?token=abc"]', '  graceMs: 1000', ''].join('\n'),
    );
    const { code, stdout, stderr } = await relaymq(['broker', '--config', file, '--port', '7003', '--print-config'], {
      RELAYMQ_PORT: '7002',
      RELAYMQ_PEER_PORT: '7502',
      RELAYMQ_ALERTS_GRACE_MS: '2000',
    });
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const effective = parseYaml(stdout) as Record<string, unknown>;
    expect(effective).toMatchObject({ id: 'b1', port: 7003, peerPort: 7502, heartbeatMs: 3000, maxPayload: 1048576, logLevel: 'info' });
    expect(effective.alerts).toMatchObject({ graceMs: 2000, webhooks: ['https://REDACTED@hooks.example.com/x?REDACTED'] });
    expect(stdout).not.toContain('hunter2');
    expect(stdout).toContain(`#   port: flag --port`);
    expect(stdout).toContain(`#   peerPort: environment RELAYMQ_PEER_PORT`);
    expect(stdout).toContain(`#   heartbeatMs: config file ${file}`);
  });

  it('reads JSON config files too', async () => {
    const file = join(dir, 'b2.json');
    await writeFile(file, JSON.stringify({ id: 'b2', adminPort: 9999 }));
    const { code, stdout } = await relaymq(['broker', '--config', file, '--print-config']);
    expect(code).toBe(0);
    expect(parseYaml(stdout)).toMatchObject({ id: 'b2', adminPort: 9999 });
  });

  it('exits 2 with a message naming the option and its source', async () => {
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, 'port: 7401\nmaxPayloud: 5\n');
    const cases: Array<[string[], Record<string, string>, string]> = [
      [['broker', '--print-config'], { RELAYMQ_PORT: 'http' }, 'relaymq: environment RELAYMQ_PORT: port must be a non-negative integer, got "http"'],
      [['broker', '--config', bad], {}, `relaymq: config file ${bad}: unknown option maxPayloud`],
      [['broker', '--config', join(dir, 'missing.yaml')], {}, `relaymq: config file ${join(dir, 'missing.yaml')}: cannot be read (ENOENT)`],
      [['broker', '--admin-port', '70000'], {}, 'relaymq: flag --admin-port: broker option adminPort must be an integer from 0 to 65535, got 70000'],
      [['broker', '--prot', '1'], {}, "relaymq: Unknown option '--prot'"],
    ];
    for (const [args, env, message] of cases) {
      const { code, stderr } = await relaymq(args, env);
      expect(stderr.trim(), args.join(' ')).toContain(message);
      expect(code, args.join(' ')).toBe(2);
    }
  });

  it('runs a broker from a config file with JSON logs, an admin port, and a healthy status', async () => {
    const file = join(dir, 'run.yaml');
    await writeFile(file, ['id: c1', 'port: 0', 'adminPort: 0', 'logLevel: info', ''].join('\n'));
    const broker = await BrokerProcess.start('c1', ['--config', file], 10_000, { baseArgs: false });
    expect(broker.adminUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await get(`${broker.adminUrl}/healthz`)).status).toBe(200);
    await waitFor(() => broker.stderr.includes('"admin server listening"'), 'the log lines on stderr');
    const lines = broker.stderr.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => l.msg === 'broker listening')).toMatchObject({ level: 30, broker: 'c1' });
    expect(lines.find((l) => l.msg === 'admin server listening')).toMatchObject({ level: 30, broker: 'c1', url: broker.adminUrl });
    expect(lines.every((l) => typeof l.time === 'string')).toBe(true);

    const status = await relaymq(['status', '--broker', broker.adminUrl as string]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^cluster as seen by c1: HEALTHY\n/);
    expect(status.stdout).toMatch(/^c1\*\s+alive\s+standalone/m);
  });
});

describe('relaymq status', () => {
  it('exits 1 and lists the problems of an unhealthy cluster', async () => {
    // A broker whose configured peer never starts: the peer is unseen, and no metadata leader can be elected.
    const lonely = await fixture.broker({ id: 'u1', peerPort: 0, peers: ['u2@127.0.0.1:1'], adminPort: 0 });
    const { code, stdout } = await relaymq(['status', '--broker', lonely.adminUrl as string]);
    expect(code).toBe(1);
    expect(stdout).toMatch(/^cluster as seen by u1: UNHEALTHY \(broker not ready\)\n/);
    expect(stdout).toMatch(/^u2\s+unseen\s+follower/m);
    expect(stdout).toContain('  - broker u2 has not joined since u1 started');
  });

  it('exits 1 when the admin port cannot be reached, and 2 without --broker', async () => {
    const unreachable = await relaymq(['status', '--broker', 'http://127.0.0.1:1', '--timeout-ms', '2000']);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toContain('relaymq: cannot read cluster status from http://127.0.0.1:1/api/cluster');
    const usage = await relaymq(['status']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('status needs --broker <admin URL>');
  });
});
