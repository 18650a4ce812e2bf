/**
 * Raft's safety properties, checked from the outside as the simulation runs.
 * The checker never looks inside the core: it sees what nodes persist, commit,
 * apply and acknowledge, and what role they report, and it keeps its own
 * global history to compare against. Every check is O(1) per observed entry,
 * except leader completeness (O(committed entries still in the new leader's
 * log) per new leader).
 *
 * - election safety: at most one leader per term;
 * - log matching: an (index, term) pair identifies one entry and one
 *   predecessor term, everywhere and forever;
 * - leader completeness: a new leader holds every entry committed so far;
 * - state machine safety: every node applies the same entry at each index,
 *   in order, without gaps, and restores only snapshots of that history;
 * - no acknowledged proposal lost: an acknowledged value stays at its index
 *   (and, in the liveness phase, reaches every node); one acknowledged with
 *   ack level `all` is durable on every node when it is acknowledged;
 * - no value applied twice, no value at two indexes;
 * - configuration agrees with the log ({@link ConfigChecker}): the
 *   configuration a node uses is the last one its log holds (or its
 *   snapshot's), entry for entry.
 */
import { formatConf, sameConf } from '../../src/core/raft/membership.js';
import { hash32 } from '../../src/core/raft/random.js';
import type { ConfState, Entry, NodeId } from '../../src/core/raft/types.js';

export class SafetyViolation extends Error {
  override readonly name = 'SafetyViolation';
  constructor(
    readonly property: string,
    message: string,
  ) {
    super(`${property}: ${message}`);
  }
}

/** Entry payload in the simulator: a unique proposal number (from 1). A no-op is recorded as -1. */
export type Value = number;
const NOOP = -1;

/**
 * What the checker records for an entry: its proposal number, -1 for a
 * no-op, and for a configuration entry a negative number below -1 derived
 * from the change and the configuration (so log matching compares them too).
 */
export function entryValue(entry: Entry<Value>): Value {
  switch (entry.type) {
    case 'normal':
      return entry.data;
    case 'noop':
      return NOOP;
    case 'conf':
      return -2 - (hash32(`${entry.change.type} ${entry.change.node} ${formatConf(entry.conf)}`) % 0x40000000);
  }
}

/** What the checker needs to read from a node. */
export interface NodeView {
  readonly id: NodeId;
  termAt(index: number): number | undefined;
  readonly firstIndex: number;
  readonly lastIndex: number;
}

