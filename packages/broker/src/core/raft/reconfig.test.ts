/**
 * Membership changes through `RaftNode`: learners, promotion, removal (the
 * leader's too), the rules on when a change may be proposed, and the
 * configuration surviving restarts and snapshots.
 */
import { describe, expect, it } from 'vitest';
import { RaftNode } from './node.js';
import { NO_TESTING_KNOBS } from './raft.js';
import { drainReady, type ReadyHandlers } from './runner.js';
import { MemoryStorage } from './storage.js';
import type { ConfState, Entry, Message, RandomSource } from './types.js';

type Msg = Message<string, string>;
const ZERO: RandomSource = { nextInt: () => 0 };

/** A cluster with a manual message queue, where nodes can be added later. */
class Cluster {
  readonly storages = new Map<string, MemoryStorage<string, string>>();
  readonly nodes = new Map<string, RaftNode<string, string>>();
  readonly applied = new Map<string, Entry<string>[]>();
  queue: Msg[] = [];

  constructor(
    readonly bootstrap: string[],
    private readonly config = {},
    private readonly knobs = NO_TESTING_KNOBS,
  ) {
    for (const id of bootstrap) this.add(id);
  }

  /** Starts `id` (a new node with the bootstrap configuration and an empty log), or restarts it from its storage. */
  add(id: string): RaftNode<string, string> {
    let storage = this.storages.get(id);
    if (storage === undefined) {
      storage = new MemoryStorage<string, string>(this.bootstrap);
      this.storages.set(id, storage);
    }
    this.applied.set(id, []);
    const node = new RaftNode<string, string>({ id, storage, random: ZERO, config: this.config, joining: true }, this.knobs);
    this.nodes.set(id, node);
    return node;
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
        this.applied.get(id)?.push(...es);
      },
    };
  }

  drain(): void {
    for (const id of this.nodes.keys()) drainReady(this.node(id), this.io(id));
  }

  stabilize(isolated: string[] = []): void {
    this.drain();
    for (let round = 0; round < 100 && this.queue.length > 0; round++) {
      const batch = this.queue;
      this.queue = [];
      for (const m of batch) {
        if (isolated.includes(m.to) || isolated.includes(m.from) || !this.nodes.has(m.to)) continue;
        this.node(m.to).step(m);
        drainReady(this.node(m.to), this.io(m.to));
      }
    }
  }

  tick(id: string, n: number): void {
    for (let i = 0; i < n; i++) {
      this.node(id).tick();
      drainReady(this.node(id), this.io(id));
    }
  }

  elect(id: string): void {
    this.node(id).campaign();
    this.stabilize();
  }

  confs(): Map<string, ConfState> {
    return new Map([...this.nodes].map(([id, n]) => [id, n.confState]));
  }
}

const voters = (n: RaftNode<string, string>): string[] => [...n.status().voters].sort();
const learners = (n: RaftNode<string, string>): string[] => [...n.status().learners].sort();

