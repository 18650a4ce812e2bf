import { decodePayload } from '@relaymq/sdk/protocol';
import { parseMessageId, type Ack, type GroupMemberLog, type Refusal, type SubscriberLog } from './workload.js';

/** One page of `/api/replica` as the broker answers it. */
interface ReplicaPage {
  start: number;
  end: number;
  messages: Array<{ offset: number; key?: string; encoding: 'raw' | 'msgpack'; data: string }>;
}

/** One broker's copy of one partition, read whole. */
export interface Replica {
  broker: string;
  partition: number;
  start: number;
  end: number;
  /** Message ids by offset - start. */
  ids: string[];
}

/** Messages per `/api/replica` request, and the bounds of reading. */
const PAGE_MESSAGES = 5000;
const REQUEST_TIMEOUT_MS = 5000;
/** Examples of each violation kept for the report. */
const MAX_EXAMPLES = 8;
/** Assignment events kept in the group figures. */
const MAX_ASSIGNMENT_EVENTS = 300;
/** Sessions with redeliveries described in the group figures. */
const MAX_REDELIVERY_SESSIONS = 50;

async function page(adminUrl: string, topic: string, partition: number, from: number, max: number): Promise<ReplicaPage | undefined> {
  const response = await fetch(`${adminUrl}/api/replica?topic=${encodeURIComponent(topic)}&partition=${partition}&from=${from}&max=${max}`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  if (response.status === 404) return undefined;
  if (!response.ok) throw new Error(`${adminUrl}/api/replica answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as ReplicaPage;
}

const idOf = (m: ReplicaPage['messages'][number]): string => {
  const value = decodePayload(Buffer.from(m.data, 'base64'));
  return typeof value === 'string' ? value : JSON.stringify(value);
};

/** The bounds of every hosted replica (`undefined`: not hosted; an Error: unreadable). */
export async function replicaBounds(brokers: ReadonlyArray<{ id: string; adminUrl: string }>, topic: string, partitions: number): Promise<Array<{ broker: string; partition: number; end: number } | Error>> {
  const result: Array<{ broker: string; partition: number; end: number } | Error> = [];
  for (const b of brokers) {
    for (let p = 0; p < partitions; p++) {
      try {
        const head = await page(b.adminUrl, topic, p, 0, 1);
        if (head !== undefined) result.push({ broker: b.id, partition: p, end: head.end });
      } catch (err) {
        result.push(new Error(`${b.id} partition ${p}: ${String(err)}`));
      }
    }
  }
  return result;
}

/** Reads every replica of every partition from every broker, independently of the SDK's delivery. */
export async function readReplicas(brokers: ReadonlyArray<{ id: string; adminUrl: string }>, topic: string, partitions: number): Promise<{ replicas: Replica[]; unreadable: string[] }> {
  const replicas: Replica[] = [];
  const unreadable: string[] = [];
  for (const b of brokers) {
    for (let p = 0; p < partitions; p++) {
      try {
        let first = await page(b.adminUrl, topic, p, 0, PAGE_MESSAGES);
        if (first === undefined) continue;
        const replica: Replica = { broker: b.id, partition: p, start: first.start, end: first.end, ids: [] };
        // Bounded: each page advances by at least one message, and the end was fixed by the first page.
        for (let next = first.start; first !== undefined && first.messages.length > 0 && next < replica.end; ) {
          for (const m of first.messages) {
            if (m.offset !== replica.start + replica.ids.length) throw new Error(`offset ${m.offset} where ${replica.start + replica.ids.length} was expected`);
            if (m.offset >= replica.end) break;
            replica.ids.push(idOf(m));
          }
          next = replica.start + replica.ids.length;
          if (next < replica.end) first = await page(b.adminUrl, topic, p, next, PAGE_MESSAGES);
        }
        if (replica.start + replica.ids.length !== replica.end) throw new Error(`read ${replica.ids.length} messages from ${replica.start}, the end is ${replica.end}`);
        replicas.push(replica);
      } catch (err) {
        unreadable.push(`${b.id} partition ${p}: ${String(err)}`);
      }
    }
  }
  return { replicas, unreadable };
}

/** Violation counts: every one of them must be 0 for a run to pass. */
export interface Violations {
  /** Acknowledged, and stored nowhere in its partition. */
  lost: number;
  /** A message stored more than once (extra copies). */
  duplicated: number;
  /** Acknowledged with an offset (or partition) where another message is stored. */
  misplaced: number;
  /** Acknowledged messages of one key stored out of publish order (adjacent pairs). */
  reordered: number;
  /** Replicas whose common committed prefix differs from the longest replica's. */
  divergent: number;
  /** Replicas still behind the longest one after the heal (the partition stays under-replicated). */
  lagging: number;
  /** Partitions with fewer replicas than the replication factor, or a replica that could not be read. */
  missingReplicas: number;
  /** Messages a subscriber never received. */
  subscriberMissing: number;
  /** Messages a subscriber received twice within a session, or out of offset order. */
  subscriberDuplicated: number;
  subscriberReordered: number;
  /** A delivered message differs from the stored one at its offset. */
  subscriberMismatched: number;
  /** A durable subscriber resumed past the next message it had not received. */
  durableSkipped: number;
  /** Consumer group: acknowledged (or stored) messages no member handled. */
  groupLost: number;
  /** Consumer group: within one member's assignment session of a partition, an offset not above the one before (reorder or in-session duplicate). */
  groupReordered: number;
  /** Consumer group: a message handled again in a session that began before its previous handling (no assignment change between the two). */
  groupDuplicated: number;
  /** Consumer group: a handled offset holding neither the stored message nor the one acknowledged there. */
  groupMisplaced: number;
  /** Consumer group: a message handled by a member that did not hold its partition (no `assigned` since its last `revoked`). */
  groupUnassigned: number;
  /**
   * Consumer group: a handler started on a partition after another member had
   * been shown a later grant of it (two members at once: the old owner's lease
   * should have stopped it before the partition could be someone else's).
   */
  groupOverlap: number;
}

/** The consumer group's figures (none of them a violation). */
export interface GroupFigures {
  members: number;
  /** Handler calls, all members. */
  handled: number;
  /** Handler calls per member, and the broker its client was seeded with. */
  byMember: Array<{ name: string; broker: string; handled: number; errors: number }>;
  /** Handler calls for a message handled before, in a later assignment session (at-least-once across rebalances). */
  redeliveredAfterRebalance: number;
  /** The sessions that began with redeliveries (at most {@link MAX_REDELIVERY_SESSIONS}): who, which partition, when, how many. */
  redeliveries: Array<{ member: string; partition: number; fromOffset: number; count: number; sessionStartMs: number; previousRevoked: string | undefined }>;
  /** Every `assigned` and `revoked` of every member in order (at most {@link MAX_ASSIGNMENT_EVENTS}), for the JSON: how the group moved. */
  assignments: Array<{ member: string; kind: 'assigned' | 'revoked'; partitions: number[]; atMs: number; reason?: string }>;
  /** Partition grants past each partition's first (a partition moved or came back). */
  rebalances: number;
  /** `revoked` partitions by reason. */
  revoked: Record<string, number>;
  /** Revocations other than a rebalance (`lost`, `fenced`: the session expired), at most {@link MAX_REDELIVERY_SESSIONS}: when, so the fault is found. */
  expiries: Array<{ member: string; reason: string; partitions: number[]; atMs: number; via: string | undefined }>;
  /** Events members could not record (their bound): the checks above are then partial. */
  overflowed: number;
}

export interface CheckResult {
  ok: boolean;
  violations: Violations;
  /** Up to a few examples per kind of violation. */
  examples: Partial<Record<keyof Violations, string[]>>;
  /** Messages stored per partition (the longest replica). */
  stored: number[];
  acked: number;
  /** Acknowledgements that answered a republish with the original offset. */
  duplicateAcks: number;
  /** The consumer group's figures, when the run had one. */
  group?: GroupFigures;
}

export interface CheckInput {
  partitions: number;
  replicationFactor: number;
  replicas: Replica[];
  unreadable: string[];
  acks: Ack[];
  subscribers: SubscriberLog[];
  /** Publishes refused (or timed out): named next to duplicates, whose cause they usually are. */
  refusals?: Refusal[];
  /** The consumer group's members, when the run had one. */
  group?: GroupMemberLog[];
}

/**
 * The independent checker: compares what producers were told (acks), what
 * every replica stores, and what subscribers received. It trusts nothing the
 * cluster says about itself beyond the bytes of each replica.
 */
export function check(input: CheckInput): CheckResult {
  const v: Violations = {
    lost: 0, duplicated: 0, misplaced: 0, reordered: 0, divergent: 0, lagging: 0, missingReplicas: 0,
    subscriberMissing: 0, subscriberDuplicated: 0, subscriberReordered: 0, subscriberMismatched: 0, durableSkipped: 0,
    groupLost: 0, groupReordered: 0, groupDuplicated: 0, groupMisplaced: 0, groupUnassigned: 0, groupOverlap: 0,
  };
  const examples: Partial<Record<keyof Violations, string[]>> = {};
  const note = (kind: keyof Violations, text: string, count = 1): void => {
    v[kind] += count;
    const list = (examples[kind] ??= []);
    if (list.length < MAX_EXAMPLES) list.push(text);
  };
  for (const u of input.unreadable) note('missingReplicas', `unreadable: ${u}`);

  // Replicas: the longest is the reference; every other must agree on the common prefix and reach its end.
  const reference = new Map<number, Replica>();
  for (let p = 0; p < input.partitions; p++) {
    const copies = input.replicas.filter((r) => r.partition === p);
    if (copies.length < input.replicationFactor) note('missingReplicas', `partition ${p}: ${copies.length} readable replicas (${copies.map((c) => c.broker).join(',')}), replication factor ${input.replicationFactor}`);
    const longest = copies.reduce<Replica | undefined>((best, r) => (best === undefined || r.end > best.end ? r : best), undefined);
    if (longest === undefined) continue;
    reference.set(p, longest);
    for (const r of copies) {
      if (r === longest) continue;
      const from = Math.max(r.start, longest.start);
      const to = Math.min(r.end, longest.end);
      for (let o = from; o < to; o++) {
        if (r.ids[o - r.start] !== longest.ids[o - longest.start]) {
          note('divergent', `partition ${p}: ${r.broker} holds ${r.ids[o - r.start]} at offset ${o}, ${longest.broker} holds ${longest.ids[o - longest.start]} (first difference; ends ${r.end} and ${longest.end})`);
          break;
        }
      }
      if (r.end < longest.end) note('lagging', `partition ${p}: ${r.broker} ends at ${r.end}, ${longest.broker} at ${longest.end}`);
    }
  }

  // Where each message is stored, from the reference replicas.
  const where = new Map<string, Array<{ partition: number; offset: number }>>();
  for (const [p, r] of reference) {
    r.ids.forEach((id, i) => {
      const list = where.get(id);
      if (list === undefined) where.set(id, [{ partition: p, offset: r.start + i }]);
      else list.push({ partition: p, offset: r.start + i });
    });
  }
  const ackOf = new Map(input.acks.map((a) => [a.id, a]));
  const describeAck = (id: string): string => {
    const a = ackOf.get(id);
    return a === undefined ? 'never acknowledged' : `acked at ${a.partition}@${a.offset} ${(a.atMs / 1000).toFixed(1)} s into the run${a.duplicate ? ' as a duplicate' : ''}`;
  };
  // A duplicate means the SDK renumbered a stored message: the refusals of its producer around then say why.
  const refusalsNear = (id: string): string => {
    const producer = parseMessageId(id)?.producer;
    const own = input.refusals?.find((r) => r.id === id);
    const near = (input.refusals ?? []).filter((r) => r.id !== id && parseMessageId(r.id)?.producer === producer).slice(0, 5);
    const text = (r: Refusal): string => `${r.id} ${r.code} at ${(r.atMs / 1000).toFixed(1)} s${r.message === undefined ? '' : ` (${r.message})`}`;
    return `; own refusal: ${own === undefined ? 'none' : text(own)}; producer's refusals: ${near.length === 0 ? 'none' : near.map(text).join(' | ')}`;
  };
  for (const [id, list] of where) if (list.length > 1) note('duplicated', `${id} stored ${list.length} times: ${list.map((l) => `${l.partition}@${l.offset}`).join(', ')}; ${describeAck(id)}${refusalsNear(id)}`, list.length - 1);

  // Acknowledgements: stored once, where the ack said.
  for (const ack of input.acks) {
    const stored = where.get(ack.id);
    const r = reference.get(ack.partition);
    if (stored === undefined) {
      if (r !== undefined && ack.offset < r.start) continue; // removed by retention (none in chaos runs)
      note('lost', `${ack.id} acked at ${ack.partition}@${ack.offset}${ack.duplicate ? ' (duplicate ack)' : ''}, stored nowhere`);
    } else if (!stored.some((s) => s.partition === ack.partition && s.offset === ack.offset)) {
      const there = r?.ids[ack.offset - r.start];
      note('misplaced', `${ack.id} acked at ${ack.partition}@${ack.offset}, stored at ${stored.map((s) => `${s.partition}@${s.offset}`).join(',')}; ${ack.partition}@${ack.offset} holds ${there ?? 'nothing'}`);
    }
  }

  // Per-key order: acknowledged messages of a key are stored in publish (seq) order.
  const byKey = new Map<string, Ack[]>();
  for (const ack of input.acks) {
    const list = byKey.get(ack.key);
    if (list === undefined) byKey.set(ack.key, [ack]);
    else list.push(ack);
  }
  for (const [key, acks] of byKey) {
    acks.sort((a, b) => a.seq - b.seq);
    for (let i = 1; i < acks.length; i++) {
      const a = acks[i - 1] as Ack;
      const b = acks[i] as Ack;
      if (b.partition !== a.partition || b.offset <= a.offset) note('reordered', `key ${key}: seq ${a.seq} at ${a.partition}@${a.offset}, seq ${b.seq} at ${b.partition}@${b.offset}`);
    }
  }

  // Subscribers: everything stored, once, in order; durable ones never skip on resume.
  for (const sub of input.subscribers) {
    for (const [p, r] of reference) {
      const seen = new Set<number>();
      let reachedBefore = r.start;
      for (const [s, session] of sub.sessions.entries()) {
        const list = session.get(p) ?? [];
        let previous: number | undefined;
        for (const m of list) {
          // Within a session offsets go up by one; a durable subscriber may see a message again only in a later session.
          const again = seen.has(m.offset) && (!sub.durable || (previous !== undefined && m.offset <= previous));
          if (again) note('subscriberDuplicated', `${sub.name} session ${s}: partition ${p} offset ${m.offset} delivered again (after ${previous})`);
          else if (previous !== undefined && m.offset !== previous + 1) note('subscriberReordered', `${sub.name} session ${s}: partition ${p} offset ${m.offset} after ${previous}`);
          const stored = r.ids[m.offset - r.start];
          if (stored !== m.id) note('subscriberMismatched', `${sub.name}: partition ${p} offset ${m.offset} delivered ${m.id}, stored ${stored ?? 'nothing'}`);
          seen.add(m.offset);
          previous = m.offset;
        }
        const first = list[0];
        if (sub.durable && s > 0 && first !== undefined && first.offset > reachedBefore) {
          note('durableSkipped', `${sub.name} session ${s}: partition ${p} resumed at ${first.offset}, had received up to ${reachedBefore - 1}`);
        }
        for (const m of list) reachedBefore = Math.max(reachedBefore, m.offset + 1);
      }
      let missing = 0;
      let firstMissing: number | undefined;
      for (let o = r.start; o < r.end; o++) {
        if (!seen.has(o)) {
          missing++;
          firstMissing ??= o;
        }
      }
      if (missing > 0) note('subscriberMissing', `${sub.name}: partition ${p} missed ${missing} of ${r.end - r.start} messages, first at offset ${firstMissing}`, missing);
    }
  }

  const group = input.group === undefined ? undefined : checkGroup(input.group, reference, input.acks, note);

  const ok = Object.values(v).every((n) => n === 0);
  return {
    ...(group === undefined ? {} : { group }),
    ok,
    violations: v,
    examples,
    stored: Array.from({ length: input.partitions }, (_, p) => reference.get(p)?.ids.length ?? 0),
    acked: input.acks.length,
    duplicateAcks: input.acks.filter((a) => a.duplicate).length,
  };
}

/**
 * The consumer group's rules: (a) every acknowledged or stored message was
 * handled by some member; (b) within one member's assignment session of a
 * partition (from its `assigned` to its `revoked`) offsets strictly increase;
 * (c) a message handled again was handled in a session that began after its
 * previous handling (a redelivery after a rebalance: counted, allowed);
 * (d) every handled offset holds what was stored or acknowledged there.
 * Members share one event counter, so their events merge into one order.
 */
export function checkGroup(
  members: readonly GroupMemberLog[],
  reference: ReadonlyMap<number, Replica>,
  acks: readonly Ack[],
  note: (kind: keyof Violations, text: string, count?: number) => void,
): GroupFigures {
  const events = members.flatMap((m) => m.events.map((e) => ({ member: m.name, e }))).sort((a, b) => a.e.at - b.e.at);
  const ackedAt = new Map(acks.map((a) => [`${a.partition}@${a.offset}`, a.id]));
  interface Session {
    key: string;
    startAt: number;
    startMs: number;
    last: number | undefined;
    redelivered?: GroupFigures['redeliveries'][number];
  }
  const redeliveries: GroupFigures['redeliveries'] = [];
  const expiries: GroupFigures['expiries'] = [];
  const assignments: GroupFigures['assignments'] = [];
  /** The broker a member's client was last connected to before `atMs` (from its moves; its seed before any: the first connection precedes the listeners). */
  const brokerBefore = (member: string, atMs: number): string | undefined => {
    const log = members.find((m) => m.name === member);
    return log?.moves.filter((m) => m.atMs <= atMs && m.to !== undefined).at(-1)?.to ?? log?.broker;
  };
  /** The reason of the last revocation of each partition (any member): says why a redelivery happened. */
  const lastRevoked = new Map<number, string>();
  /** The latest grant of each partition shown to any member. */
  const lastGrant = new Map<number, { member: string; at: number; atMs: number }>();
  const open = new Map<string, Session>(); // member/partition -> its current session
  const sessionsOpened = new Map<string, number>();
  const previous = new Map<string, { at: number; session: string; member: string }>(); // partition@offset -> its last handling
  const handledIds = new Set<string>();
  const grantsOf = new Map<number, number>();
  const revoked: Record<string, number> = {};
  let handled = 0;
  let redeliveredAfterRebalance = 0;
  for (const { member, e } of events) {
    if (e.kind !== 'handled' && assignments.length < MAX_ASSIGNMENT_EVENTS) assignments.push({ member, kind: e.kind, partitions: e.partitions, atMs: e.atMs, ...(e.kind === 'revoked' ? { reason: e.reason } : {}) });
    if (e.kind === 'assigned') {
      for (const p of e.partitions) {
        const n = sessionsOpened.get(`${member}/${p}`) ?? 0;
        sessionsOpened.set(`${member}/${p}`, n + 1);
        open.set(`${member}/${p}`, { key: `${member}/${p}/${n}`, startAt: e.at, startMs: e.atMs, last: undefined });
        grantsOf.set(p, (grantsOf.get(p) ?? 0) + 1);
        lastGrant.set(p, { member, at: e.at, atMs: e.atMs });
      }
      continue;
    }
    if (e.kind === 'revoked') {
      for (const p of e.partitions) open.delete(`${member}/${p}`), lastRevoked.set(p, `${member} ${e.reason} at ${(e.atMs / 1000).toFixed(1)} s`);
      revoked[e.reason] = (revoked[e.reason] ?? 0) + e.partitions.length;
      if (e.reason !== 'rebalance' && expiries.length < MAX_REDELIVERY_SESSIONS) expiries.push({ member, reason: e.reason, partitions: e.partitions, atMs: e.atMs, via: brokerBefore(member, e.atMs) });
      continue;
    }
    handled++;
    handledIds.add(e.id);
    const where = `${e.partition}@${e.offset}`;
    let session = open.get(`${member}/${e.partition}`);
    if (session === undefined) {
      note('groupUnassigned', `${member} handled ${where} (${e.id}) without holding partition ${e.partition}`);
      // Its own session, so the rules below still apply to what follows.
      session = { key: `${member}/${e.partition}/unassigned@${e.at}`, startAt: e.at, startMs: e.atMs, last: undefined };
      open.set(`${member}/${e.partition}`, session);
    }
    const grant = lastGrant.get(e.partition);
    if (grant !== undefined && grant.member !== member && grant.at > session.startAt) {
      note('groupOverlap', `${member} handled ${where} at ${(e.atMs / 1000).toFixed(2)} s under its grant of ${(session.startMs / 1000).toFixed(2)} s, after ${grant.member} was granted partition ${e.partition} at ${(grant.atMs / 1000).toFixed(2)} s`);
    }
    if (session.last !== undefined && e.offset <= session.last) note('groupReordered', `${member} session ${session.key}: offset ${e.offset} after ${session.last}`);
    session.last = Math.max(session.last ?? e.offset, e.offset);
    const before = previous.get(where);
    if (before !== undefined) {
      if (before.session === session.key) {
        // Already a reorder above (an offset not above the last one of its session).
      } else if (session.startAt > before.at) {
        redeliveredAfterRebalance++;
        if (session.redelivered !== undefined) session.redelivered.count++;
        else if (redeliveries.length < MAX_REDELIVERY_SESSIONS) {
          session.redelivered = { member, partition: e.partition, fromOffset: e.offset, count: 1, sessionStartMs: session.startMs, previousRevoked: lastRevoked.get(e.partition) };
          redeliveries.push(session.redelivered);
        }
      }
      else note('groupDuplicated', `${where} handled by ${before.member} (${before.session}) then by ${member} (${session.key}), whose session began before that first handling`);
    }
    previous.set(where, { at: e.at, session: session.key, member });
    const r = reference.get(e.partition);
    const stored = r?.ids[e.offset - r.start];
    if (stored !== e.id && ackedAt.get(where) !== e.id) note('groupMisplaced', `${member} handled ${e.id} at ${where}; stored there: ${stored ?? 'nothing'}, acknowledged there: ${ackedAt.get(where) ?? 'nothing'}`);
  }
  for (const a of acks) if (!handledIds.has(a.id)) note('groupLost', `${a.id} acked at ${a.partition}@${a.offset}, handled by no member`);
  for (const [p, r] of reference) {
    let missing = 0;
    let firstMissing: number | undefined;
    for (let o = r.start; o < r.end; o++) {
      const id = r.ids[o - r.start] as string;
      if (!previous.has(`${p}@${o}`) && !ackedAt.has(`${p}@${o}`) && !handledIds.has(id)) {
        missing++;
        firstMissing ??= o;
      }
    }
    if (missing > 0) note('groupLost', `partition ${p}: ${missing} stored, unacknowledged messages handled by no member, first at offset ${firstMissing}`, missing);
  }
  const grants = [...grantsOf.values()].reduce((a, b) => a + b, 0);
  return {
    members: members.length,
    handled,
    byMember: members.map((m) => ({ name: m.name, broker: m.broker, handled: m.events.filter((e) => e.kind === 'handled').length, errors: m.errors.length })),
    redeliveredAfterRebalance,
    redeliveries,
    assignments,
    rebalances: grants - grantsOf.size,
    revoked,
    expiries,
    overflowed: members.reduce((n, m) => n + m.overflowed, 0),
  };
}
