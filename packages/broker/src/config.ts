import { readFile } from 'node:fs/promises';
import { RelayError } from '@relaymq/sdk/protocol';
import { redactBackboneUrl } from './engine/backbone/url.js';
import { redactUrl } from './observability/alerts.js';
import { optionOfError, resolveBrokerOptions, type BrokerOptions, type ResolvedBrokerOptions } from './options.js';

/**
 * Broker configuration from a file (JSON or YAML), `RELAYMQ_*` environment
 * variables and command-line flags, merged in that order of precedence:
 * flags > environment > file > defaults. Every value is validated and an
 * error names the option and where it came from.
 */

/** How a value is written in the environment and on the command line (`json`: a JSON text there, any JSON value in a file). */
export type Kind = 'string' | 'integer' | 'list' | 'json';

/** One configurable option: its path in the options object, its kind, and how `--help` describes it. */
export interface Field {
  /** `port`, or `alerts.graceMs` for a nested option. */
  path: string;
  kind: Kind;
  /** Extra flag spellings kept for compatibility (`--data` for `--data-dir`). */
  aliases?: string[];
  /** The heading `--help` lists the option under. */
  section: string;
  /** What one line of `--help` says the option does (the default is added from the resolved defaults). */
  help: string;
  /** The value's placeholder in `--help` (`<dir>`, `always|interval`); derived from the kind when unset. */
  value?: string;
  /** How `--help` states a default the resolved defaults cannot show: none (`off`), or one derived from another option. */
  defaultText?: string;
}

const NETWORK = 'identity and network';
const STORAGE = 'storage (with --data-dir)';
const CLIENTS = 'clients and limits';
const SECURITY = 'security (PEM text or a file path; JSON values as in a config file)';
const OPERATIONS = 'operations';
const RAFT = 'Raft timing (ms; fields override the preset)';
const SWIM = 'gossip (SWIM) timing (ms; fields override the preset)';
const PEER = 'links between brokers';
const BACKBONE = 'backbone (stateless gateways over RabbitMQ streams instead of the embedded cluster)';

