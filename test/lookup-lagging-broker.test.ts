/**
 * A broker whose metadata lags (its peer links slow) while it says it is
 * ready: it knows a metadata leader, so a leader lookup (`metadata`,
 * `create: false`) of a topic created meanwhile is answered `INVALID_TOPIC`,
 * though the topic exists. A subscription that fails over to it must not end
 * for that: the topic was never deleted.
 *
 * Three brokers in this process, every connection through a fault link.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import { RelayError } from '@relaymq/sdk';
import { Fixture } from './support/cluster.js';
import { faultableCluster } from './support/faultable.js';
import { waitFor } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

const TOPIC = 'lagging.lookup';
/** How far behind the lagging broker's peer traffic runs (the links' most): past the SDK's 1 s confirmation of a missing topic. */
const LAG_MS = 2000;

interface LagEngine {
  groupStatus(): Array<{ group: string; leader: string | null }>;
  partitionCount(topic: string): number | undefined;
  metadataLeaderKnown(): boolean;
}
const engineOf = (b: Broker): LagEngine => b.engine as unknown as LagEngine;

describe('a leader lookup answered by a broker whose metadata lags', () => {
  it('a subscription failing over to a ready broker that has not applied its topic yet does not end', async () => {
    const ids = ['g1', 'g2', 'g3'];
    const { brokers, peerLinks, urls, linksOf } = await faultableCluster(fixture, ids, { defaultPartitions: 1 });
    const metaLeader = (): string | null => engineOf(brokers[0] as Broker).groupStatus().find((g) => g.group === 'meta')?.leader ?? null;
    await waitFor(() => metaLeader() !== null && brokers.every((b) => engineOf(b).metadataLeaderKnown()), 'a metadata leader every broker knows', 20_000);
    const leaderId = metaLeader() as string;
    const lagging = brokers.find((b) => b.id !== leaderId) as Broker;
    const others = brokers.filter((b) => b !== lagging);
    const urlOf = (b: Broker): string => urls[ids.indexOf(b.id)] as string;

    // Everything between the lagging broker and its peers arrives LAG_MS late (order kept): it keeps hearing the
    // metadata leader, so it stays ready, but applies each entry LAG_MS after the others.
    for (const [name, link] of peerLinks) if (name.startsWith(`${lagging.id}->`) || name.endsWith(`->${lagging.id}`)) link.delay(LAG_MS);
    const marker = await fixture.client([urlOf(others[0] as Broker)]);
    await marker.publish('lagging.marker', 'x');
    // Once the delayed stream flows, the lagging broker applied the marker and knows the leader again.
    await waitFor(() => engineOf(lagging).partitionCount('lagging.marker') !== undefined && engineOf(lagging).metadataLeaderKnown(), 'the lagging broker to catch up to the marker', 30_000);

    // Linked to every broker beforehand, so that its failover is at once.
    const subscriber = await fixture.client([urlOf(others[0] as Broker)], { poolSize: 3 });
    await waitFor(() => subscriber.stats().connectedBrokers.length === 3, 'links to the 3 brokers', 10_000);
    expect(subscriber.stats().activeBroker?.id, 'the subscriber starts on a broker that is not behind').not.toBe(lagging.id);
    const errors: string[] = [];
    subscriber.on('error', (error) => void errors.push(error instanceof RelayError ? error.code : String(error)));
    const received: string[] = [];
    // The topic is created now: the lagging broker applies it LAG_MS from now.
    await marker.publish(TOPIC, 'm0');
    await subscriber.subscribe<string>(TOPIC, (m) => void received.push(m.data), { from: 'earliest' });
    await waitFor(() => received.length === 1, 'the message', 10_000);
    expect(engineOf(lagging).partitionCount(TOPIC), 'the lagging broker already has the topic: no lag to test').toBeUndefined();

    // Only the lagging broker is reachable by clients now.
    for (const b of others) (linksOf(b.id).at(-1) as { block(): void }).block();
    await waitFor(() => subscriber.stats().activeBroker?.id === lagging.id, 'the subscriber to fail over to the lagging broker', 10_000);
    // Until the lagging broker applies the topic (or the subscription is ended).
    await waitFor(() => errors.length > 0 || engineOf(lagging).partitionCount(TOPIC) !== undefined, 'the lagging broker to apply the topic', 20_000);
    expect(errors, 'the subscription ended though its topic exists').toEqual([]);
    expect(subscriber.stats().subscribe.subscriptions).toBe(1);
  });
});
