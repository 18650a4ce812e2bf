import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RelayError } from '@relaymq/sdk/protocol';
import type { Entry, Message } from '../core/raft/index.js';
import type { PeerTransport } from '../net/peer-transport.js';
import { nodeFileSystem } from '../storage/fs.js';
import { FaultyFileSystem } from '../../test/support/faulty-fs.js';
import { DurableRaftStorage } from '../storage/raft-storage.js';
import { RaftGroup, firstToCampaign } from './raft-group.js';

const dirs: string[] = [];
const groups: Array<RaftGroup<string, string>> = [];
afterEach(async () => {
  for (const group of groups.splice(0)) group.stop();
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

/** Resolves once `condition()` holds; fails after `timeoutMs`. */
async function until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

const entry = (index: number, term: number): Entry<string> => ({ type: 'normal', index, term, data: `e${index}` });

/** Replica `a` of a group a, b, c, with its Raft log on a file system that fails on demand; `sent` is everything it sent. */
async function replica(options: { apply?: (data: string, index: number) => string } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'relaymq-group-'));
  dirs.push(dir);
  const fs = new FaultyFileSystem(nodeFileSystem);
  const storage = await DurableRaftStorage.open<string, never>(join(dir, 'g.log'), ['a', 'b', 'c'], { fsync: 'always', fsyncIntervalMs: 1000, fs });
  const sent: Array<Message<string, never>> = [];
  const transport = { send: (_to: string, _channel: string, message: Message<string, never>) => void sent.push(message), understands: () => false } as unknown as PeerTransport;
  const group = new RaftGroup<string, string>({
    id: 'p/t/0',
    self: 'a',
    transport,
    storage,
    parseData: (data) => (typeof data === 'string' ? data : undefined),
    apply: options.apply ?? ((data) => data),
    fenceRetry: { minDelayMs: 5, maxDelayMs: 20 },
    log: () => {},
  });
  groups.push(group);
  const append = (term: number, prevIndex: number, prevTerm: number, entries: Array<Entry<string>>, commit: number): void =>
    group.receive('b', { type: 'app', from: 'b', to: 'a', term, prevIndex, prevTerm, entries, commit });
  return { fs, storage, group, sent, append };
}

const acks = (sent: Array<Message<string, never>>): number[] => sent.flatMap((m) => (m.type === 'app-resp' && !m.reject ? [m.index] : []));


/** Ticks group `a` until it leads, `b` granting every (pre-)vote it is asked for; `sent` collects what `a` sends. */
async function leadWithB(group: Pick<RaftGroup<string, string, unknown>, 'tick' | 'isLeader' | 'receive'>, sent: Message<string, string>[]): Promise<void> {
  // Bounded in time, not in ticks: under load a vote's fsync can outlast many 2 ms turns, and its request must still be answered.
  const deadline = Date.now() + 10_000;
  for (let i = 0; i < 5_000 && !group.isLeader() && Date.now() < deadline; i++) {
    group.tick();
    await new Promise((resolve) => setTimeout(resolve, 2));
    for (const m of sent.splice(0)) {
      if (m.to === 'b' && (m.type === 'vote' || m.type === 'pre-vote')) {
        group.receive('b', { type: m.type === 'vote' ? 'vote-resp' : 'pre-vote-resp', from: 'b', to: 'a', term: m.term, reject: false });
      }
    }
  }
  if (!group.isLeader()) throw new Error('timed out waiting for a to lead');
}

