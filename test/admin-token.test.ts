/**
 * The admin port's authentication over real sockets: mutating endpoints need
 * the admin token (401 with a JSON error without it or with a wrong one, 403
 * when no token is configured), reads stay open unless `adminProtectReads`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { resolveBrokerOptions, type Broker } from '@relaymq/broker';
import { Fixture } from './support/cluster.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

const TOKEN = 'admin-token-for-tests-0123456789';

interface Answer {
  status: number;
  body: { error?: string; code?: string; [key: string]: unknown };
  authenticate: string | null;
}

async function call(broker: Broker, method: string, path: string, options: { token?: string; body?: unknown; rawBody?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  const body = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const response = await fetch(`${broker.adminUrl}${path}`, { method, headers, body, signal: AbortSignal.timeout(10_000) });
  const text = await response.text();
  return { status: response.status, body: text === '' ? {} : (JSON.parse(text) as Answer['body']), authenticate: response.headers.get('www-authenticate') };
}

describe('admin token', () => {
  it('guards the mutating endpoints of a 3-broker cluster; reads stay open', async () => {
    const brokers = await fixture.cluster(3, { prefix: 'at', adminPort: 0, adminToken: TOKEN, defaultPartitions: 2 });
    const b1 = brokers[0] as Broker;

    const missing = await call(b1, 'POST', '/api/topics', { body: { topic: 'guarded' } });
    expect(missing.status).toBe(401);
    expect(missing.body.code).toBe('UNAUTHORIZED');
    expect(missing.body.error).toContain('Authorization: Bearer');
    expect(missing.authenticate).toContain('Bearer');

    const wrong = await call(b1, 'POST', '/api/topics', { token: `${TOKEN}-not`, body: { topic: 'guarded' } });
    expect(wrong.status).toBe(401);
    expect(wrong.body).toEqual({ error: 'the admin token is not valid', code: 'UNAUTHORIZED' });
    // Nothing was created by the refused requests.
    expect((await call(b1, 'GET', '/api/topics?topic=guarded')).status).toBe(404);

    const created = await call(b1, 'POST', '/api/topics', { token: TOKEN, body: { topic: 'guarded', partitions: 5, replicationFactor: 2 } });
    expect(created.status).toBe(201);
    expect(created.body.created).toBe(true);
    const topic = created.body.topic as { topic: string; replicationFactor: number; partitions: Array<{ replicas: string[] }> };
    expect(topic.topic).toBe('guarded');
    expect(topic.replicationFactor).toBe(2);
    expect(topic.partitions).toHaveLength(5);
    for (const p of topic.partitions) expect(new Set(p.replicas).size).toBe(2);

    // Creating it again answers it as it is (idempotent for scripts).
    const again = await call(b1, 'POST', '/api/topics', { token: TOKEN, body: { topic: 'guarded', partitions: 9 } });
    expect(again.status).toBe(200);
    expect(again.body.created).toBe(false);
    expect((again.body.topic as { partitions: unknown[] }).partitions).toHaveLength(5);

    // Reads need no token; another broker describes the topic from its own metadata.
    const described = await call(brokers[2] as Broker, 'GET', '/api/topics?topic=guarded');
    expect(described.status).toBe(200);
    expect((described.body as unknown as { partitions: unknown[] }).partitions).toHaveLength(5);
    expect((await call(b1, 'GET', '/api/cluster')).status).toBe(200);
    expect((await call(b1, 'GET', '/healthz')).status).toBe(200);

    // Bad requests are refused with the field named, once authenticated.
    const bad = await call(b1, 'POST', '/api/topics', { token: TOKEN, body: { topic: 'x', partitions: 0 } });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toContain('partitions');
    const notJson = await call(b1, 'POST', '/api/topics', { token: TOKEN, rawBody: '{nope' });
    expect(notJson.status).toBe(400);
    expect(notJson.body.error).toContain('JSON');
    // A read-only endpoint does not take a mutation, token or not.
    expect((await call(b1, 'POST', '/api/cluster', { token: TOKEN })).status).toBe(405);
  });

  it('disables mutations without a configured token (403), and protects reads when asked', async () => {
    const open = await fixture.broker({ id: 'at-open', adminPort: 0 });
    const refused = await call(open, 'POST', '/api/topics', { token: TOKEN, body: { topic: 'nope' } });
    expect(refused.status).toBe(403);
    expect(refused.body.code).toBe('FORBIDDEN');
    expect(refused.body.error).toContain('--admin-token');
    expect((await call(open, 'GET', '/api/topics')).status).toBe(200);

    const closed = await fixture.broker({ id: 'at-closed', adminPort: 0, adminToken: TOKEN, adminProtectReads: true });
    expect((await call(closed, 'GET', '/api/topics')).status).toBe(401);
    expect((await call(closed, 'GET', '/api/cluster', { token: 'wrong-wrong-wrong-wrong' })).status).toBe(401);
    expect((await call(closed, 'GET', '/api/topics', { token: TOKEN })).status).toBe(200);
    // Probes stay open.
    expect((await call(closed, 'GET', '/healthz')).status).toBe(200);
    expect((await call(closed, 'GET', '/readyz')).status).toBe(200);
    // Standalone: one copy whatever was asked, the partitions as asked.
    const created = await call(closed, 'POST', '/api/topics', { token: TOKEN, body: { topic: 'solo', partitions: 3 } });
    expect(created.status).toBe(201);
    expect((created.body.topic as { partitions: unknown[] }).partitions).toHaveLength(3);
  });

  it('validates the options: a short token, protected reads without a token', () => {
    expect(() => resolveBrokerOptions({ adminToken: 'short' })).toThrow(/adminToken must be at least 16 characters/);
    expect(() => resolveBrokerOptions({ adminToken: 'has a space in it, long enough' })).toThrow(/adminToken must be printable/);
    expect(() => resolveBrokerOptions({ adminProtectReads: true })).toThrow(/adminProtectReads needs adminToken/);
    expect(resolveBrokerOptions({ adminToken: TOKEN }).adminToken).toBe(TOKEN);
  });
});
