/**
 * `relaymq topic create|describe|alter|delete` and `relaymq cluster
 * status|add|remove|forget|moves|rebalance|move`: admin commands over a broker's admin port
 * (observability/admin-api.ts). Each takes `--help`, prints for people by
 * default and JSON with `--json`, and sends the admin token (`--admin-token`
 * or `RELAYMQ_ADMIN_TOKEN`) with every request. Exit status: 0 done,
 * 1 refused or failed (the broker's error on stderr), 2 a usage error.
 *
 * cli.ts dispatches here; this module reads nothing from the process but
 * what {@link runAdminCommand} is given.
 */
import { parseArgs } from 'node:util';
import { RelayError } from '@relaymq/sdk/protocol';
import { HELP_OPTION, parseArgsOptions, renderOptions, type CommandOption } from './cli-help.js';
import type { MembershipDescription, MoveDescription, MovesDescription, MoveStarted, RemovalDescription, TopicCreated, TopicDeleted, TopicDescription } from './observability/admin-api.js';
import { formatCopied, formatTimeLeft } from './observability/status-report.js';

/** What a command needs from its surroundings; cli.ts passes the process's. */
export interface AdminCommandIo {
  env: Readonly<Record<string, string | undefined>>;
  out: (text: string) => void;
  err: (text: string) => void;
  fetch: typeof fetch;
}

/** `--broker`: the admin port a command talks to (this module's commands and `relaymq status`). */
export const BROKER_OPTION: CommandOption = { name: 'broker', value: '<admin URL>', help: 'admin port of any broker, e.g. http://127.0.0.1:9401', defaultText: '$RELAYMQ_ADMIN_URL' };
/** `--admin-token`: sent with every request of a command that talks to an admin port. */
export const ADMIN_TOKEN_OPTION: CommandOption = {
  name: 'admin-token',
  value: '<token>',
  help: 'the brokers\' admin token (mutating commands need it; reads too under --admin-protect-reads)',
  defaultText: '$RELAYMQ_ADMIN_TOKEN',
};

const CONNECTION_OPTIONS: readonly CommandOption[] = [
  BROKER_OPTION,
  ADMIN_TOKEN_OPTION,
  { name: 'json', help: 'print the broker\'s answer as JSON' },
  { name: 'timeout-ms', value: '<ms>', help: 'how long to wait for the answer', default: '30000' },
  HELP_OPTION,
];

interface Subcommand {
  /** `create <topic>`: what follows the command's name in the usage line. */
  usage: string;
  summary: string;
  /** Longer explanation for `--help`. */
  details?: string;
  options: readonly CommandOption[];
  run: (context: RunContext) => Promise<number>;
}

interface RunContext {
  positionals: string[];
  values: Record<string, string | boolean | undefined>;
  client: AdminClient;
  io: AdminCommandIo;
  json: boolean;
}

/** Exit status of a command the broker refused, or that failed on the way. */
const FAILED = 1;

/** An admin port's answer that is not a success: its status and the broker's error. */
export class AdminRequestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    message: string,
    /** The finer, stable reason some refusals carry (a replica move's: engine/manual-move.ts). */
    readonly reason?: string,
  ) {
    super(message);
  }
}

/** Talks to one admin port. */
export class AdminClient {
  constructor(
    private readonly base: URL,
    private readonly token: string | undefined,
    private readonly timeoutMs: number,
    private readonly fetchImpl: typeof fetch,
  ) {}

