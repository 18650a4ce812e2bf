/**
 * A "no such partition" answer is confirmed by the metadata leader (one
 * `meta.partition-count` request), on the error path only. A producer that
 * publishes (or commits) to a partition that really does not exist, in a
 * tight loop or pipelined, must not turn each batch into a peer request to
 * the metadata leader: the checks of one topic from one broker are shared
 * (at most one in flight and one waiting), and every batch is still refused
 * `INVALID_PARTITION`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import { Fixture } from './support/cluster.js';
import { faultableCluster } from './support/faultable.js';
import { RawClient } from './support/raw-client.js';
import { waitFor } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

const TOKEN = 'missing-amplification-token-0123456789';
const BATCHES = 1000;
/** Per frame: a producer's pipelined batches, as its outbox sends them. */
const PER_FRAME = 50;

interface MetaEngine {
  groupStatus(): Array<{ group: string; leader: string | null }>;
  metadataLeaderKnown(): boolean;
  rpc: { call(peer: string, method: string, body: unknown, timeoutMs: number): Promise<unknown> };
  partitionCount(topic: string): number | undefined;
  partitionMissing(topic: string, partition: number): Promise<'topic' | 'partition' | undefined>;
}
const engineOf = (b: Broker): MetaEngine => b.engine as unknown as MetaEngine;

/** Counts `method`'s peer requests sent by `broker`. */
function countCalls(broker: Broker, method: string): { count: number } {
  const counter = { count: 0 };
  const rpc = engineOf(broker).rpc;
  const call = rpc.call.bind(rpc);
  rpc.call = (peer, m, body, timeoutMs) => {
    if (m === method) counter.count++;
    return call(peer, m, body, timeoutMs);
  };
  return counter;
}

