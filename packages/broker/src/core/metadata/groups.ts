/**
 * Consumer groups as a pure table inside the replicated metadata: per group,
 * its members, the owner of each partition its pattern matches (with the
 * epoch of that assignment) and its committed positions.
 *
 * Assignment is incremental and cooperative: the target owner of each
 * partition comes from {@link targetAssignment} (sticky, balanced within
 * one); a partition whose owner is not its target is first marked
 * `revoking`, and passes to its target only once the owner released it
 * (after finishing its in-flight handler and committing) or left the group.
 * Partitions that keep their owner are never touched, so their members never
 * pause. Every grant takes a new epoch from the group's counter; a commit is
 * accepted only from the partition's owner with the current epoch, so a
 * member that lost a partition (paused, cut off) cannot move its position.
 */
import { FIELD_LIMITS, durableNameProblem, topicMatches, topicProblem, patternProblem, type Cursor } from '@relaymq/sdk/protocol';
import { targetAssignment } from './group-assignor.js';

/** Bounds on the table, so hostile joins cannot grow broker memory without end. */
export const GROUP_LIMITS = Object.freeze({
  /** Groups with state (members or positions). */
  maxGroups: 10_000,
  /** Members of one group. */
  maxMembers: 1000,
  /** Partitions one group's pattern may cover. */
  maxPartitions: 10_000,
  /** Characters of a member id. */
  maxMemberIdLength: 128,
});

/** A position committed by a group member: `offset` is the next to deliver, `epoch` the assignment it was handled under. */
export interface FencedCursor extends Cursor {
  epoch: number;
}

/** One partition of a group, as the group sees it. */
export interface GroupPartition {
  topic: string;
  partition: number;
  /** The member delivering it now; absent while nobody owns it. */
  owner?: string;
  /** Epoch of the current grant (0 before the first). */
  epoch: number;
  /** The owner must release it: another member is its target. */
  revoking: boolean;
}

/** One group, as a snapshot holds it. */
export interface GroupRecord {
  group: string;
  /** The topics the group consumes; every member subscribes with this one pattern. */
  pattern: string;
  /** How long a member may go without a heartbeat before it loses its partitions. */
  sessionTimeoutMs: number;
  /** Member ids, sorted. */
  members: string[];
  /** The last epoch handed out. */
  epoch: number;
  partitions: GroupPartition[];
  /** Committed positions: next offset per partition. */
  positions: Cursor[];
}

/** A member joins (or confirms it is in) a group. */
export interface GroupJoinCommand {
  type: 'group-join';
  group: string;
  member: string;
  pattern: string;
  sessionTimeoutMs: number;
}

/** A member leaves cleanly, committing its last positions first. */
export interface GroupLeaveCommand {
  type: 'group-leave';
  group: string;
  member: string;
  positions: FencedCursor[];
}

/** The coordinator saw no heartbeat of a member within the session timeout. */
export interface GroupExpireCommand {
  type: 'group-expire';
  group: string;
  member: string;
}

/** A member's liveness; also tells a member whether the group still knows it. */
export interface GroupHeartbeatCommand {
  type: 'group-heartbeat';
  group: string;
  member: string;
}

/**
 * Positions of a member; with `release`, it gives up the listed partitions it
 * was asked to revoke (released even if the revocation was withdrawn since:
 * the member stopped on them, and they are granted again under a new epoch).
 */
export interface GroupCommitCommand {
  type: 'group-commit';
  group: string;
  member: string;
  positions: FencedCursor[];
  release: boolean;
}

export type GroupCommand = GroupJoinCommand | GroupLeaveCommand | GroupExpireCommand | GroupHeartbeatCommand | GroupCommitCommand;

/** What a group command did. */
export type GroupResult =
  | { kind: 'group'; known: boolean; fenced: Cursor[] }
  | { kind: 'group-refused'; code: 'INVALID_ARGUMENT' | 'LIMIT_EXCEEDED'; message: string };

const key = (topic: string, partition: number): string => `${partition}:${topic}`;

interface Group {
  pattern: string;
  sessionTimeoutMs: number;
  members: Set<string>;
  epoch: number;
  partitions: Map<string, GroupPartition>;
  positions: Map<string, Cursor>;
}

/** Where the groups learn which partitions exist. */
export type TopicPartitions = () => Iterable<{ topic: string; partitions: number }>;

