import { describe, expect, it } from 'vitest';
import type { MoveCommand, MovableTopic, ReplicaMove } from '../core/metadata/moves.js';
import type { ProgressStatus } from '../core/raft/index.js';
import {
  CAUGHT_UP_ENTRIES,
  COPY_RATE_WINDOW_MS,
  ReplicaMoveCoordinator,
  addCopySample,
  copiedEstimate,
  copyRate,
  nextMoveStep,
  parseMoveStepAnswer,
  parseMoveStepRequest,
  parseMovesReport,
  parsePreferLeaderAnswer,
  parsePreferLeaderRequest,
  preferredLeaderStep,
  timeLeftMs,
  type CopySample,
  type LeaderView,
  type MoveStepAnswer,
  type MoveStepRequest,
  type MovesReport,
  type PreferLeaderRequest,
} from './replica-moves.js';

const progress = (id: string, match: number): ProgressStatus => ({ id, match, next: match + 1, state: 'replicate', recentActive: true, inflight: 0 });

function view(over: Partial<LeaderView>): LeaderView {
  return { self: 'b1', voters: ['b1', 'b2', 'b3'], learners: [], commit: 100, lastIndex: 100, progress: [progress('b1', 100), progress('b2', 100), progress('b3', 90)], learnerProgress: [], ...over };
}