describe('membership changes', () => {
  it('a learner receives the log, is reported apart, never campaigns, and does not count for the quorum', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.add('d');
    expect(c.node('a').proposeConfChange({ type: 'add-learner', node: 'd' })).toMatchObject({ ok: true, index: 2, term: 1 });
    c.node('a').propose('x');
    c.stabilize();
    expect(c.node('d').lastIndex).toBe(3);
    expect(c.applied.get('d')?.map((e) => e.index)).toEqual([1, 2, 3]);
    expect(learners(c.node('a'))).toEqual(['d']);
    const status = c.node('a').status();
    expect(status.progress.map((p) => p.id)).toEqual(['a', 'b', 'c']);
    expect(status.learnerProgress.map((p) => [p.id, p.match])).toEqual([['d', 3]]);
    // The learner times out but does not campaign.
    c.tick('d', 50);
    expect(c.node('d').role).toBe('follower');
    expect(c.node('d').term).toBe(1);
    // Two voters down: the learner does not make up a quorum with the leader.
    c.node('a').propose('y');
    c.stabilize(['b', 'c']);
    expect(c.node('d').lastIndex).toBe(4);
    expect(c.node('a').commitIndex).toBe(3);
    // Nor can it be handed leadership.
    expect(c.node('a').transferLeadership('d')).toMatchObject({ ok: false, reason: 'unknown-node' });
  });

  it('promotion makes the learner a voter: the quorum grows to 3 of 4', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.add('d');
    c.node('a').proposeConfChange({ type: 'add-learner', node: 'd' });
    c.stabilize();
    expect(c.node('a').proposeConfChange({ type: 'promote', node: 'd' })).toMatchObject({ ok: true, index: 3 });
    c.stabilize();
    for (const id of ['a', 'b', 'c', 'd']) expect(voters(c.node(id))).toEqual(['a', 'b', 'c', 'd']);
    c.node('a').propose('x');
    c.stabilize(['b', 'c']);
    expect(c.node('a').commitIndex).toBe(3); // a and d are 2 of 4
    c.stabilize();
    c.tick('a', 1);
    c.stabilize();
    expect(c.node('a').commitIndex).toBe(4);
    // d may now lead.
    expect(c.node('a').transferLeadership('d')).toEqual({ ok: true });
    c.stabilize();
    expect(c.node('d').role).toBe('leader');
  });

  it('refuses a change off the leader, during a transfer, while one is pending, before the term commits, and invalid ones', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.node('a').campaign();
    // Deliver the election, but not the no-op's acknowledgements.
    for (let i = 0; i < 4; i++) {
      c.drain();
      const batch = c.queue;
      c.queue = [];
      for (const m of batch) {
        c.node(m.to).step(m);
        drainReady(c.node(m.to), c.io(m.to));
      }
    }
    expect(c.node('a').role).toBe('leader');
    expect(c.node('a').proposeConfChange({ type: 'add-learner', node: 'd' })).toMatchObject({ ok: false, reason: 'term-not-committed' });
    c.stabilize();
    expect(c.node('b').proposeConfChange({ type: 'add-learner', node: 'd' })).toEqual({ ok: false, reason: 'not-leader', leader: 'a' });
    expect(c.node('a').proposeConfChange({ type: 'promote', node: 'b' })).toMatchObject({ ok: false, reason: 'invalid', detail: 'b is not a learner (it already votes)' });
    expect(c.node('a').proposeConfChange({ type: 'add-learner', node: 'd' })).toMatchObject({ ok: true });
    expect(c.node('a').proposeConfChange({ type: 'add-learner', node: 'e' })).toMatchObject({ ok: false, reason: 'change-pending' });
    c.stabilize(['b', 'c', 'd']);
    expect(c.node('a').proposeConfChange({ type: 'add-learner', node: 'e' })).toMatchObject({ ok: false, reason: 'change-pending' });
    c.stabilize();
    c.queue = [];
    expect(c.node('a').transferLeadership('b')).toEqual({ ok: true });
    expect(c.node('a').proposeConfChange({ type: 'add-learner', node: 'e' })).toMatchObject({ ok: false, reason: 'transferring' });
  });

  it('the injected bugs let overlapping changes through, and changes before the term commits', () => {
    const overlapping = new Cluster(['a', 'b', 'c'], {}, { ...NO_TESTING_KNOBS, allowOverlappingConfChanges: true });
    overlapping.elect('a');
    expect(overlapping.node('a').proposeConfChange({ type: 'add-learner', node: 'd' })).toMatchObject({ ok: true });
    expect(overlapping.node('a').proposeConfChange({ type: 'promote', node: 'd' })).toMatchObject({ ok: true });
    const fresh = new Cluster(['a', 'b', 'c'], {}, { ...NO_TESTING_KNOBS, confChangeBeforeTermCommitted: true });
    fresh.node('a').campaign();
    for (let i = 0; i < 4; i++) {
      fresh.drain();
      const batch = fresh.queue;
      fresh.queue = [];
      for (const m of batch) {
        fresh.node(m.to).step(m);
        drainReady(fresh.node(m.to), fresh.io(m.to));
      }
    }
    expect(fresh.node('a').role).toBe('leader');
    expect(fresh.node('a').proposeConfChange({ type: 'add-learner', node: 'd' })).toMatchObject({ ok: true });
  });

  it('removing a follower: the leader stops replicating to it and the removed node cannot disrupt the group', () => {
    const c = new Cluster(['a', 'b', 'c'], { preVote: false, checkQuorum: false });
    c.elect('a');
    c.node('a').proposeConfChange({ type: 'remove', node: 'c' });
    c.stabilize(['c']);
    expect(voters(c.node('a'))).toEqual(['a', 'b']);
    expect(c.node('a').status().progress.map((p) => p.id)).toEqual(['a', 'b']);
    c.node('a').propose('x');
    c.stabilize();
    expect(c.node('a').commitIndex).toBe(3);
    // c never heard of its removal: it campaigns with higher and higher terms, ignored.
    const ignoredBefore = c.node('a').counters.messagesIgnored;
    for (let round = 0; round < 3; round++) {
      c.tick('c', 25);
      c.stabilize();
    }
    expect(c.node('c').term).toBeGreaterThan(2);
    expect(c.node('a').role).toBe('leader');
    expect(c.node('a').term).toBe(1);
    expect(c.node('b').term).toBe(1);
    expect(c.node('a').counters.messagesIgnored).toBeGreaterThan(ignoredBefore);
  });

  it('removing the leader: it leads until the change commits, then hands over and never campaigns again', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    expect(c.node('a').proposeConfChange({ type: 'remove', node: 'a' })).toMatchObject({ ok: true, conf: { voters: ['b', 'c'], learners: [] } });
    // Not committed while b and c do not both hold it: a does not count itself.
    c.stabilize(['c']);
    expect(c.node('a').role).toBe('leader');
    expect(c.node('a').commitIndex).toBe(1);
    c.stabilize();
    c.tick('a', 1);
    c.stabilize();
    expect(c.node('a').role).toBe('follower');
    expect(c.node('a').counters.removedStepDowns).toBe(1);
    const leaders = ['b', 'c'].filter((id) => c.node(id).role === 'leader');
    expect(leaders).toHaveLength(1);
    const leader = leaders[0] as string;
    c.node(leader).propose('after');
    c.stabilize();
    expect(c.node(leader).commitIndex).toBe(4);
    c.tick('a', 100);
    c.stabilize();
    expect(c.node('a').role).toBe('follower');
    expect(c.node(leader).role).toBe('leader');
  });

  it('removing the leader: it refuses proposals meanwhile, so a voter holds its whole log when the removal commits', () => {
    const c = new Cluster(['a', 'b', 'c'], { checkQuorum: true, preVote: true });
    c.elect('a');
    c.node('a').proposeConfChange({ type: 'remove', node: 'a' });
    c.drain();
    // An entry after the removal would be lost here on its way to b and c (dropped below): the removal still commits,
    // and then no voter holds a's whole log, so a would step down without a successor and b and c, in its lease, would
    // wait out an election timeout.
    expect(c.node('a').propose('y')).toMatchObject({ ok: false, reason: 'transferring', leader: 'a' });
    const sent: Msg[] = [];
    for (let round = 0; round < 100 && c.queue.length > 0; round++) {
      const batch = c.queue;
      c.queue = [];
      for (const m of batch) {
        sent.push(m);
        if (m.type === 'app' && m.entries.some((e) => e.type === 'normal' && e.data === 'y')) continue;
        c.node(m.to).step(m);
        drainReady(c.node(m.to), c.io(m.to));
      }
    }
    expect(c.node('a').counters.removedStepDowns).toBe(1);
    expect(sent.some((m) => m.type === 'timeout-now' && m.from === 'a')).toBe(true);
    expect(['b', 'c'].filter((id) => c.node(id).role === 'leader')).toHaveLength(1);
  });

  it('a restart restores the configuration from the log, a truncation undoes an uncommitted change', () => {
    const c = new Cluster(['a', 'b', 'c'], { checkQuorum: false });
    c.elect('a');
    c.add('d');
    c.node('a').proposeConfChange({ type: 'add-learner', node: 'd' });
    c.stabilize();
    c.node('a').proposeConfChange({ type: 'promote', node: 'd' });
    c.stabilize();
    const restarted = c.add('b');
    expect(voters(restarted)).toEqual(['a', 'b', 'c', 'd']);
    expect(restarted.status().confIndex).toBe(3);
    // A node started outside the configuration it finds is refused unless joining.
    expect(() => new RaftNode({ id: 'e', storage: c.storages.get('b') as MemoryStorage<string, string>, random: ZERO })).toThrow(/not among the voters/);
    expect(new RaftNode({ id: 'd', storage: c.storages.get('b') as MemoryStorage<string, string>, random: ZERO }).confState.voters).toContain('d');

    // An uncommitted removal on a cut-off leader is truncated by the next leader, and undone.
    c.node('a').proposeConfChange({ type: 'remove', node: 'c' });
    c.drain();
    c.queue = [];
    expect(voters(c.node('a'))).toEqual(['a', 'b', 'd']);
    c.node('b').campaign();
    c.stabilize(['a']);
    expect(c.node('b').role).toBe('leader');
    c.node('b').propose('y');
    c.stabilize();
    c.tick('b', 1);
    c.stabilize();
    expect(c.node('a').leader).toBe('b');
    expect(voters(c.node('a'))).toEqual(['a', 'b', 'c', 'd']);
    expect(c.node('a').status().confIndex).toBe(3);
  });

  it('snapshots carry the configuration; a follower installing one takes it on', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.add('d');
    c.node('a').proposeConfChange({ type: 'add-learner', node: 'd' });
    c.stabilize();
    c.node('a').propose('x');
    c.stabilize();
    c.tick('a', 1);
    c.stabilize();
    const storage = c.storages.get('a') as MemoryStorage<string, string>;
    const early = storage.createSnapshot(1, 'sm@1');
    expect(early.meta.conf).toEqual({ voters: ['a', 'b', 'c'] });
    const snap = storage.createSnapshot(3, 'sm@3');
    expect(snap.meta.conf).toEqual({ voters: ['a', 'b', 'c'], learners: ['d'] });
    storage.compact(3);
    // A new learner e, added after the snapshot: it gets the snapshot (whose configuration lacks it), then the rest.
    c.add('e');
    c.node('a').proposeConfChange({ type: 'add-learner', node: 'e' });
    for (let i = 0; i < 5; i++) {
      c.stabilize();
      c.tick('a', 1);
    }
    c.stabilize();
    expect(c.node('a').counters.snapshotsSent).toBeGreaterThan(0);
    c.node('a').reportSnapshot('e', true);
    for (let i = 0; i < 3; i++) {
      c.tick('a', 1);
      c.stabilize();
    }
    const e = c.node('e');
    expect(e.counters.snapshotsInstalled).toBe(1);
    expect(e.lastIndex).toBe(4);
    expect(learners(e)).toEqual(['d', 'e']);
    // Restarted from its storage (snapshot + log), e still knows it.
    const restarted = c.add('e');
    expect(learners(restarted)).toEqual(['d', 'e']);
    expect(restarted.status().confIndex).toBe(4);
    // And a restart from the snapshot alone.
    const only = new MemoryStorage<string, string>();
    only.applySnapshot(snap);
    expect(new RaftNode({ id: 'd', storage: only, random: ZERO }).status()).toMatchObject({ voters: ['a', 'b', 'c'], learners: ['d'], confIndex: 3 });
  });
});