describe('a Raft group whose storage fails', () => {
  it('is fenced: it acknowledges nothing that is not durable, grants no vote and never campaigns; it rejoins by itself once the disk works', async () => {
    const { fs, storage, group, sent, append } = await replica();
    append(1, 0, 0, [entry(1, 1), entry(2, 1)], 0);
    await until(() => acks(sent).includes(2), 'the ack of entries 1-2');

    fs.failNext('datasync', 'EIO', Number.POSITIVE_INFINITY); // fsync fails: entries 3-4 may or may not be on disk
    append(1, 2, 1, [entry(3, 1), entry(4, 1)], 2);
    await until(() => group.fenceReason !== undefined, 'the fence');
    expect(group.fenceReason?.code).toBe('STORAGE_ERROR');
    expect(group.isLeader()).toBe(false);

    // Fenced: a vote request, more entries, heartbeats and elapsed election timeouts get no answer at all.
    const before = sent.length;
    group.receive('c', { type: 'vote', from: 'c', to: 'a', term: 2, lastIndex: 4, lastTerm: 1, transfer: false });
    append(1, 4, 1, [entry(5, 1)], 4);
    group.receive('b', { type: 'heartbeat', from: 'b', to: 'a', term: 1, commit: 2 });
    for (let i = 0; i < 50; i++) group.tick();
    await new Promise((resolve) => setTimeout(resolve, 50)); // (an answer would have left by now: nothing waits for the disk)
    expect(sent.slice(before)).toEqual([]);
    // It still knows who leads, so requests through this broker are forwarded there.
    expect(group.leader).toBe('b');
    await expect(group.propose('x', 1000)).rejects.toMatchObject({ code: 'NOT_LEADER', details: { leader: 'b' } });

    // The disk works again: it reloads what is provably durable (entries 1-2) and rejoins as a follower.
    fs.heal();
    await until(() => group.fenceReason === undefined, 'the recovery');
    expect(storage.reader.lastIndex()).toBe(2);
    // A leader that believes it holds 1-4 is told otherwise (never an ack of what a failed fsync may have lost)...
    append(1, 4, 1, [], 2);
    await until(() => sent.some((m) => m.type === 'app-resp' && m.reject), 'the rejection of entry 4');
    expect(Math.max(...acks(sent))).toBe(2);
    // ...and repairs it like any lagging replica.
    append(1, 2, 1, [entry(3, 1), entry(4, 1)], 4);
    await until(() => acks(sent).includes(4), 'the ack of the repaired entries');
    await until(() => group.applied === 4, 'the repaired entries to be applied');
  });

  it('never counts an entry as applied that the state machine could not take (its checkpoint would skip it)', async () => {
    let failing = false;
    const { group, append } = await replica({
      apply: (data) => {
        if (failing) throw new RelayError('STORAGE_FULL', 'injected: the partition log is full');
        return data;
      },
    });
    append(1, 0, 0, [entry(1, 1), entry(2, 1)], 2);
    await until(() => group.applied === 2, 'entries 1-2 to be applied');
    failing = true;
    append(1, 2, 1, [entry(3, 1)], 3);
    await until(() => group.fenceReason !== undefined, 'the fence');
    expect(group.fenceReason?.code).toBe('STORAGE_FULL');
    expect(group.applied).toBe(2);
  });
});

describe('a Raft group whose snapshot install fails part way', () => {
  it('rewinds its state machine when it recovers, instead of keeping a half-installed state at the old applied index', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'relaymq-group-'));
    dirs.push(dir);
    const storage = await DurableRaftStorage.open<string, string>(join(dir, 'g.log'), ['a', 'b', 'c'], { fsync: 'always', fsyncIntervalMs: 1000 });
    const transport = { send: () => {}, understands: () => false } as unknown as PeerTransport;
    let installs = 0;
    const rewinds: number[] = [];
    const group = new RaftGroup<string, string, string>({
      id: 'p/t/0',
      self: 'a',
      transport,
      storage,
      parseData: (data) => (typeof data === 'string' ? data : undefined),
      parseSnapshot: (data) => (typeof data === 'string' ? data : undefined),
      apply: (data) => data,
      // The first install copies part of the state, then its disk fails.
      installSnapshot: async () => {
        installs++;
        if (installs === 1) throw new RelayError('STORAGE_FULL', 'injected: the partition log is full');
      },
      recover: async () => {
        rewinds.push(0);
        return 0; // back to the durable checkpoint (none here)
      },
      fenceRetry: { minDelayMs: 5, maxDelayMs: 20 },
      log: () => {},
    });
    groups.push(group as unknown as RaftGroup<string, string>);
    const conf = { voters: ['a', 'b', 'c'] };
    group.receive('b', { type: 'snapshot', from: 'b', to: 'a', term: 1, snapshot: { meta: { index: 10, term: 1, conf }, data: 'state@10' } });
    await until(() => group.fenceReason !== undefined, 'the fence');
    await until(() => group.fenceReason === undefined, 'the recovery');
    // Before: applied 0 and a log holding index 0 counted as "the state machine holds exactly what is applied",
    // so the half-installed state was kept and never rewound.
    expect(rewinds).toHaveLength(1);
    expect(group.applied).toBe(0);
  });
});

