import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import type { RelayClient } from '@relaymq/sdk';
import { Fixture } from './support/cluster.js';
import { faultableCluster } from './support/faultable.js';
import { waitFor, within } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

const TOPIC = 'slow.orders';
const PARTITIONS = 6;
const WINDOW = 16;

const groups = (b: Broker): Array<{ group: string; leader: string | null }> => (b.engine as unknown as { groupStatus(): Array<{ group: string; leader: string | null }> }).groupStatus();

/** A keyed producer with a window of publishes in flight (as the chaos suite's): the time of every ack. */
function produce(client: RelayClient, until: () => boolean): { acks: number[]; done: Promise<void> } {
  const acks: number[] = [];
  let n = 0;
  const lane = async (): Promise<void> => {
    for (let i = 0; !until() && i < 1_000_000; i++) {
      const key = `k${(n++ * 7919) % 64}`;
      await within(client.publish(TOPIC, { n }, { key }), `publish ${n}`, 30_000);
      acks.push(Date.now());
    }
  };
  return { acks, done: Promise.all(Array.from({ length: WINDOW }, lane)).then(() => {}) };
}

/**
 * Latency on every link of the broker a producer publishes through (its
 * client link and its peer links, 380 ms each way: about the worst the chaos
 * suite injects) slows that broker's answers but stops none of them. The
 * client must not judge the slow broker dead (chaos 3/3 seed 906: a probe
 * answered after 700 ms was taken for a stopped broker, and the failover cost
 * the producer 2.3 s), and the producer must keep getting acknowledgements.
 */
describe('latency on every link of one broker', () => {
  it('a producer publishing through that broker waits well under 3 s for an acknowledgement', async () => {
    const ids = ['l1', 'l2', 'l3'];
    const { brokers, urls, linksOf } = await faultableCluster(fixture, ids, { defaultPartitions: PARTITIONS, heartbeatMs: 5000 });
    await waitFor(() => brokers.every((b) => groups(b).find((g) => g.group === 'meta')?.leader != null), 'every broker to know the metadata leader', 15_000);
    const client = await fixture.client(urls, { reconnect: { initialDelayMs: 50, maxDelayMs: 1000 }, publishTimeoutMs: 20_000, producerId: 'p' });
    const moves: string[] = [];
    const t0 = Date.now();
    client.on('failover', (e) => moves.push(`${Date.now() - t0} failover ${e.from.id}->${e.to.id}: ${e.reason.message}`));
    client.on('disconnected', (e) => moves.push(`${Date.now() - t0} disconnected ${e.broker.id}: ${e.reason.message}`));
    client.on('connected', (e) => moves.push(`${Date.now() - t0} connected ${e.broker.id}`));
    let stop = false;
    const producer = produce(client, () => stop);
    await waitFor(() => producer.acks.length > 500, 'the producer to get going', 20_000);
    const active = client.stats().activeBroker?.id as string;
    moves.push(`active ${active}; leaders ${brokers.map((b) => `${b.id}:${groups(b).filter((g) => g.leader === b.id).map((g) => g.group).join(',')}`).join(' ')}`);
    const slow = linksOf(active);
    const FAULT_MS = 3500;
    const faultAt = Date.now();
    moves.push(`${faultAt - t0} latency 380 ms on every link of ${active}`);
    slow.forEach((l) => l.delay(380));
    await new Promise((resolve) => setTimeout(resolve, FAULT_MS));
    slow.forEach((l) => l.heal());
    moves.push(`${Date.now() - t0} healed`);
    await waitFor(() => producer.acks.length > 0 && producer.acks[producer.acks.length - 1]! > Date.now() - 200, 'acks after the heal', 20_000);
    stop = true;
    await producer.done;
    let longest = 0;
    let previous = faultAt;
    for (const t of producer.acks.filter((a) => a > faultAt)) {
      if (t - previous > 300) moves.push(`${previous - t0} .. ${t - t0}: no ack for ${t - previous} ms`);
      longest = Math.max(longest, t - previous);
      previous = t;
    }
    console.log(`latency-routing: longest wait ${longest} ms\n${moves.sort((a, b) => parseInt(a) - parseInt(b)).join('\n')}`);
    expect(longest).toBeLessThan(3000); // the issue's goal for one fault at a time
  }, 120_000);
});
