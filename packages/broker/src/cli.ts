#!/usr/bin/env node
/**
 * The `relaymq` command. The only reader of argv and the environment.
 *
 *   relaymq broker [--config file.yaml] [--print-config] [--<option> value ...]
 *   relaymq status --broker http://host:adminPort
 *   relaymq dev [--count 3]
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { RelayError } from '@relaymq/sdk/protocol';
import { stringify as toYaml } from 'yaml';
import { startBroker } from './broker.js';
import { CONFIG_FIELDS, describeSource, effectiveConfig, envName, flagName, readConfigFile, resolveConfig } from './config.js';
import { runDevCluster } from './dev-cluster.js';
import { createLogger } from './observability/logger.js';
import type { ClusterReport } from './observability/operations.js';
import { renderStatus } from './observability/status-report.js';
import { resolveBrokerOptions } from './options.js';

const USAGE = `usage: relaymq broker [--config <file>] [--print-config] [options]   run one broker
       relaymq status --broker <admin URL> [--json] [--timeout-ms 5000]    cluster health; exits 1 when unhealthy
       relaymq dev [--count 3] [--port 7401] [--peer-port 7501] [--admin-port 9401] [--data <dir>]
                                                                           a local cluster on loopback

Every broker option can come from a config file (JSON or YAML, --config),
an environment variable or a flag; flags win over the environment, which wins
over the file, which wins over the defaults. --print-config prints the
effective configuration (secrets redacted) and exits.

broker options (flag / environment variable):
  --id <id>                      broker id (default b1)
  --host <address>               interface to listen on (default 127.0.0.1)
  --port <n>                     client port, 0 for any free port (default 7401)
  --peer-port <n>                port for other brokers, 0 for any free port (default 7501)
  --peers <list>                 the other brokers: id@host:port,id@host:port (default: none, standalone)
  --data-dir <dir>               directory for partition logs and Raft logs; without it everything is in memory (alias --data)
  --fsync <policy>               always (default: fsynced before the ack) | interval
  --fsync-interval-ms <ms>       with --fsync interval: longest time between a write and its fsync (default 1000)
  --retention-max-age-ms <ms>, --retention-max-bytes <n>, --retention-max-messages <n>
                                 per partition, whole segments deleted oldest first (default: keep everything)
  --segment-bytes <n>            segment file size (default 67108864)
  --replication-factor <n>       replicas per partition in a cluster (default 3)
  --advertised-url <url>         URL given to clients (default ws://<host>:<port>)
  --default-partitions <n>       partitions of implicitly created topics (default 1; alias --partitions)
  --max-payload <bytes>          largest accepted frame (default 1048576)
  --heartbeat-ms <ms>            ping interval; silent clients dropped after 2x (default 5000)
  --drain-timeout-ms <ms>        time clients get to leave on shutdown (default 2000)
  --admin-port <n>               admin HTTP port: /metrics, /healthz, /readyz, /api/cluster, dashboard (default off)
  --admin-host <address>         interface of the admin port (default: --host)
  --log-level <level>            debug | info | warn | error | silent (default info)
  --alerts-webhooks <urls>       webhook URLs for alerts, comma-separated (default none)
  --alerts-grace-ms <ms>         time a partition may be leaderless/under-replicated before alerting (default 30000)
  --alerts-disk-full-percent <n> disk use of --data-dir that alerts (default 90)
  --raft-preset <name>           Raft timing: local | lan (default: heartbeat 50 ms, election 500 ms) | wan
  --raft-heartbeat-ms <ms>, --raft-election-timeout-ms <ms>   override the preset
  --swim-preset <name>           gossip timing: local | lan (default: probe every 1000 ms) | wan; --swim-*-ms override it
  --peer-request-timeout-ms <ms> wait for a leader, a commit or another broker's answer (default 2000)
  ...                            and every other option: ${CONFIG_FIELDS.length} in all, see the README
  -h, --help                     show this help

The environment variable of an option is RELAYMQ_ and its flag name in capitals:
${['port', 'peers', 'dataDir', 'alerts.webhooks'].map((p) => `--${flagName(p)} = ${envName(p)}`).join(', ')}.
`;

async function runBroker(args: string[]): Promise<void> {
  const optionFlags = Object.fromEntries(
    CONFIG_FIELDS.flatMap((f) => [flagName(f.path), ...(f.aliases ?? [])]).map((name) => [name, { type: 'string' as const }]),
  );
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      ...optionFlags,
      config: { type: 'string' },
      'print-config': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(USAGE);
    return;
  }
  const flags: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(values)) if (typeof value === 'string' && name !== 'config') flags[name] = value;
  const file = typeof values.config === 'string' ? await readConfigFile(values.config) : undefined;
  const config = resolveConfig({ file, env: process.env, flags });
  for (const warning of config.warnings) process.stderr.write(`relaymq: warning: ${warning}\n`);
  const options = { ...config.options, logLevel: config.options.logLevel ?? 'info' };

  if (values['print-config'] === true) {
    const effective = effectiveConfig(resolveBrokerOptions(options));
    const origins = [...config.sources].map(([path, source]) => `#   ${path}: ${describeSource(source)}`);
    process.stdout.write(`# effective relaymq broker configuration (secrets redacted)\n${toYaml(effective)}`);
    process.stdout.write(origins.length === 0 ? '# every value is a default\n' : `# set explicitly (everything else is a default):\n${origins.join('\n')}\n`);
    return;
  }

  const log = createLogger({ brokerId: options.id ?? 'b1', level: options.logLevel });
  const broker = await startBroker({ ...options, logLevel: undefined, log });
  // One machine-readable line on stdout: scripts and tests wait for it.
  const peerNote = broker.peerPort === undefined ? '' : ` peers on ${broker.peerPort}`;
  const adminNote = broker.adminUrl === undefined ? '' : ` admin on ${broker.adminUrl}`;
  process.stdout.write(`relaymq broker ${broker.id} listening on ${broker.url}${peerNote}${adminNote}\n`);

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log('info', 'shutting down', { signal });
    broker.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/** `relaymq status`: fetches `/api/cluster` from an admin port; exit 0 healthy, 1 unhealthy or unreachable. */
