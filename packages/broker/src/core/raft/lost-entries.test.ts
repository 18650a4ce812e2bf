/**
 * A follower that lost entries it had acknowledged (storage acknowledging
 * before its fsync, `fsync: interval`, after a power cut): with
 * `unsyncedAcks` it tells its leader, which probes it again and sends it what
 * it lacks; so does one restarted under `always` (`unsyncedAcksBeforeStart`),
 * in the term it started in; otherwise, being told to commit beyond its log
 * is a bug and throws (RaftInvariantError), as before.
 */
import { describe, expect, it } from 'vitest';
import type { RaftConfigOptions } from './config.js';
import { RaftNode } from './node.js';
import { drainReady, type ReadyHandlers } from './runner.js';
import { MemoryStorage } from './storage.js';
import type { Entry, Message, RandomSource } from './types.js';
import { RaftInvariantError } from './log.js';

type Msg = Message<string, string>;
const ZERO: RandomSource = { nextInt: () => 0 };
const IDS = ['a', 'b', 'c'];

/** Three nodes (or `ids`) over memory storages, with a manual message queue. */
class Trio {
  readonly storages = new Map<string, MemoryStorage<string, string>>();
  readonly nodes = new Map<string, RaftNode<string, string>>();
  readonly applied = new Map<string, string[]>();
  queue: Msg[] = [];
  /** Applied to each message delivered (a part of an append lost on the way). */
  rewrite: (m: Msg) => Msg = (m) => m;
  /** Appends delivered to each node. */
  readonly appendsTo = new Map<string, number>();

  /** `config`: every node's options, or each node's (`fsync` is set per broker). */
  constructor(
    readonly config: RaftConfigOptions | ((id: string) => RaftConfigOptions),
    readonly ids: readonly string[] = IDS,
  ) {
    for (const id of ids) this.start(id, new MemoryStorage<string, string>(ids), 0);
  }

  private start(id: string, storage: MemoryStorage<string, string>, applied: number, override?: RaftConfigOptions): void {
    this.storages.set(id, storage);
    const config = override ?? (typeof this.config === 'function' ? this.config(id) : this.config);
    this.nodes.set(id, new RaftNode<string, string>({ id, storage, random: ZERO, config, applied }));
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
        const applied = this.applied.get(id) ?? [];
        this.applied.set(id, applied);
        for (const e of es) if (e.type === 'normal') applied.push(e.data);
      },
    };
  }

  /** Delivers until quiet (bounded), dropping messages to or from `isolated`. */
  stabilize(isolated: string[] = []): void {
    for (const id of this.ids) drainReady(this.node(id), this.io(id));
    for (let round = 0; round < 100 && this.queue.length > 0; round++) {
      const batch = this.queue;
      this.queue = [];
      for (const m of batch) {
        if (isolated.includes(m.to) || isolated.includes(m.from)) continue;
        if (m.type === 'app') this.appendsTo.set(m.to, (this.appendsTo.get(m.to) ?? 0) + 1);
        this.node(m.to).step(this.rewrite(m));
        drainReady(this.node(m.to), this.io(m.to));
      }
    }
  }

  /** The leader's heartbeat round, delivered. */
  heartbeat(leader: string, isolated: string[] = []): void {
    this.node(leader).tick();
    this.stabilize(isolated);
  }

  /**
   * `id` restarts having kept only its entries up to `keep` (the rest were
   * written, acknowledged and lost before their fsync); its stored commit is
   * clamped to what it holds, as the storages do on open. It applied nothing
   * it lost (it applies only what it holds). `config`: its options in the new
   * run (`fsync` switched), else those it had.
   */
  restartLosing(id: string, keep: number, config?: RaftConfigOptions): void {
    const old = this.storages.get(id) as MemoryStorage<string, string>;
    const storage = new MemoryStorage<string, string>(this.ids);
    storage.append(old.entries(1, keep + 1, 1e9));
    const hard = old.getHardState();
    storage.setHardState({ ...hard, commit: Math.min(hard.commit, keep) });
    this.applied.set(id, []);
    this.start(id, storage, 0, config);
  }

  /**
   * `id` restarts from `entries` and `hard`, as a storage left them after a power cut (e.g. a record file whose
   * later records, an overwrite among them, were lost: the entries they replaced are back), applying from scratch.
   */
  restartFrom(id: string, entries: readonly Entry<string>[], hard: { term: number; vote: string | null; commit: number }, config?: RaftConfigOptions): void {
    const storage = new MemoryStorage<string, string>(this.ids);
    storage.append(entries);
    storage.setHardState(hard);
    this.applied.set(id, []);
    this.start(id, storage, 0, config);
  }
}

