import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import { Fixture, readInMemory } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { startProxy, type TcpProxy } from './support/proxy.js';
import { waitFor } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

/**
 * Three brokers whose peer links all pass through a proxy in front of each
 * broker's peer port; blocking a broker's proxy cuts it off from the others.
 */
async function partitionableCluster(): Promise<{ brokers: Broker[]; proxies: TcpProxy[] }> {
  const ids = ['n1', 'n2', 'n3'];
  const peerPorts = await freePorts(3);
  const proxies = await Promise.all(peerPorts.map((port) => startProxy(port)));
  for (const proxy of proxies) fixture.defer(() => proxy.close());
  const brokers = await Promise.all(
    ids.map((id, i) =>
      fixture.broker({
        id,
        peerPort: peerPorts[i],
        peers: ids.flatMap((other, j) => (j === i ? [] : [`${other}@127.0.0.1:${(proxies[j] as TcpProxy).port}`])),
      }),
    ),
  );
  return { brokers, proxies };
}

function log(broker: Broker, topic: string): string[] {
  return readInMemory(broker.engine, topic, 0).map((m) => Buffer.from(m.data).toString('hex'));
}

describe('a network partition between brokers', () => {
  it('the majority keeps accepting writes, the minority refuses them, and after healing every replica has the same log', async () => {
    const { brokers, proxies } = await partitionableCluster();
    const [n1, n2, n3] = brokers as [Broker, Broker, Broker];
    const majority = await fixture.client([n1.url, n2.url], { poolSize: 1, discovery: false });
    const minority = await fixture.client([n3.url], { poolSize: 1, discovery: false, publishTimeoutMs: 4000 });
    for (let i = 0; i < 20; i++) await majority.publish('split', i);
    await waitFor(() => brokers.every((b) => b.engine.bounds('split', 0).end === 20), 'all replicas to hold 20');

    (proxies[2] as TcpProxy).block(); // n3 is alone now
    // Handled from the start: the majority's loop below may outlast the minority's publish timeout.
    const refused = expect(minority.publish('split', 'from the minority')).rejects.toMatchObject({ code: 'TIMEOUT' });
    for (let i = 20; i < 40; i++) await majority.publish('split', i);
    // The minority cannot commit: its client hears NO_QUORUM (n3 finds no leader), NOT_READY (n3 lost the
    // metadata leader too) or TIMEOUT (n3 still led and could not commit) and keeps the message to try
    // elsewhere; with no other broker to go to, the publish times out without being stored.
    await refused;
    const failovers = minority.stats().failoversByReason;
    expect((failovers.NO_QUORUM ?? 0) + (failovers.NOT_READY ?? 0) + (failovers.TIMEOUT ?? 0)).toBeGreaterThan(0);
    expect(n3.engine.bounds('split', 0).end).toBe(20);
    expect(n1.engine.bounds('split', 0).end).toBe(40);

    (proxies[2] as TcpProxy).unblock();
    await waitFor(() => n3.engine.bounds('split', 0).end >= 40, 'n3 to catch up after healing', 15_000);
    // The minority's message may be stored once it reaches the majority; whatever is committed is identical everywhere.
    await waitFor(() => log(n1, 'split').length === log(n3, 'split').length && log(n2, 'split').length === log(n1, 'split').length, 'equal lengths');
    expect(log(n2, 'split')).toEqual(log(n1, 'split'));
    expect(log(n3, 'split')).toEqual(log(n1, 'split'));
  }, 30_000);
});

describe('a partition leader cut off from its followers', () => {
  it('answers a waiting publish TIMEOUT (outcome unknown) as soon as check-quorum steps it down, not after the whole request timeout', async () => {
    const { brokers, proxies } = await partitionableCluster();
    const client = await fixture.client(
      brokers.map((b) => b.url),
      { poolSize: 1, discovery: false },
    );
    await client.publish('stepdown', 'warm');
    await waitFor(() => brokers.some((b) => b.engine.leaderOf?.('stepdown', 0) === b.id), 'a leader of stepdown/0');
    const index = brokers.findIndex((b) => b.engine.leaderOf?.('stepdown', 0) === b.id);
    const leader = brokers[index] as Broker;

    // Every peer link cut (a broker dials the others through their proxies): the leader can no longer commit.
    for (const proxy of proxies) proxy.block();
    fixture.defer(async () => proxies.forEach((proxy) => proxy.unblock())); // before the brokers' shutdown, whatever fails
    const started = Date.now();
    const batch = { producerId: 'cut-off', firstSeq: 0, messages: [{ data: new Uint8Array([1]) }] };
    const error = await leader.engine.append('stepdown', 0, batch, 'quorum').then(
      () => undefined,
      (err: unknown) => err,
    );
    const elapsedMs = Date.now() - started;
    // Outcome unknown (the client sends the same producer and seq again elsewhere), never a refusal for good.
    expect(error).toMatchObject({ code: 'TIMEOUT' });
    // Within about an election timeout (500 ms, check-quorum steps down after one to two), not the request timeout (2 s).
    expect(elapsedMs).toBeLessThan(1700);
  }, 30_000);
});
