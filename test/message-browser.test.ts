/**
 * The message browser shows the applications' data, so over real sockets:
 * once the brokers have an admin token, `/api/messages` (and `/api/replica`,
 * a replica's raw messages) need it on every broker, even while the cluster's
 * state stays open to read; the dashboard's page itself stays loadable
 * under protected reads, since it is static and a browser cannot send a
 * token for it. Without a configured token the browser stays open.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker, BrowseResult } from '@relaymq/broker';
import { Fixture } from './support/cluster.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

const TOKEN = 'browser-admin-token-0123456789ab';

interface Answer {
  status: number;
  body: string;
  authenticate: string | null;
}

async function call(broker: Broker, path: string, token?: string): Promise<Answer> {
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  const response = await fetch(`${broker.adminUrl as string}${path}`, { headers, signal: AbortSignal.timeout(10_000) });
  return { status: response.status, body: await response.text(), authenticate: response.headers.get('www-authenticate') };
}

const MESSAGES = '/api/messages?topic=secret.orders&partition=0&count=3';

describe('message browser behind the admin token', () => {
  it('needs the token on every broker of 3 once one is configured; the cluster state stays open', { timeout: 60_000 }, async () => {
    const brokers = await fixture.cluster(3, { prefix: 'mb', adminPort: 0, adminToken: TOKEN });
    const client = await fixture.client(brokers.map((b) => b.url), { poolSize: 1 });
    for (let i = 0; i < 5; i++) await client.publish('secret.orders', { card: `4111-${i}` });

    for (const broker of brokers) {
      const missing = await call(broker, MESSAGES);
      expect(missing.status, broker.id).toBe(401);
      expect(JSON.parse(missing.body)).toMatchObject({ code: 'UNAUTHORIZED' });
      expect(missing.authenticate).toContain('Bearer');
      expect(missing.body).not.toContain('4111');
      const wrong = await call(broker, MESSAGES, `${TOKEN}-not`);
      expect(wrong.status).toBe(401);
      expect(JSON.parse(wrong.body)).toEqual({ error: 'the admin token is not valid', code: 'UNAUTHORIZED' });

      // With the token, any broker reads them (hosted here or read from a replica).
      const read = await call(broker, MESSAGES, TOKEN);
      expect(read.status, broker.id).toBe(200);
      const result = JSON.parse(read.body) as BrowseResult;
      expect(result.messages.map((m) => (m.json as { card: string }).card)).toEqual(['4111-2', '4111-3', '4111-4']);

      // A replica's raw messages are message contents too.
      expect((await call(broker, '/api/replica?topic=secret.orders&partition=0')).status).toBe(401);
      const replica = await call(broker, '/api/replica?topic=secret.orders&partition=0', TOKEN);
      expect(replica.status).toBe(200);
      expect((JSON.parse(replica.body) as { messages: unknown[] }).messages).toHaveLength(5);

      // The cluster's state, metrics, probes and the console page need no token (reads are not protected).
      for (const path of ['/', '/api/cluster', '/api/topics', '/metrics', '/healthz']) expect((await call(broker, path)).status, `${broker.id} ${path}`).toBe(200);
    }
  });

  it('keeps the console page loadable under protected reads, its data behind the token', { timeout: 30_000 }, async () => {
    const broker = await fixture.broker({ id: 'mb-closed', adminPort: 0, adminToken: TOKEN, adminProtectReads: true });
    const page = await call(broker, '/');
    expect(page.status).toBe(200);
    expect(page.body).toContain('<title>relaymq console</title>');
    expect(page.body).not.toContain(TOKEN);
    for (const path of ['/api/cluster', '/api/messages?topic=a&partition=0', '/metrics']) expect((await call(broker, path)).status, path).toBe(401);
    expect((await call(broker, '/api/cluster', TOKEN)).status).toBe(200);
  });

  it('stays open on a broker without an admin token (a development broker)', { timeout: 30_000 }, async () => {
    const broker = await fixture.broker({ id: 'mb-open', adminPort: 0 });
    const client = await fixture.client([broker.url], { poolSize: 1, discovery: false });
    await client.publish('open.orders', 'hello');
    const read = await call(broker, '/api/messages?topic=open.orders&partition=0&count=1');
    expect(read.status).toBe(200);
    expect((JSON.parse(read.body) as BrowseResult).messages.map((m) => m.json)).toEqual(['hello']);
  });
});
