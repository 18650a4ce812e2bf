import { describe, expect, it } from 'vitest';
import { RaftNode } from './node.js';
import { Raft } from './raft.js';
import { drainReady, type ReadyHandlers } from './runner.js';
import { MemoryStorage } from './storage.js';
import type { Entry, Message, RandomSource } from './types.js';

type Msg = Message<string, string>;
const ZERO: RandomSource = { nextInt: () => 0 };

/** A cluster with a manual message queue: enough to unit-test RaftNode behaviour. */
class Mini {
  readonly storages = new Map<string, MemoryStorage<string, string>>();
  readonly nodes = new Map<string, RaftNode<string, string>>();
  readonly applied = new Map<string, string[]>();
  queue: Msg[] = [];

  constructor(
    readonly ids: string[],
    config = {},
  ) {
    for (const id of ids) {
      const storage = new MemoryStorage<string, string>(ids);
      this.storages.set(id, storage);
      this.applied.set(id, []);
      this.nodes.set(id, new RaftNode<string, string>({ id, storage, random: ZERO, config }));
    }
  }

  node(id: string): RaftNode<string, string> {
    return this.nodes.get(id) as RaftNode<string, string>;
  }

  io(id: string): ReadyHandlers<string, string> {
    return {
      storage: this.storages.get(id) as MemoryStorage<string, string>,
      send: (ms) => this.queue.push(...ms),
      restore: () => undefined,
      apply: (es: readonly Entry<string>[]) => {
        for (const e of es) if (e.type === 'normal') this.applied.get(id)?.push(e.data);
      },
    };
  }

  drain(): void {
    for (const id of this.ids) drainReady(this.node(id), this.io(id));
  }

  /** Delivers until quiet (bounded), dropping messages to `isolated`. */
  stabilize(isolated: string[] = []): void {
    this.drain();
    for (let round = 0; round < 100 && this.queue.length > 0; round++) {
      const batch = this.queue;
      this.queue = [];
      for (const m of batch) {
        if (isolated.includes(m.to) || isolated.includes(m.from)) continue;
        this.node(m.to).step(m);
        drainReady(this.node(m.to), this.io(m.to));
      }
    }
  }

  elect(id: string): void {
    this.node(id).campaign();
    this.stabilize();
  }
}

/** a stays silent: b's election timer runs (ticks do nothing to a quiesced node), and c, told a is down, elects b (bounded in ticks). */
function electsBWithoutA(c: Mini): void {
  for (let i = 0; i < 50 && c.node('b').role !== 'leader'; i++) {
    c.node('b').tick();
    c.stabilize(['a']);
  }
  expect(c.node('b').role).toBe('leader');
}

/**
 * a leads a quiesced group of a, b, c; returns the quiesce heartbeat it sent b last, held back (as if still on its
 * way when a's link went silent), with the queue emptied.
 */
function quiescedWithStaleHeartbeat(): { c: Mini; stale: Msg } {
  const c = new Mini(['a', 'b', 'c'], { quiesce: true });
  c.elect('a');
  c.node('a').propose('x');
  c.stabilize();
  let stale: Msg | undefined;
  for (let i = 0; i < 5 && stale === undefined; i++) {
    c.node('a').tick();
    c.drain();
    stale = c.queue.find((m) => m.type === 'heartbeat' && m.to === 'b' && m.quiesce === true);
    if (stale === undefined) c.stabilize();
  }
  if (stale === undefined) throw new Error('a sent b no quiesce heartbeat');
  c.queue = [];
  return { c, stale };
}

