import { describe, expect, it } from 'vitest';
import { RelayError } from '@relaymq/sdk/protocol';
import { SWIM_WIRE_LIMITS, checkIdentity, checkMeta, parseSwimMessage } from './validate.js';
import type { SwimMessage } from './types.js';

const alive = { kind: 'alive', id: 'b1', incarnation: 3, address: '10.0.0.1:7501', meta: { clientUrl: 'ws://10.0.0.1:7401', load: { connections: 4, partitionsLed: 1 } } };

describe('parseSwimMessage', () => {
  const valid: SwimMessage[] = [
    { type: 'ping', seq: 1, target: 'b2', updates: [] },
    { type: 'ack', seq: 1, updates: [alive as Extract<SwimMessage, { type: 'ack' }>['updates'][number]] },
    { type: 'nack', seq: 7, updates: [{ kind: 'left', id: 'b3', incarnation: 0 }] },
    { type: 'ping-req', seq: 2, target: 'b3', targetAddress: '10.0.0.3:7501', updates: [{ kind: 'suspect', id: 'b3', incarnation: 1, from: 'b1' }] },
    { type: 'gossip', updates: [{ kind: 'dead', id: 'b4', incarnation: 2, from: 'b1' }] },
    { type: 'sync', reply: true, members: [{ id: 'b1', address: '10.0.0.1:7501', meta: { clientUrl: 'ws://x' }, incarnation: 0, state: 'alive' }] },
  ];
  it.each(valid)('accepts a well-formed $type', (message) => {
    expect(parseSwimMessage(JSON.parse(JSON.stringify(message)))).toEqual({ ok: true, message });
  });

  it('keeps only known fields', () => {
    const parsed = parseSwimMessage({ type: 'gossip', extra: 1, updates: [{ ...alive, evil: true, meta: { ...alive.meta, more: 'x' } }] });
    expect(parsed).toEqual({ ok: true, message: { type: 'gossip', updates: [alive] } });
  });

  const invalid: Array<[string, unknown]> = [
    ['not an object', 'ping'],
    ['null', null],
    ['an array', []],
    ['unknown type', { type: 'hello' }],
    ['negative seq', { type: 'ack', seq: -1, updates: [] }],
    ['fractional seq', { type: 'ack', seq: 1.5, updates: [] }],
    ['updates not an array', { type: 'gossip', updates: {} }],
    ['unknown update kind', { type: 'gossip', updates: [{ kind: 'zombie', id: 'b1', incarnation: 0 }] }],
    ['bad member id', { type: 'ping', seq: 1, target: 'b 2', updates: [] }],
    ['empty id', { type: 'ping', seq: 1, target: '', updates: [] }],
    ['id too long', { type: 'ping', seq: 1, target: 'b'.repeat(65), updates: [] }],
    ['client URL too long', { type: 'gossip', updates: [{ ...alive, meta: { clientUrl: 'w'.repeat(2049) } }] }],
    ['negative load', { type: 'gossip', updates: [{ ...alive, meta: { clientUrl: 'ws://x', load: { connections: -1, partitionsLed: 0 } } }] }],
    ['suspect without accuser', { type: 'gossip', updates: [{ kind: 'suspect', id: 'b1', incarnation: 0 }] }],
    ['sync without reply flag', { type: 'sync', members: [] }],
    ['unknown member state', { type: 'sync', reply: false, members: [{ id: 'b1', address: 'a:1', meta: { clientUrl: 'ws://x' }, incarnation: 0, state: 'zombie' }] }],
    ['too many updates', { type: 'gossip', updates: Array.from({ length: SWIM_WIRE_LIMITS.maxUpdates + 1 }, () => ({ kind: 'left', id: 'b1', incarnation: 0 })) }],
    ['too many members', { type: 'sync', reply: false, members: new Array(SWIM_WIRE_LIMITS.maxSyncMembers + 1).fill(0) }],
  ];
  it.each(invalid)('rejects %s without throwing', (_, value) => {
    const parsed = parseSwimMessage(value);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason.length).toBeGreaterThan(0);
  });
});

describe('own identity and meta', () => {
  it('accepts good values and copies the meta', () => {
    const meta = { clientUrl: 'ws://a', load: { connections: 1, partitionsLed: 0 } };
    const checked = checkMeta(meta);
    expect(checked).toEqual(meta);
    expect(checked).not.toBe(meta);
    expect(() => checkIdentity('b1', '127.0.0.1:7501')).not.toThrow();
  });

  it('throws INVALID_ARGUMENT', () => {
    expect(() => checkMeta({ clientUrl: '' })).toThrow(RelayError);
    expect(() => checkIdentity('b 1', 'x:1')).toThrow(/swim identity/);
    expect(() => checkIdentity('b1', '')).toThrow(RelayError);
  });
});
