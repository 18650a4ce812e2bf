import { describe, expect, it } from 'vitest';
import { FileTaskChain, OpenFileCache, TRIM_SLACK, type CachedFile } from './open-files.js';

/** A file whose owner says whether it may be closed, and records that it was. */
class File implements CachedFile {
  busy = false;
  open = false;
  closes = 0;
  constructor(readonly name: string) {}
  tryClose(): boolean {
    if (this.busy) return false;
    if (this.open) this.closes++;
    this.open = false;
    return true;
  }
}

const openNames = (files: File[]): string[] => files.filter((f) => f.open).map((f) => f.name);

/** The owner opens `file` and registers it. */
function openIn(cache: OpenFileCache, file: File): void {
  file.open = true;
  cache.opened(file);
}

describe('OpenFileCache', () => {
  it('keeps at most its capacity open, closing the least recently used first', () => {
    const cache = new OpenFileCache(3);
    const files = ['a', 'b', 'c', 'd', 'e'].map((n) => new File(n));
    for (const f of files.slice(0, 3)) openIn(cache, f);
    expect(openNames(files)).toEqual(['a', 'b', 'c']);
    cache.used(files[0] as File); // a is now the most recently used: b goes first
    openIn(cache, files[3] as File);
    expect(openNames(files)).toEqual(['a', 'c', 'd']);
    openIn(cache, files[4] as File);
    expect(openNames(files)).toEqual(['a', 'd', 'e']);
    expect(cache.stats()).toEqual({ open: 3, capacity: 3, evicted: 2, overCapacity: 0 });
  });

  it('never closes a busy file: the bound is exceeded while they are busy, and restored by the next trim once they are idle', () => {
    const cache = new OpenFileCache(2);
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((n) => new File(n)) as [File, File, File, File];
    a.busy = true;
    b.busy = true;
    openIn(cache, a);
    openIn(cache, b);
    openIn(cache, c); // a and b are busy, c was just opened: nothing closes
    expect(openNames([a, b, c, d])).toEqual(['a', 'b', 'c']);
    expect(cache.stats()).toMatchObject({ open: 3, overCapacity: 1 });
    a.busy = false;
    openIn(cache, d); // a (idle now) and c are the oldest idle ones; b, busy, is passed over
    expect(openNames([a, b, c, d])).toEqual(['b', 'd']);
    expect(cache.stats()).toEqual({ open: 2, capacity: 2, evicted: 2, overCapacity: 1 });
    // Three busy at once, then all idle: one trim brings the count back to the capacity.
    b.busy = false;
    const more = ['e', 'f', 'g'].map((n) => new File(n));
    for (const f of more) f.busy = true;
    for (const f of more) openIn(cache, f);
    expect(openNames([a, b, c, d, ...more])).toEqual(['e', 'f', 'g']); // busy; b and d, idle, were closed
    for (const f of more) f.busy = false;
    cache.trim();
    expect(openNames(more)).toEqual(['f', 'g']);
    expect(cache.stats().open).toBe(2);
  });

  it('forgets a file its owner closed, and does not count it as evicted', () => {
    const cache = new OpenFileCache(2);
    const [a, b, c] = ['a', 'b', 'c'].map((n) => new File(n)) as [File, File, File];
    openIn(cache, a);
    openIn(cache, b);
    a.open = false;
    cache.closed(a);
    cache.closed(a); // idempotent
    openIn(cache, c);
    expect([a.closes, b.open, c.open]).toEqual([0, true, true]);
    expect(cache.stats()).toEqual({ open: 2, capacity: 2, evicted: 0, overCapacity: 0 });
    cache.used(a); // not registered: ignored, not counted
    expect(cache.stats().open).toBe(2);
  });

  it('a reopened file counts once, as most recently used', () => {
    const cache = new OpenFileCache(2);
    const [a, b, c] = ['a', 'b', 'c'].map((n) => new File(n)) as [File, File, File];
    openIn(cache, a);
    openIn(cache, b);
    openIn(cache, a);
    expect(cache.stats().open).toBe(2);
    openIn(cache, c);
    expect([a.open, b.open, c.open]).toEqual([true, false, true]);
  });

  it(`costs a bounded number of looks per trim while many files are busy (${TRIM_SLACK}, whatever the excess), and later trims go on from there`, () => {
    const cache = new OpenFileCache(100);
    const files = Array.from({ length: 500 }, (_, i) => new File(`f${i}`));
    let looks = 0;
    for (const f of files) {
      const tryClose = f.tryClose.bind(f);
      f.tryClose = () => {
        looks++;
        return tryClose();
      };
      f.busy = true;
    }
    for (const f of files) openIn(cache, f);
    looks = 0;
    files[499]!.busy = false; // the one idle file is the last one looked at
    cache.trim();
    expect(looks).toBe(TRIM_SLACK); // 400 over the bound, all busy but the last: 464 looks before
    expect(files[499]!.open).toBe(true); // not reached yet
    for (let i = 0; i < 10 && files[499]!.open; i++) cache.trim(); // the busy ones looked at went to the end: the next trims get there
    expect(files[499]!.open).toBe(false);
    for (const f of files) f.busy = false;
    cache.trim();
    expect(cache.stats().open).toBe(100); // idle ones: as many closed as the excess asks, in one trim
  });

  it('refuses a capacity that is not a positive integer', () => {
    expect(() => new OpenFileCache(0)).toThrow(RangeError);
    expect(() => new OpenFileCache(1.5)).toThrow(RangeError);
  });

  it('property: whatever the opens, uses, closes and busy spells, no busy file is closed and the open count is the capacity or the busy files beyond it', () => {
    let seed = 42;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let round = 0; round < 50; round++) {
      const capacity = 1 + random(5);
      const cache = new OpenFileCache(capacity);
      const files = Array.from({ length: 12 }, (_, i) => new File(`f${i}`));
      for (let step = 0; step < 200; step++) {
        const f = files[random(files.length)] as File;
        const op = random(5);
        if (op === 0) {
          openIn(cache, f);
        } else if (op === 1 && f.open) cache.used(f);
        else if (op === 2 && f.open && !f.busy) {
          f.open = false;
          cache.closed(f);
        } else if (op === 3) f.busy = !f.busy;
        else cache.trim();
        const open = files.filter((x) => x.open).length;
        expect(cache.stats().open).toBe(open);
        if (op === 4) {
          const busyOpen = files.filter((x) => x.open && x.busy).length;
          expect(open).toBeLessThanOrEqual(Math.max(capacity, busyOpen));
        }
      }
    }
  });
});

