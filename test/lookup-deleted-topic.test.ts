/**
 * A leader lookup never creates a topic. A `metadata` request creates missing
 * topics (auto-create, for publishers), and a subscription looks its topic's
 * leaders up with one (at once, after a failover, and every 10 s). A topic
 * deleted while a subscription moved to its leader (the leader answered the
 * subscribe after it had applied the deletion, so the subscription never
 * heard of it) came back, created by the next lookup, and the subscription
 * went on waiting at its old offsets in the new, empty topic. Now the lookup
 * asks with `create: false`; the subscription ends with an `INVALID_TOPIC`
 * error event, as one the broker tells of the deletion does.
 *
 * Three brokers in this process (replication factor 3, one partition), each
 * behind a TCP proxy it advertises, over real sockets.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import { RelayError, type ErrorContext } from '@relaymq/sdk';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { startProxy, type TcpProxy } from './support/proxy.js';
import { RawClient } from './support/raw-client.js';
import { waitFor } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

const TOPIC = 'lookup.deleted';

interface LookupEngine {
  groupStatus(): Array<{ group: string; leader: string | null }>;
  partitionCount(topic: string): number | undefined;
  deleteTopic(topic: string): Promise<unknown>;
}
const engineOf = (b: Broker): LookupEngine => b.engine as unknown as LookupEngine;
/** Whom a broker's own Raft group says leads the topic's partition 0 (`''` none yet). */
const leaderSeenBy = (b: Broker): string => engineOf(b).groupStatus().find((g) => g.group === `p/${TOPIC}/0`)?.leader ?? '';
const existsOn = (brokers: Broker[]): string[] => brokers.filter((b) => engineOf(b).partitionCount(TOPIC) !== undefined).map((b) => b.id);

/** Three brokers, each advertising (and reached through) its own proxy. */
async function proxiedCluster(): Promise<{ brokers: Broker[]; proxyOf: (b: Broker) => TcpProxy }> {
  const ids = ['k1', 'k2', 'k3'];
  const [peerPorts, clientPorts] = [await freePorts(3), await freePorts(3)];
  const proxies = await Promise.all(clientPorts.map((port) => startProxy(port)));
  fixture.defer(async () => void (await Promise.all(proxies.map((p) => p.close()))));
  const peers = ids.map((id, i) => `${id}@127.0.0.1:${peerPorts[i]}`);
  const brokers = await Promise.all(
    ids.map((id, i) =>
      fixture.broker({
        id,
        port: clientPorts[i],
        advertisedUrl: (proxies[i] as TcpProxy).url,
        peerPort: peerPorts[i],
        peers: peers.filter((_, j) => j !== i),
        replicationFactor: 3,
        defaultPartitions: 1,
        // Pings through a proxy holding requests back go unanswered for a while: no silent-client cut meanwhile.
        heartbeatMs: 5000,
      }),
    ),
  );
  return { brokers, proxyOf: (b) => proxies[brokers.indexOf(b)] as TcpProxy };
}

/**
 * m0–m2 published on a proxied 3-broker cluster, then a subscriber seeded with a follower, with a link to every
 * broker (the leader's is open before the subscription moves there).
 */
async function movingSetup() {
  const { brokers, proxyOf } = await proxiedCluster();
  const publisher = await fixture.client([proxyOf(brokers[0] as Broker).url]);
  for (let i = 0; i < 3; i++) await publisher.publish(TOPIC, `m${i}`);
  await waitFor(() => brokers.every((b) => leaderSeenBy(b) !== '' && leaderSeenBy(b) === leaderSeenBy(brokers[0] as Broker)), 'one leader every replica knows', 20_000);
  const leader = brokers.find((b) => b.id === leaderSeenBy(b)) as Broker;
  const follower = brokers.find((b) => b !== leader) as Broker;
  const subscriber = await fixture.client([proxyOf(follower).url], { poolSize: 3 });
  await waitFor(() => subscriber.stats().connectedBrokers.length === 3, 'links to the 3 brokers', 10_000);
  expect(subscriber.stats().activeBroker?.id).toBe(follower.id);
  return { brokers, proxyOf, publisher, leader, follower, subscriber };
}

