/**
 * Issue 13 at sizes CI affords: three broker processes host 2,000
 * partitions with their logs in memory, and 1,000 on disk (fsync always),
 * R=3, created by one bulk `metadata` request. Once idle, every Raft group
 * quiesces: the brokers' own counters (`raftTicks`, `raftMessagesSent`) stop
 * moving and each broker's CPU, read from /proc over a fixed window, stays a
 * few percent of a core; a publish and subscribe round trip on a few
 * partitions works and wakes their groups; and SIGKILL of the broker leading
 * the most partitions still gets every partition a leader among the
 * survivors within a bound, woken by the failure detector rather than by
 * election timers, after which every group quiesces again though a third of
 * them now miss a replica (the dead broker's).
 *
 * Why 2,000 only in memory: on disk every group's election fsyncs a vote on
 * the candidate and each voter (a vote is fsynced whatever `--fsync` says),
 * and creating 2,000 until every group quiesced took 65 s on the loaded
 * 2-core machine (re-electing 900-1,650 groups took 17-36 s there before the
 * fixes of the scale-failover branch; 2.8 s for 414 after); see
 * docs/benchmarks.md.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { get, getJson, parseMetrics, sample } from './support/admin.js';
import { BrokerProcess } from './support/broker-process.js';
import { Fixture } from './support/cluster.js';
import { ProcessCluster, type PartitionRow } from './support/process-cluster.js';
import { RawClient } from './support/raw-client.js';
import { tempDirs } from './support/temp-dirs.js';
import { waitFor, waitForAsync } from './support/wait.js';

const PARTITIONS_PER_TOPIC = 8;
/** Generous for a loaded 2-core CI machine; a busy cluster does ~20 ticks per group per second. */
const QUIESCE_TIMEOUT_MS = 90_000;
/** The idle window over which CPU and the Raft counters are read. */
const IDLE_WINDOW_MS = 3000;
/**
 * Idle CPU per broker, percent of one core, over {@link IDLE_WINDOW_MS}. Measured
 * 0.7-2.3% with every group quiesced (2,000 partitions, load average 10-18);
 * unquiesced, groups ticking cost about 3% of a core per hundred (31.6-32.3% at
 * 1,000 in the table).
 */
const IDLE_CPU_BOUND = 10;

interface Case {
  storage: string;
  topics: number;
  /** Broker flags of the storage. */
  args: (dir: string) => string[];
  /**
   * Bound on the re-election after the kill (detection, then at most one election timeout; CI load on top).
   * Measured at load 29: 2.2 s for 1,665 groups in memory, 2.8 s for 414 on disk. Before groups missing a replica
   * quiesced and new leaders counted their votes for check-quorum: 3.3-6.7 s for about 1,280 groups in memory, and on
   * disk 17-36 s for 908-1,650 on a loaded machine.
   */
  failoverMs: number;
}

const CASES: Case[] = [
  { storage: 'in memory', topics: 250, args: () => [], failoverMs: 10_000 },
  { storage: 'on disk', topics: 125, args: (dir) => ['--data', dir], failoverMs: 15_000 },
];

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
  /** Heap collections after a burst of group creations (HeapSettle). */
  heapSettles: number;
}

async function raftCounters(broker: BrokerProcess): Promise<RaftCounters> {
  const { body } = await get(`${broker.adminUrl}/metrics`, 10_000);
  const samples = parseMetrics(body);
  const stat = (name: string): number => sample(samples, 'relaymq_broker_stat', { stat: name }) ?? Number.NaN;
  return { ticks: stat('raftTicks'), messages: stat('raftMessagesSent'), groups: stat('raftGroups'), quiesced: stat('raftGroupsQuiesced'), heapSettles: stat('heapSettles') };
}

/** The partitions broker `id` hosts, with their leaders ([] when it does not answer within 10 s). */
async function partitionRows(cluster: ProcessCluster, id: string): Promise<PartitionRow[]> {
  try {
    return (await getJson<{ partitions: PartitionRow[] }>(`${cluster.get(id).adminUrl}/api/broker`, 10_000)).partitions;
  } catch {
    return [];
  }
}

/** Creates every topic with one `metadata` request (bulk creation; the answer: committed and assigned). */
async function createTopics(url: string, topics: readonly string[]): Promise<void> {
  const client = await RawClient.open(url);
  try {
    client.send({ type: 'metadata', id: 1, topics: [...topics] });
    const answer = await client.next('topics', 90_000);
    expect(answer.id).toBe(1);
    expect(answer.topics.map((t) => [t.topic, t.partitions])).toEqual(topics.map((topic) => [topic, PARTITIONS_PER_TOPIC]));
  } finally {
    client.close();
  }
}

