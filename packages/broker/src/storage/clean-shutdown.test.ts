/**
 * The clean-shutdown marker and the fsyncs at open it spares (clean-shutdown.ts).
 *
 * The crash model (FaultyFileSystem): a "kill" is a process that dies with
 * its handles open, its files reopened by the next process as the page cache
 * left them (written bytes included, fsynced or not); a "crash"
 * (`fs.crash()`) is a power cut, which keeps of each file only what was
 * fsynced. A log reopened after a kill reports as durable what it read back:
 * the next power cut must not lose it.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FaultyFileSystem } from '../../test/support/faulty-fs.js';
import { MemoryFileSystem } from '../../test/support/memory-fs.js';
import { TempDirs, messages } from '../../test/support/segments.js';
import { CLEAN_SHUTDOWN_FILE, OpenSync, syncDataDirectory, takeCleanShutdownMarker, writeCleanShutdownMarker } from './clean-shutdown.js';
import { nodeFileSystem, type FileHandle } from './fs.js';
import { RecordFile } from './record-file.js';
import { SegmentLog } from './segments/segment-log.js';

const temp = new TempDirs();
afterEach(() => temp.cleanup());

const DATA = { size: 20 };

/**
 * A log under `fsync: 'always'` holding 3 fsynced records and 3 more written
 * whose fsync has not run when the process is killed (the page cache keeps
 * them). The killed log is left as it is: its flush never completes.
 */
async function killedBetweenWriteAndFsync(dir: string, fs: FaultyFileSystem): Promise<void> {
  const log = await SegmentLog.open(dir, fs, { fsync: 'always' });
  log.append(messages(0, 3, DATA));
  await log.flush();
  log.append(messages(3, 6, DATA));
  const fsync = fs.pauseNext('datasync');
  log.flush().catch(() => {}); // dies with the process
  await fsync.reached; // written, not fsynced
}

describe('a segment log reopened after a kill', () => {
  it('fsyncs its active segment before reporting its records durable: a power cut then keeps every one', async () => {
    const dir = await temp.make();
    const fs = new FaultyFileSystem(nodeFileSystem);
    await killedBetweenWriteAndFsync(dir, fs);

    const syncs = fs.calls.datasync;
    const reopened = await SegmentLog.open(dir, fs, { fsync: 'always', openSync: new OpenSync(true) });
    expect(reopened.durableOffset).toBe(6);
    expect(fs.calls.datasync - syncs).toBe(1);

    await fs.crash();
    const afterPowerCut = await SegmentLog.open(dir, fs, { fsync: 'always' });
    expect(afterPowerCut.endOffset).toBeGreaterThanOrEqual(reopened.durableOffset);
    await afterPowerCut.close();
  });

  it('fsyncs by default (a log given no decision treats every start as unclean)', async () => {
    const dir = await temp.make();
    const fs = new FaultyFileSystem(nodeFileSystem);
    await killedBetweenWriteAndFsync(dir, fs);
    const reopened = await SegmentLog.open(dir, fs, { fsync: 'always' });
    expect(reopened.durableOffset).toBe(6);
    await fs.crash();
    const afterPowerCut = await SegmentLog.open(dir, fs, { fsync: 'always' });
    expect(afterPowerCut.endOffset).toBe(6);
    await afterPowerCut.close();
  });

  it('trusting the page cache (the marker of a clean stop there was not) loses records it reported durable: what the fsync at open prevents', async () => {
    const dir = await temp.make();
    const fs = new FaultyFileSystem(nodeFileSystem);
    await killedBetweenWriteAndFsync(dir, fs);
    const reopened = await SegmentLog.open(dir, fs, { fsync: 'always', openSync: new OpenSync(false) });
    expect(reopened.durableOffset).toBe(6);
    await fs.crash();
    const afterPowerCut = await SegmentLog.open(dir, fs, { fsync: 'always' });
    expect(afterPowerCut.endOffset).toBe(3); // 3 records reported durable are gone
    await afterPowerCut.close();
  });

  it('after a clean close, an open told the stop was clean fsyncs nothing', async () => {
    const dir = await temp.make();
    const fs = new FaultyFileSystem(nodeFileSystem);
    const log = await SegmentLog.open(dir, fs, { fsync: 'always' });
    log.append(messages(0, 5, DATA));
    await log.close();

    const syncs = fs.calls.datasync;
    const clean = new OpenSync(false);
    const reopened = await SegmentLog.open(dir, fs, { fsync: 'always', openSync: clean });
    expect(fs.calls.datasync - syncs).toBe(0);
    expect(clean.stats()).toEqual({ required: false, files: 0, seconds: 0 });
    expect(reopened.durableOffset).toBe(5);
    await reopened.close();
  });

  it('an empty active segment needs no fsync', async () => {
    const dir = await temp.make();
    const fs = new FaultyFileSystem(nodeFileSystem);
    await (await SegmentLog.open(dir, fs, { fsync: 'always' })).close();
    const syncs = fs.calls.datasync;
    const unclean = new OpenSync(true);
    await (await SegmentLog.open(dir, fs, { fsync: 'always', openSync: unclean })).close();
    expect(fs.calls.datasync - syncs).toBe(0);
    expect(unclean.stats().files).toBe(0);
  });
});