describe('a Raft group that leads', () => {
  it('answers its waiting proposals TIMEOUT (outcome unknown) as soon as check-quorum steps it down, not after their whole timeout', async () => {
    const { group, sent } = await replica();
    // `a` campaigns and `b` grants every (pre-)vote: `a` leads.
    await leadWithB(group, sent);
    const started = Date.now();
    const proposed = group.propose('x', 60_000).then(
      () => undefined,
      (err: unknown) => err,
    );
    // Then `a` hears from nobody (a split leaves it in the minority): after an election timeout it steps down.
    for (let i = 0; i < 100 && group.isLeader(); i++) {
      group.tick();
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    expect(group.isLeader()).toBe(false);
    const error = await Promise.race([proposed, new Promise((resolve) => setTimeout(() => resolve('still waiting'), 2000))]);
    expect(error).toBeInstanceOf(RelayError);
    expect((error as RelayError).code).toBe('TIMEOUT');
    expect((error as RelayError).message).toMatch(/no longer leads/);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('sends a snapshot again when the follower never got it (it restarted while the snapshot was on its way), so that follower catches up', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'relaymq-group-'));
    dirs.push(dir);
    const storage = await DurableRaftStorage.open<string, string>(join(dir, 'g.log'), ['a', 'b', 'c'], { fsync: 'always', fsyncIntervalMs: 1000 });
    const sent: Array<Message<string, string>> = [];
    const transport = { send: (_to: string, _channel: string, message: Message<string, string>) => void sent.push(message), understands: () => false } as unknown as PeerTransport;
    const group = new RaftGroup<string, string, string>({
      id: 'p/t/0',
      self: 'a',
      transport,
      storage,
      parseData: (data) => (typeof data === 'string' ? data : undefined),
      parseSnapshot: (data) => (typeof data === 'string' ? data : undefined),
      apply: (data) => data,
      log: () => {},
    });
    groups.push(group as unknown as RaftGroup<string, string>);
    const to = (peer: string, type: Message<string, string>['type']) => sent.filter((m) => m.to === peer && m.type === type);

    // `a` campaigns and `b` grants every (pre-)vote: `a` leads with `b`; `c` is cut off.
    await leadWithB(group, sent);
    const term = group.node.status().term;
    const proposed = [group.propose('x', 5000), group.propose('y', 5000)];
    await until(() => to('b', 'app').some((m) => m.type === 'app' && m.entries.length > 0), 'the entries sent to b');
    group.receive('b', { type: 'app-resp', from: 'b', to: 'a', term, index: group.node.lastIndex, reject: false, hintIndex: 0, hintTerm: 0 });
    await Promise.all(proposed);
    const last = group.node.lastIndex;
    await group.compact(() => storage.compact(last, 'state'));

    // `c` comes back with an empty log: it needs the compacted entries, so `a` sends it the snapshot...
    group.receive('c', { type: 'heartbeat-resp', from: 'c', to: 'a', term });
    for (const probe of to('c', 'app')) group.receive('c', { type: 'app-resp', from: 'c', to: 'a', term, index: (probe as { prevIndex: number }).prevIndex, reject: true, hintIndex: 0, hintTerm: 0 });
    await until(() => to('c', 'snapshot').length === 1, 'the snapshot for c');
    // ...which `c` never gets (it restarted): it answers heartbeats, never the snapshot.
    for (let tick = 0; tick < 30 && to('c', 'snapshot').length < 2; tick++) {
      group.tick();
      group.receive('c', { type: 'heartbeat-resp', from: 'c', to: 'a', term });
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    // Within an election timeout or so, `a` sends it again (before: never, and `c` stayed behind for good).
    expect(to('c', 'snapshot')).toHaveLength(2);
    expect(to('c', 'snapshot')[1]).toMatchObject({ type: 'snapshot', snapshot: { meta: { index: last }, data: 'state' } });
    // Once `c` installs it, `a` replicates to it again from there.
    group.receive('c', { type: 'app-resp', from: 'c', to: 'a', term, index: last, reject: false, hintIndex: 0, hintTerm: 0 });
    await until(() => group.node.status().progress.find((p) => p.id === 'c')?.match === last, 'c to match the snapshot');
  });
});

describe('a Raft group just elected', () => {
  it('has not applied all its predecessor committed; an entry it proposes resolves only once all of that is applied (the read barrier of meta.topic-missing)', async () => {
    const applied: string[] = [];
    const { group, sent, append } = await replica({ apply: (data) => (applied.push(data), data) });
    // b leads term 1; entries 1-2 reach a, which hears of the commit of entry 1 only (b may have committed 2 with c).
    append(1, 0, 0, [entry(1, 1), entry(2, 1)], 1);
    await until(() => acks(sent).includes(2) && applied.length === 1, 'the ack of entries 1-2 and the apply of entry 1');
    // a is elected: it leads, and its state machine lacks entry 2, which may be committed.
    await leadWithB(group, sent);
    expect(group.applied).toBe(1);
    expect(applied).toEqual(['e1']);

    const term = group.node.status().term;
    const barrier = group.propose('x', 5000).then(() => [...applied]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(applied, 'nothing commits in the new term before a quorum holds it').toEqual(['e1']);
    // b acknowledges a's log (its no-op and x): x resolves after entry 2 was applied, never before.
    group.receive('b', { type: 'app-resp', from: 'b', to: 'a', term, index: group.node.lastIndex, reject: false, hintIndex: 0, hintTerm: 0 });
    await expect(barrier).resolves.toEqual(['e1', 'e2', 'x']);
  });
});

describe('a Raft group acknowledging at the leader', () => {
  it('answers ack `leader` with the projected result once its own write is done, before any follower has the entry; `quorum` still waits for the commit', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'relaymq-group-'));
    dirs.push(dir);
    const storage = await DurableRaftStorage.open<string, never>(join(dir, 'g.log'), ['a', 'b', 'c'], { fsync: 'always', fsyncIntervalMs: 1000 });
    const sent: Array<Message<string, never>> = [];
    const transport = { send: (_to: string, _channel: string, message: Message<string, never>) => void sent.push(message), understands: () => false } as unknown as PeerTransport;
    // A state machine that numbers what it applies; its projection numbers what is appended but not applied yet.
    let count = 0;
    const appliedResults: string[] = [];
    const projected = new Set<number>();
    const group = new RaftGroup<string, string>({
      id: 'p/t/0',
      self: 'a',
      transport,
      storage,
      parseData: (data) => (typeof data === 'string' ? data : undefined),
      apply: (data) => {
        const result = `${data}#${count++}`;
        appliedResults.push(result);
        return result;
      },
      projection: {
        project: (data, index) => {
          projected.add(index);
          return `${data}#${count + projected.size - 1}`;
        },
        applied: (index) => void projected.delete(index),
        reset: () => projected.clear(),
      },
      log: () => {},
    });
    groups.push(group);
    await leadWithB(group, sent);
    const term = group.node.status().term;
    const settled = new Map<string, string>();
    const track = (name: string, proposal: Promise<string>): Promise<string> => proposal.then((result) => (settled.set(name, result), result));

    // Nobody answers a's appends: nothing commits, yet `leader` is acknowledged once a's log holds the entry.
    await expect(track('x', group.propose('x', 5000, 'leader'))).resolves.toBe('x#0');
    const quorum = track('y', group.propose('y', 5000)); // proposed `quorum`: projected later, when `z` needs it
    await expect(track('z', group.propose('z', 5000, 'leader'))).resolves.toBe('z#2');
    expect(group.node.commitIndex).toBeLessThan(group.node.lastIndex);
    expect(appliedResults).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(settled.has('y')).toBe(false);

    // b acknowledges everything: it commits, `quorum` resolves, and the applied results are the ones foreseen.
    group.receive('b', { type: 'app-resp', from: 'b', to: 'a', term, index: group.node.lastIndex, reject: false, hintIndex: 0, hintTerm: 0 });
    await expect(quorum).resolves.toBe('y#1');
    expect(appliedResults).toEqual(['x#0', 'y#1', 'z#2']);
    expect(projected.size).toBe(0);
  });
});

