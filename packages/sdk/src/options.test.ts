import { describe, expect, it } from 'vitest';
import { CLIENT_DEFAULTS, resolveClientOptions, type ClientOptions } from './options.js';
import type { WebSocketConstructor } from './transport/websocket.js';

const WebSocket = class {} as unknown as WebSocketConstructor;
const base: ClientOptions = { brokers: ['ws://127.0.0.1:7401'], WebSocket };

describe('resolveClientOptions', () => {
  it('applies the documented defaults', () => {
    const o = resolveClientOptions(base);
    expect(o.poolSize).toBe(CLIENT_DEFAULTS.poolSize);
    expect(o.reconnect).toEqual(CLIENT_DEFAULTS.reconnect);
    expect(o.outbox).toEqual(CLIENT_DEFAULTS.outbox);
    expect(o.ack).toBe('quorum');
    expect(o.producerId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it.each<[string, Partial<ClientOptions>, string]>([
    ['no brokers', { brokers: [] }, 'brokers'],
    ['http URL', { brokers: ['http://x'] }, 'brokers'],
    ['garbage URL', { brokers: ['::'] }, 'brokers'],
    ['pool size 0', { poolSize: 0 }, 'poolSize'],
    ['negative delay', { reconnect: { initialDelayMs: -1 } }, 'reconnect.initialDelayMs'],
    ['cap below initial delay', { reconnect: { initialDelayMs: 500, maxDelayMs: 100 } }, 'reconnect.maxDelayMs'],
    ['factor below 1', { reconnect: { factor: 0.5 } }, 'reconnect.factor'],
    ['unknown policy', { outbox: { policy: 'drop' as 'block' } }, 'outbox.policy'],
    ['unknown ack', { ack: 'some' as 'all' }, 'ack'],
    ['empty producer id', { producerId: '' }, 'producerId'],
    ['empty token', { token: '' }, 'token'],
    ['a numeric token', { token: 42 as unknown as string }, 'token'],
    ['an unknown TLS option', { tls: { verify: false } as never }, 'tls.verify'],
    ['a certificate without its key', { tls: { cert: 'pem' } }, 'tls.cert'],
    ['a non-boolean rejectUnauthorized', { tls: { rejectUnauthorized: 'no' as unknown as boolean } }, 'tls.rejectUnauthorized'],
  ])('rejects %s, naming the option', (_, override, field) => {
    expect(() => resolveClientOptions({ ...base, ...override })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining(field) }));
  });

  it('keeps a token provider as a function, to call on every dial', () => {
    const provider = (): string => 'fresh';
    expect(resolveClientOptions({ ...base, token: provider }).token).toBe(provider);
  });

  it('requires a WebSocket constructor in the core', () => {
    expect(() => resolveClientOptions({ brokers: base.brokers })).toThrow(/WebSocket/);
  });
});