/** Every option the CLI accepts, in the order `--help` shows them; `--help` and the parser both read this table. */
export const CONFIG_FIELDS: readonly Field[] = [
  { path: 'id', kind: 'string', section: NETWORK, value: '<id>', help: 'broker id, unique in the cluster' },
  { path: 'host', kind: 'string', section: NETWORK, value: '<address>', help: 'interface to listen on for clients (and peers)' },
  { path: 'port', kind: 'integer', section: NETWORK, help: 'client port; 0 picks a free one' },
  { path: 'advertisedUrl', kind: 'string', section: NETWORK, value: '<url>', help: 'URL given to clients', defaultText: 'ws://<host>:<port>' },
  { path: 'peerPort', kind: 'integer', section: NETWORK, help: 'port for other brokers (gossip, replication); 0 picks a free one' },
  { path: 'peers', kind: 'list', section: NETWORK, value: '<id@host:port,...>', help: 'the other brokers\' peer addresses; none: standalone' },
  { path: 'join', kind: 'list', section: NETWORK, value: '<host:port,...>', help: 'join a running cluster through these brokers\' peer addresses', defaultText: 'none' },
  { path: 'clusterId', kind: 'string', section: NETWORK, value: '<id>', help: 'the cluster this broker belongs to; its data directory records it, other clusters\' brokers are refused', defaultText: 'named by the cluster' },
  { path: 'metadataVoters', kind: 'integer', section: NETWORK, help: 'brokers voting in the metadata group; brokers that join beyond it do not vote' },
  { path: 'maxConcurrentMoves', kind: 'integer', section: NETWORK, help: 'replica moves in progress at once (decommission, replacement, rebalance, relaymq cluster move)' },
  { path: 'replacementTimeoutMs', kind: 'integer', section: NETWORK, help: 'a broker unreachable this long is replaced: its replicas are re-created elsewhere; 0: never' },
  { path: 'autoRebalance', kind: 'json', section: NETWORK, value: 'true|false', help: 'spread replicas evenly by itself after a broker joins or leaves' },
  { path: 'moveBytesPerSecond', kind: 'integer', section: NETWORK, help: 'bytes/s a new replica copies into this broker during a move; 0: unthrottled' },
  { path: 'replicationFactor', kind: 'integer', section: NETWORK, help: 'replicas per partition, capped by the cluster size' },
  { path: 'defaultPartitions', kind: 'integer', section: NETWORK, aliases: ['partitions'], help: 'partitions of a topic created on first use' },
  { path: 'backbone.urls', kind: 'list', section: BACKBONE, aliases: ['backbone'], value: '<rabbitmq-stream://user:pass@h1:5552,h2:5552>', help: 'run as a gateway over these RabbitMQ stream hosts: no Raft, no data directory', defaultText: 'none: the embedded cluster' },
  { path: 'backbone.kind', kind: 'string', section: BACKBONE, value: 'rabbitmq-stream', help: 'the backbone\'s kind', defaultText: 'rabbitmq-stream' },
  { path: 'backbone.streamPrefix', kind: 'string', section: BACKBONE, value: '<prefix>', help: 'first part of every stream name (deployments sharing a RabbitMQ differ in it)', defaultText: 'relaymq' },
  { path: 'backbone.requestTimeoutMs', kind: 'integer', section: BACKBONE, help: 'a publish confirm, metadata command or read the backbone does not answer within this fails TIMEOUT', defaultText: '10000' },
  { path: 'backbone.tailStartMessages', kind: 'integer', section: BACKBONE, help: 'a gateway tails each partition stream from this many messages before its end, not from its start; older reads go to RabbitMQ', defaultText: '10000' },
  { path: 'backbone.republishLookbackMessages', kind: 'integer', section: BACKBONE, help: 'a republished seq stored before the tail\'s start is looked for this far back (answered duplicate), else SEQUENCE_TOO_OLD', defaultText: '100000' },
  { path: 'backbone.metaSnapshotEveryEntries', kind: 'integer', section: BACKBONE, help: 'a gateway snapshots the metadata after this many entries of the metadata stream; new gateways start from the snapshot', defaultText: '10000' },
  { path: 'backbone.metaMaxBytes', kind: 'integer', section: BACKBONE, help: 'retention of the metadata stream when created: segments of 1/8, a snapshot after 1/16 of it', defaultText: '268435456' },
  { path: 'dataDir', kind: 'string', section: STORAGE, aliases: ['data'], value: '<dir>', help: 'partition logs and Raft logs on disk', defaultText: 'in memory' },
  { path: 'fsync', kind: 'string', section: STORAGE, value: 'always|interval', help: 'always: fsynced before the ack; interval: a loss window' },
  { path: 'fsyncIntervalMs', kind: 'integer', section: STORAGE, help: 'with --fsync interval: longest time between a write and its fsync' },
  { path: 'segmentBytes', kind: 'integer', section: STORAGE, help: 'segment file size; retention deletes whole segments' },
  { path: 'maxOpenSegmentFiles', kind: 'integer', section: STORAGE, help: 'segment files kept open over all partitions; idle ones beyond are closed, reopened on use' },
  { path: 'maxOpenRaftLogFiles', kind: 'integer', section: STORAGE, help: 'Raft log files kept open over all groups; idle ones beyond are closed, reopened on write' },
  { path: 'retention.maxAgeMs', kind: 'integer', section: STORAGE, help: 'per partition: delete segments whose messages are all older', defaultText: 'keep everything' },
  { path: 'retention.maxBytes', kind: 'integer', section: STORAGE, help: 'per partition: delete the oldest segments above this size', defaultText: 'keep everything' },
  { path: 'retention.maxMessages', kind: 'integer', section: STORAGE, help: 'per partition: delete the oldest segments above this count', defaultText: 'keep everything' },
  { path: 'topicRetention', kind: 'json', section: STORAGE, help: '[{"pattern":"logs.>","maxAgeMs":...}]: retention by topic, first match wins' },
  { path: 'storage.layout', kind: 'string', section: STORAGE, value: 'split|unified', help: 'unified: one log per partition, each message written once; split: Raft log + segment log per partition; a data directory keeps its layout', defaultText: 'the data directory\'s; unified for a new one' },
  { path: 'raftLogMaxBytes', kind: 'integer', section: STORAGE, help: 'Raft log kept for a lagging replica before compacting anyway' },
  { path: 'maxPayload', kind: 'integer', section: CLIENTS, value: '<bytes>', help: 'largest frame accepted from a client' },
  { path: 'heartbeatMs', kind: 'integer', section: CLIENTS, help: 'ping interval; a client silent for twice as long is dropped' },
  { path: 'helloTimeoutMs', kind: 'integer', section: CLIENTS, help: 'time a new connection has to send its hello' },
  { path: 'dedupeWindow', kind: 'integer', section: CLIENTS, help: 'recent seqs per producer and partition answered as duplicates' },
  { path: 'retentionBytes', kind: 'integer', section: CLIENTS, help: 'without --data-dir: bytes each partition keeps in memory' },
  { path: 'maxCredit', kind: 'integer', section: CLIENTS, help: 'largest credit (messages in flight) of one subscription' },
  { path: 'outboundHighWaterBytes', kind: 'integer', section: CLIENTS, help: 'bytes queued to a connection at which delivery pauses' },
  { path: 'maxOutboundBytes', kind: 'integer', section: CLIENTS, help: 'bytes queued to a connection at which it is cut off (SLOW_CONSUMER)' },
  { path: 'slowConsumerTimeoutMs', kind: 'integer', section: CLIENTS, help: 'time a connection may stay paused before it is cut off' },
  { path: 'maxConnections', kind: 'integer', section: CLIENTS, help: 'client connections open at once' },
  { path: 'maxConnectionsPerIp', kind: 'integer', section: CLIENTS, help: 'client connections open at once from one IP address' },
  { path: 'maxSubscriptionsPerConnection', kind: 'integer', section: CLIENTS, help: 'subscriptions one connection may hold' },
  { path: 'publishRateLimit', kind: 'integer', section: CLIENTS, help: 'messages per second one connection may publish; 0: unlimited' },
  { path: 'publishBurst', kind: 'integer', section: CLIENTS, help: 'messages a connection may publish at once above the rate', defaultText: 'the rate limit' },
  { path: 'drainTimeoutMs', kind: 'integer', section: CLIENTS, help: 'on shutdown, time clients get to move away after goaway' },
  { path: 'tls.cert', kind: 'string', section: SECURITY, value: '<pem>', help: 'client TLS certificate chain; set, only wss:// is accepted', defaultText: 'plain ws://' },
  { path: 'tls.key', kind: 'string', section: SECURITY, value: '<pem>', help: 'client TLS private key', defaultText: 'none' },
  { path: 'tls.ca', kind: 'string', section: SECURITY, value: '<pem>', help: 'CA that signs client certificates', defaultText: 'none' },
  { path: 'tls.requireClientCert', kind: 'json', section: SECURITY, value: 'true|false', help: 'mutual TLS: refuse clients without a certificate', defaultText: 'false' },
  { path: 'peerTls.cert', kind: 'string', section: SECURITY, value: '<pem>', help: 'TLS certificate chain on the peer port', defaultText: 'plain TCP' },
  { path: 'peerTls.key', kind: 'string', section: SECURITY, value: '<pem>', help: 'TLS private key on the peer port', defaultText: 'none' },
  { path: 'peerTls.ca', kind: 'string', section: SECURITY, value: '<pem>', help: 'CA that signs the peers\' certificates', defaultText: 'none' },
  { path: 'peerTls.mutual', kind: 'json', section: SECURITY, value: 'true|false', help: 'accepting brokers verify the dialer\'s certificate too', defaultText: 'true' },
  { path: 'auth', kind: 'json', section: SECURITY, help: '{"tokens":{...},"jwt":{...}}: every connection must authenticate', defaultText: 'none: anyone may do anything' },
  { path: 'acl', kind: 'json', section: SECURITY, help: '{"principal":{"publish":{"allow":[...]},...}}: topic permissions with --auth' },
  { path: 'adminPort', kind: 'integer', section: OPERATIONS, help: 'admin HTTP port: /metrics, /healthz, /readyz, /api/cluster, dashboard', defaultText: 'off' },
  { path: 'adminHost', kind: 'string', section: OPERATIONS, value: '<address>', help: 'interface of the admin port; keep it private (reads need no token by default)', defaultText: 'the value of --host' },
  { path: 'adminToken', kind: 'string', section: OPERATIONS, value: '<token>', help: 'token (16+ characters) the admin port\'s mutating endpoints need (Authorization: Bearer)', defaultText: 'none: mutating endpoints disabled' },
  { path: 'adminProtectReads', kind: 'json', section: OPERATIONS, value: 'true|false', help: 'read-only admin endpoints need the token too (not /healthz, /readyz)', defaultText: 'false' },
  { path: 'logLevel', kind: 'string', section: OPERATIONS, value: 'debug|info|warn|error|silent', help: 'JSON log lines on stderr' },
  { path: 'alerts.webhooks', kind: 'list', section: OPERATIONS, value: '<url,...>', help: 'webhook URLs that receive alerts', defaultText: 'none' },
  { path: 'alerts.graceMs', kind: 'integer', section: OPERATIONS, help: 'time a partition may be leaderless or under-replicated before alerting' },
  { path: 'alerts.diskFullPercent', kind: 'integer', section: OPERATIONS, value: '<percent>', help: 'disk use of --data-dir that alerts' },
  { path: 'alerts.checkIntervalMs', kind: 'integer', section: OPERATIONS, help: 'how often alert conditions are evaluated' },
  { path: 'alerts.retries', kind: 'integer', section: OPERATIONS, help: 'retries of a failed webhook delivery (exponential backoff)' },
  { path: 'alerts.retryDelayMs', kind: 'integer', section: OPERATIONS, help: 'first delay between two webhook delivery attempts' },
  { path: 'alerts.timeoutMs', kind: 'integer', section: OPERATIONS, help: 'time one webhook delivery attempt may take' },
  { path: 'raft.preset', kind: 'string', section: RAFT, value: 'local|lan|wan', help: 'timing preset: one host, a data centre, regions' },
  { path: 'raft.heartbeatMs', kind: 'integer', section: RAFT, help: 'time between two heartbeats of a leader' },
  { path: 'raft.electionTimeoutMs', kind: 'integer', section: RAFT, help: 'silence before a follower campaigns (drawn up to twice this)' },
  { path: 'raft.quiesce', kind: 'json', section: RAFT, value: 'true|false', help: 'idle groups stop ticking and heartbeating; false: every group ticks (CPU grows with the partitions)', defaultText: 'true' },
  { path: 'swim.preset', kind: 'string', section: SWIM, value: 'local|lan|wan', help: 'timing preset: one host, a data centre, regions' },
  { path: 'swim.probeIntervalMs', kind: 'integer', section: SWIM, help: 'time between two probes' },
  { path: 'swim.probeTimeoutMs', kind: 'integer', section: SWIM, help: 'wait for a direct ack before indirect probes' },
  { path: 'swim.indirectChecks', kind: 'integer', section: SWIM, help: 'members asked to probe one that missed its ack' },
  { path: 'swim.gossipIntervalMs', kind: 'integer', section: SWIM, help: 'time between two gossip rounds' },
  { path: 'swim.gossipFanout', kind: 'integer', section: SWIM, help: 'members each gossip round sends to' },
  { path: 'swim.retransmitMult', kind: 'integer', section: SWIM, help: 'an update is sent this x ceil(log10(n + 1)) times' },
  { path: 'swim.suspicionMult', kind: 'integer', section: SWIM, help: 'shortest suspicion, in probe intervals x max(1, log10 n)' },
  { path: 'swim.suspicionMaxTimeoutMult', kind: 'integer', section: SWIM, help: 'longest suspicion, as a multiple of the shortest' },
  { path: 'swim.awarenessMaxMultiplier', kind: 'integer', section: SWIM, help: 'most a member missing acks slows its own probing by' },
  { path: 'swim.pushPullIntervalMs', kind: 'integer', section: SWIM, help: 'time between two full-state exchanges' },
  { path: 'swim.reconnectIntervalMs', kind: 'integer', section: SWIM, help: 'time between attempts to reach a dead member or a seed' },
  { path: 'swim.joinRetryMs', kind: 'integer', section: SWIM, help: 'time between two join attempts while no seed answered' },
  { path: 'swim.gossipToTheDeadMs', kind: 'integer', section: SWIM, help: 'how long gossip still goes to a dead member; 0: not at all' },
  { path: 'swim.tombstoneMs', kind: 'integer', section: SWIM, help: 'how long a dead or left member is remembered' },
  { path: 'peer.requestTimeoutMs', kind: 'integer', section: PEER, help: 'wait for a leader, a commit or a broker\'s answer; at least 4x the election timeout' },
  { path: 'peer.readTimeoutMs', kind: 'integer', section: PEER, help: 'wait for one replica of a remote partition before the next' },
  { path: 'peer.maxFrameBytes', kind: 'integer', section: PEER, help: 'largest frame accepted from another broker' },
  { path: 'peer.maxQueuedBytes', kind: 'integer', section: PEER, help: 'bytes queued to one broker before new messages to it are dropped' },
  { path: 'peer.reconnectInitialDelayMs', kind: 'integer', section: PEER, help: 'first delay before redialing a broker; doubles each time' },
  { path: 'peer.reconnectMaxDelayMs', kind: 'integer', section: PEER, help: 'longest delay between two redials of a broker' },
];

