/**
 * A scripted Raft cluster for scenario tests with golden output, in the
 * style of etcd-io/raft's interaction tests. Every node is driven through
 * the one runner (`runReady`, the broker's own, synchronous here because
 * every handler finishes at once); messages wait in one queue until a
 * `deliver` or `stabilize` command hands them over, so a script decides
 * exactly what arrives, what is lost and in which order.
 *
 * Commands (one per line):
 *   cluster b1 b2 b3 [prevote=false] [checkquorum=false] [quiesce=true] [maxappend=N] [election=N] [heartbeat=N] [jitter=b2:3,b3:5]
 *   campaign b1                      start an election now
 *   tick b1 [b2 ...] [N]             tick these nodes N times (default 1); timeouts are exactly `election` ticks
 *   propose b1 v1 [v2 ...]           propose values (a batch if several)
 *   transfer b1 b2                   leadership transfer from leader b1 to b2
 *   add-node b4                      start a node outside the configuration (the cluster's bootstrap one, empty log)
 *   conf b1 add-learner|promote|remove b4   propose a configuration change on b1
 *   deliver [to=b2,b3] [from=b1] [drop=b3] [type=app,...] [count=N]
 *                                    deliver one round of queued messages (matching the filters);
 *                                    `drop` discards messages to those nodes; `count` limits how many
 *   drop [to=..] [from=..] [type=..] discard queued messages
 *   duplicate [to=..] [from=..] [type=..]  queue a second copy of matching messages
 *   stabilize [N]                    deliver rounds until no message is left (at most N, default 50)
 *   partition b1 / b2 b3             cut every link between the groups (messages are dropped at delivery)
 *   heal                             restore every link
 *   crash b1 / restart b1            stop a node (queued messages to it are lost) / restart it from its storage
 *   compact b1 INDEX                 snapshot b1's state machine at INDEX and discard the log up to it
 *   report-snapshot b1 b2 ok|fail    b1's transport reports the snapshot it sent to b2
 *   peer-down b2 b1                  b2's failure detector suspects b1 (see RaftNode.peerDown)
 *   wake b1                          wake a quiesced node
 *   status [b1 ...]                  role, term, vote, leader, commit, applied and log of each node (and `quiesced`)
 *   queue                            the messages waiting for delivery
 */
import { formatEntries, formatHardState, formatMessage } from '../../src/core/raft/format.js';
import { formatConf, sameConf } from '../../src/core/raft/membership.js';
import { RaftNode } from '../../src/core/raft/node.js';
import type { RaftTestingKnobs } from '../../src/core/raft/raft.js';
import { NO_TESTING_KNOBS } from '../../src/core/raft/raft.js';
import { runReadySync, type ReadyHandlers } from '../../src/core/raft/runner.js';
import { MemoryStorage } from '../../src/core/raft/storage.js';
import type { RaftConfigOptions } from '../../src/core/raft/config.js';
import type { ConfChange, Entry, Message, NodeId, RandomSource } from '../../src/core/raft/types.js';

type Value = string;
/** The state machine: the applied values with their indexes, in order. */
type SnapshotData = ReadonlyArray<readonly [number, Value]>;
type Msg = Message<Value, SnapshotData>;

/** Fixed jitter (default 0): every election timeout is exactly `electionTicks + jitter`, so scripts decide who times out first. */
function fixedRandom(jitterTicks: number): RandomSource {
  return { nextInt: (maxExclusive) => Math.min(jitterTicks, maxExclusive - 1) };
}

interface ScriptNode {
  id: NodeId;
  storage: MemoryStorage<Value, SnapshotData>;
  node: RaftNode<Value, SnapshotData> | undefined;
  applied: Array<readonly [number, Value]>;
  /** Role and leader last printed. */
  shown: string;
  /** Whether it was last shown quiesced. */
  quiesced: boolean;
}

const MAX_STABILIZE_ROUNDS = 50;
const MAX_READY_ROUNDS = 16;

