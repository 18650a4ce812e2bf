import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import { RelayError, type Message } from '@relaymq/sdk';
import type { PublishBatch } from '@relaymq/sdk/protocol';
import { Fixture } from './support/cluster.js';
import { RawClient } from './support/raw-client.js';
import { waitFor } from './support/wait.js';
import { rejection } from './support/rejection.js';

const fixture = new Fixture();
const raws: RawClient[] = [];
afterEach(async () => {
  for (const raw of raws.splice(0)) raw.close();
  await fixture.cleanup();
});

const tokens = { 'token-of-admin': 'admin', 'token-of-alice': 'alice', 'token-of-nobody': 'nobody' };
const acl = {
  admin: { publish: { allow: ['>'] }, subscribe: { allow: ['>'] } },
  alice: {
    publish: { allow: ['orders.>'], deny: ['orders.internal.>'] },
    subscribe: { allow: ['orders.>', 'public.*'], deny: ['orders.internal.>'] },
  },
  // nobody: no entry at all, so nothing is allowed
};

async function broker(): Promise<Broker> {
  return fixture.broker({ auth: { tokens }, acl });
}

async function raw(b: Broker, token: string): Promise<RawClient> {
  const client = await RawClient.open(b.url, true, { token });
  raws.push(client);
  return client;
}

const batch = (firstId: number, topic: string): PublishBatch => ({ topic, partition: 0, ack: 'quorum', firstId, firstSeq: 0, messages: [{ data: new Uint8Array([1]) }] });


