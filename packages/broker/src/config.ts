import { readFile } from 'node:fs/promises';
import { RelayError } from '@relaymq/sdk/protocol';
import { parse as parseYaml } from 'yaml';
import { redactUrl } from './observability/alerts.js';
import { optionOfError, resolveBrokerOptions, type BrokerOptions, type ResolvedBrokerOptions } from './options.js';

/**
 * Broker configuration from a file (JSON or YAML), `RELAYMQ_*` environment
 * variables and command-line flags, merged in that order of precedence:
 * flags > environment > file > defaults. Every value is validated and an
 * error names the option and where it came from.
 */

/** How a value is written in the environment and on the command line (`json`: a JSON text there, any JSON value in a file). */
type Kind = 'string' | 'integer' | 'list' | 'json';

/** One configurable option: its path in the options object and its kind. */
interface Field {
  /** `port`, or `alerts.graceMs` for a nested option. */
  path: string;
  kind: Kind;
  /** Extra flag spellings kept for compatibility (`--data` for `--data-dir`). */
  aliases?: string[];
}

/** Every option the CLI accepts, in the order `--help` and `--print-config` show them. */
export const CONFIG_FIELDS: readonly Field[] = [
  { path: 'id', kind: 'string' },
  { path: 'host', kind: 'string' },
  { path: 'port', kind: 'integer' },
  { path: 'advertisedUrl', kind: 'string' },
  { path: 'peerPort', kind: 'integer' },
  { path: 'peers', kind: 'list' },
  { path: 'dataDir', kind: 'string', aliases: ['data'] },
  { path: 'replicationFactor', kind: 'integer' },
  { path: 'defaultPartitions', kind: 'integer', aliases: ['partitions'] },
  { path: 'maxPayload', kind: 'integer' },
  { path: 'heartbeatMs', kind: 'integer' },
  { path: 'helloTimeoutMs', kind: 'integer' },
  { path: 'dedupeWindow', kind: 'integer' },
  { path: 'retentionBytes', kind: 'integer' },
  { path: 'maxCredit', kind: 'integer' },
  { path: 'outboundHighWaterBytes', kind: 'integer' },
  { path: 'drainTimeoutMs', kind: 'integer' },
  { path: 'fsync', kind: 'string' },
  { path: 'fsyncIntervalMs', kind: 'integer' },
  { path: 'segmentBytes', kind: 'integer' },
  { path: 'retention.maxAgeMs', kind: 'integer' },
  { path: 'retention.maxBytes', kind: 'integer' },
  { path: 'retention.maxMessages', kind: 'integer' },
  { path: 'topicRetention', kind: 'json' },
  { path: 'raftLogMaxBytes', kind: 'integer' },
  { path: 'tls.cert', kind: 'string' },
  { path: 'tls.key', kind: 'string' },
  { path: 'tls.ca', kind: 'string' },
  { path: 'tls.requireClientCert', kind: 'json' },
  { path: 'peerTls.cert', kind: 'string' },
  { path: 'peerTls.key', kind: 'string' },
  { path: 'peerTls.ca', kind: 'string' },
  { path: 'peerTls.mutual', kind: 'json' },
  { path: 'auth', kind: 'json' },
  { path: 'acl', kind: 'json' },
  { path: 'maxConnections', kind: 'integer' },
  { path: 'maxConnectionsPerIp', kind: 'integer' },
  { path: 'maxSubscriptionsPerConnection', kind: 'integer' },
  { path: 'publishRateLimit', kind: 'integer' },
  { path: 'publishBurst', kind: 'integer' },
  { path: 'slowConsumerTimeoutMs', kind: 'integer' },
  { path: 'maxOutboundBytes', kind: 'integer' },
  { path: 'adminPort', kind: 'integer' },
  { path: 'adminHost', kind: 'string' },
  { path: 'logLevel', kind: 'string' },
  { path: 'alerts.webhooks', kind: 'list' },
  { path: 'alerts.graceMs', kind: 'integer' },
  { path: 'alerts.diskFullPercent', kind: 'integer' },
  { path: 'alerts.checkIntervalMs', kind: 'integer' },
  { path: 'alerts.retries', kind: 'integer' },
  { path: 'alerts.retryDelayMs', kind: 'integer' },
  { path: 'alerts.timeoutMs', kind: 'integer' },
  { path: 'raft.preset', kind: 'string' },
  { path: 'raft.heartbeatMs', kind: 'integer' },
  { path: 'raft.electionTimeoutMs', kind: 'integer' },
  { path: 'swim.preset', kind: 'string' },
  { path: 'swim.probeIntervalMs', kind: 'integer' },
  { path: 'swim.probeTimeoutMs', kind: 'integer' },
  { path: 'swim.indirectChecks', kind: 'integer' },
  { path: 'swim.gossipIntervalMs', kind: 'integer' },
  { path: 'swim.gossipFanout', kind: 'integer' },
  { path: 'swim.retransmitMult', kind: 'integer' },
  { path: 'swim.suspicionMult', kind: 'integer' },
  { path: 'swim.suspicionMaxTimeoutMult', kind: 'integer' },
  { path: 'swim.awarenessMaxMultiplier', kind: 'integer' },
  { path: 'swim.pushPullIntervalMs', kind: 'integer' },
  { path: 'swim.reconnectIntervalMs', kind: 'integer' },
  { path: 'swim.joinRetryMs', kind: 'integer' },
  { path: 'swim.gossipToTheDeadMs', kind: 'integer' },
  { path: 'swim.tombstoneMs', kind: 'integer' },
  { path: 'peer.requestTimeoutMs', kind: 'integer' },
  { path: 'peer.readTimeoutMs', kind: 'integer' },
  { path: 'peer.maxFrameBytes', kind: 'integer' },
  { path: 'peer.maxQueuedBytes', kind: 'integer' },
  { path: 'peer.reconnectInitialDelayMs', kind: 'integer' },
  { path: 'peer.reconnectMaxDelayMs', kind: 'integer' },
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
  try {
    return { path, content: path.endsWith('.json') ? JSON.parse(text) : parseYaml(text) };
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
    else if (key === 'alerts' && resolved.alerts !== undefined) out[key] = { ...resolved.alerts, webhooks: resolved.alerts.webhooks.map(redactUrl) };
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