describe('nextMoveStep (on the partition leader)', () => {
  const move = { from: 'b3', to: 'b4' };

  it('adds the target as a learner, waits until it is caught up, then promotes it', () => {
    expect(nextMoveStep(view({}), move)).toEqual({ action: 'add-learner' });
    const learning = view({ learners: ['b4'], learnerProgress: [progress('b4', 10)] });
    expect(nextMoveStep(learning, move)).toEqual({ action: 'wait', match: 10 });
    expect(nextMoveStep({ ...learning, learnerProgress: [progress('b4', 100 - CAUGHT_UP_ENTRIES - 1)] }, move)).toMatchObject({ action: 'wait' });
    expect(nextMoveStep({ ...learning, learnerProgress: [progress('b4', 100 - CAUGHT_UP_ENTRIES)] }, move)).toEqual({ action: 'promote' });
    // Nothing heard from it yet (an empty group has commit 0 too): not caught up.
    expect(nextMoveStep(view({ commit: 0, lastIndex: 0, learners: ['b4'], learnerProgress: [progress('b4', 0)] }), move)).toMatchObject({ action: 'wait' });
  });

  it('removes the old replica once the target votes, and is done when it is gone', () => {
    expect(nextMoveStep(view({ voters: ['b1', 'b2', 'b3', 'b4'] }), move)).toEqual({ action: 'remove' });
    expect(nextMoveStep(view({ voters: ['b1', 'b2', 'b4'] }), move)).toEqual({ action: 'done' });
  });

  it('a leader that is the replica leaving hands leadership away first: to the most caught-up voter of before the move (the new replica may not be linked to the others yet), to the new one only when there is none', () => {
    const leaving = { from: 'b1', to: 'b4' };
    const four = view({ voters: ['b1', 'b2', 'b3', 'b4'], progress: [progress('b1', 500), progress('b2', 490), progress('b3', 499), progress('b4', 500)] });
    expect(nextMoveStep(four, leaving)).toEqual({ action: 'transfer', target: 'b3' });
    expect(nextMoveStep({ ...four, progress: [progress('b1', 500), progress('b2', 499), progress('b3', 490), progress('b4', 500 - CAUGHT_UP_ENTRIES - 2)] }, leaving)).toEqual({ action: 'transfer', target: 'b2' });
    // Replication factor 1: the new replica is the only one to hand over to.
    expect(nextMoveStep(view({ voters: ['b1', 'b4'], progress: [progress('b1', 5), progress('b4', 5)] }), leaving)).toEqual({ action: 'transfer', target: 'b4' });
    // A group of one moving: no one to hand over to; the Raft core removes the leader and it hands over itself.
    expect(nextMoveStep(view({ voters: ['b1', 'b4'], progress: [progress('b1', 5)] }), leaving)).toEqual({ action: 'remove' });
  });

  it('gives a move up while its target does not vote: a learner is removed first; one that votes goes on', () => {
    const cancel = { ...move, cancel: true };
    expect(nextMoveStep(view({ learners: ['b4'], learnerProgress: [progress('b4', 10)] }), cancel)).toEqual({ action: 'remove-learner' });
    expect(nextMoveStep(view({}), cancel)).toEqual({ action: 'cancelled' });
    expect(nextMoveStep(view({ voters: ['b1', 'b2', 'b3', 'b4'] }), cancel)).toEqual({ action: 'remove' });
    expect(parseMoveStepRequest({ group: 'p/t/0', from: 'a', to: 'b', cancel: true })).toEqual({ group: 'p/t/0', from: 'a', to: 'b', cancel: true });
    expect(parseMoveStepRequest({ group: 'p/t/0', from: 'a', to: 'b', cancel: 'yes' })).toEqual({ group: 'p/t/0', from: 'a', to: 'b' });
  });

  it('hands leadership to the preferred leader only when it votes and is caught up', () => {
    const v = view({ lastIndex: 500, progress: [progress('b1', 500), progress('b2', 500 - CAUGHT_UP_ENTRIES), progress('b3', 10)] });
    expect(preferredLeaderStep(v, 'b1')).toBe('preferred');
    expect(preferredLeaderStep(v, 'b2')).toBe('transferring');
    expect(preferredLeaderStep(v, 'b3')).toBe('lagging');
    expect(preferredLeaderStep(v, 'b9')).toBe('lagging');
    expect(parsePreferLeaderRequest({ group: 'p/t/1', preferred: 'b2' })).toEqual({ group: 'p/t/1', preferred: 'b2' });
    expect(() => parsePreferLeaderRequest({ group: 'meta', preferred: 'b2' })).toThrow(/wants/);
    expect(parsePreferLeaderAnswer('lagging')).toBe('lagging');
    expect(() => parsePreferLeaderAnswer('sideways')).toThrow(/malformed/);
  });

  it('a repeated step does no harm: each is read from the configuration alone', () => {
    const steps = [view({}), view({ learners: ['b4'], learnerProgress: [progress('b4', 100)] }), view({ voters: ['b1', 'b2', 'b3', 'b4'] }), view({ voters: ['b1', 'b2', 'b4'] })];
    expect(steps.map((v) => nextMoveStep(v, move).action)).toEqual(['add-learner', 'promote', 'remove', 'done']);
  });

  it('reads requests and answers as untrusted input', () => {
    expect(parseMoveStepRequest({ group: 'p/t/0', from: 'a', to: 'b' })).toEqual({ group: 'p/t/0', from: 'a', to: 'b' });
    expect(() => parseMoveStepRequest({ group: 'meta', from: 'a', to: 'b' })).toThrow(/wants/);
    expect(() => parseMoveStepRequest({ group: 'p/t/0', from: 'a', to: 'a' })).toThrow(/wants/);
    expect(parseMoveStepAnswer({ phase: 'done', leader: 'b2', match: 3, lastIndex: 4 })).toEqual({ phase: 'done', leader: 'b2', match: 3, lastIndex: 4 });
    expect(() => parseMoveStepAnswer({ phase: 'sideways', leader: 'b2', match: 3, lastIndex: 4 })).toThrow(/malformed/);
    // The byte figures are optional (older leaders send none), taken as a pair, and checked.
    expect(parseMoveStepAnswer({ phase: 'catching-up', leader: 'b2', match: 3, lastIndex: 4, copiedBytes: 10, totalBytes: 40 })).toEqual({ phase: 'catching-up', leader: 'b2', match: 3, lastIndex: 4, copiedBytes: 10, totalBytes: 40 });
    expect(parseMoveStepAnswer({ phase: 'catching-up', leader: 'b2', match: 3, lastIndex: 4, copiedBytes: 10 })).toEqual({ phase: 'catching-up', leader: 'b2', match: 3, lastIndex: 4 });
    expect(parseMoveStepAnswer({ phase: 'catching-up', leader: 'b2', match: 3, lastIndex: 4, copiedBytes: -1, totalBytes: 40 })).toEqual({ phase: 'catching-up', leader: 'b2', match: 3, lastIndex: 4 });
  });
});

