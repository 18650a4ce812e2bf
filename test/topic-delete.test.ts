/**
 * Deleting a topic from a running 5-broker cluster (replication factor 3),
 * in one process over real sockets, on disk, through the admin port: every
 * replica stops the partition's group and deletes its files (one broker is
 * down during the deletion and deletes them once it is back), a subscriber
 * of the topic is told (`INVALID_TOPIC`), an unknown topic answers 404, and
 * the topic created again (by a publish) starts at offset 0 on fresh replicas.
 */
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker, BrokerOptions } from '@relaymq/broker';
import { RelayError, type ErrorContext, type Message } from '@relaymq/sdk';
import { Fixture } from './support/cluster.js';
import { tempDirs } from './support/temp-dirs.js';
import { waitFor, waitForAsync, within } from './support/wait.js';
import { freePorts } from './support/ports.js';

const fixture = new Fixture();
const lines: string[] = [];
const tempDir = tempDirs('relaymq-topic-delete-');
const TOKEN = 'topic-delete-token-0123456789';
afterEach(async (context) => {
  if (context.task.result?.state === 'fail') console.log(lines.filter((l) => /delet|dropp|orders|replica/.test(l)).slice(-80).join('\n'));
  lines.length = 0;
  await fixture.cleanup();
});

interface Assignment {
  replicas: string[];
}
interface DeleteEngine {
  appliedMetadata(): { topics: Array<{ topic: string; partitions: Assignment[]; incarnation?: number }> };
  commitPositions(durable: string, positions: Array<{ topic: string; partition: number; offset: number }>): Promise<void>;
  hostsReplica(topic: string, partition: number): boolean;
  readReplica(topic: string, partition: number, offset: number, maxCount: number, maxBytes: number): Promise<{ start: number; end: number } | undefined>;
}
const engineOf = (b: Broker): DeleteEngine => b.engine as unknown as DeleteEngine;
const topicOf = (b: Broker, topic: string): { topic: string; partitions: Assignment[]; incarnation?: number } | undefined => engineOf(b).appliedMetadata().topics.find((t) => t.topic === topic);
const exists = (path: string): Promise<boolean> => access(path).then(() => true, () => false);
/** A replica's files: its partition directory, and on layout `split` its Raft log file too. */
const filesOf = (dir: string, partition: number, layout: 'split' | 'unified'): string[] => [
  join(dir, 'partitions', `p~orders~${partition}`),
  ...(layout === 'split' ? [join(dir, 'raft', `p~orders~${partition}.log`)] : []),
];

async function admin(broker: Broker, method: string, path: string, body?: unknown, token: string | null = TOKEN): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const init: RequestInit = { method, headers, signal: AbortSignal.timeout(15_000) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(`${broker.adminUrl as string}${path}`, init);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}


/** Five brokers on disk, replication factor 3, admin port with the token, logging to `lines`; `extra` options for all. */
async function onDisk(ids: string[], extra: Partial<BrokerOptions>) {
  const dirs = await Promise.all(ids.map(() => tempDir()));
  const ports = await freePorts(ids.length);
  const peers = ids.map((id, i) => `${id}@127.0.0.1:${ports[i]}`);
  const optionsOf = (i: number): BrokerOptions => ({
    id: ids[i] as string,
    peerPort: ports[i] as number,
    peers: peers.filter((_, j) => j !== i),
    dataDir: dirs[i] as string,
    replicationFactor: 3,
    adminPort: 0,
    adminToken: TOKEN,
    log: (level, message, fields) => void lines.push(`${ids[i]} ${level} ${message} ${JSON.stringify(fields ?? {})}`),
    ...extra,
  });
  const brokers = await Promise.all(ids.map((_, i) => fixture.broker(optionsOf(i))));
  const byId = (id: string): Broker => brokers[ids.indexOf(id)] as Broker;
  return { ids, dirs, brokers, byId, optionsOf };
}

