/**
 * The supporters rule (quorum.ts) across a removal that leaves two voters or one. `⌊n/2⌋ + 2` supporters share two
 * voters with any quorum of a configuration one change away — except for n ≤ 2: {a, c} and the holders {a, b} of an
 * entry committed under {a, b, c} share only a, the one that lost it in a power cut. All of 2 supporters, one a
 * would-grant, would then elect a candidate without it: a voter whose log holds the uncommitted "remove b", and (docs/raft.md,
 * "A learner may campaign") a learner with that log too. The same across a promote the candidate lacks: {a, b} and
 * the holders {a, c} of an entry committed under {a, b, c}. The guard (raft.ts `electionGuardOf`, quorum.ts
 * `guardedVoteOutcome`): a candidate of at most two voters wins by supporters only with a win in each configuration
 * one voter away too — the previous one across a removal not known committed (its own commit reached it, or a voter
 * attests it), and each learner promoted.
 */
import { describe, expect, it } from 'vitest';
import { ManualRaftCluster } from '../../../test/support/manual-raft.js';
import type { RaftConfigOptions } from './config.js';
import { RaftNode } from './node.js';
import { MemoryStorage } from './storage.js';
import { conf, holds, noop, storageOf, value } from '../../../test/support/raft-entries.js';

const BASE: RaftConfigOptions = { preVote: true, checkQuorum: true, unsyncedAcks: true };
const RECOVERING: RaftConfigOptions = { ...BASE, recoveringAtStart: true };

const prefix = [noop(1, 1), conf(2, 1, 'add-learner', 'd', ['a', 'b', 'c'], ['d']), value(3, 1, 'v1')];
const removeB = conf(4, 1, 'remove', 'b', ['a', 'c'], ['d']);

/**
 * {a, b, c} vote, d learns. c led term 1 and appended "remove b" at 4 (c and d hold it: they count {a, c}). a led
 * term 2 without it, and committed its no-op and "x" at 5 with b (a quorum of {a, b, c}); then a power cut took a's
 * unsynced tail (its log ends at 3, it restarts recovering, its term 2 and vote kept). b is down. a would grant a
 * candidate whose log ends at 4 in term 1.
 */
function staged(): ManualRaftCluster {
  const cl = new ManualRaftCluster(['a', 'b', 'c', 'd'], BASE, ['a', 'b', 'c']);
  cl.start('a', storageOf(['a', 'b', 'c'], prefix, 2, 3, 'a'), RECOVERING);
  cl.start('b', storageOf(['a', 'b', 'c'], [...prefix, noop(4, 2), value(5, 2, 'x')], 2, 5, 'a'), BASE);
  cl.start('c', storageOf(['a', 'b', 'c'], [...prefix, removeB], 1, 3), BASE);
  cl.start('d', storageOf(['a', 'b', 'c'], [...prefix, removeB], 1, 3), BASE);
  expect(cl.node('c').status().voters).toEqual(['a', 'c']);
  expect(cl.node('d').status()).toMatchObject({ voters: ['a', 'c'], learners: ['d'] });
  return cl;
}

describe('a candidate whose uncommitted removal leaves 2 voters, beside an entry committed by 2 of the 3', () => {
  for (const candidate of ['c', 'd']) {
    it(`${candidate} is not elected without it (b, its other holder, down)`, () => {
      const cl = staged();
      cl.campaign(candidate, ['a', 'c', 'd']);
      expect(holds(cl, 'b', 5, 'x')).toBe(true);
      expect(cl.node(candidate).counters.leaderships).toBe(0);
    });
  }

  it('the removed voter is asked too, and its refusal (it holds x) is counted among the previous voters', () => {
    const cl = staged();
    cl.campaign('c', ['a', 'b', 'c']);
    expect(cl.node('c').counters.leaderships).toBe(0);
    // a (a voter), b (removed) and d (a learner, down here).
    const asked = cl.sent.filter((m) => m.from === 'c' && m.type === 'pre-vote').map((m) => m.to);
    expect(new Set(asked)).toEqual(new Set(['a', 'b', 'd']));
    expect(cl.sent.some((m) => m.from === 'b' && m.to === 'c' && m.type === 'pre-vote-resp' && m.reject)).toBe(true);
  });
});

