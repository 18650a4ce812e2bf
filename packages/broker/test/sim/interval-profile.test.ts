/**
 * A simulator profile of `fsync: 'interval'` over the real storages: three
 * Raft cores with `unsyncedAcks` (a follower acknowledges an append once
 * written, before its fsync), each persisting through a `SegmentRaftStorage`
 * (layout `unified`) or a `DurableRaftStorage` record file (layout `split`:
 * a lost overwrite gives back the older suffix) on its own in-memory disk
 * (`FaultyFileSystem`). The fsync timers run on vitest's fake clock (the
 * segment log's through its `timers` seam, the storages' own commit and
 * fsync timers through the faked global), advanced one tick at a time.
 *
 * From one seed: message loss, delay and duplication, proposals,
 * compactions, process kills (lose nothing written) and power cuts (lose
 * each node's unsynced bytes, sometimes inside a `Ready`). Variant: a node
 * restarted after a power cut runs `fsync: 'always'` with
 * `unsyncedAcksBeforeStart` (the broker's interval -> always switch).
 *
 * Two fault models (`IntervalOptions.faults`). `contract`, the promise of
 * README "fsync policy" (a power cut of a quorum within one interval may
 * lose what was acknowledged in it): two different nodes are never cut
 * within one fsync interval (plus slack for the fsync). It holds only with
 * the voting rule (a node restarted after a cut starts with
 * `recoveringAtStart`; docs/raft.md): without it (`RELAYMQ_SIM_RULE=off`)
 * one power cut of a leader loses acknowledged entries when the other
 * holder is down or slow, since the cut node votes for a candidate that
 * lacks them too (RELAYMQ_SIM_FAULTS=contract RELAYMQ_SIM_SEED=8, index
 * 22). `oneFailure`: power cuts of followers only, and no node stops while
 * another is down or still lacks what was acknowledged before its cut. The
 * suite runs both, a `contract` case that also cuts every node at once
 * now and then (`cutAll`), and `contract` cases whose membership changes
 * (`membership`: 4 or 5 nodes, the `reconfig` profile's single-server
 * changes), which the first supporters rule (`n − quorum + 2`: 3 of 4)
 * fails (seeds 1 and 12; docs/raft.md).
 *
 * Checks: after every apply, an index holds one entry whoever applies it
 * (a no-op there where another node applied a value counts); no value the
 * leader applied (acknowledged to its client) is ever replaced; within
 * HEAL_BOUND steps of the heal every node (with membership changes, every
 * member of the leader's configuration; the others a prefix) applies the
 * same log, holding every value any node applied. RELAYMQ_SIM_SEEDS=<n> (from
 * RELAYMQ_SIM_SEED_FROM) runs more seeds per case and names every failing
 * one; RELAYMQ_SIM_SEED=<seed> replays one, its whole trace written to
 * RELAYMQ_SIM_TRACE_FILE if set.
 */
import { writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { NO_TESTING_KNOBS } from '../../src/core/raft/raft.js';
import { RaftNode as RaftNodeImpl } from '../../src/core/raft/node.js';
import { deriveRandom, isMember, runReady, type Entry, type Message, type RaftNode, type ReadyHandlers, type SeededRandom } from '../../src/core/raft/index.js';
import { DurableRaftStorage, type RaftLogStorage } from '../../src/storage/raft-storage.js';
import { SegmentRaftStorage } from '../../src/storage/segment-raft-storage.js';
import { FaultyFileSystem } from '../support/faulty-fs.js';
import { MemoryFileSystem } from '../support/memory-fs.js';
import { deliverDue, readyRound, type DiskNode, type InFlight } from './disk-driver.js';
import { pickConfChange } from './conf-changes.js';
import { Incarnation, incarnationTimers } from './incarnation.js';
import { resolveReconfig, type ReconfigParams } from './swarm.js';
import { TraceRing } from './trace.js';

/** The three fixed voters of the cases without membership changes. */
const IDS = ['n1', 'n2', 'n3'];
const DIR = '/data/p';
const TICK_MS = 10;
/**
 * Voters a membership change leaves at least: a lone voter's power cut is a quorum's (outside the contract), and two
 * voters elect with both under any rule; from 3 up, where the count of supporters matters (4 of 4, not 3).
 */
const MIN_VOTERS = 3;
/** Steps the heal may take (seeds 1-40 of each case took at most 69). */
const HEAL_BOUND = 500;

export interface IntervalOptions {
  storage: 'segment' | 'record';
  /** A node restarted after a power cut runs `always` with `unsyncedAcksBeforeStart` (else `interval` with `unsyncedAcks`). */
  alwaysAfterCut: boolean;
  /**
   * `contract`: power cuts keep to the documented contract only (two nodes
   * never cut within one interval; kills any time). `oneFailure`: also, a
   * power cut strikes a follower only, and no node is stopped while another
   * is down or still lacks what was acknowledged before its power cut (it
   * counts as failed until its commit is back there): what the
   * implementation tolerated before the voting rule (`recovering`). Under
   * `contract` without the rule, one power cut of a leader (or of a
   * follower, with the other holder of an entry down) loses acknowledged
   * entries: the node that lost them votes for a candidate that lacks them too.
   */
  faults: 'contract' | 'oneFailure';
  /**
   * A node restarted after a power cut (or after a kill while it was still recovering: the broker takes any
   * unclean stop for one) starts with `recoveringAtStart`, the voting rule that keeps the contract; false shows the
   * contract model failing without it (`RELAYMQ_SIM_RULE=off`).
   */
  recovering: boolean;
  /**
   * Now and then a power cut of every node at once, struck after their last fsync (so that nothing acknowledged is
   * lost, which the contract does not promise): every node restarts recovering, and the group must elect again
   * once all are up.
   */
  cutAll: boolean;
  /**
   * Membership changes under the contract: `poolSize` nodes `n1..nP`, the first `initialVoters` bootstrap the group,
   * and about every `changeIntervalMs` (drawn per seed when left out) the leader is asked for a single-server change
   * (add a learner, promote, remove: the `reconfig` profile's workload, conf-changes.ts), half the new leaders at
   * once; none leaves fewer than `MIN_VOTERS`. The contract stays global: two nodes of the pool are never cut within
   * one interval, whatever they are.
   * Undefined: the three fixed voters.
   */
  membership?: Pick<ReconfigParams, 'poolSize' | 'initialVoters'> & Partial<ReconfigParams>;
  /**
   * Voters a removal leaves at least (`MIN_VOTERS` when left out). 2: changes between two voters and three (a
   * replica move of a partition with replication factor 2), where all of two supporters would elect beside an entry
   * committed by two of the three (docs/raft.md, "Two voters beside three").
   */
  minVoters?: number;
}

interface Node extends DiskNode {
  storage: RaftLogStorage<string, string> | undefined;
  /** Sim time of its last power cut. */
  lastCut: number;
  /** After a power cut: the highest index acknowledged before it, until this node's commit is back there. */
  lacksUpTo: number | undefined;
  /** The last term it was seen leading (for the trace). */
  leaderOf: number;
  /** Cut at least once (the `alwaysAfterCut` variant then restarts it under `always`). */
  everCut: boolean;
  /** Its next start follows an unclean stop that may have lost what it acknowledged: it starts recovering. */
  recoverAtStart: boolean;
}

/** What an applied entry is, for comparing what two nodes applied at one index. */
function labelOf(entry: Entry<string>): string {
  return entry.type === 'normal' ? entry.data : `(${entry.type} of term ${entry.term})`;
}

export interface IntervalResult {
  committed: number;
  acknowledged: number;
  cuts: number;
  midReady: number;
  kills: number;
  snapshots: number;
  lostReports: number;
  /** Entries a restarted node's log held where another entry was applied (never applied there: the check says). */
  staleEntries: number;
  /** Steps from the heal until every node applied the same log. */
  healSteps: number;
  /** Starts with `recoveringAtStart`, and recoveries that ended (a leader of a later term caught the node up). */
  recoveringStarts: number;
  recoveriesEnded: number;
  /** Campaigns of learners whose log held entries above their commit (`RaftCounters.learnerCampaigns`). */
  learnerCampaigns: number;
  /** Power cuts of every node at once (`cutAll`). */
  allCuts: number;
  /** Membership changes a leader accepted, and leaders elected in a configuration of an even number of voters. */
  confChanges: number;
  evenLeaders: number;
}

export async function runIntervalSeed(seed: number, steps: number, options: IntervalOptions): Promise<IntervalResult> {
  const random: SeededRandom = deriveRandom(seed, `interval-profile/${options.storage}`);
  // Swarm: the seed picks the interval and how harsh the network is.
  const fsyncIntervalMs = TICK_MS * (2 + random.nextInt(20));
  // The contract: two nodes are never cut within one interval (plus slack for the fsync, which runs on the next tick).
  const spacing = fsyncIntervalMs + 2 * TICK_MS;
  const lossRate = 0.02 + random.nextInt(15) / 100;
  const dupRate = random.nextInt(10) / 100;
  const maxDelay = 1 + random.nextInt(6);
  const trace = new TraceRing(process.env['RELAYMQ_SIM_SEED'] === undefined ? 400 : 100_000);
  const network: InFlight[] = [];
  /** Every index any node applied, with its value: one value per index, forever. */
  const committed = new Map<number, string>();
  /** What any node applied at each index, entries of every type. */
  const labels = new Map<number, string>();
  /** The values a leader applied (acknowledged to the client). */
  const acknowledged = new Map<number, string>();
  let now = 0;
  let step = 0;
  let proposals = 0;
  const counts = { cuts: 0, midReady: 0, kills: 0, snapshots: 0, lostReports: 0, staleEntries: 0, recoveringStarts: 0, recoveriesEnded: 0, learnerCampaigns: 0, allCuts: 0, confChanges: 0, evenLeaders: 0 };
  let chaos = true;
  const reconfig = options.membership === undefined ? undefined : resolveReconfig(seed, options.membership);
  // From a stream of its own: the cases without membership changes draw what they drew before.
  const confRandom = deriveRandom(seed, 'interval-profile/membership');
  const ids = reconfig === undefined ? IDS : Array.from({ length: reconfig.poolSize }, (_, i) => `n${i + 1}`);
  const bootstrap = reconfig === undefined ? IDS : ids.slice(0, reconfig.initialVoters);
  /** A new leader asked for a change of voters a tick or two after its election (the window before its no-op commits). */
  let askNewLeader: { node: Node; term: number; at: number } | undefined;
  const nodes: Node[] = ids.map((id) => ({ id, disk: new FaultyFileSystem(new MemoryFileSystem()), incarnation: undefined, storage: undefined, raft: undefined, io: undefined, state: [], restarts: 0, downUntil: 0, lastCut: -Infinity, lacksUpTo: undefined, leaderOf: 0, everCut: false, recoverAtStart: false }));
  /** Errors `fail` threw (with the trace), told apart from the core's or a storage's. */
  const failures = new Set<Error>();
  const fail = (message: string): never => {
    const lines = trace.render((d) => JSON.stringify(d));
    const file = process.env['RELAYMQ_SIM_TRACE_FILE'];
    if (file !== undefined) writeFileSync(file, lines.join('\n'));
    const pool = reconfig === undefined ? '' : `, ${reconfig.poolSize} nodes, ${reconfig.initialVoters} voters at start, a change every ${reconfig.changeIntervalMs} ms`;
    const error = new Error(`seed ${seed} (${options.faults}, ${options.storage}${options.alwaysAfterCut ? ', always after a cut' : ''}${pool}, interval ${fsyncIntervalMs} ms): ${message}\n${lines.slice(-80).join('\n')}`);
    failures.add(error);
    throw error;
  };

  const applyOne = (node: Node, entry: Entry<string>, leader: boolean): void => {
    // A no-op or configuration entry counts too: applied where another node applied a value, that value is gone here.
    const label = labelOf(entry);
    const seen = labels.get(entry.index);
    if (seen !== undefined && seen !== label) fail(`index ${entry.index} applied as ${seen} and as ${label} (${node.id}${acknowledged.has(entry.index) ? `; ${acknowledged.get(entry.index)} was acknowledged` : ''})`);
    labels.set(entry.index, label);
    if (entry.type !== 'normal') return;
    committed.set(entry.index, entry.data);
    if (leader && !acknowledged.has(entry.index)) {
      acknowledged.set(entry.index, entry.data);
      trace.record(now, step, node.id, 'ack', `${entry.index}=${entry.data}`);
    }
    node.state.push([entry.index, entry.data]);
  };

  const open = async (node: Node, incarnation: Incarnation, fsync: 'always' | 'interval'): Promise<RaftLogStorage<string, string>> => {
    const policy = fsync === 'always' ? { fsync, fsyncIntervalMs: fsyncIntervalMs } : { fsync, fsyncIntervalMs };
    if (options.storage === 'record') return DurableRaftStorage.open<string, string>(`${DIR}/raft.log`, bootstrap, { ...policy, fs: incarnation });
    const timers = incarnationTimers(incarnation, { setTimeout: (callback, delayMs) => setTimeout(callback, delayMs), clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>) });
    return SegmentRaftStorage.open<string, string>(DIR, bootstrap, { ...policy, fs: incarnation, segments: { segmentBytes: 1024, indexIntervalBytes: 256, timers } });
  };

  const start = async (node: Node): Promise<void> => {
    const incarnation = new Incarnation(node.disk);
    const always = options.alwaysAfterCut && node.everCut;
    const storage = await open(node, incarnation, always ? 'always' : 'interval');
    const snapshot = storage.reader.snapshot();
    node.state = snapshot === undefined ? [] : (JSON.parse(snapshot.data) as Array<[number, string]>);
    // Coverage: a log that came back holding, at an index some node applied, another entry (an uncommitted suffix, or
    // the older entries a record file's lost overwrite gives back), which it must not apply.
    const reader = storage.reader;
    if (reader.lastIndex() >= reader.firstIndex()) {
      for (const entry of reader.entries(reader.firstIndex(), reader.lastIndex() + 1, Number.MAX_SAFE_INTEGER)) {
        const applied = labels.get(entry.index);
        if (applied !== undefined && applied !== labelOf(entry)) counts.staleEntries++;
      }
    }
    node.incarnation = incarnation;
    node.storage = storage;
    const raft = new RaftNodeImpl<string, string>({
      id: node.id,
      storage: storage.reader,
      random: deriveRandom(seed, `${node.id}/${node.restarts}`),
      config: { electionTicks: 10, heartbeatTicks: 2, preVote: true, checkQuorum: true, unsyncedAcks: !always, unsyncedAcksBeforeStart: always, recoveringAtStart: node.recoverAtStart },
      // With membership changes a node may start outside the configuration (not added yet, or removed).
      joining: reconfig !== undefined,
    }, GUARD ? NO_TESTING_KNOBS : { ...NO_TESTING_KNOBS, skipElectionGuard: true });
    node.raft = raft;
    if (node.recoverAtStart) counts.recoveringStarts++;
    trace.record(now, step, node.id, 'start', `${always ? 'always' : 'interval'}${node.recoverAtStart ? ' recovering' : ''} term ${storage.hardState.term} commit ${storage.hardState.commit} log ${storage.reader.firstIndex()}..${storage.reader.lastIndex()} applied ${node.state.length}`);
    node.io = {
      storage, // its applySnapshot, append, setHardState and sync are the runner's ReadyStorage
      send: (messages) => {
        if (!incarnation.alive) return; // a dead process sends nothing
        for (const message of messages) {
          if (message.type === 'app-resp' && message.lost === true) counts.lostReports++;
          if (message.type === 'app-resp' && message.lost === true) trace.record(now, step, node.id, 'lost', `to ${message.to}: commit ${message.index}, holds ${message.hintIndex}`);
          if (chaos && random.chance(lossRate)) continue;
          const copies = chaos && random.chance(dupRate) ? 2 : 1;
          for (let c = 0; c < copies; c++) network.push({ at: now + (chaos ? random.nextInt(maxDelay) : 0), message });
        }
      },
      restore: (s) => {
        node.state = JSON.parse(s.data) as Array<[number, string]>;
        trace.record(now, step, node.id, 'restore', `snapshot at ${s.meta.index}`);
      },
      apply: (entries) => {
        if (!incarnation.alive) return;
        const leader = raft.status().role === 'leader';
        for (const entry of entries) applyOne(node, entry, leader);
      },
    };
  };

  /** The process dies; a power cut also loses the disk's unsynced bytes (some may have reached it). */
  const stop = async (node: Node, power: boolean): Promise<void> => {
    if (node.incarnation !== undefined) node.incarnation.alive = false;
    if (node.raft !== undefined) counts.recoveriesEnded += node.raft.counters.recoveriesEnded;
    if (node.raft !== undefined) counts.learnerCampaigns += node.raft.counters.learnerCampaigns;
    // A kill loses nothing written, but a node still recovering may still lack what it lost before.
    node.recoverAtStart = options.recovering && (power || node.raft?.status().recovering === true);
    if (power) {
      const kept = random.chance(0.5) ? 0 : random.nextInt(400);
      await node.disk.crash({ keepUnsyncedBytes: kept });
      node.lastCut = now;
      node.lacksUpTo = Math.max(0, ...acknowledged.keys());
      node.everCut = true;
      counts.cuts++;
    } else counts.kills++;
    trace.record(now, step, node.id, power ? 'cut' : 'kill', `role ${node.raft?.status().role} last ${node.storage?.reader.lastIndex()} commit ${node.raft?.status().commit}`);
    node.raft = undefined;
    node.storage = undefined;
    node.io = undefined;
    node.restarts++;
    node.downUntil = now + TICK_MS * (5 + random.nextInt(40));
  };

  /** A power cut may strike `node` now: no other node was cut within the spacing (the contract's minority), and `mayStop`. */
  const mayCut = (node: Node): boolean => mayStop(node) && (options.faults === 'contract' || node.raft?.status().role !== 'leader') && nodes.every((other) => other === node || now - other.lastCut >= spacing);
  /** Under `oneFailure`, a node may stop only while every other one is up and holds what was acknowledged before its cut. */
  const mayStop = (node: Node): boolean => {
    if (options.faults === 'contract') return true;
    for (const other of nodes) {
      if (other.lacksUpTo !== undefined && (other.raft?.status().commit ?? 0) >= other.lacksUpTo) other.lacksUpTo = undefined;
    }
    return nodes.every((other) => other === node || (other.raft !== undefined && other.lacksUpTo === undefined));
  };

  /** Lets the timer-driven fsyncs (and any write they wait for) finish: in-memory files settle in a few turns. */
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 4; i++) await new Promise<void>((resolve) => setImmediate(resolve));
  };

  /** The leader of the highest term (a removed one cut off may still think it leads an older one). */
  const currentLeader = (): Node | undefined => {
    let leader: Node | undefined;
    for (const node of nodes) {
      const status = node.raft?.status();
      if (status?.role === 'leader' && (leader === undefined || status.term > (leader.raft?.status().term ?? 0))) leader = node;
    }
    return leader;
  };

  /**
   * The nodes that must apply everything after the heal: every node, or with membership changes the members of the
   * current leader's configuration (or of each node's own, while there is no leader).
   */
  const members = (): Node[] => {
    if (reconfig === undefined) return nodes;
    const conf = currentLeader()?.raft?.confState;
    return nodes.filter((n) => isMember(conf ?? n.raft?.confState ?? { voters: bootstrap }, n.id));
  };

  /** Now and then (or a tick or two after its election, a new leader) the leader is asked for a membership change. */
  const changeMembership = (params: ReconfigParams): void => {
    const asked = askNewLeader !== undefined && now >= askNewLeader.at ? askNewLeader : undefined;
    if (asked !== undefined) askNewLeader = undefined;
    const stillLeading = asked !== undefined && asked.node.raft?.status().term === asked.term && asked.node.raft.status().role === 'leader';
    const target = asked !== undefined ? (stillLeading ? asked.node : undefined) : confRandom.chance(TICK_MS / params.changeIntervalMs) ? currentLeader() : undefined;
    const raft = target?.raft;
    if (target === undefined || raft === undefined) return;
    const change = pickConfChange(confRandom, raft.confState, ids, asked !== undefined);
    if (change.type === 'remove' && raft.confState.voters.includes(change.node) && raft.confState.voters.length <= (options.minVoters ?? MIN_VOTERS)) return;
    const result = raft.proposeConfChange(change);
    if (result.ok) counts.confChanges++;
    trace.record(now, step, target.id, 'conf', `${change.type} ${change.node}${result.ok ? ` at ${result.index}: voters ${result.conf.voters.join(' ')}` : ` refused: ${result.reason}`}`);
  };

  for (const node of nodes) await start(node);
  const total = steps + HEAL_BOUND + 1;
  const run = async (): Promise<void> => {
    for (step = 0; step < total; step++) {
      now += TICK_MS;
      vi.advanceTimersByTime(TICK_MS);
      await settle();
      if (step === steps) chaos = false;
      for (const node of nodes) if (node.raft === undefined && now >= node.downUntil && (!chaos || random.chance(0.5))) await start(node);
      for (const node of nodes) node.raft?.tick();
      deliverDue(network, now, random, nodes);
      const leader = nodes.find((n) => n.raft?.status().role === 'leader');
      if (leader !== undefined && (chaos ? random.chance(0.6) : proposals < 40 + steps / 2)) leader.raft?.propose(`v${++proposals}`);
      const live = nodes.filter((n) => n.raft !== undefined);
      const candidate = chaos && live.length > 0 && random.chance(0.03) ? random.pick(live) : undefined;
      if (await readyRound(nodes, random, candidate !== undefined && mayCut(candidate) ? candidate : undefined, (node) => stop(node as Node, true))) counts.midReady++;
      for (const node of nodes) {
        const status = node.raft?.status();
        if (status !== undefined && status.role === 'leader' && node.leaderOf !== status.term) {
          node.leaderOf = status.term;
          trace.record(now, step, node.id, 'leader', `term ${status.term}, log ..${node.storage?.reader.lastIndex()}, commit ${status.commit}${reconfig === undefined ? '' : `, voters ${status.voters.join(' ')}`}`);
          if (status.voters.length % 2 === 0) counts.evenLeaders++;
          if (reconfig !== undefined && chaos && confRandom.chance(0.5)) askNewLeader = { node, term: status.term, at: now + TICK_MS * confRandom.nextInt(3) };
        }
      }
      if (reconfig !== undefined && chaos) changeMembership(reconfig);
      if (options.cutAll && chaos && random.chance(0.004) && nodes.every((n) => n.raft !== undefined)) {
        // After their last fsync: what the disks lose is unacknowledged (the contract gives up a quorum cut within one interval).
        for (let i = 0; i < 2; i++) {
          vi.advanceTimersByTime(spacing);
          await settle();
        }
        counts.allCuts++;
        trace.record(now, step, '*', 'cut-all', '');
        for (const node of nodes) await stop(node, true);
      }
      if (chaos && random.chance(0.02)) {
        const target = random.pick(nodes);
        if (target.raft !== undefined && mayStop(target)) {
          // Power cuts keep to the contract; a process kill loses nothing written, any time.
          const power = random.chance(0.7) && mayCut(target);
          await stop(target, power);
        }
      }
      if (random.chance(0.02)) {
        const node = random.pick(nodes);
        const last = node.state[node.state.length - 1];
        const storage = node.storage;
        if (storage !== undefined && last !== undefined && last[0] >= storage.reader.firstIndex() && last[0] <= storage.hardState.commit) {
          await storage.compact(last[0], JSON.stringify(node.state));
          counts.snapshots++;
          trace.record(now, step, node.id, 'compact', `at ${last[0]}`);
        }
      }
      // Heartbeats keep the network busy for good: done once every node applied the same log, no longer recovers
      // (the rule's liveness), and has nothing to do.
      // A learner may stay recovering until a later term (its leader re-elects itself only for a voter: raft.ts).
      const group = members();
      const recovering = group.some((n) => n.raft?.status().recovering === true && n.raft.status().voters.includes(n.id));
      if (!chaos && nodes.every((n) => n.raft !== undefined) && !recovering) {
        const done = group.every((n) => JSON.stringify(n.state) === JSON.stringify(group[0]?.state)) && (group[0]?.state.length ?? 0) >= committed.size;
        if (done && group.every((n) => !n.raft?.hasReady())) break;
      }
    }
  };
  // An error of the core (a RaftInvariantError) or of a storage fails the seed with its trace too.
  await run().catch((err: unknown) => {
    if (err instanceof Error && failures.has(err)) throw err;
    fail(err instanceof Error ? `${err.name}: ${err.message}` : String(err));
  });
  const healSteps = step - steps;
  // Liveness: the heal brings every node to the same log, and out of recovery, within a bound (a ping-pong of probes never gets there).
  if (healSteps > HEAL_BOUND) fail(`not healed within ${HEAL_BOUND} steps: ${nodes.map((n) => `${n.id} applied ${n.state.length}, role ${n.raft?.status().role}, commit ${n.raft?.status().commit}${n.raft?.status().recovering === true ? ', recovering' : ''}`).join('; ')} (${committed.size} values)`);
  // Every member applied every value any node applied, at the same index; every acknowledged value among them. A
  // node outside the configuration (removed, or never added) applied a prefix of it.
  const all = [...committed.entries()].sort((a, b) => a[0] - b[0]);
  for (const [index, value] of acknowledged) if (committed.get(index) !== value) fail(`acknowledged ${index}=${value} lost`);
  const group = members();
  for (const node of nodes) {
    const at = (group.includes(node) ? all : all.slice(0, node.state.length)).findIndex((pair, i) => JSON.stringify(node.state[i]) !== JSON.stringify(pair));
    if (at >= 0 || (group.includes(node) && node.state.length !== all.length)) fail(`after the heal ${node.id} applied ${JSON.stringify(node.state.slice(Math.max(0, at - 1), at + 2))} where the others applied ${JSON.stringify(all.slice(Math.max(0, at - 1), at + 2))} (${node.state.length} vs ${all.length} values)`);
  }
  for (const node of nodes) await node.storage?.close();
  for (const node of nodes) counts.recoveriesEnded += node.raft?.counters.recoveriesEnded ?? 0;
  for (const node of nodes) counts.learnerCampaigns += node.raft?.counters.learnerCampaigns ?? 0;
  return { committed: committed.size, acknowledged: acknowledged.size, healSteps, ...counts };
}

