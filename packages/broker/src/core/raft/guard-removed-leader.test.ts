/**
 * Liveness of the election guard (docs/raft.md, "Two voters beside three") when the removed voter was the leader
 * that committed its own removal. In the broker its replica goes away once it stepped down (a replica move's last
 * step, a decommission). If no survivor knows the removal committed, none attests it, and a candidate of the two (or
 * one) voters left wins by supporters only with a win among the previous voters — which needs the removed one: with a
 * survivor recovering (a power cut meanwhile), the group then elects only if the removed voter answers. That state
 * itself cannot elect safely (a survivor's log holding an uncommitted removal looks the same), so the removed leader
 * must not leave it behind: once its removal commits it heartbeats the commit until a voter answers that it knows
 * (`HeartbeatResponse.commit`), then hands over; its appends and `timeout-now` carrying the commit may all be lost.
 * An election timeout without such an answer, it hands over anyway, the `timeout-now` carrying its commit
 * (`TimeoutNowMessage.commit`): the stall is left only if that is lost too and no voter answered a heartbeat for an
 * election timeout (`removalsUnacknowledged`). These two stories were `it.fails` (staged as the state they leave)
 * before the wait.
 */
import { describe, expect, it } from 'vitest';
import { ManualRaftCluster } from '../../../test/support/manual-raft.js';
import type { RaftConfigOptions } from './config.js';
import type { VoteResponse } from './types.js';
import { conf, noop, storageOf, value } from '../../../test/support/raft-entries.js';
import type { Msg } from '../../../test/support/manual-raft.js';
import { drainReady } from './runner.js';

const BASE: RaftConfigOptions = { preVote: true, checkQuorum: true, unsyncedAcks: true };
const RECOVERING: RaftConfigOptions = { ...BASE, recoveringAtStart: true };

/** The (pre-)vote answers sent so far. */
const answers = (cl: ManualRaftCluster): VoteResponse[] => cl.sent.filter((m): m is VoteResponse => m.type === 'vote-resp' || m.type === 'pre-vote-resp');

/**
 * `b` leads `all` and removes itself; every message is delivered but those `lost` drops (and the `timeout-now`, held
 * and returned), until quiet. Returns the removal's index and the held `timeout-now`.
 */
function removeLeaderB(cl: ManualRaftCluster, all: readonly string[], lost: (m: Msg, removal: number) => boolean): { removal: number; handover: Msg | undefined } {
  cl.campaign('b', all);
  expect(cl.node('b').status().role).toBe('leader');
  expect(cl.node('b').proposeConfChange({ type: 'remove', node: 'b' })).toMatchObject({ ok: true });
  const removal = cl.node('b').lastIndex;
  let handover: Msg | undefined;
  for (const id of all) drainReady(cl.node(id), cl.io(id));
  for (let round = 0; round < 100 && cl.queue.length > 0; round++) {
    const batch = cl.queue;
    cl.queue = [];
    for (const m of batch) {
      if (m.type === 'timeout-now') handover = m;
      if (m.type === 'timeout-now' || lost(m, removal)) continue;
      cl.node(m.to).step(m);
      drainReady(cl.node(m.to), cl.io(m.to));
    }
  }
  return { removal, handover };
}

/** b's appends that carry the removal's commit. */
const commitCarrier = (m: Msg, removal: number): boolean => m.from === 'b' && m.type === 'app' && m.commit >= removal;

