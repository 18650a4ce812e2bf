import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RelayClient } from './client.js';
import type { DialFailure, RelayError } from './protocol/index.js';
import type { WebSocketConstructor, WebSocketLike } from './transport/websocket.js';

/** A WebSocket whose dials fail as Node's `ws` reports them: an error event carrying a system code per URL. */
function failingWithCodes(codes: Record<string, string | undefined>): WebSocketConstructor {
  return class implements WebSocketLike {
    binaryType = 'arraybuffer';
    readyState = 0;
    bufferedAmount = 0;
    onopen: WebSocketLike['onopen'] = null;
    onmessage: WebSocketLike['onmessage'] = null;
    onclose: WebSocketLike['onclose'] = null;
    onerror: WebSocketLike['onerror'] = null;
    constructor(url: string) {
      const code = codes[url];
      // No code: the dial hangs (a black-holed host), judged by the handshake timeout.
      if (code !== undefined) queueMicrotask(() => this.onerror?.({ error: Object.assign(new Error(`connect ${code}`), { code }), message: `connect ${code}` }));
    }
    send(): void {}
    close(): void {}
  };
}

describe('connect() says why no broker was reached (fake clock)', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('emits the cause on reconnecting from the first attempt and rejects NOT_CONNECTED naming each URL and its cause', async () => {
    const refused = 'ws://127.0.0.1:7401';
    const unknownHost = 'ws://no-such-host.invalid:7402';
    const client = new RelayClient({
      brokers: [refused, unknownHost],
      WebSocket: failingWithCodes({ [refused]: 'ECONNREFUSED', [unknownHost]: 'ENOTFOUND' }),
      poolSize: 2,
      connectTimeoutMs: 1000,
      reconnect: { initialDelayMs: 100, maxDelayMs: 100, jitter: false },
    });
    const causes: Array<{ attempt: number; cause: DialFailure; error: RelayError }> = [];
    client.on('reconnecting', ({ attempt, cause, error }) => causes.push({ attempt, cause, error }));
    const started = client.start().then(
      () => { throw new Error("connected unexpectedly"); },
      (err: unknown) => err as RelayError,
    );
    await vi.advanceTimersByTimeAsync(0);
    // Both first attempts already reported, before any backoff delay.
    expect(causes.filter((c) => c.attempt === 1).map((c) => c.cause.systemCode).sort()).toEqual(['ECONNREFUSED', 'ENOTFOUND']);
    expect(causes[0]?.error.message).toMatch(/^cannot connect to ws:\/\/.+: (connection refused \(ECONNREFUSED\)|host not found \(ENOTFOUND\))$/);
    await vi.advanceTimersByTimeAsync(1000);
    const error = await started;
    expect(error.code).toBe('NOT_CONNECTED');
    expect(error.message).toContain(`${refused}: connection refused (ECONNREFUSED)`);
    expect(error.message).toContain(`${unknownHost}: host not found (ENOTFOUND)`);
    expect(error.details.dialFailures?.map((f) => [f.url, f.kind]).sort()).toEqual([
      [refused, 'refused'],
      [unknownHost, 'not-found'],
    ]);
    expect((error.cause as RelayError).code).toBe('NOT_CONNECTED');
  });

  it('counts a dial still under way at the deadline as a timeout', async () => {
    const hanging = 'ws://10.255.255.1:7401';
    const client = new RelayClient({ brokers: [hanging], WebSocket: failingWithCodes({}), connectTimeoutMs: 500, requestTimeoutMs: 5000 });
    const started = client.start().then(
      () => { throw new Error("connected unexpectedly"); },
      (err: unknown) => err as RelayError,
    );
    await vi.advanceTimersByTimeAsync(500);
    const error = await started;
    expect(error.message).toBe(`no broker reachable within 500 ms: ${hanging}: no answer yet (still dialing)`);
    expect(error.details.dialFailures).toEqual([{ url: hanging, kind: 'timeout', message: 'no answer yet (still dialing)' }]);
  });

  it('names the causes when reconnect attempts are exhausted', async () => {
    const url = 'ws://127.0.0.1:7401';
    const client = new RelayClient({
      brokers: [url],
      WebSocket: failingWithCodes({ [url]: 'ECONNREFUSED' }),
      connectTimeoutMs: 60_000,
      reconnect: { initialDelayMs: 10, maxDelayMs: 10, maxAttempts: 2, jitter: false },
    });
    const started = client.start().then(
      () => { throw new Error("connected unexpectedly"); },
      (err: unknown) => err as RelayError,
    );
    await vi.advanceTimersByTimeAsync(100);
    expect((await started).message).toBe(`no broker reachable; reconnect attempts exhausted: ${url}: connection refused (ECONNREFUSED)`);
  });
});