/** `RELAYMQ_SIM_FAULTS=contract` runs the first four cases under the documented contract's faults too. */
const FAULTS: IntervalOptions['faults'] = process.env['RELAYMQ_SIM_FAULTS'] === 'contract' ? 'contract' : 'oneFailure';

/** `RELAYMQ_SIM_RULE=off`: no node starts recovering (the contract cases then fail: see `IntervalOptions.recovering`). */
const RULE = process.env['RELAYMQ_SIM_RULE'] !== 'off';

/** `RELAYMQ_SIM_GUARD=off`: supporters elect a candidate of one or two voters without a win one voter away (the 2 ↔ 3 cases then lose values: docs/raft.md, "Two voters beside three"). */
const GUARD = process.env['RELAYMQ_SIM_GUARD'] !== 'off';

const CASES: Array<[string, IntervalOptions]> = [
  ['segment log (unified)', { storage: 'segment', alwaysAfterCut: false, faults: FAULTS, recovering: RULE, cutAll: false }],
  ['record file (split)', { storage: 'record', alwaysAfterCut: false, faults: FAULTS, recovering: RULE, cutAll: false }],
  ['segment log, always + unsyncedAcksBeforeStart after a cut', { storage: 'segment', alwaysAfterCut: true, faults: FAULTS, recovering: RULE, cutAll: false }],
  ['record file, always + unsyncedAcksBeforeStart after a cut', { storage: 'record', alwaysAfterCut: true, faults: FAULTS, recovering: RULE, cutAll: false }],
  // The contract's faults: power cuts of leaders too, with the other holder down (safe only with the voting rule).
  ['contract, segment log (unified)', { storage: 'segment', alwaysAfterCut: false, faults: 'contract', recovering: RULE, cutAll: false }],
  ['contract, record file (split)', { storage: 'record', alwaysAfterCut: false, faults: 'contract', recovering: RULE, cutAll: false }],
  ['contract, segment log, always + unsyncedAcksBeforeStart after a cut', { storage: 'segment', alwaysAfterCut: true, faults: 'contract', recovering: RULE, cutAll: false }],
  ['contract, record file, always + unsyncedAcksBeforeStart after a cut', { storage: 'record', alwaysAfterCut: true, faults: 'contract', recovering: RULE, cutAll: false }],
  // Every node cut at once, now and then: all recovering, the group elects once every voter is up.
  ['contract + every node cut at once, segment log (unified)', { storage: 'segment', alwaysAfterCut: false, faults: 'contract', recovering: RULE, cutAll: true }],
  // Single-server membership changes under the contract's cuts, groups of 1 to 5 voters (unsafe with n - quorum + 2 supporters).
  ['contract + membership changes, 4 nodes (3 voters at start), segment log', { storage: 'segment', alwaysAfterCut: false, faults: 'contract', recovering: RULE, cutAll: false, membership: { poolSize: 4, initialVoters: 3 } }],
  ['contract + membership changes, 4 nodes (3 voters at start), record file', { storage: 'record', alwaysAfterCut: false, faults: 'contract', recovering: RULE, cutAll: false, membership: { poolSize: 4, initialVoters: 3 } }],
  ['contract + membership changes, 5 nodes (4 voters at start), segment log', { storage: 'segment', alwaysAfterCut: false, faults: 'contract', recovering: RULE, cutAll: false, membership: { poolSize: 5, initialVoters: 4 } }],
  ['contract + membership changes, 5 nodes (4 voters at start), record file', { storage: 'record', alwaysAfterCut: false, faults: 'contract', recovering: RULE, cutAll: false, membership: { poolSize: 5, initialVoters: 4 } }],
  // Between two voters and three (a replica move of a replication-factor-2 partition: 2 → 3 → 2).
  ['contract + membership changes between 2 and 3 voters (3 nodes), segment log', { storage: 'segment', alwaysAfterCut: false, faults: 'contract', recovering: RULE, cutAll: false, membership: { poolSize: 3, initialVoters: 2 }, minVoters: 2 }],
  ['contract + membership changes between 2 and 3 voters (3 nodes), record file', { storage: 'record', alwaysAfterCut: false, faults: 'contract', recovering: RULE, cutAll: false, membership: { poolSize: 3, initialVoters: 2 }, minVoters: 2 }],
];

