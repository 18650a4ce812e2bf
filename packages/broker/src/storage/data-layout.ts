/**
 * The storage layout a data directory was created with (`storage.layout`,
 * docs/storage.md), recorded in `<dataDir>/storage-layout` on first use. A
 * directory keeps its layout: a broker given none takes the recorded one,
 * and one given the other layout is refused before it opens anything (there
 * is no in-place migration between `split` and `unified`).
 */
import { join } from 'node:path';
import { nodeFileSystem, readWholeFile, replaceFile, type FileSystem } from './fs.js';
import { LogStorageError } from './segments/errors.js';

/** How partitions are stored on disk (`storage.layout`): a Raft log file and a segment log each, or one log. */
export type StorageLayout = 'split' | 'unified';

/** The layout of a new data directory when the broker is given none. */
export const DEFAULT_STORAGE_LAYOUT: StorageLayout = 'unified';

const FILE = 'storage-layout';

/**
 * The layout `dataDir` is used with: the one it records, else `requested`,
 * else {@link DEFAULT_STORAGE_LAYOUT}; recorded when the directory records
 * none. A directory without the record that already holds partitions or
 * Raft logs predates it and is `split` (so a broker upgraded to the new
 * default keeps opening it as `split`). Throws `LogStorageError`
 * `STORAGE_LAYOUT` (touching nothing) when `requested` is the other layout.
 */
export async function checkDataLayout(dataDir: string, requested: StorageLayout | undefined, fs: FileSystem = nodeFileSystem): Promise<StorageLayout> {
  await fs.mkdir(dataDir);
  const path = join(dataDir, FILE);
  const bytes = await readWholeFile(fs, path, 64);
  let recorded: string | undefined = bytes === undefined ? undefined : new TextDecoder().decode(bytes).trim();
  if (recorded === undefined && ((await holdsAny(fs, join(dataDir, 'partitions'))) || (await holdsAny(fs, join(dataDir, 'raft'))))) recorded = 'split';
  if (recorded !== undefined && recorded !== 'split' && recorded !== 'unified') {
    throw new LogStorageError('STORAGE_LAYOUT', `data directory ${dataDir} records an unknown storage.layout '${recorded}' in ${path}`, { path });
  }
  if (recorded !== undefined && requested !== undefined && recorded !== requested) {
    throw new LogStorageError(
      'STORAGE_LAYOUT',
      `data directory ${dataDir} holds storage.layout '${recorded}', and this broker was started with storage.layout '${requested}': ` +
        `start it with --storage-layout ${recorded} (or without the option: a data directory keeps its layout), or on an empty data directory (its replicas are then copied from the other brokers, one broker at a time)`,
      { path },
    );
  }
  const layout = (recorded as StorageLayout | undefined) ?? requested ?? DEFAULT_STORAGE_LAYOUT;
  if (bytes === undefined) await replaceFile(fs, path, `${path}.tmp`, new TextEncoder().encode(`${layout}\n`));
  return layout;
}

async function holdsAny(fs: FileSystem, dir: string): Promise<boolean> {
  try {
    return (await fs.readdir(dir)).length > 0;
  } catch {
    return false;
  }
}