export class ScenarioCluster {
  private readonly nodes = new Map<NodeId, ScriptNode>();
  private readonly order: NodeId[] = [];
  private queue: Msg[] = [];
  private readonly cut = new Set<string>();
  private config: RaftConfigOptions = {};
  private readonly jitter = new Map<NodeId, number>();
  private out: string[] = [];
  /** The bootstrap configuration every node starts from (those added later too). */
  private bootstrap: NodeId[] = [];

  constructor(private readonly knobs: Readonly<RaftTestingKnobs> = NO_TESTING_KNOBS) {}

  /** Runs one command line and returns its output. */
  run(line: string): string {
    this.out = [];
    const [cmd, ...args] = line.trim().split(/\s+/);
    switch (cmd) {
      case 'cluster':
        this.cmdCluster(args);
        break;
      case 'campaign':
        for (const id of args) {
          this.live(id).campaign();
          this.drain(id);
        }
        break;
      case 'tick':
        this.cmdTick(args);
        break;
      case 'propose':
        this.cmdPropose(args);
        break;
      case 'transfer': {
        const [from, to] = args as [string, string];
        const result = this.live(from).transferLeadership(to);
        this.out.push(result.ok ? `${from} transferring to ${to}` : `${from} transfer refused: ${result.reason}`);
        this.drain(from);
        break;
      }
      case 'add-node':
        for (const id of args) this.addNode(id, new MemoryStorage<Value, SnapshotData>(this.bootstrap));
        break;
      case 'conf': {
        const [id, type, target] = args as [string, string, string];
        if (type !== 'add-learner' && type !== 'promote' && type !== 'remove') throw new Error(`unknown change ${type}`);
        const change: ConfChange = { type, node: target };
        const result = this.live(id).proposeConfChange(change);
        this.out.push(
          result.ok
            ? `${id} proposed conf(${type} ${target}) at ${result.index} term ${result.term}: ${formatConf(result.conf)}`
            : `${id} conf change refused: ${result.reason}${result.detail === undefined ? '' : ` (${result.detail})`}`,
        );
        this.drain(id);
        break;
      }
      case 'deliver':
        this.deliverRound(parseFilters(args));
        break;
      case 'drop': {
        const filters = parseFilters(args);
        const kept: Msg[] = [];
        for (const m of this.queue) {
          if (matches(m, filters)) this.out.push(`dropped ${formatMessage(m)}`);
          else kept.push(m);
        }
        this.queue = kept;
        break;
      }
      case 'duplicate': {
        const filters = parseFilters(args);
        const copies = this.queue.filter((m) => matches(m, filters));
        for (const m of copies) this.out.push(`duplicated ${formatMessage(m)}`);
        this.queue.push(...copies);
        break;
      }
      case 'stabilize': {
        const max = args[0] === undefined ? MAX_STABILIZE_ROUNDS : Number(args[0]);
        let rounds = 0;
        while (this.queue.length > 0 && rounds < max) {
          this.deliverRound(parseFilters([]));
          rounds++;
        }
        if (this.queue.length > 0) this.out.push(`(${this.queue.length} messages still queued after ${rounds} rounds)`);
        break;
      }
      case 'partition':
        this.cmdPartition(args);
        break;
      case 'heal':
        this.cut.clear();
        this.out.push('healed');
        break;
      case 'crash':
        for (const id of args) {
          this.get(id).node = undefined;
          const before = this.queue.length;
          this.queue = this.queue.filter((m) => m.to !== id);
          this.out.push(`${id} crashed (${before - this.queue.length} queued messages to it lost)`);
        }
        break;
      case 'restart':
        for (const id of args) this.start(this.get(id));
        break;
      case 'compact': {
        const [id, indexText] = args as [string, string];
        const n = this.get(id);
        const index = Number(indexText);
        const snapshot = n.storage.createSnapshot(index, n.applied.filter(([i]) => i <= index));
        n.storage.compact(index);
        this.out.push(`${id} snapshot ${snapshot.meta.index}/${snapshot.meta.term}, log compacted up to ${index}`);
        break;
      }
      case 'report-snapshot': {
        const [from, to, outcome] = args as [string, string, string];
        this.live(from).reportSnapshot(to, outcome === 'ok');
        this.out.push(`${from} snapshot to ${to} reported ${outcome === 'ok' ? 'delivered' : 'failed'}`);
        this.drain(from);
        break;
      }
      case 'peer-down': {
        const [id, peer] = args as [string, string];
        const followed = this.live(id).peerDown(peer);
        this.out.push(`${id} told ${peer} is down${followed ? ': its leader, lease ended' : ' (not its leader)'}`);
        this.drain(id);
        break;
      }
      case 'wake':
        for (const id of args) {
          this.live(id).wake();
          this.drain(id);
        }
        break;
      case 'status':
        for (const id of args.length > 0 ? args : this.order) this.out.push(this.describe(id));
        break;
      case 'queue':
        for (const m of this.queue) this.out.push(formatMessage(m));
        if (this.queue.length === 0) this.out.push('(empty)');
        break;
      default:
        throw new Error(`unknown command: ${line}`);
    }
    return this.out.join('\n');
  }

