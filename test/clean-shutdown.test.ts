import { existsSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { nodeFileSystem, type FileHandle, type FileStat, type FileSystem, type OpenMode } from '../packages/broker/src/storage/fs.js';
import { CLEAN_SHUTDOWN_FILE } from '../packages/broker/src/storage/clean-shutdown.js';
import { FaultyFileSystem } from '../packages/broker/test/support/faulty-fs.js';
import { BrokerProcess } from './support/broker-process.js';
import { Fixture } from './support/cluster.js';
import { tempDirs } from './support/temp-dirs.js';
import { waitFor, within } from './support/wait.js';

/**
 * The clean-shutdown marker (packages/broker/src/storage/clean-shutdown.ts,
 * docs/storage.md "Clean shutdown"): a broker's clean stop leaves it, and the
 * next start then fsyncs none of the logs it opens; without it (kill -9)
 * every log holding bytes is fsynced before it is used.
 */
const fixture = new Fixture();
const tempDir = tempDirs('relaymq-clean-shutdown-');
afterEach(async () => {
  await BrokerProcess.stopAll();
  await fixture.cleanup();
});

/**
 * Node's file system, counting the fdatasyncs of data files (segments, Raft
 * logs, the hard-state journal) through a handle that wrote nothing: the
 * fsyncs at open (a write's own fsync follows a write through its handle).
 */
class SyncCounting implements FileSystem {
  syncsAtOpen = 0;
  open(path: string, mode: OpenMode): Promise<FileHandle> {
    return nodeFileSystem.open(path, mode).then((handle) => {
      if (!path.endsWith('.log') && !path.endsWith('.journal')) return handle;
      let wrote = false;
      const { write, writeSync, datasync } = handle;
      handle.write = (data, position) => ((wrote = true), write.call(handle, data, position));
      if (writeSync !== undefined) handle.writeSync = (data, position) => ((wrote = true), writeSync.call(handle, data, position));
      handle.datasync = () => {
        if (!wrote) this.syncsAtOpen++;
        return datasync.call(handle);
      };
      delete (handle as { datasyncSync?: unknown }).datasyncSync; // every fsync through datasync, counted
      return handle;
    });
  }
  readdir = (dir: string): Promise<string[]> => nodeFileSystem.readdir(dir);
  mkdir = (dir: string): Promise<void> => nodeFileSystem.mkdir(dir);
  rename = (from: string, to: string): Promise<void> => nodeFileSystem.rename(from, to);
  unlink = (path: string): Promise<void> => nodeFileSystem.unlink(path);
  stat = (path: string): Promise<FileStat | undefined> => nodeFileSystem.stat(path);
  syncDir = (dir: string): Promise<void> => nodeFileSystem.syncDir(dir);
}

describe('the clean-shutdown marker', () => {
  it('a clean stop leaves it; the next start takes it and fsyncs no log at open; a start without it fsyncs each and says so', async () => {
    const dataDir = await tempDir();
    const marker = join(dataDir, CLEAN_SHUTDOWN_FILE);
    const start = async (fs: SyncCounting, lines: string[]) => {
      const broker = await fixture.broker({ id: 's1', dataDir, defaultPartitions: 3, fileSystem: fs, log: (_level, message, fields) => lines.push(`${message} ${JSON.stringify(fields ?? {})}`) });
      return broker;
    };

    const first = await start(new SyncCounting(), []);
    const client = await fixture.client([first.url], { poolSize: 1, discovery: false });
    await within(Promise.all(Array.from({ length: 30 }, (_, i) => client.publish('marker.t', `m${i}`, { key: `k${i}` }))), 'the publishes', 30_000);
    await client.close();
    await within(first.close(), 'the broker to close', 60_000);
    expect(existsSync(marker)).toBe(true);

    const cleanFs = new SyncCounting();
    const cleanLines: string[] = [];
    const second = await start(cleanFs, cleanLines);
    expect(existsSync(marker)).toBe(false); // taken before anything is opened: a kill from now on leaves none
    const syncsAtCleanStart = cleanFs.syncsAtOpen;
    expect(cleanLines.filter((l) => l.startsWith('no clean-shutdown marker'))).toEqual([]);
    await within(second.close(), 'the broker to close', 60_000);
    expect(existsSync(marker)).toBe(true);

    await unlink(marker); // as after kill -9
    const uncleanFs = new SyncCounting();
    const uncleanLines: string[] = [];
    const third = await start(uncleanFs, uncleanLines);
    const said = uncleanLines.filter((l) => l.startsWith('no clean-shutdown marker'));
    expect(said).toHaveLength(1);
    const files = (JSON.parse(said[0]?.slice(said[0].indexOf('{')) ?? '{}') as { files?: number }).files ?? 0;
    // The metadata Raft log, the partition logs holding messages and the hard-state journal hold bytes: each fsynced once at open.
    expect(files).toBeGreaterThanOrEqual(3);
    expect(uncleanFs.syncsAtOpen).toBe(files);
    expect(syncsAtCleanStart).toBe(0);
    await within(third.close(), 'the broker to close', 60_000);
  }, 180_000);

  it('a broker process killed with SIGKILL leaves no marker: its restart fsyncs the logs at open and logs it; after SIGTERM it does not', async () => {
    const dataDir = await tempDir();
    const args = ['--data', dataDir, '--log-level', 'info'];
    const first = await BrokerProcess.start('k1', args, 30_000);
    const client = await fixture.client([first.url], { poolSize: 1, discovery: false });
    await within(client.publish('killed.t', 'before the kill'), 'a publish', 30_000);
    await client.close();
    await first.signal('SIGKILL');
    expect(existsSync(join(dataDir, CLEAN_SHUTDOWN_FILE))).toBe(false);

    const second = await BrokerProcess.start('k1', args, 30_000);
    await waitFor(() => second.stderr.includes('broker listening'), 'the listening log line (after the marker line)');
    expect(second.stderr).toContain('no clean-shutdown marker');
    const again = await fixture.client([second.url], { poolSize: 1, discovery: false });
    await within(again.publish('killed.t', 'after the restart'), 'a publish after the restart', 30_000);
    await again.close();
    expect(await second.signal('SIGTERM')).toBe(0);
    expect(existsSync(join(dataDir, CLEAN_SHUTDOWN_FILE))).toBe(true);

    const third = await BrokerProcess.start('k1', args, 30_000);
    await waitFor(() => third.stderr.includes('broker listening'), 'the listening log line');
    expect(third.stderr).not.toContain('no clean-shutdown marker');
    await third.signal('SIGTERM');
  }, 180_000);
});

describe('the clean-shutdown marker after an unclean start', () => {
  /**
   * A start without the marker fsyncs the logs it opens; a file it does not
   * open (a partition whose group is not created in that run: its topic's
   * creation above the metadata commit persisted, with no leader to learn
   * more from; a group whose open failed; a replica's files left by a crash
   * in a drop) keeps what a killed process wrote and never fsynced. The
   * marker that run's clean stop leaves tells the next start to trust every
   * file as it finds it: a power cut after that must not take bytes from any.
   */
  it('is left only once every file of the data directory is durable, not just those the run opened', async () => {
    const dataDir = await tempDir();
    const fs = new FaultyFileSystem(nodeFileSystem);
    // Written by the killed process, not fsynced (its directory entry is: the file is older than the kill).
    const unopened = join(dataDir, 'partitions', 'later.t~0', '00000000000000000001.log');
    await fs.mkdir(join(dataDir, 'partitions', 'later.t~0'));
    const created = await fs.open(unopened, 'write');
    await created.close();
    await fs.syncDir(join(dataDir, 'partitions', 'later.t~0'));
    const written = await fs.open(unopened, 'write');
    await written.write(new Uint8Array(4096).fill(7), 0);
    await written.close();

    const broker = await fixture.broker({ id: 'u1', dataDir, fileSystem: fs, log: () => {} });
    await within(broker.close(), 'the broker to close', 60_000);
    expect(existsSync(join(dataDir, CLEAN_SHUTDOWN_FILE))).toBe(true);

    await fs.crash(); // the power cut the marker vouches against
    expect((await fs.stat(unopened))?.size).toBe(4096);
  }, 60_000);
});
