/**
 * Replica moves and draining brokers as replicated metadata: which partition
 * replicas are being moved (from one broker to another), and which brokers
 * are being emptied (decommissioned). Pure and deterministic, applied in the
 * metadata log's order on every broker, so a new metadata leader finds every
 * unfinished move and resumes it (engine/replica-moves.ts drives them).
 *
 * A move of `topic/partition` from `from` to `to`:
 *   1. `move-replica` records it and lists `to` among the partition's
 *      `learners`: `to` starts the partition's Raft group outside its
 *      configuration (joining) and waits to be added;
 *   2. the partition's leader adds `to` as a Raft learner, promotes it once
 *      caught up, hands leadership away when it is `from`, and removes `from`
 *      (single-server changes of the Raft core);
 *   3. `finish-move` puts `to` in `from`'s place in `replicas`: `from` stops
 *      the group and deletes its files.
 * `cancel-move` gives a move up before its Raft changes made `to` a voter.
 */

/** Where one partition lives (the metadata's assignment). */
export interface PartitionAssignment {
  /** Brokers holding a replica; the first is the preferred leader. */
  replicas: string[];
  /**
   * Brokers receiving a copy while a move is in progress: they host the
   * group (as a Raft learner, then a voter) but are not replicas yet.
   * Absent when no move is in progress.
   */
  learners?: string[];
}

/** One replica move in progress. */
export interface ReplicaMove {
  topic: string;
  partition: number;
  from: string;
  to: string;
  /** When the proposer started it (its clock, ms since the epoch): for operators. */
  startedAtMs: number;
}

/** Starts moving the replica of `topic/partition` on `from` to `to`. */
export interface MoveReplicaCommand {
  type: 'move-replica';
  topic: string;
  partition: number;
  from: string;
  to: string;
  atMs: number;
}

/** The move's Raft changes are done (`to` votes, `from` is out): `to` takes `from`'s place. */
export interface FinishMoveCommand {
  type: 'finish-move';
  topic: string;
  partition: number;
  from: string;
  to: string;
}

/** Gives up the move of `topic/partition` (its target never became a voter). */
export interface CancelMoveCommand {
  type: 'cancel-move';
  topic: string;
  partition: number;
  to: string;
}

/**
 * Marks `broker` as draining (every replica is moved off it, then it leaves
 * the metadata group; new topics place nothing on it) or no longer draining
 * (an operator adds it back).
 */
export interface DrainBrokerCommand {
  type: 'drain-broker';
  broker: string;
  draining: boolean;
}

/**
 * Lets `broker` (out of the metadata group, holding no replica: replaced or
 * decommissioned) come back on an empty data directory (`forgotten`): the
 * brokers accept whatever incarnation it presents next, until an operator
 * admits it again (`relaymq cluster add`, which records it `forgotten:
 * false` with the `incarnation` it linked with: every broker then takes that
 * one as the broker's, whichever it met, and refuses any other). While
 * forgotten it is not admitted by itself.
 */
export interface ForgetBrokerCommand {
  type: 'forget-broker';
  broker: string;
  forgotten: boolean;
  /** With `forgotten: false`: the incarnation admitted. */
  incarnation?: string;
}

/** Asks for replicas to be spread evenly (`on`), or records that they are (`off`). */
export interface RebalanceCommand {
  type: 'rebalance';
  on: boolean;
}

/** Makes `leader` the first replica of `topic/partition` (its preferred leader); the others keep their order. */
export interface PreferReplicaCommand {
  type: 'prefer-replica';
  topic: string;
  partition: number;
  leader: string;
}

export type MoveCommand = MoveReplicaCommand | FinishMoveCommand | CancelMoveCommand | DrainBrokerCommand | ForgetBrokerCommand | RebalanceCommand | PreferReplicaCommand;

/** What applying a move command produced. */
export type MoveResult =
  | { kind: 'move-started'; move: ReplicaMove }
  | { kind: 'move-finished'; move: ReplicaMove }
  | { kind: 'move-cancelled'; move: ReplicaMove }
  | { kind: 'move-refused'; reason: string }
  | { kind: 'draining'; brokers: string[] }
  | { kind: 'forgotten'; brokers: string[]; admitted?: { broker: string; incarnation: string } }
  | { kind: 'rebalance'; on: boolean }
  | { kind: 'preferred'; topic: string; partition: number; replicas: string[] };

/** The part of a topic the moves read and change. */
export interface MovableTopic {
  topic: string;
  partitions: PartitionAssignment[];
}