/** A leader `a` with five values committed and applied everywhere (indexes 2..6, after a's no-op at 1). */
function committedFive(config: RaftConfigOptions | ((id: string) => RaftConfigOptions)): Trio {
  const t = new Trio(config);
  t.node('a').campaign();
  t.stabilize();
  for (const v of ['v1', 'v2', 'v3', 'v4', 'v5']) t.node('a').propose(v);
  t.stabilize();
  t.heartbeat('a');
  expect(t.node('b').commitIndex).toBe(6);
  return t;
}

describe('a follower that lost acknowledged entries (unsyncedAcks)', () => {
  it('is told by a heartbeat to commit beyond its log: it commits nothing more, reports the loss, and the leader sends it what it lacks', () => {
    const t = committedFive({ unsyncedAcks: true });
    t.restartLosing('b', 3); // b keeps v1, v2 (index 2, 3); its commit comes back as 3
    expect(t.node('b').lastIndex).toBe(3);
    const leaderView = (): number | undefined => t.node('a').status().progress.find((p) => p.id === 'b')?.match;
    expect(leaderView()).toBe(6);
    // The heartbeat's commit is min(match 6, commit 6): beyond b's log.
    t.node('a').tick();
    drainReady(t.node('a'), t.io('a'));
    const sent: Msg[] = [];
    for (const m of t.queue.splice(0)) {
      if (m.to !== 'b') continue;
      t.node('b').step(m);
      drainReady(t.node('b'), { ...t.io('b'), send: (ms) => sent.push(...ms) });
    }
    expect(t.node('b').commitIndex).toBe(3); // nothing committed on that word
    expect(sent).toContainEqual(expect.objectContaining({ type: 'app-resp', to: 'a', reject: true, lost: true, index: 6, hintIndex: 3 }));
    expect(t.node('b').counters.lostEntriesReported).toBe(1);
    t.queue.push(...sent);
    t.stabilize();
    t.heartbeat('a');
    expect(t.node('b').lastIndex).toBe(6);
    expect(t.node('b').commitIndex).toBe(6);
    expect(t.node('b').entries(1, 7)).toEqual(t.node('a').entries(1, 7));
    expect(t.applied.get('b')).toEqual(['v1', 'v2', 'v3', 'v4', 'v5']);
    expect(leaderView()).toBe(6);
  });

  it('recovers while the leader streams new entries to it: its rejection at an entry it acknowledged lowers the match the leader counted', () => {
    const t = committedFive({ unsyncedAcks: true });
    t.restartLosing('b', 4);
    for (const v of ['w1', 'w2', 'w3']) t.node('a').propose(v);
    t.stabilize(); // b rejects the appends after 6 (its log ends at 4), then the one at 6, which it acknowledged: it is probed again
    expect(t.node('b').lastIndex).toBe(9);
    expect(t.node('b').counters.lostEntriesReported).toBe(0);
    t.heartbeat('a');
    t.heartbeat('a');
    expect(t.node('b').lastIndex).toBe(9);
    expect(t.node('b').commitIndex).toBe(9);
    expect(t.applied.get('b')).toEqual(['v1', 'v2', 'v3', 'v4', 'v5', 'w1', 'w2', 'w3']);
  });

  it('the leader ignores a stale report (its match for the follower is not above the commit reported)', () => {
    const t = committedFive({ unsyncedAcks: true });
    const before = t.node('a').status().progress.find((p) => p.id === 'b');
    t.node('a').step({ type: 'app-resp', from: 'b', to: 'a', term: t.node('a').term, index: 6, reject: true, hintIndex: 6, hintTerm: 0, lost: true });
    expect(t.node('a').status().progress.find((p) => p.id === 'b')).toEqual(before);
  });
});