describe('leader lookups and deleted topics', () => {
  it('a metadata request with create: false answers INVALID_TOPIC for a missing topic and creates nothing; create must be a boolean', async () => {
    const broker = await fixture.broker({ id: 'solo' });
    const raw = await RawClient.open(broker.url);
    try {
      raw.send({ type: 'metadata', id: 1, topics: ['never.made'], create: false });
      expect(await raw.next('error')).toMatchObject({ id: 1, code: 'INVALID_TOPIC' });
      expect(broker.engine.partitionCount('never.made')).toBeUndefined();
      // An existing topic is answered as before.
      raw.send({ type: 'metadata', id: 2, topics: ['made'] });
      expect((await raw.next('topics')).topics).toEqual([expect.objectContaining({ topic: 'made' })]);
      raw.send({ type: 'metadata', id: 3, topics: ['made'], create: false });
      expect((await raw.next('topics')).topics).toEqual([expect.objectContaining({ topic: 'made' })]);
      // Hostile input: a flag that is not a boolean is a protocol error (the connection closes).
      raw.send({ type: 'metadata', id: 4, topics: ['never.made'], create: 'no' } as unknown as Parameters<RawClient['send']>[0]);
      expect((await raw.waitClosed()).reason).toMatch(/PROTOCOL_ERROR|create/);
      expect(broker.engine.partitionCount('never.made')).toBeUndefined();
    } finally {
      raw.close();
    }
  });

  it('a topic deleted while its subscription moves to the leader is not created again by the lookup; the subscription ends with INVALID_TOPIC', async () => {
    const { brokers, proxyOf, leader, follower, subscriber } = await movingSetup();
    const errors: Array<{ code: string | undefined; context: ErrorContext | undefined }> = [];
    subscriber.on('error', (error, context) => void errors.push({ code: error instanceof RelayError ? error.code : undefined, context }));
    const received: string[] = [];

    // The leader's link is slow: the move's subscribe reaches it only after the deletion.
    proxyOf(leader).holdRequests();
    const subscription = await subscriber.subscribe<string>(TOPIC, (m) => void received.push(m.data), { from: 'earliest' });
    await waitFor(() => received.length === 3, 'the 3 messages from the follower', 10_000);
    // The lookup named the leader: the follower was left (it holds the subscription no more), the leader not yet reached.
    await waitFor(() => follower.stats().subscriptions === 0, 'the subscription to leave the follower', 10_000);
    await engineOf(follower).deleteTopic(TOPIC);
    await waitFor(() => existsOn(brokers).length === 0, 'every broker to apply the deletion', 10_000);
    proxyOf(leader).releaseRequests();
    await waitFor(() => subscriber.stats().subscribe.servedBy[0]?.broker === leader.id || errors.length > 0, 'the leader to answer the subscribe', 10_000);

    // Its next lookup (the 10 s refresh) finds the topic gone.
    await waitFor(() => errors.length > 0 || existsOn(brokers).length > 0, 'the lookup after the deletion', 20_000);
    await new Promise((resolve) => setTimeout(resolve, 300)); // a topic created again would reach the brokers' metadata meanwhile
    expect(existsOn(brokers), 'brokers where the lookup created the deleted topic again').toEqual([]);
    expect(errors).toEqual([{ code: 'INVALID_TOPIC', context: { subscription: { id: subscription.id, pattern: TOPIC } } }]);
    expect(subscriber.stats().subscribe.subscriptions).toBe(0);
    expect(received).toEqual(['m0', 'm1', 'm2']);
  });

  it('a topic deleted and created again (a publisher) while its subscription moves to the leader: the subscription ends, or reads the new topic from its start; it never resumes there at its old offset', async () => {
    const { brokers, proxyOf, publisher, leader, follower, subscriber } = await movingSetup();
    const errors: string[] = [];
    subscriber.on('error', (error) => void errors.push(error instanceof RelayError ? error.code : String(error)));
    const received: string[] = [];

    proxyOf(leader).holdRequests();
    await subscriber.subscribe<string>(TOPIC, (m) => void received.push(m.data), { from: 'earliest' });
    await waitFor(() => received.length === 3, 'the 3 messages from the follower', 10_000);
    await waitFor(() => follower.stats().subscriptions === 0, 'the subscription to leave the follower', 10_000);
    await engineOf(follower).deleteTopic(TOPIC);
    await waitFor(() => existsOn(brokers).length === 0, 'every broker to apply the deletion', 10_000);
    // A publisher goes on: its next publish creates the topic again (auto-create), offsets from 0.
    for (let i = 0; i < 4; i++) await publisher.publish(TOPIC, `n${i}`);
    await waitFor(() => existsOn(brokers).length === 3, 'every broker to apply the new topic', 10_000);
    proxyOf(leader).releaseRequests();
    await waitFor(() => errors.length > 0 || received.includes('n3'), 'the subscription to end, or to read the new topic', 15_000);
    // Ended (INVALID_TOPIC), or every message of the new topic in order: never n3 alone, the 3 before it skipped unannounced.
    if (errors.length === 0) expect(received).toEqual(['m0', 'm1', 'm2', 'n0', 'n1', 'n2', 'n3']);
    else expect(errors).toEqual(['INVALID_TOPIC']);
  });
});
