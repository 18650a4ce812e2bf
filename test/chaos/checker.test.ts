import { describe, expect, it } from 'vitest';
import { check, type CheckInput, type Replica } from './checker.js';
import { longestSingleFaultGap, producerFigures } from './report.js';
import { Rng } from './rng.js';
import { FAULT_FAMILIES, planFaults } from './schedule.js';
import { messageId, type Ack, type GroupEvent, type GroupMemberLog, type SubscriberLog } from './workload.js';

/** A clean history: 2 partitions, 3 replicas each, every ack where it says, subscribers saw everything. */
function history(): CheckInput {
  const acks: Ack[] = [];
  const logs: string[][] = [[], []];
  for (let seq = 0; seq < 10; seq++) {
    for (const [partition, key] of ['a', 'b'].entries()) {
      const id = messageId('p1', key, seq);
      acks.push({ id, producer: 'p1', key, seq, partition, offset: (logs[partition] as string[]).length, duplicate: false, atMs: seq });
      (logs[partition] as string[]).push(id);
    }
  }
  const replicas: Replica[] = ['b1', 'b2', 'b3'].flatMap((broker) => logs.map((ids, partition) => ({ broker, partition, start: 0, end: ids.length, ids: [...ids] })));
  const session = (): Map<number, Array<{ offset: number; id: string }>> => new Map(logs.map((ids, p) => [p, ids.map((id, offset) => ({ offset, id }))]));
  const subscribers: SubscriberLog[] = [
    { name: 'live', durable: false, sessions: [session()], gaps: 0, errors: [] },
    { name: 'durable', durable: true, sessions: [session()], gaps: 0, errors: [] },
  ];
  return { partitions: 2, replicationFactor: 3, replicas, unreadable: [], acks, subscribers };
}

const replica = (input: CheckInput, broker: string, partition: number): Replica => input.replicas.find((r) => r.broker === broker && r.partition === partition) as Replica;

describe('chaos checker (each violation it exists for is caught, so it is not vacuous)', () => {
  it('passes a clean history', () => {
    const result = check(history());
    expect(result.ok).toBe(true);
    expect(result.stored).toEqual([10, 10]);
  });

  it('catches a lost, a duplicated and a misplaced acknowledgement', () => {
    const lost = history();
    for (const r of lost.replicas.filter((r) => r.partition === 0)) r.ids.splice(9, 1), (r.end = 9);
    expect(check(lost).violations).toMatchObject({ lost: 1 });

    const duplicated = history();
    for (const r of duplicated.replicas.filter((r) => r.partition === 1)) r.ids.push(r.ids[3] as string), (r.end = 11);
    expect(check(duplicated).violations).toMatchObject({ duplicated: 1 });

    const misplaced = history();
    (misplaced.acks[4] as Ack).offset = 7;
    expect(check(misplaced).violations.misplaced).toBe(1);
  });

  it('catches a divergent and a lagging replica, and a missing one', () => {
    const input = history();
    replica(input, 'b2', 0).ids[5] = 'p9|x|0';
    const lagging = replica(input, 'b3', 1);
    lagging.ids.length = 6;
    lagging.end = 6;
    input.replicas = input.replicas.filter((r) => !(r.broker === 'b1' && r.partition === 1));
    expect(check(input).violations).toMatchObject({ divergent: 1, lagging: 1, missingReplicas: 1 });
  });

  it('catches acknowledged messages of one key stored out of publish order', () => {
    const input = history();
    const a = input.acks.filter((x) => x.key === 'a');
    [(a[2] as Ack).offset, (a[3] as Ack).offset] = [(a[3] as Ack).offset, (a[2] as Ack).offset];
    for (const r of input.replicas.filter((r) => r.partition === 0)) [r.ids[2], r.ids[3]] = [r.ids[3] as string, r.ids[2] as string];
    for (const s of input.subscribers) {
      const list = s.sessions[0]?.get(0) ?? [];
      [(list[2] as { id: string }).id, (list[3] as { id: string }).id] = [(list[3] as { id: string }).id, (list[2] as { id: string }).id];
    }
    expect(check(input).violations).toMatchObject({ reordered: 1, lost: 0, misplaced: 0 });
  });

  it('catches what subscribers missed, saw twice, out of order or wrong, and a durable resume that skips', () => {
    const input = history();
    const live = (input.subscribers[0] as SubscriberLog).sessions[0] as Map<number, Array<{ offset: number; id: string }>>;
    const p0 = live.get(0) as Array<{ offset: number; id: string }>;
    p0.splice(4, 1); // missed offset 4 (and jumped)
    p0.push({ ...(p0[0] as { offset: number; id: string }) }); // offset 0 again
    (p0[1] as { id: string }).id = 'p9|x|1';
    const durable = input.subscribers[1] as SubscriberLog;
    const first = durable.sessions[0] as Map<number, Array<{ offset: number; id: string }>>;
    const all = first.get(1) as Array<{ offset: number; id: string }>;
    first.set(1, all.slice(0, 3));
    durable.sessions.push(new Map([[1, all.slice(5)]])); // resumed at 5, had received up to 2
    expect(check(input).violations).toMatchObject({
      subscriberMissing: 3,
      subscriberReordered: 1,
      subscriberDuplicated: 1,
      subscriberMismatched: 1,
      durableSkipped: 1,
    });
  });
});

