import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Bytes each partition takes on this broker's disk: its message segments
 * (`<dataDir>/partitions/p~<topic>~<n>/`) and its Raft log
 * (`<dataDir>/raft/p~<topic>~<n>.log`), the layout engine/group-factory.ts
 * writes. Topic names never contain `~`, so the names split unambiguously.
 * Returns `topic/partition` → bytes; nothing without a data directory.
 */
export async function partitionDiskBytes(dataDir: string): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  const add = (name: string, bytes: number): void => {
    const match = /^p~(.+)~(\d+)(?:\.log)?$/.exec(name);
    if (match === null) return;
    const key = `${match[1]}/${match[2]}`;
    sizes.set(key, (sizes.get(key) ?? 0) + bytes);
  };
  for (const entry of await readdir(join(dataDir, 'partitions'), { withFileTypes: true }).catch(() => [])) {
    if (entry.isDirectory()) add(entry.name, await directoryBytes(join(dataDir, 'partitions', entry.name)));
  }
  for (const entry of await readdir(join(dataDir, 'raft'), { withFileTypes: true }).catch(() => [])) {
    if (entry.isFile()) add(entry.name, (await stat(join(dataDir, 'raft', entry.name)).catch(() => undefined))?.size ?? 0);
  }
  return sizes;
}

/** Sum of file sizes under `dir` (files removed meanwhile count 0). */
async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += await directoryBytes(path);
    else if (entry.isFile()) total += (await stat(path).catch(() => undefined))?.size ?? 0;
  }
  return total;
}

/** Re-walks the disk at most once per `maxAgeMs`: reports are asked for every second, segments change slowly. */
export class CachedDiskBytes {
  private last: { atMs: number; sizes: Promise<Map<string, number>> } | undefined;

  constructor(
    private readonly dataDir: string | undefined,
    private readonly maxAgeMs = 5000,
  ) {}

  get(nowMs: number): Promise<Map<string, number>> {
    if (this.dataDir === undefined) return Promise.resolve(new Map());
    if (this.last === undefined || nowMs - this.last.atMs >= this.maxAgeMs) this.last = { atMs: nowMs, sizes: partitionDiskBytes(this.dataDir) };
    return this.last.sizes;
  }
}