  private get(id: string): ScriptNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`unknown node ${id}`);
    return n;
  }

  private live(id: string): RaftNode<Value, SnapshotData> {
    const node = this.get(id).node;
    if (node === undefined) throw new Error(`node ${id} is down`);
    return node;
  }

  private cmdCluster(args: string[]): void {
    const ids: string[] = [];
    const config: RaftConfigOptions = {};
    for (const arg of args) {
      const [key, value] = arg.split('=') as [string, string | undefined];
      if (value === undefined) ids.push(key);
      else if (key === 'prevote') config.preVote = value === 'true';
      else if (key === 'checkquorum') config.checkQuorum = value === 'true';
      else if (key === 'quiesce') config.quiesce = value === 'true';
      else if (key === 'maxappend') config.maxEntriesPerAppend = Number(value);
      else if (key === 'election') config.electionTicks = Number(value);
      else if (key === 'heartbeat') config.heartbeatTicks = Number(value);
      else if (key === 'jitter') {
        for (const pair of value.split(',')) {
          const [id, ticks] = pair.split(':') as [string, string];
          this.jitter.set(id, Number(ticks));
        }
      }
      else throw new Error(`unknown cluster option ${arg}`);
    }
    this.config = config;
    this.bootstrap = ids;
    for (const id of ids) this.addNode(id, new MemoryStorage<Value, SnapshotData>(ids));
  }

  private addNode(id: NodeId, storage: MemoryStorage<Value, SnapshotData>): void {
    if (this.nodes.has(id)) throw new Error(`node ${id} exists`);
    const n: ScriptNode = { id, storage, node: undefined, applied: [], shown: '', quiesced: false };
    this.nodes.set(id, n);
    this.order.push(id);
    this.start(n);
  }

  private start(n: ScriptNode): void {
    // `joining`: a node added later, or removed, may be outside the configuration it restarts with.
    n.node = new RaftNode<Value, SnapshotData>(
      { id: n.id, storage: n.storage, random: fixedRandom(this.jitter.get(n.id) ?? 0), config: this.config, joining: true },
      this.knobs,
    );
    // The in-memory state machine restarts from the stored snapshot.
    n.applied = [...(n.storage.snapshot()?.data ?? [])];
    n.shown = `${n.node.role} ${n.node.leader ?? '-'}`;
    n.quiesced = false;
    const hs = n.storage.getHardState();
    this.out.push(`${n.id} started: ${formatHardState(hs)} log=${this.logText(n)}`);
  }

  private cmdTick(args: string[]): void {
    const ids = args.filter((a) => !/^\d+$/.test(a));
    const countText = args.find((a) => /^\d+$/.test(a));
    const count = countText === undefined ? 1 : Number(countText);
    for (let i = 0; i < count; i++) {
      for (const id of ids) {
        this.live(id).tick();
        this.drain(id);
      }
    }
  }

  private cmdPropose(args: string[]): void {
    const [id, ...values] = args as [string, ...string[]];
    const node = this.live(id);
    const result = values.length === 1 ? node.propose(values[0] as string) : node.proposeBatch(values);
    if (result.ok) {
      this.out.push(`${id} proposed ${values.join(' ')} at ${result.firstIndex}..${result.lastIndex} term ${result.term}`);
    } else {
      this.out.push(`${id} refused: ${result.reason} (leader ${result.leader ?? '-'})`);
    }
    this.drain(id);
  }

  private cmdPartition(args: string[]): void {
    const slash = args.indexOf('/');
    const left = args.slice(0, slash);
    const right = args.slice(slash + 1);
    for (const a of left) {
      for (const b of right) {
        this.cut.add(`${a}>${b}`);
        this.cut.add(`${b}>${a}`);
      }
    }
    this.out.push(`partitioned ${left.join(' ')} / ${right.join(' ')}`);
  }

  private deliverRound(filters: Filters): void {
    const batch: Msg[] = [];
    const rest: Msg[] = [];
    for (const m of this.queue) {
      if (matches(m, filters) && (filters.count === undefined || batch.length < filters.count)) batch.push(m);
      else rest.push(m);
    }
    this.queue = rest;
    for (const m of batch) {
      const target = this.nodes.get(m.to);
      if (filters.drop.has(m.to)) {
        this.out.push(`dropped ${formatMessage(m)}`);
      } else if (this.cut.has(`${m.from}>${m.to}`)) {
        this.out.push(`cut ${formatMessage(m)}`);
      } else if (target?.node === undefined) {
        this.out.push(`lost ${formatMessage(m)} (${m.to} is down)`);
      } else {
        target.node.step(m);
        this.drain(m.to);
      }
    }
  }

  /** Runs the node's `Ready`s through the one runner, printing what each did. */
  private drain(id: string): void {
    const n = this.get(id);
    const node = n.node;
    if (node === undefined) return;
    const out = this.out;
    const io: ReadyHandlers<Value, SnapshotData> = {
      storage: n.storage,
      send: (messages) => {
        for (const m of messages) {
          out.push(`  ${formatMessage(m)}`);
          this.queue.push(m);
        }
      },
      restore: (snapshot) => {
        n.applied = [...snapshot.data];
        out.push(`  ${id} restored snapshot ${snapshot.meta.index}/${snapshot.meta.term}: sm=[${values(n.applied)}]`);
      },
      apply: (entries) => {
        for (const e of entries) if (e.type === 'normal') n.applied.push([e.index, e.data]);
        out.push(`  ${id} apply ${formatEntries(entries)}`);
      },
    };
    const shown = `${node.role} ${node.leader ?? '-'}`;
    if (shown !== n.shown) {
      n.shown = shown;
      out.push(`  ${id} is ${node.role} term=${node.term} leader=${node.leader ?? '-'}`);
    }
    if (node.quiesced !== n.quiesced) {
      n.quiesced = node.quiesced;
      out.push(`  ${id} ${node.quiesced ? 'quiesced' : 'woke'}`);
    }
    for (let round = 0; round < MAX_READY_ROUNDS; round++) {
      if (!runReadySync(node, { ...io, storage: wrapStorage(n, out, id) })) return;
    }
  }

  private logText(n: ScriptNode): string {
    const first = n.storage.firstIndex();
    const last = n.storage.lastIndex();
    const entries = last >= first ? n.storage.entries(first, last + 1, last - first + 1) : [];
    const base = first > 1 ? `(..${first - 1}/${n.storage.term(first - 1)}) ` : '';
    return `${base}${formatEntries(entries as Entry<Value>[])}`;
  }

  private describe(id: string): string {
    const n = this.get(id);
    const node = n.node;
    if (node === undefined) return `${id} down log=${this.logText(n)}`;
    const s = node.status();
    const all = [...s.progress, ...s.learnerProgress];
    const progress = all.length > 0 ? ` progress=${all.map((p) => `${p.id}:${p.match}/${p.next}${p.state === 'replicate' ? '' : `(${p.state})`}`).join(',')}` : '';
    // The configuration, once it changed (the bootstrap one is the cluster line).
    const current = { voters: s.voters, learners: s.learners };
    const conf = sameConf(current, { voters: this.bootstrap }) ? '' : ` conf=${s.confIndex}:{${formatConf(current)}}`;
    return (
      `${id} ${s.role} term=${s.term} vote=${s.vote ?? '-'} leader=${s.leader ?? '-'} commit=${s.commit} applied=${s.applied}` +
      ` log=${this.logText(n)} sm=[${values(n.applied)}]${progress}${conf}${node.quiesced ? ' quiesced' : ''}`
    );
  }
}

