/**
 * A replica restarted after a power cut under `fsync: interval`
 * (`RaftConfig.recoveringAtStart`) may lack entries it acknowledged, so it
 * must not help elect a candidate that lacks them too: it grants no vote,
 * answering `wouldGrant` where it would have (and recording a real vote as a
 * grant), and a candidate wins with plain grants from a quorum or with
 * supporters from ⌊n/2⌋ + 2 voters. It stops recovering once a leader
 * of a term above its start term brought it up to an entry of that term; a
 * leader of its start term starts a new election to get there.
 */
import { describe, expect, it } from 'vitest';
import { ManualRaftCluster as Cluster, type Msg } from '../../../test/support/manual-raft.js';
import type { RaftConfigOptions } from './config.js';
import { drainReady } from './runner.js';
import { MemoryStorage } from './storage.js';
import type { VoteResponse } from './types.js';

const BASE: RaftConfigOptions = { preVote: false, checkQuorum: false };

/** Voters {a, b} led by a in term 1, learner c added and caught up with `values` (fsync interval); `last`: the last index. */
function learnerCaughtUp(values: string[]): { c: Cluster; config: RaftConfigOptions; last: number } {
  const config = { ...BASE, unsyncedAcks: true };
  const c = new Cluster(['a', 'b', 'c'], config, ['a', 'b']);
  c.node('a').campaign();
  c.stabilize();
  expect(c.node('a').proposeConfChange({ type: 'add-learner', node: 'c' }).ok).toBe(true);
  c.stabilize();
  for (const v of values) c.node('a').propose(v);
  c.stabilize();
  c.node('a').tick();
  c.stabilize();
  const last = c.node('a').lastIndex;
  expect(c.node('c').lastIndex).toBe(last);
  return { c, config, last };
}

/** A leader `a` of term 1 with two values committed everywhere. */
function ledByA(ids: readonly string[], config: RaftConfigOptions = BASE): Cluster {
  const c = new Cluster(ids, config);
  c.node('a').campaign();
  c.stabilize();
  c.node('a').propose('v1');
  c.node('a').propose('v2');
  c.stabilize();
  c.node('a').tick();
  c.stabilize();
  expect(c.node('a').status().role).toBe('leader');
  return c;
}

/** What `id` answered to `candidate`'s (pre-)vote request: steps it and takes the answer. */
function answer(c: Cluster, id: string, request: Msg): VoteResponse {
  c.node(id).step(request);
  c.queue = [];
  const before = c.sent.length;
  drainReady(c.node(id), c.io(id));
  const out = c.sent.slice(before).filter((m): m is VoteResponse & Msg => m.type === 'vote-resp' || m.type === 'pre-vote-resp');
  expect(out).toHaveLength(1);
  return out[0] as VoteResponse;
}

