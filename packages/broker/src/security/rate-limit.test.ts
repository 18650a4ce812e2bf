import { describe, expect, it } from 'vitest';
import { TokenBucket } from './rate-limit.js';

describe('TokenBucket', () => {
  it('admits a burst, then the rate', () => {
    const bucket = new TokenBucket(100, 10, 0);
    expect(bucket.take(10, 0)).toBe(true);
    expect(bucket.take(1, 0)).toBe(false);
    expect(bucket.take(1, 5)).toBe(false); // 0.5 tokens
    expect(bucket.take(1, 10)).toBe(true); // 1 token after 10 ms at 100/s
    expect(bucket.take(5, 60)).toBe(true);
    expect(bucket.take(1, 60)).toBe(false);
  });

  it('never holds more than the burst', () => {
    const bucket = new TokenBucket(1000, 5, 0);
    expect(bucket.take(5, 60_000)).toBe(true);
    expect(bucket.take(1, 60_000)).toBe(false);
  });

  it('lets a request larger than the burst through a full bucket, then makes it wait off the debt', () => {
    const bucket = new TokenBucket(10, 5, 0);
    expect(bucket.take(20, 0)).toBe(true); // 15 in debt
    expect(bucket.take(1, 1000)).toBe(false); // -5 after one second
    expect(bucket.take(1, 2000)).toBe(true); // 5 after two
  });
});
