/**
 * "Topic missing" is answered by the metadata leader (`meta.topic-missing`),
 * and a subscription whose lookup hears it twice, 1 s apart, ends with
 * `INVALID_TOPIC`. A leader cut off from its peers that has not noticed yet
 * (another broker leads meanwhile and a topic was created under it) answered
 * from its stale metadata: the topic, which exists, was "missing". It must
 * first get an entry of its own through the log (a read barrier), which a
 * deposed leader cannot: the answer is `NOT_READY` (the SDK asks again),
 * never "missing". So is its answer to a deletion of the topic.
 *
 * Three brokers in this process, every peer connection through a fault link.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import { RelayError } from '@relaymq/sdk';
import { Fixture } from './support/cluster.js';
import { faultableCluster } from './support/faultable.js';
import { waitFor } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

const TOPIC = 'deposed.lookup';

interface LookupEngine {
  groupStatus(): Array<{ group: string; leader: string | null; lastIndex: number }>;
  partitionCount(topic: string): number | undefined;
  metadataLeaderKnown(): boolean;
  topicMissing(topic: string): Promise<boolean>;
  /** What the metadata leader runs for a deletion (meta.delete-topic): `{ kind: 'missing' }` for no such topic. */
  deleteTopicHere(topic: string): Promise<unknown>;
  ensureTopic(topic: string): Promise<unknown>;
  raftActivity(): { groups: number; quiesced: number };
  peerDown(peer: string): void;
}
const engineOf = (b: Broker): LookupEngine => b.engine as unknown as LookupEngine;
const metaOf = (b: Broker): { leader: string | null; lastIndex: number } => engineOf(b).groupStatus().find((g) => g.group === 'meta') ?? { leader: null, lastIndex: 0 };
const metaLeaderSeenBy = (b: Broker): string | null => metaOf(b).leader;