describe('a recovering voter', () => {
  it('is not recovering when it never stored a term (a new group acknowledged nothing)', () => {
    const c = new Cluster(['a', 'b', 'c'], { ...BASE, recoveringAtStart: true });
    for (const id of c.ids) expect(c.node(id).status().recovering).toBe(false);
    // All three start "recovering" after a power cut, yet a new group elects with a plain quorum.
    c.node('a').campaign();
    c.stabilize(['c']);
    expect(c.node('a').status().role).toBe('leader');
  });

  it('refuses a vote it would have granted with wouldGrant, records it (fsynced) and supports no second candidate in the term', () => {
    const c = ledByA(['a', 'b', 'c']);
    c.restart('b', { ...BASE, recoveringAtStart: true });
    expect(c.node('b').status().recovering).toBe(true);
    const last = c.node('c').lastIndex;
    // c campaigns in term 2 with b's log: b would grant.
    c.node('b').step({ type: 'vote', from: 'c', to: 'b', term: 2, lastIndex: last, lastTerm: 1, transfer: false });
    const ready = c.node('b').ready();
    expect(ready.hardState).toMatchObject({ term: 2, vote: 'c' });
    expect(ready.mustSync).toBe(true);
    expect(ready.messages).toEqual([{ type: 'vote-resp', from: 'b', to: 'c', term: 2, reject: true, recovering: true, wouldGrant: true }]);
    c.node('b').advance();
    // Another candidate of the same term: refused, without wouldGrant.
    expect(answer(c, 'b', { type: 'vote', from: 'a', to: 'b', term: 2, lastIndex: last, lastTerm: 1, transfer: false })).toEqual({ type: 'vote-resp', from: 'b', to: 'a', term: 2, reject: true, recovering: true });
    // The same candidate again (its request repeated): the same would-grant.
    expect(answer(c, 'b', { type: 'vote', from: 'c', to: 'b', term: 2, lastIndex: last, lastTerm: 1, transfer: false }).wouldGrant).toBe(true);
    // Counted for the metrics: the two would-grants, not the refusal.
    expect(c.node('b').counters.votesWithheld).toBe(2);
  });

  it('answers a pre-vote it would grant with wouldGrant (the request term), records nothing, and refuses a candidate behind it plainly', () => {
    const c = ledByA(['a', 'b', 'c']);
    c.restart('b', { ...BASE, recoveringAtStart: true });
    const last = c.node('b').lastIndex;
    expect(answer(c, 'b', { type: 'pre-vote', from: 'c', to: 'b', term: 2, lastIndex: last, lastTerm: 1, transfer: false })).toEqual({
      type: 'pre-vote-resp',
      from: 'b',
      to: 'c',
      term: 2,
      reject: true,
      recovering: true,
      wouldGrant: true,
    });
    expect(c.node('b').status()).toMatchObject({ term: 1, vote: 'a' });
    // A log behind b's: refused, no wouldGrant.
    expect(answer(c, 'b', { type: 'pre-vote', from: 'c', to: 'b', term: 2, lastIndex: last - 1, lastTerm: 1, transfer: false })).toEqual({ type: 'pre-vote-resp', from: 'b', to: 'c', term: 1, reject: true, recovering: true });
    expect(answer(c, 'b', { type: 'vote', from: 'c', to: 'b', term: 2, lastIndex: last - 1, lastTerm: 1, transfer: false })).toEqual({ type: 'vote-resp', from: 'b', to: 'c', term: 2, reject: true, recovering: true });
  });

  it('a voter that is not recovering grants as before, unmarked', () => {
    const c = ledByA(['a', 'b', 'c']);
    c.restart('b', BASE);
    expect(c.node('b').status().recovering).toBe(false);
    const last = c.node('b').lastIndex;
    expect(answer(c, 'b', { type: 'vote', from: 'c', to: 'b', term: 2, lastIndex: last, lastTerm: 1, transfer: false })).toEqual({ type: 'vote-resp', from: 'b', to: 'c', term: 2, reject: false });
  });
});

/** `a` campaigns (no pre-vote) among `ids`; returns the term it campaigns in. */
function campaignA(ids: readonly string[], config: RaftConfigOptions = BASE): { c: Cluster; term: number } {
  const c = new Cluster(ids, BASE);
  // Each has stored a term (a node that never did acknowledged nothing and is not recovering).
  for (const id of ids) {
    (c.storages.get(id) as MemoryStorage<string, string>).setHardState({ term: 1, vote: null, commit: 0 });
    c.restart(id, config);
  }
  c.node('a').campaign();
  drainReady(c.node('a'), c.io('a'));
  c.queue = [];
  return { c, term: c.node('a').status().term };
}

function vote(from: string, term: number, kind: 'grant' | 'would-grant' | 'refuse'): Msg {
  if (kind === 'grant') return { type: 'vote-resp', from, to: 'a', term, reject: false };
  if (kind === 'would-grant') return { type: 'vote-resp', from, to: 'a', term, reject: true, recovering: true, wouldGrant: true };
  return { type: 'vote-resp', from, to: 'a', term, reject: true, recovering: true };
}