describe('RaftNode', () => {
  it('elects a leader, replicates and applies a proposal everywhere', () => {
    const c = new Mini(['a', 'b', 'c']);
    c.elect('a');
    expect(c.node('a').role).toBe('leader');
    expect(c.node('b').leader).toBe('a');
    const result = c.node('a').propose('x');
    expect(result).toEqual({ ok: true, term: 1, firstIndex: 2, lastIndex: 2 });
    c.stabilize();
    c.node('a').tick();
    c.stabilize();
    for (const id of c.ids) expect(c.applied.get(id)).toEqual(['x']);
    const status = c.node('a').status();
    expect(status.progress.map((p) => [p.id, p.match])).toEqual([
      ['a', 2],
      ['b', 2],
      ['c', 2],
    ]);
    expect(c.node('b').status().progress).toEqual([]);
  });

  it('tells followers that hold or are being sent every entry of a commit with an append they do not answer; one that lacks them answers', () => {
    const c = new Mini(['a', 'b', 'c']);
    c.elect('a');
    c.node('a').propose('x');
    c.drain();
    // a's append of x reaches b and c; b's answer commits it.
    const appends = c.queue.splice(0);
    for (const m of appends) c.node(m.to).step(m);
    c.drain();
    const answers = c.queue.splice(0);
    const fromB = answers.find((m) => m.from === 'b' && m.type === 'app-resp') as Msg;
    c.node('a').step(fromB);
    c.drain();
    const commit = c.queue.splice(0);
    // b acknowledged x; c's answer is not in yet, but x was sent to it: both get the commit index alone, marked.
    const toB = commit.find((m) => m.to === 'b' && m.type === 'app');
    const toC = commit.find((m) => m.to === 'c' && m.type === 'app');
    expect(toB).toMatchObject({ entries: [], commit: 2, commitOnly: true });
    expect(toC).toMatchObject({ entries: [], commit: 2, commitOnly: true });
    // c's answer to x's append is its only one (it is still in the queue from before): the carriers add none.
    const answerOfC = answers.find((m) => m.from === 'c' && m.type === 'app-resp') as Msg;
    expect(answerOfC).toMatchObject({ index: 2, reject: false });
    for (const m of [toB, toC] as Msg[]) c.node(m.to).step(m);
    c.drain();
    expect(c.queue.filter((m) => m.type === 'app-resp')).toEqual([]);
    expect(c.node('b').commitIndex).toBe(2);
    expect(c.node('c').commitIndex).toBe(2);
    expect(c.applied.get('b')).toEqual(['x']);
    c.node('a').step(answerOfC);
    expect(c.node('a').status().progress.find((p) => p.id === 'c')?.match).toBe(2);
    // A commit carrier that does not match the follower's log is still answered (rejected).
    c.queue = [];
    c.node('b').step({ type: 'app', from: 'a', to: 'b', term: 1, prevIndex: 5, prevTerm: 1, entries: [], commit: 2, commitOnly: true });
    c.drain();
    expect(c.queue).toMatchObject([{ type: 'app-resp', from: 'b', reject: true, index: 5 }]);
  });

  it('refuses proposals off the leader, during a transfer, when empty and when overloaded', () => {
    const c = new Mini(['a', 'b', 'c'], { maxUncommittedEntries: 4, maxEntriesPerAppend: 2 });
    c.elect('a');
    expect(c.node('b').propose('x')).toEqual({ ok: false, reason: 'not-leader', leader: 'a' });
    expect(c.node('a').proposeBatch([])).toMatchObject({ ok: false, reason: 'empty' });
    expect(c.node('a').proposeBatch(['1', '2', '3', '4', '5'])).toMatchObject({ ok: false, reason: 'overloaded' });
    expect(c.node('a').proposeBatch(['1', '2', '3', '4'])).toMatchObject({ ok: true, firstIndex: 2, lastIndex: 5 });
    expect(c.node('a').propose('5')).toMatchObject({ ok: false, reason: 'overloaded' });
    c.stabilize();
    expect(c.node('a').transferLeadership('z')).toMatchObject({ ok: false, reason: 'unknown-node' });
    expect(c.node('b').transferLeadership('c')).toMatchObject({ ok: false, reason: 'not-leader' });
    c.queue = [];
    expect(c.node('a').transferLeadership('c')).toEqual({ ok: true });
    expect(c.node('a').propose('y')).toMatchObject({ ok: false, reason: 'transferring' });
  });

  it('a single voter commits on its own', () => {
    const c = new Mini(['solo']);
    c.elect('solo');
    expect(c.node('solo').role).toBe('leader');
    c.node('solo').propose('x');
    c.drain();
    expect(c.applied.get('solo')).toEqual(['x']);
  });

  it('mustSync only when the vote, the term or entries change', () => {
    const storage = new MemoryStorage<string, string>(['a', 'b', 'c']);
    const node = new RaftNode<string, string>({ id: 'b', storage, random: ZERO });
    node.step({ type: 'vote', from: 'a', to: 'b', term: 1, lastIndex: 0, lastTerm: 0, transfer: false });
    let rd = node.ready();
    expect(rd.hardState).toEqual({ term: 1, vote: 'a', commit: 0 });
    expect(rd.mustSync).toBe(true);
    expect(rd.messages).toEqual([{ type: 'vote-resp', from: 'b', to: 'a', term: 1, reject: false }]);
    node.advance();
    node.step({ type: 'app', from: 'a', to: 'b', term: 1, prevIndex: 0, prevTerm: 0, commit: 0, entries: [{ type: 'noop', index: 1, term: 1 }] });
    rd = node.ready();
    expect(rd.entriesToPersist).toHaveLength(1);
    expect(rd.mustSync).toBe(true);
    storage.append(rd.entriesToPersist);
    node.advance();
    node.step({ type: 'heartbeat', from: 'a', to: 'b', term: 1, commit: 1 });
    rd = node.ready();
    expect(rd.hardState).toEqual({ term: 1, vote: 'a', commit: 1 });
    expect(rd.mustSync).toBe(false);
    expect(rd.committedEntries.map((e) => e.index)).toEqual([1]);
  });

  it('enforces ready → advance pairing', () => {
    const node = new RaftNode<string, string>({ id: 'a', storage: new MemoryStorage(['a', 'b', 'c']), random: ZERO });
    expect(() => node.advance()).toThrow(/without a ready/);
    node.campaign();
    node.ready();
    expect(node.hasReady()).toBe(false);
    expect(() => node.ready()).toThrow(/before advance/);
    node.advance();
  });

  it('validates its construction', () => {
    const storage = new MemoryStorage<string, string>(['a', 'b', 'c']);
    expect(() => new RaftNode({ id: 'z', storage, random: ZERO })).toThrow(/not among the voters/);
    expect(() => new RaftNode({ id: 'a', storage, random: ZERO, voters: ['a', 'b'] })).toThrow(/conflict with the stored configuration/);
    expect(() => new RaftNode({ id: 'a', storage: new MemoryStorage(), random: ZERO })).toThrow(/no voters/);
    expect(() => new RaftNode({ id: 'a', storage, random: ZERO, config: { electionTicks: 1 } })).toThrow(/electionTicks/);
    expect(new RaftNode({ id: 'a', storage: new MemoryStorage(), random: ZERO, voters: ['a', 'b', 'c'] }).term).toBe(0);
  });

  it('throws on illegal role transitions', () => {
    const raft = (
      new RaftNode<string, string>({ id: 'a', storage: new MemoryStorage(['a', 'b', 'c']), random: ZERO }) as unknown as {
        raft: Raft<string, string>;
      }
    ).raft;
    expect(() => raft.becomeLeader()).toThrow(/follower -> leader/);
    raft.becomePreCandidate();
    expect(() => raft.becomeLeader()).toThrow(/pre-candidate -> leader/);
    raft.becomeCandidate();
    raft.becomeLeader();
    expect(() => raft.becomeCandidate()).toThrow(/leader -> candidate/);
    expect(() => raft.becomePreCandidate()).toThrow(/leader -> pre-candidate/);
  });

  it('a pre-candidate keeps its term; a leader without a quorum steps down (check-quorum)', () => {
    const c = new Mini(['a', 'b', 'c']);
    c.elect('a');
    for (let i = 0; i < 10; i++) c.node('b').tick();
    c.drain();
    expect(c.node('b').role).toBe('pre-candidate');
    expect(c.node('b').term).toBe(1);
    c.queue = [];
    // a hears nobody for two election timeouts.
    for (let i = 0; i < 20; i++) {
      c.node('a').tick();
      c.queue = [];
    }
    expect(c.node('a').role).toBe('follower');
    expect(c.node('a').counters.checkQuorumStepDowns).toBe(1);
  });

  it('check-quorum counts the votes that elected a leader in its first round: cut off at once, it steps down after two election timeouts', () => {
    const c = new Mini(['a', 'b', 'c']);
    c.node('a').campaign();
    c.drain();
    // Deliver the (pre-)votes and their grants, until a leads; then nothing more from b or c (their answers to
    // a's first append lost, or late).
    for (let round = 0; round < 10 && c.node('a').role !== 'leader'; round++) {
      const batch = c.queue;
      c.queue = [];
      for (const m of batch) {
        c.node(m.to).step(m);
        c.drain();
      }
    }
    expect(c.node('a').role).toBe('leader');
    c.queue = [];
    for (let i = 0; i < 10; i++) {
      c.node('a').tick();
      c.queue = [];
    }
    expect(c.node('a').role).toBe('leader');
    for (let i = 0; i < 10; i++) {
      c.node('a').tick();
      c.queue = [];
    }
    expect(c.node('a').role).toBe('follower');
    expect(c.node('a').counters.checkQuorumStepDowns).toBe(1);
  });

  it('leaderContact tells which leader of the term last reached a node and how many ticks ago, suspected or not', () => {
    const c = new Mini(['a', 'b', 'c']);
    c.elect('a');
    expect(c.node('a').leaderContact).toBeUndefined(); // the leader
    expect(c.node('b').leaderContact).toEqual({ leader: 'a', ticksAgo: 0 });
    c.node('b').tick();
    c.node('b').tick();
    expect(c.node('b').leaderContact).toEqual({ leader: 'a', ticksAgo: 2 });
    c.node('a').tick(); // a heartbeat
    c.stabilize();
    expect(c.node('b').leaderContact).toEqual({ leader: 'a', ticksAgo: 0 });
    // Suspected by the failure detector while its bytes still arrive (a one-way fault): b campaigns, and still counts.
    c.node('b').peerDown('a', true);
    c.node('b').tick();
    c.drain();
    expect(c.node('b').role).toBe('pre-candidate');
    expect(c.node('b').leaderContact).toEqual({ leader: 'a', ticksAgo: 1 });
    // A new term forgets it.
    c.queue = [];
    c.elect('c');
    expect(c.node('b').leaderContact).toEqual({ leader: 'c', ticksAgo: 0 });
  });

  it('a quiesced leader wakes when a peer link comes up, and heartbeats until that peer answers', () => {
    const c = new Mini(['a', 'b', 'c'], { quiesce: true });
    c.elect('a');
    c.node('a').propose('x');
    c.stabilize();
    for (let i = 0; i < 5 && !c.node('a').quiesced; i++) {
      c.node('a').tick();
      c.stabilize();
    }
    expect(c.node('a').quiesced).toBe(true);
    // b restarts and knows no leader; a quiesced leader sends it nothing, however long it ticks.
    const b = new RaftNode<string, string>({ id: 'b', storage: c.storages.get('b') as MemoryStorage<string, string>, random: ZERO, config: { quiesce: true } });
    c.nodes.set('b', b);
    c.node('a').tick();
    c.drain();
    expect(c.queue).toEqual([]);
    expect(c.node('b').peerUp('a')).toBe(false); // only a leader counting the peer wakes
    expect(c.node('a').peerUp('b')).toBe(true);
    expect(c.node('a').quiesced).toBe(false);
    // b's answers are lost: a keeps heartbeating rather than quiescing again on b's word from before the restart.
    for (let i = 0; i < 3; i++) {
      c.node('a').tick();
      c.stabilize(['b']);
      expect(c.node('a').quiesced).toBe(false);
    }
    c.node('a').tick();
    c.stabilize();
    expect(b.leader).toBe('a');
    expect(b.commitIndex).toBe(c.node('a').commitIndex);
  });

  it('a leader quiesces without a replica the failure detector suspects, and waits for it again once its link comes up', () => {
    const c = new Mini(['a', 'b', 'c'], { quiesce: true });
    c.elect('a');
    const tickUntilQuiet = (isolated: string[]): void => {
      for (let i = 0; i < 5 && !c.node('a').quiesced; i++) {
        c.node('a').tick();
        c.stabilize(isolated);
      }
    };
    // c's broker dies: x reaches b only, and a heartbeats for as long as it waits for c.
    c.node('a').propose('x');
    c.stabilize(['c']);
    tickUntilQuiet(['c']);
    expect(c.node('a').quiesced).toBe(false);
    // Suspected (a leader is told too, though it follows no one): b and a, holding a quorum, quiesce.
    expect(c.node('a').peerDown('c', true)).toBe(false);
    expect(c.node('b').peerDown('c', true)).toBe(false);
    tickUntilQuiet(['c']);
    expect(c.node('a').quiesced).toBe(true);
    expect(c.node('b').quiesced).toBe(true);
    expect(c.node('a').role).toBe('leader');
    // c comes back: its link up wakes a, which heartbeats and catches it up before quiescing again.
    expect(c.node('a').peerUp('c')).toBe(true);
    tickUntilQuiet([]);
    expect(c.node('a').quiesced).toBe(true);
    expect(c.applied.get('c')).toEqual(['x']);
    expect(c.node('c').commitIndex).toBe(c.node('a').commitIndex);
  });

  it('a quiesce heartbeat the leader sent before the failure detector suspected it does not put its follower back to sleep', () => {
    const { c, stale } = quiescedWithStaleHeartbeat();
    // The failure detector tells b and c that a is down; then a's stale heartbeat reaches b.
    expect(c.node('b').peerDown('a', true)).toBe(true);
    expect(c.node('c').peerDown('a', false)).toBe(true);
    c.node('b').step(stale);
    c.drain();
    expect(c.node('b').quiesced).toBe(false);
    // Its answer is not marked quiesce: a leader still alive heartbeats again (and then quiesces them for good).
    expect(c.queue.filter((m) => m.type === 'heartbeat-resp' && m.from === 'b').map((m) => m.type === 'heartbeat-resp' && m.quiesce)).toEqual([undefined]);
    electsBWithoutA(c);
  });

  it('nor does that heartbeat put to sleep a follower the suspicion sent campaigning (a pre-candidate keeps its term, so it takes the heartbeat)', () => {
    const { c, stale } = quiescedWithStaleHeartbeat();
    expect(c.node('b').peerDown('a', true)).toBe(true);
    expect(c.node('c').peerDown('a', false)).toBe(true);
    // b campaigns at its next tick; its pre-votes are still on their way when a's stale heartbeat reaches it.
    c.node('b').tick();
    c.drain();
    expect(c.node('b').role).toBe('pre-candidate');
    c.queue = [];
    c.node('b').step(stale);
    c.drain();
    expect(c.node('b').role).toBe('follower');
    expect(c.node('b').quiesced).toBe(false);
    electsBWithoutA(c);
  });

  it('nor does a second such heartbeat, behind the first (the first one answered says nothing of when the second was sent)', () => {
    const { c, stale } = quiescedWithStaleHeartbeat();
    expect(c.node('b').peerDown('a', false)).toBe(true);
    expect(c.node('c').peerDown('a', false)).toBe(true);
    // a heartbeated twice before it died (its heartbeat period is shorter than the network's delay): both land now.
    c.node('b').step(stale);
    c.node('b').step(stale);
    c.drain();
    expect(c.node('b').quiesced).toBe(false);
    c.queue = [];
    electsBWithoutA(c);
  });

  it('a follower told its leader is down quiesces again once the failure detector says it recovered (a false suspicion costs heartbeats until then)', () => {
    const { c, stale } = quiescedWithStaleHeartbeat();
    expect(c.node('b').peerDown('a', false)).toBe(true);
    c.node('b').step(stale);
    c.node('b').step(stale);
    expect(c.node('b').quiesced).toBe(false);
    c.node('b').peerRecovered('a');
    c.node('b').step(stale);
    expect(c.node('b').quiesced).toBe(true);
  });

  it('a leader never quiesces on a minority of unsuspected voters: check-quorum still ends its leadership', () => {
    const c = new Mini(['a', 'b', 'c'], { quiesce: true });
    c.elect('a');
    c.node('a').peerDown('b', true);
    c.node('a').peerDown('c', true);
    // Both suspected, both cut off: a keeps ticking, and check-quorum ends its leadership.
    for (let i = 0; i < 25 && c.node('a').role === 'leader'; i++) {
      expect(c.node('a').quiesced).toBe(false);
      c.node('a').tick();
      c.stabilize(['b', 'c']);
    }
    expect(c.node('a').counters.checkQuorumStepDowns).toBe(1);
  });

  it('a suspected replica heard from again is waited for before quiescing', () => {
    const c = new Mini(['a', 'b', 'c'], { quiesce: true });
    c.elect('a');
    // A false suspicion: c answers the next heartbeat, which undoes it.
    c.node('a').peerDown('c', true);
    c.node('a').tick();
    c.stabilize();
    // Then c is cut off for real, unsuspected: a does not quiesce while c lacks z.
    c.node('a').propose('z');
    c.stabilize(['c']);
    for (let i = 0; i < 5; i++) {
      c.node('a').tick();
      c.stabilize(['c']);
    }
    expect(c.node('a').quiesced).toBe(false);
  });

  it('a peer link coming up, however often, never makes a leader step down by check-quorum', () => {
    const c = new Mini(['a', 'b', 'c'], { quiesce: true });
    c.elect('a');
    // c is gone; b answers every heartbeat, but its link flaps up just before each of a's ticks.
    for (let i = 0; i < 40; i++) {
      c.node('a').peerUp('b');
      c.node('a').tick();
      c.stabilize(['c']);
    }
    expect(c.node('a').role).toBe('leader');
    expect(c.node('a').counters.checkQuorumStepDowns).toBe(0);
  });

  it('restarts from storage with its term, vote and log', () => {
    const c = new Mini(['a', 'b', 'c']);
    c.elect('a');
    c.node('a').propose('x');
    c.stabilize();
    const restarted = new RaftNode<string, string>({ id: 'a', storage: c.storages.get('a') as MemoryStorage<string, string>, random: ZERO });
    expect(restarted.term).toBe(1);
    expect(restarted.role).toBe('follower');
    expect(restarted.lastIndex).toBe(2);
    expect(restarted.commitIndex).toBe(2);
    expect(restarted.appliedIndex).toBe(0);
    const rd = restarted.ready();
    expect(rd.committedEntries.map((e) => e.index)).toEqual([1, 2]);
    expect(rd.hardState).toBeUndefined();
  });

  it('ignores messages for others and from non-voters', () => {
    const node = new RaftNode<string, string>({ id: 'a', storage: new MemoryStorage(['a', 'b', 'c']), random: ZERO });
    node.step({ type: 'heartbeat', from: 'b', to: 'x', term: 5, commit: 0 });
    node.step({ type: 'heartbeat', from: 'z', to: 'a', term: 5, commit: 0 });
    expect(node.term).toBe(0);
    expect(node.counters.messagesIgnored).toBe(2);
  });

  it('status reports the leader view of every follower', () => {
    const c = new Mini(['a', 'b', 'c']);
    c.elect('a');
    c.node('a').proposeBatch(['x', 'y']);
    c.stabilize(['c']);
    const s = c.node('a').status();
    expect(s).toMatchObject({ id: 'a', role: 'leader', leader: 'a', term: 1, commit: 3, lastIndex: 3, transferee: null });
    expect(s.progress.find((p) => p.id === 'c')?.match).toBe(1);
    expect(s.progress.find((p) => p.id === 'b')?.match).toBe(3);
  });
});