describe('FileTaskChain', () => {
  it('runs tasks one at a time in order, goes on after a failure, is busy only while one runs, and trims after each', async () => {
    const cache = new OpenFileCache(1);
    let idleCloses = 0;
    const idle: CachedFile = { tryClose: () => (idleCloses++, true) };
    const chain = new FileTaskChain(cache);
    const order: string[] = [];
    let release!: () => void;
    const first = chain.run(async () => {
      order.push(`first busy=${chain.busy}`);
      await new Promise<void>((resolve) => (release = resolve));
      throw new Error('disk');
    });
    const second = chain.run(async () => {
      order.push(`second busy=${chain.busy}`);
      return 2;
    });
    await Promise.resolve();
    await Promise.resolve();
    // Over capacity while the first task runs: the cache is trimmed only once it ends.
    cache.opened({ tryClose: () => false });
    cache.opened(idle);
    expect(cache.stats().open).toBe(2);
    expect(idleCloses).toBe(0);
    release();
    await expect(first).rejects.toThrow('disk');
    await expect(second).resolves.toBe(2);
    await chain.settled();
    expect(order).toEqual(['first busy=true', 'second busy=true']);
    expect(chain.busy).toBe(false);
    expect(idleCloses).toBe(1); // the trim after the tasks closed the idle file
    expect(cache.stats().open).toBe(1);
  });
});
