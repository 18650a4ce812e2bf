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
  ])('rejects %s, naming the option', (_, options, field) => {
    expect(() => resolveBrokerOptions(options)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining(field) }));
  });
});
