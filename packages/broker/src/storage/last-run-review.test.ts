/**
 * Review: a kill -9 of an `interval` run leaves acknowledged writes only in the page cache; the next start fsyncs them
 * only as it opens each log (OpenSync), after it wrote its record. If that start runs `always`, its record says
 * `always` at once, so a power cut before every log was opened and fsynced loses the killed run's acknowledged writes
 * and the start after it is judged "not recovering".
 */
import { afterEach, expect, it } from 'vitest';
import { FaultyFileSystem } from '../../test/support/faulty-fs.js';
import { TempDirs } from '../../test/support/segments.js';
import { nodeFileSystem } from './fs.js';
import { LastRunRecord } from './last-run.js';

const temp = new TempDirs();
afterEach(() => temp.cleanup());

it('interval run killed, restarted under always, power cut before its logs were all opened: the next start recovers', async () => {
  const dir = await temp.make();
  const fs = new FaultyFileSystem(nodeFileSystem);
  await (await LastRunRecord.begin(dir, fs, 'interval', false, true)).stop();
  // kill -9 of the interval run (same boot, no marker); the next start runs always and opens its logs after this.
  const switched = await LastRunRecord.begin(dir, fs, 'always', false, false);
  expect(switched.verdict.recovering).toBe(false);
  await switched.stop();
  // A power cut now loses what the interval run acknowledged and no log open fsynced yet.
  await fs.crash();
  const after = await LastRunRecord.begin(dir, fs, 'always', false, false);
  expect(after.verdict.recovering).toBe(true);
});
