import * as net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RelayError, createClient, type ClientOptions, type DialFailure, type RelayClient } from '@relaymq/sdk';
import { generatePki, type TestPki } from './support/certs.js';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { within } from './support/wait.js';

let pki: TestPki;
beforeAll(() => {
  pki = generatePki();
});
afterAll(() => pki.remove());

const fixture = new Fixture();
const clients: RelayClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await fixture.cleanup();
});

/** What a client that cannot connect reports, in order: each `reconnecting` cause, then the rejection of `start()`. */
async function failedConnect(url: string, options: Partial<ClientOptions> = {}): Promise<{ events: string[]; causes: DialFailure[]; error: RelayError; elapsedMs: number }> {
  const client = createClient({ brokers: [url], connectTimeoutMs: 1500, poolSize: 1, discovery: false, reconnect: { initialDelayMs: 50, maxDelayMs: 200 }, ...options });
  clients.push(client);
  const events: string[] = [];
  const causes: DialFailure[] = [];
  // Listeners first: the first attempt's cause is reported on it.
  client.on('reconnecting', ({ attempt, cause }) => {
    events.push(`reconnecting ${attempt}`);
    causes.push(cause);
  });
  const startedMs = Date.now();
  const error = await within(
    client.start().then(
      () => {
        throw new Error(`connected to ${url} unexpectedly`);
      },
      (err: unknown) => {
        events.push('rejected');
        return err as RelayError;
      },
    ),
    'connect() to reject',
    10_000,
  );
  return { events, causes, error, elapsedMs: Date.now() - startedMs };
}

describe('connect() over real sockets says why it could not connect', () => {
  it('a closed port: reconnecting carries ECONNREFUSED from the first attempt, and NOT_CONNECTED names the URL and ECONNREFUSED', async () => {
    const [port] = await freePorts(1);
    const url = `ws://127.0.0.1:${port}`;
    const { events, causes, error, elapsedMs } = await failedConnect(url);
    expect(events[0]).toBe('reconnecting 1');
    expect(events.at(-1)).toBe('rejected');
    expect(causes[0]).toEqual({ url, kind: 'refused', systemCode: 'ECONNREFUSED', message: 'connection refused (ECONNREFUSED)' });
    expect(error).toBeInstanceOf(RelayError);
    expect(error.code).toBe('NOT_CONNECTED');
    expect(error.message).toBe(`no broker reachable within 1500 ms: ${url}: connection refused (ECONNREFUSED)`);
    expect(error.details.dialFailures).toEqual([causes[0]]);
    expect(elapsedMs).toBeLessThan(5000);
  });

  it('a server that takes the connection and never answers the upgrade: the dial times out, and closing the half-open socket crashes nothing', async () => {
    // `ws` reports closing a socket still connecting as an 'error' event; with no listener left that was an uncaught
    // exception, and it took the application down (seen by a benchmark under load).
    const silent = net.createServer(() => {});
    const sockets = new Set<net.Socket>();
    silent.on('connection', (socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
    const url = `ws://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown): void => {
      uncaught.push(err);
    };
    process.on('uncaughtException', onUncaught);
    try {
      const { causes, error } = await failedConnect(url, { requestTimeoutMs: 200 });
      expect(causes[0]?.kind).toBe('timeout');
      expect(error.code).toBe('NOT_CONNECTED');
      await new Promise((resolve) => setTimeout(resolve, 100)); // the close's late 'error' event, if any
      expect(uncaught).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('a broker whose certificate is not trusted: the cause is TLS', async () => {
    const broker = await fixture.broker({ tls: { cert: pki.server.cert, key: pki.server.key } });
    const { causes, error } = await failedConnect(broker.url);
    expect(causes[0]).toMatchObject({ url: broker.url, kind: 'tls' });
    expect(causes[0]?.systemCode).toMatch(/CERT|SIGNED|VERIFY/);
    expect(error.message).toContain(`${broker.url}: TLS failed`);
  });

  it('a refused token: the cause is unauthorized', async () => {
    const broker = await fixture.broker({ auth: { tokens: { 'static-token-alice': 'alice' } } });
    const { causes, error } = await failedConnect(broker.url, { token: 'not-the-token' });
    expect(causes[0]).toMatchObject({ url: broker.url, kind: 'unauthorized' });
    expect(error.details.dialFailures?.[0]?.kind).toBe('unauthorized');
    expect(error.message).toContain(broker.url);
  });
});