describe('a candidate counting would-grants', () => {
  it.each([
    { ids: ['a', 'b', 'c'], votes: [['b', 'grant']], role: 'leader', why: 'a plain quorum (itself and b)' },
    { ids: ['a', 'b', 'c'], votes: [['b', 'would-grant']], role: 'candidate', why: '2 supporters of 3: pending' },
    { ids: ['a', 'b', 'c'], votes: [['b', 'would-grant'], ['c', 'would-grant']], role: 'leader', why: '3 supporters of 3' },
    { ids: ['a', 'b', 'c'], votes: [['b', 'would-grant'], ['c', 'refuse']], role: 'follower', why: 'neither is reachable: lost' },
    { ids: ['a', 'b', 'c', 'd', 'e'], votes: [['b', 'would-grant'], ['c', 'would-grant']], role: 'candidate', why: '3 supporters of 5: pending' },
    { ids: ['a', 'b', 'c', 'd', 'e'], votes: [['b', 'would-grant'], ['c', 'would-grant'], ['d', 'would-grant']], role: 'leader', why: '4 supporters of 5' },
    { ids: ['a', 'b', 'c', 'd', 'e'], votes: [['b', 'grant'], ['c', 'would-grant'], ['d', 'refuse']], role: 'candidate', why: '2 plain, 3 supporters, e outstanding: pending' },
    { ids: ['a', 'b', 'c', 'd', 'e'], votes: [['b', 'grant'], ['c', 'would-grant'], ['d', 'refuse'], ['e', 'refuse']], role: 'follower', why: '2 plain, 3 supporters, none outstanding: lost' },
    { ids: ['a', 'b', 'c', 'd', 'e'], votes: [['b', 'grant'], ['c', 'would-grant'], ['d', 'grant']], role: 'leader', why: '3 plain of 5' },
  ] as const)('$why', ({ ids, votes, role }) => {
    const { c, term } = campaignA(ids);
    for (const [from, kind] of votes) {
      c.node('a').step(vote(from, term, kind));
      drainReady(c.node('a'), c.io('a'));
    }
    expect(c.node('a').status().role).toBe(role);
  });

  it('a recovering candidate counts its own vote as a would-grant: plain grants must come from a quorum of the others', () => {
    const { c, term } = campaignA(['a', 'b', 'c'], { ...BASE, recoveringAtStart: true });
    c.node('a').step(vote('b', term, 'grant'));
    expect(c.node('a').status().role).toBe('candidate');
    c.node('a').step(vote('c', term, 'grant'));
    expect(c.node('a').status().role).toBe('leader');
  });

  it('a recovering single voter elects itself', () => {
    const c = new Cluster(['a'], { ...BASE, recoveringAtStart: true });
    c.node('a').campaign();
    expect(c.node('a').status().role).toBe('leader');
  });

  it('a pre-candidate moves to the real vote on would-grants from ⌊n/2⌋ + 2 voters, without taking their term from the answers', () => {
    const c = new Cluster(['a', 'b', 'c'], { ...BASE, preVote: true });
    c.node('a').campaign();
    expect(c.node('a').status()).toMatchObject({ role: 'pre-candidate', term: 0 });
    c.node('a').step({ type: 'pre-vote-resp', from: 'b', to: 'a', term: 1, reject: true, recovering: true, wouldGrant: true });
    expect(c.node('a').status()).toMatchObject({ role: 'pre-candidate', term: 0 });
    c.node('a').step({ type: 'pre-vote-resp', from: 'c', to: 'a', term: 1, reject: true, recovering: true, wouldGrant: true });
    expect(c.node('a').status()).toMatchObject({ role: 'candidate', term: 1 });
  });
});

