/**
 * The `groups` figures (issue 15): how long delivery pauses on the partitions
 * that do NOT move while consumer-group members join and leave. Three broker
 * processes (R=3, logs on disk fsynced before the ack), a 12-partition topic
 * with one message published to every partition every `publishIntervalMs`,
 * and group members as SDK clients of this process. The group goes
 * 3 → 4 → 5 → 6 → 5 → 4 → 5 → 4 → 3 members (joins, and leaves by `close()`);
 * each step waits until every partition has one owner and the shares are
 * even, then a little steady traffic.
 *
 * A partition "did not move" in a step when its owner was the same before
 * and after and it saw no `assigned`/`revoked` event during the step. Its
 * delivery pause is the longest a message acknowledged during the step
 * waited, from its acknowledgement to its handler call: a member that stopped
 * handling (or a broker that stopped delivering) shows there, while a
 * publisher that stalls does not (nothing is waiting then). For context: the
 * same figure over a quiet stretch before the churn (what the machine gives
 * without any rebalance), the longest gap between two handler calls on an
 * unmoved partition, and the same delay on the partitions that did move.
 */
import { join } from 'node:path';
import type { Message, RelayClient, connect as Connect } from '@relaymq/sdk';
import { partitionForKey } from '@relaymq/sdk/protocol';
import { longestGap, longestWait, settled, type Trace } from './group-pauses.js';
import { freePorts, makeTempDir, progress, removeTempDir, spawnBroker, type BrokerProcess } from './lib.js';

/** The issue-15 goal: the longest pause on a partition that did not move, in ms. */
export const GROUP_PAUSE_GOAL_MS = 200;

/** Sizes of the run. */
export interface GroupSizes {
  partitions: number;
  /** One message to every partition this often. */
  publishIntervalMs: number;
  /** Steady traffic after a step settled, before the next step. */
  steadyMs: number;
  /** Quiet stretch before the churn, for the baseline gap. */
  baselineMs: number;
  sessionTimeoutMs: number;
  /** `commit.intervalMs` of the members. */
  commitIntervalMs: number;
}

export const GROUP_SIZES: GroupSizes = { partitions: 12, publishIntervalMs: 20, steadyMs: 1000, baselineMs: 3000, sessionTimeoutMs: 10_000, commitIntervalMs: 200 };

/** One join or leave, and what it did to delivery. */
export interface GroupStep {
  /** `join` or `leave`, and the member count after it. */
  step: string;
  members: number;
  /** Partitions that changed owner. */
  moved: number;
  /** From the join/leave until every partition had one owner and the shares were even. */
  settledMs: number;
  /** Longest wait from acknowledgement to handler call of a message acknowledged while the step was in progress (until settled), on a partition that did not move. */
  maxPauseUnmovedMs: number;
  /** The same wait for messages acknowledged in the steady second after the step settled, on every partition: the control, no rebalance. */
  steadyMaxPauseMs: number;
  /** Longest gap between two handler calls on a partition that did not move (the publish interval is its floor). */
  maxGapUnmovedMs: number;
  /** Longest wait from acknowledgement to handler call on a partition that moved, over the whole step (the handover). */
  maxPauseMovedMs: number;
}

export interface GroupRebalanceResult {
  brokers: number;
  partitions: number;
  publishIntervalMs: number;
  sessionTimeoutMs: number;
  commitIntervalMs: number;
  /** Longest wait from acknowledgement to handler call over the quiet stretch before the churn (no rebalance). */
  baselineMaxPauseMs: number;
  /** Longest gap between handler calls on a partition over the quiet stretch. */
  baselineMaxGapMs: number;
  steps: GroupStep[];
  /** The headline: the longest pause on an unmoved partition while a step was in progress, over every step. */
  maxPauseUnmovedMs: number;
  /** The control: the longest wait in the steady seconds between steps (same run, same load, no rebalance). */
  steadyMaxPauseMs: number;
  goalMs: number;
  met: boolean;
  /** Messages handled in all (a member may handle a message twice only after a crash; none crash here). */
  handled: number;
}

const BROKER_IDS = ['g1', 'g2', 'g3'] as const;
const TOPIC = 'bench.groups';
const GROUP = 'bench';
const SETTLE_TIMEOUT_MS = 30_000;

/** A member: its client, and what it owns as its `assigned`/`revoked` events say. */
interface Member {
  name: string;
  client: RelayClient;
  owned: Set<number>;
}