function values(applied: SnapshotData): string {
  return applied.map(([, v]) => v).join(' ');
}

/** Prints every persistence step the runner performs, then performs it. */
function wrapStorage(n: ScriptNode, out: string[], id: string): ReadyHandlers<Value, SnapshotData>['storage'] {
  return {
    applySnapshot: (snapshot) => {
      out.push(`  ${id} persist snapshot ${snapshot.meta.index}/${snapshot.meta.term}`);
      n.storage.applySnapshot(snapshot);
    },
    append: (entries) => {
      out.push(`  ${id} persist ${formatEntries(entries)}`);
      n.storage.append(entries);
    },
    setHardState: (hs) => {
      out.push(`  ${id} persist ${formatHardState(hs)}`);
      n.storage.setHardState(hs);
    },
    sync: () => n.storage.sync(),
  };
}

interface Filters {
  to: Set<string> | undefined;
  from: Set<string> | undefined;
  types: Set<string> | undefined;
  drop: Set<string>;
  count: number | undefined;
}

function parseFilters(args: string[]): Filters {
  const filters: Filters = { to: undefined, from: undefined, types: undefined, drop: new Set(), count: undefined };
  for (const arg of args) {
    const [key, value = ''] = arg.split('=') as [string, string | undefined];
    const set = new Set(value.split(',').filter((v) => v.length > 0));
    if (key === 'to') filters.to = set;
    else if (key === 'from') filters.from = set;
    else if (key === 'type') filters.types = set;
    else if (key === 'drop') filters.drop = set;
    else if (key === 'count') filters.count = Number(value);
    else throw new Error(`unknown filter ${arg}`);
  }
  return filters;
}

