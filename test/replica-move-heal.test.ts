/**
 * Self-healing and rebalancing, in one process over real sockets, on disk.
 * A broker of a four-broker cluster goes away for good: once the (shortened)
 * replacement timeout passes, the metadata leader re-creates its replicas on
 * the others, so every partition is back at three replicas, and it leaves
 * the metadata group; publishing goes on. Then a fifth broker joins and
 * automatic rebalancing (the default) spreads replicas evenly over it
 * (counts differ by at most one). With `autoRebalance: false` a broker that
 * joins gets nothing until an operator asks for a rebalance.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker, BrokerOptions } from '@relaymq/broker';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { tempDirs } from './support/temp-dirs.js';
import { waitFor, within } from './support/wait.js';

const fixture = new Fixture();
const tempDir = tempDirs('relaymq-replica-heal-');
const lines: string[] = [];
afterEach(async (context) => {
  if (context.task.result?.state === 'fail') console.log(lines.filter((l) => /move|replac|drain|rebalanc|decommission/.test(l)).slice(-80).join('\n'));
  lines.length = 0;
  await fixture.cleanup();
});

interface Assignment {
  replicas: string[];
  learners?: string[];
}
interface HealEngine {
  createTopic(topic: string, settings: { partitions?: number; replicationFactor?: number }): Promise<unknown>;
  appliedMetadata(): { topics: Array<{ topic: string; partitions: Assignment[] }>; moves?: unknown[] };
  metadataMembership(): { voters: string[]; learners: string[]; leader: string | null };
  rebalance(): Promise<void>;
  partitionsLed(): number;
  replicaMoves(): { rebalancing: boolean };
}
const engineOf = (b: Broker): HealEngine => b.engine as unknown as HealEngine;
const partitionsOf = (b: Broker, topic: string): Assignment[] => engineOf(b).appliedMetadata().topics.find((t) => t.topic === topic)?.partitions ?? [];
const counts = (assignments: Assignment[], ids: string[]): number[] => ids.map((id) => assignments.filter((a) => a.replicas.includes(id)).length);

/** Brokers `ids` on disk (R=3) with `options`: `start(i, peers)` starts the i-th, `address(i)` is its peer address. */
async function brokersOnDisk(ids: readonly string[], options: BrokerOptions): Promise<{ start(i: number, peers: string[]): Promise<Broker>; address(i: number): string }> {
  const ports = await freePorts(ids.length);
  return {
    address: (i) => `${ids[i]}@127.0.0.1:${ports[i]}`,
    start: async (i, peers) =>
      fixture.broker({
        ...options,
        id: ids[i] as string,
        peerPort: ports[i] as number,
        peers,
        dataDir: await tempDir(),
        replicationFactor: 3,
        log: (level, message, fields) => void lines.push(`${ids[i]} ${level} ${message} ${JSON.stringify(fields ?? {})}`),
      }),
  };
}

