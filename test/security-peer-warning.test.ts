import { afterEach, describe, expect, it } from 'vitest';
import type { BrokerOptions } from '@relaymq/broker';
import { Fixture } from './support/cluster.js';

const fixture = new Fixture();
afterEach(async () => {
  await fixture.cleanup();
});

const auth = { tokens: { 'token-of-admin': 'admin' } };
const acl = { admin: { publish: { allow: ['>'] }, subscribe: { allow: ['>'] } } };

/** The warnings a 2-broker cluster with `options` logs while it starts. */
async function warnings(options: BrokerOptions): Promise<string[]> {
  const lines: string[] = [];
  await fixture.cluster(2, { ...options, log: (level, message) => void (level === 'warn' && lines.push(message)) });
  return lines;
}

describe('a broker whose clients authenticate, with plain peer links', () => {
  it('warns that its peer port takes any dialer, past authentication and every ACL', async () => {
    const lines = await warnings({ auth, acl });
    expect(lines.filter((line) => line.includes('peer port'))).toHaveLength(2); // one per broker
  });

  it('says nothing of the peer port without auth (a trusted network, as documented)', async () => {
    const lines = await warnings({});
    expect(lines.filter((line) => line.includes('peer port'))).toEqual([]);
  });
});