describe('deleting a topic', () => {
  it.each(['split', 'unified'] as const)('deletes every replica\'s files (a broker down during the deletion too), ends its subscribers with INVALID_TOPIC, answers 404 after, and a publish creates it anew from offset 0 (storage.layout %s)', async (layout) => {
    const { ids, dirs, brokers, byId, optionsOf } = await onDisk(['d1', 'd2', 'd3', 'd4', 'd5'], { defaultPartitions: 2, storage: { layout } });

    const created = await admin(brokers[0] as Broker, 'POST', '/api/topics', { topic: 'orders', partitions: 2, replicationFactor: 3 });
    expect(created.status).toBe(201);
    await waitFor(() => brokers.every((b) => topicOf(b, 'orders') !== undefined), 'every broker to know orders');
    const assignment = (topicOf(brokers[0] as Broker, 'orders') as { partitions: Assignment[] }).partitions;
    expect(assignment.map((p) => p.replicas.length)).toEqual([3, 3]);

    // A subscriber of the topic (on a broker hosting no replica of partition 0, if any) and one of a wildcard.
    const client = await fixture.client([(brokers[0] as Broker).url], { discovery: false, poolSize: 1 });
    const errors: Array<{ error: unknown; context: ErrorContext | undefined }> = [];
    client.on('error', (error, context) => void errors.push({ error, context }));
    const received: Message[] = [];
    await client.subscribe('orders', (m) => void received.push(m), { from: 'earliest' });
    const wildcard: Message[] = [];
    await client.subscribe('>', (m) => void wildcard.push(m), { from: 'earliest' });
    for (let i = 0; i < 20; i++) await client.publish('orders', Buffer.from(String(i)), { key: `k${i}`, ack: 'quorum' });
    await waitFor(() => received.length === 20 && wildcard.length === 20, 'both subscribers to get the 20 messages');

    // Every replica holds files of its partitions.
    for (const [partition, { replicas }] of assignment.entries()) {
      for (const id of replicas) {
        await waitFor(() => engineOf(byId(id)).hostsReplica('orders', partition), `${id} to host orders/${partition}`);
        for (const path of filesOf(dirs[ids.indexOf(id)] as string, partition, layout)) expect(await exists(path), path).toBe(true);
      }
    }

    // A replica of partition 0 is down during the deletion (not the broker the client and the admin requests use).
    const downId = (assignment[0] as Assignment).replicas.find((id) => id !== 'd1') as string;
    await byId(downId).close();
    const up = brokers.filter((b) => b !== byId(downId));

    // Mutating: the admin token is required.
    expect((await admin(brokers[0] as Broker, 'DELETE', '/api/topics?topic=orders', undefined, null)).status).toBe(401);
    const deleted = await admin(brokers[0] as Broker, 'DELETE', '/api/topics?topic=orders');
    expect(deleted.status).toBe(200);
    expect(deleted.body).toMatchObject({ deleted: true, topic: { topic: 'orders', replicationFactor: 3 } });
    expect((deleted.body.topic as { partitions: unknown[] }).partitions).toHaveLength(2);
    await waitFor(() => up.every((b) => topicOf(b, 'orders') === undefined), 'every running broker to forget orders');

    // The subscriber of the topic was told, with a stable code, naming its subscription.
    await waitFor(() => errors.length > 0, 'the subscriber of orders to be told');
    const [told] = errors;
    expect(told?.error).toBeInstanceOf(RelayError);
    expect((told?.error as RelayError).code).toBe('INVALID_TOPIC');
    expect((told?.error as RelayError).message).toMatch(/orders was deleted/);
    expect(told?.context?.subscription).toMatchObject({ pattern: 'orders' });
    expect(errors).toHaveLength(1); // the wildcard subscription goes on

    // Every running replica stopped its groups and deleted their files.
    for (const [partition, { replicas }] of assignment.entries()) {
      for (const id of replicas.filter((r) => r !== downId)) {
        await waitFor(() => !engineOf(byId(id)).hostsReplica('orders', partition), `${id} to stop orders/${partition}`);
        await waitForAsync(async () => !(await exists(filesOf(dirs[ids.indexOf(id)] as string, partition, layout)[0] as string)), `${id}'s files of orders/${partition} to go`);
        for (const path of filesOf(dirs[ids.indexOf(id)] as string, partition, layout)) expect(await exists(path), path).toBe(false);
      }
    }
    // Unknown now: 404, and describing it too.
    const again = await admin(brokers[0] as Broker, 'DELETE', '/api/topics?topic=orders');
    expect(again.status).toBe(404);
    expect(again.body).toMatchObject({ code: 'INVALID_TOPIC' });
    expect((await admin(brokers[0] as Broker, 'GET', '/api/topics?topic=orders')).status).toBe(404);

    // The broker that was down comes back with its files: it deletes them instead of hosting them.
    const downDir = dirs[ids.indexOf(downId)] as string;
    expect(await exists(filesOf(downDir, 0, layout)[0] as string)).toBe(true);
    const back = await fixture.broker(optionsOf(ids.indexOf(downId)));
    brokers[ids.indexOf(downId)] = back;
    await waitFor(() => topicOf(back, 'orders') === undefined && engineOf(back).appliedMetadata().topics.length === 0, `${downId} to apply the deletion`, 20_000);
    for (const partition of [0, 1]) {
      await waitForAsync(async () => (await Promise.all(filesOf(downDir, partition, layout).map(exists))).every((held) => !held), `${downId}'s files of orders/${partition} to go`, 20_000);
      expect(engineOf(back).hostsReplica('orders', partition)).toBe(false);
    }

    // Created again by a publish (auto-creation, as for any unknown topic): from offset 0, on fresh replicas.
    const first = await within(client.publish('orders', Buffer.from('new'), { key: 'k0', ack: 'quorum' }), 'the publish that creates orders again', 15_000);
    expect(first.offset).toBe(0);
    await waitFor(() => brokers.every((b) => topicOf(b, 'orders') !== undefined), 'every broker to know the new orders');
    const fresh: Message[] = [];
    await client.subscribe('orders', (m) => void fresh.push(m), { from: 'earliest' });
    await waitFor(() => fresh.length === 1, 'a new subscriber to read the new orders');
    expect(fresh[0]).toMatchObject({ topic: 'orders', partition: first.partition, offset: 0 });
    expect(Buffer.from(fresh[0]?.data as Uint8Array).toString('utf8')).toBe('new');
    for (const id of (topicOf(back, 'orders') as { partitions: Assignment[] }).partitions[first.partition]?.replicas ?? []) {
      await waitForAsync(async () => (await engineOf(byId(id)).readReplica('orders', first.partition, 0, 10, 1 << 20))?.end === 1, `${id}'s new replica to hold the one message`, 15_000);
      expect(await engineOf(byId(id)).readReplica('orders', first.partition, 0, 10, 1 << 20)).toMatchObject({ start: 0, end: 1 });
    }
    // The wildcard subscriber reads the new topic from its start too.
    await waitFor(() => wildcard.length === 21, 'the wildcard subscriber to get the new message');
    expect(wildcard[20]).toMatchObject({ topic: 'orders', offset: 0 });
  }, 120_000);

  it('a replica down while its topic is deleted and created again catches up from a metadata snapshot: it drops the old replica and serves the new one from offset 0', async () => {
    // raftLogMaxBytes 1 compacts the metadata log past a broker that is down, so it catches up from a snapshot.
    const { ids, brokers, byId, optionsOf } = await onDisk(['s1', 's2', 's3', 's4', 's5'], { defaultPartitions: 1, raftLogMaxBytes: 1 });
    const client = await fixture.client([(brokers[0] as Broker).url], { discovery: false, poolSize: 1 });
    for (let i = 0; i < 5; i++) await client.publish('orders', Buffer.from(`old${i}`), { ack: 'quorum' });
    await waitFor(() => brokers.every((b) => topicOf(b, 'orders') !== undefined), 'every broker to know orders');
    const replicas = (topicOf(brokers[0] as Broker, 'orders') as { partitions: Assignment[] }).partitions[0]?.replicas as string[];
    const downId = replicas.find((id) => id !== 's1') as string;
    await waitForAsync(async () => (await engineOf(byId(downId)).readReplica('orders', 0, 0, 10, 1 << 20))?.end === 5, `${downId} to hold the old messages`);
    await byId(downId).close();
    const up = brokers.filter((b) => b !== byId(downId));

    expect((await admin(brokers[0] as Broker, 'DELETE', '/api/topics?topic=orders')).status).toBe(200);
    const first = await within(client.publish('orders', Buffer.from('new'), { ack: 'quorum' }), 'the publish creating orders again', 15_000);
    expect(first.offset).toBe(0);
    await waitFor(() => up.every((b) => topicOf(b, 'orders')?.incarnation === 1), 'every running broker to know the new orders');
    // Placed by load as the old one was: the broker that is down holds a replica of the new topic too.
    expect(topicOf(brokers[0] as Broker, 'orders')?.partitions[0]?.replicas).toContain(downId);

    // Enough metadata entries for the running brokers to compact their logs past the broker that is down.
    const engine = engineOf(brokers[0] as Broker);
    for (let wave = 0; wave < 11; wave++) {
      await within(Promise.all(Array.from({ length: 200 }, (_, i) => engine.commitPositions(`filler-${wave}-${i}`, [{ topic: 'filler', partition: 0, offset: 1 }]))), 'filler commits', 20_000);
    }
    const snapshotIndex = (b: Broker): number => (b.engine as unknown as { metaStorage: { memory: { snapshot(): { meta: { index: number } } | undefined } } }).metaStorage.memory.snapshot()?.meta.index ?? 0;
    await waitFor(() => up.every((b) => snapshotIndex(b) > 2000), 'the running brokers to compact their metadata logs', 20_000);

    const back = await fixture.broker(optionsOf(ids.indexOf(downId)));
    await waitFor(() => topicOf(back, 'orders')?.incarnation === 1, `${downId} to learn the new orders`, 20_000);
    await waitForAsync(async () => {
      // A read in flight while the old replica is dropped meets its log closing (STORAGE_CLOSED): asked again.
      const read = await engineOf(back).readReplica('orders', 0, 0, 10, 1 << 20).catch(() => undefined);
      return read?.end === 1 && read.start === 0;
    }, `${downId} to hold the new orders' one message, not the old five`, 20_000);
    const read = (await engineOf(back).readReplica('orders', 0, 0, 10, 1 << 20)) as unknown as { start: number; end: number; messages: Array<{ offset: number; data: Uint8Array }> };
    expect(read.messages.map((m) => [m.offset, Buffer.from(m.data).toString('utf8')])).toEqual([[0, 'new']]);
    expect(lines.some((l) => l.startsWith(`${downId} info replica no longer held here`) && l.includes('p/orders/0'))).toBe(true);
  }, 120_000);

  it('a standalone broker (in memory) deletes a topic too: its subscriber is told, a publish creates it anew from offset 0', async () => {
    const broker = await fixture.broker({ id: 'solo', adminPort: 0, adminToken: TOKEN, defaultPartitions: 1 });
    const client = await fixture.client([broker.url], { discovery: false });
    const errors: Array<{ error: unknown; context: ErrorContext | undefined }> = [];
    client.on('error', (error, context) => void errors.push({ error, context }));
    const received: Message[] = [];
    await client.subscribe('orders', (m) => void received.push(m), { from: 'earliest' });
    for (let i = 0; i < 3; i++) await client.publish('orders', Buffer.from(String(i)));
    await waitFor(() => received.length === 3, 'the subscriber to get 3 messages');
    const deleted = await admin(broker, 'DELETE', '/api/topics?topic=orders');
    expect(deleted).toMatchObject({ status: 200, body: { deleted: true, topic: { topic: 'orders' } } });
    await waitFor(() => errors.length === 1, 'the subscriber to be told');
    expect((errors[0]?.error as RelayError).code).toBe('INVALID_TOPIC');
    expect(errors[0]?.context?.subscription).toMatchObject({ pattern: 'orders' });
    expect((await admin(broker, 'DELETE', '/api/topics?topic=orders')).status).toBe(404);
    expect((await client.publish('orders', Buffer.from('new'))).offset).toBe(0);
  });

  it('a subscriber pulling with for await leaves its loop with INVALID_TOPIC when the topic is deleted, after every message', async () => {
    const broker = await fixture.broker({ id: 'solo', adminPort: 0, adminToken: TOKEN, defaultPartitions: 1 });
    const client = await fixture.client([broker.url], { discovery: false });
    client.on('error', () => {}); // reported there too; this test reads the loop
    for (let i = 0; i < 3; i++) await client.publish('orders', Buffer.from(String(i)));
    const stream = await client.subscribe('orders', { from: 'earliest' });
    const pulled: string[] = [];
    const loop = (async () => {
      for await (const m of stream) {
        pulled.push(Buffer.from(m.data as Uint8Array).toString('utf8'));
        if (pulled.length === 3) void admin(broker, 'DELETE', '/api/topics?topic=orders');
      }
    })();
    const ended = await within(loop.then(() => undefined, (err: unknown) => err), 'the for-await loop to end', 10_000);
    expect(pulled).toEqual(['0', '1', '2']);
    expect(ended).toBeInstanceOf(RelayError);
    expect((ended as RelayError).code).toBe('INVALID_TOPIC');
  });
});