/** Environment variables with this prefix that belong to other tools (examples, benchmarks), not the broker. */
const FOREIGN_ENV = /^RELAYMQ_(BROKERS|ADMIN_URL|BENCH_.*|TEST_.*)$/;

const words = (path: string): string[] => path.split('.').flatMap((part) => part.split(/(?=[A-Z])/)).map((w) => w.toLowerCase());

/** `alerts.graceMs` → `alerts-grace-ms`. */
export const flagName = (path: string): string => words(path).join('-');
/** `alerts.graceMs` → `RELAYMQ_ALERTS_GRACE_MS`. */
export const envName = (path: string): string => `RELAYMQ_${words(path).join('_').toUpperCase()}`;

/** Where an effective value came from. */
export type Source = { kind: 'default' } | { kind: 'file'; path: string } | { kind: 'env'; name: string } | { kind: 'flag'; name: string };

/** Describes a source for messages: `flag --port`, `environment RELAYMQ_PORT`, `config file ./b1.yaml`. */
export function describeSource(source: Source): string {
  switch (source.kind) {
    case 'default':
      return 'default';
    case 'file':
      return `config file ${source.path}`;
    case 'env':
      return `environment ${source.name}`;
    case 'flag':
      return `flag --${source.name}`;
  }
}

/** The inputs of {@link resolveConfig}: already read, so the merge is pure. */
export interface ConfigInputs {
  /** The parsed config file and its path, when `--config` was given. */
  file?: { path: string; content: unknown };
  env: Readonly<Record<string, string | undefined>>;
  /** Flag values by flag name (without `--`), as strings. */
  flags: Readonly<Record<string, string | undefined>>;
}

