import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import type { BrokerFrame, PublishBatch } from '@relaymq/sdk/protocol';
import { Fixture } from './support/cluster.js';
import { RawClient } from './support/raw-client.js';
import { waitFor } from './support/wait.js';

const fixture = new Fixture();
const raws: RawClient[] = [];
afterEach(async () => {
  for (const raw of raws.splice(0)) raw.close();
  await fixture.cleanup();
});

const tokens = { 'token-of-admin': 'admin', 'token-of-alice': 'alice' };
const acl = {
  admin: { publish: { allow: ['>'] }, subscribe: { allow: ['>'] } },
  alice: { publish: { allow: ['orders.>'] }, subscribe: { allow: ['orders.>'], deny: ['orders.internal.>'] } },
};

async function raw(b: Broker, token: string): Promise<RawClient> {
  const client = await RawClient.open(b.url, true, { token });
  raws.push(client);
  return client;
}

const batch = (firstId: number, topic: string): PublishBatch => ({ topic, partition: 0, ack: 'quorum', firstId, firstSeq: 0, messages: [{ data: new Uint8Array([firstId]) }] });

/** Publishes one message to each topic as admin and waits for the acks. */
async function publish(admin: RawClient, firstId: number, topics: string[]): Promise<void> {
  admin.send({ type: 'publish', batches: topics.map((topic, i) => batch(firstId + i, topic)) });
  let acked = 0;
  await waitFor(() => {
    for (const f of admin.frames.splice(0)) {
      if (f.type === 'ack') acked += f.acks.reduce((n, a) => n + a.count, 0);
      if (f.type === 'nack') throw new Error(`nack ${f.code}: ${f.message}`);
    }
    return acked === topics.length;
  }, `${topics.length} acks`);
}

const delivered = (frames: readonly BrokerFrame[]): string[] => [...new Set(frames.flatMap((f) => (f.type === 'message' ? f.batches.map((b) => b.topic) : [])))].sort();
const assigned = (frames: readonly BrokerFrame[]): string[] => [...new Set(frames.flatMap((f) => (f.type === 'assignment' ? f.partitions.map((p) => p.topic) : [])))].sort();

describe('topic ACLs and consumer groups', () => {
  it('a group member with a wildcard pattern is never assigned nor delivered a topic its principal may not read: existing or created later', async () => {
    const b = await fixture.broker({ auth: { tokens }, acl, defaultPartitions: 1 });
    const admin = await raw(b, 'token-of-admin');
    await publish(admin, 1, ['orders.created', 'orders.internal.audit', 'secrets.root']);
    const alice = await raw(b, 'token-of-alice');
    alice.send({ type: 'subscribe', id: 1, subscription: 1, pattern: '>', from: 'earliest', resume: [], credit: 100, group: 'g', member: 'm1', sessionTimeoutMs: 10_000 });
    await alice.next('subscribed');
    await waitFor(() => alice.frames.some((f) => f.type === 'message' && f.batches.some((x) => x.topic === 'orders.created')), 'orders.created delivered');
    // Topics created after the join, the allowed one last.
    await publish(admin, 10, ['orders.internal.keys', 'secrets.more', 'orders.shipped']);
    await waitFor(() => alice.frames.some((f) => f.type === 'message' && f.batches.some((x) => x.topic === 'orders.shipped')), 'orders.shipped delivered');
    // A round trip: the delivery passes queued with the last delivery have run by the time the broker answers.
    alice.send({ type: 'ping', id: 99 });
    await alice.next('pong');
    expect(delivered(alice.frames)).toEqual(['orders.created', 'orders.shipped']);
    // Nor does an assignment name them (their names are not the principal's to learn).
    expect(assigned(alice.frames)).toEqual(['orders.created', 'orders.shipped']);
  });
});
