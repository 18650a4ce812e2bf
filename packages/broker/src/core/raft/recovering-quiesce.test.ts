/**
 * A recovering follower in a quiesced group. The leader of its start term re-elects itself only if the voters
 * it heard from within an election timeout would elect it (Progress.lastHeardTick against `now`); but `now` does not
 * advance while the leader is quiesced, so a voter that went down during quiescence (even one the failure detector
 * suspects) still counts as heard, and the leader abdicates into an election it cannot win.
 */
import { expect, it } from 'vitest';
import { RaftNode } from './node.js';
import { drainReady } from './runner.js';
import { MemoryStorage } from './storage.js';
import type { Entry, Message, RandomSource } from './types.js';

type Msg = Message<string, string>;
const ZERO: RandomSource = { nextInt: () => 0 };

it.each([
  [false, true],
  [true, true],
  [false, false],
  [true, false],
])('check-quorum %s, the down voter suspected %s: a quiesced group with a voter down keeps its leader when a follower restarts recovering', (checkQuorum, suspected) => {
  const BASE = { preVote: true, checkQuorum, quiesce: true, unsyncedAcks: true };
  const ids = ['a', 'b', 'c'];
  const storages = new Map<string, MemoryStorage<string, string>>();
  const nodes = new Map<string, RaftNode<string, string>>();
  let queue: Msg[] = [];
  const start = (id: string, storage: MemoryStorage<string, string>, config: object): void => {
    storages.set(id, storage);
    nodes.set(id, new RaftNode<string, string>({ id, storage, random: ZERO, config, applied: 0 }));
  };
  for (const id of ids) start(id, new MemoryStorage<string, string>(ids), BASE);
  const node = (id: string): RaftNode<string, string> => nodes.get(id) as RaftNode<string, string>;
  const io = (id: string) => ({
    storage: storages.get(id) as MemoryStorage<string, string>,
    send: (ms: readonly Msg[]) => void queue.push(...ms),
    restore: () => undefined,
    apply: (_es: readonly Entry<string>[]) => undefined,
  });
  const run = (up: readonly string[]): void => {
    for (const id of up) drainReady(node(id), io(id));
    for (let round = 0; round < 100 && queue.length > 0; round++) {
      const batch = queue;
      queue = [];
      for (const m of batch) {
        if (!up.includes(m.to) || !up.includes(m.from)) continue;
        node(m.to).step(m);
        drainReady(node(m.to), io(m.to));
      }
    }
  };
  const ticks = (n: number, up: readonly string[]): void => {
    for (let i = 0; i < n; i++) {
      for (const id of up) node(id).tick();
      run(up);
    }
  };
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
  start('b', storages.get('b') as MemoryStorage<string, string>, { ...BASE, recoveringAtStart: true });
  node('a').peerUp('b');
  ticks(50, ['a', 'b']);
  // a led a working group (a and b commit) and must keep leading: c, down and suspected, cannot help elect anyone.
  // Its Progress.lastHeardTick looks recent because a's clock (`now`) stood still while it was quiesced.
  expect({ role: node('a').status().role, recoveryElections: node('a').counters.recoveryElections }).toEqual({ role: 'leader', recoveryElections: 0 });
});