describe('a candidate whose removal is committed (the guard lifted)', () => {
  /**
   * As staged(), but "remove b" is committed: c, a and d hold it (c led term 1 and committed it with a); a restarted
   * recovering; b is down. Learner d is up: its support is needed too (a promotion of d is one voter away).
   */
  function committedRemoval(ownCommit: number, aCommit: number): ManualRaftCluster {
    const cl = new ManualRaftCluster(['a', 'b', 'c', 'd'], BASE, ['a', 'b', 'c']);
    cl.start('a', storageOf(['a', 'b', 'c'], [...prefix, removeB], 1, aCommit, 'c'), RECOVERING);
    cl.start('b', storageOf(['a', 'b', 'c'], prefix, 1, 3, 'c'), BASE);
    cl.start('c', storageOf(['a', 'b', 'c'], [...prefix, removeB], 1, ownCommit, 'c'), BASE);
    cl.start('d', storageOf(['a', 'b', 'c'], [...prefix, removeB], 1, ownCommit), BASE);
    return cl;
  }

  it('is elected by supporters when a voter attests the removal committed (its own commit stale)', () => {
    const cl = committedRemoval(3, 4);
    cl.campaign('c', ['a', 'c', 'd']);
    expect(cl.sent.some((m) => m.from === 'a' && m.type === 'pre-vote-resp' && m.committedIndex === 4 && m.committedTerm === 1)).toBe(true);
    expect(cl.node('c').counters.leaderships).toBe(1);
  });

  it('is elected when the removed voter, compacted past the removal, attests its commit instead, on a refusal at its own term', () => {
    // c and a (both recovering) hold the log to 5, committed to 3 for all they know. b, removed, holds the committed log
    // to 5 compacted into a snapshot, and a longer tail: it refuses c, at its own term 1, naming its commit 5/1.
    const cl = new ManualRaftCluster(['a', 'b', 'c', 'd'], BASE, ['a', 'b', 'c']);
    const log = [...prefix, removeB, value(5, 1, 'y')];
    cl.start('a', storageOf(['a', 'b', 'c'], log, 2, 3, 'c'), RECOVERING);
    cl.start('c', storageOf(['a', 'b', 'c'], log, 2, 3, 'c'), RECOVERING);
    cl.start('d', storageOf(['a', 'b', 'c'], log, 1, 3), BASE);
    const b = storageOf(['a', 'b', 'c'], [...log, value(6, 1, 'z')], 1, 5, 'c');
    b.createSnapshot(5, 'state at 5');
    b.compact(5);
    cl.start('b', b, BASE, true);
    cl.campaign('c', ['a', 'b', 'c', 'd']);
    expect(cl.sent.some((m) => m.from === 'b' && m.type === 'pre-vote-resp' && m.reject && m.term === 1 && m.committedIndex === 5 && m.committedTerm === 1)).toBe(true);
    expect(cl.node('c').counters.leaderships).toBe(1);
  });

  it('is elected by supporters when its own commit reached the removal', () => {
    const cl = committedRemoval(4, 3);
    cl.campaign('c', ['a', 'c', 'd']);
    // No removal guard: the requests carry no removal, and b (not a voter of {a, c}) is not asked.
    expect(cl.sent.some((m) => m.from === 'c' && (m.type === 'pre-vote' || m.type === 'vote') && (m.to === 'b' || m.confIndex !== undefined))).toBe(false);
    expect(cl.node('c').counters.leaderships).toBe(1);
  });

  it('is not elected by supporters when no one knows the removal committed and b is down', () => {
    const cl = committedRemoval(3, 3);
    cl.campaign('c', ['a', 'c', 'd']);
    expect(cl.node('c').counters.leaderships).toBe(0);
  });

  it('is elected by a plain quorum of its two voters, the guard notwithstanding', () => {
    const cl = committedRemoval(3, 3);
    cl.start('a', storageOf(['a', 'b', 'c'], [...prefix, removeB], 1, 3, 'c'), BASE);
    cl.campaign('c', ['a', 'c']);
    expect(cl.node('c').counters.leaderships).toBe(1);
  });
});

describe('a candidate of 2 voters beside an entry committed after a promote it lacks (interval profile seeds 170, 786)', () => {
  /**
   * {a, b} vote, c learns (added at 2). a led term 2, appended "promote c" at 4 and "x" at 5, and committed both with c
   * (a quorum of {a, b, c}); b has neither. A power cut took a's tail (its log ends at 3, recovering, term 2 kept).
   */
  function stagedPromote(): ManualRaftCluster {
    const pre = [noop(1, 1), conf(2, 1, 'add-learner', 'c', ['a', 'b'], ['c']), value(3, 1, 'v1')];
    const cl = new ManualRaftCluster(['a', 'b', 'c'], BASE, ['a', 'b']);
    cl.start('a', storageOf(['a', 'b'], pre, 2, 3, 'a'), RECOVERING);
    cl.start('b', storageOf(['a', 'b'], pre, 2, 3, 'a'), BASE);
    cl.start('c', storageOf(['a', 'b'], [...pre, conf(4, 2, 'promote', 'c', ['a', 'b', 'c']), value(5, 2, 'x')], 2, 5, 'a'), BASE);
    expect(cl.node('a').status().voters).toEqual(['a', 'b']);
    return cl;
  }

  for (const candidate of ['a', 'b']) {
    it(`${candidate} is not elected by a's would-grant and b's grant without it (c, its other holder, down)`, () => {
      const cl = stagedPromote();
      cl.campaign(candidate, ['a', 'b']);
      expect(holds(cl, 'c', 5, 'x')).toBe(true);
      expect(cl.node(candidate).counters.leaderships).toBe(0);
    });
  }

  it('the learner is asked too: up, it refuses the candidate (it holds x), and is elected itself', () => {
    const cl = stagedPromote();
    cl.campaign('b', ['a', 'b', 'c']);
    expect(cl.node('b').counters.leaderships).toBe(0);
    expect(cl.sent.some((m) => m.from === 'c' && m.to === 'b' && m.type === 'pre-vote-resp' && m.reject)).toBe(true);
    cl.campaign('c', ['a', 'b', 'c']);
    expect(cl.node('c').counters.leaderships).toBe(1);
  });

  it('a learner that lags grants: elected with it', () => {
    const cl = stagedPromote();
    cl.start('c', storageOf(['a', 'b'], [noop(1, 1), conf(2, 1, 'add-learner', 'c', ['a', 'b'], ['c'])], 1, 2), BASE);
    cl.campaign('b', ['a', 'b', 'c']);
    expect(cl.node('b').counters.leaderships).toBe(1);
  });
});