/** The merged configuration. */
export interface Config {
  /** Options for `startBroker` (without `log`, which the CLI adds). */
  options: BrokerOptions;
  /** Where each option set by a source came from, by path. */
  sources: Map<string, Source>;
  /** Problems that do not stop the broker (an unknown `RELAYMQ_*` variable). */
  warnings: string[];
}

function configError(source: Source, message: string): RelayError {
  return new RelayError('INVALID_ARGUMENT', `${describeSource(source)}: ${message}`);
}

/** Parses a string from the environment or a flag into the option's kind. */
function fromText(field: Field, text: string, source: Source): unknown {
  switch (field.kind) {
    case 'string':
      return text;
    case 'integer':
      if (!/^\d+$/.test(text.trim())) throw configError(source, `${field.path} must be a non-negative integer, got ${JSON.stringify(text)}`);
      return Number(text.trim());
    case 'list':
      return text
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item !== '');
    case 'json':
      try {
        return JSON.parse(text) as unknown;
      } catch {
        throw configError(source, `${field.path} must be JSON, got ${JSON.stringify(text)}`);
      }
  }
}

/** Option groups written as nested objects in a file (`alerts:`, `retention:`). */
const NESTED = new Set(CONFIG_FIELDS.filter((f) => f.path.includes('.')).map((f) => f.path.split('.')[0] as string));

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const [head, tail] = path.split('.') as [string, string | undefined];
  if (tail === undefined) {
    target[head] = value;
    return;
  }
  const inner = (target[head] ??= {}) as Record<string, unknown>;
  inner[tail] = value;
}