function seedsToRun(): number[] {
  const one = process.env['RELAYMQ_SIM_SEED'];
  if (one !== undefined) return [wholeNumber('RELAYMQ_SIM_SEED', one)];
  const count = wholeNumber('RELAYMQ_SIM_SEEDS', process.env['RELAYMQ_SIM_SEEDS'] ?? '25');
  const from = wholeNumber('RELAYMQ_SIM_SEED_FROM', process.env['RELAYMQ_SIM_SEED_FROM'] ?? '1');
  return Array.from({ length: count }, (_, i) => from + i);
}

/** A count or seed from the environment; anything else (`1-200`) is refused rather than running no seed at all. */
/** Replays `seed` of the case named `name` (400 steps, as the suite runs it). */
async function replaySeed(name: string, seed: number): Promise<IntervalResult> {
  const found = CASES.find(([caseName]) => caseName === name);
  if (found === undefined) throw new Error(`the case "${name}" is gone`);
  return runIntervalSeed(seed, 400, found[1]);
}

function wholeNumber(name: string, value: string): number {
  if (!/^\d+$/.test(value)) throw new Error(`${name} must be a whole number (a count: RELAYMQ_SIM_SEEDS=200 RELAYMQ_SIM_SEED_FROM=1), got "${value}"`);
  return Number(value);
}

