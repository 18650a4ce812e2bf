/**
 * A start's verdict on whether a power cut may have cost its replicas
 * entries they acknowledged (last-run.ts), and the record it keeps for the
 * next start.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FaultyFileSystem } from '../../test/support/faulty-fs.js';
import { TempDirs } from '../../test/support/segments.js';
import { nodeFileSystem } from './fs.js';
import { LAST_RUN_FILE, LastRunRecord, judgeStart, readBootId, readLastRun, writeLastRun, type LastRun } from './last-run.js';

const temp = new TempDirs();
afterEach(() => temp.cleanup());

const interval = (bootId: string | null, recovering = false): LastRun => ({ bootId, fsync: 'interval', recovering });

describe('judgeStart', () => {
  it('recovers only after a power cut (or an unknown boot) of a run that acknowledged before fsync', () => {
    expect(judgeStart(interval('b1'), false, 'b2').recovering).toBe(true); // power cut or OS crash
    expect(judgeStart(interval(null), false, undefined).recovering).toBe(true); // no boot id: every unclean stop
    expect(judgeStart(interval('b1'), false, undefined).recovering).toBe(true);
    expect(judgeStart(interval('b1'), false, 'b1').recovering).toBe(false); // kill -9: the page cache kept it
    expect(judgeStart(interval('b1'), true, 'b2').recovering).toBe(false); // a clean stop fsynced everything
    expect(judgeStart({ bootId: 'b1', fsync: 'always', recovering: false }, false, 'b2').recovering).toBe(false);
  });

  it('keeps recovering until an earlier recovery finished, even across a clean stop', () => {
    expect(judgeStart(interval('b1', true), true, 'b1').recovering).toBe(true);
    expect(judgeStart({ bootId: 'b1', fsync: 'always', recovering: true }, false, 'b1').recovering).toBe(true);
  });

  it('assumes the worst of an unclean stop without a record (a directory from before it), not of a new directory', () => {
    expect(judgeStart(undefined, false, 'b1').recovering).toBe(true);
    expect(judgeStart(undefined, true, 'b1').recovering).toBe(false);
    expect(judgeStart(undefined, false, 'b1', true).recovering).toBe(false);
  });
});

describe('the record', () => {
  it('an interval run killed and restarted under always still counts as interval until a clean stop: a power cut before its logs were all opened and fsynced recovers', async () => {
    const dir = await temp.make();
    const fs = new FaultyFileSystem(nodeFileSystem);
    await (await LastRunRecord.begin(dir, fs, 'interval', false, true)).stop();
    // kill -9 of the interval run (same boot, no marker); the next start runs always and opens its logs after this.
    const switched = await LastRunRecord.begin(dir, fs, 'always', false, false);
    expect(switched.verdict.recovering).toBe(false);
    expect(await readLastRun(dir, fs)).toMatchObject({ fsync: 'interval' });
    // A power cut now loses what the interval run acknowledged and no log open fsynced yet.
    await fs.crash();
    expect((await LastRunRecord.begin(dir, fs, 'always', false, false)).verdict.recovering).toBe(true);
    // After a clean stop the policy recorded is the run's own.
    await LastRunRecord.begin(dir, fs, 'always', true, false);
    expect(await readLastRun(dir, fs)).toMatchObject({ fsync: 'always' });
  });

  it('a record that cannot be written (a full disk) does not stop the start, and leaves none: the next unclean start recovers', async () => {
    const dir = await temp.make();
    const fs = new FaultyFileSystem(nodeFileSystem);
    await (await LastRunRecord.begin(dir, fs, 'always', false, true)).stop();
    fs.failNext('write', 'ENOSPC', Infinity);
    const full = await LastRunRecord.begin(dir, fs, 'interval', false, false);
    expect(full.verdict.recovering).toBe(false);
    expect(full.unrecorded).toMatchObject({ code: 'ENOSPC' });
    fs.heal();
    expect(await readLastRun(dir, fs)).toBeUndefined();
    expect((await LastRunRecord.begin(dir, fs, 'interval', false, false)).verdict.recovering).toBe(true);
  });

  it('round-trips, and a malformed one says nothing', async () => {
    const dir = await temp.make();
    expect(await readLastRun(dir, nodeFileSystem)).toBeUndefined();
    await writeLastRun(dir, nodeFileSystem, interval('b1', true));
    expect(await readLastRun(dir, nodeFileSystem)).toEqual(interval('b1', true));
    for (const text of ['{', '[]', '{"bootId":1,"fsync":"interval","recovering":false}', '{"bootId":null,"fsync":"never","recovering":false}', '{"bootId":null,"fsync":"always"}']) {
      const handle = await nodeFileSystem.open(join(dir, LAST_RUN_FILE), 'write');
      await handle.truncate(0);
      await handle.write(new TextEncoder().encode(text), 0);
      await handle.close();
      expect(await readLastRun(dir, nodeFileSystem), text).toBeUndefined();
    }
  });

  it("reads this machine's boot id, and a power-cut test disk says the machine restarted", async () => {
    const real = await readBootId(nodeFileSystem);
    if (process.platform === 'linux') expect(real).toMatch(/^[0-9a-f-]{36}$/);
    const fs = new FaultyFileSystem(nodeFileSystem);
    const before = await readBootId(fs);
    expect(await readBootId(fs)).toBe(before);
    await fs.crash();
    expect(await readBootId(fs)).not.toBe(before);
  });

  it('a start after a power cut of an interval run records that it recovers, until told every replica caught up', async () => {
    const dir = await temp.make();
    const fs = new FaultyFileSystem(nodeFileSystem);
    const first = await LastRunRecord.begin(dir, fs, 'interval', false, true);
    expect(first.verdict.recovering).toBe(false); // a new directory
    await first.stop();

    // kill -9: same boot, no marker.
    const killed = await LastRunRecord.begin(dir, fs, 'interval', false, false);
    expect(killed.verdict).toMatchObject({ recovering: false });

    await fs.crash(); // a power cut
    const cut = await LastRunRecord.begin(dir, fs, 'always', false, false);
    expect(cut.verdict.recovering).toBe(true);
    // Still `interval`: what the cut run acknowledged may stay unsynced until a clean stop.
    expect(await readLastRun(dir, fs)).toMatchObject({ fsync: 'interval', recovering: true });

    vi.useFakeTimers();
    try {
      let recovered = false;
      const done = vi.fn();
      cut.watch(() => recovered, done, 100);
      await vi.advanceTimersByTimeAsync(500);
      expect(done).not.toHaveBeenCalled();
      recovered = true;
      await vi.advanceTimersByTimeAsync(100);
      await cut.stop();
      expect(done).toHaveBeenCalledWith();
    } finally {
      vi.useRealTimers();
    }
    expect(await readLastRun(dir, fs)).toMatchObject({ fsync: 'interval', recovering: false });
    // The next unclean stop on this boot recovers nothing.
    expect((await LastRunRecord.begin(dir, fs, 'always', false, false)).verdict.recovering).toBe(false);
  });
});