describe('a removed leader that committed its own removal hands over once a survivor knows it, its appends and timeout-now lost', () => {
  it('3 → 2: a acknowledges the commit (c never hears it), b steps down and goes, a loses power: c is elected with a (recovering)', () => {
    const all = ['a', 'b', 'c'];
    const cl = new ManualRaftCluster(all, BASE);
    // Everything b says to c after the removal commits is lost, and its appends to a carrying the commit.
    const { removal, handover } = removeLeaderB(cl, all, (m, k) => commitCarrier(m, k) || (m.from === 'b' && m.to === 'c' && m.type === 'heartbeat'));
    expect(cl.node('b').status().role).toBe('follower');
    expect(cl.node('b').counters).toMatchObject({ removedStepDowns: 1, removalsUnacknowledged: 0 });
    expect(handover).toMatchObject({ from: 'b', to: 'a' });
    expect([cl.node('a').status().commit, cl.node('c').status().commit]).toEqual([removal, removal - 1]);
    // b is gone for good; a loses power (its commit passed the removal: durable) and restarts recovering.
    cl.restart('a', RECOVERING);
    expect(cl.node('a').status()).toMatchObject({ recovering: true, commit: removal });
    cl.campaign('c', ['a', 'c']);
    expect(answers(cl).some((m) => m.from === 'a' && m.to === 'c' && m.committedIndex === removal)).toBe(true);
    expect(cl.node('c').counters.leaderships).toBe(1);
  });

  it('2 → 1: a acknowledges the commit, b steps down and goes, a loses power: a (recovering) is elected alone', () => {
    const all = ['a', 'b'];
    const cl = new ManualRaftCluster(all, BASE);
    const { removal, handover } = removeLeaderB(cl, all, commitCarrier);
    expect(cl.node('b').counters).toMatchObject({ removedStepDowns: 1, removalsUnacknowledged: 0 });
    expect(handover).toMatchObject({ from: 'b', to: 'a' });
    expect(cl.node('a').status().commit).toBe(removal);
    cl.restart('a', RECOVERING);
    expect(cl.node('a').status().recovering).toBe(true);
    cl.campaign('a', ['a']);
    expect(cl.node('a').counters.leaderships).toBe(1);
  });

  it('it leads on (refusing proposals and changes) until a voter answers, heartbeating the commit', () => {
    const all = ['a', 'b', 'c'];
    const cl = new ManualRaftCluster(all, BASE);
    // b hears no answer to a heartbeat after the removal commits.
    const { removal } = removeLeaderB(cl, all, (m, k) => commitCarrier(m, k) || m.type === 'heartbeat-resp');
    expect(cl.node('b').status().role).toBe('leader');
    expect(cl.node('b').propose('x')).toMatchObject({ ok: false, reason: 'transferring' });
    expect(cl.node('b').proposeConfChange({ type: 'add-learner', node: 'd' })).toMatchObject({ ok: false, reason: 'transferring' });
    const sent = cl.sent.length;
    cl.node('b').tick();
    cl.node('b').tick();
    drainReady(cl.node('b'), cl.io('b'));
    const heartbeats = cl.sent.slice(sent).filter((m) => m.type === 'heartbeat');
    expect(new Set(heartbeats.map((m) => m.to))).toEqual(new Set(['a', 'c']));
    expect(heartbeats.every((m) => m.type === 'heartbeat' && m.commit === removal)).toBe(true);
    cl.run(all);
    expect(cl.node('b').status().role).toBe('follower');
    expect(cl.node('b').counters).toMatchObject({ removedStepDowns: 1, removalsUnacknowledged: 0 });
  });
});

describe('the removed leader\'s wait is bounded from its removal\'s commit', () => {
  /** Ticks `b`, awaiting a voter's acknowledgement that never comes, until it hands over; `transferAt`: a tick to ask it to transfer at. */
  const ticksToHandover = (transferAt?: number): number => {
    const all = ['a', 'b', 'c'];
    const cl = new ManualRaftCluster(all, BASE);
    const silent = (m: Msg, k: number): boolean => commitCarrier(m, k) || m.type === 'heartbeat-resp';
    removeLeaderB(cl, all, silent);
    const b = cl.node('b');
    let ticks = 0;
    for (; ticks < 100 && b.status().role === 'leader'; ticks++) {
      if (ticks === transferAt) expect(b.transferLeadership('a')).toEqual({ ok: true });
      b.tick();
      drainReady(b, cl.io('b'));
      cl.queue = [];
    }
    expect(b.counters).toMatchObject({ removedStepDowns: 1, removalsUnacknowledged: 1 });
    return ticks;
  };

  it('a transfer asked for during the wait does not restart its election-timeout bound', () => {
    const bound = ticksToHandover();
    expect(bound).toBeGreaterThan(3);
    expect(ticksToHandover(3)).toBe(bound);
  });
});

describe('a removed leader hands over with its commit (TimeoutNowMessage.commit)', () => {
  it('3 → 2: no voter acknowledged within an election timeout, it hands over anyway; the timeout-now tells its target the removal committed; elected with the other survivor recovering, b gone', () => {
    const all = ['a', 'b', 'c'];
    const cl = new ManualRaftCluster(all, BASE);
    // b's appends that announce the removal committed and its heartbeats are lost; its timeout-now is held.
    const lost = (m: Msg, k: number): boolean => commitCarrier(m, k) || (m.from === 'b' && m.type === 'heartbeat');
    let { removal, handover } = removeLeaderB(cl, all, lost);
    expect(cl.node('b').status().role).toBe('leader');
    for (let i = 0; i < 10 && handover === undefined; i++) {
      cl.node('b').tick();
      drainReady(cl.node('b'), cl.io('b'));
      handover = cl.queue.find((m) => m.type === 'timeout-now');
      cl.queue = [];
    }
    expect(cl.node('b').counters).toMatchObject({ removedStepDowns: 1, removalsUnacknowledged: 1 });
    expect(handover).toMatchObject({ from: 'b', commit: removal });
    expect(['a', 'c'].map((id) => cl.node(id).status().commit)).toEqual([removal - 1, removal - 1]);
    // b is gone for good; the other survivor loses power (nothing lost here) and restarts recovering; then the
    // timeout-now reaches its target.
    const target = (handover as Msg).to;
    const other = target === 'a' ? 'c' : 'a';
    cl.restart(other, RECOVERING);
    expect(cl.node(other).status().recovering).toBe(true);
    cl.node(target).step(handover as Msg);
    cl.run(['a', 'c']);
    expect(cl.node(target).status().commit).toBeGreaterThanOrEqual(removal);
    expect(cl.node(target).counters.leaderships).toBe(1);
  });
});

