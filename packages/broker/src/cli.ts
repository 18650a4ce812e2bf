#!/usr/bin/env node
/**
 * The `relaymq` command. The only reader of argv and the environment.
 *
 *   relaymq broker [--config file.yaml] [--print-config] [--<option> value ...]
 *   relaymq status --broker http://host:adminPort       (cli-status.ts)
 *   relaymq dev [--count 3]
 *   relaymq topic create|describe|alter|delete  (cli-admin.ts)
 *   relaymq cluster status|add|remove ...      (cli-admin.ts)
 *   relaymq --version
 *
 * Every command takes --help. Anything that stops a command from starting
 * (a usage error, an invalid option, a port in use, an unreadable file)
 * ends it with one line on stderr and exit status 2.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { RelayError } from '@relaymq/sdk/protocol';
import { startBroker } from './broker.js';
import { runAdminCommand, type AdminCommandIo } from './cli-admin.js';
import { brokerOptionsHelp, HELP_OPTION, parseArgsOptions, renderOptions, type CommandOption } from './cli-help.js';
import { serveUntilSignal } from './cli-signals.js';
import { runStatus } from './cli-status.js';
import { CONFIG_FIELDS, describeSource, effectiveConfig, envName, flagName, readConfigFile, resolveConfig } from './config.js';
import { devPorts, runDevCluster } from './dev-cluster.js';
import { createLogger } from './observability/logger.js';
import { resolveBrokerOptions } from './options.js';

/** The version of this package, for `--version`: read from its package.json (`../package.json` from `src/` and from `dist/`). */
function packageVersion(): string {
  const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return manifest.version;
}

const USAGE = `usage: relaymq <command> [options]

commands:
  broker    run one broker                          relaymq broker --help
  status    cluster health; exits 1 when unhealthy  relaymq status --help
  dev       a local cluster on loopback             relaymq dev --help
  topic     create, describe, alter, delete topics  relaymq topic --help
  cluster   brokers: status, add, remove, forget,   relaymq cluster --help
            moves, rebalance, move

  relaymq --version     print the version
  relaymq --help        show this help
`;

/** The broker's own options besides the option table: how configuration is read. */
const BROKER_COMMAND_OPTIONS: readonly CommandOption[] = [
  { name: 'config', value: '<file>', help: 'read options from a JSON or YAML file', defaultText: 'none' },
  { name: 'print-config', help: 'print the effective configuration (secrets redacted) and exit' },
  HELP_OPTION,
];

/** The broker's log level when run from the CLI (the API's default is silent). */
const CLI_LOG_LEVEL = 'info';

function brokerUsage(): string {
  const examples = ['port', 'peers', 'dataDir', 'alerts.webhooks'].map((p) => `--${flagName(p)} = ${envName(p)}`).join(', ');
  return `usage: relaymq broker [--config <file>] [--print-config] [options]

Runs one broker. Every option can come from a config file (JSON or YAML,
--config), an environment variable or a flag; flags win over the environment,
which wins over the file, which wins over the defaults. The environment
variable of an option is RELAYMQ_ and its flag name in capitals:
${examples}.

${renderOptions(BROKER_COMMAND_OPTIONS)}
${brokerOptionsHelp({ logLevel: CLI_LOG_LEVEL })}

Exit status: 0 after a clean shutdown (SIGTERM, SIGINT), 2 when it cannot
start (an invalid option, a port in use, an unreadable file).
`;
}

const DEV_OPTIONS: readonly CommandOption[] = [
  { name: 'count', value: '<n>', help: 'brokers to start, 1 to 9', default: '3' },
  { name: 'host', value: '<address>', help: 'interface of every port', default: '127.0.0.1' },
  { name: 'port', value: '<n>', help: 'client port of b1; the others follow (0: free ports)', default: '7401' },
  { name: 'peer-port', value: '<n>', help: 'peer port of b1; the others follow (0: with --count 1 only)', default: '7501' },
  { name: 'admin-port', value: '<n>', help: 'admin port (dashboard) of b1; the others follow (0: free ports)', default: '9401' },
  { name: 'log-level', value: '<level>', help: 'debug | info | warn | error | silent', default: 'info' },
  { name: 'data', value: '<dir>', help: 'keep the brokers\' data there, and keep it on exit', defaultText: 'a temporary directory, deleted on exit' },
  HELP_OPTION,
];

const DEV_USAGE = `usage: relaymq dev [options]

Starts a cluster of brokers on loopback, one process each, their output
prefixed with their ids; Ctrl-C stops them.

${renderOptions(DEV_OPTIONS)}
`;

