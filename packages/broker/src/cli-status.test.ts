import { describe, expect, it } from 'vitest';
import type { AdminCommandIo } from './cli-admin.js';
import { STATUS_USAGE, runStatus } from './cli-status.js';
import type { ClusterReport } from './observability/cluster-view.js';
import { QUIET_CLUSTER } from '../test/support/cluster-report.js';

/** A fake admin port answering `/api/cluster` with `status` and `body`; records each request's URL and Authorization header. */
function port(status: number, body: unknown, env: Record<string, string> = {}): AdminCommandIo & { sent: Array<[string, string | undefined]>; stdout: string[]; stderr: string[] } {
  const sent: Array<[string, string | undefined]> = [];
  const stdout: string[] = [];
  const stderr: string[] = [];
  const fakeFetch = (async (input: URL | string, init?: RequestInit) => {
    sent.push([String(input), ((init?.headers ?? {}) as Record<string, string>).authorization]);
    return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
  }) as typeof fetch;
  return { env, out: (t) => stdout.push(t), err: (t) => stderr.push(t), fetch: fakeFetch, sent, stdout, stderr };
}

const HEALTHY = { broker: 'b1', healthy: true };

describe('relaymq status', () => {
  it('sends --admin-token, else $RELAYMQ_ADMIN_TOKEN, as a bearer token; none when neither is set', async () => {
    const flagged = port(200, HEALTHY, { RELAYMQ_ADMIN_TOKEN: 'from-env-0123456789' });
    expect(await runStatus(['--broker', 'http://10.0.0.1:9401', '--admin-token', 'from-flag-0123456789', '--json'], flagged)).toBe(0);
    expect(flagged.sent).toEqual([['http://10.0.0.1:9401/api/cluster', 'Bearer from-flag-0123456789']]);
    expect(JSON.parse(flagged.stdout.join(''))).toEqual(HEALTHY);

    const fromEnv = port(200, HEALTHY, { RELAYMQ_ADMIN_URL: 'http://10.0.0.2:9401/', RELAYMQ_ADMIN_TOKEN: 'from-env-0123456789' });
    expect(await runStatus(['--json'], fromEnv)).toBe(0);
    expect(fromEnv.sent).toEqual([['http://10.0.0.2:9401/api/cluster', 'Bearer from-env-0123456789']]);

    const none = port(200, { broker: 'b1', healthy: false }, { RELAYMQ_ADMIN_URL: 'http://10.0.0.2:9401', RELAYMQ_ADMIN_TOKEN: '' });
    expect(await runStatus(['--json'], none)).toBe(1); // unhealthy
    expect(none.sent).toEqual([['http://10.0.0.2:9401/api/cluster', undefined]]);
  });

  it('prints the broker\'s refusal on one line naming the URL, and exits 1', async () => {
    const refused = port(401, { error: 'the admin token is not valid', code: 'UNAUTHORIZED' });
    expect(await runStatus(['--broker', 'http://10.0.0.1:9401', '--admin-token', 'wrong-token-0123456789'], refused)).toBe(1);
    expect(refused.stdout).toEqual([]);
    expect(refused.stderr).toEqual(['relaymq: cannot read cluster status from http://10.0.0.1:9401/api/cluster: the admin token is not valid (UNAUTHORIZED)\n']);
  });

  it('lists --admin-token in its help, and refuses usage errors', async () => {
    const help = port(200, HEALTHY);
    expect(await runStatus(['--help'], help)).toBe(0);
    expect(help.stdout.join('')).toBe(STATUS_USAGE);
    expect(STATUS_USAGE).toMatch(/^ {2}--admin-token <token> .*\(default \$RELAYMQ_ADMIN_TOKEN\)$/m);
    await expect(runStatus([], port(200, HEALTHY))).rejects.toThrow('status needs --broker <admin URL>');
    await expect(runStatus(['--broker', 'ws://x'], port(200, HEALTHY))).rejects.toThrow('--broker must be the http:// URL of an admin port');
    await expect(runStatus(['--broker', 'http://x', '--timeout-ms', 'soon'], port(200, HEALTHY))).rejects.toThrow('--timeout-ms must be a positive integer');
  });

  it('prints the moves in progress with bytes copied and time left, and no moves section without moves', async () => {
    const report: ClusterReport = {
      ...QUIET_CLUSTER,
      backbone: [],
      moves: [
        { topic: 'orders', partition: 3, from: 'b1', to: 'b4', startedAtMs: 8_000, phase: 'catching-up', copiedBytes: 12_897_485, totalBytes: 41_943_040, bytesPerSecond: 3_500_000, timeLeftMs: 8_300, error: null },
        { topic: 'orders', partition: 5, from: 'b2', to: 'b4', startedAtMs: 19_000, phase: 'pending', copiedBytes: null, totalBytes: null, bytesPerSecond: null, timeLeftMs: null, error: 'NOT_LEADER' },
      ],
    };
    const shown = port(200, report, { RELAYMQ_ADMIN_URL: 'http://10.0.0.1:9401' });
    expect(await runStatus([], shown)).toBe(0);
    expect(shown.stdout.join('')).toContain(
      '2 replica moves in progress:\n' +
        'PARTITION  FROM  TO  PHASE        COPIED                LEFT  FOR   LAST ERROR\n' +
        'orders/3   b1    b4  catching-up  12.3 MiB of 40.0 MiB  ~9 s  12 s\n' +
        'orders/5   b2    b4  pending      -                     -     1 s   NOT_LEADER\n',
    );
    // None, or an older broker's report without the field: no section.
    for (const quiet of [{ ...report, moves: [] }, { ...report, moves: undefined }]) {
      const out = port(200, quiet, { RELAYMQ_ADMIN_URL: 'http://10.0.0.1:9401' });
      expect(await runStatus([], out)).toBe(0);
      expect(out.stdout.join('')).not.toContain('in progress');
    }
  });

  it('prints the backbone as each gateway sees it: connection, nodes with their last error, stream leaders; --json has it whole', async () => {
    const report: ClusterReport = {
      ...QUIET_CLUSTER,
      healthy: false,
      problems: ['gateway g2 cannot reach RabbitMQ node 10.0.0.9:5552 (connect ECONNREFUSED 10.0.0.9:5552)'],
      moves: [],
      backbone: [
        {
          gateway: 'g1',
          kind: 'rabbitmq-stream',
          connected: true,
          connectedTo: '10.0.0.7:5552',
          advertisedAs: 'rabbit-0:5552', // behind a proxy or NAT: the node advertises another address than the one dialled
          connections: 3,
          nodes: [{ node: '10.0.0.7:5552', reachable: true, lastError: null, checkedAtMs: 19_000, roundTripMs: 2.4137 }],
          partitions: [{ topic: 'orders', partition: 0, stream: 'relaymq:orders:k3x9:0', leader: null }],
          lastConfirmMs: 3.25,
        },
        {
          gateway: 'g2',
          kind: 'rabbitmq-stream',
          connected: false,
          connectedTo: null,
          advertisedAs: null,
          connections: 0,
          nodes: [
            { node: '10.0.0.7:5552', reachable: null, lastError: null, checkedAtMs: null, roundTripMs: null },
            { node: '10.0.0.9:5552', reachable: false, lastError: 'connect ECONNREFUSED 10.0.0.9:5552', checkedAtMs: 19_500, roundTripMs: null },
          ],
          partitions: [{ topic: 'orders', partition: 0, stream: 'relaymq:orders:k3x9:0', leader: '10.0.0.8:5552' }],
          lastConfirmMs: null,
        },
      ],
    };
    const shown = port(200, report, { RELAYMQ_ADMIN_URL: 'http://10.0.0.1:9401' });
    expect(await runStatus([], shown)).toBe(1);
    expect(shown.stdout.join('')).toContain(
      'backbone (rabbitmq-stream) as the gateways see it:\n' +
        'GATEWAY  BACKBONE     CONNECTED TO                              CONNECTIONS  LAST CONFIRM\n' +
        'g1       connected    10.0.0.7:5552 (advertised rabbit-0:5552)  3            3.25 ms\n' +
        'g2       UNREACHABLE  -                                         0            -\n' +
        '\n' +
        'GATEWAY  NODE           STATE        ROUND TRIP  LAST ERROR\n' +
        'g1       10.0.0.7:5552  reachable    2.41 ms\n' +
        'g2       10.0.0.7:5552  unchecked    -\n' +
        'g2       10.0.0.9:5552  UNREACHABLE  -           connect ECONNREFUSED 10.0.0.9:5552\n' +
        '\n' +
        'PARTITION  STREAM LEADER  STREAM\n' +
        'orders/0   10.0.0.8:5552  relaymq:orders:k3x9:0\n' +
        '\n' +
        'problems:\n',
    );
    const json = port(200, report, { RELAYMQ_ADMIN_URL: 'http://10.0.0.1:9401' });
    expect(await runStatus(['--json'], json)).toBe(1);
    expect(JSON.parse(json.stdout.join('')).backbone).toEqual(report.backbone);
    // An embedded cluster's answer, or an older broker's without the field: no section.
    for (const quiet of [{ ...report, backbone: [] }, { ...report, backbone: undefined }]) {
      const out = port(200, quiet, { RELAYMQ_ADMIN_URL: 'http://10.0.0.1:9401' });
      await runStatus([], out);
      expect(out.stdout.join('')).not.toContain('backbone');
    }
  });
});