export class ConsumerGroups {
  private readonly groups = new Map<string, Group>();

  constructor(private readonly topics: TopicPartitions) {}

  /** Names of the groups with state. */
  names(): string[] {
    return [...this.groups.keys()];
  }

  /** One group's state (a copy), or `undefined`. */
  get(group: string): GroupRecord | undefined {
    const g = this.groups.get(group);
    return g === undefined ? undefined : toRecord(group, g);
  }

  /** The partitions `member` owns in `group` (revoking ones included, flagged). */
  assignmentOf(group: string, member: string): GroupPartition[] {
    const g = this.groups.get(group);
    if (g === undefined) return [];
    return [...g.partitions.values()].filter((p) => p.owner === member).map((p) => ({ ...p }));
  }

  /** The committed position of one partition of a group. */
  position(group: string, topic: string, partition: number): number | undefined {
    return this.groups.get(group)?.positions.get(key(topic, partition))?.offset;
  }

  /** Every group as records (for a snapshot). */
  toRecords(): GroupRecord[] {
    return [...this.groups.entries()].map(([name, g]) => toRecord(name, g));
  }

  restore(records: readonly GroupRecord[]): void {
    this.groups.clear();
    for (const r of records) {
      this.groups.set(r.group, {
        pattern: r.pattern,
        sessionTimeoutMs: r.sessionTimeoutMs,
        members: new Set(r.members),
        epoch: r.epoch,
        partitions: new Map(r.partitions.map((p) => [key(p.topic, p.partition), { ...p }])),
        positions: new Map(r.positions.map((c) => [key(c.topic, c.partition), { ...c }])),
      });
    }
  }

  /** Applies a committed group command. Deterministic: same commands, same state, on every broker. */
  apply(command: GroupCommand): GroupResult {
    switch (command.type) {
      case 'group-join':
        return this.join(command);
      case 'group-heartbeat':
        return { kind: 'group', known: this.groups.get(command.group)?.members.has(command.member) === true, fenced: [] };
      case 'group-expire':
      case 'group-leave': {
        const g = this.groups.get(command.group);
        if (g === undefined || !g.members.has(command.member)) return { kind: 'group', known: false, fenced: command.type === 'group-leave' ? stripEpochs(command.positions) : [] };
        const fenced = command.type === 'group-leave' ? this.commit(g, command.member, command.positions) : [];
        g.members.delete(command.member);
        for (const p of g.partitions.values()) {
          if (p.owner !== command.member) continue;
          delete p.owner;
          p.revoking = false;
        }
        this.rebalance(g);
        return { kind: 'group', known: true, fenced };
      }
      case 'group-commit': {
        const g = this.groups.get(command.group);
        if (g === undefined || !g.members.has(command.member)) return { kind: 'group', known: false, fenced: stripEpochs(command.positions) };
        const fenced = this.commit(g, command.member, command.positions);
        if (command.release) {
          const refused = new Set(fenced.map((c) => key(c.topic, c.partition)));
          let released = false;
          for (const c of command.positions) {
            const p = g.partitions.get(key(c.topic, c.partition));
            // Released even when no longer revoking (a member left meanwhile and the target moved back): the member
            // stopped on it once asked, so keeping it as the member's would leave it handled by nobody. The
            // rebalance grants it again, under a new epoch (to this member too, if it is the target).
            if (p === undefined || refused.has(key(c.topic, c.partition))) continue;
            delete p.owner;
            p.revoking = false;
            released = true;
          }
          if (released) this.rebalance(g);
        }
        return { kind: 'group', known: true, fenced };
      }
    }
  }

  /** A topic appeared: groups whose pattern matches it spread its partitions. */
  topicCreated(topic: string): void {
    for (const g of this.groups.values()) if (g.members.size > 0 && topicMatches(g.pattern, topic)) this.rebalance(g);
  }

  /**
   * A topic was deleted: every group forgets its partitions and committed
   * positions (a topic created again under the name starts from offset 0),
   * and groups that had some spread what is left over their members.
   */
  topicDeleted(topic: string): void {
    for (const g of this.groups.values()) {
      let had = false;
      for (const [k, p] of g.partitions) {
        if (p.topic !== topic) continue;
        g.partitions.delete(k);
        had = true;
      }
      for (const [k, c] of g.positions) if (c.topic === topic) g.positions.delete(k);
      if (had && g.members.size > 0) this.rebalance(g);
    }
  }

