import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { RelayClient } from '@relaymq/sdk';
import { BrokerProcess } from './support/broker-process.js';
import { Fixture } from './support/cluster.js';
import { ProcessCluster } from './support/process-cluster.js';
import { waitFor, waitForAsync } from './support/wait.js';

/**
 * The "must show" of consumer groups, with real processes: 5 brokers (RF 3),
 * a 12-partition topic under keyed publishing, 3 member processes then 3
 * more (2 partitions each), 2 of them SIGKILLed, one SIGSTOPped in the middle
 * of a handler past the session timeout and resumed (its late commit must be
 * refused). It checks at-least-once, one member per partition at a time,
 * per-key order, and counts duplicates against the bound the commit interval
 * sets.
 */

const MEMBER = fileURLToPath(new URL('./support/group-member-process.mjs', import.meta.url));
const PARTITIONS = 12;
const SESSION_TIMEOUT_MS = 3000;
const COMMIT_INTERVAL_MS = 300;
const TOPIC = 'grp.work';

type Line =
  | { member: string; t: number; ev: 'start'; p: number; o: number; k: string; n: number }
  | { member: string; t: number; ev: 'end'; p: number; o: number }
  | { member: string; t: number; ev: 'freeze' | 'thawed'; p: number; o: number }
  | { member: string; t: number; ev: 'assigned' | 'revoked'; partitions: number[]; reason?: string }
  | { member: string; t: number; ev: 'stats'; fencedCommits: number; commits: number }
  | { member: string; t: number; ev: 'error' | 'subscribed'; message?: string };

class MemberProcess {
  static readonly running = new Set<MemberProcess>();
  readonly owned = new Set<number>();
  readonly lines: Line[] = [];
  stderr = '';
  private readonly child: ChildProcess;
  readonly exited: Promise<void>;

  constructor(
    readonly name: string,
    brokers: string[],
    commitIntervalMs = COMMIT_INTERVAL_MS,
  ) {
    this.child = spawn(process.execPath, [MEMBER, name, brokers.join(','), 'billing', TOPIC, String(SESSION_TIMEOUT_MS), String(commitIntervalMs)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    MemberProcess.running.add(this);
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
    void this.exited.then(() => MemberProcess.running.delete(this));
    let buffered = '';
    this.child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      for (const part of parts) this.take(JSON.parse(part) as Line);
    });
    this.child.stderr?.on('data', (chunk: Buffer) => (this.stderr = (this.stderr + chunk.toString()).slice(-5000)));
  }

  private take(line: Line): void {
    this.lines.push(line);
    if (line.ev === 'assigned') for (const p of line.partitions) this.owned.add(p);
    if (line.ev === 'revoked') for (const p of line.partitions) this.owned.delete(p);
  }

  get subscribed(): boolean {
    return this.lines.some((l) => l.ev === 'subscribed');
  }