describe('bytes copied by a move, its rate and time left', () => {
  it('estimates the bytes a target holds from the fetches served to it or its match index, whichever is more, at most the size', () => {
    // A snapshot install: segments fetched, no Raft entry matched yet.
    expect(copiedEstimate({ fetchedBytes: 300, match: 0, lastIndex: 100, totalBytes: 1000, votes: false })).toBe(300);
    // Raft catch-up alone (no snapshot needed): the share of the log it holds.
    expect(copiedEstimate({ fetchedBytes: 0, match: 25, lastIndex: 100, totalBytes: 1000, votes: false })).toBe(250);
    expect(copiedEstimate({ fetchedBytes: 300, match: 50, lastIndex: 100, totalBytes: 1000, votes: false })).toBe(500);
    // Fetches retried after a leader change count twice: never more than the size.
    expect(copiedEstimate({ fetchedBytes: 5000, match: 0, lastIndex: 100, totalBytes: 1000, votes: false })).toBe(1000);
    // A voter is caught up: all of it.
    expect(copiedEstimate({ fetchedBytes: 0, match: 0, lastIndex: 0, totalBytes: 1000, votes: true })).toBe(1000);
    expect(copiedEstimate({ fetchedBytes: 0, match: 0, lastIndex: 0, totalBytes: 1000, votes: false })).toBe(0);
  });

  it('measures the rate over the last window of readings, and starts over when the count goes back', () => {
    let samples: CopySample[] = [];
    for (let t = 0; t <= 30_000; t += 1000) samples = addCopySample(samples, { atMs: t, bytes: t < 15_000 ? t * 100 : 1_500_000 + (t - 15_000) * 10 });
    // Kept: the window and one reading before it, so the rate is the last 10 s only (10 bytes/ms).
    expect(samples[0]?.atMs).toBe(30_000 - COPY_RATE_WINDOW_MS);
    expect(copyRate(samples)).toBe(10_000);
    expect(copyRate([{ atMs: 0, bytes: 0 }])).toBeNull();
    expect(copyRate([{ atMs: 0, bytes: 0 }, { atMs: 999, bytes: 10 }])).toBeNull(); // under a second: too noisy
    expect(addCopySample(samples, { atMs: 31_000, bytes: 5 })).toEqual([{ atMs: 31_000, bytes: 5 }]); // a new leader counting afresh
  });

  it('gives the time left at the rate: 0 when copied, null when the size or rate is unknown or the copy stalls', () => {
    expect(timeLeftMs(250, 1000, 100)).toBe(7500);
    expect(timeLeftMs(1000, 1000, null)).toBe(0);
    expect(timeLeftMs(1200, 1000, 0)).toBe(0);
    expect(timeLeftMs(null, 1000, 100)).toBeNull();
    expect(timeLeftMs(100, null, 100)).toBeNull();
    expect(timeLeftMs(100, 1000, null)).toBeNull();
    expect(timeLeftMs(100, 1000, 0)).toBeNull();
  });
});