/** Consumer-group logs written as a script: members' events in one order (the shared counter the workload keeps). */
class GroupScript {
  private at = 0;
  readonly logs = new Map<string, GroupMemberLog>();

  private log(member: string): GroupMemberLog {
    let log = this.logs.get(member);
    if (log === undefined) this.logs.set(member, (log = { name: member, broker: `c-${member}`, events: [], overflowed: 0, errors: [], moves: [] }));
    return log;
  }

  private push(member: string, event: GroupEvent): this {
    this.log(member).events.push(event);
    return this;
  }

  assigned(member: string, ...partitions: number[]): this {
    return this.push(member, { kind: 'assigned', at: this.at, atMs: this.at++, partitions });
  }

  revoked(member: string, reason: string, ...partitions: number[]): this {
    return this.push(member, { kind: 'revoked', at: this.at, atMs: this.at++, partitions, reason });
  }

  /** `member` handles `offsets` of `partition`, with the ids `input`'s replicas store there. */
  handled(member: string, input: CheckInput, partition: number, offsets: number[]): this {
    for (const offset of offsets) this.push(member, { kind: 'handled', at: this.at, atMs: this.at++, partition, offset, id: replica(input, 'b1', partition).ids[offset] as string });
    return this;
  }

  get members(): GroupMemberLog[] {
    return [...this.logs.values()];
  }
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

describe('chaos checker: the consumer group (each rule fails on a hand-made log that breaks it)', () => {
  /** g1 holds partition 0 and hands it to g2 after offset 5 (g2 starts again at the committed 4), g2 holds partition 1 throughout. */
  function withGroup(edit?: (script: GroupScript, input: CheckInput) => void): CheckInput {
    const input = history();
    const script = new GroupScript();
    if (edit !== undefined) edit(script, input);
    else {
      script.assigned('g1', 0).assigned('g2', 1).handled('g1', input, 0, range(0, 6)).handled('g2', input, 1, range(0, 10));
      script.revoked('g1', 'rebalance', 0).assigned('g2', 0).handled('g2', input, 0, range(4, 10));
    }
    input.group = script.members;
    return input;
  }

  const groupViolations = (input: CheckInput): Record<string, number> =>
    Object.fromEntries(Object.entries(check(input).violations).filter(([k]) => k.startsWith('group')));

  it('passes a clean group history and counts redeliveries after a rebalance, and rebalances, without failing', () => {
    const result = check(withGroup());
    expect(result.ok).toBe(true);
    expect(result.group).toMatchObject({ members: 2, handled: 22, redeliveredAfterRebalance: 2, rebalances: 1, revoked: { rebalance: 1 }, expiries: [], overflowed: 0 });
    expect(result.group?.redeliveries).toEqual([{ member: 'g2', partition: 0, fromOffset: 4, count: 2, sessionStartMs: 19, previousRevoked: 'g1 rebalance at 0.0 s' }]);
    expect(result.group?.assignments).toEqual([
      { member: 'g1', kind: 'assigned', partitions: [0], atMs: 0 },
      { member: 'g2', kind: 'assigned', partitions: [1], atMs: 1 },
      { member: 'g1', kind: 'revoked', partitions: [0], atMs: 18, reason: 'rebalance' },
      { member: 'g2', kind: 'assigned', partitions: [0], atMs: 19 },
    ]);
    expect(result.group?.byMember).toEqual([
      { name: 'g1', broker: 'c-g1', handled: 6, errors: 0 },
      { name: 'g2', broker: 'c-g2', handled: 16, errors: 0 },
    ]);
  });

  it('(a) catches an acknowledged message no member handled', () => {
    const input = withGroup((s, i) => s.assigned('g1', 0, 1).handled('g1', i, 0, [...range(0, 4), ...range(5, 10)]).handled('g1', i, 1, range(0, 10)));
    expect(groupViolations(input)).toMatchObject({ groupLost: 1, groupReordered: 0 });
  });

  it('(b) catches offsets that go back within one assignment session: a reorder and an in-session duplicate', () => {
    const reordered = withGroup((s, i) => s.assigned('g1', 0, 1).handled('g1', i, 0, [0, 1, 3, 2, ...range(4, 10)]).handled('g1', i, 1, range(0, 10)));
    expect(groupViolations(reordered)).toMatchObject({ groupReordered: 1, groupLost: 0, groupDuplicated: 0 });
    const again = withGroup((s, i) => s.assigned('g1', 0, 1).handled('g1', i, 0, [...range(0, 6), 5, ...range(6, 10)]).handled('g1', i, 1, range(0, 10)));
    expect(groupViolations(again)).toMatchObject({ groupReordered: 1, groupDuplicated: 0 });
  });

  it('(c) catches a message handled again by a member whose session began before the first handling (two owners at once)', () => {
    const input = withGroup((s, i) => {
      s.assigned('g1', 0, 1).handled('g1', i, 1, range(0, 10)).handled('g1', i, 0, range(0, 3));
      s.assigned('g2', 0); // g2 is granted partition 0 while g1 still holds it and goes on handling it
      s.handled('g1', i, 0, range(3, 6)).handled('g2', i, 0, range(4, 10));
    });
    expect(groupViolations(input)).toMatchObject({ groupDuplicated: 2, groupReordered: 0, groupLost: 0, groupOverlap: 3 });
    expect(check(input).group?.redeliveredAfterRebalance).toBe(0);
  });

  it('catches a member handling a partition after another was shown a later grant of it, and allows the late revocation of an expired owner', () => {
    const overlap = withGroup((s, i) => {
      s.assigned('g1', 0, 1).handled('g1', i, 1, range(0, 10)).handled('g1', i, 0, range(0, 4));
      s.assigned('g2', 0).handled('g2', i, 0, [4]).handled('g1', i, 0, [5]).handled('g2', i, 0, range(5, 10));
    });
    expect(groupViolations(overlap)).toMatchObject({ groupOverlap: 1, groupLost: 0 });
    // g1's session expired: g2 is granted partition 0 before g1 hears of it, and g1 handles nothing of it after that.
    const expired = withGroup((s, i) => {
      s.assigned('g1', 0, 1).handled('g1', i, 1, range(0, 10)).handled('g1', i, 0, range(0, 4));
      s.assigned('g2', 0).handled('g2', i, 0, range(2, 10)).revoked('g1', 'lost', 0, 1);
    });
    expect(check(expired).ok).toBe(true);
    expect(check(expired).group).toMatchObject({ redeliveredAfterRebalance: 2, expiries: [{ member: 'g1', reason: 'lost', partitions: [0, 1], via: 'c-g1' }] });
  });

  it('(d) catches a handled offset holding what was neither stored nor acknowledged there', () => {
    const input = withGroup((s, i) => s.assigned('g1', 0, 1).handled('g1', i, 0, range(0, 10)).handled('g1', i, 1, range(0, 10)));
    const events = (input.group?.[0] as GroupMemberLog).events;
    (events[3] as Extract<GroupEvent, { kind: 'handled' }>).id = 'p9|x|0';
    expect(groupViolations(input)).toMatchObject({ groupMisplaced: 1, groupLost: 1 });
  });

  it('catches a message handled by a member that did not hold its partition', () => {
    const input = withGroup((s, i) => s.assigned('g1', 1).handled('g1', i, 1, range(0, 10)).handled('g1', i, 0, range(0, 10)));
    expect(groupViolations(input)).toMatchObject({ groupUnassigned: 1, groupLost: 0 });
  });
});

describe('chaos schedule', () => {
  it('is a pure function of the seed, one fault at a time, within the phase', () => {
    const ids = ['c1', 'c2', 'c3', 'c4', 'c5'];
    const plan = planFaults(new Rng(7).fork('faults'), ids, FAULT_FAMILIES, 180_000);
    expect(planFaults(new Rng(7).fork('faults'), ids, FAULT_FAMILIES, 180_000)).toEqual(plan);
    expect(planFaults(new Rng(8).fork('faults'), ids, FAULT_FAMILIES, 180_000)).not.toEqual(plan);
    expect(new Set(plan.map((e) => e.family))).toEqual(new Set(FAULT_FAMILIES));
    for (const [i, e] of plan.entries()) {
      expect(e.atMs + e.durationMs).toBeLessThanOrEqual(180_000);
      if (i > 0) expect(e.atMs).toBeGreaterThan((plan[i - 1] as { atMs: number; durationMs: number }).atMs + (plan[i - 1] as { durationMs: number }).durationMs);
      if (e.family === 'split') expect(e.targets.length).toBe(2);
    }
  });
});

describe('chaos report figures', () => {
  it('measures the longest wait between acks (also from the start and to the end), outside crash-all windows too, per fault family, and availability by second', () => {
    const ack = (atMs: number): Ack => ({ id: `p1|k|${atMs}`, producer: 'p1', key: 'k', seq: atMs, partition: 0, offset: atMs, duplicate: false, atMs });
    const faults = [
      { family: 'crash-all' as const, startMs: 2500, endMs: 4000 },
      { family: 'kill' as const, startMs: 9200, endMs: 9300 },
      { family: 'pause' as const, startMs: 1000, endMs: 1200 },
      { family: 'latency' as const, startMs: 1400, endMs: 1600 },
    ];
    const figures = producerFigures('p1', [1500, 2000, 9000, 9500].map(ack), [{ id: 'x', code: 'TIMEOUT', atMs: 3000 }], 1000, 11_000, faults);
    expect(figures).toMatchObject({ acked: 4, longestGapMs: 7000, longestGapAtMs: 2000, longestGapOutsideCrashAllMs: 1500, refused: { TIMEOUT: 1 } });
    expect(figures.longestGapByFamily).toEqual({ several: 500, latency: 500, 'crash-all': 7000, kill: 500, none: 1500 });
    expect(figures.longestGapByFamilyAtMs).toEqual({ several: 1000, latency: 1500, 'crash-all': 2000, kill: 9000, none: 9500 });
    // The 3 s goal's figure: the longest gap under exactly one fault, crash-all aside, and when it started.
    expect(longestSingleFaultGap({ producers: [figures] })).toEqual({ producer: 'p1', family: 'latency', ms: 500, atMs: 1500 });
    expect(figures.availability).toBeCloseTo(3 / 10);
  });

  it('keeps the client moves of a producer so the report can say where it went during its longest wait', () => {
    const ack = (atMs: number): Ack => ({ id: `p1|k|${atMs}`, producer: 'p1', key: 'k', seq: atMs, partition: 0, offset: atMs, duplicate: false, atMs });
    const moves = [{ atMs: 1800, event: 'failover' as const, from: 'c1', to: 'c2', reason: 'silent' }];
    const figures = producerFigures('p1', [1000, 4000].map(ack), [], 1000, 4000, [{ family: 'latency', startMs: 1100, endMs: 3000 }], moves);
    expect(figures.moves).toEqual(moves);
    expect(longestSingleFaultGap({ producers: [figures] })).toMatchObject({ family: 'latency', ms: 3000, atMs: 1000 });
  });
});