describe('the end of recovery', () => {
  it('a leader of the follower start term re-elects itself once, and the follower recovers when the new term commits an entry there', () => {
    const c = ledByA(['a', 'b', 'c']);
    c.restart('b', { ...BASE, recoveringAtStart: true });
    // a's heartbeat: b answers recovering since term 1, a's term. a campaigns in term 2 (a transfer: no lease blocks it).
    c.node('a').tick();
    drainReady(c.node('a'), c.io('a'));
    for (const m of c.queue.splice(0)) c.node(m.to).step(m);
    drainReady(c.node('b'), c.io('b'));
    const hbAnswer = c.queue.find((m) => m.from === 'b' && m.type === 'heartbeat-resp');
    expect(hbAnswer).toMatchObject({ recovering: true, startTerm: 1 });
    c.node('c').tick(); // nothing
    c.queue = c.queue.filter((m) => m.from === 'b');
    for (const m of c.queue.splice(0)) c.node(m.to).step(m);
    expect(c.node('a').status()).toMatchObject({ role: 'candidate', term: 2 });
    expect(c.node('a').counters.recoveryElections).toBe(1);
    drainReady(c.node('a'), c.io('a'));
    expect(c.queue.filter((m) => m.type === 'vote')).toHaveLength(2);
    expect(c.queue.every((m) => m.type !== 'vote' || m.transfer)).toBe(true);
    // b takes the vote request of term 2: its term is above its start term, but its commit is of term 1: still recovering.
    const toB = c.queue.find((m) => m.to === 'b') as Msg;
    c.node('b').step(toB);
    expect(c.node('b').status()).toMatchObject({ term: 2, recovering: true });
    c.queue = c.queue.filter((m) => m !== toB);
    c.stabilize();
    expect(c.node('a').status()).toMatchObject({ role: 'leader', term: 2 });
    c.node('a').tick();
    c.stabilize();
    expect(c.node('b').commitIndex).toBe(c.node('a').commitIndex);
    expect(c.node('b').status().recovering).toBe(false);
    expect(c.node('b').counters.recoveriesEnded).toBe(1);
    // Once per term: a leads term 2 and b answers unmarked; no further election.
    for (let i = 0; i < 5; i++) {
      c.node('a').tick();
      c.stabilize();
    }
    expect(c.node('a').status()).toMatchObject({ role: 'leader', term: 2 });
    expect(c.node('a').counters.recoveryElections).toBe(1);
  });

  it.each([true, false])('a leader that would not win again (the other voter silent; check-quorum %s) keeps leading, and the follower stays recovering in its start term however far it commits', (checkQuorum) => {
    const c = ledByA(['a', 'b', 'c'], { ...BASE, checkQuorum });
    // c goes silent for an election timeout (a check-quorum round passes, if on), so only b was heard from recently: a
    // plain vote and, once b restarted recovering, a would-grant.
    for (let i = 0; i < 10; i++) {
      c.node('a').tick();
      c.stabilize(['c']);
    }
    c.restart('b', { ...BASE, checkQuorum, recoveringAtStart: true });
    c.node('a').propose('v3');
    c.stabilize(['c']);
    for (let i = 0; i < 3; i++) {
      c.node('a').tick();
      c.stabilize(['c']);
    }
    expect(c.node('a').status()).toMatchObject({ role: 'leader', term: 1 });
    expect(c.node('a').counters.recoveryElections).toBe(0);
    expect(c.node('b').commitIndex).toBe(c.node('a').commitIndex);
    expect(c.node('b').status().recovering).toBe(true);
    expect(c.node('a').status().progress.find((p) => p.id === 'b')?.recovering).toBe(true);
    // c answers again: the group could elect a at once, and a starts the election that ends b's recovery.
    for (let i = 0; i < 3; i++) {
      c.node('a').tick();
      c.stabilize();
    }
    expect(c.node('a').counters.recoveryElections).toBe(1);
    expect(c.node('a').status()).toMatchObject({ role: 'leader', term: 2 });
    expect(c.node('b').status().recovering).toBe(false);
  });

  it('a learner restarted under the leader of its start term: that leader re-elects itself, and the learner recovers in the new term', () => {
    // Voters {a, b}, c a learner (a move's replica between add-learner and promote) that acknowledged v1..v3 in term 1.
    const { c, config, last } = learnerCaughtUp(['v1', 'v2', 'v3']);
    // A power cut of c loses v2 and v3; it restarts recovering in term 1, a's term.
    const cut = new MemoryStorage<string, string>(['a', 'b']);
    cut.append(c.storage('c').entries(1, last - 1, 1e9));
    cut.setHardState({ ...c.storage('c').getHardState(), commit: last - 2 });
    c.start('c', cut, { ...config, recoveringAtStart: true });
    expect(c.node('c').status()).toMatchObject({ term: 1, recovering: true });
    // a's heartbeats: c answers recovering since term 1; a (b heard from) campaigns in term 2, wins, and catches c up.
    for (let i = 0; i < 4; i++) {
      c.node('a').tick();
      c.stabilize();
    }
    expect(c.node('a').counters.recoveryElections).toBe(1);
    expect(c.node('a').status()).toMatchObject({ role: 'leader', term: 2 });
    expect(c.node('c').commitIndex).toBe(c.node('a').commitIndex);
    expect(c.node('c').status()).toMatchObject({ term: 2, recovering: false });
    expect(c.node('c').counters.recoveriesEnded).toBe(1);
  });

  it('a leader handing over (its timeout-now on its way) when a recovering learner answers does not re-elect itself too: the transfer ends the recovery, no split vote', () => {
    // Voters {a, b}, c a learner; a transfers to b; c restarts recovering in term 1 and answers before b's campaign.
    const { c, config, last } = learnerCaughtUp(['v1']);
    const cut = new MemoryStorage<string, string>(['a', 'b']);
    cut.append(c.storage('c').entries(1, last + 1, 1e9));
    cut.setHardState(c.storage('c').getHardState());
    c.start('c', cut, { ...config, recoveringAtStart: true });
    expect(c.node('c').status()).toMatchObject({ term: 1, recovering: true });
    expect(c.node('a').transferLeadership('b')).toMatchObject({ ok: true });
    drainReady(c.node('a'), c.io('a'));
    const handover = c.queue.find((m) => m.type === 'timeout-now');
    expect(handover).toMatchObject({ from: 'a', to: 'b' });
    c.queue = [];
    // a's heartbeat reaches c, whose recovering answer reaches a before the timeout-now reaches b.
    c.node('a').tick();
    c.node('a').tick();
    drainReady(c.node('a'), c.io('a'));
    const heartbeat = c.queue.find((m) => m.type === 'heartbeat' && m.to === 'c');
    expect(heartbeat).toBeDefined();
    c.queue = [];
    c.node('c').step(heartbeat as Msg);
    drainReady(c.node('c'), c.io('c'));
    const recovering = c.queue.filter((m) => m.type === 'heartbeat-resp' && m.from === 'c');
    expect(recovering).toMatchObject([{ recovering: true, startTerm: 1 }]);
    c.queue = [];
    c.node('a').step(recovering[0] as Msg);
    drainReady(c.node('a'), c.io('a'));
    c.node('b').step(handover as Msg);
    drainReady(c.node('b'), c.io('b'));
    c.stabilize();
    // Someone leads term 2 at once (no election timeout lost to a split vote), and c recovers under it.
    const leaders = ['a', 'b'].filter((id) => c.node(id).status().role === 'leader');
    expect(leaders.map((id) => c.node(id).status().term)).toEqual([2]);
    c.node(leaders[0] as string).tick();
    c.stabilize();
    expect(c.node('c').status()).toMatchObject({ term: 2, recovering: false });
  });

  it('a recovering node elected leader recovers when it commits an entry of its own term', () => {
    const c = ledByA(['a', 'b', 'c']);
    c.restart('a', { ...BASE, recoveringAtStart: true });
    c.node('a').campaign();
    c.stabilize();
    expect(c.node('a').status()).toMatchObject({ role: 'leader', term: 2, recovering: false });
    expect(c.node('a').counters.recoveriesEnded).toBe(1);
  });
});