/** A coordinator over a fake engine: metadata in memory, steps answered by a script. */
function harness(options: { draining?: string[]; maxMoves?: number; leader?: boolean; replacementTimeoutMs?: number; autoRebalance?: boolean } = {}) {
  const topics: MovableTopic[] = [{ topic: 't', partitions: [{ replicas: ['b1', 'b2', 'b3'] }, { replicas: ['b1', 'b2', 'b4'] }, { replicas: ['b2', 'b3', 'b4'] }] }];
  let moves: ReplicaMove[] = [];
  let draining = options.draining ?? [];
  let now = 1000;
  let leader = options.leader ?? true;
  const metaMembers = new Set(['b1', 'b2', 'b3', 'b4', 'b5']);
  let unlinked: string[] = [];
  let refusal: string | undefined;
  let rebalanceAsked = false;
  const proposed: MoveCommand[] = [];
  const steps: MoveStepRequest[] = [];
  const preferred: PreferLeaderRequest[] = [];
  const removed: string[] = [];
  const phases = new Map<string, MoveStepAnswer['phase'][]>();
  /** Bytes each step of a group answers, [copied, total], in turn; none: the answer has no byte figures (an older leader). */
  const bytes = new Map<string, Array<[number, number]>>();
  const logs: string[] = [];
  const coordinator = new ReplicaMoveCoordinator({
    isLeader: () => leader,
    topics: () => topics,
    moves: () => moves,
    draining: () => draining,
    targets: () => [...metaMembers].filter((id) => !draining.includes(id) && !unlinked.includes(id)),
    isMetadataMember: (broker) => metaMembers.has(broker),
    unlinked: () => unlinked.filter((id) => metaMembers.has(id)),
    removalRefusal: () => refusal,
    replacementTimeoutMs: options.replacementTimeoutMs ?? 0,
    rebalanceAsked: () => rebalanceAsked,
    autoRebalance: options.autoRebalance === true,
    propose: async (command) => {
      proposed.push(command);
      if (command.type === 'move-replica') {
        moves = [...moves, { topic: command.topic, partition: command.partition, from: command.from, to: command.to, startedAtMs: command.atMs }];
        (topics[0]?.partitions[command.partition] as { learners?: string[] }).learners = [command.to];
      }
      if (command.type === 'drain-broker') draining = command.draining ? [...draining, command.broker] : draining.filter((id) => id !== command.broker);
      if (command.type === 'rebalance') rebalanceAsked = command.on;
      if (command.type === 'prefer-replica') {
        const a = topics[0]?.partitions[command.partition] as { replicas: string[] };
        a.replicas = [command.leader, ...a.replicas.filter((id) => id !== command.leader)];
      }
      if (command.type === 'cancel-move') {
        moves = moves.filter((m) => m.partition !== command.partition);
        delete (topics[0]?.partitions[command.partition] as { learners?: string[] }).learners;
      }
      if (command.type === 'finish-move') {
        moves = moves.filter((m) => m.partition !== command.partition);
        const a = topics[0]?.partitions[command.partition] as { replicas: string[]; learners?: string[] };
        a.replicas = a.replicas.map((id) => (id === command.from ? command.to : id));
        delete a.learners;
      }
      return { kind: 'ok' };
    },
    step: async (request) => {
      steps.push(request);
      const script = phases.get(request.group) ?? ['catching-up', 'promoted', 'removed', 'done'];
      const phase = script.length > 1 ? (script.shift() as MoveStepAnswer['phase']) : (script[0] as MoveStepAnswer['phase']);
      phases.set(request.group, script);
      if (phase === 'pending' as never) throw new Error('leader changed');
      const figures = bytes.get(request.group)?.shift();
      return { phase, leader: 'b2', match: 5, lastIndex: 9, ...(figures === undefined ? {} : { copiedBytes: figures[0], totalBytes: figures[1] }) };
    },
    preferLeader: async (request) => {
      preferred.push(request);
      // The first ask hands over; asked again, the preferred one leads.
      return preferred.filter((r) => r.group === request.group).length === 1 ? 'transferring' : 'preferred';
    },
    removeFromMetadata: async (broker) => {
      removed.push(broker);
      metaMembers.delete(broker);
    },
    maxMoves: options.maxMoves ?? 2,
    now: () => now,
    log: (_level, message) => void logs.push(message),
  });
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 10; i++) await Promise.resolve();
    await new Promise((resolve) => setImmediate(resolve));
  };
  /** Ticks `n` times, 250 ms apart, letting each tick's work finish. */
  const run = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      coordinator.tick();
      await settle();
      now += 250;
    }
  };
  return {
    coordinator, topics, proposed, steps, removed, phases, bytes, logs, run, preferred,
    get moves() { return moves; },
    setLeader: (v: boolean) => { leader = v; },
    setDraining: (v: string[]) => { draining = v; },
    addMove: (m: ReplicaMove) => { moves = [...moves, m]; },
    setUnlinked: (v: string[]) => { unlinked = v; },
    setRefusal: (v: string | undefined) => { refusal = v; },
    askRebalance: () => { rebalanceAsked = true; },
    get rebalanceAsked() { return rebalanceAsked; },
    get draining() { return draining; },
  };
}

