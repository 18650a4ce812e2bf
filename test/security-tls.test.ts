import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import { RelayError, type Message } from '@relaymq/sdk';
import { PeerTransport } from '../packages/broker/src/net/peer-transport.js';
import { loadTls } from '../packages/broker/src/security/tls.js';
import { generatePki, type TestPki } from './support/certs.js';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { RawClient } from './support/raw-client.js';
import { waitFor } from './support/wait.js';

let pki: TestPki;
beforeAll(() => {
  pki = generatePki();
});
afterAll(() => pki.remove());

const fixture = new Fixture();
const transports: PeerTransport[] = [];
afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await fixture.cleanup();
});

/** `connect` should fail: resolves with the error (a bounded wait: connectTimeoutMs). */
async function refused(broker: Broker, url: string, options: Parameters<Fixture['client']>[1] = {}): Promise<RelayError> {
  const err = await fixture.client([url], { connectTimeoutMs: 1500, poolSize: 1, discovery: false, ...options }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `connecting to ${broker.id} should fail`).toBeInstanceOf(RelayError);
  return err as RelayError;
}

describe('TLS for clients', () => {
  it('serves wss:// with certificate and key from files; the SDK trusts the broker through its CA option', async () => {
    const broker = await fixture.broker({ tls: { cert: pki.server.certPath, key: pki.server.keyPath } });
    expect(broker.url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+$/);
    const client = await fixture.client([broker.url], { tls: { ca: pki.ca.cert } });
    const received: string[] = [];
    await client.subscribe('secure.topic', (m: Message) => void received.push(String(m.data)), { from: 'earliest' });
    await client.publish('secure.topic', 'over tls');
    await waitFor(() => received.length === 1, 'the message over wss://');
    expect(received).toEqual(['over tls']);
  });

  it('refuses plain-text clients and clients that do not trust its certificate', async () => {
    const broker = await fixture.broker({ tls: { cert: pki.server.cert, key: pki.server.key } }); // PEM text works too
    const plainUrl = broker.url.replace('wss://', 'ws://');
    await expect(RawClient.open(plainUrl, false)).rejects.toThrow();
    expect((await refused(broker, plainUrl)).code).toBe('NOT_CONNECTED');
    // No CA option: the test CA is not in Node's roots, so the handshake fails on the client side.
    expect((await refused(broker, broker.url)).code).toBe('NOT_CONNECTED');
    // Trusting another CA: same.
    expect((await refused(broker, broker.url, { tls: { ca: pki.rogueCa.cert } })).code).toBe('NOT_CONNECTED');
    await waitFor(() => broker.stats().security.tlsHandshakeFailures >= 1, 'the broker to count failed handshakes');
    expect(broker.stats().connections).toBe(0);
  });

  it('with requireClientCert, accepts only clients presenting a certificate signed by its CA (mutual TLS)', async () => {
    const broker = await fixture.broker({ tls: { cert: pki.server.certPath, key: pki.server.keyPath, ca: pki.ca.certPath, requireClientCert: true } });
    const client = await fixture.client([broker.url], { tls: { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key } });
    await expect(client.publish('mtls', 1)).resolves.toMatchObject({ offset: 0 });
    expect((await refused(broker, broker.url, { tls: { ca: pki.ca.cert } })).code).toBe('NOT_CONNECTED');
    expect((await refused(broker, broker.url, { tls: { ca: pki.ca.cert, cert: pki.rogue.cert, key: pki.rogue.key } })).code).toBe('NOT_CONNECTED');
  });

  it('rejects TLS options that cannot work, naming them', async () => {
    await expect(fixture.broker({ tls: { cert: '/nonexistent/cert.pem', key: pki.server.keyPath } })).rejects.toThrow(/tls\.cert/);
    await expect(fixture.broker({ tls: { cert: pki.server.certPath, key: pki.server.keyPath, requireClientCert: true } })).rejects.toThrow(/tls\.requireClientCert/);
    await expect(fixture.client(['wss://127.0.0.1:1'], { tls: { cert: pki.client.cert } })).rejects.toThrow(/tls\.cert/);
  });
});