describe('a Raft group on the way of an awaited publish', () => {
  /**
   * Leader `a` of a, b, c on a real Raft log; its transport writes what is
   * sent in a tick at the end of it, as the peer transport does (`wire`),
   * and `events` records those writes and the storage's appends in order.
   */
  async function leader() {
    const dir = await mkdtemp(join(tmpdir(), 'relaymq-group-'));
    dirs.push(dir);
    const storage = await DurableRaftStorage.open<string, never>(join(dir, 'g.log'), ['a', 'b', 'c'], { fsync: 'always', fsyncIntervalMs: 1000 });
    const events: string[] = [];
    const sent: Array<Message<string, never>> = [];
    const send = (_to: string, _channel: string, message: Message<string, never>): void => {
      sent.push(message);
      const what = message.type === 'app' ? `${message.entries.length > 0 ? 'entries' : 'commit'} to ${message.to}` : `${message.type} to ${message.to}`;
      // As the peer transport writes a batch frame (the default between brokers): in a setImmediate.
      setImmediate(() => events.push(`wire: ${what}`));
    };
    const append = storage.append.bind(storage);
    storage.append = (entries) => {
      events.push(`own write of ${entries.map((e) => e.index).join(',')}`);
      append(entries);
    };
    const group = new RaftGroup<string, string>({ id: 'p/t/0', self: 'a', transport: { send, understands: () => false } as unknown as PeerTransport, storage, parseData: (d) => (typeof d === 'string' ? d : undefined), apply: (d) => d, log: () => {} });
    groups.push(group);
    await leadWithB(group, sent);
    // b and c hold the no-op: it commits, and both followers are in step (each proposal's entries go to both at once).
    for (const from of ['b', 'c']) group.receive(from, { type: 'app-resp', from, to: 'a', term: group.node.term, index: group.node.lastIndex, reject: false, hintIndex: 0, hintTerm: 0 });
    await until(() => group.node.commitIndex === group.node.lastIndex, 'the no-op to commit');
    // The no-op applied and its commit index told to both followers: nothing of the election is left to land in the
    // events the tests read (a fixed 20 ms wait let a slow fsync's commit messages arrive after the reset at load 9+).
    await until(
      () => group.applied === group.node.lastIndex && ['b', 'c'].every((to) => events.includes(`wire: commit to ${to}`)),
      'the no-op applied and its commit sent',
    );
    events.length = 0;
    return { group, events };
  }

  it("hands a proposal's entries to the followers' sockets before it writes them itself, so their round trip overlaps its own write", async () => {
    const { group, events } = await leader();
    const index = group.node.lastIndex + 1;
    const proposal = group.propose('x', 5000);
    proposal.catch(() => {}); // (awaited below; a failed expectation stops the group first)
    await until(() => events.some((e) => e.startsWith('own write')), 'the own write');
    expect(events.slice(0, 3).sort()).toEqual([`own write of ${index}`, 'wire: entries to b', 'wire: entries to c'].sort());
    expect(events.indexOf(`own write of ${index}`)).toBe(2);
    group.receive('b', { type: 'app-resp', from: 'b', to: 'a', term: group.node.term, index, reject: false, hintIndex: 0, hintTerm: 0 });
    await expect(proposal).resolves.toBe('x');
  });

  it('acknowledges a committed proposal before it tells the followers the new commit index', async () => {
    const { group, events } = await leader();
    const index = group.node.lastIndex + 1;
    // The broker's answer reaches the client socket through a chain of promise callbacks (engine, router, session).
    let chain = group.propose('x', 5000);
    for (let hop = 0; hop < 30; hop++) chain = chain.then((result) => result);
    const proposal = chain.then((result) => (events.push(`acknowledged ${result}`), result));
    proposal.catch(() => {}); // (awaited below; a failed expectation stops the group first)
    await until(() => events.some((e) => e.startsWith('own write')), 'the own write');
    await new Promise((resolve) => setTimeout(resolve, 20));
    events.length = 0;
    // From an I/O callback, as the peer transport delivers it: what the transport writes at the end of this callback
    // goes before any promise callback runs.
    setImmediate(() => group.receive('b', { type: 'app-resp', from: 'b', to: 'a', term: group.node.term, index, reject: false, hintIndex: 0, hintTerm: 0 }));
    await proposal;
    await until(() => events.filter((e) => e.startsWith('wire: commit')).length === 2, 'the commit index to leave');
    expect(events[0]).toBe('acknowledged x');
    expect(events.slice(1).sort()).toEqual(['wire: commit to b', 'wire: commit to c']);
    expect(group.node.commitIndex).toBe(index);
  });
});