describe('a candidate whose uncommitted removal leaves 1 voter, beside an entry committed by both', () => {
  /**
   * {a, b} vote, d learns. a led term 1 and appended "remove b" at 4; d holds it (it counts {a}), a lost it in a power
   * cut. b led term 2 (a's would-grant: all of two supporters) and committed its no-op and "x" at 5 with a; a second
   * cut, later, took them from a again (its log ends at 3, term 2 kept). b is down.
   */
  function staged21(): ManualRaftCluster {
    const pre = [noop(1, 1), conf(2, 1, 'add-learner', 'd', ['a', 'b'], ['d']), value(3, 1, 'v1')];
    const cl = new ManualRaftCluster(['a', 'b', 'd'], BASE, ['a', 'b']);
    cl.start('a', storageOf(['a', 'b'], pre, 2, 3, 'b'), RECOVERING);
    cl.start('b', storageOf(['a', 'b'], [...pre, noop(4, 2), value(5, 2, 'x')], 2, 5, 'b'), BASE);
    cl.start('d', storageOf(['a', 'b'], [...pre, conf(4, 1, 'remove', 'b', ['a'], ['d'])], 1, 3), BASE);
    expect(cl.node('d').status()).toMatchObject({ voters: ['a'], learners: ['d'] });
    return cl;
  }

  it('the learner d is not elected with a alone (b, its other holder, down)', () => {
    const cl = staged21();
    cl.campaign('d', ['a', 'd']);
    expect(holds(cl, 'b', 5, 'x')).toBe(true);
    expect(cl.node('d').counters.leaderships).toBe(0);
  });

  it('a recovering voter whose log holds the removal is not elected by its own would-grant alone (b down)', () => {
    // The state, staged whole: a lacks x, holds "remove b" uncommitted, recovering; b holds x, committed by {a, b}.
    const pre = [noop(1, 1), value(2, 1, 'v1'), value(3, 1, 'v2')];
    const cl = new ManualRaftCluster(['a', 'b'], BASE, ['a', 'b']);
    cl.start('a', storageOf(['a', 'b'], [...pre, conf(4, 1, 'remove', 'b', ['a'])], 2, 3, 'b'), RECOVERING);
    cl.start('b', storageOf(['a', 'b'], [...pre, noop(4, 2), value(5, 2, 'x')], 2, 5, 'b'), BASE);
    expect(cl.node('a').status().voters).toEqual(['a']);
    cl.campaign('a', ['a']);
    expect(cl.node('a').counters.leaderships).toBe(0);
  });

  it('a lone recovering voter whose commit reached the removal is elected alone', () => {
    const pre = [noop(1, 1), value(2, 1, 'v1'), conf(3, 1, 'remove', 'b', ['a'])];
    const cl = new ManualRaftCluster(['a', 'b'], BASE, ['a', 'b']);
    cl.start('a', storageOf(['a', 'b'], pre, 1, 3, 'a'), RECOVERING);
    cl.campaign('a', ['a']);
    expect(cl.node('a').counters.leaderships).toBe(1);
  });
});

describe('a commit that passes a configuration entry is made durable at once (Ready.commitPassedConf)', () => {
  it('is marked on the Ready whose commit passes it, with mustSync, and on no other', () => {
    const storage = new MemoryStorage<string, string>(['a']);
    const node = new RaftNode<string, string>({ id: 'a', storage, random: { nextInt: () => 0 }, config: BASE });
    const marks: Array<{ commit: number; passed: boolean; mustSync: boolean }> = [];
    const drain = (): void => {
      for (let i = 0; i < 20 && node.hasReady(); i++) {
        const rd = node.ready();
        if (rd.entriesToPersist.length > 0) storage.append(rd.entriesToPersist);
        if (rd.hardState !== undefined) {
          storage.setHardState(rd.hardState);
          marks.push({ commit: rd.hardState.commit, passed: rd.commitPassedConf === true, mustSync: rd.mustSync });
        }
        node.advance();
      }
    };
    node.campaign();
    drain();
    expect(node.proposeConfChange({ type: 'add-learner', node: 'b' })).toMatchObject({ ok: true, index: 2 });
    drain();
    expect(node.propose('v')).toMatchObject({ ok: true });
    drain();
    expect(marks.filter((m) => m.passed)).toEqual([{ commit: 2, passed: true, mustSync: true }]);
    expect(marks.some((m) => m.commit === 3 && !m.passed)).toBe(true);
  });
});