async function runStatus(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      broker: { type: 'string', default: process.env.RELAYMQ_ADMIN_URL },
      json: { type: 'boolean' },
      'timeout-ms': { type: 'string', default: '5000' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.broker === undefined) throw new RelayError('INVALID_ARGUMENT', 'status needs --broker <admin URL>, e.g. --broker http://127.0.0.1:9401');
  if (!/^https?:\/\/\S+$/.test(values.broker)) throw new RelayError('INVALID_ARGUMENT', `--broker must be the http:// URL of an admin port, got "${values.broker}"`);
  const timeoutMs = integerFlag('timeout-ms', values['timeout-ms']) as number;
  const url = new URL('api/cluster', values.broker.endsWith('/') ? values.broker : `${values.broker}/`);
  let report: ClusterReport;
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    if (!response.ok) throw new Error(`answered HTTP ${response.status}`);
    report = (await response.json()) as ClusterReport;
  } catch (err) {
    process.stderr.write(`relaymq: cannot read cluster status from ${url.toString()}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  process.stdout.write(values.json === true ? `${JSON.stringify(report, null, 2)}\n` : renderStatus(report));
  return report.healthy ? 0 : 1;
}

function integerFlag(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new RelayError('INVALID_ARGUMENT', `--${name} must be a non-negative integer, got "${value}"`);
  return Number(value);
}

async function runDev(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      count: { type: 'string', default: '3' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '7401' },
      'peer-port': { type: 'string', default: '7501' },
      'admin-port': { type: 'string', default: '9401' },
      'log-level': { type: 'string', default: 'info' },
      data: { type: 'string' },
    },
  });
  const count = integerFlag('count', values.count) as number;
  if (count < 1 || count > 9) throw new RelayError('INVALID_ARGUMENT', '--count must be from 1 to 9');
  await runDevCluster(
    {
      count,
      host: values.host,
      basePort: integerFlag('port', values.port) as number,
      basePeerPort: integerFlag('peer-port', values['peer-port']) as number,
      baseAdminPort: integerFlag('admin-port', values['admin-port']) as number,
      logLevel: values['log-level'],
      dataRoot: values.data ?? mkdtempSync(join(tmpdir(), 'relaymq-dev-')),
      cliPath: fileURLToPath(import.meta.url),
    },
    (line) => process.stdout.write(`${line}\n`),
  );
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'broker':
      await runBroker(rest);
      return;
    case 'status':
      process.exitCode = await runStatus(rest);
      return;
    case 'dev':
      await runDev(rest);
      return;
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE);
      return;
    default:
      throw new RelayError('INVALID_ARGUMENT', `unknown command "${command}"; try: relaymq broker --help`);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`relaymq: ${message}\n`);
  process.exit(2);
});