describe('a Raft group changing its membership', () => {
  /** Replica `a` of a group bootstrapped as `voters`, on a log at `path` (reopened as it is when it exists). */
  async function member(path: string, voters: string[], options: { joining?: boolean } = {}) {
    const storage = await DurableRaftStorage.open<string, never>(path, voters, { fsync: 'always', fsyncIntervalMs: 1000 });
    const sent: Array<Message<string, never>> = [];
    const changes: Array<{ voters: readonly string[]; learners: readonly string[]; index: number }> = [];
    const transport = { send: (_to: string, _channel: string, message: Message<string, never>) => void sent.push(message), understands: () => false } as unknown as PeerTransport;
    const group = new RaftGroup<string, string>({
      id: 'meta',
      self: 'a',
      ...(options.joining === undefined ? {} : { joining: options.joining }),
      transport,
      storage,
      parseData: (data) => (typeof data === 'string' ? data : undefined),
      apply: (data) => data,
      onConfChange: (conf, index) => changes.push({ voters: conf.voters, learners: conf.learners ?? [], index }),
      log: () => {},
    });
    groups.push(group);
    return { group, storage, sent, changes };
  }

  it('proposes and observes changes, and after a restart the stored configuration rules, not the voters it is started with', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'relaymq-group-'));
    dirs.push(dir);
    const path = join(dir, 'meta.log');
    const first = await member(path, ['a']);
    await until(() => first.group.isLeader(), 'a to lead alone');
    await first.group.propose('x', 2000); // the leader's term is committed: changes may follow

    // A learner commits on the leader alone (learners never count for a quorum).
    const withLearner = await first.group.proposeConfChange({ type: 'add-learner', node: 'b' }, 2000);
    expect(withLearner).toEqual({ voters: ['a'], learners: ['b'] });
    expect(first.group.confState).toEqual({ voters: ['a'], learners: ['b'] });
    expect(first.changes.at(-1)).toMatchObject({ voters: ['a'], learners: ['b'] });
    // A second add of the same member is refused for good; a change of a group this broker does not lead, for now.
    await expect(first.group.proposeConfChange({ type: 'add-learner', node: 'b' }, 2000)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });

    // Promoting b makes it a voter at once (in the log): the change commits once b acknowledges it.
    const term = first.group.node.status().term;
    const promoted = first.group.proposeConfChange({ type: 'promote', node: 'b' }, 5000);
    await until(() => first.changes.at(-1)?.voters.length === 2, 'the promotion to take effect');
    expect(first.group.confState.voters).toEqual(['a', 'b']);
    // Another change while this one is not committed: refused for now (one change at a time).
    await expect(first.group.proposeConfChange({ type: 'add-learner', node: 'c' }, 2000)).rejects.toMatchObject({ code: 'NOT_READY' });
    // b (with an empty log) takes every append it is sent.
    let settled = false;
    void promoted.finally(() => (settled = true)).catch(() => {});
    await until(() => {
      for (const m of first.sent.splice(0)) {
        if (m.to !== 'b' || (m.type !== 'app' && m.type !== 'heartbeat')) continue;
        const index = m.type === 'app' ? m.prevIndex + m.entries.length : 0;
        if (m.type === 'app') first.group.receive('b', { type: 'app-resp', from: 'b', to: 'a', term, index, reject: false, hintIndex: 0, hintTerm: 0 });
        else first.group.receive('b', { type: 'heartbeat-resp', from: 'b', to: 'a', term });
      }
      first.group.tick();
      return settled;
    }, 'the promotion to commit');
    expect(await promoted).toEqual({ voters: ['a', 'b'], learners: [] });
    first.group.stop();
    await first.storage.close();

    // Restarted with its old command line (voters a alone): a and b vote, so a no longer leads by itself.
    const again = await member(path, ['a']);
    expect(again.group.confState).toEqual({ voters: ['a', 'b'], learners: [] });
    for (let i = 0; i < 60; i++) again.group.tick();
    await until(() => again.sent.some((m) => m.to === 'b' && (m.type === 'pre-vote' || m.type === 'vote')), 'a to ask b for its vote');
    expect(again.group.isLeader()).toBe(false);
    await again.storage.close();
  });

  /**
   * Leader `a` of {a, b} proposes its own removal and the removal commits; b takes every append and answers a
   * heartbeat with its commit (the acknowledgement the leader waits for) only once `state.acknowledge`.
   */
  async function removingItself(timeoutMs: number) {
    const dir = await mkdtemp(join(tmpdir(), 'relaymq-group-'));
    dirs.push(dir);
    const a = await member(join(dir, 'meta.log'), ['a', 'b']);
    await leadWithB(a.group, a.sent as Message<string, string>[]);
    const term = a.group.node.status().term;
    const state = { acknowledge: false, settled: false };
    const answerAsB = (): void => {
      for (const m of a.sent.splice(0)) {
        if (m.to !== 'b') continue;
        if (m.type === 'app') a.group.receive('b', { type: 'app-resp', from: 'b', to: 'a', term, index: m.prevIndex + m.entries.length, reject: false, hintIndex: 0, hintTerm: 0 });
        if (m.type === 'heartbeat') a.group.receive('b', state.acknowledge ? { type: 'heartbeat-resp', from: 'b', to: 'a', term, commit: m.commit } : { type: 'heartbeat-resp', from: 'b', to: 'a', term });
      }
    };
    const x = a.group.propose('x', 5000);
    await until(() => {
      answerAsB();
      a.group.tick();
      return a.group.node.status().commit >= 2;
    }, 'the term to commit');
    await x;
    const removed = a.group.proposeConfChange({ type: 'remove', node: 'a' }, timeoutMs);
    void removed.finally(() => (state.settled = true)).catch(() => {});
    const removal = a.group.node.lastIndex;
    await until(() => {
      answerAsB();
      return a.group.node.status().commit >= removal;
    }, 'the removal to commit');
    return { a, term, state, answerAsB, removed, removal };
  }

  it('a leader removing itself resolves only once a voter acknowledged the commit and it handed over (its replica may go then)', async () => {
    const { a, state, answerAsB, removed } = await removingItself(10_000);
    // Committed and applied, but no voter said it knows: a leads on (an election timeout is 10 ticks; 5 here).
    for (let i = 0; i < 5; i++) {
      a.group.tick();
      answerAsB();
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    expect({ settled: state.settled, leads: a.group.isLeader() }).toEqual({ settled: false, leads: true });
    state.acknowledge = true;
    await until(() => {
      a.group.tick();
      answerAsB();
      return state.settled;
    }, 'a to hand over');
    expect(await removed).toEqual({ voters: ['b'], learners: [] });
    expect(a.group.isLeader()).toBe(false);
    expect(a.group.node.counters).toMatchObject({ removedStepDowns: 1, removalsUnacknowledged: 0 });
    await a.storage.close();
  });

  // In the two below b never acknowledges the removal's commit, and a is not ticked, so its core's bound never ends the wait.
  it('a leader removing itself that loses its leadership in the wait (a later term) resolves then, not at its timeout', async () => {
    const { a, term, state, removed, removal } = await removingItself(60_000);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect({ settled: state.settled, leads: a.group.isLeader() }).toEqual({ settled: false, leads: true });
    // b leads a later term (the timeout-now's, or an election): a follows, and the change resolves at once.
    a.group.receive('b', { type: 'heartbeat', from: 'b', to: 'a', term: term + 1, commit: removal });
    await until(() => state.settled, 'the self-removal to resolve once a no longer leads', 3000);
    expect(await removed).toEqual({ voters: ['b'], learners: [] });
    expect(a.group.isLeader()).toBe(false);
    expect(a.group.node.counters).toMatchObject({ removedStepDowns: 0, removalsUnacknowledged: 0 });
    await a.storage.close();
  });

  it('a leader removing itself that stops (shutdown) in the wait resolves then, not at its timeout', async () => {
    const { a, state, removed } = await removingItself(60_000);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect({ settled: state.settled, leads: a.group.isLeader() }).toEqual({ settled: false, leads: true });
    a.group.stop();
    await until(() => state.settled, 'the self-removal to resolve once the group stopped', 3000);
    expect(await removed).toEqual({ voters: ['b'], learners: [] });
    await a.storage.close();
  });

  it('a broker outside the stored configuration is refused unless it is joining; a joining one never campaigns', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'relaymq-group-'));
    dirs.push(dir);
    await expect(member(join(dir, 'refused.log'), ['b', 'c'])).rejects.toThrow(/not among the voters/);
    const joining = await member(join(dir, 'joining.log'), ['b', 'c'], { joining: true });
    for (let i = 0; i < 100; i++) joining.group.tick();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(joining.sent.filter((m) => m.type === 'vote' || m.type === 'pre-vote')).toEqual([]);
    // The leader's appends make it a learner: it follows and acknowledges them.
    joining.group.receive('b', {
      type: 'app',
      from: 'b',
      to: 'a',
      term: 1,
      prevIndex: 0,
      prevTerm: 0,
      entries: [{ type: 'conf', index: 1, term: 1, change: { type: 'add-learner', node: 'a' }, conf: { voters: ['b', 'c'], learners: ['a'] } }],
      commit: 1,
    });
    await until(() => joining.changes.some((c) => c.learners.includes('a')), 'a to see itself added');
    await until(() => joining.sent.some((m) => m.type === 'app-resp' && !m.reject && m.index === 1), 'the ack of the change');
    await joining.storage.close();
  });
});

