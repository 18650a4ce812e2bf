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
  ])('rejects %s, naming the option', (_, options, field) => {
    expect(() => resolveBrokerOptions(options)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining(field) }));
  });

  it('parses peers into addresses', () => {
    expect(resolveBrokerOptions({ id: 'b1', peers: ['b2@127.0.0.1:7502', 'b3@localhost:7503'] }).peers).toEqual([
      { id: 'b2', host: '127.0.0.1', port: 7502 },
      { id: 'b3', host: 'localhost', port: 7503 },
    ]);
  });
});
