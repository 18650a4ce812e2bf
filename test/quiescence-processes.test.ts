/**
 * Issue 13 at a size CI affords: three broker processes host 1,000
 * partitions (R=3, on disk). Once idle, every Raft group quiesces and the
 * brokers' own counters (`raftTicks`, `raftMessagesSent`) stop moving; a
 * publish wakes its group; and SIGKILL of the broker leading the most
 * partitions still gets every partition a leader among the survivors, woken
 * by the failure detector rather than by election timers.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { get, getJson, parseMetrics, sample } from './support/admin.js';
import { BrokerProcess } from './support/broker-process.js';
import { Fixture } from './support/cluster.js';
import { ProcessCluster, type PartitionRow } from './support/process-cluster.js';
import { RawClient } from './support/raw-client.js';
import { tempDirs } from './support/temp-dirs.js';
import { waitForAsync } from './support/wait.js';

const TOPICS = 125;
const PARTITIONS_PER_TOPIC = 8;
const PARTITIONS = TOPICS * PARTITIONS_PER_TOPIC;
/** Groups per broker: every partition (R=3 on 3 brokers) and the metadata group. */
const GROUPS = PARTITIONS + 1;
/** Generous for a loaded 2-core CI machine; a busy cluster does ~20 ticks per group per second. */
const QUIESCE_TIMEOUT_MS = 90_000;
/** Bound on the re-election after the kill (detection, then at most one election timeout; CI load on top). */
const FAILOVER_TIMEOUT_MS = 30_000;

const newDir = tempDirs('relaymq-quiesce-');
const fixture = new Fixture();
afterEach(async () => {
  await fixture.cleanup();
  await BrokerProcess.stopAll();
});

interface RaftCounters {
  ticks: number;
  messages: number;
  groups: number;
  quiesced: number;
}

async function raftCounters(broker: BrokerProcess): Promise<RaftCounters> {
  const { body } = await get(`${broker.adminUrl}/metrics`, 10_000);
  const samples = parseMetrics(body);
  const stat = (name: string): number => sample(samples, 'relaymq_broker_stat', { stat: name }) ?? Number.NaN;
  return { ticks: stat('raftTicks'), messages: stat('raftMessagesSent'), groups: stat('raftGroups'), quiesced: stat('raftGroupsQuiesced') };
}

/** The partitions broker `id` hosts, with their leaders ([] when it does not answer within 10 s). */
async function partitionRows(cluster: ProcessCluster, id: string): Promise<PartitionRow[]> {
  try {
    return (await getJson<{ partitions: PartitionRow[] }>(`${cluster.get(id).adminUrl}/api/broker`, 10_000)).partitions;
  } catch {
    return [];
  }
}

/** Creates every topic through `metadata` requests, a few in flight (each answer: committed and assigned). */
async function createTopics(url: string, topics: readonly string[]): Promise<void> {
  const client = await RawClient.open(url);
  try {
    let id = 1;
    for (let i = 0; i < topics.length; i += 25) {
      const batch = topics.slice(i, i + 25);
      const requestId = id++;
      client.send({ type: 'metadata', id: requestId, topics: [...batch] });
      const answer = await client.next('topics', 90_000);
      expect(answer.id).toBe(requestId);
      expect(answer.topics.map((t) => t.partitions)).toEqual(batch.map(() => PARTITIONS_PER_TOPIC));
    }
  } finally {
    client.close();
  }
}