describe('a record file (a split Raft log, the hard-state journal) reopened after a kill', () => {
  /** A record file holding {n: 1} fsynced and {n: 2} written, its process killed before that fsync. */
  const killedBeforeFsync = async (): Promise<{ path: string; fs: FaultyFileSystem }> => {
    const path = join(await temp.make(), 'raft.log');
    const fs = new FaultyFileSystem(nodeFileSystem);
    const { file } = await RecordFile.open(path, fs);
    file.append({ n: 1 });
    await file.flush(true);
    file.append({ n: 2 });
    await file.flush(false);
    return { path, fs };
  };

  it('is fsynced at open: the records it read back survive a power cut', async () => {
    const { path, fs } = await killedBeforeFsync();
    const unclean = new OpenSync(true);
    const { recovered } = await RecordFile.open(path, fs, undefined, unclean);
    expect(recovered.records).toEqual([{ n: 1 }, { n: 2 }]);
    expect(unclean.stats().files).toBe(1);
    await fs.crash();
    const after = await RecordFile.open(path, fs);
    expect(after.recovered.records).toEqual([{ n: 1 }, { n: 2 }]);
    await after.file.close();
  });

  it('without that fsync a power cut loses a record the reopened file returned', async () => {
    const { path, fs } = await killedBeforeFsync();
    const { recovered } = await RecordFile.open(path, fs, undefined, new OpenSync(false));
    expect(recovered.records).toHaveLength(2);
    await fs.crash();
    const after = await RecordFile.open(path, fs);
    expect(after.recovered.records).toEqual([{ n: 1 }]);
    await after.file.close();
  });

  it('reports whether its close made everything durable', async () => {
    const dir = await temp.make();
    const fs = new FaultyFileSystem(nodeFileSystem);
    const { file } = await RecordFile.open(join(dir, 'a.log'), fs);
    file.append({ n: 1 });
    expect(file.closedDurably).toBe(false);
    await file.close();
    expect(file.closedDurably).toBe(true);

    const { file: failing } = await RecordFile.open(join(dir, 'b.log'), fs);
    failing.append({ n: 1 });
    fs.failNext('datasync', 'EIO');
    await failing.close();
    expect(failing.closedDurably).toBe(false);
  });
});

describe('the clean-shutdown marker', () => {
  it('is durable once written, and its removal once taken', async () => {
    const dir = await temp.make();
    const fs = new FaultyFileSystem(nodeFileSystem);
    expect(await takeCleanShutdownMarker(dir, fs)).toBe(false);
    await writeCleanShutdownMarker(dir, fs);
    await fs.crash();
    expect(await fs.stat(join(dir, CLEAN_SHUTDOWN_FILE))).toBeDefined();
    expect(await takeCleanShutdownMarker(dir, fs)).toBe(true);
    await fs.crash();
    expect(await fs.stat(join(dir, CLEAN_SHUTDOWN_FILE))).toBeUndefined();
    expect(await takeCleanShutdownMarker(dir, fs)).toBe(false);
  });

  it('a temporary file left by a stop cut short is no marker', async () => {
    const fs = new MemoryFileSystem();
    await fs.mkdir('/data');
    const tmp = await fs.open(`/data/${CLEAN_SHUTDOWN_FILE}.tmp`, 'write');
    await tmp.close();
    expect(await takeCleanShutdownMarker('/data', fs)).toBe(false);
    expect(await fs.readdir('/data')).toEqual([]);
  });
});

describe('syncDataDirectory (a clean stop after an unclean start)', () => {
  it('fsyncs every file under the data directory, nested ones included, and leaves index and temporary files alone', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const written = async (path: string): Promise<void> => {
      const handle = await fs.open(path, 'write');
      await handle.write(new Uint8Array(100).fill(1), 0);
      await handle.close();
    };
    await fs.mkdir('/data/partitions/t~0/log');
    for (const path of ['/data/hardstate.journal', '/data/partitions/t~0/log/00000000000000000001.log', '/data/partitions/t~0/log/00000000000000000001.idx']) await written(path);
    expect(await syncDataDirectory('/data', fs)).toBe(2);
    await fs.crash();
    expect((await fs.stat('/data/hardstate.journal'))?.size).toBe(100);
    expect((await fs.stat('/data/partitions/t~0/log/00000000000000000001.log'))?.size).toBe(100);
  });
});

describe('OpenSync', () => {
  it('runs at most `parallelism` fsyncs at once, and counts them', async () => {
    let running = 0;
    let most = 0;
    const releases: Array<() => void> = [];
    const handle = {
      datasync: async () => {
        running++;
        most = Math.max(most, running);
        await new Promise<void>((resolve) => releases.push(resolve));
        running--;
      },
    } as unknown as FileHandle;
    const sync = new OpenSync(true, 2);
    const all = Promise.all(Array.from({ length: 5 }, () => sync.sync(handle)));
    for (let round = 0; round < 50 && (releases.length > 0 || running > 0); round++) {
      await new Promise((resolve) => setImmediate(resolve));
      releases.shift()?.();
    }
    await all;
    expect(most).toBe(2);
    expect(sync.stats().files).toBe(5);
  });
});
