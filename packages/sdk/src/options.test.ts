import { describe, expect, it } from 'vitest';
import { RelayError } from './protocol/index.js';
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
    ['a resend window of 0 messages', { outbox: { resendMessages: 0 } }, 'outbox.resendMessages must be an integer'],
    ['a fractional resend window in bytes', { outbox: { resendBytes: 1.5 } }, 'outbox.resendBytes must be an integer'],
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

  it.each<[string, Record<string, unknown>, string]>([
    ['a misspelled top-level option', { reconect: { maxAttempts: 3 } }, 'option reconect is not a known option (did you mean reconnect?)'],
    ['a misspelled nested option', { reconnect: { maxAttemps: 3 } }, 'option reconnect.maxAttemps is not a known option (did you mean reconnect.maxAttempts?)'],
    ['a wrongly cased option', { poolsize: 3 }, 'option poolsize is not a known option (did you mean poolSize?)'],
    ['an option nothing resembles', { flavour: 'mint' }, 'option flavour is not a known option'],
    ['an unknown outbox option', { outbox: { size: 1 } }, 'option outbox.size is not a known option'],
    ['an unknown commit option', { commit: { everyMs: 1 } }, 'option commit.everyMs is not a known option'],
  ])('rejects %s by name, as the broker does', (_, extra, message) => {
    let error: unknown;
    try {
      resolveClientOptions({ ...base, ...extra } as ClientOptions);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(RelayError);
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect((error as RelayError).message.startsWith(message)).toBe(true);
  });

  it('accepts every documented option, with undefined values as absent', () => {
    const all: Required<ClientOptions> = {
      ...base,
      WebSocket,
      clientId: 'c',
      producerId: 'p',
      token: 't',
      tls: { rejectUnauthorized: true },
      poolSize: 2,
      discovery: true,
      reconnect: { ...CLIENT_DEFAULTS.reconnect },
      outbox: { ...CLIENT_DEFAULTS.outbox },
      ack: 'quorum',
      publishTimeoutMs: 1,
      requestTimeoutMs: 1,
      connectTimeoutMs: 1,
      pingIntervalMs: 10,
      subscriptionCredit: 1,
      subscriptionCreditBytes: 1,
      closeTimeoutMs: 0,
      commit: { ...CLIENT_DEFAULTS.commit },
    };
    expect(() => resolveClientOptions(all)).not.toThrow();
    expect(() => resolveClientOptions({ ...base, reconnect: undefined, tls: undefined })).not.toThrow();
  });

  it('keeps a token provider as a function, to call on every dial', () => {
    const provider = (): string => 'fresh';
    expect(resolveClientOptions({ ...base, token: provider }).token).toBe(provider);
  });

  it('requires a WebSocket constructor in the core', () => {
    expect(() => resolveClientOptions({ brokers: base.brokers })).toThrow(/WebSocket/);
  });
});

describe('the public entry points and a misspelled option', () => {
  it('createClient() throws and connect() rejects with INVALID_ARGUMENT naming it, before any dial (core and Node builds)', async () => {
    let dials = 0;
    const Counting = class {
      constructor() {
        dials++;
        throw new Error('must not dial');
      }
    } as unknown as WebSocketConstructor;
    const misspelled = { brokers: ['ws://127.0.0.1:7401'], WebSocket: Counting, reconect: { maxAttempts: 3 } } as unknown as ClientOptions;
    const expected = expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('option reconect is not a known option (did you mean reconnect?)') });
    const core = await import('./index.js');
    const node = await import('./node.js');
    for (const entry of [core, node]) {
      expect(() => entry.createClient(misspelled)).toThrow(expected);
      await expect(entry.connect(misspelled)).rejects.toThrow(expected);
    }
    // The Node build's own TLS option is checked the same way.
    await expect(node.connect({ brokers: ['wss://127.0.0.1:7401'], tls: { rejectUnathorized: false } } as unknown as ClientOptions)).rejects.toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('tls.rejectUnathorized') }),
    );
    expect(dials).toBe(0);
  });
});
