/**
 * A learner whose log holds entries above its commit may campaign (with pre-vote) among the voters of its
 * configuration, counted as any candidate counts them; its own answer counts for nothing. It heals the stall of
 * interval profile seed 2036: voters recovering after power cuts, the only log every voter accepts a learner's.
 * The safety tests stage a learner (and, for the rule this replaced as unsafe, a voter) that lacks a committed entry
 * across an uncommitted promote and an uncommitted remove, and check that it is not elected. docs/raft.md
 * "A learner may campaign".
 */
import { describe, expect, it } from 'vitest';
import { ManualRaftCluster } from '../../../test/support/manual-raft.js';
import type { RaftConfigOptions } from './config.js';
import { conf, holds, noop, storageOf, value } from '../../../test/support/raft-entries.js';

const BASE: RaftConfigOptions = { preVote: true, checkQuorum: true, unsyncedAcks: true };

describe('a learner whose log is ahead', () => {
  // Seed 2036 in small. {a, b, c} vote, d learns. c (leader of term 1) appended "promote d" at 4 and lost power: its
  // log ends there, recovering, and it counts 4 voters. a led term 2 without it: its no-op and "x" reached d only, and
  // a lost power too (recovering, its log ends at 3). b is behind. c needs 4 supporters of {a, b, c, d} and d refuses
  // it (d's log ends in term 2); a needs 3 of {a, b, c} and c refuses it (c's log is longer); d, a learner in its own
  // log, is the one every voter would accept.
  function stalled(config: RaftConfigOptions): ManualRaftCluster {
    const ids = ['a', 'b', 'c', 'd'];
    const cl = new ManualRaftCluster(ids, config, ['a', 'b', 'c']);
    const prefix = [noop(1, 1), conf(2, 1, 'add-learner', 'd', ['a', 'b', 'c'], ['d']), value(3, 1, 'v1')];
    cl.start('a', storageOf(['a', 'b', 'c'], prefix, 2, 3, 'a'), { ...config, recoveringAtStart: true });
    cl.start('b', storageOf(['a', 'b', 'c'], prefix.slice(0, 1), 2, 1, 'a'), config);
    cl.start('c', storageOf(['a', 'b', 'c'], [...prefix, conf(4, 1, 'promote', 'd', ['a', 'b', 'c', 'd'])], 2, 3), { ...config, recoveringAtStart: true });
    cl.start('d', storageOf(['a', 'b', 'c'], [...prefix, noop(4, 2), value(5, 2, 'x')], 2, 3), { ...config, recoveringAtStart: true });
    expect(cl.node('c').status().voters).toEqual(['a', 'b', 'c', 'd']);
    expect(cl.node('d').status().voters).toEqual(['a', 'b', 'c']);
    return cl;
  }

  it('campaigns two election timeouts after a voter would, is elected, commits its no-op, hands over to a voter, and the voters stop recovering', () => {
    const cl = stalled(BASE);
    const ids = cl.ids;
    // Two election timeouts (10 ticks each, no jitter here): the voters campaign and fail; the learner waits.
    cl.ticks(29, ids);
    expect(cl.node('d').counters.learnerCampaigns).toBe(0);
    for (const id of ids) expect(cl.node(id).status().role).not.toBe('leader');
    // d may lead and hand over within one round of deliveries: its counters tell.
    for (let i = 0; i < 60 && !ids.some((id) => id !== 'd' && cl.node(id).status().role === 'leader'); i++) cl.ticks(1, ids);
    expect(cl.node('d').counters.learnerCampaigns).toBeGreaterThan(0);
    expect(cl.node('d').counters.leaderships).toBe(1);
    const leader = ids.find((id) => cl.node(id).status().role === 'leader');
    expect(leader).toBeDefined();
    expect(['a', 'b', 'c']).toContain(leader);
    cl.ticks(10, ids);
    // d's entries survive (the learner's log won), c's uncommitted promote is undone, no one is recovering.
    for (const id of ids) {
      expect(holds(cl, id, 5, 'x')).toBe(true);
      expect(cl.node(id).status()).toMatchObject({ recovering: false, voters: ['a', 'b', 'c'] });
      expect(cl.node(id).commitIndex).toBe(cl.node(leader as string).lastIndex);
    }
  });

  it('never campaigns without pre-vote (a learner cut off would raise terms); with it, cut off, raises none', () => {
    for (const preVote of [false, true]) {
      const cl = stalled({ ...BASE, preVote });
      // d alone, cut off from the voters (whose vote requests would otherwise keep raising its term and resetting its timer).
      cl.ticks(40, ['d']);
      expect(cl.node('d').counters.learnerCampaigns > 0).toBe(preVote);
      expect(cl.node('d').status().term).toBe(2);
    }
  });

  it('does not campaign when its log holds nothing above its commit', () => {
    const cl = stalled(BASE);
    const d = storageOf(['a', 'b', 'c'], [noop(1, 1), conf(2, 1, 'add-learner', 'd', ['a', 'b', 'c'], ['d']), value(3, 1, 'v1')], 2, 3);
    cl.start('d', d, BASE);
    cl.ticks(40, ['d']);
    expect(cl.node('d').counters.learnerCampaigns).toBe(0);
    expect(cl.node('d').status().role).toBe('follower');
  });
});