describe('ReplicaMoveCoordinator (on the metadata leader)', () => {
  it('drains a broker: starts moves up to the cap, steps each to done, finishes them, then takes the emptied broker out', async () => {
    const h = harness({ draining: ['b1'], maxMoves: 1 });
    await h.run(1);
    expect(h.proposed).toEqual([{ type: 'move-replica', topic: 't', partition: 0, from: 'b1', to: 'b5', atMs: 1000 }]);
    expect(h.moves).toHaveLength(1);
    await h.run(30);
    // Both of b1's replicas moved, one at a time.
    const starts = h.proposed.filter((c) => c.type === 'move-replica');
    const finishes = h.proposed.filter((c) => c.type === 'finish-move');
    expect(starts).toHaveLength(2);
    expect(finishes).toHaveLength(2);
    expect(h.topics[0]?.partitions.every((p) => !p.replicas.includes('b1'))).toBe(true);
    expect(h.removed).toEqual(['b1']);
    // Every step named the partition's group, the draining broker and the target.
    expect(h.steps.every((s) => s.group.startsWith('p/t/') && s.from === 'b1')).toBe(true);
    expect(h.coordinator.progress()).toEqual([]);
  });

  it('shows each move\'s last step and failure; retries a failed step after a pause; does nothing off the metadata leader', async () => {
    const h = harness({ leader: false });
    h.addMove({ topic: 't', partition: 2, from: 'b4', to: 'b1', startedAtMs: 500 });
    h.phases.set('p/t/2', ['pending' as never, 'catching-up', 'catching-up']);
    await h.run(3);
    expect(h.steps).toEqual([]);
    expect(h.coordinator.progress()).toEqual([{ topic: 't', partition: 2, from: 'b4', to: 'b1', startedAtMs: 500, phase: 'pending', match: 0, lastIndex: 0, copiedBytes: null, totalBytes: null, bytesPerSecond: null, timeLeftMs: null }]);
    h.setLeader(true);
    await h.run(1);
    expect(h.steps).toHaveLength(1);
    expect(h.coordinator.progress()[0]).toMatchObject({ phase: 'pending', error: 'leader changed' });
    expect(h.logs).toContain('replica move step failed; retrying');
    // Not again before a second has passed (250 ms ticks).
    await h.run(3);
    expect(h.steps).toHaveLength(1);
    await h.run(1);
    expect(h.steps).toHaveLength(2);
    expect(h.coordinator.progress()[0]).toEqual({ topic: 't', partition: 2, from: 'b4', to: 'b1', startedAtMs: 500, phase: 'catching-up', match: 5, lastIndex: 9, copiedBytes: null, totalBytes: null, bytesPerSecond: null, timeLeftMs: null });
    // Nothing is proposed for a move still catching up.
    expect(h.proposed).toEqual([]);
  });

  it('shows the bytes a move copied, its recent rate and the time left, from the leader\'s answers', async () => {
    const h = harness();
    h.addMove({ topic: 't', partition: 2, from: 'b4', to: 'b1', startedAtMs: 500 });
    h.phases.set('p/t/2', ['catching-up']);
    // One step a tick (250 ms apart): 250 kB more each time, of 10 MB, then stalled.
    h.bytes.set('p/t/2', [0, 1, 2, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4].map((n) => [n * 250_000, 10_000_000]));
    await h.run(2);
    // Less than a second of readings: no rate yet.
    expect(h.coordinator.progress()[0]).toMatchObject({ copiedBytes: 250_000, totalBytes: 10_000_000, bytesPerSecond: null, timeLeftMs: null });
    await h.run(3);
    expect(h.steps).toHaveLength(5);
    expect(h.coordinator.progress()[0]).toMatchObject({ copiedBytes: 1_000_000, totalBytes: 10_000_000, bytesPerSecond: 1_000_000, timeLeftMs: 9_000 });
    // Stalled for a whole window: the rate falls to 0, the time left is unknown.
    await h.run(45);
    expect(h.coordinator.progress()[0]).toMatchObject({ copiedBytes: 1_000_000, bytesPerSecond: 0, timeLeftMs: null });
  });

  it('replaces a member unreachable past the replacement timeout: drains it (its replicas re-created elsewhere), then takes it out', async () => {
    const h = harness({ replacementTimeoutMs: 2000, maxMoves: 4 });
    h.setUnlinked(['b4']);
    await h.run(4); // 750 ms: not yet
    expect(h.proposed).toEqual([]);
    // Back in time: the clock starts again.
    h.setUnlinked([]);
    await h.run(1);
    h.setUnlinked(['b4']);
    await h.run(8); // 1750 ms unlinked
    expect(h.proposed).toEqual([]);
    await h.run(2);
    expect(h.proposed[0]).toEqual({ type: 'drain-broker', broker: 'b4', draining: true });
    expect(h.logs).toContain('replacing a broker unreachable past the replacement timeout: its replicas are re-created on the other brokers');
    await h.run(40);
    // b4's two replicas went to b1/b3/b5 (never to b4 itself), and it left the metadata group.
    expect(h.topics[0]?.partitions.every((p) => p.replicas.length === 3 && !p.replicas.includes('b4'))).toBe(true);
    expect(h.removed).toEqual(['b4']);
    expect(h.proposed.filter((c) => c.type === 'drain-broker')).toHaveLength(1);
  });

  it('does not replace a member it may not take out (too few brokers left), and says so once', async () => {
    const h = harness({ replacementTimeoutMs: 500 });
    h.setRefusal('removing broker b4 would leave 2 brokers, fewer than the replication factor (3): add a broker first');
    h.setUnlinked(['b4']);
    await h.run(12);
    expect(h.proposed).toEqual([]);
    expect(h.logs.filter((l) => l === 'a broker unreachable past the replacement timeout cannot be replaced')).toHaveLength(1);
    // A new metadata leader times it afresh.
    h.setLeader(false);
    await h.run(1);
    h.setLeader(true);
    h.setRefusal(undefined);
    await h.run(1);
    expect(h.proposed).toEqual([]);
    await h.run(3);
    expect(h.proposed[0]).toEqual({ type: 'drain-broker', broker: 'b4', draining: true });
    expect(h.proposed.filter((c) => c.type === 'drain-broker')).toHaveLength(1);
  });

  it('rebalances when asked, a wave at a time, and records when it is done; off by default', async () => {
    const h = harness({ maxMoves: 1 });
    await h.run(5);
    expect(h.proposed).toEqual([]); // counts differ (b5 holds none) but nobody asked
    h.askRebalance();
    await h.run(40);
    // b1..b4 held 2-3 replicas and b5 none: moves onto b5 until counts differ by at most one, then the ask is cleared.
    const counts = ['b1', 'b2', 'b3', 'b4', 'b5'].map((id) => h.topics[0]?.partitions.filter((p) => p.replicas.includes(id)).length);
    expect(Math.max(...(counts as number[])) - Math.min(...(counts as number[]))).toBeLessThanOrEqual(1);
    expect(h.proposed.filter((c) => c.type === 'move-replica').every((c) => c.type === 'move-replica' && c.to === 'b5')).toBe(true);
    expect(h.proposed.at(-1)).toEqual({ type: 'rebalance', on: false });
    expect(h.rebalanceAsked).toBe(false);
    // Before it was recorded done, every partition's leader was asked to hand over to its first replica, then again to see it done.
    const asks = h.topics[0]?.partitions.map((a, p) => ({ group: `p/t/${p}`, preferred: a.replicas[0] }));
    expect(h.preferred).toEqual([...(asks ?? []), ...(asks ?? [])]);
    // Preferred leaders were evened out first: 3 partitions over 5 brokers, no broker preferred twice.
    const firsts = h.topics[0]?.partitions.map((a) => a.replicas[0]);
    expect(new Set(firsts).size).toBe(3);
  });

  it('rebalances once the draining brokers are empty (a drained broker stays recorded as draining)', async () => {
    const h = harness({ maxMoves: 2, draining: ['b9'] });
    h.askRebalance();
    await h.run(40);
    expect(h.proposed.some((c) => c.type === 'move-replica')).toBe(true);
    expect(h.rebalanceAsked).toBe(false);
  });

  it('rebalances by itself with autoRebalance, proposing nothing once even, and says it is rebalancing only until then', async () => {
    const h = harness({ autoRebalance: true, maxMoves: 2 });
    // b5 holds nothing (counts 2, 3, 2, 2, 0): uneven, so rebalancing, asked or not.
    expect(h.coordinator.rebalancing()).toBe(true);
    await h.run(40);
    expect(h.proposed.some((c) => c.type === 'move-replica')).toBe(true);
    const before = h.proposed.length;
    await h.run(10);
    expect(h.proposed.length).toBe(before);
    expect(h.coordinator.rebalancing()).toBe(false);
  });

  it('without autoRebalance, is rebalancing only while asked', () => {
    const h = harness();
    expect(h.coordinator.rebalancing()).toBe(false);
    h.askRebalance();
    expect(h.coordinator.rebalancing()).toBe(true);
  });

  it('gives up a move whose target is being drained, and moves the replica elsewhere', async () => {
    const h = harness({ maxMoves: 1 });
    h.addMove({ topic: 't', partition: 0, from: 'b1', to: 'b5', startedAtMs: 0 });
    (h.topics[0]?.partitions[0] as { learners?: string[] }).learners = ['b5'];
    h.phases.set('p/t/0', ['cancelled']);
    h.setDraining(['b1', 'b5']);
    await h.run(2);
    expect(h.steps[0]).toEqual({ group: 'p/t/0', from: 'b1', to: 'b5', cancel: true });
    expect(h.proposed[0]).toEqual({ type: 'cancel-move', topic: 't', partition: 0, to: 'b5' });
    expect(h.logs).toContain('replica move given up: its target is being drained');
    // b1's replica of t/0 is planned again, to a broker not draining.
    const next = h.proposed.find((c) => c.type === 'move-replica');
    expect(next).toMatchObject({ topic: 't', from: 'b1' });
    expect(next?.type === 'move-replica' && next.to).not.toBe('b5');
  });
});

