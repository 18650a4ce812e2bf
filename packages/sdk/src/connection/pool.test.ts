import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RelayClient } from '../client.js';
import type { WebSocketConstructor, WebSocketLike } from '../transport/websocket.js';

/** A WebSocket whose every dial fails right away, recording the URLs dialed. */
function failingWebSocket(dialed: string[]): WebSocketConstructor {
  return class implements WebSocketLike {
    binaryType = 'arraybuffer';
    readyState = 3;
    bufferedAmount = 0;
    onopen: WebSocketLike['onopen'] = null;
    onmessage: WebSocketLike['onmessage'] = null;
    onclose: WebSocketLike['onclose'] = null;
    onerror: WebSocketLike['onerror'] = null;
    constructor(url: string) {
      dialed.push(url);
      queueMicrotask(() => this.onerror?.({}));
    }
    send(): void {}
    close(): void {}
  };
}

/** Times (on the fake clock) at which dials started. */
async function dialTimes(options: { jitter: boolean; spanMs: number }): Promise<{ times: number[]; dialed: string[] }> {
  const dialed: string[] = [];
  const times: number[] = [];
  const client = new RelayClient({
    brokers: ['ws://broker-a.invalid:7401', 'ws://broker-b.invalid:7402'],
    WebSocket: failingWebSocket(dialed),
    poolSize: 1,
    connectTimeoutMs: 10 * options.spanMs,
    reconnect: { initialDelayMs: 100, factor: 2, maxDelayMs: 1000, jitter: options.jitter },
  });
  client.on('connecting', () => times.push(Date.now()));
  void client.start().catch(() => {});
  await vi.advanceTimersByTimeAsync(options.spanMs);
  await client.close();
  return { times, dialed };
}

const gaps = (times: number[]): number[] => times.slice(1).map((t, i) => t - (times[i] as number));

describe('reconnect backoff (fake clock)', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

  it('grows exponentially from initialDelayMs and is capped at maxDelayMs', async () => {
    const { times } = await dialTimes({ jitter: false, spanMs: 6000 });
    expect(gaps(times).slice(0, 8)).toEqual([100, 200, 400, 800, 1000, 1000, 1000, 1000]);
  });

  it('randomizes each delay within [1x, 2x) of the exponential step, still capped', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const { times } = await dialTimes({ jitter: true, spanMs: 6000 });
    expect(gaps(times).slice(0, 6)).toEqual([150, 300, 600, 1000, 1000, 1000]);
  });

  it('dials with a new socket every attempt (so DNS is resolved again) and alternates brokers', async () => {
    const { times, dialed } = await dialTimes({ jitter: false, spanMs: 2000 });
    expect(dialed.length).toBe(times.length);
    expect(new Set(dialed)).toEqual(new Set(['ws://broker-a.invalid:7401', 'ws://broker-b.invalid:7402']));
    // The broker that failed longest ago is tried next: never the same one twice in a row.
    for (let i = 1; i < dialed.length; i++) expect(dialed[i]).not.toBe(dialed[i - 1]);
  });

  it('gives up after maxAttempts and says so with a closed event', async () => {
    const dialed: string[] = [];
    const client = new RelayClient({
      brokers: ['ws://broker-a.invalid:7401'],
      WebSocket: failingWebSocket(dialed),
      connectTimeoutMs: 60_000,
      reconnect: { initialDelayMs: 10, maxDelayMs: 10, maxAttempts: 3, jitter: false },
    });
    const closed = new Promise<{ reason: { code: string } }>((resolve) => client.once('closed', resolve));
    const started = client.start().catch((err: unknown) => err);
    await vi.advanceTimersByTimeAsync(1000);
    expect(dialed).toHaveLength(3);
    expect((await closed).reason.code).toBe('NOT_CONNECTED');
    expect(await started).toMatchObject({ code: 'NOT_CONNECTED' });
  });
});
