import { afterEach, describe, expect, it } from 'vitest';
import { Fixture } from './support/cluster.js';

const fixture = new Fixture();
afterEach(async () => {
  await fixture.cleanup();
});

const tokens = { 'token-of-admin': 'admin', 'token-of-alice': 'alice' };
const acl = {
  admin: { publish: { allow: ['>'] }, subscribe: { allow: ['>'] } },
  alice: { subscribe: { allow: ['public.>'] } },
};

describe('the admin port of a broker whose clients authenticate', () => {
  it('shows no message contents without an admin token: the message routes are refused when none is configured', async () => {
    const b = await fixture.broker({ auth: { tokens }, acl, adminPort: 0 });
    const admin = await fixture.client([b.url], { token: 'token-of-admin' });
    await admin.publish('secrets.root', 'the root password');
    // Nobody authenticated, yet the client port would refuse alice, let alone a stranger, this topic.
    for (const path of ['/api/messages?topic=secrets.root&partition=0', '/api/replica?topic=secrets.root&partition=0&from=0']) {
      const res = await fetch(`${b.adminUrl as string}${path}`);
      const body = (await res.json()) as { code?: string };
      expect({ path, status: res.status, code: body.code }).toEqual({ path, status: 403, code: 'FORBIDDEN' });
    }
    // The cluster's state stays readable (adminProtectReads is off), as documented.
    expect((await fetch(`${b.adminUrl as string}/api/cluster`)).status).toBe(200);
  });

  it('with an admin token configured, the message routes need it, as before', async () => {
    const token = 'an-admin-token-of-32-characters!';
    const b = await fixture.broker({ auth: { tokens }, acl, adminPort: 0, adminToken: token });
    const admin = await fixture.client([b.url], { token: 'token-of-admin' });
    await admin.publish('secrets.root', 'the root password');
    const url = `${b.adminUrl as string}/api/messages?topic=secrets.root&partition=0`;
    expect((await fetch(url)).status).toBe(401);
    expect((await fetch(url, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
  });
});
