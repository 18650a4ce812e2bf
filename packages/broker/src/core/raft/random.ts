/**
 * Injected randomness. The core only ever draws election-timeout jitter
 * from a {@link RandomSource}; the broker passes a source seeded from its
 * environment, the simulator one derived from the run's seed and the node's
 * id (so no two nodes draw the same timeouts, a classic simulation bug).
 *
 * {@link SeededRandom} is xoshiro128** seeded through splitmix32: small, fast,
 * and good enough for jitter and for driving a simulation. Not cryptographic.
 */
import type { RandomSource } from './types.js';

/** FNV-1a over the UTF-16 code units of `text`, 32 bits. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

export class SeededRandom implements RandomSource {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** `seed` is reduced to 32 bits; every seed (0 included) gives a distinct, non-degenerate stream. */
  constructor(seed: number) {
    let state = seed >>> 0;
    const next = (): number => {
      state = (state + 0x9e3779b9) | 0;
      let z = state;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A float in `[0, 1)`. */
  nextFloat(): number {
    return this.nextUint32() / 4294967296;
  }

  /** An integer in `[0, maxExclusive)`; `maxExclusive` must be in `[1, 2^32]`. */
  nextInt(maxExclusive: number): number {
    if (!(maxExclusive >= 1 && maxExclusive <= 4294967296)) throw new RangeError(`nextInt(${maxExclusive})`);
    return Math.floor(this.nextFloat() * Math.floor(maxExclusive));
  }

  /** An integer in `[min, max]`. */
  between(min: number, max: number): number {
    return min + this.nextInt(max - min + 1);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return p > 0 && this.nextFloat() < p;
  }

  /** One element of a non-empty array. */
  pick<E>(items: readonly E[]): E {
    if (items.length === 0) throw new RangeError('pick() from an empty array');
    return items[this.nextInt(items.length)] as E;
  }
}

/** The stream named `label` (e.g. a node id and its restart count) of run `seed`. */
export function deriveRandom(seed: number, label: string): SeededRandom {
  return new SeededRandom(hash32(`${seed >>> 0}/${label}`));
}