async function runBroker(args: string[]): Promise<void> {
  const optionFlags = Object.fromEntries(
    CONFIG_FIELDS.flatMap((f) => [flagName(f.path), ...(f.aliases ?? [])]).map((name) => [name, { type: 'string' as const }]),
  );
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: { ...optionFlags, ...parseArgsOptions(BROKER_COMMAND_OPTIONS) },
  });
  if (values.help === true) {
    process.stdout.write(brokerUsage());
    return;
  }
  const flags: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(values)) if (typeof value === 'string' && name !== 'config') flags[name] = value;
  const file = typeof values.config === 'string' ? await readConfigFile(values.config) : undefined;
  const config = resolveConfig({ file, env: process.env, flags });
  for (const warning of config.warnings) process.stderr.write(`relaymq: warning: ${warning}\n`);
  const options = { ...config.options, logLevel: config.options.logLevel ?? CLI_LOG_LEVEL };

  if (values['print-config'] === true) {
    const effective = effectiveConfig(resolveBrokerOptions(options));
    const { stringify: toYaml } = await import('yaml');
    const origins = [...config.sources].map(([path, source]) => `#   ${path}: ${describeSource(source)}`);
    process.stdout.write(`# effective relaymq broker configuration (secrets redacted)\n${toYaml(effective)}`);
    process.stdout.write(origins.length === 0 ? '# every value is a default\n' : `# set explicitly (everything else is a default):\n${origins.join('\n')}\n`);
    return;
  }

  const log = createLogger({ brokerId: options.id ?? 'b1', level: options.logLevel });
  const broker = await serveUntilSignal(() => startBroker({ ...options, logLevel: undefined, log }), log, process);
  // One machine-readable line on stdout: scripts and tests wait for it.
  const peerNote = broker.peerPort === undefined ? '' : ` peers on ${broker.peerPort}`;
  const adminNote = broker.adminUrl === undefined ? '' : ` admin on ${broker.adminUrl}`;
  process.stdout.write(`relaymq broker ${broker.id} listening on ${broker.url}${peerNote}${adminNote}\n`);
}

function integerFlag(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new RelayError('INVALID_ARGUMENT', `--${name} must be a non-negative integer, got "${value}"`);
  return Number(value);
}

/** A string option's value from parseArgs values typed by a table built at run time. */
function text(values: Record<string, string | boolean | undefined>, name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

async function runDev(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, strict: true, allowPositionals: false, options: parseArgsOptions(DEV_OPTIONS) });
  if (values.help === true) {
    process.stdout.write(DEV_USAGE);
    return;
  }
  const count = integerFlag('count', text(values, 'count')) as number;
  if (count < 1 || count > 9) throw new RelayError('INVALID_ARGUMENT', '--count must be from 1 to 9');
  const basePort = integerFlag('port', text(values, 'port')) as number;
  const basePeerPort = integerFlag('peer-port', text(values, 'peer-port')) as number;
  const baseAdminPort = integerFlag('admin-port', text(values, 'admin-port')) as number;
  // Refused before anything is created: a usage error leaves nothing behind.
  devPorts(count, basePort, basePeerPort, baseAdminPort);
  // Output may go to a pipe whose reader is gone (an npm that was killed): cleanup must still run.
  process.stdout.on('error', () => {});
  const given = text(values, 'data');
  // Without --data the brokers' data is scratch: it lives in a temporary directory removed on exit.
  const dataRoot = given ?? mkdtempSync(join(tmpdir(), 'relaymq-dev-'));
  try {
    const end = await runDevCluster(
      {
        count,
        host: text(values, 'host') as string,
        basePort,
        basePeerPort,
        baseAdminPort,
        logLevel: text(values, 'log-level') as string,
        dataRoot,
        temporaryData: given === undefined,
        cliPath: fileURLToPath(import.meta.url),
      },
      (line) => process.stdout.write(`${line}\n`),
    );
    if (!end.ok) process.exitCode = 1;
  } finally {
    if (given === undefined) {
      rmSync(dataRoot, { recursive: true, force: true });
      process.stdout.write(`relaymq dev: removed ${dataRoot}\n`);
    }
  }
}

/** What the commands that talk to an admin port get of the process. */
function adminIo(): AdminCommandIo {
  return { env: process.env, out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t), fetch };
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'broker':
      await runBroker(rest);
      return;
    case 'status':
      process.exitCode = await runStatus(rest, adminIo());
      return;
    case 'dev':
      await runDev(rest);
      return;
    case 'topic':
    case 'cluster':
      process.exitCode = await runAdminCommand(command, rest, adminIo());
      return;
    case '--version':
      process.stdout.write(`${packageVersion()}\n`);
      return;
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE);
      return;
    default:
      throw new RelayError('INVALID_ARGUMENT', `unknown command "${command}"; try: relaymq --help`);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`relaymq: ${message}\n`);
  process.exit(2);
});