function matches(m: Msg, f: Filters): boolean {
  return (
    (f.to === undefined || f.to.has(m.to)) && (f.from === undefined || f.from.has(m.from)) && (f.types === undefined || f.types.has(m.type))
  );
}

/**
 * Runs a golden file: blocks of `# comments`, a command, `----`, and the
 * expected output, separated by blank lines. Returns the file as it should
 * be (same commands, actual outputs).
 */
export function runScript(text: string, knobs?: Readonly<RaftTestingKnobs>): string {
  const cluster = new ScenarioCluster(knobs);
  const blocks = text.replace(/\r\n/g, '\n').trim().split(/\n\s*\n/);
  const result: string[] = [];
  for (const block of blocks) {
    const lines = block.split('\n');
    const sep = lines.indexOf('----');
    const head = sep === -1 ? lines : lines.slice(0, sep);
    const comments = head.filter((l) => l.startsWith('#'));
    const commands = head.filter((l) => !l.startsWith('#') && l.trim().length > 0);
    if (commands.length !== 1) throw new Error(`each block needs exactly one command:\n${block}`);
    const command = commands[0] as string;
    const output = cluster.run(command);
    result.push([...comments, command, '----', output.length > 0 ? output : 'ok'].join('\n'));
  }
  return `${result.join('\n\n')}\n`;
}
