#!/usr/bin/env node
/**
 * The `relaymq` command. The only reader of argv and the environment.
 *
 *   relaymq broker [--id b1] [--host 127.0.0.1] [--port 7401] [--partitions 1]
 *                  [--max-payload 1048576] [--heartbeat-ms 5000] [--log-level info]
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { RelayError } from '@relaymq/sdk/protocol';
import { startBroker } from './broker.js';
import { runDevCluster } from './dev-cluster.js';
import type { BrokerOptions } from './options.js';

const USAGE = `usage: relaymq broker [options]     run one broker
       relaymq dev [--count 3] [--port 7401] [--peer-port 7501]
                                       a local cluster on loopback, for development

options:
  --id <id>                 broker id (default b1)
  --host <address>          interface to listen on (default 127.0.0.1)
  --port <n>                client port, 0 for any free port (default 7401)
  --peer-port <n>           port for other brokers, 0 for any free port (default 7501)
  --peers <list>            the other brokers: id@host:port,id@host:port (default: none, standalone)
  --data <dir>              directory for partition logs and Raft logs; without it everything is in memory
  --fsync <policy>          always (default: fsynced before the ack) | interval
  --fsync-interval-ms <ms>  with --fsync interval: longest time between a write and its fsync (default 1000)
  --retention-max-age-ms <ms>, --retention-max-bytes <n>, --retention-max-messages <n>
                            per partition, whole segments deleted oldest first (default: keep everything)
  --segment-bytes <n>       segment file size (default 67108864)
  --replication-factor <n>  replicas per partition in a cluster (default 3)
  --advertised-url <url>    URL given to clients (default ws://<host>:<port>)
  --partitions <n>          partitions of implicitly created topics (default 1)
  --max-payload <bytes>     largest accepted frame (default 1048576)
  --heartbeat-ms <ms>       ping interval; silent clients dropped after 2x (default 5000)
  --drain-timeout-ms <ms>   time clients get to leave on shutdown (default 2000)
  --log-level <level>       debug | info | warn | error (default info)
  -h, --help                show this help
`;

const levels = ['debug', 'info', 'warn', 'error'] as const;
type Level = (typeof levels)[number];

function integerFlag(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new RelayError('INVALID_ARGUMENT', `--${name} must be a non-negative integer, got "${value}"`);
  return Number(value);
}

async function runBroker(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      id: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      'peer-port': { type: 'string' },
      peers: { type: 'string' },
      data: { type: 'string' },
      fsync: { type: 'string' },
      'fsync-interval-ms': { type: 'string' },
      'retention-max-age-ms': { type: 'string' },
      'retention-max-bytes': { type: 'string' },
      'retention-max-messages': { type: 'string' },
      'segment-bytes': { type: 'string' },
      'replication-factor': { type: 'string' },
      'advertised-url': { type: 'string' },
      partitions: { type: 'string' },
      'max-payload': { type: 'string' },
      'heartbeat-ms': { type: 'string' },
      'drain-timeout-ms': { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(USAGE);
    return;
  }
  const level = values['log-level'] as Level;
  if (!levels.includes(level)) throw new RelayError('INVALID_ARGUMENT', `--log-level must be one of ${levels.join(', ')}`);
  const threshold = levels.indexOf(level);
  const options: BrokerOptions = {
    id: values.id,
    host: values.host,
    port: integerFlag('port', values.port),
    peerPort: integerFlag('peer-port', values['peer-port']),
    dataDir: values.data,
    fsync: values.fsync as BrokerOptions['fsync'],
    fsyncIntervalMs: integerFlag('fsync-interval-ms', values['fsync-interval-ms']),
    retention: {
      maxAgeMs: integerFlag('retention-max-age-ms', values['retention-max-age-ms']),
      maxBytes: integerFlag('retention-max-bytes', values['retention-max-bytes']),
      maxMessages: integerFlag('retention-max-messages', values['retention-max-messages']),
    },
    segmentBytes: integerFlag('segment-bytes', values['segment-bytes']),
    replicationFactor: integerFlag('replication-factor', values['replication-factor']),
    peers: values.peers === undefined ? undefined : values.peers.split(',').filter((p) => p !== ''),
    advertisedUrl: values['advertised-url'],
    defaultPartitions: integerFlag('partitions', values.partitions),
    maxPayload: integerFlag('max-payload', values['max-payload']),
    heartbeatMs: integerFlag('heartbeat-ms', values['heartbeat-ms']),
    drainTimeoutMs: integerFlag('drain-timeout-ms', values['drain-timeout-ms']),
    log: (lvl, message, fields) => {
      if (levels.indexOf(lvl) < threshold) return;
      process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level: lvl, msg: message, ...fields })}\n`);
    },
  };
  const broker = await startBroker(options);
  // One machine-readable line on stdout: scripts and tests wait for it.
  const peerNote = broker.peerPort === undefined ? '' : ` peers on ${broker.peerPort}`;
  process.stdout.write(`relaymq broker ${broker.id} listening on ${broker.url}${peerNote}\n`);

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    options.log?.('info', 'shutting down', { signal });
    broker.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
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
      'log-level': { type: 'string', default: 'info' },
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
      logLevel: values['log-level'],
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