/** The broker's Raft settings under each `fsync` (see `GroupFactory`). */
const INTERVAL: RaftConfigOptions = { unsyncedAcks: true };
const ALWAYS: RaftConfigOptions = { unsyncedAcksBeforeStart: true };

/**
 * Every broker with `fsync: interval`, or an `always` leader (`a`) whose followers have `interval`; then the follower
 * that loses entries (`b`) restarted under `always` (`restart`: its options in the new run).
 */
const MODES: Array<[string, (base: RaftConfigOptions) => (id: string) => RaftConfigOptions, (base: RaftConfigOptions) => RaftConfigOptions | undefined]> = [
  ['every node unsyncedAcks', (base) => () => ({ ...base, unsyncedAcks: true }), () => undefined],
  ['a leader without unsyncedAcks, followers with it (a rejection and a heartbeat answer say so)', (base) => (id) => (id === 'a' ? base : { ...base, unsyncedAcks: true }), () => undefined],
  ['every node interval, the follower restarted under always', (base) => () => ({ ...base, ...INTERVAL }), (base) => ({ ...base, ...ALWAYS })],
  ['an always leader, the follower interval until its restart under always (it still says so in its start term)', (base) => (id) => ({ ...base, ...(id === 'a' ? ALWAYS : INTERVAL) }), (base) => ({ ...base, ...ALWAYS })],
];