  /** The absolute URL of an endpoint, e.g. `/api/cluster`. */
  url(path: string): string {
    return new URL(path.replace(/^\//, ''), this.base).toString();
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const url = new URL(this.url(path));
    const headers: Record<string, string> = {};
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await this.fetchImpl(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      const cause = err instanceof Error ? err.message : String(err);
      throw new AdminRequestError(0, undefined, `cannot reach the admin port at ${url.origin}: ${cause}`);
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      throw new AdminRequestError(response.status, undefined, `${url.origin} answered HTTP ${response.status} with something that is not JSON: is it a relaymq admin port?`);
    }
    if (!response.ok) {
      const o = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as { error?: unknown; code?: unknown; reason?: unknown };
      const message = typeof o.error === 'string' ? o.error : `HTTP ${response.status}`;
      throw new AdminRequestError(response.status, typeof o.code === 'string' ? o.code : undefined, message, typeof o.reason === 'string' ? o.reason : undefined);
    }
    return parsed as T;
  }
}

// ---- output ----------------------------------------------------------------------

/** Pads columns to their widest cell. */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] as number))).join('  ').trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

/** A topic as `topic describe` prints it. */
export function renderTopic(topic: TopicDescription): string {
  const head = `topic ${topic.topic}: ${topic.partitions.length} partition${topic.partitions.length === 1 ? '' : 's'}, replication factor ${topic.replicationFactor}\n`;
  const moving = topic.partitions.some((p) => p.moving !== undefined);
  const header = ['PARTITION', 'LEADER', 'REPLICAS', ...(moving ? ['MOVING'] : [])];
  const rows = topic.partitions.map((p) => [String(p.partition), p.leader ?? '(none)', p.replicas.join(','), ...(moving ? [p.moving === undefined ? '' : `${p.moving.from} -> ${p.moving.to}`] : [])]);
  return head + table(header, rows);
}

/** Replica moves as `cluster moves` prints them; `nowMs` ages them. */
export function renderMoves(m: MovesDescription, nowMs: number): string {
  const draining = m.draining.length === 0 ? 'no broker draining' : `draining: ${m.draining.join(', ')}`;
  const rebalancing = m.rebalancing ? ', rebalancing' : '';
  const seenBy = m.progressFrom !== undefined && m.progressFrom !== m.broker ? `${m.progressFrom}, asked by ${m.broker}` : m.broker;
  // Phases come from the metadata leader only: say so when another broker's view answered.
  const stale = m.moves.length > 0 && m.metadataLeader !== null && (m.progressFrom ?? m.broker) !== m.metadataLeader ? '; the metadata leader could not be asked: phases unknown' : '';
  const head = `${m.moves.length} replica move${m.moves.length === 1 ? '' : 's'} in progress, ${draining}${rebalancing} (as seen by ${seenBy}; metadata leader ${m.metadataLeader ?? '(none)'}${stale})\n`;
  if (m.moves.length === 0) return head;
  return head + movesTable(m.moves, nowMs);
}

/** The table of moves: `cluster moves`, and the moves section of `cluster status`. */
function movesTable(moves: readonly MoveDescription[], nowMs: number): string {
  return table(
    ['PARTITION', 'FROM', 'TO', 'PHASE', 'COPIED', 'LEFT', 'CAUGHT UP', 'FOR', 'LAST ERROR'],
    moves.map((move) => [
      `${move.topic}/${move.partition}`,
      move.from,
      move.to,
      move.phase,
      formatCopied(move.copiedBytes, move.totalBytes),
      formatTimeLeft(move.timeLeftMs),
      move.lastIndex === 0 ? '-' : `${move.match}/${move.lastIndex}`,
      `${Math.max(0, Math.round((nowMs - move.startedAtMs) / 1000))} s`,
      move.error ?? '',
    ]),
  );
}

/** `cluster status`: the brokers, then the moves in progress when there are any (`moves` undefined: they could not be read). */
export function renderClusterStatus(m: MembershipDescription, moves: MovesDescription | undefined, nowMs: number): string {
  const brokers = renderMembership(m);
  if (moves === undefined || moves.moves.length === 0) return brokers;
  return `${brokers}\n${moves.moves.length} replica move${moves.moves.length === 1 ? '' : 's'} in progress:\n${movesTable(moves.moves, nowMs)}`;
}

