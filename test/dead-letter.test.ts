import { afterEach, describe, expect, it, vi } from 'vitest';
import { DEAD_LETTER_HEADERS, type Message, type RelayClient, type SubscribeOptions } from '@relaymq/sdk';
import { Fixture } from './support/cluster.js';
import { waitFor } from './support/wait.js';

const fixture = new Fixture();
afterEach(async () => {
  vi.restoreAllMocks();
  await fixture.cleanup();
});

const TOTAL = 60;
const keyOf = (i: number): string => `k${i % 10}`;
/** Keys whose handler always fails. */
const poisoned = new Set(['k3', 'k7']);

async function publishKeyed(client: RelayClient, topic: string): Promise<void> {
  for (let i = 0; i < TOTAL; i++) await client.publish(topic, { i }, { key: keyOf(i), headers: { origin: 'test' } });
}

/**
 * Subscribes `source` with a handler that throws for the poisoned keys, and
 * collects what reaches the dead-letter topic `dlq`.
 */
async function poisonedRun(options: SubscribeOptions, topic: string): Promise<{
  client: RelayClient;
  calls: Map<number, number>;
  handled: number[];
  deadLetters: Array<Message<{ i: number }>>;
}> {
  const broker = await fixture.broker({ defaultPartitions: 4 });
  const client = await fixture.client([broker.url]);
  const calls = new Map<number, number>();
  const handled: number[] = [];
  const deadLetters: Array<Message<{ i: number }>> = [];
  await client.subscribe(`${topic}.dlq`, (m: Message<{ i: number }>) => void deadLetters.push(m), { from: 'earliest' });
  await client.subscribe(
    topic,
    (m: Message<{ i: number }>) => {
      calls.set(m.data.i, (calls.get(m.data.i) ?? 0) + 1);
      // A TypeError too: p-retry alone would not retry one.
      if (poisoned.has(m.key ?? '')) throw m.data.i % 2 === 0 ? new TypeError(`cannot bill ${m.data.i}`) : new Error(`cannot bill ${m.data.i}`);
      handled.push(m.data.i);
    },
    { from: 'earliest', retry: { attempts: 3, minDelayMs: 5, maxDelayMs: 20 }, deadLetter: `${topic}.dlq`, ...options },
  );
  await publishKeyed(client, topic);
  return { client, calls, handled, deadLetters };
}

