/**
 * Seeded randomness for the simulator. One seed drives the whole run; each
 * node's stream is derived from the seed, its id and its life (restarts), so
 * no two nodes draw the same sequence and adding a node does not shift the
 * others' streams.
 */
import type { RandomSource } from '../../src/core/swim/types.js';

/** FNV-1a over a string, 32 bits. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** mulberry32: small, fast, good enough to drive a simulation. */
export class Prng implements RandomSource {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  nextInt(maxExclusive: number): number {
    if (!(maxExclusive >= 1)) throw new RangeError(`nextInt(${maxExclusive})`);
    return Math.floor(this.next() * maxExclusive);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return p > 0 && this.next() < p;
  }

  /** An integer in [min, max]. */
  between(min: number, max: number): number {
    return min + this.nextInt(max - min + 1);
  }
}

/** The stream of node `id` in its `life`-th process, for run `seed`. */
export function nodeRandom(seed: number, id: string, life: number): Prng {
  return new Prng(hash32(`${seed}/${id}/${life}`));
}