/** Moves and draining brokers, as a snapshot holds them. */
export interface MovesRecord {
  moves: ReplicaMove[];
  draining: string[];
  /** A rebalance was asked for and is not done (absent: false). */
  rebalance?: boolean;
  /** Brokers an operator let come back on an empty data directory, not admitted again yet (absent: none). */
  forgotten?: string[];
  /** The incarnation each broker that came back that way was admitted with (absent: none). */
  admitted?: Record<string, string>;
}

const moveKey = (topic: string, partition: number): string => `${topic}\u0000${partition}`;

/** The moves in progress and the draining brokers; changed only by {@link apply}. */
export class ReplicaMoves {
  private readonly moves = new Map<string, ReplicaMove>();
  private readonly drainingSet = new Set<string>();
  private readonly forgottenSet = new Set<string>();
  private readonly admittedIncarnations = new Map<string, string>();
  private rebalanceAsked = false;

  /** @param topicOf - the topic's assignment, to read and change. */
  constructor(private readonly topicOf: (topic: string) => MovableTopic | undefined) {}

  /** Every move in progress, in the order they started. */
  all(): ReplicaMove[] {
    return [...this.moves.values()];
  }

  /** The move of a partition in progress, if any. */
  of(topic: string, partition: number): ReplicaMove | undefined {
    return this.moves.get(moveKey(topic, partition));
  }

  /** Brokers being emptied, sorted. */
  get draining(): string[] {
    return [...this.drainingSet].sort();
  }

  isDraining(broker: string): boolean {
    return this.drainingSet.has(broker);
  }

  /** Brokers whose next incarnation is accepted (an operator forgot the old one), sorted. */
  get forgotten(): string[] {
    return [...this.forgottenSet].sort();
  }

  isForgotten(broker: string): boolean {
    return this.forgottenSet.has(broker);
  }

  /** The incarnation each broker that came back on an empty data directory was admitted with. */
  get admitted(): ReadonlyMap<string, string> {
    return this.admittedIncarnations;
  }

  /** Whether a rebalance was asked for and is not done. */
  get rebalancing(): boolean {
    return this.rebalanceAsked;
  }

  apply(command: MoveCommand): MoveResult {
    switch (command.type) {
      case 'move-replica':
        return this.start(command);
      case 'finish-move':
        return this.finish(command);
      case 'cancel-move':
        return this.cancel(command);
      case 'drain-broker':
        if (command.draining) this.drainingSet.add(command.broker);
        else this.drainingSet.delete(command.broker);
        return { kind: 'draining', brokers: this.draining };
      case 'forget-broker': {
        if (command.forgotten) {
          this.forgottenSet.add(command.broker);
          this.admittedIncarnations.delete(command.broker);
          return { kind: 'forgotten', brokers: this.forgotten };
        }
        this.forgottenSet.delete(command.broker);
        if (command.incarnation === undefined) return { kind: 'forgotten', brokers: this.forgotten };
        this.admittedIncarnations.set(command.broker, command.incarnation);
        return { kind: 'forgotten', brokers: this.forgotten, admitted: { broker: command.broker, incarnation: command.incarnation } };
      }
      case 'rebalance':
        this.rebalanceAsked = command.on;
        return { kind: 'rebalance', on: command.on };
      case 'prefer-replica': {
        const assignment = this.topicOf(command.topic)?.partitions[command.partition];
        if (assignment === undefined || !assignment.replicas.includes(command.leader)) {
          return { kind: 'move-refused', reason: `${command.leader} holds no replica of ${command.topic}/${command.partition}` };
        }
        assignment.replicas = [command.leader, ...assignment.replicas.filter((id) => id !== command.leader)];
        return { kind: 'preferred', topic: command.topic, partition: command.partition, replicas: [...assignment.replicas] };
      }
    }
  }

  /** The state for a snapshot (a copy). */
  toRecord(): MovesRecord {
    const record: MovesRecord = { moves: this.all().map((m) => ({ ...m })), draining: this.draining };
    if (this.rebalanceAsked) record.rebalance = true;
    if (this.forgottenSet.size > 0) record.forgotten = this.forgotten;
    if (this.admittedIncarnations.size > 0) record.admitted = Object.fromEntries([...this.admittedIncarnations].sort(([a], [b]) => (a < b ? -1 : 1)));
    return record;
  }