  private join(command: GroupJoinCommand): GroupResult {
    let g = this.groups.get(command.group);
    if (g === undefined) {
      if (this.groups.size >= GROUP_LIMITS.maxGroups) return { kind: 'group-refused', code: 'LIMIT_EXCEEDED', message: `no room for group ${command.group}: ${GROUP_LIMITS.maxGroups} groups exist` };
      g = { pattern: command.pattern, sessionTimeoutMs: command.sessionTimeoutMs, members: new Set(), epoch: 0, partitions: new Map(), positions: new Map() };
      this.groups.set(command.group, g);
    }
    if (g.members.has(command.member)) return { kind: 'group', known: true, fenced: [] };
    if (g.members.size > 0 && g.pattern !== command.pattern) {
      return { kind: 'group-refused', code: 'INVALID_ARGUMENT', message: `group ${command.group} consumes ${g.pattern}; every member must subscribe with that pattern, not ${command.pattern}` };
    }
    if (g.members.size >= GROUP_LIMITS.maxMembers) return { kind: 'group-refused', code: 'LIMIT_EXCEEDED', message: `group ${command.group} has ${GROUP_LIMITS.maxMembers} members already` };
    // The first member of an empty group sets its pattern and session timeout.
    if (g.members.size === 0) {
      g.pattern = command.pattern;
      g.sessionTimeoutMs = command.sessionTimeoutMs;
    }
    g.members.add(command.member);
    this.rebalance(g);
    return { kind: 'group', known: true, fenced: [] };
  }

  /** Raises positions the member may commit (owner, current epoch); returns those refused. */
  private commit(g: Group, member: string, positions: readonly FencedCursor[]): Cursor[] {
    const fenced: Cursor[] = [];
    for (const c of positions) {
      const p = g.partitions.get(key(c.topic, c.partition));
      if (p === undefined || p.owner !== member || p.epoch !== c.epoch) {
        fenced.push({ topic: c.topic, partition: c.partition, offset: c.offset });
        continue;
      }
      const stored = g.positions.get(key(c.topic, c.partition));
      if (stored === undefined) g.positions.set(key(c.topic, c.partition), { topic: c.topic, partition: c.partition, offset: c.offset });
      else if (c.offset > stored.offset) stored.offset = c.offset;
    }
    return fenced;
  }

  /** Moves the group toward its target assignment: free partitions are granted, others marked for revocation. */
  private rebalance(g: Group): void {
    for (const { topic, partitions } of this.topics()) {
      if (!topicMatches(g.pattern, topic)) continue;
      for (let partition = 0; partition < partitions && g.partitions.size < GROUP_LIMITS.maxPartitions; partition++) {
        const k = key(topic, partition);
        if (!g.partitions.has(k)) g.partitions.set(k, { topic, partition, epoch: 0, revoking: false });
      }
    }
    const current = new Map([...g.partitions].map(([k, p]) => [k, p.owner]));
    const target = targetAssignment([...g.partitions.keys()], [...g.members], current);
    for (const [k, p] of g.partitions) {
      const wanted = target.get(k);
      if (p.owner === undefined) {
        if (wanted === undefined) continue;
        p.owner = wanted;
        p.epoch = ++g.epoch;
        p.revoking = false;
      } else {
        p.revoking = p.owner !== wanted;
      }
    }
  }
}

function stripEpochs(positions: readonly FencedCursor[]): Cursor[] {
  return positions.map((c) => ({ topic: c.topic, partition: c.partition, offset: c.offset }));
}

function toRecord(group: string, g: Group): GroupRecord {
  return {
    group,
    pattern: g.pattern,
    sessionTimeoutMs: g.sessionTimeoutMs,
    members: [...g.members].sort(),
    epoch: g.epoch,
    partitions: [...g.partitions.values()].map((p) => ({ ...p })),
    positions: [...g.positions.values()].map((c) => ({ ...c })),
  };
}

// ---- reading untrusted input (peers, snapshots) ---------------------------------------

const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isMember = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= GROUP_LIMITS.maxMemberIdLength;
const isGroupName = (v: unknown): v is string => typeof v === 'string' && durableNameProblem(v) === undefined;

