import { SignJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker, BrokerOptions } from '@relaymq/broker';
import { createClient, type ClientOptions, type Message, type RelayClient } from '@relaymq/sdk';
import { Fixture } from './support/cluster.js';
import { RawClient } from './support/raw-client.js';
import { nextEvent, waitFor, within } from './support/wait.js';

const SECRET = 'integration-test-secret-32-chars-min!';
const everything = { '*': { publish: { allow: ['>'] }, subscribe: { allow: ['>'] } } };

const fixture = new Fixture();
const raws: RawClient[] = [];
const clients: RelayClient[] = [];
afterEach(async () => {
  for (const raw of raws.splice(0)) raw.close();
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await fixture.cleanup();
});

function jwt(sub: string, expSec: number, secret = SECRET): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt().setExpirationTime(expSec).sign(new TextEncoder().encode(secret));
}
const inSeconds = (s: number): number => Math.floor(Date.now() / 1000) + s;

async function authBroker(extra: BrokerOptions = {}): Promise<Broker> {
  return fixture.broker({ auth: { tokens: { 'static-token-alice': 'alice' }, jwt: { secret: SECRET } }, acl: everything, ...extra });
}

/** Opens a raw connection, says hello with `token`, returns the client without waiting for welcome. */
async function hello(broker: Broker, token: string | undefined): Promise<RawClient> {
  const raw = await RawClient.open(broker.url, false);
  raws.push(raw);
  raw.send({ type: 'hello', version: 1, clientId: 'raw', producerId: 'raw', ...(token === undefined ? {} : { token }) });
  return raw;
}

/** The error a raw hello gets, and that the connection then closes. */
async function refusal(broker: Broker, token: string | undefined): Promise<{ code: string; message: string }> {
  const raw = await hello(broker, token);
  const error = await raw.next('error');
  await raw.waitClosed();
  return error;
}

/** A client that must fail its handshake: resolves with the error of its first failed dial. */
async function failedDial(options: ClientOptions): Promise<string> {
  const client = createClient({ connectTimeoutMs: 5000, poolSize: 1, discovery: false, reconnect: { initialDelayMs: 50, maxDelayMs: 100 }, ...options });
  clients.push(client);
  const failure = nextEvent(client, 'reconnecting', 5000);
  void client.start().catch(() => {});
  return (await failure).error.code;
}

describe('authentication', () => {
  it('keeps a connection whose JWT was accepted within clockToleranceSec open until that tolerance runs out too', async () => {
    const broker = await authBroker({ auth: { jwt: { secret: SECRET, clockToleranceSec: 60 } } });
    // Expired 5 s ago by this clock, inside the 60 s of skew allowed: accepted, so not closed as expired at once.
    const raw = await hello(broker, await jwt('svc-skewed', inSeconds(-5)));
    await raw.next('welcome');
    raw.send({ type: 'ping', id: 1 });
    expect(await raw.next('pong')).toMatchObject({ id: 1 });
    expect(raw.closed).toBeUndefined();
  });

  it('accepts static tokens and HS256 JWTs, from the SDK', async () => {
    const broker = await authBroker();
    const byToken = await fixture.client([broker.url], { token: 'static-token-alice' });
    await expect(byToken.publish('auth.static', 1)).resolves.toMatchObject({ offset: 0 });
    const byJwt = await fixture.client([broker.url], { token: await jwt('svc-b', inSeconds(60)) });
    await expect(byJwt.publish('auth.jwt', 1)).resolves.toMatchObject({ offset: 0 });
    expect(broker.stats().security.authFailures).toBe(0);
  });

  it('refuses missing, unknown, expired and forged tokens with UNAUTHORIZED, and closes', async () => {
    const broker = await authBroker();
    expect(await refusal(broker, undefined)).toMatchObject({ code: 'UNAUTHORIZED' });
    expect(await refusal(broker, 'static-token-mallory')).toMatchObject({ code: 'UNAUTHORIZED' });
    expect(await refusal(broker, await jwt('svc-b', inSeconds(-30)))).toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringMatching(/expired/) });
    expect(await refusal(broker, await jwt('admin', inSeconds(60), 'forged-with-another-secret-32-chars'))).toMatchObject({ code: 'UNAUTHORIZED' });
    expect(broker.stats().security.authFailures).toBe(4);
    // The SDK sees the same code on its failed dial.
    expect(await failedDial({ brokers: [broker.url], token: await jwt('svc-b', inSeconds(-30)) })).toBe('UNAUTHORIZED');
    expect(await failedDial({ brokers: [broker.url] })).toBe('UNAUTHORIZED');
  });

  it('closes a connection that does not authenticate within helloTimeoutMs', async () => {
    const broker = await authBroker({ helloTimeoutMs: 200 });
    const silent = await RawClient.open(broker.url, false);
    raws.push(silent);
    const started = Date.now();
    expect(await silent.next('error')).toMatchObject({ code: 'UNAUTHORIZED' });
    expect((await silent.waitClosed()).reason).toBe('UNAUTHORIZED');
    expect(Date.now() - started).toBeLessThan(2000);
    expect(broker.stats().security.authFailures).toBe(1);
    expect(broker.stats().connections).toBe(0);
  });

  it('calls the token provider on every (re)connect; an expiring JWT is replaced without losing messages', async () => {
    const broker = await authBroker();
    const issued: string[] = [];
    const client = await fixture.client([broker.url], {
      poolSize: 1,
      discovery: false,
      token: async () => {
        // Expires in 1-2 s: the broker closes the connection at expiry and the SDK must come back with a new one.
        const token = await jwt(`svc-${issued.length}`, inSeconds(2));
        issued.push(token);
        return token;
      },
    });
    const received: number[] = [];
    await client.subscribe('refresh', (m: Message) => void received.push(m.data as number), { from: 'earliest' });
    const disconnected = nextEvent(client, 'disconnected', 5000);
    for (let i = 0; i < 10; i++) await client.publish('refresh', i);
    expect((await disconnected).reason.code).toBe('UNAUTHORIZED');
    await nextEvent(client, 'connected', 5000);
    expect(issued.length).toBeGreaterThanOrEqual(2);
    expect(new Set(issued).size).toBe(issued.length);
    for (let i = 10; i < 20; i++) await within(client.publish('refresh', i), `publish ${i}`, 5000);
    await waitFor(() => received.length === 20, 'every message, exactly once, across the re-authentication');
    expect(received).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('rejects inconsistent auth options by name', async () => {
    await expect(fixture.broker({ acl: everything })).rejects.toThrow(/acl needs auth/);
    await expect(fixture.broker({ auth: {} })).rejects.toThrow(/broker option auth needs tokens, jwt or both/);
    await expect(fixture.broker({ auth: { jwt: { secret: 'short' } } })).rejects.toThrow(/auth\.jwt\.secret/);
    await expect(fixture.broker({ auth: { jwt: {} } })).rejects.toThrow(/auth\.jwt needs secret/);
    await expect(fixture.broker({ auth: { tokens: { 'long-enough': 'a' } }, acl: { a: { publish: { allow: ['bad..pattern'] } } } })).rejects.toThrow(/acl\.a\.publish\.allow/);
    await expect(fixture.broker({ auth: { tokens: { 'long-enough': 'a' }, jwt: { secret: SECRET, algorithm: 'x' } as never } })).rejects.toThrow(/auth\.jwt\.algorithm is not a known option/);
  });
});