/** The cluster's brokers as `cluster status` prints them. */
export function renderMembership(m: MembershipDescription): string {
  const voters = m.members.filter((b) => b.role === 'voter').length;
  const head =
    `cluster ${m.clusterId ?? '(not named yet)'} as seen by ${m.broker}: ${m.members.length} broker${m.members.length === 1 ? '' : 's'}, ` +
    `metadata leader ${m.metadataLeader ?? '(none)'}, ${voters} of at most ${m.metadataVoters} metadata voters\n`;
  return (
    head +
    table(
      ['BROKER', 'METADATA', 'STATE', 'REPLICAS', 'LEADS', 'URL'],
      m.members.map((b) => [b.id, (b.role === 'none' ? 'not admitted' : b.role) + (b.draining === true ? ' (draining)' : ''), b.state, String(b.replicas), String(b.leaders), b.url ?? '-']),
    )
  );
}

// ---- commands --------------------------------------------------------------------

const TOPIC_NAME = (verb: string): string => `topic ${verb} needs a topic name, e.g. relaymq topic ${verb} orders`;

/** A positive integer flag (`--partitions 6`), or undefined when absent. */
function countFlag(values: RunContext['values'], name: string, max: number): number | undefined {
  const value = values[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max) {
    throw new RelayError('INVALID_ARGUMENT', `--${name} must be an integer from 1 to ${max}, got "${String(value)}"`);
  }
  return Number(value);
}

function onePositional(context: RunContext, usage: string): string {
  if (context.positionals.length !== 1) throw new RelayError('INVALID_ARGUMENT', usage);
  return context.positionals[0] as string;
}

function print(context: RunContext, value: unknown, human: string): void {
  context.io.out(context.json ? `${JSON.stringify(value, null, 2)}\n` : human);
}