describe('firstToCampaign: who campaigns at once when a group loses its leader', () => {
  it('is the same voter on every replica, never the lost leader, and spreads groups over the survivors', () => {
    const voters = ['b3', 'b1', 'b2'];
    const picks = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const group = `p/topic${i}/${i % 8}`;
      const pick = firstToCampaign(group, voters, 'b2');
      expect(pick).toBe(firstToCampaign(group, [...voters].reverse(), 'b2'));
      expect(pick === 'b1' || pick === 'b3').toBe(true);
      picks.set(pick as string, (picks.get(pick as string) ?? 0) + 1);
    }
    expect(picks.get('b1')).toBeGreaterThan(100);
    expect(picks.get('b3')).toBeGreaterThan(100);
    expect(firstToCampaign('meta', ['b1'], 'b1')).toBeUndefined();
  });
});

describe('a Raft group whose Readys drain synchronously', () => {
  it('takes a proposal made from inside its own apply (a re-entrant drain): each entry applied once, in order, both answered', async () => {
    const applied: string[] = [];
    let again: Promise<string> | undefined;
    let self: RaftGroup<string, string> | undefined;
    const { group, sent } = await replica({
      apply: (data, index) => {
        applied.push(`${index}:${data}`);
        // A listener of the apply that publishes again, synchronously, while this group's drain runs.
        if (data === 'x') again = self?.propose('y', 5000);
        return data;
      },
    });
    self = group;
    await leadWithB(group, sent);
    const first = group.propose('x', 5000);
    // b acknowledges everything a sends it, until both proposals are answered (bounded).
    let answered = false;
    const both = first.then(async (x) => [x, await (again as Promise<string>)]).finally(() => (answered = true));
    both.catch(() => {});
    for (let i = 0; i < 2000 && !answered; i++) {
      for (const m of sent.splice(0)) {
        if (m.type === 'app' && m.to === 'b') {
          const index = m.prevIndex + m.entries.length;
          group.receive('b', { type: 'app-resp', from: 'b', to: 'a', term: m.term, index, reject: false, hintIndex: 0, hintTerm: 0 });
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await expect(both).resolves.toEqual(['x', 'y']);
    const data = applied.filter((a) => !a.endsWith(':'));
    expect(data.map((a) => a.split(':')[1])).toEqual(['x', 'y']);
    const [xi, yi] = data.map((a) => Number(a.split(':')[0]));
    expect(yi).toBeGreaterThan(xi as number);
  });
});

describe("a Raft group's proposal timeouts (one queue, one timer)", () => {
  const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

  it('ends each waiting proposal TIMEOUT at its own time whatever the order they came in, and leaves no timer once stopped', async () => {
    const { group, sent } = await replica();
    await leadWithB(group, sent);
    await new Promise((resolve) => setTimeout(resolve, 20)); // the election's writes settle
    const before = timers();
    const started = performance.now();
    const ended: Array<[string, number, string]> = [];
    const watch = (name: string, p: Promise<string>): Promise<void> =>
      p.then(
        () => void ended.push([name, performance.now() - started, 'resolved']),
        (err: unknown) => void ended.push([name, performance.now() - started, (err as RelayError).code]),
      );
    // Nobody acknowledges: each ends TIMEOUT at its own deadline, the long one first in, the short one last.
    const long = watch('long', group.propose('x', 600));
    const short = watch('short', group.propose('y', 100));
    const kept = watch('kept', group.propose('z', 60_000));
    await Promise.all([long, short]);
    expect(ended.map(([name, , how]) => `${name} ${how}`)).toEqual(['short TIMEOUT', 'long TIMEOUT']);
    const [[, shortMs], [, longMs]] = ended as [[string, number, string], [string, number, string]];
    expect(shortMs).toBeGreaterThanOrEqual(95);
    expect(shortMs).toBeLessThan(500);
    expect(longMs).toBeGreaterThanOrEqual(595);
    // `kept` still waits; stopping ends it and leaves no timer of this group behind (none to keep a process alive).
    group.stop();
    await kept;
    expect(ended.at(-1)?.[2]).toBe('SHUTTING_DOWN');
    expect(timers()).toBeLessThanOrEqual(before);
  });
});
