import { describe, expect, it } from 'vitest';
import { FIELD_LIMITS, RelayError } from '../protocol/index.js';
import { DEAD_LETTER_HEADERS, deadLetterHeaders, handleWithPolicy, resolveFailurePolicy, type FailureHooks } from './failure-policy.js';
import type { Message } from './message.js';

const message: Message = { topic: 'orders', partition: 2, offset: 41, timestamp: 0, key: 'c-7', data: 'x' };
const fast = resolveFailurePolicy({ attempts: 3, minDelayMs: 1, maxDelayMs: 1 }, 'orders.dlq');

function hooks(publish: FailureHooks['publish'] = async () => {}): FailureHooks & { failures: unknown[]; dlqFailures: RelayError[] } {
  const failures: unknown[] = [];
  const dlqFailures: RelayError[] = [];
  return { failures, dlqFailures, publish, attemptFailed: (e) => void failures.push(e), deadLetterFailed: (e) => void dlqFailures.push(e) };
}

describe('handleWithPolicy', () => {
  it('retries a failing handler, non-Error throws included, and reports each failed attempt', async () => {
    let calls = 0;
    const h = hooks();
    const outcome = await handleWithPolicy(message, () => {
      calls++;
      if (calls < 3) throw 'a string'; // eslint-style bad throw: still retried
    }, fast, h, new AbortController().signal, undefined);
    expect(outcome).toEqual({ kind: 'handled', attempts: 3 });
    expect(h.failures).toEqual(['a string', 'a string']);
  });

  it('settles a handler that returns normally at once, without a promise, and one that resolves with one call', async () => {
    const h = hooks();
    expect(handleWithPolicy(message, () => {}, fast, h, new AbortController().signal, undefined)).toEqual({ kind: 'handled', attempts: 1 });
    const later = handleWithPolicy(message, async () => {}, fast, h, new AbortController().signal, undefined);
    expect(later).toBeInstanceOf(Promise);
    expect(await later).toEqual({ kind: 'handled', attempts: 1 });
    expect(h.failures).toEqual([]);
    const aborted = new AbortController();
    aborted.abort();
    let called = false;
    expect(handleWithPolicy(message, () => void (called = true), fast, h, aborted.signal, undefined)).toEqual({ kind: 'aborted' });
    expect(called).toBe(false);
  });

  it('waits the backoff before the second call after a first call that threw, and before the third', async () => {
    const calls: number[] = [];
    const spaced = resolveFailurePolicy({ attempts: 3, minDelayMs: 40, maxDelayMs: 40 }, undefined);
    const outcome = await handleWithPolicy(message, () => {
      calls.push(performance.now());
      throw new Error('no');
    }, spaced, hooks(), new AbortController().signal, undefined);
    expect(outcome).toMatchObject({ kind: 'skipped', attempts: 3 });
    expect(calls).toHaveLength(3);
    // randomize: each delay is 40 ms (capped by maxDelayMs), never less (timers may fire a millisecond early).
    expect((calls[1] as number) - (calls[0] as number)).toBeGreaterThanOrEqual(38);
    expect((calls[2] as number) - (calls[1] as number)).toBeGreaterThanOrEqual(38);
  });

  it('gives up after the one call of attempts: 1, reporting it', async () => {
    const h = hooks();
    const once = resolveFailurePolicy({ attempts: 1 }, undefined);
    let calls = 0;
    const outcome = await handleWithPolicy(message, () => {
      calls++;
      return Promise.reject(new Error('no'));
    }, once, h, new AbortController().signal, undefined);
    expect(outcome).toMatchObject({ kind: 'skipped', attempts: 1 });
    expect(calls).toBe(1);
    expect(h.failures).toHaveLength(1);
  });

  it('tries a dead-letter publish again while its outcome is unknown, and gives up on a refusal for good', async () => {
    let sends = 0;
    const flaky = hooks(async () => {
      if (++sends < 3) throw new RelayError('TIMEOUT', 'no ack');
    });
    const fail = (): void => {
      throw new Error('no');
    };
    expect(await handleWithPolicy(message, fail, fast, flaky, new AbortController().signal, 'billing')).toMatchObject({ kind: 'dead-lettered', attempts: 3 });
    expect(flaky.dlqFailures.map((e) => e.code)).toEqual(['TIMEOUT', 'TIMEOUT']);

    const forbidden = hooks(async () => {
      throw new RelayError('FORBIDDEN', 'may not publish to orders.dlq');
    });
    const outcome = await handleWithPolicy(message, fail, fast, forbidden, new AbortController().signal, undefined);
    expect(outcome).toMatchObject({ kind: 'skipped', attempts: 3, deadLetterError: { code: 'FORBIDDEN' } });
  });

  it('stops retrying once the subscription ends: the message is not counted as handled', async () => {
    const ended = new AbortController();
    const slow = resolveFailurePolicy({ attempts: 5, minDelayMs: 10_000, maxDelayMs: 10_000 }, undefined);
    const handling = handleWithPolicy(message, () => {
      throw new Error('no');
    }, slow, hooks(), ended.signal, undefined);
    setTimeout(() => ended.abort(), 5);
    expect(await handling).toEqual({ kind: 'aborted' });
  });

  it('reports a first call that fails after the subscription ended, and calls it no more', async () => {
    const ended = new AbortController();
    const h = hooks();
    let calls = 0;
    let fail: (err: Error) => void = () => {};
    const handling = handleWithPolicy(message, () => {
      calls++;
      return new Promise<void>((_resolve, reject) => (fail = reject));
    }, fast, h, ended.signal, undefined);
    ended.abort();
    fail(new Error('late'));
    expect(await handling).toEqual({ kind: 'aborted' });
    expect(h.failures).toEqual([new Error('late')]);
    expect(calls).toBe(1);
  });
});

describe('deadLetterHeaders', () => {
  it('keeps the message headers that fit and always says where it came from', () => {
    const own = Object.fromEntries(Array.from({ length: FIELD_LIMITS.maxHeaders }, (_, i) => [`h${i}`, 'v']));
    const headers = deadLetterHeaders({ ...message, headers: { ...own, [DEAD_LETTER_HEADERS.topic]: 'older' } }, 3, new RelayError('TIMEOUT', 'late'), 'billing');
    expect(Object.keys(headers).length).toBe(FIELD_LIMITS.maxHeaders);
    expect(headers).toMatchObject({
      [DEAD_LETTER_HEADERS.topic]: 'orders',
      [DEAD_LETTER_HEADERS.partition]: '2',
      [DEAD_LETTER_HEADERS.offset]: '41',
      [DEAD_LETTER_HEADERS.attempts]: '3',
      [DEAD_LETTER_HEADERS.error]: 'late',
      [DEAD_LETTER_HEADERS.errorCode]: 'TIMEOUT',
      [DEAD_LETTER_HEADERS.subscription]: 'billing',
    });
  });

  it('bounds the error text', () => {
    expect(deadLetterHeaders(message, 1, new Error('x'.repeat(10_000)), undefined)[DEAD_LETTER_HEADERS.error]).toHaveLength(1024);
  });
});