const TOPIC_COMMANDS: Record<string, Subcommand> = {
  create: {
    usage: 'create <topic> [--partitions <n>] [--replication-factor <n>]',
    summary: 'create a topic',
    details:
      'Creates the topic through the metadata leader. Unset, the partition count and\n' +
      'replication factor are the brokers\' defaults (--default-partitions,\n' +
      '--replication-factor); the replication factor is capped by the brokers in the\n' +
      'cluster. A topic that exists already is printed as it is (exit 0).',
    options: [
      { name: 'partitions', value: '<n>', help: 'partition count, 1 to 1024', defaultText: 'the brokers\' --default-partitions' },
      { name: 'replication-factor', value: '<n>', help: 'copies of each partition, 1 to 16', defaultText: 'the brokers\' --replication-factor' },
    ],
    run: async (context) => {
      const topic = onePositional(context, TOPIC_NAME('create'));
      const partitions = countFlag(context.values, 'partitions', 1024);
      const replicationFactor = countFlag(context.values, 'replication-factor', 16);
      const result = await context.client.request<TopicCreated>('POST', '/api/topics', { topic, ...(partitions === undefined ? {} : { partitions }), ...(replicationFactor === undefined ? {} : { replicationFactor }) });
      print(context, result, `${result.created ? 'created' : 'exists already:'} ${renderTopic(result.topic)}`);
      return 0;
    },
  },
  describe: {
    usage: 'describe [<topic>]',
    summary: 'a topic\'s partitions, replicas and leaders (every topic without a name)',
    options: [],
    run: async (context) => {
      if (context.positionals.length > 1) throw new RelayError('INVALID_ARGUMENT', 'topic describe takes at most one topic name');
      const name = context.positionals[0];
      if (name === undefined) {
        const { topics } = await context.client.request<{ topics: TopicDescription[] }>('GET', '/api/topics');
        print(context, { topics }, topics.length === 0 ? 'no topics\n' : topics.map(renderTopic).join('\n'));
        return 0;
      }
      const topic = await context.client.request<TopicDescription>('GET', `/api/topics?topic=${encodeURIComponent(name)}`);
      print(context, topic, renderTopic(topic));
      return 0;
    },
  },
  alter: {
    usage: 'alter <topic> --partitions <n>',
    summary: 'raise a topic\'s partition count',
    details:
      'Adds partitions (a count is never lowered); existing partitions keep their data\n' +
      'and replicas. Key order: a key is placed by its hash modulo the partition count,\n' +
      'so after the change most keys map to another partition. Each partition stays in\n' +
      'order, but a key\'s messages published after the change may be read before its\n' +
      'earlier ones, which stay in the old partition. Producers pick the new count up\n' +
      'when they next fetch the topic\'s metadata (a new client, or a reconnect). Raise\n' +
      'the count while the topic is idle, or where per-key order across the change does\n' +
      'not matter.',
    options: [{ name: 'partitions', value: '<n>', help: 'the new partition count, higher than the current one (up to 1024)' }],
    run: async (context) => {
      const topic = onePositional(context, TOPIC_NAME('alter'));
      const partitions = countFlag(context.values, 'partitions', 1024);
      if (partitions === undefined) throw new RelayError('INVALID_ARGUMENT', 'topic alter needs --partitions <n>, the new (higher) partition count');
      const result = await context.client.request<TopicDescription>('PATCH', '/api/topics', { topic, partitions });
      print(context, result, `altered ${renderTopic(result)}`);
      return 0;
    },
  },
  delete: {
    usage: 'delete <topic>',
    summary: 'delete a topic with its messages',
    details:
      'Deletes the topic through the metadata leader: every broker holding a replica\n' +
      'stops it and deletes its files (a broker that is down does so when it is back),\n' +
      'and the topic\'s durable and consumer-group positions are forgotten. Its\n' +
      'subscribers get an INVALID_TOPIC error; subscriptions to wildcards go on without\n' +
      'it. A publish to the name afterwards creates the topic again, empty, from offset\n' +
      '0 (as for any unknown topic). There is no undo. An unknown topic is an error\n' +
      '(exit 1).',
    options: [],
    run: async (context) => {
      const topic = onePositional(context, TOPIC_NAME('delete'));
      const result = await context.client.request<TopicDeleted>('DELETE', `/api/topics?topic=${encodeURIComponent(topic)}`);
      print(context, result, `deleted ${renderTopic(result.topic)}`);
      return 0;
    },
  },
};

const BROKER_ID = (verb: string): string => `cluster ${verb} needs a broker id, e.g. relaymq cluster ${verb} b4`;