/** Flattens a parsed config file into `path → value`, rejecting unknown options and wrong shapes by name. */
function fileValues(content: unknown, source: Source): Map<string, unknown> {
  const values = new Map<string, unknown>();
  if (content === null || content === undefined) return values; // an empty file
  if (typeof content !== 'object' || Array.isArray(content)) throw configError(source, 'must hold an object of options');
  const known = new Set(CONFIG_FIELDS.map((f) => f.path));
  for (const [key, value] of Object.entries(content)) {
    if (NESTED.has(key) && typeof value === 'object' && value !== null && !Array.isArray(value)) {
      for (const [inner, innerValue] of Object.entries(value)) {
        if (!known.has(`${key}.${inner}`)) throw configError(source, `unknown option ${key}.${inner}`);
        values.set(`${key}.${inner}`, innerValue);
      }
      continue;
    }
    if (!known.has(key)) throw configError(source, `unknown option ${key}${NESTED.has(key) ? ' (must be an object)' : ''}`);
    values.set(key, value);
  }
  for (const [path, value] of values) {
    const field = CONFIG_FIELDS.find((f) => f.path === path) as Field;
    const ok =
      field.kind === 'json'
        ? true // validated with the broker's own checks below
        : field.kind === 'integer'
        ? typeof value === 'number' && Number.isInteger(value)
        : field.kind === 'list'
          ? Array.isArray(value) && value.every((v) => typeof v === 'string')
          : typeof value === 'string';
    if (!ok) throw configError(source, `${path} must be ${field.kind === 'integer' ? 'an integer' : field.kind === 'list' ? 'a list of strings' : 'a string'}, got ${JSON.stringify(value)}`);
  }
  return values;
}

