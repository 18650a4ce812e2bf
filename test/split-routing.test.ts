import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import { decodePayload } from '@relaymq/sdk/protocol';
import { Fixture, readInMemory } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { startProxy, type TcpProxy } from './support/proxy.js';
import { waitFor, within } from './support/wait.js';

/**
 * A majority/minority split at 5 brokers, replication factor 3. The chaos
 * suite found producers waiting about a whole split (3–4.5 s) for an
 * acknowledgement: a 2-broker minority can hold 2 of a partition's 3
 * replicas, so the partition's leader ends up there, while the producer's
 * brokers are all on the majority side. They cannot reach that leader and
 * each answered `NO_QUORUM` only at the end of its 2 s request timeout; the
 * SDK then failed over to another broker of the same side, never to the
 * other side, though its links there were open. See docs/reliability.md,
 * "The 3 s goal at 5/3: what a split gap is made of".
 */

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

const TOPIC = 'split.orders';

/**
 * Five brokers, every peer link (each direction) through its own proxy, so a
 * split cuts exactly the links between the sides and no client link.
 */
async function splittableCluster(): Promise<{ brokers: Broker[]; split: (minority: string[]) => void; heal: () => void }> {
  const ids = ['s1', 's2', 's3', 's4', 's5'];
  const peerPorts = await freePorts(ids.length);
  const links = new Map<string, TcpProxy>(); // `${from}->${to}`
  for (const [i, from] of ids.entries()) {
    for (const [j, to] of ids.entries()) {
      if (i === j) continue;
      const proxy = await startProxy(peerPorts[j] as number);
      fixture.defer(() => proxy.close());
      links.set(`${from}->${to}`, proxy);
    }
  }
  const brokers = await Promise.all(
    ids.map((id, i) =>
      fixture.broker({
        id,
        peerPort: peerPorts[i],
        peers: ids.flatMap((other) => (other === id ? [] : [`${other}@127.0.0.1:${(links.get(`${id}->${other}`) as TcpProxy).port}`])),
        replicationFactor: 3,
        defaultPartitions: 1,
      }),
    ),
  );
  const crossing = (minority: string[]): TcpProxy[] =>
    [...links].filter(([name]) => {
      const [from, to] = name.split('->') as [string, string];
      return minority.includes(from) !== minority.includes(to);
    }).map(([, proxy]) => proxy);
  let blocked: TcpProxy[] = [];
  return {
    brokers,
    split: (minority) => {
      blocked = crossing(minority);
      for (const proxy of blocked) proxy.block();
    },
    heal: () => {
      for (const proxy of blocked) proxy.unblock();
      blocked = [];
    },
  };
}

interface GroupRow {
  group: string;
  role: string;
  leader: string | null;
  voters: string[];
}
const groups = (b: Broker): GroupRow[] => (b.engine as unknown as { groupStatus(): GroupRow[] }).groupStatus();
const partitionRow = (b: Broker): GroupRow | undefined => groups(b).find((g) => g.group !== 'meta' && g.group.includes(TOPIC));

/**
 * Splits off the two replicas of the partition that do not lead it while a
 * producer seeded with one broker (`seed`: one hosting no replica, or the old
 * leader itself) publishes one message at a time; checks every wait, the
 * failovers, and every replica's contents after the heal.
 */