  /** Replaces the state with a snapshot's (assignments' `learners` come with the topics). */
  restore(record: Partial<MovesRecord> | undefined): void {
    this.moves.clear();
    this.drainingSet.clear();
    this.forgottenSet.clear();
    for (const broker of record?.forgotten ?? []) this.forgottenSet.add(broker);
    this.admittedIncarnations.clear();
    for (const [broker, incarnation] of Object.entries(record?.admitted ?? {})) this.admittedIncarnations.set(broker, incarnation);
    for (const move of record?.moves ?? []) this.moves.set(moveKey(move.topic, move.partition), { ...move });
    for (const broker of record?.draining ?? []) this.drainingSet.add(broker);
    this.rebalanceAsked = record?.rebalance === true;
  }

  /** A topic was deleted or is unknown: its moves are forgotten (nothing to finish). */
  forgetTopic(topic: string): void {
    for (const [key, move] of this.moves) if (move.topic === topic) this.moves.delete(key);
  }

  private start(command: MoveReplicaCommand): MoveResult {
    const { topic, partition, from, to } = command;
    const assignment = this.topicOf(topic)?.partitions[partition];
    if (assignment === undefined) return { kind: 'move-refused', reason: `no partition ${topic}/${partition}` };
    const known = this.moves.get(moveKey(topic, partition));
    if (known !== undefined) return { kind: 'move-refused', reason: `${topic}/${partition} is moving already (${known.from} to ${known.to})` };
    if (!assignment.replicas.includes(from)) return { kind: 'move-refused', reason: `${from} holds no replica of ${topic}/${partition}` };
    if (assignment.replicas.includes(to)) return { kind: 'move-refused', reason: `${to} holds a replica of ${topic}/${partition} already` };
    if (from === to) return { kind: 'move-refused', reason: 'a replica cannot move to the broker it is on' };
    const move: ReplicaMove = { topic, partition, from, to, startedAtMs: command.atMs };
    this.moves.set(moveKey(topic, partition), move);
    assignment.learners = [to];
    return { kind: 'move-started', move: { ...move } };
  }

  private finish(command: FinishMoveCommand): MoveResult {
    const { topic, partition, from, to } = command;
    const key = moveKey(topic, partition);
    const move = this.moves.get(key);
    if (move === undefined || move.from !== from || move.to !== to) return { kind: 'move-refused', reason: `no move of ${topic}/${partition} from ${from} to ${to}` };
    const assignment = this.topicOf(topic)?.partitions[partition];
    this.moves.delete(key);
    if (assignment !== undefined) {
      // `to` takes `from`'s place, so the order of preferred leaders is kept.
      assignment.replicas = assignment.replicas.map((id) => (id === from ? to : id));
      delete assignment.learners;
    }
    return { kind: 'move-finished', move };
  }

  private cancel(command: CancelMoveCommand): MoveResult {
    const { topic, partition, to } = command;
    const key = moveKey(topic, partition);
    const move = this.moves.get(key);
    if (move === undefined || move.to !== to) return { kind: 'move-refused', reason: `no move of ${topic}/${partition} to ${to}` };
    this.moves.delete(key);
    const assignment = this.topicOf(topic)?.partitions[partition];
    if (assignment !== undefined) delete assignment.learners;
    return { kind: 'move-cancelled', move };
  }
}

/** What the planner of a decommission reads. */
export interface DrainView {
  topics: readonly MovableTopic[];
  moves: readonly ReplicaMove[];
  draining: readonly string[];
  /** Brokers replicas may move to (the metadata group's members); draining ones are left out here. */
  members: readonly string[];
  /** Moves in progress allowed at once, in all. */
  maxMoves: number;
}

/** A move to start: the replica of `topic/partition` on `from` goes to `to`. */
export type PlannedMove = Omit<ReplicaMove, 'startedAtMs'>;

/**
 * The next moves that empty draining brokers, up to `maxMoves` in progress.
 * Each replica goes to the member holding the fewest replicas (moves in
 * progress counted at their target) among those without one of that
 * partition; ties go to the smaller id, so every metadata leader plans alike.
 * A partition with no such member is left (nowhere to go).
 */
export function planDrainMoves(view: DrainView): PlannedMove[] {
  const draining = new Set(view.draining);
  const targets = [...view.members].filter((id) => !draining.has(id)).sort();
  const room = view.maxMoves - view.moves.length;
  if (room <= 0 || draining.size === 0 || targets.length === 0) return [];
  const load = new Map(targets.map((id) => [id, 0]));
  for (const topic of view.topics) {
    for (const assignment of topic.partitions) {
      for (const id of [...assignment.replicas, ...(assignment.learners ?? [])]) if (load.has(id)) load.set(id, (load.get(id) as number) + 1);
    }
  }
  const moving = new Set(view.moves.map((m) => moveKey(m.topic, m.partition)));
  const planned: PlannedMove[] = [];
  for (const topic of [...view.topics].sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : 0))) {
    for (const [partition, assignment] of topic.partitions.entries()) {
      if (planned.length >= room) return planned;
      if (moving.has(moveKey(topic.topic, partition))) continue;
      const from = assignment.replicas.find((id) => draining.has(id));
      if (from === undefined) continue;
      let to: string | undefined;
      for (const id of targets) {
        if (assignment.replicas.includes(id)) continue;
        if (to === undefined || (load.get(id) as number) < (load.get(to) as number)) to = id;
      }
      if (to === undefined) continue;
      load.set(to, (load.get(to) as number) + 1);
      planned.push({ topic: topic.topic, partition, from, to });
    }
  }
  return planned;
}