describe('simulator profile: fsync interval (unsyncedAcks) over the real storages, power cuts of a minority per interval', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it.each(CASES)('%s: nothing acknowledged lost, one value per index, the same log everywhere after the heal', async (_name, options) => {
    const totals = { committed: 0, acknowledged: 0, cuts: 0, midReady: 0, kills: 0, snapshots: 0, lostReports: 0, staleEntries: 0, healSteps: 0, recoveringStarts: 0, recoveriesEnded: 0, learnerCampaigns: 0, allCuts: 0, confChanges: 0, evenLeaders: 0, maxHealSteps: 0 };
    const seeds = seedsToRun();
    const failed: string[] = [];
    for (const seed of seeds) {
      try {
        const r = await runIntervalSeed(seed, 400, options);
        for (const key of Object.keys(r) as Array<keyof IntervalResult>) totals[key] += r[key];
        totals.maxHealSteps = Math.max(totals.maxHealSteps, r.healSteps);
      } catch (err) {
        // Every failing seed is named (RELAYMQ_SIM_SEED=<seed> replays it with its trace), not just the first.
        if (seeds.length === 1) throw err;
        failed.push(`${seed}: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}`);
      }
    }
    if (process.env['RELAYMQ_SIM_SEEDS'] !== undefined) console.log(`${_name}: ${seeds.length} seeds, ${failed.length} failed`, totals, failed.slice(0, 20));
    expect(failed).toEqual([]);
    if (seeds.length > 1) {
      // Not vacuous: values were acknowledged, power cuts struck (inside Readys too), followers reported lost entries.
      expect(totals.acknowledged).toBeGreaterThan(50 * seeds.length);
      expect(totals.cuts).toBeGreaterThan(2 * seeds.length);
      expect(totals.midReady).toBeGreaterThan(0);
      expect(totals.snapshots).toBeGreaterThan(seeds.length);
      // (fewer with membership changes: a follower cut while outside the configuration, or whose leader was replaced, reports none;
      // fewer still with three nodes and two voters: about 0.6 per seed over 2,000 seeds, 4 in seeds 1-25)
      expect(totals.lostReports).toBeGreaterThan(options.membership === undefined ? seeds.length : options.minVoters === 2 ? seeds.length / 10 : seeds.length / 2);
      // The rule was exercised: nodes started recovering and recovered; whole-cluster cuts struck.
      if (options.recovering) expect(totals.recoveriesEnded).toBeGreaterThan(seeds.length);
      if (options.cutAll) expect(totals.allCuts).toBeGreaterThan(seeds.length / 2);
      // Membership changed under the cuts, and leaders were elected among an even number of voters (the rule's hard case).
      if (options.membership !== undefined) expect(totals.confChanges).toBeGreaterThan(3 * seeds.length);
      if (options.membership !== undefined) expect(totals.evenLeaders).toBeGreaterThan(seeds.length / 4);
    }
  }, Math.max(120_000, seedsToRun().length * 2_000));

  // A leader re-adds a learner whose snapshot is lost as it loses power; it restarts with an old log whose configuration
  // does not name the leader, so it ignores the heartbeats that would retry the snapshot. It healed only once the
  // leader's contact probe (an append, which any node takes) reached a follower in snapshot state too.
  it('seed 973 with membership changes: a snapshot lost to a follower that ignores the leader is sent again, and the group heals', async () => {
    const r = await replaySeed('contract + membership changes, 5 nodes (4 voters at start), record file', 973);
    expect(r.confChanges).toBeGreaterThan(0);
  });

  // An uncommitted "promote n4" gives n3 four voters; power cuts leave n1, n3 and n4 recovering, n2 behind. n3 needs 4
  // supporters and learner n4 (its log ends in a later term) refuses it; n1 needs 3 and n3 refuses it. Only n4's log
  // every voter accepts: it healed once a learner whose log holds entries above its commit may campaign.
  it('seed 2036 with membership changes: a learner whose log is ahead campaigns when recovering voters cannot elect, and the group heals', async () => {
    const r = await replaySeed('contract + membership changes, 4 nodes (3 voters at start), record file', 2036);
    expect(r.confChanges).toBeGreaterThan(0);
    expect(r.learnerCampaigns).toBeGreaterThan(0);
  });

  // Voters {n1, n2}, learner n3: leader n1 appends "promote n3" and commits v14 at 16 with n3; a power cut takes both
  // from n1, which restarts recovering, and n3 is cut too, later. n2 was elected with its grant and n1's would-grant
  // (all of two) without v14, and applied its no-op there. The election guard asks the learner: n3 refuses. With
  // RELAYMQ_SIM_GUARD=off this seed fails (seeds 2001-6000: the only one; seeds 1-2000, before the commit that passes a
  // configuration entry was made durable: 170 and 786).
  it('seed 2272 with membership changes between 2 and 3 voters: a candidate of two voters is not elected without an entry committed after a promote it lacks', async () => {
    const r = await replaySeed('contract + membership changes between 2 and 3 voters (3 nodes), segment log', 2272);
    expect(r.confChanges).toBeGreaterThan(0);
  });
});