const CLUSTER_COMMANDS: Record<string, Subcommand> = {
  status: {
    usage: 'status',
    summary: 'the brokers, their place in the metadata group, replicas and leaderships, and moves in progress',
    options: [],
    run: async (context) => {
      if (context.positionals.length > 0) throw new RelayError('INVALID_ARGUMENT', 'cluster status takes no arguments');
      const membership = await context.client.request<MembershipDescription>('GET', '/api/membership');
      // The moves are a section of their own: the brokers are shown even when they cannot be read.
      const moves = await context.client.request<MovesDescription>('GET', '/api/cluster/moves').catch((err: unknown) => {
        if (err instanceof AdminRequestError) return undefined;
        throw err;
      });
      print(context, moves === undefined ? membership : { ...membership, moves: moves.moves }, renderClusterStatus(membership, moves, Date.now()));
      return 0;
    },
  },
  add: {
    usage: 'add <broker>',
    summary: 'admit a linked broker into the metadata group now',
    details:
      'A broker started with --join (or --peers) is admitted by itself; this command\n' +
      'admits one the cluster does not take by itself: a broker removed earlier and\n' +
      'started again. It must be linked to the broker asked (--broker). It becomes a\n' +
      'learner, and a voter once caught up while the group has fewer voters than\n' +
      '--metadata-voters. A broker let back on an empty data directory (relaymq\n' +
      'cluster forget) is admitted the same way; from then on the brokers refuse any\n' +
      'incarnation of it other than the one it linked with.',
    options: [],
    run: async (context) => {
      const broker = onePositional(context, BROKER_ID('add'));
      const membership = await context.client.request<MembershipDescription>('POST', '/api/cluster/add', { broker });
      print(context, membership, `added ${broker}\n${renderMembership(membership)}`);
      return 0;
    },
  },
  remove: {
    usage: 'remove <broker>',
    summary: 'decommission a broker: move its replicas off, take it out (then stop it)',
    details:
      'A broker that holds partition replicas drains first: the metadata leader moves\n' +
      'every replica to the other brokers (a few at a time; relaymq cluster moves shows\n' +
      'them), then takes the broker out of the metadata group. A broker holding none\n' +
      'leaves the metadata group at once. Refused, with the reason, when fewer brokers\n' +
      'than the replication factor would remain, or when it is the only metadata voter.\n' +
      'Stop the broker once relaymq cluster status shows it "not admitted".',
    options: [],
    run: async (context) => {
      const broker = onePositional(context, BROKER_ID('remove'));
      const removal = await context.client.request<RemovalDescription>('POST', '/api/cluster/remove', { broker });
      const draining = removal.removal?.outcome === 'draining';
      const said = draining
        ? `draining ${broker}: ${removal.removal.replicasToMove} replica${removal.removal.replicasToMove === 1 ? '' : 's'} to move off, then it leaves the metadata group; follow with relaymq cluster moves, stop it once it is not admitted`
        : `removed ${broker}: stop it now`;
      print(context, removal, `${said}\n${renderMembership(removal)}`);
      return 0;
    },
  },
  forget: {
    usage: 'forget <broker>',
    summary: 'let a replaced broker come back under its id on an empty data directory',
    details:
      'A broker restarted with an empty data directory under an id the cluster knows\n' +
      'is refused (it forgot its Raft votes). Once it was replaced (self-healing) or\n' +
      'removed, so it votes nowhere, this command lets it come back: the brokers accept\n' +
      'the next incarnation it presents. Start it on an empty data directory with\n' +
      '--join, then admit it with relaymq cluster add <broker>, which makes the brokers\n' +
      'refuse any other incarnation again. Refused while it is a member of the\n' +
      'metadata group or holds partition replicas.',
    options: [],
    run: async (context) => {
      const broker = onePositional(context, BROKER_ID('forget'));
      const membership = await context.client.request<MembershipDescription>('POST', '/api/cluster/forget', { broker });
      print(context, membership, `forgot ${broker}'s old data directory: start it on an empty one with --join, then relaymq cluster add ${broker}\n${renderMembership(membership)}`);
      return 0;
    },
  },
  moves: {
    usage: 'moves',
    summary: 'replica moves in progress, and the brokers being drained',
    details:
      'Each move copies a partition replica to a new broker (a Raft learner catching\n' +
      'up), makes it a voter, then removes the old replica. COPIED is what the new\n' +
      'replica holds of the partition\'s size on its leader (bytes copied from the\n' +
      'leader\'s segments, or the share of the Raft log it holds); LEFT is the rest at\n' +
      'the copy rate of the last 10 s ("-" while unknown). Only the metadata leader\n' +
      'knows each move\'s phase and figures: another broker asked answers with the\n' +
      'leader\'s view, or its own ("pending") when it cannot reach the leader.',
    options: [],
    run: async (context) => {
      if (context.positionals.length > 0) throw new RelayError('INVALID_ARGUMENT', 'cluster moves takes no arguments');
      const moves = await context.client.request<MovesDescription>('GET', '/api/cluster/moves');
      print(context, moves, renderMoves(moves, Date.now()));
      return 0;
    },
  },
  rebalance: {
    usage: 'rebalance',
    summary: 'spread partition replicas evenly over the brokers',
    details:
      'Asks the metadata leader to move replicas from the brokers holding the most to\n' +
      'those holding the fewest (a wave of --max-concurrent-moves at a time) until\n' +
      'counts differ by at most one: after adding brokers, for instance. Returns at\n' +
      'once; relaymq cluster moves follows it. Brokers do this by themselves\n' +
      'unless started with --auto-rebalance false.',
    options: [],
    run: async (context) => {
      if (context.positionals.length > 0) throw new RelayError('INVALID_ARGUMENT', 'cluster rebalance takes no arguments');
      const moves = await context.client.request<MovesDescription>('POST', '/api/cluster/rebalance', {});
      print(context, moves, `rebalance asked\n${renderMoves(moves, Date.now())}`);
      return 0;
    },
  },
  move: {
    usage: 'move <topic> <partition> --from <broker> --to <broker>',
    summary: 'move one partition replica from a broker to another',
    details:
      'Records the move with the metadata leader, which runs it as it runs the moves of\n' +
      'a decommission or a rebalance: the new broker catches up as a Raft learner, is\n' +
      'made a voter, leadership is handed away when the leaving broker leads, and the\n' +
      'old replica is removed and its files deleted. Returns once the move is\n' +
      'recorded; relaymq cluster moves follows it. Refused (exit 1, the reason on\n' +
      'stderr) for an unknown topic, partition or broker, a --to broker holding a\n' +
      'replica already or being decommissioned, a --from broker holding none, a\n' +
      'partition moving already, or when --max-concurrent-moves moves are in progress.\n' +
      'With automatic rebalancing on, a move that leaves replica counts more than one\n' +
      'apart is evened out again; start the brokers with --auto-rebalance false to keep\n' +
      'replicas where you put them.',
    options: [
      { name: 'from', value: '<broker>', help: 'the broker holding the replica now' },
      { name: 'to', value: '<broker>', help: 'the broker to hold it instead (a member holding no replica of the partition)' },
    ],
    run: async (context) => {
      const usage = 'cluster move needs a topic, a partition and two brokers, e.g. relaymq cluster move orders 3 --from b1 --to b4';
      if (context.positionals.length !== 2) throw new RelayError('INVALID_ARGUMENT', usage);
      const [topic, partitionText] = context.positionals as [string, string];
      if (!/^\d+$/.test(partitionText)) throw new RelayError('INVALID_ARGUMENT', `the partition must be a number from 0, got "${partitionText}"; ${usage}`);
      const { from, to } = context.values;
      if (typeof from !== 'string' || typeof to !== 'string') throw new RelayError('INVALID_ARGUMENT', `${usage} (--from and --to are required)`);
      const result = await context.client.request<MoveStarted>('POST', '/api/cluster/move', { topic, partition: Number(partitionText), from, to });
      print(context, result, `moving ${topic}/${partitionText} from ${from} to ${to}: follow with relaymq cluster moves\n${renderMoves(result.moves, Date.now())}`);
      return 0;
    },
  },
};