async function publishAcrossSplit(seed: 'outsider' | 'old leader'): Promise<void> {
  const { brokers, split, heal } = await splittableCluster();
  await waitFor(() => brokers.every((b) => groups(b).find((g) => g.group === 'meta')?.leader != null), 'every broker to know the metadata leader', 15_000);
  const byId = new Map(brokers.map((b) => [b.id, b]));

  // The partition's replicas, and its leader once they agree on one.
  const seeder = await fixture.client([(brokers[0] as Broker).url]);
  await within(seeder.publish(TOPIC, 'create'), 'the first publish');
  await seeder.close();
  let replicas: string[] = [];
  let leader = '';
  await waitFor(
    () => {
      const rows = brokers.map(partitionRow).filter((r): r is GroupRow => r !== undefined);
      const leaders = new Set(rows.map((r) => r.leader));
      replicas = rows[0]?.voters ?? [];
      leader = rows[0]?.leader ?? '';
      return rows.length === 3 && leaders.size === 1 && leader !== '';
    },
    'the three replicas to agree on a leader',
    15_000,
  );
  // The minority: the two replicas that do not lead. They elect a new leader among themselves; the old leader, the
  // third replica, and the two brokers hosting none are the majority — where the producer's brokers are.
  const minority = replicas.filter((r) => r !== leader);
  const outsiders = brokers.filter((b) => !replicas.includes(b.id)).map((b) => b.id);
  expect(minority).toHaveLength(2);
  expect(outsiders).toHaveLength(2);

  // A chaos-like producer: one ping a second. Seeded with one broker; discovery lets it pool the leader.
  const seedId = seed === 'outsider' ? (outsiders[0] as string) : leader;
  const producer = await fixture.client([(byId.get(seedId) as Broker).url], { pingIntervalMs: 1000, publishTimeoutMs: 20_000 });
  const failovers: string[] = [];
  producer.on('failover', ({ from, to, reason }) => failovers.push(`${from.id}->${to.id} ${reason.code}`));
  for (let i = 0; i < 30; i++) await within(producer.publish(TOPIC, { n: i }, { key: 'k' }), `publish ${i} before the split`);
  // Settled: the old leader pooled, publishes go straight to it.
  await waitFor(() => producer.stats().connectedBrokers.some((b) => b.id === leader), 'the producer to pool the leader', 10_000);
  for (let i = 30; i < 40; i++) await within(producer.publish(TOPIC, { n: i }, { key: 'k' }), `publish ${i} before the split`);

  split(minority);
  const splitAt = Date.now();
  // Healed after 6 s whatever happens, so a producer that never gets across waits the whole split, not forever.
  const healTimer = setTimeout(heal, 6000);
  fixture.defer(async () => clearTimeout(healTimer));
  const waits: number[] = [];
  let n = 40;
  // One publish at a time while the split lasts: every wait is a wait for the next acknowledgement.
  while (Date.now() - splitAt < 6000) {
    const sent = Date.now();
    await within(producer.publish(TOPIC, { n }, { key: 'k' }), `publish ${n} during the split`, 20_000);
    waits.push(Date.now() - sent);
    n++;
  }
  clearTimeout(healTimer);
  heal();
  const longest = Math.max(...waits);
  // Visible in the test output: the figure docs/reliability.md reports.
  console.log(`split-routing (seeded with the ${seed}): ${waits.length} publishes acknowledged during the split; longest wait ${longest} ms; failovers: ${failovers.join(', ') || 'none'}`);
  // The minority elects its leader within about an election timeout or two; the producer must get there.
  expect(longest).toBeLessThan(3000);
  // No failover on a refusal (before: NO_QUORUM, from one majority broker to another). A move off a broker that
  // says it is not ready is the readiness rule, not routing: when the metadata group's leader was among the two
  // split off, the majority's brokers are briefly not ready until they elect another.
  expect(failovers.filter((f) => !f.endsWith('NOT_READY'))).toEqual([]);

  // Nothing lost, nothing stored twice, in order: every replica ends with exactly 0..n-1 after 'create'.
  await waitFor(
    () => replicas.every((id) => readInMemory((byId.get(id) as Broker).engine, TOPIC, 0).length === n + 1),
    'every replica to hold every message once after the heal',
    15_000,
  );
  for (const id of replicas) {
    const stored = readInMemory((byId.get(id) as Broker).engine, TOPIC, 0)
      .slice(1)
      .map((m) => (decodePayload(m.data) as { n: number }).n);
    expect(stored).toEqual(Array.from({ length: n }, (_, i) => i));
  }
  const acknowledged = producer.stats().publish;
  expect(acknowledged.acknowledged).toBe(n);
}

describe('a majority/minority split at 5 brokers, replication factor 3', () => {
  it("a producer whose brokers are all on the side without the partition's new leader reaches it within 3 s, without failing over on a refusal", () => publishAcrossSplit('outsider'), 90_000);

  // Chaos 5/3 seed 361 (2026-12-06): the producer was on the partition's old leader when a split put its other two
  // replicas on the far side; it failed over twice within the majority and waited 4.05 s.
  it('a producer on the old leader itself gets across within 3 s too, without failing over on a refusal', () => publishAcrossSplit('old leader'), 90_000);
});