/** 32-bit mix of a running digest with the next applied value. */
export function mixDigest(digest: number, value: Value): number {
  let h = (digest ^ Math.imul(value + 0x9e3779b9, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0;
  return (h ^ (h >>> 13)) >>> 0;
}

const TERM_FACTOR = 1 << 20;

interface NodeLife {
  /** Last index applied in this life. */
  applied: number;
  digest: number;
  /** Highest commit index observed in this life. */
  commit: number;
  term: number;
}

export class SafetyChecker {
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** (index·2^20 + term) → value of that entry (log matching). */
  private readonly entryValue = new Map<number, Value>();
  /** (index·2^20 + term) → term of the entry before it. */
  private readonly entryPrevTerm = new Map<number, number>();
  /** Term of the entry committed at each index, as first observed (indexes inside installed snapshots are skipped). */
  private readonly committedTerm = new Map<number, number>();
  /**
   * Lowest term of a leader that marked each index committed: the term the
   * entry was "committed in", as in the TLA+ specification. Leaders of later
   * terms must hold it; a stale leader of an earlier term need not.
   */
  private readonly committedInTerm = new Map<number, number>();
  private maxCommitted = 0;
  /** Value applied at each index (the one history), and the digest of the history up to it. */
  private readonly historyValue: Value[] = [NOOP];
  private readonly historyDigest: number[] = [0];
  /** Index at which each value was applied. */
  private readonly valueIndex = new Map<Value, number>();
  /** Acknowledged proposals: value → index. */
  readonly acked = new Map<Value, number>();
  /** How many of them were acknowledged with ack level `all`. */
  ackedAll = 0;
  maxAckedIndex = 0;
  private readonly lives = new Map<NodeId, NodeLife>();
  /** Counters for the summary. */
  leadersSeen = 0;
  entriesApplied = 0;
  /** Configuration entries in the history. */
  confEntriesApplied = 0;

  get committedIndex(): number {
    return this.maxCommitted;
  }

  private fail(property: string, message: string): never {
    throw new SafetyViolation(property, message);
  }

  /** A node (re)starts, its state machine restored from a snapshot at `index` with `digest` (0/0 if none). */
  onStart(node: NodeId, snapshotIndex: number, digest: number, term: number): void {
    this.checkSnapshot(node, snapshotIndex, digest);
    this.lives.set(node, { applied: snapshotIndex, digest, commit: snapshotIndex, term });
  }

  private life(node: NodeId): NodeLife {
    const life = this.lives.get(node);
    if (life === undefined) throw new Error(`checker: ${node} never started`);
    return life;
  }

  private checkSnapshot(node: NodeId, index: number, digest: number): void {
    if (index === 0) return;
    const expected = this.historyDigest[index];
    if (expected === undefined) {
      this.fail('state machine safety', `${node} holds a snapshot at ${index}, beyond anything ever applied (${this.historyDigest.length - 1})`);
    }
    if (expected !== digest) this.fail('state machine safety', `${node}'s snapshot at ${index} differs from the history`);
  }

  /** The node reports its current term and role. */
  onRole(node: NodeId, term: number, isLeader: boolean, view: NodeView): void {
    const life = this.life(node);
    if (term < life.term) this.fail('term monotonicity', `${node}'s term went back from ${life.term} to ${term}`);
    life.term = term;
    if (!isLeader) return;
    const other = this.leaderOfTerm.get(term);
    if (other === node) return;
    if (other !== undefined) this.fail('election safety', `${node} and ${other} are both leaders of term ${term}`);
    this.leaderOfTerm.set(term, node);
    this.leadersSeen++;
    // Leader completeness: every entry committed in an earlier term is in the new leader's log.
    for (let i = Math.max(1, view.firstIndex); i <= this.maxCommitted; i++) {
      const committedIn = this.committedInTerm.get(i);
      if (committedIn === undefined || committedIn >= term) continue;
      const known = this.committedTerm.get(i) as number;
      const t = view.termAt(i);
      if (t !== known) {
        this.fail(
          'leader completeness',
          `${node}, leader of term ${term}, has ${t === undefined ? 'no entry' : `term ${t}`} at index ${i}, committed in term ${committedIn} with term ${known}`,
        );
      }
    }
  }

  /** The node is about to persist `entries`; its log already holds them. */
  onPersist(node: NodeId, entries: readonly Entry<Value>[], view: NodeView): void {
    for (const e of entries) {
      if (e.term >= TERM_FACTOR) throw new Error(`checker: term ${e.term} too large`);
      const key = e.index * TERM_FACTOR + e.term;
      const value = entryValue(e);
      const prevTerm = e.index === 1 ? 0 : view.termAt(e.index - 1);
      const known = this.entryValue.get(key);
      if (known === undefined) {
        this.entryValue.set(key, value);
        if (prevTerm !== undefined) this.entryPrevTerm.set(key, prevTerm);
        continue;
      }
      if (known !== value) this.fail('log matching', `${node} has ${value} at ${e.index}/${e.term} where another log has ${known}`);
      if (prevTerm !== undefined) {
        const knownPrev = this.entryPrevTerm.get(key);
        if (knownPrev === undefined) this.entryPrevTerm.set(key, prevTerm);
        else if (knownPrev !== prevTerm) {
          this.fail('log matching', `${node}'s entry ${e.index}/${e.term} follows term ${prevTerm}, another log's follows term ${knownPrev}`);
        }
      }
    }
  }

  /** The node's commit index is now `commit`; `leaderTerm` is its term if it is the leader. */
  onCommit(node: NodeId, commit: number, view: NodeView, leaderTerm: number | undefined): void {
    const life = this.life(node);
    if (commit < life.commit) this.fail('commit monotonicity', `${node}'s commit went back from ${life.commit} to ${commit}`);
    for (let i = life.commit + 1; i <= commit; i++) {
      const t = view.termAt(i);
      if (t === undefined) continue; // inside a snapshot just installed: checked through its digest
      const known = this.committedTerm.get(i);
      if (known === undefined) {
        this.committedTerm.set(i, t);
        if (i > this.maxCommitted) this.maxCommitted = i;
      } else if (known !== t) {
        this.fail('state machine safety', `${node} committed ${i} with term ${t}, but it was committed with term ${known}`);
      }
      if (leaderTerm !== undefined) {
        const committedIn = this.committedInTerm.get(i);
        if (committedIn === undefined || leaderTerm < committedIn) this.committedInTerm.set(i, leaderTerm);
      }
    }
    life.commit = commit;
  }

  /** The node restored its state machine from a snapshot received from the leader. */
  onRestore(node: NodeId, index: number, digest: number): void {
    const life = this.life(node);
    if (index <= life.applied) this.fail('state machine safety', `${node} restored snapshot ${index} over applied ${life.applied}`);
    this.checkSnapshot(node, index, digest);
    life.applied = index;
    life.digest = digest;
    if (life.commit < index) life.commit = index;
  }

  /** The node applies `entry`. Returns the node's new digest. */
  onApply(node: NodeId, entry: Entry<Value>): number {
    const life = this.life(node);
    if (entry.index !== life.applied + 1) {
      this.fail('state machine safety', `${node} applied ${entry.index} after ${life.applied} (gap or applied twice)`);
    }
    const value = entryValue(entry);
    const digest = mixDigest(life.digest, value);
    const i = entry.index;
    const known = this.historyValue[i];
    if (known === undefined) {
      if (i !== this.historyValue.length) throw new Error(`checker: history gap at ${i}`);
      if (entry.type === 'conf') this.confEntriesApplied++;
      if (value > 0) {
        const elsewhere = this.valueIndex.get(value);
        if (elsewhere !== undefined) this.fail('no value applied twice', `value ${value} applied at ${i} and at ${elsewhere}`);
        this.valueIndex.set(value, i);
      }
      this.historyValue.push(value);
      this.historyDigest.push(digest);
    } else if (known !== value) {
      this.fail('state machine safety', `${node} applied ${value} at ${i}, another node applied ${known}`);
    } else if (this.historyDigest[i] !== digest) {
      this.fail('state machine safety', `${node}'s state at ${i} differs from the history`);
    }
    life.applied = i;
    life.digest = digest;
    this.entriesApplied++;
    return digest;
  }

  /** The proposer saw its proposal `value` committed at `index`: it is acknowledged to the client. */
  onAck(value: Value, index: number): void {
    if (this.historyValue[index] !== value) this.fail('acknowledged write', `value ${value} acknowledged at ${index}, history has ${this.historyValue[index]}`);
    this.acked.set(value, index);
    if (index > this.maxAckedIndex) this.maxAckedIndex = index;
  }

  /**
   * The proposer acknowledged `value` with ack level `all`: besides {@link onAck},
   * `missing` (the nodes whose synced storage lacks the entry) must be empty.
   */
  onAckAll(value: Value, index: number, missing: readonly NodeId[]): void {
    this.onAck(value, index);
    this.ackedAll++;
    if (missing.length > 0) this.fail('acknowledged on every replica', `value ${value} acknowledged at ${index} with ack all, but ${missing.join(', ')} does not hold it durably`);
  }

  appliedIndex(node: NodeId): number {
    return this.life(node).applied;
  }

  digest(node: NodeId): number {
    return this.life(node).digest;
  }

  /** Liveness phase end: every acknowledged value is applied on every node. */
  checkAllApplied(nodes: readonly NodeId[]): void {
    for (const node of nodes) {
      const applied = this.life(node).applied;
      if (applied < this.maxAckedIndex) {
        this.fail('no acknowledged proposal lost', `${node} applied only up to ${applied}; acknowledged values reach ${this.maxAckedIndex}`);
      }
    }
  }
}

/** What the configuration check reads of a node: its stored log (after a batch, the node's whole log) and base configuration. */
export interface LogView {
  readonly firstIndex: number;
  readonly lastIndex: number;
  entryAt(index: number): Entry<Value> | undefined;
  /** The configuration of the stored snapshot, or the bootstrap one. */
  readonly baseConf: ConfState;
}

interface ConfScan {
  confIndex: number;
  /** Entries in `(confIndex, scannedTo]` were checked to hold no configuration; `scannedTerm` is the term at `scannedTo`. */
  scannedTo: number;
  scannedTerm: number | undefined;
}

/**
 * Every node's configuration agrees with its log: the configuration it
 * reports using, with the index it says it comes from, is the one of the
 * configuration entry at that index (or of its snapshot, or the bootstrap
 * one, when the entry is compacted away or there was none), and no later
 * configuration entry is in its log. Incremental: each entry is scanned
 * once, unless the log is cut back or the node restarts; the entry the
 * configuration comes from is read again at every check.
 */
export class ConfigChecker {
  private readonly scans = new Map<NodeId, ConfScan>();

  onStart(node: NodeId): void {
    this.scans.delete(node);
  }

  private fail(node: NodeId, message: string): never {
    throw new SafetyViolation('configuration agrees with the log', `${node}: ${message}`);
  }

  check(node: NodeId, conf: ConfState, confIndex: number, log: LogView): void {
    let scan = this.scans.get(node);
    if (scan === undefined || scan.confIndex !== confIndex) {
      scan = { confIndex, scannedTo: -1, scannedTerm: undefined };
      this.scans.set(node, scan);
    }
    // The entry the configuration comes from (one read: the log may have been cut back and rewritten there).
    {
      if (confIndex > log.lastIndex) this.fail(node, `uses the configuration of index ${confIndex}, beyond its log (${log.lastIndex})`);
      if (confIndex >= log.firstIndex) {
        const entry = log.entryAt(confIndex);
        if (entry?.type !== 'conf') this.fail(node, `uses a configuration from index ${confIndex}, which holds a ${entry?.type ?? 'missing'} entry`);
        if (!sameConf(entry.conf, conf)) this.fail(node, `uses {${formatConf(conf)}} but its entry ${confIndex} holds {${formatConf(entry.conf)}}`);
      } else if (!sameConf(log.baseConf, conf)) {
        this.fail(node, `uses {${formatConf(conf)}} from index ${confIndex}, but its snapshot (or bootstrap) configuration is {${formatConf(log.baseConf)}}`);
      }
    }
    // The entries after it, each once: none may hold a configuration.
    const from = Math.max(confIndex, log.firstIndex - 1);
    const rewritten = scan.scannedTo > log.lastIndex || (scan.scannedTo >= log.firstIndex && log.entryAt(scan.scannedTo)?.term !== scan.scannedTerm);
    if (scan.scannedTo < from || rewritten) scan.scannedTo = from;
    for (let i = scan.scannedTo + 1; i <= log.lastIndex; i++) {
      const entry = log.entryAt(i);
      if (entry?.type === 'conf') this.fail(node, `holds configuration entry ${i} ({${formatConf(entry.conf)}}) but uses the one of index ${confIndex}`);
    }
    scan.scannedTo = log.lastIndex;
    scan.scannedTerm = log.lastIndex >= log.firstIndex ? log.entryAt(log.lastIndex)?.term : undefined;
  }
}