describe.each(MODES)('a follower whose match the leader counted lost entries: %s', (_name, mode, restart) => {
    it('rejecting an append at an entry it acknowledged (lost) lowers its match: no ping-pong of probes, and it catches up while no commit exceeds its log', () => {
      // b's match sits on entries of an earlier term (not committed by counting) when it loses them, with c down: no
      // heartbeat's commit exceeds b's log, so only its rejections can tell the leader. Before, the leader took them
      // as stale, probed b at the lost entry again on every answer, without end and without a tick, and committed nothing.
      const base: RaftConfigOptions = { maxEntriesPerAppend: 1, preVote: false, checkQuorum: false };
      const t = new Trio(mode(base));
      t.node('a').campaign();
      t.stabilize();
      t.node('a').propose('v1');
      t.stabilize();
      for (const v of ['w1', 'w2', 'w3']) t.node('a').propose(v); // 3..5, a's alone: uncommitted, term 1
      t.stabilize(['b', 'c']);
      t.node('b').campaign(); // lost (a's log is longer), but a steps down to b's term
      t.stabilize(['c']);
      // a elected in term 3; b takes 3..5 and acknowledges them, the append of a's no-op (6) loses its entry on the way.
      t.rewrite = (m) => (m.type === 'app' && m.to === 'b' ? { ...m, entries: m.entries.filter((e) => e.index < 6) } : m);
      t.node('a').campaign();
      t.stabilize(['c']);
      t.rewrite = (m) => m;
      const matchOfB = (): number | undefined => t.node('a').status().progress.find((p) => p.id === 'b')?.match;
      expect([t.node('a').status().role, t.node('a').lastIndex, matchOfB(), t.node('a').commitIndex]).toEqual(['leader', 6, 5, 2]);
      t.restartLosing('b', 2, restart(base));
      t.node('a').propose('x'); // 7
      t.appendsTo.clear();
      t.stabilize(['c']);
      expect(t.appendsTo.get('b') ?? 0).toBeLessThan(20); // before: one per round of stabilize, as many as its bound allows
      expect(t.node('b').entries(1, 8)).toEqual(t.node('a').entries(1, 8));
      expect(t.node('a').commitIndex).toBe(7);
      expect(matchOfB()).toBe(7);
    });

    it('five voters: a follower that lost entries of the leader\'s log end, not committed, is asked (nothing new to send it, no heartbeat tells it): it is not counted in their commit', () => {
      const t = new Trio(mode({}), ['a', 'b', 'c', 'd', 'e']);
      t.node('a').campaign();
      t.stabilize();
      t.node('a').propose('v1');
      t.stabilize();
      for (const v of ['w1', 'w2', 'w3']) t.node('a').propose(v); // 3..5: a and b only, not committed (2 of 5)
      t.stabilize(['c', 'd', 'e']);
      const matchOfB = (): number | undefined => t.node('a').status().progress.find((p) => p.id === 'b')?.match;
      expect([t.node('a').lastIndex, matchOfB(), t.node('a').commitIndex]).toEqual([5, 5, 2]);
      t.restartLosing('b', 2, restart({}));
      t.heartbeat('a', ['c', 'd', 'e']); // its commit, 2, is within b's log: the check at 5 is what tells the leader
      t.heartbeat('a', ['c', 'd', 'e']);
      // c back: the commit of 5 counts copies that exist.
      // Before, b stayed at 2 while a counted its match of 5: with c back, a committed 5 with copies on a and c alone.
      expect(t.node('b').entries(1, 6)).toEqual(t.node('a').entries(1, 6));
      expect(t.node('a').commitIndex).toBe(2);
      for (let i = 0; i < 5 && t.node('a').commitIndex < 5; i++) t.heartbeat('a', ['d', 'e']);
      expect(t.node('a').commitIndex).toBe(5);
      expect(['a', 'b', 'c', 'd', 'e'].filter((id) => t.node(id).lastIndex >= 5)).toEqual(['a', 'b', 'c']);
      expect(t.node('b').entries(1, 6)).toEqual(t.node('a').entries(1, 6));
    });
});

