/**
 * A recovering follower in a quiesced group. The leader of its start term re-elects itself only if the voters
 * it heard from within an election timeout would elect it (Progress.lastHeardTick against `now`). `now` does not
 * advance while the leader is quiesced, so a woken leader forgets whom it heard, and a voter the failure detector
 * suspects never counts: else a voter that went down during quiescence still counted as heard, and the leader
 * abdicated into an election it could not win (found by review).
 */
import { expect, it } from 'vitest';
import { ManualRaftCluster } from '../../../test/support/manual-raft.js';

it.each([
  [false, true],
  [true, true],
  [false, false],
  [true, false],
])('check-quorum %s, the down voter suspected %s: a quiesced group with a voter down keeps its leader when a follower restarts recovering', (checkQuorum, suspected) => {
  const BASE = { preVote: true, checkQuorum, quiesce: true, unsyncedAcks: true };
  const ids = ['a', 'b', 'c'];
  const cl = new ManualRaftCluster(ids, BASE);
  const node = (id: string) => cl.node(id);
  const run = (up: readonly string[]) => cl.run(up);
  const ticks = (n: number, up: readonly string[]) => cl.ticks(n, up);
  node('a').campaign();
  run(ids);
  node('a').campaign();
  run(ids);
  node('a').propose('v1');
  run(ids);
  ticks(30, ids);
  expect(node('a').status().role).toBe('leader');
  expect(node('a').quiesced).toBe(true);

  // c's broker goes down (the failure detector says so, or not yet); b loses power (it lost nothing here) and restarts recovering.
  if (suspected) for (const id of ['a', 'b']) node(id).peerDown('c', false);
  // Three election timeouts pass (a quiesced leader's clock stands still; without quiescence a then keeps leading).
  ticks(30, ['a', 'b']);
  cl.start('b', cl.storage('b'), { ...BASE, recoveringAtStart: true });
  node('a').peerUp('b');
  ticks(50, ['a', 'b']);
  // a led a working group (a and b commit) and must keep leading: c, down and suspected, cannot help elect anyone.
  // Its Progress.lastHeardTick looks recent because a's clock (`now`) stood still while it was quiesced.
  expect({ role: node('a').status().role, recoveryElections: node('a').counters.recoveryElections }).toEqual({ role: 'leader', recoveryElections: 0 });
});