/** What the planner of a rebalance reads. */
export interface BalanceView {
  topics: readonly MovableTopic[];
  /** Brokers replicas may be spread over (members of the metadata group, linked, not draining). */
  members: readonly string[];
  maxMoves: number;
}

/**
 * Moves that even out replica counts over `members`, at most `maxMoves`:
 * each takes a replica from the broker holding the most to the one holding
 * the fewest that has none of that partition, while they differ by more than
 * one. Planned only while no move is in progress (the engine waits for a
 * wave to finish), so counts are read as they are. Deterministic: ties go to
 * the smaller id, partitions in topic then partition order.
 */
export function planRebalanceMoves(view: BalanceView): PlannedMove[] {
  const members = [...view.members].sort();
  if (members.length < 2) return [];
  const count = new Map(members.map((id) => [id, 0]));
  for (const topic of view.topics) {
    for (const assignment of topic.partitions) for (const id of assignment.replicas) if (count.has(id)) count.set(id, (count.get(id) as number) + 1);
  }
  const topics = [...view.topics].sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : 0));
  const taken = new Set<string>();
  const planned: PlannedMove[] = [];
  while (planned.length < view.maxMoves) {
    const byLoad = [...members].sort((a, b) => (count.get(a) as number) - (count.get(b) as number) || (a < b ? -1 : 1));
    const most = byLoad[byLoad.length - 1] as string;
    let found: PlannedMove | undefined;
    for (const least of byLoad) {
      if ((count.get(most) as number) - (count.get(least) as number) <= 1) break;
      for (const topic of topics) {
        const partition = topic.partitions.findIndex(
          (a, p) => !taken.has(moveKey(topic.topic, p)) && a.replicas.includes(most) && !a.replicas.includes(least) && (a.learners ?? []).length === 0,
        );
        if (partition >= 0) {
          found = { topic: topic.topic, partition, from: most, to: least };
          break;
        }
      }
      if (found !== undefined) break;
    }
    if (found === undefined) return planned;
    taken.add(moveKey(found.topic, found.partition));
    count.set(found.from, (count.get(found.from) as number) - 1);
    count.set(found.to, (count.get(found.to) as number) + 1);
    planned.push(found);
  }
  return planned;
}

/** A partition whose preferred leader (first replica) should become `leader`. */
export interface PlannedPreference {
  topic: string;
  partition: number;
  leader: string;
}

/**
 * Changes of preferred leader (a partition's first replica) that even out
 * how many partitions each member is preferred for: while the member
 * preferred most often and the one preferred least differ by more than one,
 * a partition of the first that the second holds a replica of gets it
 * first. Leaderships follow (a rebalance asks each leader to hand over to
 * its preferred one). Deterministic, as {@link planRebalanceMoves}.
 */
export function planPreferredLeaders(view: { topics: readonly MovableTopic[]; members: readonly string[] }, limit = 64): PlannedPreference[] {
  const members = [...view.members].sort();
  if (members.length < 2) return [];
  const count = new Map(members.map((id) => [id, 0]));
  for (const topic of view.topics) for (const a of topic.partitions) if (a.replicas[0] !== undefined && count.has(a.replicas[0])) count.set(a.replicas[0], (count.get(a.replicas[0]) as number) + 1);
  const topics = [...view.topics].sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : 0));
  const changed = new Set<string>();
  const planned: PlannedPreference[] = [];
  while (planned.length < limit) {
    const byCount = [...members].sort((a, b) => (count.get(a) as number) - (count.get(b) as number) || (a < b ? -1 : 1));
    const most = byCount[byCount.length - 1] as string;
    let found: PlannedPreference | undefined;
    for (const least of byCount) {
      if ((count.get(most) as number) - (count.get(least) as number) <= 1) break;
      for (const topic of topics) {
        const partition = topic.partitions.findIndex((a, p) => !changed.has(moveKey(topic.topic, p)) && a.replicas[0] === most && a.replicas.includes(least));
        if (partition >= 0) {
          found = { topic: topic.topic, partition, leader: least };
          break;
        }
      }
      if (found !== undefined) break;
    }
    if (found === undefined) return planned;
    changed.add(moveKey(found.topic, found.partition));
    count.set(most, (count.get(most) as number) - 1);
    count.set(found.leader, (count.get(found.leader) as number) + 1);
    planned.push(found);
  }
  return planned;
}

