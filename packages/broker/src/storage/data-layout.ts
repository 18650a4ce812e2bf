/**
 * The storage layout a data directory was created with (`storage.layout`,
 * docs/storage.md), recorded in `<dataDir>/storage-layout` on first use. A
 * broker started with the other layout is refused before it opens anything:
 * there is no in-place migration between `split` and `unified`.
 */
import { join } from 'node:path';
import { nodeFileSystem, readWholeFile, replaceFile, type FileSystem } from './fs.js';
import { LogStorageError } from './segments/errors.js';

/** How partitions are stored on disk (`storage.layout`): a Raft log file and a segment log each, or one log. */
export type StorageLayout = 'split' | 'unified';

const FILE = 'storage-layout';

/**
 * Checks that `dataDir` holds `layout`, recording it when the directory
 * records none. A directory without the record that already holds
 * partitions or Raft logs predates it and is `split`. Throws
 * `LogStorageError` `STORAGE_LAYOUT` (touching nothing) on a mismatch.
 */
export async function checkDataLayout(dataDir: string, layout: StorageLayout, fs: FileSystem = nodeFileSystem): Promise<void> {
  await fs.mkdir(dataDir);
  const path = join(dataDir, FILE);
  const bytes = await readWholeFile(fs, path, 64);
  let recorded: string | undefined = bytes === undefined ? undefined : new TextDecoder().decode(bytes).trim();
  if (recorded === undefined && ((await holdsAny(fs, join(dataDir, 'partitions'))) || (await holdsAny(fs, join(dataDir, 'raft'))))) recorded = 'split';
  if (recorded !== undefined && recorded !== layout) {
    throw new LogStorageError(
      'STORAGE_LAYOUT',
      `data directory ${dataDir} holds storage.layout '${recorded}', and this broker was started with storage.layout '${layout}': ` +
        `start it with --storage-layout ${recorded}, or on an empty data directory (its replicas are then copied from the other brokers, one broker at a time)`,
      { path },
    );
  }
  if (bytes === undefined) await replaceFile(fs, path, `${path}.tmp`, new TextEncoder().encode(`${layout}\n`));
}

async function holdsAny(fs: FileSystem, dir: string): Promise<boolean> {
  try {
    return (await fs.readdir(dir)).length > 0;
  } catch {
    return false;
  }
}