async function startBrokers(partitions: number): Promise<{ brokers: BrokerProcess[]; urls: string[]; root: string }> {
  const ports = await freePorts(2 * BROKER_IDS.length);
  const root = makeTempDir('relaymq-bench-groups-');
  const specs = BROKER_IDS.map((id, i) => ({ id, clientPort: ports[i] as number, peerPort: ports[BROKER_IDS.length + i] as number }));
  const brokers = await Promise.all(
    specs.map((spec) => {
      const peers = specs.filter((other) => other !== spec).map((other) => `${other.id}@127.0.0.1:${other.peerPort}`);
      const args = ['--peer-port', String(spec.peerPort), '--peers', peers.join(','), '--data', join(root, spec.id), '--partitions', String(partitions), '--replication-factor', '3'];
      return spawnBroker(spec.id, args, spec.clientPort);
    }),
  );
  return { brokers, urls: specs.map((spec) => `ws://127.0.0.1:${spec.clientPort}`), root };
}

async function waitUntil(condition: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`groups: timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function groupRebalance(connect: typeof Connect, sizes: GroupSizes = GROUP_SIZES): Promise<GroupRebalanceResult> {
  const label = 'groups: ';
  const { brokers, urls, root } = await startBrokers(sizes.partitions);
  progress(`${label}brokers ${brokers.map((b) => `${b.id} (pid ${b.pid}) ${b.url}`).join(', ')}`);
  const clients: RelayClient[] = [];
  const trace: Trace = { handled: [], ownership: [], messages: new Map() };
  let publishing: ReturnType<typeof setInterval> | undefined;
  try {
    const publisher = await connect({ brokers: urls, publishTimeoutMs: 20_000 });
    clients.push(publisher);
    // One key per partition, so each tick feeds every partition once.
    const keys: string[] = [];
    let found = 0;
    for (let i = 0; found < sizes.partitions; i++) {
      const key = `k${i}`;
      const partition = partitionForKey(key, sizes.partitions);
      // Filled out of order: the array's length says nothing about its holes, so count what was found.
      if (keys[partition] === undefined) {
        keys[partition] = key;
        found++;
      }
      if (i > 100_000) throw new Error('groups: no key for some partition');
    }
    await publisher.publish(TOPIC, { warm: true }, { key: keys[0] as string });
    let failures = 0;
    let nextId = 0;
    publishing = setInterval(() => {
      keys.forEach((key, partition) => {
        const id = nextId++;
        const entry: { partition: number; ackedAt?: number; handledAt?: number } = { partition };
        trace.messages.set(id, entry);
        publisher.publish(TOPIC, { id }, { key }).then(
          () => void (entry.ackedAt = Date.now()),
          () => failures++,
        );
      });
    }, sizes.publishIntervalMs);

    const members: Member[] = [];
    let nextMember = 1;
    const join = async (): Promise<void> => {
      const name = `m${nextMember++}`;
      // Members are seeded with different brokers, as members of a real group would be.
      const client = await connect({ brokers: [urls[(nextMember - 2) % urls.length] as string], commit: { intervalMs: sizes.commitIntervalMs } });
      clients.push(client);
      const member: Member = { name, client, owned: new Set() };
      client.on('assigned', ({ partitions }) => {
        for (const p of partitions) {
          member.owned.add(p.partition);
          trace.ownership.push({ member: name, partition: p.partition, t: Date.now(), ev: 'assigned' });
        }
      });
      client.on('revoked', ({ partitions }) => {
        for (const p of partitions) {
          member.owned.delete(p.partition);
          trace.ownership.push({ member: name, partition: p.partition, t: Date.now(), ev: 'revoked' });
        }
      });
      members.push(member);
      const handler = (m: Message<{ id?: number }>): void => {
        const t = Date.now();
        trace.handled.push({ member: name, partition: m.partition, t });
        const entry = m.data.id === undefined ? undefined : trace.messages.get(m.data.id);
        if (entry !== undefined && entry.handledAt === undefined) entry.handledAt = t;
      };
      await client.subscribe(TOPIC, handler, {
        group: GROUP,
        from: 'earliest',
        sessionTimeoutMs: sizes.sessionTimeoutMs,
      });
    };
    const leave = async (): Promise<void> => {
      const member = members.pop() as Member;
      // A graceful leave: the last positions are committed and the partitions move at once.
      await member.client.close();
      member.owned.clear();
    };

    for (let i = 0; i < 3; i++) await join();
    const owning = (): string => members.map((m) => `${m.name} [${[...m.owned].join(',')}]`).join(' ');
    await waitUntil(() => settled(members, sizes.partitions), '3 members to share the partitions', SETTLE_TIMEOUT_MS).catch((err: unknown) => {
      throw new Error(`${String(err)}: ${owning()}`);
    });
    // Catch up with what was published before the group formed, then a quiet stretch for the baseline.
    await sleep(sizes.steadyMs);
    const baselineFrom = Date.now();
    await sleep(sizes.baselineMs);
    const baselineTo = Date.now();
    const windows: Array<{ step: Omit<GroupStep, 'maxPauseUnmovedMs' | 'maxPauseMovedMs' | 'steadyMaxPauseMs'>; from: number; settledAt: number; to: number; unmoved: number[] }> = [];

    const plan: Array<'join' | 'leave'> = ['join', 'join', 'join', 'leave', 'leave', 'join', 'leave', 'leave'];
    for (const action of plan) {
      const ownersBefore = new Map<number, string>();
      for (const m of members) for (const p of m.owned) ownersBefore.set(p, m.name);
      const from = Date.now();
      if (action === 'join') await join();
      else await leave();
      await waitUntil(() => settled(members, sizes.partitions), `${members.length} members to share the partitions`, SETTLE_TIMEOUT_MS);
      const settledAt = Date.now();
      const settledMs = settledAt - from;
      await sleep(sizes.steadyMs);
      const to = Date.now();
      const unmoved: number[] = [];
      let maxGapUnmovedMs = 0;
      for (let p = 0; p < sizes.partitions; p++) {
        const owner = members.find((m) => m.owned.has(p))?.name;
        const touched = trace.ownership.some((e) => e.partition === p && e.t >= from && e.t <= to);
        if (owner === undefined || owner !== ownersBefore.get(p) || touched) continue;
        unmoved.push(p);
        maxGapUnmovedMs = Math.max(maxGapUnmovedMs, longestGap(trace, owner, p, from, to));
      }
      windows.push({ step: { step: `${action} → ${members.length}`, members: members.length, moved: sizes.partitions - unmoved.length, settledMs, maxGapUnmovedMs }, from, settledAt, to, unmoved });
    }
    clearInterval(publishing);
    publishing = undefined;
    // Everything acknowledged gets handled before the waits are read (bounded: a lost message shows as an infinite wait).
    await waitUntil(() => [...trace.messages.values()].every((m) => m.ackedAt === undefined || m.handledAt !== undefined), 'every acknowledged message to be handled', SETTLE_TIMEOUT_MS).catch(
      (err: unknown) => progress(`${label}${String(err)}`),
    );
    if (failures > 0) progress(`${label}${failures} publishes failed`);
    const all = Array.from({ length: sizes.partitions }, (_, p) => p);
    const worst = (partitions: readonly number[], from: number, to: number, measure: typeof longestWait): number => Math.max(0, ...partitions.map((p) => measure(trace, p, from, to)));
    const baselineMaxPauseMs = worst(all, baselineFrom, baselineTo, longestWait);
    const baselineMaxGapMs = worst(all, baselineFrom, baselineTo, (t, p, from, to) => longestGap(t, undefined, p, from, to));
    progress(`${label}baseline (3 members, no rebalance): longest wait ${baselineMaxPauseMs} ms, longest gap ${baselineMaxGapMs} ms`);
    const steps: GroupStep[] = windows.map(({ step, from, settledAt, to, unmoved }) => {
      const moved = all.filter((p) => !unmoved.includes(p));
      const figures: GroupStep = {
        ...step,
        maxPauseUnmovedMs: worst(unmoved, from, settledAt, longestWait),
        steadyMaxPauseMs: worst(all, settledAt, to, longestWait),
        maxPauseMovedMs: worst(moved, from, to, longestWait),
      };
      progress(
        `${label}${step.step} members: ${step.moved} moved, settled in ${step.settledMs} ms; unmoved partitions during the step: longest wait ${figures.maxPauseUnmovedMs} ms ` +
          `(steady after it: ${figures.steadyMaxPauseMs} ms), longest gap ${step.maxGapUnmovedMs} ms; moved: longest wait ${figures.maxPauseMovedMs} ms`,
      );
      return figures;
    });
    const maxPauseUnmovedMs = Math.max(...steps.map((s) => s.maxPauseUnmovedMs));
    const steadyMaxPauseMs = Math.max(...steps.map((s) => s.steadyMaxPauseMs));
    progress(`${label}longest wait on unmoved partitions during joins and leaves ${maxPauseUnmovedMs} ms; in the steady seconds between them ${steadyMaxPauseMs} ms`);
    return {
      brokers: BROKER_IDS.length,
      partitions: sizes.partitions,
      publishIntervalMs: sizes.publishIntervalMs,
      sessionTimeoutMs: sizes.sessionTimeoutMs,
      commitIntervalMs: sizes.commitIntervalMs,
      baselineMaxPauseMs,
      baselineMaxGapMs,
      steps,
      maxPauseUnmovedMs,
      steadyMaxPauseMs,
      goalMs: GROUP_PAUSE_GOAL_MS,
      met: maxPauseUnmovedMs <= GROUP_PAUSE_GOAL_MS,
      handled: trace.handled.length,
    };
  } finally {
    if (publishing !== undefined) clearInterval(publishing);
    await Promise.all(clients.map((client) => client.close().catch(() => {})));
    await Promise.all(brokers.map((broker) => broker.stop()));
    removeTempDir(root);
  }
}