describe('a "topic missing" lookup answered by a deposed metadata leader', () => {
  it('is not answered "missing" for a topic created under the next leader', async () => {
    const ids = ['d1', 'd2', 'd3'];
    const { brokers, peerLinks } = await faultableCluster(fixture, ids, { defaultPartitions: 1 });
    await waitFor(() => metaLeaderSeenBy(brokers[0] as Broker) !== null && brokers.every((b) => engineOf(b).metadataLeaderKnown()), 'a metadata leader every broker knows', 20_000);
    const deposed = brokers.find((b) => b.id === metaLeaderSeenBy(brokers[0] as Broker)) as Broker;
    const others = brokers.filter((b) => b !== deposed);
    // Idle (its only group, the metadata's, quiesced): cut off, the leader runs no check-quorum round, so it goes on
    // believing it leads (one cut while still ticking steps down after an election timeout). On every broker: a
    // quiescing heartbeat still on its way would put a follower told its leader is down back to sleep.
    const idle = (b: Broker): boolean => engineOf(b).raftActivity().groups === 1 && engineOf(b).raftActivity().quiesced === 1;
    await waitFor(() => brokers.every(idle), 'the metadata group to quiesce on every broker', 10_000);

    // The leader's peer traffic is lost silently (its connections stay up, so it sees no peer lost; its clients
    // still reach it); the other two elect a leader of their own.
    const cut = [...peerLinks].filter(([name]) => name.startsWith(`${deposed.id}->`) || name.endsWith(`->${deposed.id}`)).map(([, link]) => link);
    for (const link of cut) {
      link.drop('forward');
      link.drop('backward');
    }
    fixture.defer(async () => void cut.forEach((link) => link.heal()));
    // What gossip's suspicion of it does on the other side, told at once: their quiesced groups campaign.
    for (const b of others) engineOf(b).peerDown(deposed.id);
    await waitFor(() => others.every((b) => ![null, deposed.id].includes(metaLeaderSeenBy(b))), 'a new metadata leader on the other side', 20_000);

    // The topic is created under the new leader; the deposed one never hears of it.
    await engineOf(others[0] as Broker).ensureTopic(TOPIC);
    await waitFor(() => others.every((b) => engineOf(b).partitionCount(TOPIC) !== undefined), 'the topic on the new side', 10_000);
    expect(engineOf(deposed).partitionCount(TOPIC), 'the deposed leader heard of the topic: no stale state to test').toBeUndefined();
    expect(metaLeaderSeenBy(deposed), 'the deposed leader noticed already: no stale leader to test').toBe(deposed.id);

    // Asked now, it must not say "missing": its barrier cannot commit, so NOT_READY (the lookup is asked again), or
    // NO_QUORUM should it step down first and find no leader within the request timeout.
    // Nor may it answer a deletion of the topic (asked by a broker that has it) "missing": same barrier. Both asked
    // at once, while it still believes it leads.
    const [answer, deletion] = await Promise.all([
      engineOf(deposed)
        .topicMissing(TOPIC)
        .then(
          (missing) => (missing ? 'missing' : 'exists'),
          (err: unknown) => (err instanceof RelayError ? err.code : String(err)),
        ),
      engineOf(deposed)
        .deleteTopicHere(TOPIC)
        .then(
          (result) => ((result as { kind?: unknown }).kind === 'missing' ? 'missing' : 'proposed'),
          (err: unknown) => (err instanceof RelayError ? err.code : String(err)),
        ),
    ]);
    expect(answer).not.toBe('missing');
    expect(['NOT_READY', 'NO_QUORUM']).toContain(answer);
    expect(deletion).not.toBe('missing');
    expect(['NOT_READY', 'NO_QUORUM', 'NOT_LEADER']).toContain(deletion);
  });

  it('says "missing" only after an entry of its own went through the log; lookups arriving together share one', async () => {
    const brokers = await fixture.cluster(3, { prefix: 'r', replicationFactor: 3, defaultPartitions: 1 });
    await waitFor(() => metaLeaderSeenBy(brokers[0] as Broker) !== null && brokers.every((b) => engineOf(b).metadataLeaderKnown()), 'a metadata leader every broker knows', 20_000);
    const leader = brokers.find((b) => b.id === metaLeaderSeenBy(brokers[0] as Broker)) as Broker;
    const before = metaOf(leader).lastIndex;
    const lookups = 20;
    const answers = await Promise.all(Array.from({ length: lookups }, (_, i) => engineOf(leader).topicMissing(`never.created.${i}`)));
    expect(answers).toEqual(Array.from({ length: lookups }, () => true));
    // One barrier entry for the lot (a second only if the lookups straddled a turn of the event loop).
    const added = metaOf(leader).lastIndex - before;
    expect(added, 'no entry went through the metadata log before "missing" was said').toBeGreaterThanOrEqual(1);
    expect(added, 'lookups arriving together did not share a barrier').toBeLessThanOrEqual(2);
  });

  it('spaces its barriers: lookups one after another add at most one entry per 100 ms', async () => {
    const brokers = await fixture.cluster(3, { prefix: 'p', replicationFactor: 3, defaultPartitions: 1 });
    await waitFor(() => metaLeaderSeenBy(brokers[0] as Broker) !== null && brokers.every((b) => engineOf(b).metadataLeaderKnown()), 'a metadata leader every broker knows', 20_000);
    const leader = brokers.find((b) => b.id === metaLeaderSeenBy(brokers[0] as Broker)) as Broker;
    const before = metaOf(leader).lastIndex;
    const started = performance.now();
    for (let i = 0; i < 8; i++) expect(await engineOf(leader).topicMissing(`never.created.${i}`)).toBe(true);
    const elapsedMs = performance.now() - started;
    const added = metaOf(leader).lastIndex - before;
    expect(added).toBeGreaterThanOrEqual(1);
    // n barriers, each at least 100 ms after the one before, take at least (n - 1) × 100 ms (less a millisecond a timer).
    expect(elapsedMs, `${added} barrier entries in ${elapsedMs.toFixed(0)} ms`).toBeGreaterThanOrEqual((added - 1) * 100 - added);
  });
});
