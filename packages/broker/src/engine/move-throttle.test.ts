import { describe, expect, it } from 'vitest';
import { MoveThrottle, fetchedBytes } from './move-throttle.js';

function clocked(bytesPerSecond: number) {
  let now = 10_000;
  const slept: number[] = [];
  const throttle = new MoveThrottle(
    bytesPerSecond,
    () => now,
    async (ms) => {
      slept.push(ms);
      now += ms;
    },
  );
  return { throttle, slept, advance: (ms: number) => (now += ms) };
}

describe('MoveThrottle', () => {
  it('makes copies average the rate: each batch waits for the bytes before it and its own', async () => {
    const { throttle, slept } = clocked(1_000_000); // 1 MB/s
    await throttle.took(500_000);
    await throttle.took(500_000);
    await throttle.took(250_000);
    expect(slept).toEqual([500, 500, 250]);
  });

  it('time spent fetching counts: a batch after a pause goes at once for what the pause paid, up to a second', async () => {
    const { throttle, slept, advance } = clocked(1_000_000);
    await throttle.took(100_000); // 100 ms
    advance(1000); // the next batch took a second to fetch: slower than the rate, no wait
    await throttle.took(100_000);
    expect(slept).toEqual([100]);
    // Fetches that keep below the rate never wait (the throttle slept after every batch, halving a slow copy).
    for (let i = 0; i < 5; i++) {
      advance(250);
      await throttle.took(200_000);
    }
    expect(slept).toEqual([100]);
    // Idle time is not saved up as a burst beyond a second: 2 s of bytes after 5 s idle wait 1 s.
    advance(5000);
    await throttle.took(2_000_000);
    expect(slept).toEqual([100, 1000]);
  });

  it('bounds the rate with fetches in flight together (a copy keeps two): their waits add up to all their bytes at the rate', async () => {
    const { throttle, slept } = clocked(1_000_000);
    await Promise.all([throttle.took(500_000), throttle.took(500_000)]);
    await Promise.all([throttle.took(250_000), throttle.took(250_000)]);
    expect(slept.reduce((a, b) => a + b, 0)).toBe(1500);
  });

  it('does not throttle at 0, nor an empty batch', async () => {
    const off = clocked(0);
    await off.throttle.took(1e9);
    expect(off.slept).toEqual([]);
    const on = clocked(1000);
    await on.throttle.took(0);
    expect(on.slept).toEqual([]);
  });

  it('counts the payload bytes of a fetched batch', () => {
    expect(fetchedBytes([{ data: new Uint8Array(3) }, { data: new Uint8Array(7) }])).toBe(10);
    expect(fetchedBytes([])).toBe(0);
  });
});