describe.each(CASES)('$topics topics of 8 idle partitions $storage on three broker processes', ({ topics: topicCount, args, failoverMs }) => {
  const partitions = topicCount * PARTITIONS_PER_TOPIC;
  /** Groups per broker: every partition (R=3 on 3 brokers) and the metadata group. */
  const groups = partitions + 1;
  /** Topics of the publish and subscribe round trip, one message each on one of its partitions. */
  const roundTrip = [7, Math.floor(topicCount / 2), topicCount - 1].map((t, i) => ({ topic: `idle.t${t}`, key: `k${i}` }));

  it('quiesce (ticks and peer messages stop by the brokers own counters, CPU stays low), deliver a round trip, and re-elect every leader after a SIGKILL, then quiesce again', async () => {
    const startedAt = Date.now();
    const lap = (what: string): void => void process.stderr.write(`quiescence test: ${what} at ${((Date.now() - startedAt) / 1000).toFixed(1)} s\n`);
    const dirs = new Map<string, string>();
    for (const id of ['z1', 'z2', 'z3']) dirs.set(id, await newDir());
    const cluster = await ProcessCluster.start(['z1', 'z2', 'z3'], (id) => [...args(dirs.get(id) as string), '--partitions', String(PARTITIONS_PER_TOPIC)], 30_000);
    const brokers = [...cluster.brokers.values()];
    const topics = Array.from({ length: topicCount }, (_, i) => `idle.t${i}`);
    await createTopics(brokers[0]?.url as string, topics);
    lap(`${partitions} partitions created`);

    // Every group of every broker quiesces once the elections and creation are over.
    await waitForAsync(
      async () => (await Promise.all(brokers.map(raftCounters))).every((c) => c.groups === groups && c.quiesced === groups),
      `all ${groups} groups quiesced on every broker`,
      QUIESCE_TIMEOUT_MS,
    );
    lap('every group quiesced');
    // The creation burst's garbage is collected once the groups settle (5 s after the last creation), before the idle window.
    await waitForAsync(async () => (await Promise.all(brokers.map(raftCounters))).every((c) => c.heapSettles >= 1), 'a heap collection after the creation burst on every broker', 30_000);
    lap('heap settled');
    const before = await Promise.all(brokers.map(raftCounters));
    const cpuBefore = brokers.map((b) => b.cpuSeconds());
    const windowStart = performance.now();
    // Three seconds of an idle cluster: 60 ticks of the broker clock, 60 group ticks per group before quiescence.
    await new Promise((resolve) => setTimeout(resolve, IDLE_WINDOW_MS));
    const cpuAfter = brokers.map((b) => b.cpuSeconds());
    const windowSeconds = (performance.now() - windowStart) / 1000;
    const after = await Promise.all(brokers.map(raftCounters));
    // Bounded, not zero: an odd wake (a gossip suspicion on a loaded machine, a metadata write) ticks a group or two
    // and re-quiesces it (CI saw 19 messages in the window once). Unquiesced, the window holds 60 ticks and about 120
    // messages per group, so the bound (a tenth of a tick or message per group) is 0.17% of that.
    const idleBound = Math.ceil(groups / 10);
    for (const [i, c] of after.entries()) {
      const b = before[i] as RaftCounters;
      const id = brokers[i]?.id;
      const cpuPercent = (100 * ((cpuAfter[i] ?? Number.NaN) - (cpuBefore[i] ?? Number.NaN))) / windowSeconds;
      process.stderr.write(
        `quiescence test: broker ${id} idle ${windowSeconds.toFixed(1)} s: ${cpuPercent.toFixed(1)}% CPU, ${c.ticks - b.ticks} group ticks, ${c.messages - b.messages} raft messages, ${c.quiesced}/${groups} quiesced\n`,
      );
      expect(c.quiesced, `broker ${id}: groups quiesced`).toBeGreaterThanOrEqual(groups - 2);
      expect(c.ticks - b.ticks, `broker ${id}: group ticks while idle`).toBeLessThanOrEqual(idleBound);
      expect(c.messages - b.messages, `broker ${id}: raft messages while idle`).toBeLessThanOrEqual(idleBound);
      expect(cpuPercent, `broker ${id}: idle CPU, % of a core`).toBeLessThanOrEqual(IDLE_CPU_BOUND);
    }

    // A round trip on a few partitions: each publish wakes its group, is acknowledged and reaches the subscriber.
    const client = await fixture.client(brokers.map((b) => b.url));
    const received: Array<[string, number, number, string]> = [];
    for (const { topic } of roundTrip) {
      await client.subscribe<string>(topic, (m) => void received.push([m.topic, m.partition, m.offset, m.data]), { from: 'earliest' });
    }
    const receipts = await Promise.all(roundTrip.map(({ topic, key }) => client.publish(topic, `wake ${topic}`, { key })));
    expect(receipts.map((r) => r.offset)).toEqual([0, 0, 0]);
    await waitFor(() => received.length === roundTrip.length, 'the round trip messages', 30_000);
    expect(received.sort((a, b) => a[0].localeCompare(b[0]))).toEqual(
      roundTrip.map(({ topic }, i) => [topic, receipts[i]?.partition, 0, `wake ${topic}`]).sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    );
    lap('round trip delivered');
    await waitForAsync(
      async () => (await Promise.all(brokers.map(raftCounters))).every((c) => c.quiesced === groups),
      'the published groups to quiesce again',
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
        return reports.every((rows) => rows.length === partitions && rows.every((row) => row.leader !== null && survivors.includes(row.leader)));
      },
      `every partition led by ${survivors.join(' or ')} after ${victim} (leading ${victimLeads}) was killed`,
      failoverMs,
    ).catch((err: unknown) => {
      throw new Error(`${err instanceof Error ? err.message : String(err)}; last seen: ${lastSeen}`);
    });
    const releadMs = Date.now() - killedAt;
    process.stderr.write(`quiescence test: ${victimLeads} partitions led by ${victim} re-led in ${releadMs} ms\n`);
    // The wait checks its deadline between reads only: a read that began in time and answered late is caught here.
    expect(releadMs).toBeLessThanOrEqual(failoverMs);

    // Then the survivors go quiet again: every group, a third of them now missing their replica on the dead broker,
    // quiesces without waiting for it (before, those groups heartbeated until it came back: at 10,000 partitions
    // enough traffic to delay the survivors' own heartbeats past the election timeout, and leaders stepped down).
    const survivorBrokers = survivors.map((id) => cluster.get(id));
    await waitForAsync(
      async () => (await Promise.all(survivorBrokers.map(raftCounters))).every((c) => c.quiesced === groups),
      `all ${groups} groups quiesced again on ${survivors.join(' and ')} with ${victim} dead`,
      60_000,
    );
    lap('every group quiesced again after the kill');
  }, 300_000);
});
