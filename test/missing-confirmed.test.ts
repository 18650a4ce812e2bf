/**
 * "No such topic / partition" is said only once the metadata leader agrees.
 * A broker behind its metadata leader (its peer links slow, so it still knows
 * a leader and is ready) lacks a topic, or a partition, created a moment ago
 * through another broker. Answered from its own metadata, an admin's deletion
 * of that topic was refused `INVALID_TOPIC` (404), and a durable commit of
 * the new partition `INVALID_PARTITION` (not retriable: the SDK drops the
 * position), as was a publish to that partition. Now the leader is asked:
 * the deletion goes through, the commit and the publish are answered
 * `NOT_READY` (the SDK's committer and publisher retry it) and stored once
 * sent again. What really is missing is still refused as before.
 *
 * Three brokers in this process, every connection through a fault link.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import { Fixture } from './support/cluster.js';
import { faultableCluster } from './support/faultable.js';
import { RawClient } from './support/raw-client.js';
import { waitFor } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

const TOKEN = 'missing-confirmed-token-0123456789';
/** How late the broker behind hears its peers: its answers come before it applies what the others did. */
const LAG_MS = 1000;

interface MetaEngine {
  groupStatus(): Array<{ group: string; leader: string | null }>;
  partitionCount(topic: string): number | undefined;
  metadataLeaderKnown(): boolean;
}
const engineOf = (b: Broker): MetaEngine => b.engine as unknown as MetaEngine;

