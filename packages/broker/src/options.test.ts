import { describe, expect, it } from 'vitest';
import { BROKER_DEFAULTS, resolveBrokerOptions, type BrokerOptions } from './options.js';

describe('resolveBrokerOptions', () => {
  it('applies the documented defaults', () => {
    const o = resolveBrokerOptions();
    expect(o).toMatchObject(BROKER_DEFAULTS);
    expect(o.advertisedUrl).toBeUndefined();
  });

  it.each<[string, BrokerOptions, string]>([
    ['a port out of range', { port: 70000 }, 'port'],
    ['a fractional port', { port: 1.5 }, 'port'],
    ['zero partitions', { defaultPartitions: 0 }, 'defaultPartitions'],
    ['a tiny maxPayload', { maxPayload: 10 }, 'maxPayload'],
    ['a bad id', { id: 'has space' }, 'id'],
    ['a non-ws advertised URL', { advertisedUrl: 'http://x' }, 'advertisedUrl'],
    ['an unknown option', { prot: 1 } as BrokerOptions, 'prot'],
    ['a malformed peer', { peers: ['b2:7502'] }, 'peers'],
    ['itself as a peer', { id: 'b1', peers: ['b1@127.0.0.1:7501'] }, 'peers'],
    ['a peer listed twice', { peers: ['b2@h:1', 'b2@h:2'] }, 'peers'],
    ['a peer port out of range', { peerPort: -1 }, 'peerPort'],
    ['an ACL without auth', { acl: {} }, 'acl needs auth'],
    ['auth with nothing to check', { auth: {} }, 'auth needs tokens'],
    ['a short static token', { auth: { tokens: { short: 'a' } } }, 'auth.tokens'],
    ['a JWT with no key', { auth: { jwt: {} } }, 'auth.jwt needs'],
    ['a short HS256 secret', { auth: { jwt: { secret: 'x' } } }, 'auth.jwt.secret'],
    ['an unknown JWT option', { auth: { jwt: { secret: 'x'.repeat(32), alg: 'HS256' } as never } }, 'auth.jwt.alg'],
    ['a bad ACL pattern', { auth: { tokens: { 'long-token': 'a' } }, acl: { a: { subscribe: { allow: ['a.>.b'] } } } }, 'acl.a.subscribe.allow'],
    ['an unknown ACL action', { auth: { tokens: { 'long-token': 'a' } }, acl: { a: { read: {} } as never } }, 'acl.a.read'],
    ['client TLS without a key', { tls: { cert: 'c' } as never }, 'tls.key'],
    ['mutual client TLS without a CA', { tls: { cert: 'c', key: 'k', requireClientCert: true } }, 'tls.requireClientCert'],
    ['peer TLS without a CA', { peerTls: { cert: 'c', key: 'k' } as never }, 'peerTls.ca'],
    ['a burst without a rate', { publishBurst: 10 }, 'publishBurst'],
    ['a negative rate', { publishRateLimit: -1 }, 'publishRateLimit'],
    ['zero connections', { maxConnections: 0 }, 'maxConnections'],
    ['an outbound cap below high water plus payload', { maxOutboundBytes: 2048 }, 'maxOutboundBytes'],
  ])('rejects %s, naming the option', (_, options, field) => {
    expect(() => resolveBrokerOptions(options)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining(field) }));
  });

  it('defaults publishBurst to one second of publishRateLimit', () => {
    expect(resolveBrokerOptions({ publishRateLimit: 500 }).publishBurst).toBe(500);
    expect(resolveBrokerOptions({ publishRateLimit: 500, publishBurst: 20 }).publishBurst).toBe(20);
  });

  it('parses peers into addresses', () => {
    expect(resolveBrokerOptions({ id: 'b1', peers: ['b2@127.0.0.1:7502', 'b3@localhost:7503'] }).peers).toEqual([
      { id: 'b2', host: '127.0.0.1', port: 7502 },
      { id: 'b3', host: 'localhost', port: 7503 },
    ]);
  });
});