/**
 * Merges file, environment and flags (flags win, then environment, then the
 * file), then validates the result with the broker's own option checks; any
 * error names the option and the source of its value.
 */
export function resolveConfig(inputs: ConfigInputs): Config {
  const values = new Map<string, unknown>();
  const sources = new Map<string, Source>();
  const warnings: string[] = [];

  if (inputs.file !== undefined) {
    const source: Source = { kind: 'file', path: inputs.file.path };
    for (const [path, value] of fileValues(inputs.file.content, source)) {
      values.set(path, value);
      sources.set(path, source);
    }
  }

  const byEnv = new Map(CONFIG_FIELDS.map((f) => [envName(f.path), f]));
  for (const [name, text] of Object.entries(inputs.env)) {
    if (!name.startsWith('RELAYMQ_') || text === undefined) continue;
    const field = byEnv.get(name);
    if (field === undefined) {
      if (!FOREIGN_ENV.test(name)) warnings.push(`ignoring unknown environment variable ${name}`);
      continue;
    }
    const source: Source = { kind: 'env', name };
    values.set(field.path, fromText(field, text, source));
    sources.set(field.path, source);
  }

  for (const field of CONFIG_FIELDS) {
    for (const name of [flagName(field.path), ...(field.aliases ?? [])]) {
      const text = inputs.flags[name];
      if (text === undefined) continue;
      const source: Source = { kind: 'flag', name };
      if (sources.get(field.path)?.kind === 'flag') throw configError(source, `${field.path} is also given as --${(sources.get(field.path) as { name: string }).name}; give it once`);
      values.set(field.path, fromText(field, text, source));
      sources.set(field.path, source);
    }
  }

  const options: Record<string, unknown> = {};
  for (const [path, value] of values) setPath(options, path, value);
  try {
    resolveBrokerOptions(options as BrokerOptions);
  } catch (err) {
    const option = optionOfError(err);
    const source = option === undefined ? undefined : sources.get(option);
    if (source !== undefined && err instanceof RelayError) throw configError(source, err.message);
    if (option?.startsWith('alerts.') === true && err instanceof RelayError) {
      // A missing alerts.webhooks is reported against whichever source set the other alert options.
      const alertSource = [...sources].find(([path]) => path.startsWith('alerts.'))?.[1];
      if (alertSource !== undefined) throw configError(alertSource, err.message);
    }
    throw err;
  }
  return { options: options as BrokerOptions, sources, warnings };
}