const GROUPS: Record<string, { commands: Record<string, Subcommand>; summary: string }> = {
  topic: { commands: TOPIC_COMMANDS, summary: 'create, describe, alter and delete topics' },
  cluster: { commands: CLUSTER_COMMANDS, summary: 'the cluster\'s brokers: status, add, remove, forget, moves, rebalance, move' },
};

/** `relaymq topic --help` / `relaymq cluster --help`. */
export function groupUsage(group: string): string {
  const { commands, summary } = GROUPS[group] as (typeof GROUPS)[string];
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  const list = Object.entries(commands)
    .map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`)
    .join('\n');
  return `usage: relaymq ${group} <command> [options]

${summary[0]?.toUpperCase()}${summary.slice(1)}, over a broker's admin port.

commands:
${list}

Every command takes --help, --broker <admin URL> ($RELAYMQ_ADMIN_URL),
--admin-token <token> ($RELAYMQ_ADMIN_TOKEN) and --json.
Exit status: 0 done, 1 refused or failed, 2 a usage error.
`;
}

/** `relaymq <group> <command> --help`. */
export function commandUsage(group: string, name: string): string {
  const command = (GROUPS[group] as (typeof GROUPS)[string]).commands[name] as Subcommand;
  const details = command.details === undefined ? '' : `\n${command.details}\n`;
  return `usage: relaymq ${group} ${command.usage} [options]

${command.summary[0]?.toUpperCase()}${command.summary.slice(1)}.
${details}
${renderOptions([...command.options, ...CONNECTION_OPTIONS])}

Exit status: 0 done, 1 refused or failed, 2 a usage error.
`;
}

/**
 * The admin client a command's options name: `--broker` (else
 * `$RELAYMQ_ADMIN_URL`), `--admin-token` (else `$RELAYMQ_ADMIN_TOKEN`; empty
 * is none) and `--timeout-ms`. Usage errors throw `INVALID_ARGUMENT`.
 */
export function adminClientOf(command: string, values: Record<string, string | boolean | undefined>, io: Pick<AdminCommandIo, 'env' | 'fetch'>): AdminClient {
  const broker = typeof values.broker === 'string' ? values.broker : io.env.RELAYMQ_ADMIN_URL;
  if (broker === undefined) throw new RelayError('INVALID_ARGUMENT', `${command} needs --broker <admin URL>, e.g. --broker http://127.0.0.1:9401`);
  if (!/^https?:\/\/\S+$/.test(broker)) throw new RelayError('INVALID_ARGUMENT', `--broker must be the http:// URL of an admin port, got "${broker}"`);
  const timeout = values['timeout-ms'];
  if (typeof timeout !== 'string' || !/^\d+$/.test(timeout) || Number(timeout) < 1) throw new RelayError('INVALID_ARGUMENT', `--timeout-ms must be a positive integer, got "${String(timeout)}"`);
  const token = typeof values['admin-token'] === 'string' ? values['admin-token'] : io.env.RELAYMQ_ADMIN_TOKEN;
  return new AdminClient(new URL(broker.endsWith('/') ? broker : `${broker}/`), token === '' ? undefined : token, Number(timeout), io.fetch);
}