describe.each([
  ['an interval leader', INTERVAL],
  ['an always leader', ALWAYS],
])('a follower that lost entries acknowledged under interval, restarted under always (%s)', (_name, leader) => {
  // No leases: the last test elects another leader while `a` is alive.
  const base: RaftConfigOptions = { preVote: false, checkQuorum: false };
  /** Five values committed with every follower under `interval`; then `b` loses 4..6 in a power cut and restarts under `always`. */
  const switched = (): Trio => {
    const t = committedFive((id) => ({ ...base, ...(id === 'a' ? leader : INTERVAL) }));
    t.restartLosing('b', 3, { ...base, ...ALWAYS });
    return t;
  };

  it('is told by a heartbeat to commit beyond its log: it does not throw, commits nothing it lacks, and gets the rest from the leader', () => {
    // Before: RaftInvariantError at this heartbeat, at every restart (a crash loop).
    const t = switched();
    t.node('a').tick();
    drainReady(t.node('a'), t.io('a'));
    const sent: Msg[] = [];
    for (const m of t.queue.splice(0)) {
      if (m.to !== 'b') continue;
      expect(m).toMatchObject({ type: 'heartbeat', commit: 6 });
      t.node('b').step(m);
      drainReady(t.node('b'), { ...t.io('b'), send: (ms) => sent.push(...ms) });
    }
    expect(t.node('b').commitIndex).toBe(3);
    expect(sent).toContainEqual(expect.objectContaining({ type: 'app-resp', to: 'a', reject: true, lost: true, index: 6, hintIndex: 3 }));
    t.queue.push(...sent);
    t.stabilize();
    t.heartbeat('a');
    expect([t.node('a').commitIndex, t.node('b').lastIndex, t.node('b').commitIndex]).toEqual([6, 6, 6]);
    expect(t.node('b').entries(1, 7)).toEqual(t.node('a').entries(1, 7));
    expect(t.applied.get('b')).toEqual(['v1', 'v2', 'v3', 'v4', 'v5']);
    // A commit waiting for b (c down) comes once b holds the entry.
    t.node('a').propose('v6');
    t.stabilize(['c']);
    expect([t.node('a').commitIndex, t.node('b').commitIndex]).toEqual([7, 7]);
  });

  it('says so only in the term it started in: from a later term on, what it acknowledged is durable, and a commit beyond its log throws again', () => {
    const t = switched();
    t.heartbeat('a');
    const answers: Msg[] = [];
    t.rewrite = (m) => {
      if (m.from === 'b' && (m.type === 'heartbeat-resp' || m.type === 'app-resp')) answers.push(m);
      return m;
    };
    t.heartbeat('a');
    expect(answers.some((m) => m.type === 'heartbeat-resp' && m.unsynced === true)).toBe(true);
    t.node('c').campaign();
    t.stabilize();
    expect(t.node('c').status().role).toBe('leader');
    answers.length = 0;
    t.heartbeat('c');
    expect(answers.filter((m) => m.type === 'heartbeat-resp')).not.toHaveLength(0);
    expect(answers.filter((m) => (m.type === 'heartbeat-resp' || m.type === 'app-resp') && m.unsynced === true)).toEqual([]);
    // A heartbeat of this term beyond its log: no acknowledgement of this run can explain it (a bug), so it throws.
    expect(() => t.node('b').step({ type: 'heartbeat', from: 'c', to: 'b', term: t.node('c').term, commit: t.node('b').lastIndex + 1 })).toThrow(RaftInvariantError);
  });
});

describe.each([
  ['interval (unsyncedAcks)', INTERVAL, INTERVAL],
  ['interval, restarted under always (unsyncedAcksBeforeStart)', INTERVAL, ALWAYS],
])('a follower whose overwrite of an older suffix was lost (a record file under %s: the older entries are back)', (_name, before, after) => {
  it('is not made to commit, by a heartbeat, entries of its log it has not matched with the leader: it reports them and gets the leader\'s', () => {
    // Five voters, no leases. a (term 1) sends o1, o2 (3, 4) to b only: never committed. c (term 2, with d and e)
    // commits its no-op and w1 at 3, 4; b then takes them, cutting o1, o2, and acknowledges 4. Under `interval` that
    // overwrite is written, not fsynced: a power cut loses it (and what b recorded after it) and b's record file
    // gives back o1, o2 at 3, 4, with the term 2 fsynced when b took it and the commit of then, 2.
    const ids = ['a', 'b', 'c', 'd', 'e'];
    const base: RaftConfigOptions = { preVote: false, checkQuorum: false };
    const t = new Trio({ ...base, ...before }, ids);
    t.node('a').campaign();
    t.stabilize();
    t.node('a').propose('v1');
    t.stabilize();
    t.node('a').propose('o1');
    t.node('a').propose('o2');
    t.stabilize(['c', 'd', 'e']);
    const older = t.node('b').entries(1, 5);
    expect(older.map((e) => e.term)).toEqual([1, 1, 1, 1]);
    t.node('c').campaign();
    t.stabilize(['a', 'b']);
    t.node('c').propose('w1');
    t.stabilize(['a', 'b']);
    expect([t.node('c').status().role, t.node('c').term, t.node('c').commitIndex]).toEqual(['leader', 2, 4]);
    for (let i = 0; i < 5 && t.node('b').commitIndex < 4; i++) t.heartbeat('c', ['a']);
    expect(t.node('b').entries(1, 5)).toEqual(t.node('c').entries(1, 5));
    expect(t.node('c').status().progress.find((p) => p.id === 'b')?.match).toBe(4);
    t.restartFrom('b', older, { term: 2, vote: null, commit: 2 }, { ...base, ...after });
    // Before: the heartbeat's commit, 4 (c's match for b), is within b's log, and b committed o1, o2 on that word.
    for (let i = 0; i < 5; i++) t.heartbeat('c', ['a']);
    expect(t.node('b').commitIndex).toBe(4);
    expect(t.node('b').entries(1, 5)).toEqual(t.node('c').entries(1, 5));
    expect(t.applied.get('b')).toEqual(['v1', 'w1']);
    // Not counted as a loss (the metric): b could not tell its older entries from the leader's.
    expect(t.node('b').counters.lostEntriesReported).toBe(0);
    t.node('c').propose('w2');
    t.stabilize(['a']);
    t.heartbeat('c', ['a']);
    expect([t.node('c').commitIndex, t.node('b').commitIndex]).toEqual([5, 5]);
    expect(t.applied.get('b')).toEqual(['v1', 'w1', 'w2']);
  });
});