describe('publishes and commits to a partition that does not exist', () => {
  it(`cost the metadata leader a few peer requests, not one per batch (${BATCHES} batches), and are all refused INVALID_PARTITION`, async () => {
    const brokers = await fixture.cluster(3, { prefix: 'amp', replicationFactor: 3, defaultPartitions: 1, adminPort: 0, adminToken: TOKEN });
    const metaLeader = (): string | null => engineOf(brokers[0] as Broker).groupStatus().find((g) => g.group === 'meta')?.leader ?? null;
    await waitFor(() => metaLeader() !== null && brokers.every((b) => engineOf(b).metadataLeaderKnown()), 'a metadata leader every broker knows', 20_000);
    const asked = brokers.find((b) => b.id !== metaLeader()) as Broker;
    const created = await fetch(`${asked.adminUrl as string}/api/topics`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ topic: 'one', partitions: 1 }),
      signal: AbortSignal.timeout(20_000),
    });
    expect(created.status).toBe(201);
    const client = await RawClient.open(`ws://127.0.0.1:${asked.port}`);
    fixture.defer(async () => client.ws.close());
    await client.whenReady();
    const calls = countCalls(asked, 'meta.partition-count');

    const started = performance.now();
    for (let frame = 0; frame < BATCHES / PER_FRAME; frame++) {
      const batches = Array.from({ length: PER_FRAME }, (_, i) => {
        const n = frame * PER_FRAME + i;
        return { topic: 'one', partition: 99, ack: 'quorum' as const, firstId: n + 1, firstSeq: n, messages: [{ data: new Uint8Array([0]) }] };
      });
      client.send({ type: 'publish', batches });
    }
    const nacks = (): number => client.frames.filter((f) => f.type === 'nack').length;
    await waitFor(() => nacks() >= BATCHES, `${BATCHES} nacks`, 30_000);
    const ms = performance.now() - started;
    const codes = new Set(client.frames.flatMap((f) => (f.type === 'nack' ? [f.code] : [])));
    expect([...codes]).toEqual(['INVALID_PARTITION']);
    console.log(`${BATCHES} publishes to a missing partition: ${calls.count} meta.partition-count requests, ${ms.toFixed(0)} ms`);
    expect(calls.count).toBeLessThanOrEqual(4);

    // Commits, sixteen in flight (the most one connection may have), in a loop.
    const before = calls.count;
    const commitsStarted = performance.now();
    for (let id = 1; id <= 160; id++) {
      client.send({ type: 'commit', id, durable: 'confirmed', positions: [{ topic: 'one', partition: 7, offset: 0 }] });
      if (id % 16 === 0) {
        const upTo = id;
        await waitFor(() => client.frames.filter((f) => f.type === 'error' && 'id' in f && typeof f.id === 'number' && f.id <= upTo).length >= upTo, `answers to commits 1..${upTo}`, 20_000);
      }
    }
    const commitCodes = new Set(client.frames.flatMap((f) => (f.type === 'error' ? [f.code] : [])));
    expect([...commitCodes]).toEqual(['INVALID_PARTITION']);
    console.log(`160 commits to a missing partition: ${calls.count - before} meta.partition-count requests, ${(performance.now() - commitsStarted).toFixed(0)} ms`);
    expect(calls.count - before).toBeLessThanOrEqual(2 * 10);
    // Nothing kept once answered: a client naming ever new topics leaves no trace.
    expect((asked.engine as unknown as { reads: { partitionCountAsks: Map<string, unknown> } }).reads.partitionCountAsks.size).toBe(0);
  });

  it('answers a publish that arrived after the partition was created NOT_READY, not with the "missing" of a question in flight since before', async () => {
    const ids = ['q1', 'q2', 'q3'];
    const { brokers, peerLinks, urls } = await faultableCluster(fixture, ids, { defaultPartitions: 1, adminPort: 0, adminToken: TOKEN, peer: { requestTimeoutMs: 8000 } });
    const metaLeader = (): string | null => engineOf(brokers[0] as Broker).groupStatus().find((g) => g.group === 'meta')?.leader ?? null;
    await waitFor(() => metaLeader() !== null && brokers.every((b) => engineOf(b).metadataLeaderKnown()), 'a metadata leader every broker knows', 20_000);
    const behind = brokers.find((b) => b.id !== metaLeader()) as Broker;
    const other = brokers.find((b) => b !== behind) as Broker;
    const admin = async (broker: Broker, method: string, body: unknown): Promise<number> => {
      const response = await fetch(`${broker.adminUrl as string}/api/topics`, {
        method,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(20_000),
      });
      return response.status;
    };
    expect(await admin(other, 'POST', { topic: 'grown', partitions: 1 })).toBe(201);
    await waitFor(() => engineOf(behind).partitionCount('grown') === 1, 'the topic on every broker', 20_000);
    const client = await RawClient.open(urls[ids.indexOf(behind.id)] as string);
    fixture.defer(async () => client.ws.close());
    await client.whenReady();

    // The first question's answer (no partition 1 yet) is held on its way back until the test lets it go.
    const engine = engineOf(behind);
    let release = (): void => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    let firstAnswered = false;
    let asked = 0;
    const call = engine.rpc.call.bind(engine.rpc);
    engine.rpc.call = async (peer, method, body, timeoutMs) => {
      if (method !== 'meta.partition-count' || ++asked > 1) return call(peer, method, body, timeoutMs);
      const answer = await call(peer, method, body, timeoutMs);
      firstAnswered = true;
      await released;
      return answer;
    };
    let checks = 0;
    const partitionMissing = engine.partitionMissing.bind(engine);
    engine.partitionMissing = (topic, partition) => {
      checks++;
      return partitionMissing(topic, partition);
    };
    fixture.defer(async () => release());
    const publish = (id: number): void => {
      client.send({ type: 'publish', batches: [{ topic: 'grown', partition: 1, ack: 'quorum', firstId: id, firstSeq: 0, messages: [{ data: new Uint8Array([id]) }] }] });
    };
    const answerTo = (id: number): string | undefined => {
      for (const f of client.frames) {
        if (f.type === 'nack' && f.id === id) return f.code;
        if (f.type === 'ack' && f.acks.some((a) => a.id === id)) return 'stored';
      }
      return undefined;
    };

    publish(1);
    await waitFor(() => firstAnswered, 'the leader\'s answer to the first question', 20_000);
    // The partition is created now, and the broker asked does not apply it soon (its links are slow).
    const slowed = [...peerLinks].filter(([name]) => name.startsWith(`${behind.id}->`) || name.endsWith(`->${behind.id}`)).map(([, link]) => link);
    for (const link of slowed) link.delay(1000);
    expect(await admin(other, 'PATCH', { topic: 'grown', partitions: 2 })).toBe(200);
    expect(engine.partitionCount('grown'), 'the broker asked has the new partition already: no lag to test').toBe(1);
    publish(2);
    await waitFor(() => checks >= 2, 'the second publish checked', 20_000);
    release();
    await waitFor(() => answerTo(1) !== undefined && answerTo(2) !== undefined, 'answers to both publishes', 20_000);
    expect(answerTo(1)).toBe('INVALID_PARTITION'); // asked, and answered, before the partition existed
    expect(answerTo(2)).toBe('NOT_READY');
    for (const link of slowed) link.heal();
  });
});