describe('self-healing and rebalancing', () => {
  it('re-creates the replicas of a broker gone past the replacement timeout, then spreads replicas evenly over a broker that joins, by itself', async () => {
    // replacementTimeoutMs shortened from 15 minutes; long enough that no broker is replaced while the cluster starts.
    const { start, address } = await brokersOnDisk(['h1', 'h2', 'h3', 'h4', 'h5'], { defaultPartitions: 4, replacementTimeoutMs: 5000 });
    const four = await Promise.all([0, 1, 2, 3].map((i) => start(i, [0, 1, 2, 3].filter((j) => j !== i).map(address))));
    const [h1] = four as [Broker, Broker, Broker, Broker];
    await within(engineOf(h1).createTopic('heal', { partitions: 8, replicationFactor: 3 }), 'creating heal');
    await waitFor(() => four.every((b) => partitionsOf(b, 'heal').length === 8), 'every broker to know the topic');
    const client = await fixture.client([h1.url]);
    for (let i = 0; i < 40; i++) await within(client.publish('heal', `m${i}`, { key: `k${i}`, ack: 'quorum' }), 'a publish before');

    // h4 goes away for good (its process would be gone, its disk lost).
    const h4 = four[3] as Broker;
    await h4.close();
    const left = four.slice(0, 3);
    await waitFor(
      () => left.every((b) => partitionsOf(b, 'heal').every((a) => a.replicas.length === 3 && !a.replicas.includes('h4') && a.learners === undefined)),
      'every partition back at three replicas without h4',
      90_000,
    );
    await waitFor(() => left.every((b) => !engineOf(b).metadataMembership().voters.includes('h4') && !engineOf(b).metadataMembership().learners.includes('h4')), 'h4 to leave the metadata group');
    expect(lines.some((l) => l.includes('replacing a broker unreachable past the replacement timeout') && l.includes('"broker":"h4"'))).toBe(true);
    for (let i = 40; i < 60; i++) await within(client.publish('heal', `m${i}`, { key: `k${i}`, ack: 'quorum' }), 'a publish after the healing');

    // h5 joins; nobody asks, yet replicas move onto it until counts differ by at most one (autoRebalance is on by default).
    const h5 = await start(4, [0, 1, 2].map(address));
    await waitFor(() => engineOf(h1).metadataMembership().learners.includes('h5') || engineOf(h1).metadataMembership().voters.includes('h5'), 'h5 to be admitted', 30_000);
    const members = ['h1', 'h2', 'h3', 'h5'];
    await waitFor(
      () => {
        const c = counts(partitionsOf(h5, 'heal'), members);
        // All 24 replicas counted (h5 knows the topic), spread within one, no move left.
        return c.reduce((a, b) => a + b, 0) === 24 && Math.max(...c) - Math.min(...c) <= 1 && (engineOf(h5).appliedMetadata().moves ?? []).length === 0;
      },
      'replica counts to even out over h1, h2, h3 and h5',
      90_000,
    );
    expect(counts(partitionsOf(h5, 'heal'), members)).toEqual([6, 6, 6, 6]);
    // Then leaderships: 8 partitions over four brokers, 2 each.
    const serving = [h1, left[1] as Broker, left[2] as Broker, h5];
    // A leadership can move again later (an election on a loaded machine): the operator's answer is to ask (again).
    let askedAt = Date.now();
    await waitFor(
      () => {
        if (serving.every((b) => engineOf(b).partitionsLed() === 2) && !engineOf(h5).replicaMoves().rebalancing) return true;
        if (Date.now() - askedAt > 15_000) {
          askedAt = Date.now();
          engineOf(h1).rebalance().catch(() => {});
        }
        return false;
      },
      'leaderships to even out (2 each)',
      90_000,
    );
    for (let i = 60; i < 80; i++) await within(client.publish('heal', `m${i}`, { key: `k${i}`, ack: 'quorum' }), 'a publish after the rebalance');
    expect(lines.some((l) => l.includes('replica move started') && l.includes('"to":"h5"'))).toBe(true);
  }, 240_000);

  it('with autoRebalance false, a broker that joins gets no replica until an operator asks for a rebalance', async () => {
    const ids = ['o1', 'o2', 'o3', 'o4'];
    const { start, address } = await brokersOnDisk(ids, { autoRebalance: false });
    const three = await Promise.all([0, 1, 2].map((i) => start(i, [0, 1, 2].filter((j) => j !== i).map(address))));
    const o1 = three[0] as Broker;
    await within(engineOf(o1).createTopic('still', { partitions: 6, replicationFactor: 3 }), 'creating still');
    await waitFor(() => three.every((b) => partitionsOf(b, 'still').length === 6), 'every broker to know the topic');
    const o4 = await start(3, [0, 1, 2].map(address));
    await waitFor(() => engineOf(o1).metadataMembership().learners.includes('o4'), 'o4 to be admitted', 30_000);
    await waitFor(() => partitionsOf(o4, 'still').length === 6, 'o4 to know the topic');
    // Counts 6, 6, 6, 0 differ by more than one: automatic rebalancing would start moves at the metadata leader's next
    // maintenance tick (every 250 ms). Twelve ticks later there is still none, and nothing says it is rebalancing.
    const until = Date.now() + 3000;
    await waitFor(() => Date.now() >= until || (engineOf(o4).appliedMetadata().moves ?? []).length > 0, 'three seconds of maintenance ticks', 10_000);
    expect(engineOf(o4).appliedMetadata().moves ?? []).toEqual([]);
    expect(counts(partitionsOf(o4, 'still'), ids)).toEqual([6, 6, 6, 0]);
    expect([o1, o4].map((b) => engineOf(b).replicaMoves().rebalancing)).toEqual([false, false]);
    expect(lines.some((l) => l.includes('replica move started'))).toBe(false);

    // Asked, the same cluster spreads the 18 replicas over the four brokers.
    await within(engineOf(o1).rebalance(), 'asking for a rebalance');
    await waitFor(
      () => {
        const c = counts(partitionsOf(o4, 'still'), ids);
        return Math.max(...c) - Math.min(...c) <= 1 && (engineOf(o4).appliedMetadata().moves ?? []).length === 0;
      },
      'replica counts to even out over o1 to o4 once asked',
      90_000,
    );
    expect([...counts(partitionsOf(o4, 'still'), ids)].sort()).toEqual([4, 4, 5, 5]);
  }, 150_000);
});