/** Reads and parses a config file: `.json` as JSON, anything else as YAML (a superset of JSON). */
export async function readConfigFile(path: string): Promise<{ path: string; content: unknown }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new RelayError('INVALID_ARGUMENT', `config file ${path}: cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  // The YAML parser is loaded only for a YAML file: it is no part of a start without one.
  const parse: (text: string) => unknown = path.endsWith('.json') ? (t) => JSON.parse(t) : (await import('yaml')).parse;
  try {
    return { path, content: parse(text) };
  } catch (err) {
    throw new RelayError('INVALID_ARGUMENT', `config file ${path}: not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message.split('\n')[0]}`);
  }
}

/** Option names whose values are secrets (tokens, keys, passwords): printed as `REDACTED`. */
const SECRET = /(secret|token|password|passphrase|privatekey|^key$|key$)/i;

/**
 * The effective configuration, every default applied, as an object ready to
 * print (YAML or JSON): the same shape a config file takes. Secrets are
 * redacted and webhook URLs lose their credentials and query strings.
 */
export function effectiveConfig(resolved: ResolvedBrokerOptions): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(resolved)) {
    if (typeof value === 'function' || value === undefined) continue;
    if (key === 'peers') out[key] = resolved.peers.map((p) => `${p.id}@${p.host}:${p.port}`);
    else if (key === 'join') out[key] = resolved.join.map((p) => `${p.id === undefined ? '' : `${p.id}@`}${p.host}:${p.port}`);
    else if (key === 'backbone' && resolved.backbone !== undefined) {
      const { endpoint: _endpoint, ...shown } = resolved.backbone;
      out[key] = { ...shown, urls: resolved.backbone.urls.map(redactBackboneUrl) };
    } else if (key === 'alerts' && resolved.alerts !== undefined) out[key] = { ...resolved.alerts, webhooks: resolved.alerts.webhooks.map(redactUrl) };
    else out[key] = redactSecrets(key, value);
  }
  return out;
}

function redactSecrets(key: string, value: unknown): unknown {
  if (SECRET.test(key)) return 'REDACTED';
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactSecrets(k, v)]));
  }
  return value;
}
