/**
 * Test support for storage: a manual clock for the timers a log uses, temp
 * directories, and message builders. Test code, kept out of `src/` so it never ships.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Timers } from '../../src/storage/segments/options.js';
import type { NewMessage } from '../../src/storage/segments/record.js';

/** Timers that fire only when the test advances time. */
export class ManualTimers implements Timers {
  private nowMs = 0;
  private nextId = 1;
  private readonly timers = new Map<number, { atMs: number; callback: () => void }>();

  setTimeout(callback: () => void, delayMs: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { atMs: this.nowMs + delayMs, callback });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** Timers waiting to fire. */
  get pending(): number {
    return this.timers.size;
  }

  /** Moves time forward by `ms`, firing due timers in time order (each at most once). */
  advance(ms: number): void {
    const target = this.nowMs + ms;
    // Bounded: every turn fires and removes one timer; timers armed by a callback fire in a later advance.
    const due = [...this.timers].filter(([, t]) => t.atMs <= target).sort((a, b) => a[1].atMs - b[1].atMs);
    for (const [id, timer] of due) {
      if (!this.timers.delete(id)) continue;
      this.nowMs = timer.atMs;
      timer.callback();
    }
    this.nowMs = target;
  }
}

/** Creates temp directories and removes them all in `cleanup` (call it in afterEach). */
export class TempDirs {
  private readonly dirs: string[] = [];

  async make(prefix = 'relaymq-storage-'): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), prefix));
    this.dirs.push(dir);
    return dir;
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
  }
}

/** Message `i`: data `m<i>` padded to `size` bytes, timestamp `1000 + 10 * i` unless given. */
export function message(i: number, options: { size?: number; timestamp?: number } = {}): NewMessage {
  const text = `m${i}`;
  const data = Buffer.alloc(Math.max(options.size ?? text.length, text.length), 0x2e);
  data.write(text, 0);
  return { timestamp: options.timestamp ?? 1000 + 10 * i, data: new Uint8Array(data), encoding: 'raw' };
}

/** Messages `from..to-1`. */
export function messages(from: number, to: number, options: { size?: number } = {}): NewMessage[] {
  const out: NewMessage[] = [];
  for (let i = from; i < to; i++) out.push(message(i, options));
  return out;
}

/** The `i` a message built by {@link message} carries. */
export function indexOf(data: Uint8Array): number {
  const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('latin1');
  const match = /^m(\d+)/.exec(text);
  if (match === null) throw new Error(`not a test message: ${text.slice(0, 20)}`);
  return Number(match[1]);
}
