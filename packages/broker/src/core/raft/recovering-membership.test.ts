/**
 * The supporters rule across a single-server membership change. The holders of a committed
 * entry are a quorum of the configuration that committed it; a candidate counts supporters in its own (latest,
 * possibly uncommitted) configuration. From 3 voters to 4, 3 supporters of 4 may share only one voter with 2 holders
 * of 3 — the one that lost the entry in a power cut — which is why a candidate of 4 needs 4 (⌊n/2⌋ + 2, quorum.ts).
 */
import { expect, it } from 'vitest';
import { ManualRaftCluster } from '../../../test/support/manual-raft.js';
import { holds } from '../../../test/support/raft-entries.js';
import { MemoryStorage } from './storage.js';
const BASE = { preVote: false, checkQuorum: false, unsyncedAcks: true };

/** `leader` proposes "e" and commits it with the nodes `up`; returns its index. */
function commitE(cl: ManualRaftCluster, leader: string, up: readonly string[]): number {
  cl.node(leader).propose('e');
  cl.run(up);
  cl.node(leader).tick();
  cl.run(up);
  const index = cl.node(leader).lastIndex;
  expect(cl.node(leader).commitIndex).toBe(index);
  return index;
}

/** What `id`'s storage holds after a power cut that kept its entries up to `through` (term and vote were fsynced). */
function cutStorage(cl: ManualRaftCluster, id: string, voters: string[], through: number): MemoryStorage<string, string> {
  const old = cl.storage(id);
  const cut = new MemoryStorage<string, string>(voters);
  cut.append(old.entries(1, through + 1, 1e9));
  cut.setHardState({ ...old.getHardState(), commit: Math.min(old.getHardState().commit, through) });
  return cut;
}

it.each([true, false])('(b power-cut: %s) a candidate whose uncommitted promote makes 4 voters does not win with 3 supporters, one of them the holder that lost a committed entry', (powerCut) => {
  // d starts outside the configuration {a, b, c}: a learner to be.
  const cl = new ManualRaftCluster(['a', 'b', 'c', 'd'], BASE, ['a', 'b', 'c']);
  const node = (id: string) => cl.node(id);
  const run = (up: readonly string[]) => cl.run(up);
  const start = (id: string, storage: MemoryStorage<string, string>, config: object) => cl.start(id, storage, config);
  const all = ['a', 'b', 'c', 'd'];

  // Term 1: c leads {a, b, c}, d is added as a learner and caught up.
  node('c').campaign();
  run(all);
  expect(node('c').status().role).toBe('leader');
  expect(node('c').proposeConfChange({ type: 'add-learner', node: 'd' }).ok).toBe(true);
  run(all);
  node('c').propose('v1');
  node('c').tick();
  run(all);
  // c appends "promote d": only d gets it (the appends to a and b are lost). c and d now count 4 voters.
  expect(node('c').proposeConfChange({ type: 'promote', node: 'd' }).ok).toBe(true);
  run(['c', 'd']);
  const j = node('c').lastIndex;
  expect(node('d').lastIndex).toBe(j);
  expect(node('a').lastIndex).toBe(j - 1);

  // Term 2: a is elected by b (c and d cut off), commits its no-op and "e" with b: acknowledged under {a, b, c}.
  node('a').campaign();
  run(['a', 'b']);
  expect(node('a').status()).toMatchObject({ role: 'leader', term: 2 });
  const eIndex = commitE(cl, 'a', ['a', 'b']);

  // b loses power: its term-2 entries were not fsynced (its term and vote were). It restarts recovering.
  const cut = cutStorage(cl, 'b', ['a', 'b', 'c'], j - 1);
  // Control (no power cut): b keeps its log, and the election is refused as in plain Raft.
  if (powerCut) start('b', cut, { ...BASE, recoveringAtStart: true });
  expect(node('b').status().recovering).toBe(powerCut);

  // a is down. c, the stale leader of term 1, is killed and restarts (its storage lost nothing). It campaigns in term 2
  // (b already voted for a: refused) and in term 3: b (recovering) would grant, d (a voter in c's log and its own) grants.
  start('c', cl.storage('c'), BASE);
  node('c').campaign();
  run(['b', 'c', 'd']);
  node('c').campaign();
  run(['b', 'c', 'd']);
  // The only holder left of the acknowledged "e" is a, and a is down: no one should be able to elect.
  const cStatus = node('c').status();
  expect({ role: cStatus.role, term: cStatus.term, hasE: holds(cl, 'c', eIndex, 'e') }).not.toMatchObject({ role: 'leader', hasE: false });
});

it('after a committed remove (4 voters to 3), a candidate that has not seen it does not win with 3 supporters of 4, one of them the holder that lost a committed entry', () => {
  const ids = ['a', 'b', 'c', 'd'];
  const cl = new ManualRaftCluster(ids, BASE);
  const node = (id: string) => cl.node(id);
  const run = (up: readonly string[]) => cl.run(up);
  const start = (id: string, storage: MemoryStorage<string, string>, config: object) => cl.start(id, storage, config);
  node('a').campaign();
  run(ids);
  node('a').propose('v1');
  node('a').tick();
  run(ids);
  const before = node('a').lastIndex;
  // a removes d; only b gets it (c and d are slow). {a, b} is a quorum of {a, b, c}: committed. So is "e".
  expect(node('a').proposeConfChange({ type: 'remove', node: 'd' }).ok).toBe(true);
  run(['a', 'b']);
  const eIndex = commitE(cl, 'a', ['a', 'b']);
  expect(node('a').status().voters).toEqual(['a', 'b', 'c']);

  // b loses power: the remove and "e" were not fsynced. It restarts recovering. a is down; d has not been shut down yet.
  start('b', cutStorage(cl, 'b', ids, before), { ...BASE, recoveringAtStart: true });
  node('c').campaign();
  run(['b', 'c', 'd']);
  const s = node('c').status();
  // Only a holds the acknowledged "e", and a is down: no one may be elected without it.
  expect({ role: s.role, voters: s.voters, hasE: holds(cl, 'c', eIndex, 'e') }).not.toMatchObject({ role: 'leader', hasE: false });
});