/** Replicas (and move targets) still on `broker`: what keeps it from leaving the metadata group. */
export function replicasOn(broker: string, topics: readonly MovableTopic[]): string[] {
  return topics.flatMap((t) =>
    t.partitions.flatMap((a, partition) => (a.replicas.includes(broker) || (a.learners ?? []).includes(broker) ? [`${t.topic}/${partition}`] : [])),
  );
}

const isId = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 64;
const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isIncarnation = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 128;
const isTopic = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 255;

/** A move command from the metadata log (untrusted), or `undefined` when it is none or malformed. */
export function parseMoveCommand(value: unknown): MoveCommand | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const o = value as Record<string, unknown>;
  if (o.type === 'drain-broker') return isId(o.broker) && typeof o.draining === 'boolean' ? { type: 'drain-broker', broker: o.broker, draining: o.draining } : undefined;
  if (o.type === 'forget-broker') {
    if (!isId(o.broker) || typeof o.forgotten !== 'boolean') return undefined;
    if (o.incarnation === undefined) return { type: 'forget-broker', broker: o.broker, forgotten: o.forgotten };
    return isIncarnation(o.incarnation) && !o.forgotten ? { type: 'forget-broker', broker: o.broker, forgotten: false, incarnation: o.incarnation } : undefined;
  }
  if (o.type === 'rebalance') return typeof o.on === 'boolean' ? { type: 'rebalance', on: o.on } : undefined;
  if (o.type === 'prefer-replica') return isTopic(o.topic) && isUint(o.partition) && isId(o.leader) ? { type: 'prefer-replica', topic: o.topic, partition: o.partition, leader: o.leader } : undefined;
  if (!isTopic(o.topic) || !isUint(o.partition)) return undefined;
  const { topic, partition } = o;
  if (o.type === 'cancel-move') return isId(o.to) ? { type: 'cancel-move', topic, partition, to: o.to } : undefined;
  if (!isId(o.from) || !isId(o.to)) return undefined;
  if (o.type === 'finish-move') return { type: 'finish-move', topic, partition, from: o.from, to: o.to };
  if (o.type === 'move-replica' && isUint(o.atMs)) return { type: 'move-replica', topic, partition, from: o.from, to: o.to, atMs: o.atMs };
  return undefined;
}

/** Reads a snapshot's moves (untrusted); `undefined` when malformed. Absent fields are an empty record. */
export function parseMovesRecord(moves: unknown, draining: unknown, rebalance?: unknown, forgotten?: unknown, admitted?: unknown): MovesRecord | undefined {
  if (moves !== undefined && !Array.isArray(moves)) return undefined;
  if (forgotten !== undefined && (!Array.isArray(forgotten) || !forgotten.every(isId))) return undefined;
  if (admitted !== undefined && (typeof admitted !== 'object' || admitted === null || Array.isArray(admitted))) return undefined;
  if (admitted !== undefined && !Object.entries(admitted).every(([b, i]) => isId(b) && isIncarnation(i))) return undefined;
  if (rebalance !== undefined && typeof rebalance !== 'boolean') return undefined;
  if (draining !== undefined && (!Array.isArray(draining) || !draining.every(isId))) return undefined;
  const parsed: ReplicaMove[] = [];
  for (const m of (moves ?? []) as unknown[]) {
    const o = (typeof m === 'object' && m !== null ? m : {}) as Record<string, unknown>;
    if (!isTopic(o.topic) || !isUint(o.partition) || !isId(o.from) || !isId(o.to) || !isUint(o.startedAtMs)) return undefined;
    parsed.push({ topic: o.topic, partition: o.partition, from: o.from, to: o.to, startedAtMs: o.startedAtMs });
  }
  const record: MovesRecord = { moves: parsed, draining: (draining ?? []) as string[] };
  if (rebalance === true) record.rebalance = true;
  if (forgotten !== undefined && (forgotten as string[]).length > 0) record.forgotten = [...(forgotten as string[])];
  if (admitted !== undefined && Object.keys(admitted).length > 0) record.admitted = { ...(admitted as Record<string, string>) };
  return record;
}