function parseFencedCursors(value: unknown): FencedCursor[] | undefined {
  if (!Array.isArray(value) || value.length > FIELD_LIMITS.maxList) return undefined;
  const out: FencedCursor[] = [];
  for (const item of value as unknown[]) {
    if (typeof item !== 'object' || item === null) return undefined;
    const c = item as Record<string, unknown>;
    if (typeof c.topic !== 'string' || topicProblem(c.topic) !== undefined || !isUint(c.partition) || !isUint(c.offset) || !isUint(c.epoch)) return undefined;
    out.push({ topic: c.topic, partition: c.partition, offset: c.offset, epoch: c.epoch });
  }
  return out;
}

/** Reads an untrusted value as a {@link GroupCommand}, or `undefined` when it is not one. */
export function parseGroupCommand(value: unknown): GroupCommand | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const o = value as Record<string, unknown>;
  if (!isGroupName(o.group) || !isMember(o.member)) return undefined;
  const { group, member } = o;
  switch (o.type) {
    case 'group-join':
      if (typeof o.pattern !== 'string' || patternProblem(o.pattern) !== undefined || !isUint(o.sessionTimeoutMs)) return undefined;
      return { type: 'group-join', group, member, pattern: o.pattern, sessionTimeoutMs: o.sessionTimeoutMs };
    case 'group-heartbeat':
    case 'group-expire':
      return { type: o.type, group, member };
    case 'group-leave': {
      const positions = parseFencedCursors(o.positions);
      return positions === undefined ? undefined : { type: 'group-leave', group, member, positions };
    }
    case 'group-commit': {
      const positions = parseFencedCursors(o.positions);
      if (positions === undefined || typeof o.release !== 'boolean') return undefined;
      return { type: 'group-commit', group, member, positions, release: o.release };
    }
    default:
      return undefined;
  }
}

/** Reads untrusted group records (from a snapshot), or `undefined`. */
export function parseGroupRecords(value: unknown): GroupRecord[] | undefined {
  if (value === undefined) return [];
  if (!Array.isArray(value)) return undefined;
  for (const r of value as unknown[]) {
    const g = (typeof r === 'object' && r !== null ? r : {}) as Record<string, unknown>;
    if (!isGroupName(g.group) || typeof g.pattern !== 'string' || !isUint(g.sessionTimeoutMs) || !isUint(g.epoch)) return undefined;
    if (!Array.isArray(g.members) || !g.members.every(isMember) || !Array.isArray(g.partitions) || !Array.isArray(g.positions)) return undefined;
    for (const item of g.partitions as unknown[]) {
      const p = (typeof item === 'object' && item !== null ? item : {}) as Record<string, unknown>;
      if (typeof p.topic !== 'string' || !isUint(p.partition) || !isUint(p.epoch) || typeof p.revoking !== 'boolean') return undefined;
      if (p.owner !== undefined && !isMember(p.owner)) return undefined;
    }
    for (const item of g.positions as unknown[]) {
      const c = (typeof item === 'object' && item !== null ? item : {}) as Record<string, unknown>;
      if (typeof c.topic !== 'string' || !isUint(c.partition) || !isUint(c.offset)) return undefined;
    }
  }
  return value as GroupRecord[];
}

/** Reads an untrusted value (a result from the metadata leader) as a {@link GroupResult}, or `undefined`. */
export function parseGroupResult(value: unknown): GroupResult | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const o = value as Record<string, unknown>;
  if (o.kind === 'group-refused') {
    if ((o.code !== 'INVALID_ARGUMENT' && o.code !== 'LIMIT_EXCEEDED') || typeof o.message !== 'string') return undefined;
    return { kind: 'group-refused', code: o.code, message: o.message.slice(0, FIELD_LIMITS.maxString) };
  }
  if (o.kind !== 'group' || typeof o.known !== 'boolean' || !Array.isArray(o.fenced) || o.fenced.length > FIELD_LIMITS.maxList) return undefined;
  const fenced: Cursor[] = [];
  for (const item of o.fenced as unknown[]) {
    const c = (typeof item === 'object' && item !== null ? item : {}) as Record<string, unknown>;
    if (typeof c.topic !== 'string' || !isUint(c.partition) || !isUint(c.offset)) return undefined;
    fenced.push({ topic: c.topic, partition: c.partition, offset: c.offset });
  }
  return { kind: 'group', known: o.known, fenced };
}