describe('attestations the guard takes and refuses', () => {
  const prefix = [noop(1, 1), conf(2, 1, 'add-learner', 'd', ['a', 'b', 'c'], ['d']), value(3, 1, 'v1')];
  const removeB = conf(4, 1, 'remove', 'b', ['a', 'c'], ['d']);

  it('a learner whose commit reached the removal attests it: c is elected with a (recovering), b gone', () => {
    const cl = new ManualRaftCluster(['a', 'b', 'c', 'd'], BASE, ['a', 'b', 'c']);
    cl.start('a', storageOf(['a', 'b', 'c'], [...prefix, removeB], 1, 3, 'c'), RECOVERING);
    cl.start('c', storageOf(['a', 'b', 'c'], [...prefix, removeB], 1, 3, 'c'), BASE);
    cl.start('d', storageOf(['a', 'b', 'c'], [...prefix, removeB], 1, 4), BASE);
    cl.campaign('c', ['a', 'c', 'd']);
    expect(answers(cl).some((m) => m.from === 'd' && m.to === 'c' && m.committedIndex === 4 && m.committedTerm === 1)).toBe(true);
    expect(cl.node('c').counters.leaderships).toBe(1);
  });

  it('a voter whose commit passed another entry at the removal\'s index does not attest it: c neither commits the removal nor is elected', () => {
    // a committed its no-op at 4 and x at 5 in term 2 (with b, down now), where c holds "remove b" in term 1: the
    // removal conflicts with a committed entry. An attestation of it would have c commit and apply an entry that
    // never committed.
    const cl = new ManualRaftCluster(['a', 'b', 'c', 'd'], BASE, ['a', 'b', 'c']);
    cl.start('a', storageOf(['a', 'b', 'c'], [...prefix, noop(4, 2), value(5, 2, 'x')], 2, 5, 'a'), RECOVERING);
    cl.start('c', storageOf(['a', 'b', 'c'], [...prefix, removeB], 1, 3), BASE);
    cl.start('d', storageOf(['a', 'b', 'c'], [...prefix, removeB], 1, 3), BASE);
    cl.campaign('c', ['a', 'c', 'd']);
    expect(answers(cl).some((m) => m.from === 'a' && m.committedIndex !== undefined)).toBe(false);
    expect(cl.node('c').status().commit).toBe(3);
    expect(cl.node('c').counters.leaderships).toBe(0);
  });
});


describe('the removed leader\'s wait ends in a handover under check-quorum too', () => {
  it('3 → 2: a silent since the last quorum check, c\'s answers lost after its acknowledgement of the removal committed it: at the bound b still sends timeout-now (check-quorum does not step it down mute)', () => {
    const all = ['a', 'b', 'c'];
    const cl = new ManualRaftCluster(all, BASE);
    cl.campaign('b', all);
    const b = cl.node('b');
    expect(b.status().role).toBe('leader');
    /** Delivers the queue until quiet (bounded), dropping what `drop` says and holding back what `hold` says. */
    const deliver = (drop: (m: Msg) => boolean, hold: (m: Msg) => boolean = () => false): Msg[] => {
      const held: Msg[] = [];
      for (const id of all) drainReady(cl.node(id), cl.io(id));
      for (let round = 0; round < 100 && cl.queue.length > 0; round++) {
        const batch = cl.queue;
        cl.queue = [];
        for (const m of batch) {
          if (drop(m)) continue;
          if (hold(m)) {
            held.push(m);
            continue;
          }
          cl.node(m.to).step(m);
          drainReady(cl.node(m.to), cl.io(m.to));
        }
      }
      return held;
    };
    expect(b.proposeConfChange({ type: 'remove', node: 'b' })).toMatchObject({ ok: true });
    const removal = b.lastIndex;
    // a acknowledges the removal's append at once; c's acknowledgement is held past b's next quorum check.
    const held = deliver(() => false, (m) => m.from === 'c' && m.to === 'b' && m.type === 'app-resp');
    expect(held.length).toBeGreaterThan(0);
    // From now on nothing reaches b from a or c but c's held acknowledgement; b passes one quorum check (a, c were active).
    const toB = (m: Msg): boolean => m.to === 'b';
    for (let i = 0; i < 10; i++) {
      b.tick();
      deliver(toB);
    }
    expect(b.status().role).toBe('leader');
    for (const m of held) b.step(m);
    deliver(toB);
    expect(b.status().commit).toBe(removal);
    expect(b.status().role).toBe('leader');
    // No voter acknowledges (their answers are lost): at the bound b hands over, as it did at once before the wait.
    const sent = cl.sent.length;
    for (let i = 0; i < 10 && b.status().role === 'leader'; i++) {
      b.tick();
      deliver(toB);
    }
    expect(b.status().role).toBe('follower');
    expect(cl.sent.slice(sent).find((m) => m.type === 'timeout-now')).toMatchObject({ from: 'b', commit: removal });
    expect(b.counters).toMatchObject({ removedStepDowns: 1, removalsUnacknowledged: 1, checkQuorumStepDowns: 0 });
  });
});