describe('parseMovesReport (the metadata leader\'s moves, asked by another broker)', () => {
  const report: MovesReport = {
    moves: [
      { topic: 'orders', partition: 2, from: 'b1', to: 'b4', startedAtMs: 1_700_000_000_000, phase: 'catching-up', match: 40, lastIndex: 90, copiedBytes: 1024, totalBytes: 4096, bytesPerSecond: 512.5, timeLeftMs: 6000, error: 'NOT_READY' },
      { topic: 'orders', partition: 3, from: 'b2', to: 'b4', startedAtMs: 1_700_000_000_000, phase: 'pending', match: 0, lastIndex: 0, copiedBytes: null, totalBytes: null, bytesPerSecond: null, timeLeftMs: null },
    ],
    draining: ['b1'],
    rebalancing: true,
  };

  it('reads back what the leader sent', () => {
    expect(parseMovesReport(JSON.parse(JSON.stringify(report)))).toEqual(report);
  });

  it.each([
    ['no moves list', { ...report, moves: undefined }],
    ['an unknown phase', { ...report, moves: [{ ...report.moves[0], phase: 'teleporting' }] }],
    ['a negative match', { ...report, moves: [{ ...report.moves[0], match: -1 }] }],
    ['a copied figure that is text', { ...report, moves: [{ ...report.moves[0], copiedBytes: '12' }] }],
    ['a draining entry that is no broker id', { ...report, draining: [7] }],
    ['no rebalancing flag', { ...report, rebalancing: 'yes' }],
  ])('refuses an answer with %s', (_name, body) => {
    expect(() => parseMovesReport(body)).toThrow('malformed answer to meta.move-progress');
  });
});
