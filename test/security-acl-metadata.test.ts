import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import { Fixture } from './support/cluster.js';
import { RawClient } from './support/raw-client.js';

const fixture = new Fixture();
const raws: RawClient[] = [];
afterEach(async () => {
  for (const raw of raws.splice(0)) raw.close();
  await fixture.cleanup();
});

const tokens = { 'token-of-admin': 'admin', 'token-of-reader': 'reader' };
const acl = {
  admin: { publish: { allow: ['>'] }, subscribe: { allow: ['>'] } },
  reader: { subscribe: { allow: ['public.>'] } }, // may read public.*, publish nothing
};

async function raw(b: Broker, token: string): Promise<RawClient> {
  const client = await RawClient.open(b.url, true, { token });
  raws.push(client);
  return client;
}

describe('topic ACLs and metadata', () => {
  it('a principal that may read a topic but not publish to it cannot create it through metadata', async () => {
    const b = await fixture.broker({ auth: { tokens }, acl });
    const reader = await raw(b, 'token-of-reader');
    // As a publisher asks (create is the default): the topic is not created for a principal that may not publish there.
    reader.send({ type: 'metadata', id: 1, topics: ['public.made-by-reader'] });
    expect(await reader.next('error')).toMatchObject({ id: 1, code: 'INVALID_TOPIC' });
    expect(b.engine.partitionCount('public.made-by-reader')).toBeUndefined();
    // A topic that exists is described to it, as before.
    const admin = await raw(b, 'token-of-admin');
    admin.send({ type: 'metadata', id: 2, topics: ['public.news'] });
    await admin.next('topics');
    reader.send({ type: 'metadata', id: 3, topics: ['public.news'] });
    expect(await reader.next('topics')).toMatchObject({ id: 3, topics: [{ topic: 'public.news' }] });
  });
});