describe('without unsyncedAcks (storage that fsyncs before acknowledging)', () => {
  it('a follower told to commit beyond its last index throws: its log was lost or truncated, a bug the simulator must catch', () => {
    const t = committedFive({});
    t.restartLosing('b', 3);
    t.node('a').tick();
    drainReady(t.node('a'), t.io('a'));
    const heartbeat = t.queue.find((m) => m.to === 'b' && m.type === 'heartbeat');
    expect(heartbeat).toMatchObject({ commit: 6 });
    expect(() => t.node('b').step(heartbeat as Msg)).toThrow(RaftInvariantError);
  });
});

describe('a leader without unsyncedAcks and a genuinely stale rejection from a follower with it (review)', () => {
  it('takes it as a loss: the match drops, but the commit never goes back, the follower keeps its log, and the match comes back at once', () => {
    const t = new Trio((id) => (id === 'a' ? {} : { unsyncedAcks: true }));
    t.node('a').campaign();
    t.stabilize();
    // An append b rejects (its log ends at 1): held back, delivered after b has caught up (a reordered, stale answer).
    t.node('a').propose('v1');
    drainReady(t.node('a'), t.io('a'));
    const late: Msg = { type: 'app-resp', from: 'b', to: 'a', term: t.node('a').term, index: 2, reject: true, hintIndex: 1, hintTerm: t.node('a').term, unsynced: true };
    t.stabilize();
    for (const v of ['v2', 'v3', 'v4']) t.node('a').propose(v);
    t.stabilize();
    t.heartbeat('a');
    const matchOfB = (): number | undefined => t.node('a').status().progress.find((p) => p.id === 'b')?.match;
    expect([t.node('a').commitIndex, matchOfB(), t.node('b').commitIndex]).toEqual([5, 5, 5]);
    const commits: number[] = [];
    t.node('a').step(late);
    commits.push(t.node('a').commitIndex);
    expect(matchOfB()).toBe(1); // taken as a loss: b's hint, which a's log matches
    t.appendsTo.clear();
    t.stabilize();
    commits.push(t.node('a').commitIndex, t.node('b').commitIndex);
    expect(commits).toEqual([5, 5, 5]); // nothing committed goes back
    expect(matchOfB()).toBe(5); // b answered the probe with the log it holds
    expect(t.appendsTo.get('b') ?? 0).toBeLessThan(5); // a probe and its answer, no loop
    expect(t.node('b').entries(1, 6)).toEqual(t.node('a').entries(1, 6));
    expect(t.applied.get('b')).toEqual(['v1', 'v2', 'v3', 'v4']);
    // A commit still needs a quorum that holds the entries: c down, a new entry commits once b holds it.
    t.node('a').propose('v5');
    t.stabilize(['c']);
    expect(t.node('a').commitIndex).toBe(6);
  });
});