describe('1,000 idle partitions on three broker processes', () => {
  it('quiesce (ticks and peer messages stop, by the brokers own counters), wake on a publish, and re-elect every leader after a SIGKILL', async () => {
    const dirs = new Map<string, string>();
    for (const id of ['z1', 'z2', 'z3']) dirs.set(id, await newDir());
    const cluster = await ProcessCluster.start(['z1', 'z2', 'z3'], (id) => ['--data', dirs.get(id) as string, '--partitions', String(PARTITIONS_PER_TOPIC)], 30_000);
    const brokers = [...cluster.brokers.values()];
    const topics = Array.from({ length: TOPICS }, (_, i) => `idle.t${i}`);
    await createTopics(brokers[0]?.url as string, topics);

    // Every group of every broker quiesces once the elections and creation are over.
    await waitForAsync(
      async () => (await Promise.all(brokers.map(raftCounters))).every((c) => c.groups === GROUPS && c.quiesced === GROUPS),
      `all ${GROUPS} groups quiesced on every broker`,
      QUIESCE_TIMEOUT_MS,
    );
    const before = await Promise.all(brokers.map(raftCounters));
    // Two seconds of an idle cluster: 40 ticks of the broker clock, 80,000 group ticks per broker before quiescence.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const after = await Promise.all(brokers.map(raftCounters));
    // Bounded, not zero: an odd wake (a gossip suspicion on a loaded machine, a metadata write) ticks a group or two
    // and re-quiesces it (CI saw 19 messages in the window once). Unquiesced, the window holds 40 ticks and about 80
    // messages per group — 40,000 and 80,000 here — so the bound (a tenth of a tick or message per group) is 0.25%.
    const idleBound = Math.ceil(GROUPS / 10);
    for (const [i, c] of after.entries()) {
      const b = before[i] as RaftCounters;
      process.stderr.write(`quiescence test: broker ${brokers[i]?.id} idle 2 s: ${c.ticks - b.ticks} group ticks, ${c.messages - b.messages} raft messages, ${c.quiesced}/${GROUPS} quiesced\n`);
      expect(c.quiesced, `broker ${brokers[i]?.id}: groups quiesced`).toBeGreaterThanOrEqual(GROUPS - 2);
      expect(c.ticks - b.ticks, `broker ${brokers[i]?.id}: group ticks while idle`).toBeLessThanOrEqual(idleBound);
      expect(c.messages - b.messages, `broker ${brokers[i]?.id}: raft messages while idle`).toBeLessThanOrEqual(idleBound);
    }

    // A publish wakes its group (and only its group), is acknowledged, and the group quiesces again.
    const client = await fixture.client(brokers.map((b) => b.url));
    const receipt = await client.publish('idle.t7', 'wake up', { key: 'k' });
    expect(receipt.offset).toBe(0);
    await waitForAsync(
      async () => (await Promise.all(brokers.map(raftCounters))).every((c) => c.quiesced === GROUPS),
      'the published group to quiesce again',
      QUIESCE_TIMEOUT_MS,
    );

    // SIGKILL of the broker leading the most partitions: the others must elect leaders for all of them.
    const led = new Map<string, number>();
    for (const row of await partitionRows(cluster, 'z1')) if (row.leader !== null) led.set(row.leader, (led.get(row.leader) ?? 0) + 1);
    const [victim, victimLeads] = [...led].sort((a, b) => b[1] - a[1])[0] as [string, number];
    expect(victimLeads).toBeGreaterThan(0);
    const survivors = ['z1', 'z2', 'z3'].filter((id) => id !== victim);
    const killedAt = Date.now();
    await cluster.get(victim).signal('SIGKILL');
    let lastSeen = 'no answer yet';
    await waitForAsync(
      async () => {
        // A survivor busy electing hundreds of leaders may answer slowly: a late answer is a "not yet".
        const reports = await Promise.all(survivors.map((id) => partitionRows(cluster, id)));
        lastSeen = reports
          .map((rows, i) => {
            const leaderless = rows.filter((row) => row.leader === null).length;
            const stale = rows.filter((row) => row.leader === victim).length;
            return `${survivors[i]}: ${rows.length} rows, ${leaderless} leaderless, ${stale} still led by ${victim}`;
          })
          .join('; ');
        return reports.every((rows) => rows.length === PARTITIONS && rows.every((row) => row.leader !== null && survivors.includes(row.leader)));
      },
      `every partition led by ${survivors.join(' or ')} after ${victim} (leading ${victimLeads}) was killed`,
      FAILOVER_TIMEOUT_MS,
    ).catch((err: unknown) => {
      throw new Error(`${err instanceof Error ? err.message : String(err)}; last seen: ${lastSeen}`);
    });
    process.stderr.write(`quiescence test: ${victimLeads} partitions led by ${victim} re-led in ${Date.now() - killedAt} ms\n`);
  }, 240_000);
});