describe('failed handlers: retry, then dead letter', () => {
  for (const kind of ['plain', 'durable', 'group'] as const) {
    it(`${kind}: exactly the failing messages reach the dead-letter topic, once each, after the configured attempts, and the subscription moves on`, async () => {
      const topic = `orders.${kind}`;
      const failing = Array.from({ length: TOTAL }, (_, i) => i).filter((i) => poisoned.has(keyOf(i)));
      // A durable name or a group (of one member: it owns every partition) named billing.
      const named = kind === 'durable' ? { durable: 'billing' } : kind === 'group' ? { group: 'billing' } : {};
      const { client, calls, handled, deadLetters } = await poisonedRun(named, topic);
      await waitFor(() => handled.length === TOTAL - failing.length && deadLetters.length >= failing.length, 'every message handled or dead-lettered');

      expect(deadLetters.map((m) => m.data.i).sort((a, b) => a - b)).toEqual(failing);
      for (const i of failing) expect(calls.get(i)).toBe(3);
      for (let i = 0; i < TOTAL; i++) if (!poisoned.has(keyOf(i))) expect(calls.get(i)).toBe(1);
      for (const letter of deadLetters) {
        expect(letter.key).toBe(keyOf(letter.data.i));
        expect(letter.headers).toMatchObject({
          origin: 'test',
          [DEAD_LETTER_HEADERS.topic]: topic,
          [DEAD_LETTER_HEADERS.attempts]: '3',
          [DEAD_LETTER_HEADERS.error]: `cannot bill ${letter.data.i}`,
        });
        expect(letter.headers?.[DEAD_LETTER_HEADERS.errorCode]).toBe(letter.data.i % 2 === 0 ? 'TypeError' : undefined);
        expect(Number(letter.headers?.[DEAD_LETTER_HEADERS.partition])).toBeGreaterThanOrEqual(0);
        expect(Number(letter.headers?.[DEAD_LETTER_HEADERS.offset])).toBeGreaterThanOrEqual(0);
        if (kind !== 'plain') expect(letter.headers?.[DEAD_LETTER_HEADERS.subscription]).toBe('billing');
      }
      expect(client.stats().subscribe).toMatchObject({ deadLettered: failing.length, skipped: 0, handlerFailures: failing.length * 3 });

      // Nothing more arrives: each dead letter was published once.
      await client.publish(`${topic}.dlq`, { i: -1 });
      await waitFor(() => deadLetters.some((m) => m.data.i === -1), 'the marker on the dead-letter topic');
      expect(deadLetters.length).toBe(failing.length + 1);

      if (kind !== 'plain') {
        // The positions moved past the dead letters: a new subscriber under the name (or member of the group) gets nothing again.
        await client.close();
        const again = await fixture.client([client.stats().knownBrokers[0] as string]);
        const seen: number[] = [];
        await again.subscribe(topic, (m: Message<{ i: number }>) => void seen.push(m.data.i), { ...named, from: 'earliest' });
        await again.publish(topic, { i: TOTAL }, { key: 'k0' });
        await waitFor(() => seen.length > 0, 'the message published after the restart');
        expect(seen).toEqual([TOTAL]);
      }
    });
  }

  it('without a dead-letter topic, a message is skipped after its attempts with an error event saying so', async () => {
    const broker = await fixture.broker();
    const client = await fixture.client([broker.url]);
    const errors: Array<{ error: unknown; attempts: number | undefined; offset: number | undefined }> = [];
    client.on('error', (error, context) => errors.push({ error, attempts: context?.attempts, offset: context?.message?.offset }));
    const handled: number[] = [];
    let calls = 0;
    await client.subscribe(
      'jobs',
      (m: Message<number>) => {
        calls++;
        if (m.data === 1) throw new Error('job 1 is broken');
        handled.push(m.data);
      },
      { retry: { attempts: 2, minDelayMs: 1, maxDelayMs: 1 } },
    );
    for (const n of [0, 1, 2]) await client.publish('jobs', n);
    await waitFor(() => handled.length === 2, 'the messages around the broken one');
    expect(handled).toEqual([0, 2]);
    expect(calls).toBe(4);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ attempts: 2, offset: 1 });
    expect((errors[0]?.error as Error).message).toBe('job 1 is broken');
    expect(client.stats().subscribe).toMatchObject({ skipped: 1, deadLettered: 0, handlerFailures: 2 });
  });

  it('an error nobody listens to is printed, not swallowed', async () => {
    const printed: unknown[][] = [];
    vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => void printed.push(args));
    const broker = await fixture.broker();
    const client = await fixture.client([broker.url]);
    await client.subscribe(
      'jobs',
      () => {
        throw new Error('nobody hears me');
      },
      { retry: { attempts: 1 } },
    );
    await client.publish('jobs', 'x');
    await waitFor(() => printed.length > 0, 'the unheard error printed');
    expect(String(printed[0]?.[0])).toMatch(/unhandled client error \(message jobs\/0@0\).*client\.on\('error'/);
    expect((printed[0]?.[1] as Error).message).toBe('nobody hears me');
  });

  it('rejects a bad policy by name', async () => {
    const broker = await fixture.broker();
    const client = await fixture.client([broker.url]);
    await expect(client.subscribe('jobs', () => {}, { retry: { attempts: 0 } })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: /retry\.attempts/ });
    await expect(client.subscribe('jobs', () => {}, { retry: { tries: 2 } as never })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: /retry\.tries/ });
    await expect(client.subscribe('jobs', () => {}, { deadLetter: 'dlq.*' })).rejects.toMatchObject({ code: 'INVALID_TOPIC' });
  });
});