  get fencedCommits(): number {
    const stats = this.lines.filter((l): l is Extract<Line, { ev: 'stats' }> => l.ev === 'stats');
    return stats.at(-1)?.fencedCommits ?? 0;
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** The process state letter from /proc (`T`: stopped by a signal). */
  async procState(): Promise<string> {
    const stat = await readFile(`/proc/${this.child.pid}/stat`, 'utf8');
    // pid (comm) state ...: comm may hold spaces, so read after its closing parenthesis.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  }

  static async stopAll(): Promise<void> {
    await Promise.all(
      [...MemberProcess.running].map(async (m) => {
        m.child.kill('SIGCONT');
        m.child.kill('SIGKILL');
        await m.exited;
      }),
    );
  }
}

const fixture = new Fixture();
afterEach(async () => {
  await MemberProcess.stopAll();
  await fixture.cleanup();
  await BrokerProcess.stopAll();
});

describe('consumer groups across processes', () => {
  it('12 partitions, 3 then 6 members, 2 SIGKILLed, 1 SIGSTOPped past the timeout: at least once, one member per partition at a time, keys in order, duplicates within the commit bound', async () => {
    const ids = ['c1', 'c2', 'c3', 'c4', 'c5'];
    const cluster = await ProcessCluster.start(ids, () => ['--replication-factor', '3', '--partitions', String(PARTITIONS)], 45_000);
    const urls = ids.map((id) => cluster.get(id).url);
    const publisher: RelayClient = await fixture.client(urls, { publishTimeoutMs: 20_000, connectTimeoutMs: 10_000 });
    await publisher.publish(TOPIC, { n: -1 }, { key: 'warm' });

    // Keyed publishing all along: every acknowledged message must be handled.
    const acked = new Set<number>();
    let stop = false;
    let next = 0;
    const publishing = (async () => {
      while (!stop) {
        const batch = Array.from({ length: 10 }, () => next++);
        await Promise.all(batch.map((n) => publisher.publish(TOPIC, { n }, { key: `key-${n % 40}` }).then(() => acked.add(n))));
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    // A failure below stops the publisher too (and a publish failing after the test is not an unhandled rejection).
    publishing.catch(() => {});
    fixture.defer(async () => {
      stop = true;
    });

    const members: MemberProcess[] = [];
    /** What each member owns and its last events, for a failure message. */
    const dump = (): string =>
      members
        .map((m) => `${m.name} owns [${[...m.owned].join(',')}] ${m.stderr} ${JSON.stringify(m.lines.filter((l) => l.ev !== 'start' && l.ev !== 'end' && l.ev !== 'stats').slice(-8))}`)
        .join('\n');
    const add = (i: number): MemberProcess => {
      // Each member is seeded with one broker (its own), so members sit on different brokers. m4, the one
      // paused below, commits after every message: the handler it is frozen in commits the moment it resumes.
      const member = new MemberProcess(`m${i}`, [urls[i % urls.length] as string], i === 4 ? 0 : COMMIT_INTERVAL_MS);
      members.push(member);
      return member;
    };
    for (let i = 1; i <= 3; i++) add(i);
    await waitFor(() => members.every((m) => m.owned.size === 4), 'each of 3 members to own 4 partitions', 60_000).catch((err: unknown) => {
      throw new Error(`${String(err)}; ${dump()}`);
    });
    for (let i = 4; i <= 6; i++) add(i);
    await waitFor(() => members.every((m) => m.owned.size === 2), 'each of 6 members to own 2 partitions', 60_000).catch((err: unknown) => {
      throw new Error(`${String(err)}; ${dump()}`);
    });

    /** When the last of `partitions` was granted to one of `among` (their own clocks: no test polling in the figure). */
    const movedAt = (partitions: number[], among: MemberProcess[], after: number): number =>
      Math.max(
        ...partitions.map((p) =>
          Math.min(...among.flatMap((m) => m.lines.flatMap((l) => (l.ev === 'assigned' && l.t >= after && l.partitions.includes(p) ? [l.t] : [])))),
        ),
      );

    // SIGKILL two members: their partitions must move within the session timeout + 2 s.
    const [m1, m2, m3, m4, m5, m6] = members as [MemberProcess, MemberProcess, MemberProcess, MemberProcess, MemberProcess, MemberProcess];
    const killedPartitions = [...m5.owned, ...m6.owned];
    const killedAt = Date.now();
    m5.signal('SIGKILL');
    m6.signal('SIGKILL');
    const survivors = [m1, m2, m3, m4];
    await waitFor(() => killedPartitions.every((p) => survivors.some((m) => m.owned.has(p))), 'the killed members’ partitions to move', SESSION_TIMEOUT_MS + 10_000);
    const killMoveMs = movedAt(killedPartitions, survivors, killedAt) - killedAt;

    // SIGSTOP m4 in the middle of a handler, past the session timeout, then resume it.
    const pausedPartitions = [...m4.owned];
    m4.signal('SIGUSR2');
    await waitFor(() => m4.lines.some((l) => l.ev === 'freeze'), 'm4 to freeze in a handler', 10_000);
    type Frozen = Extract<Line, { ev: 'freeze' | 'thawed' }>;
    const freeze = m4.lines.find((l): l is Frozen => l.ev === 'freeze') as Frozen;
    const stoppedAt = freeze.t;
    await waitForAsync(async () => (await m4.procState()) === 'T', 'm4 to be stopped by SIGSTOP', 5000);
    const others = [m1, m2, m3];
    await waitFor(() => pausedPartitions.every((p) => others.some((m) => m.owned.has(p))), 'the paused member’s partitions to move', SESSION_TIMEOUT_MS + 10_000);
    const pauseMoveMs = movedAt(pausedPartitions, others, stoppedAt) - stoppedAt;
    // Its partitions' new owners hold them under a newer epoch (their own `assigned` events above): resuming now is late.
    const resumedAt = Date.now();
    m4.signal('SIGCONT');
    // Its handler finishes and commits at once, with the epoch it held: that late commit is refused (FENCED)...
    await waitFor(() => m4.lines.some((l) => l.ev === 'thawed'), 'm4 to finish the handler it froze in', 10_000);
    await waitFor(() => m4.fencedCommits >= 1, 'm4’s late commit to be refused as FENCED', 10_000).catch((err: unknown) => {
      throw new Error(`${String(err)}; ${dump()}`);
    });
    // ...and it learns it lost its partitions (a revoke that is not a release).
    await waitFor(() => m4.lines.some((l) => l.ev === 'revoked' && l.t >= resumedAt && l.reason !== 'rebalance'), 'the resumed member to learn it lost its partitions', 20_000);
    // The refused position was not stored: the message m4 froze in is handled again by another member.
    await waitFor(
      () => members.some((m) => m !== m4 && m.lines.some((l) => l.ev === 'start' && l.p === freeze.p && l.o === freeze.o)),
      `the message m4 froze in (p${freeze.p}/${freeze.o}) to be handled by the partition’s new owner`,
      20_000,
    );
    await waitFor(() => members.filter((m) => m !== m5 && m !== m6).every((m) => m.owned.size >= 2) && [m1, m2, m3, m4].reduce((s, m) => s + m.owned.size, 0) === PARTITIONS, 'the 4 live members to share the 12 partitions again', 20_000);

    stop = true;
    await publishing;
    const handledNs = (): Set<number> => new Set(members.flatMap((m) => m.lines.flatMap((l) => (l.ev === 'start' ? [l.n] : []))));
    await waitFor(() => [...acked].every((n) => handledNs().has(n)), 'every acknowledged message to be handled', 30_000);

    // ---- checks -----------------------------------------------------------------
    const starts = members.flatMap((m) => m.lines.filter((l): l is Extract<Line, { ev: 'start' }> => l.ev === 'start'));
    const ends = new Map<string, number>();
    for (const m of members) for (const l of m.lines) if (l.ev === 'end') ends.set(`${m.name}/${l.p}/${l.o}`, l.t);

    // One member per partition at a time: handling intervals of different members on one partition never overlap
    // (every pair is compared, not only neighbours), except the handler m4 was frozen in (the documented exception:
    // a frozen process cannot be stopped from finishing its handler), counted apart.
    const frozenMidHandler = new Set<string>();
    const overlaps: string[] = [];
    for (let p = 0; p < PARTITIONS; p++) {
      const intervals = starts
        .filter((s) => s.p === p)
        .map((s) => ({ member: s.member, o: s.o, from: s.t, to: ends.get(`${s.member}/${s.p}/${s.o}`) ?? Number.POSITIVE_INFINITY }))
        .sort((x, y) => x.from - y.from);
      for (let i = 1; i < intervals.length; i++) {
        const b = intervals[i] as (typeof intervals)[0];
        for (const a of intervals.slice(0, i)) {
          if (a.member === b.member || a.to <= b.from) continue;
          if (a.member === 'm4' && p === freeze.p && a.o === freeze.o) frozenMidHandler.add(`p${p}/${a.o}`);
          else if (!(a.to === Number.POSITIVE_INFINITY && (a.member === 'm5' || a.member === 'm6'))) overlaps.push(`p${p}: ${a.member} [${a.from},${a.to}] and ${b.member} from ${b.from}`);
        }
      }
    }
    expect(overlaps).toEqual([]);

    // Per key, in offset order: among first handlings, offsets increase with time.
    const firstByN = new Map<number, Extract<Line, { ev: 'start' }>>();
    for (const s of [...starts].sort((a, b) => a.t - b.t)) if (!firstByN.has(s.n)) firstByN.set(s.n, s);
    const byKey = new Map<string, number[]>();
    for (const s of [...firstByN.values()].sort((a, b) => a.t - b.t)) byKey.set(s.k, [...(byKey.get(s.k) ?? []), s.o]);
    for (const [key, offsets] of byKey) expect(offsets, `key ${key}`).toEqual([...offsets].sort((a, b) => a - b));

    // Duplicates: only messages a killed or fenced member handled shortly before it stopped, and not yet committed.
    const counts = new Map<number, Array<Extract<Line, { ev: 'start' }>>>();
    for (const s of starts) counts.set(s.n, [...(counts.get(s.n) ?? []), s]);
    const duplicates = [...counts.values()].filter((list) => list.length > 1);
    const stoppedBy: Record<string, number> = { m5: killedAt, m6: killedAt, m4: stoppedAt };
    // The bound: a position is committed at most commit.intervalMs after its message was handled, plus a round trip (1 s of slack on a loaded machine).
    const boundMs = COMMIT_INTERVAL_MS + 1000;
    // A member the group fenced on its own (its lease ran out under load) says so with a `lost` or `fenced` revoke.
    const fencedAt = (member: string, partition: number, after: number): number | undefined =>
      members
        .find((m) => m.name === member)
        ?.lines.find((l) => l.ev === 'revoked' && l.reason !== 'rebalance' && l.partitions.includes(partition) && l.t >= after)?.t;
    const unexplained = duplicates.filter((list) => {
      const first = [...list].sort((a, b) => a.t - b.t)[0] as Extract<Line, { ev: 'start' }>;
      const stopped = stoppedBy[first.member];
      if (stopped !== undefined && first.t >= stopped - boundMs) return false;
      return fencedAt(first.member, first.p, first.t) === undefined;
    });
    const fencedOnTheirOwn = duplicates.length - unexplained.length - duplicates.filter((list) => {
      const first = [...list].sort((a, b) => a.t - b.t)[0] as Extract<Line, { ev: 'start' }>;
      const stopped = stoppedBy[first.member];
      return stopped !== undefined && first.t >= stopped - boundMs;
    }).length;
    const bound = starts.filter((s) => stoppedBy[s.member] !== undefined && s.t >= (stoppedBy[s.member] as number) - boundMs && s.t <= (stoppedBy[s.member] as number)).length;
    console.log(
      `group processes: ${acked.size} acknowledged, ${firstByN.size} handled, ${duplicates.length} handled twice (bound: ${bound} handled by killed/fenced members in the last ${boundMs} ms before they stopped), ` +
        `killed partitions moved in ${killMoveMs} ms, paused partitions in ${pauseMoveMs} ms (session timeout ${SESSION_TIMEOUT_MS} ms), ` +
        `m4 fenced commits ${m4.fencedCommits}, handlers frozen mid-way by SIGSTOP ${frozenMidHandler.size}, duplicates from members fenced by load ${fencedOnTheirOwn}`,
    );
    expect(unexplained, dump()).toEqual([]);
    expect(duplicates.length - fencedOnTheirOwn).toBeLessThanOrEqual(bound);
    // Timed by the members' own `assigned` events, so the bound is the issue's: the session timeout + 2 s.
    expect(killMoveMs).toBeLessThanOrEqual(SESSION_TIMEOUT_MS + 2000);
    expect(pauseMoveMs).toBeLessThanOrEqual(SESSION_TIMEOUT_MS + 2000);
    expect(m4.fencedCommits).toBeGreaterThanOrEqual(1);
  }, 180_000);
});