/**
 * Runs `relaymq <group> <args...>` and resolves with its exit status. Usage
 * errors throw `INVALID_ARGUMENT` (cli.ts prints them and exits 2); the
 * broker's refusals and unreachable brokers print one line and resolve 1.
 */
export async function runAdminCommand(group: 'topic' | 'cluster', args: string[], io: AdminCommandIo): Promise<number> {
  const { commands } = GROUPS[group] as (typeof GROUPS)[string];
  const [name, ...rest] = args;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.out(groupUsage(group));
    return 0;
  }
  const command = commands[name];
  if (command === undefined) throw new RelayError('INVALID_ARGUMENT', `unknown command "${group} ${name}"; try: relaymq ${group} --help`);
  const { values, positionals } = parseArgs({ args: rest, strict: true, allowPositionals: true, options: parseArgsOptions([...command.options, ...CONNECTION_OPTIONS]) });
  if (values.help === true) {
    io.out(commandUsage(group, name));
    return 0;
  }
  const client = adminClientOf(`${group} ${name}`, values, io);
  const json = values.json === true;
  try {
    return await command.run({ positionals, values, client, io, json });
  } catch (err) {
    if (!(err instanceof AdminRequestError)) throw err;
    const code = err.code === undefined ? '' : ` (${err.code}${err.reason === undefined ? '' : `, ${err.reason}`})`;
    const fields = { error: err.message, ...(err.code === undefined ? {} : { code: err.code }), ...(err.reason === undefined ? {} : { reason: err.reason }), status: err.status };
    if (json) io.out(`${JSON.stringify(fields, null, 2)}\n`);
    io.err(`relaymq: ${group} ${name}: ${err.message}${code}\n`);
    return FAILED;
  }
}