describe('safety: a candidate lacking a committed entry is not elected', () => {
  // Uncommitted promote. {a, b, c} vote; d and e learn. c (term 1) appended "promote e" at 5 (d, e and c hold it):
  // d counts {a, b, c, e}. a led term 2 without it and committed "x" at 6 with b, a quorum of {a, b, c}; then a lost
  // power (recovering, its log ends at 4). b is the one holder left. d campaigns: a would grant, c and e grant, b
  // refuses. Counting d's own answer (it is no voter) would make 3 plain grants of 4, or 4 supporters: elected without x.
  it('a learner across an uncommitted promote in its log', () => {
    const ids = ['a', 'b', 'c', 'd', 'e'];
    const cl = new ManualRaftCluster(ids, BASE, ['a', 'b', 'c']);
    const prefix = [noop(1, 1), conf(2, 1, 'add-learner', 'd', ['a', 'b', 'c'], ['d']), conf(3, 1, 'add-learner', 'e', ['a', 'b', 'c'], ['d', 'e']), value(4, 1, 'v1')];
    const promote = conf(5, 1, 'promote', 'e', ['a', 'b', 'c', 'e'], ['d']);
    cl.start('a', storageOf(['a', 'b', 'c'], prefix, 2, 4, 'a'), { ...BASE, recoveringAtStart: true });
    cl.start('b', storageOf(['a', 'b', 'c'], [...prefix, noop(5, 2), value(6, 2, 'x')], 2, 6, 'a'), BASE);
    for (const id of ['c', 'd', 'e']) cl.start(id, storageOf(['a', 'b', 'c'], [...prefix, promote], 2, 4), BASE);
    expect(cl.node('d').status().voters).toEqual(['a', 'b', 'c', 'e']);
    const sentBefore = cl.sent.length;
    cl.node('d').campaign();
    cl.run(ids);
    // d did campaign (pre-vote) and was heard.
    expect(cl.sent.slice(sentBefore).some((m) => m.type === 'pre-vote' && m.from === 'd')).toBe(true);
    expect(cl.sent.slice(sentBefore).some((m) => m.type === 'pre-vote-resp' && m.to === 'd' && m.from === 'b' && m.reject)).toBe(true);
    // Never led, not even for a moment (a learner elected leads only until its no-op commits).
    expect(holds(cl, 'd', 6, 'x')).toBe(false);
    expect(cl.node('d').counters.leaderships).toBe(0);
  });

  // Uncommitted remove. {a, b, c, e} vote; d learns. c (term 1) appended "remove e" at 4 (c and d hold it): d counts
  // {a, b, c}. a led term 2 with b and e and committed "x" at 5 under {a, b, c, e}; then lost power (recovering, its
  // log ends at 3). d campaigns: a would grant, c grants, b refuses. With d's own answer: 3 supporters of 3.
  it('a learner across an uncommitted remove in its log', () => {
    const ids = ['a', 'b', 'c', 'd', 'e'];
    const voters = ['a', 'b', 'c', 'e'];
    const cl = new ManualRaftCluster(ids, BASE, voters);
    const prefix = [noop(1, 1), conf(2, 1, 'add-learner', 'd', voters, ['d']), value(3, 1, 'v1')];
    const remove = conf(4, 1, 'remove', 'e', ['a', 'b', 'c'], ['d']);
    const withX = [...prefix, noop(4, 2), value(5, 2, 'x')];
    cl.start('a', storageOf(voters, prefix, 2, 3, 'a'), { ...BASE, recoveringAtStart: true });
    cl.start('b', storageOf(voters, withX, 2, 5, 'a'), BASE);
    cl.start('e', storageOf(voters, withX, 2, 5, 'a'), BASE);
    for (const id of ['c', 'd']) cl.start(id, storageOf(voters, [...prefix, remove], 2, 3), BASE);
    expect(cl.node('d').status().voters).toEqual(['a', 'b', 'c']);
    const sentBefore = cl.sent.length;
    cl.node('d').campaign();
    // e, the other holder, is down.
    cl.run(['a', 'b', 'c', 'd']);
    expect(cl.sent.slice(sentBefore).some((m) => m.type === 'pre-vote' && m.from === 'd')).toBe(true);
    expect(holds(cl, 'd', 5, 'x')).toBe(false);
    expect(cl.node('d').counters.leaderships).toBe(0);
  });

  // Why a candidate with a pending change may not also win under its previous configuration (the rule first
  // proposed for seed 2036): it cannot tell that its pending change is uncommitted. {a, b, c} vote, d learns. a
  // (term 1) appended "promote d" at 4, committed it with b and d (3 of 4; c holds it but never learned the commit),
  // then "remove b" at 5, committed with d (2 of {a, c, d}). a is down. c still counts {a, b, c, d} with "promote d"
  // uncommitted: b grants (same log), d refuses. 2 plain grants are a quorum of {a, b, c} — elected without "remove
  // b", no power cut needed — but not of {a, b, c, d}.
  it('a voter whose pending change was committed unbeknown to it, by its previous configuration', () => {
    const ids = ['a', 'b', 'c', 'd'];
    const cl = new ManualRaftCluster(ids, BASE, ['a', 'b', 'c']);
    const prefix = [noop(1, 1), conf(2, 1, 'add-learner', 'd', ['a', 'b', 'c'], ['d']), value(3, 1, 'v1'), conf(4, 1, 'promote', 'd', ['a', 'b', 'c', 'd'])];
    cl.start('b', storageOf(['a', 'b', 'c'], prefix, 1, 3), BASE);
    cl.start('c', storageOf(['a', 'b', 'c'], prefix, 1, 3), BASE);
    cl.start('d', storageOf(['a', 'b', 'c'], [...prefix, conf(5, 1, 'remove', 'b', ['a', 'c', 'd'])], 1, 5), BASE);
    expect(cl.node('c').status().voters).toEqual(['a', 'b', 'c', 'd']);
    cl.node('c').campaign();
    cl.run(['b', 'c', 'd']);
    expect(cl.sent.some((m) => m.type === 'pre-vote-resp' && m.to === 'c' && m.from === 'b' && !m.reject)).toBe(true);
    expect(cl.node('c').counters.leaderships).toBe(0);
  });
});