async function admin(broker: Broker, method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const init: RequestInit = { method, headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(20_000) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(`${broker.adminUrl as string}${path}`, init);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Sends a durable commit of one position and returns the answer: `committed`, or the error's code. */
async function commit(client: RawClient, id: number, topic: string, partition: number): Promise<string> {
  client.send({ type: 'commit', id, durable: 'confirmed', positions: [{ topic, partition, offset: 0 }] });
  await waitFor(() => client.frames.some((f) => 'id' in f && f.id === id && (f.type === 'committed' || f.type === 'error')), `an answer to commit ${id}`, 20_000);
  const answer = client.frames.find((f) => 'id' in f && f.id === id && (f.type === 'committed' || f.type === 'error'));
  return answer?.type === 'error' ? answer.code : 'committed';
}

/** Publishes one message (ack `quorum`, seq 0: a partition's first, or its resend) and returns the answer: `stored`, or the nack's code. */
async function publish(client: RawClient, id: number, topic: string, partition: number): Promise<string> {
  client.send({ type: 'publish', batches: [{ topic, partition, ack: 'quorum', firstId: id, firstSeq: 0, messages: [{ data: new Uint8Array([0]) }] }] });
  const answered = (f: (typeof client.frames)[number]): boolean => (f.type === 'nack' && f.id === id) || (f.type === 'ack' && f.acks.some((a) => a.id === id));
  await waitFor(() => client.frames.some(answered), `an answer to publish ${id}`, 20_000);
  const answer = client.frames.find(answered);
  return answer?.type === 'nack' ? answer.code : 'stored';
}

const options = { defaultPartitions: 1, adminPort: 0, adminToken: TOKEN, peer: { requestTimeoutMs: 8000 } };

describe('a "does not exist" answer of a broker behind its metadata leader', () => {
  it('deletes or grows a topic created through another broker, and answers NOT_READY (not INVALID_PARTITION / INVALID_TOPIC) to a commit or publish it has not applied yet', async () => {
    const ids = ['c1', 'c2', 'c3'];
    const { brokers, peerLinks, urls } = await faultableCluster(fixture, ids, options);
    const metaLeader = (): string | null => engineOf(brokers[0] as Broker).groupStatus().find((g) => g.group === 'meta')?.leader ?? null;
    await waitFor(() => metaLeader() !== null && brokers.every((b) => engineOf(b).metadataLeaderKnown()), 'a metadata leader every broker knows', 20_000);
    const behind = brokers.find((b) => b.id !== metaLeader()) as Broker;
    const other = brokers.find((b) => b !== behind && b.id !== behind.id) as Broker;
    const client = await RawClient.open(urls[ids.indexOf(behind.id)] as string);
    fixture.defer(async () => client.ws.close());
    await client.whenReady();

    const slowed = [...peerLinks].filter(([name]) => name.startsWith(`${behind.id}->`) || name.endsWith(`->${behind.id}`)).map(([, link]) => link);
    for (const link of slowed) link.delay(LAG_MS);
    expect((await admin(other, 'POST', '/api/topics', { topic: 'grown', partitions: 1 })).status).toBe(201);
    await waitFor(() => engineOf(behind).partitionCount('grown') === 1, 'the topic on the broker behind', 20_000);

    // (a) A deletion of a topic created through another broker, asked of the broker behind.
    expect((await admin(other, 'POST', '/api/topics', { topic: 'doomed', partitions: 1 })).status).toBe(201);
    expect(engineOf(behind).partitionCount('doomed'), 'the broker behind has the topic already: no lag to test').toBeUndefined();
    const deleted = await admin(behind, 'DELETE', '/api/topics?topic=doomed');
    expect(deleted.body).toMatchObject({ deleted: true, topic: { topic: 'doomed' } });
    expect(deleted.status).toBe(200);
    await waitFor(() => brokers.every((b) => engineOf(b).partitionCount('doomed') === undefined), 'the deletion on every broker', 20_000);

    // (b) A commit in a topic just created.
    expect((await admin(other, 'POST', '/api/topics', { topic: 'fresh', partitions: 1 })).status).toBe(201);
    expect(engineOf(behind).partitionCount('fresh'), 'the broker behind has the topic already: no lag to test').toBeUndefined();
    // With an operator's partition increase of it, asked of this broker at once: done once it applied the topic.
    const [committed, grown] = await Promise.all([commit(client, 1, 'fresh', 0), admin(behind, 'PATCH', '/api/topics', { topic: 'fresh', partitions: 2 })]);
    expect(committed).toBe('NOT_READY');
    expect(grown.body).toMatchObject({ topic: 'fresh' });

    // (b) A commit in a partition add-partitions just created, and a publish to it (a client that learned the new
    // count from a broker that applied it), sent together: both before this broker applies the partition.
    expect((await admin(other, 'PATCH', '/api/topics', { topic: 'grown', partitions: 2 })).status).toBe(200);
    expect(engineOf(behind).partitionCount('grown'), 'the broker behind has the new partition already: no lag to test').toBe(1);
    // And an operator's move of its replica, asked of this broker: refused for what it is (every broker holds a
    // replica), not for a partition "unknown".
    const move = { topic: 'grown', partition: 1, from: behind.id, to: other.id };
    const [committedGrown, publishedGrown, moved] = await Promise.all([commit(client, 2, 'grown', 1), publish(client, 1, 'grown', 1), admin(behind, 'POST', '/api/cluster/move', move)]);
    expect([committedGrown, publishedGrown]).toEqual(['NOT_READY', 'NOT_READY']);
    expect(moved.body).toMatchObject({ reason: 'target-is-replica' });

    // What the SDK's committer and publisher do with NOT_READY: send again; once this broker applied the partition,
    // it is stored. (The links healed first: the new partition's group elects its leader over them.)
    for (const link of slowed) link.heal();
    await waitFor(() => engineOf(behind).partitionCount('grown') === 2, 'the new partition on the broker behind', 20_000);
    expect(await commit(client, 3, 'grown', 1)).toBe('committed');
    const retriable = ['NOT_READY', 'NOT_LEADER', 'NO_QUORUM', 'TIMEOUT'];
    let published = 'not sent';
    for (let id = 2; id < 12 && (published === 'not sent' || retriable.includes(published)); id++) published = await publish(client, id, 'grown', 1);
    expect(published).toBe('stored');
  });

  it('still refuses a topic or partition that does not exist: INVALID_TOPIC, INVALID_PARTITION, 404 (and so with a leader of an older version)', async () => {
    const brokers = await fixture.cluster(3, { prefix: 'x', replicationFactor: 3, ...options });
    await waitFor(() => brokers.every((b) => engineOf(b).metadataLeaderKnown()), 'a metadata leader every broker knows', 20_000);
    const metaLeader = (): string | null => engineOf(brokers[0] as Broker).groupStatus().find((g) => g.group === 'meta')?.leader ?? null;
    await waitFor(() => metaLeader() !== null, 'a metadata leader', 20_000);
    // Not the metadata leader: its questions to the leader go over the peer link.
    const asked = brokers.find((b) => b.id !== metaLeader()) as Broker;
    expect((await admin(asked, 'POST', '/api/topics', { topic: 'small', partitions: 2 })).status).toBe(201);
    const client = await RawClient.open(`ws://127.0.0.1:${asked.port}`);
    fixture.defer(async () => client.ws.close());
    await client.whenReady();
    expect(await commit(client, 1, 'small', 2)).toBe('INVALID_PARTITION');
    expect(await commit(client, 2, 'never.created', 0)).toBe('INVALID_TOPIC');
    expect(await commit(client, 3, 'small', 1)).toBe('committed');
    expect(await publish(client, 1, 'small', 2)).toBe('INVALID_PARTITION');
    const deleted = await admin(asked, 'DELETE', '/api/topics?topic=never.created');
    expect(deleted.status).toBe(404);
    expect(deleted.body).toMatchObject({ code: 'INVALID_TOPIC' });
    expect((await admin(asked, 'PATCH', '/api/topics', { topic: 'never.created', partitions: 3 })).body).toMatchObject({ code: 'INVALID_TOPIC' });
    const elsewhere = (brokers.find((b) => b !== asked) as Broker).id;
    expect((await admin(asked, 'POST', '/api/cluster/move', { topic: 'small', partition: 5, from: asked.id, to: elsewhere })).body).toMatchObject({ reason: 'unknown-partition' });

    // A leader of an older version, which does not know meta.partition-count: the answers it gave before.
    for (const b of brokers) (b.engine as unknown as { rpc: { handlers: Map<string, unknown> } }).rpc.handlers.delete('meta.partition-count');
    expect(await commit(client, 4, 'small', 2)).toBe('INVALID_PARTITION');
    expect(await commit(client, 5, 'never.created', 0)).toBe('INVALID_TOPIC');
    expect(await publish(client, 2, 'small', 3)).toBe('INVALID_PARTITION');
  });
});
