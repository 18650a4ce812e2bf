/**
 * A learner elected (docs/raft.md, "A learner may campaign") leads only to commit its no-op, then hands over to a
 * voter holding its whole log (timeout-now) and steps down; it campaigns with pre-vote only. What could defeat that:
 * an entry it appends after its no-op (no voter holds its whole log when the no-op commits), and a timeout-now sent to
 * it (a real vote, past pre-vote and leases).
 */
import { describe, expect, it } from 'vitest';
import { ManualRaftCluster } from '../../../test/support/manual-raft.js';
import type { RaftConfigOptions } from './config.js';
import { drainReady } from './runner.js';
import { conf, noop, storageOf, value } from '../../../test/support/raft-entries.js';

const BASE: RaftConfigOptions = { preVote: true, checkQuorum: true, unsyncedAcks: true };

/**
 * {a, b, c} vote, d learns; every node holds [noop, add-learner d, v1] with "v1" (3) not known committed, term 1, and
 * no leader (a, which led, is down). d's log holds an entry above its commit: it may campaign, and b and c would
 * elect it (the same log, not in a lease).
 */
function cluster(): ManualRaftCluster {
  const ids = ['a', 'b', 'c', 'd'];
  const cl = new ManualRaftCluster(ids, BASE, ['a', 'b', 'c']);
  const log = [noop(1, 1), conf(2, 1, 'add-learner', 'd', ['a', 'b', 'c'], ['d']), value(3, 1, 'v1')];
  for (const id of ids) cl.start(id, storageOf(['a', 'b', 'c'], log, 1, 2), BASE);
  expect(cl.node('d').status().learners).toEqual(['d']);
  return cl;
}

/** Like `ManualRaftCluster.run`, calling `hook` after every delivered message (bounded as it is). */
function runWith(cl: ManualRaftCluster, up: readonly string[], hook: () => void): void {
  for (const id of up) drainReady(cl.node(id), cl.io(id));
  for (let round = 0; round < 100 && cl.queue.length > 0; round++) {
    const batch = cl.queue;
    cl.queue = [];
    for (const m of batch) {
      if (!up.includes(m.to) || !up.includes(m.from)) continue;
      cl.node(m.to).step(m);
      drainReady(cl.node(m.to), cl.io(m.to));
      hook();
    }
  }
}

const leaderOf = (cl: ManualRaftCluster, up: readonly string[]): string | undefined => up.find((id) => cl.node(id).status().role === 'leader');

describe('a learner elected', () => {
  // Its first append to each voter (the no-op) is a probe; an entry proposed meanwhile waits for the answer, and the
  // answers commit the no-op first. With "y" appended, no voter holds d's whole log then: no timeout-now, and d steps
  // down leaving the voters in its lease, then campaigns again (its log is ahead once more). In the broker, publishes
  // forwarded to the new leader arrive in that round trip.
  it('hands over at once even when asked to append an entry before its no-op commits', () => {
    const cl = cluster();
    const up = ['b', 'c', 'd'];
    const sentBefore = cl.sent.length;
    let asked = false;
    cl.node('d').campaign();
    runWith(cl, up, () => {
      if (asked || cl.node('d').status().role !== 'leader') return;
      asked = true;
      cl.node('d').propose('y');
      drainReady(cl.node('d'), cl.io('d'));
    });
    expect(asked).toBe(true);
    expect(cl.node('d').counters.leaderships).toBe(1);
    // Handed over within the same round of deliveries: a voter leads, no election timeout waited.
    expect(cl.sent.slice(sentBefore).some((m) => m.type === 'timeout-now' && m.from === 'd')).toBe(true);
    const leader = leaderOf(cl, up);
    expect(['b', 'c']).toContain(leader);
    // And it stays so: d does not campaign again.
    cl.ticks(40, up);
    expect(leaderOf(cl, up)).toBe(leader);
    expect(cl.node('d').counters.learnerCampaigns).toBe(0);
    expect(cl.node('d').counters.leaderships).toBe(1);
  });

  it('(control) without that entry, hands over at once', () => {
    const cl = cluster();
    const up = ['b', 'c', 'd'];
    cl.node('d').campaign();
    cl.run(up);
    expect(cl.node('d').counters.leaderships).toBe(1);
    expect(['b', 'c']).toContain(leaderOf(cl, up));
  });
});

describe('a learner whose log is ahead', () => {
  // A leader sends timeout-now to a node its own log makes a voter (say its "promote d", which d acknowledged and then
  // lost in a power cut). d's own log makes it a learner: it must not take that as leave to campaign, past pre-vote
  // and the voters' leases (a transfer's vote is granted in a lease), deposing a leader that works.
  it('does not answer a timeout-now with a vote (it campaigns with pre-vote only)', () => {
    const cl = cluster();
    const sentBefore = cl.sent.length;
    cl.node('d').step({ type: 'timeout-now', from: 'b', to: 'd', term: 1 });
    cl.run(['d']);
    expect(cl.sent.slice(sentBefore).filter((m) => m.from === 'd' && m.type === 'vote')).toEqual([]);
    expect(cl.node('d').term).toBe(1);
  });
});
