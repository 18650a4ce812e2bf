/**
 * `relaymq status`: the cluster's health as any broker's admin port reports
 * it (`/api/cluster`, the whole cluster). It talks to the admin port as the
 * admin commands do (cli-admin.ts): `--broker`, and the admin token
 * (`--admin-token` or `RELAYMQ_ADMIN_TOKEN`), which brokers started with
 * `--admin-protect-reads` require. Exit status: 0 healthy, 1 unhealthy or
 * unreachable or refused, 2 a usage error (thrown as `INVALID_ARGUMENT`).
 */
import { parseArgs } from 'node:util';
import { ADMIN_TOKEN_OPTION, AdminRequestError, BROKER_OPTION, adminClientOf, type AdminCommandIo } from './cli-admin.js';
import { HELP_OPTION, parseArgsOptions, renderOptions, type CommandOption } from './cli-help.js';
import type { ClusterReport } from './observability/operations.js';
import { renderStatus } from './observability/status-report.js';

const STATUS_OPTIONS: readonly CommandOption[] = [
  BROKER_OPTION,
  ADMIN_TOKEN_OPTION,
  { name: 'json', help: 'print the report as JSON' },
  { name: 'timeout-ms', value: '<ms>', help: 'how long to wait for the answer', default: '5000' },
  HELP_OPTION,
];

/** `relaymq status --help`. */
export const STATUS_USAGE = `usage: relaymq status --broker <admin URL> [--admin-token <token>] [--json] [--timeout-ms <ms>]

Prints the health of the cluster as a broker's admin port reports it.
Exit status: 0 healthy, 1 unhealthy or unreachable, 2 a usage error.

${renderOptions(STATUS_OPTIONS)}
`;

/** Runs `relaymq status <args...>` and resolves with its exit status. */
export async function runStatus(args: string[], io: AdminCommandIo): Promise<number> {
  const { values } = parseArgs({ args, strict: true, allowPositionals: false, options: parseArgsOptions(STATUS_OPTIONS) });
  if (values.help === true) {
    io.out(STATUS_USAGE);
    return 0;
  }
  const client = adminClientOf('status', values, io);
  let report: ClusterReport;
  try {
    report = await client.request<ClusterReport>('GET', '/api/cluster');
  } catch (err) {
    if (!(err instanceof AdminRequestError)) throw err;
    const code = err.code === undefined ? '' : ` (${err.code})`;
    io.err(`relaymq: cannot read cluster status from ${client.url('/api/cluster')}: ${err.message}${code}\n`);
    return 1;
  }
  io.out(values.json === true ? `${JSON.stringify(report, null, 2)}\n` : renderStatus(report));
  return report.healthy ? 0 : 1;
}