describe('topic ACLs', () => {
  it('nacks a publish to a denied topic with FORBIDDEN, for that batch only', async () => {
    const b = await broker();
    const alice = await raw(b, 'token-of-alice');
    alice.send({ type: 'publish', batches: [batch(1, 'orders.created'), batch(2, 'payments.created'), batch(3, 'orders.internal.audit'), batch(4, 'orders.eu')] });
    const answers: Array<{ type: string; id: number; code?: string }> = [];
    await waitFor(() => {
      for (const f of alice.frames.splice(0)) {
        if (f.type === 'ack') for (const a of f.acks) answers.push({ type: 'ack', id: a.id });
        if (f.type === 'nack') answers.push({ type: 'nack', id: f.id, code: f.code });
      }
      return answers.length === 4;
    }, 'four answers');
    expect(answers.sort((x, y) => x.id - y.id)).toEqual([
      { type: 'ack', id: 1 },
      { type: 'nack', id: 2, code: 'FORBIDDEN' },
      { type: 'nack', id: 3, code: 'FORBIDDEN' },
      { type: 'ack', id: 4 },
    ]);
    expect(alice.closed).toBeUndefined(); // a denial is not fatal
    expect(b.engine.partitionCount('payments.created')).toBeUndefined(); // nor did it create the topic
    expect(b.stats().security.denied).toBe(2);
  });

  it('rejects the SDK publish with FORBIDDEN and keeps publishing what is allowed', async () => {
    const b = await broker();
    const alice = await fixture.client([b.url], { token: 'token-of-alice' });
    expect((await rejection(alice.publish('payments.created', 1), RelayError)).code).toBe('FORBIDDEN');
    await expect(alice.publish('orders.created', 2)).resolves.toMatchObject({ offset: 0 });
  });

  it('denies everything by default to a principal without an entry', async () => {
    const b = await broker();
    const nobody = await fixture.client([b.url], { token: 'token-of-nobody' });
    expect((await rejection(nobody.publish('orders.created', 1), RelayError)).code).toBe('FORBIDDEN');
    expect((await rejection(nobody.subscribe('orders.created', () => {}), RelayError)).code).toBe('FORBIDDEN');
  });

  it('refuses an exact subscription to a denied topic, and metadata of denied topics', async () => {
    const b = await broker();
    const alice = await fixture.client([b.url], { token: 'token-of-alice' });
    expect((await rejection(alice.subscribe('payments.created', () => {}), RelayError)).code).toBe('FORBIDDEN');
    expect((await rejection(alice.subscribe('orders.internal.audit', () => {}), RelayError)).code).toBe('FORBIDDEN');
    const rawAlice = await raw(b, 'token-of-alice');
    rawAlice.send({ type: 'metadata', id: 7, topics: ['orders.created', 'payments.created'] });
    expect(await rawAlice.next('error')).toMatchObject({ id: 7, code: 'FORBIDDEN' });
    // public.news, which alice may read but not publish to, must exist: metadata does not create it for her.
    const rawAdmin = await raw(b, 'token-of-admin');
    rawAdmin.send({ type: 'metadata', id: 1, topics: ['public.news'] });
    await rawAdmin.next('topics');
    rawAlice.send({ type: 'metadata', id: 8, topics: ['orders.created', 'public.news'] });
    expect(await rawAlice.next('topics')).toMatchObject({ id: 8 });
    expect(b.engine.partitionCount('payments.created')).toBeUndefined();
  });

  it('a wildcard subscription never delivers a topic the principal may not read: existing, new, or resumed', async () => {
    const b = await broker();
    const admin = await fixture.client([b.url], { token: 'token-of-admin' });
    // Topics that exist before the subscription.
    for (const topic of ['orders.created', 'orders.internal.audit', 'payments.created', 'public.news', 'public.deep.news']) await admin.publish(topic, `before:${topic}`);
    const alice = await fixture.client([b.url], { token: 'token-of-alice' });
    const seen: string[] = [];
    await alice.subscribe('>', (m: Message) => void seen.push(`${m.topic}=${String(m.data)}`), { from: 'earliest' });
    // Topics created after it, and more messages on the old ones.
    for (const topic of ['orders.shipped', 'orders.internal.keys', 'secrets.root', 'public.news', 'orders.created']) await admin.publish(topic, `after:${topic}`);
    await admin.publish('orders.done', 'last');
    await waitFor(() => seen.includes('orders.done=last'), 'the last allowed message');
    expect(seen.sort()).toEqual(
      [
        'orders.created=before:orders.created',
        'public.news=before:public.news',
        'orders.shipped=after:orders.shipped',
        'public.news=after:public.news',
        'orders.created=after:orders.created',
        'orders.done=last',
      ].sort(),
    );

    // A resumed cursor on a denied topic (a client lying about its position) is ignored too.
    const rawAlice = await raw(b, 'token-of-alice');
    rawAlice.send({ type: 'subscribe', id: 1, subscription: 1, pattern: '>', from: 'earliest', credit: 100, resume: [{ topic: 'secrets.root', partition: 0, offset: 0 }] });
    const subscribed = await rawAlice.next('subscribed');
    expect(subscribed.cursors.map((c) => c.topic)).not.toContain('secrets.root');
    expect(subscribed.cursors.map((c) => c.topic)).not.toContain('orders.internal.audit');
    await waitFor(() => rawAlice.frames.some((f) => f.type === 'message'), 'a delivery');
    await new Promise((resolve) => setImmediate(resolve));
    const delivered = rawAlice.frames.flatMap((f) => (f.type === 'message' ? f.batches.map((x) => x.topic) : []));
    expect(delivered.every((t) => t.startsWith('orders.') && !t.startsWith('orders.internal.') || /^public\.[^.]+$/.test(t))).toBe(true);
  });

  it('scopes producer ids to the principal: another principal cannot pass its messages off as duplicates', async () => {
    const b = await broker();
    const admin = await raw(b, 'token-of-admin');
    const alice = await raw(b, 'token-of-alice'); // both raw clients say producerId "raw-producer"
    admin.send({ type: 'publish', batches: [batch(1, 'orders.shared')] });
    expect((await admin.next('ack')).acks).toEqual([{ id: 1, offset: 0, count: 1, duplicate: false }]);
    alice.send({ type: 'publish', batches: [batch(1, 'orders.shared')] }); // same producer id, same seq 0
    expect((await alice.next('ack')).acks).toEqual([{ id: 1, offset: 1, count: 1, duplicate: false }]);
  });

  it('scopes durable subscription names to the principal, and refuses commits on topics it may not read', async () => {
    const b = await broker();
    const admin = await raw(b, 'token-of-admin');
    admin.send({ type: 'publish', batches: [batch(1, 'orders.created'), batch(2, 'payments.created')] });
    await waitFor(() => admin.frames.filter((f) => f.type === 'ack').length >= 1 && b.engine.partitionCount('payments.created') !== undefined, 'both topics');
    const alice = await raw(b, 'token-of-alice');
    alice.send({ type: 'commit', id: 1, durable: 'shared', positions: [{ topic: 'orders.created', partition: 0, offset: 1 }] });
    expect(await alice.next('committed')).toMatchObject({ id: 1 });
    alice.send({ type: 'commit', id: 2, durable: 'shared', positions: [{ topic: 'payments.created', partition: 0, offset: 1 }] });
    expect(await alice.next('error')).toMatchObject({ id: 2, code: 'FORBIDDEN' });
    // The same durable name under another principal is another durable subscription: alice's position does not apply.
    admin.send({ type: 'subscribe', id: 3, subscription: 1, pattern: 'orders.created', from: 'earliest', credit: 10, resume: [], durable: 'shared' });
    expect((await admin.next('subscribed')).cursors).toEqual([{ topic: 'orders.created', partition: 0, offset: 0 }]);
    alice.send({ type: 'subscribe', id: 4, subscription: 1, pattern: 'orders.created', from: 'earliest', credit: 10, resume: [], durable: 'shared' });
    expect((await alice.next('subscribed')).cursors).toEqual([{ topic: 'orders.created', partition: 0, offset: 1 }]);
  });
});