describe('TLS between brokers', () => {
  it('replicates over mutually authenticated TLS peer links', async () => {
    const ids = ['t1', 't2', 't3'];
    const peerPorts = await freePorts(3);
    const peers = ids.map((id, i) => `${id}@127.0.0.1:${peerPorts[i]}`);
    const peerTls = { cert: pki.server.certPath, key: pki.server.keyPath, ca: pki.ca.certPath };
    const brokers = await Promise.all(
      ids.map((id, i) => fixture.broker({ id, peerPort: peerPorts[i], peers: peers.filter((_, j) => j !== i), peerTls })),
    );
    const [t1, t2] = brokers as [Broker, Broker, Broker];
    const publisher = await fixture.client([t1.url], { poolSize: 1, discovery: false });
    const subscriber = await fixture.client([t2.url], { poolSize: 1, discovery: false });
    const received: number[] = [];
    await subscriber.subscribe('replicated.tls', (m: Message) => void received.push(m.data as number), { from: 'earliest' });
    const receipts = await Promise.all(Array.from({ length: 50 }, (_, i) => publisher.publish('replicated.tls', i)));
    expect(receipts.map((r) => r.offset)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    await waitFor(() => received.length === 50, 'every message through another replica');
    expect(received).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('refuses a peer without a certificate from the CA, in both directions', async () => {
    const ports = await freePorts(3);
    // "a" dials "b" and "c" (lower ids dial): c is an impostor that dials nobody and is dialed by a and b.
    const addresses = ['a', 'b', 'c'].map((id, i) => ({ id, host: '127.0.0.1', port: ports[i] as number }));
    const make = (id: string, files: { cert: string; key: string }, ca: string): PeerTransport => {
      const transport = new PeerTransport({
        id,
        host: '127.0.0.1',
        port: addresses.find((a) => a.id === id)?.port as number,
        peers: addresses.filter((a) => a.id !== id),
        maxFrameBytes: 1024 * 1024,
        maxQueuedBytes: 1024 * 1024,
        reconnect: { initialDelayMs: 10, maxDelayMs: 50 },
        tls: { ...loadTls('peerTls', { cert: files.cert, key: files.key, ca }), mutual: true },
        log: () => {},
      });
      transports.push(transport);
      return transport;
    };
    const a = make('a', pki.server, pki.ca.cert);
    const b = make('b', pki.server, pki.ca.cert);
    const c = make('c', pki.rogue, pki.ca.cert); // trusts the real CA, but its own certificate is signed by the rogue one
    await Promise.all([a, b, c].map((t) => t.listen()));
    await waitFor(() => a.connectedPeers().includes('b') && b.connectedPeers().includes('a'), 'a and b to connect over TLS');
    // a and b keep redialing c; give them several attempts, then check no link to c ever came up.
    const upEvents: string[] = [];
    c.on('up', (peer) => upEvents.push(peer));
    await new Promise((resolve) => setTimeout(resolve, 500)); // bounded observation window for a negative
    expect(a.connectedPeers()).not.toContain('c');
    expect(b.connectedPeers()).not.toContain('c');
    expect(c.connectedPeers()).toEqual([]);
    expect(upEvents).toEqual([]);

    // An impostor that dials: "0" sorts before "a", so it dials a; a requires a client certificate from the CA.
    // (With TLS 1.3 the dialer finishes its side of the handshake before a checks its certificate, so
    // only a's view counts: a never attaches it, it is cut at once.)
    const aUp: string[] = [];
    a.on('up', (peer) => aUp.push(peer));
    const port0 = (await freePorts(1))[0] as number;
    const dialer = new PeerTransport({
      id: '0',
      host: '127.0.0.1',
      port: port0,
      peers: [addresses[0] as { id: string; host: string; port: number }],
      maxFrameBytes: 1024 * 1024,
      maxQueuedBytes: 1024 * 1024,
      reconnect: { initialDelayMs: 10, maxDelayMs: 50 },
      // Trusts the real CA so that it would accept a's server certificate; its own is rogue.
      tls: { ...loadTls('peerTls', { cert: pki.rogue.cert, key: pki.rogue.key, ca: pki.ca.cert }), mutual: true },
      log: () => {},
    });
    transports.push(dialer);
    await dialer.listen();
    await new Promise((resolve) => setTimeout(resolve, 500)); // bounded observation window for a negative
    expect(aUp).toEqual([]);
    expect(a.connectedPeers()).toEqual(['b']);
  });
});
