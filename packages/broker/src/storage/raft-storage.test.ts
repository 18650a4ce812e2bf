import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConfChange, Entry } from '../core/raft/index.js';
import { nodeFileSystem } from './fs.js';
import { FaultyFileSystem } from '../../test/support/faulty-fs.js';
import { MemoryFileSystem } from '../../test/support/memory-fs.js';
import { DurableRaftStorage } from './raft-storage.js';
import { RAFT_STORAGES } from '../../test/support/raft-storages.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

const entry = (index: number, term: number, data: string): Entry<string> => ({ type: 'normal', index, term, data });

describe('DurableRaftStorage in memory', () => {
  it('keeps everything in memory when given no path', async () => {
    const storage = await DurableRaftStorage.open<string, never>(undefined, ['a']);
    storage.append([entry(1, 1, 'm')]);
    await storage.sync();
    expect(storage.reader.lastIndex()).toBe(1);
  });
});

describe.each(RAFT_STORAGES)('Raft storage over a $name', ({ open }) => {
  it('survives a restart with term, vote and log, including an overwritten suffix', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'relaymq-raft-'));
    dirs.push(dir);
    const path = join(dir, 'g.log');
    const first = await open<string, never>(path, ['a', 'b', 'c']);
    first.setHardState({ term: 2, vote: 'b', commit: 0 });
    first.append([entry(1, 1, 'x'), entry(2, 1, 'y'), entry(3, 2, 'z')]);
    first.append([entry(3, 3, 'z2')]); // a new leader overwrote index 3
    first.setHardState({ term: 3, vote: 'c', commit: 2 });
    await first.sync();
    await first.close();

    const again = await open<string, never>(path, ['a', 'b', 'c']);
    expect(again.hardState).toEqual({ term: 3, vote: 'c', commit: 2 });
    expect(again.reader.lastIndex()).toBe(3);
    expect(again.reader.entries(1, 4, 10).map((e) => (e.type === 'normal' ? e.data : ''))).toEqual(['x', 'y', 'z2']);
    await again.close();
  });

  it('loses nothing that sync() returned for, even if the process dies right after', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'relaymq-raft-'));
    dirs.push(dir);
    const path = join(dir, 'g.log');
    const storage = await open<string, never>(path, ['a']);
    storage.setHardState({ term: 1, vote: 'a', commit: 0 });
    storage.append([entry(1, 1, 'kept')]);
    await storage.sync();
    storage.append([entry(2, 1, 'never synced')]); // no sync: a crash may lose it (and Raft never acted on it)
    // Reopen without closing, as after kill -9.
    const reopened = await open<string, never>(path, ['a']);
    expect(reopened.hardState.vote).toBe('a');
    expect(reopened.reader.lastIndex()).toBe(1);
    await reopened.close();
    await storage.close();
  });

  it('after a failed fsync, reload() keeps exactly what was fsynced: what a crash now would leave', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'relaymq-raft-'));
    dirs.push(dir);
    const fs = new FaultyFileSystem(nodeFileSystem);
    const storage = await open<string, never>(join(dir, 'g.log'), ['a', 'b', 'c'], { fsync: 'always', fsyncIntervalMs: 1000, fs });
    storage.setHardState({ term: 1, vote: 'b', commit: 0 });
    storage.append([entry(1, 1, 'x'), entry(2, 1, 'y')]);
    await storage.sync();
    storage.append([entry(3, 1, 'lost?')]);
    storage.setHardState({ term: 2, vote: 'c', commit: 2 });
    fs.failNext('datasync', 'EIO');
    await expect(storage.sync()).rejects.toMatchObject({ code: 'STORAGE_ERROR' });
    expect(storage.failure?.code).toBe('STORAGE_ERROR');
    await storage.reload();
    expect(storage.hardState).toEqual({ term: 1, vote: 'b', commit: 0 });
    expect(storage.reader.lastIndex()).toBe(2);
    // Writes go on from there, and a restart reads the same.
    storage.append([entry(3, 1, 'z')]);
    await storage.sync();
    expect(storage.failure).toBeUndefined();
    await storage.close();
    const again = await open<string, never>(join(dir, 'g.log'), ['a', 'b', 'c']);
    expect(again.reader.entries(1, 4, 10).map((e) => (e.type === 'normal' ? e.data : ''))).toEqual(['x', 'y', 'z']);
    await again.close();
  });

  it.each(['ENOSPC on write', 'EIO on fsync'])("under interval (an entry is acknowledged once written), reload() after %s keeps the entries written before the failure, durably", async (fault) => {
    const dir = await mkdtemp(join(tmpdir(), 'relaymq-raft-'));
    dirs.push(dir);
    const fs = new FaultyFileSystem(nodeFileSystem);
    const options = { fsync: 'interval' as const, fsyncIntervalMs: 60_000, fs };
    const storage = await open<string, never>(join(dir, 'g.log'), ['a', 'b', 'c'], options);
    storage.setHardState({ term: 1, vote: 'b', commit: 0 });
    storage.append([entry(1, 1, 'x')]);
    await storage.sync(); // fsynced with the vote
    storage.append([entry(2, 1, 'y'), entry(3, 1, 'z')]);
    await storage.sync(); // written only: a follower acknowledges them now
    storage.append([entry(4, 1, 'w')]);
    if (fault === 'ENOSPC on write') fs.failNext('write', 'ENOSPC');
    else {
      storage.setHardState({ term: 2, vote: 'c', commit: 0 }); // a vote change is fsynced at once: that fsync fails, and the kernel drops the unsynced pages
      fs.failNext('datasync', 'EIO');
    }
    await expect(storage.sync()).rejects.toMatchObject({ code: fault === 'ENOSPC on write' ? 'STORAGE_FULL' : 'STORAGE_ERROR' });
    await storage.reload();
    const data = (s: typeof storage): string[] => s.reader.entries(1, s.reader.lastIndex() + 1, 10).map((e) => (e.type === 'normal' ? e.data : ''));
    // Entry 4 was never acknowledged: lost with the failed write, or kept when the failing sync wrote it whole.
    expect(data(storage).slice(0, 3)).toEqual(['x', 'y', 'z']);
    if (fault === 'ENOSPC on write') expect(data(storage)).toEqual(['x', 'y', 'z']);
    // Reopened without closing (kill -9): the reload made them durable.
    const again = await open<string, never>(join(dir, 'g.log'), ['a', 'b', 'c'], options);
    expect(data(again).slice(0, 3)).toEqual(['x', 'y', 'z']);
    await again.close();
    await storage.close();
  });

});

/** A storage under `interval` (never fsynced by its timer in a test) on a file system whose `crash()` is a power cut. */
async function powerCutStorage(open: (typeof RAFT_STORAGES)[number]['open']) {
  const dir = await mkdtemp(join(tmpdir(), 'relaymq-raft-'));
  dirs.push(dir);
  const fs = new FaultyFileSystem(nodeFileSystem);
  const options = { fsync: 'interval' as const, fsyncIntervalMs: 60_000, fs };
  const path = join(dir, 'g.log');
  return { fs, path, options, storage: await open<string, never>(path, ['a', 'b', 'c'], options) };
}

describe.each(RAFT_STORAGES)('Raft storage over a $name under interval, after a power cut', ({ name, open }) => {
  it('an overwrite written and not fsynced is lost: a record file gives back the entries it replaced, a segment log was cut durably', async () => {
    // What the Raft core must expect of a log that may lack what it acknowledged (raft.ts, handleHeartbeat): past
    // its commit it may hold the entries an acknowledged overwrite had replaced, not the leader's.
    const { fs, path, options, storage } = await powerCutStorage(open);
    storage.setHardState({ term: 1, vote: null, commit: 1 });
    storage.append([entry(1, 1, 'x'), entry(2, 1, 'o1'), entry(3, 1, 'o2')]);
    await storage.sync(); // fsynced with the term
    storage.setHardState({ term: 2, vote: null, commit: 1 });
    await storage.sync(); // a new leader's term: fsynced
    storage.append([entry(2, 2, 'noop'), entry(3, 2, 'w1')]); // its entries overwrite 2, 3
    storage.setHardState({ term: 2, vote: null, commit: 3 });
    await storage.sync(); // written only: acknowledged now
    await fs.crash();
    const again = await open<string, never>(path, ['a', 'b', 'c'], options);
    const held = again.reader.entries(1, again.reader.lastIndex() + 1, 10).map((e) => `${e.index}@${e.term}`);
    expect(held).toEqual(name === 'record file' ? ['1@1', '2@1', '3@1'] : ['1@1']);
    expect(again.hardState).toEqual({ term: 2, vote: null, commit: 1 });
    await again.close();
  });

  for (const durable of [true, false]) {
    it(`a commit that passed a configuration entry ${durable ? 'is durable with the entries under it (Ready.commitPassedConf)' : 'is lost if not set durable, as any commit may be'}`, async () => {
      const { fs, path, options, storage } = await powerCutStorage(open);
      storage.setHardState({ term: 1, vote: null, commit: 1 });
      storage.append([entry(1, 1, 'x')]);
      await storage.sync(); // fsynced with the term
      const removeB: Entry<string> = { type: 'conf', index: 2, term: 1, change: { type: 'remove', node: 'b' }, conf: { voters: ['a', 'c'], learners: [] } };
      storage.append([removeB, entry(3, 1, 'y')]);
      storage.setHardState({ term: 1, vote: null, commit: 3 }, durable);
      await storage.sync();
      await fs.crash();
      const again = await open<string, never>(path, ['a', 'b', 'c'], options);
      expect(again.hardState.commit).toBe(durable ? 3 : 1);
      expect(again.reader.lastIndex()).toBe(durable ? 3 : 1);
      await again.close();
    });
  }
});

describe.each(RAFT_STORAGES)('Raft storage over a $name: the configuration', ({ open }) => {
  const conf = (index: number, term: number, change: ConfChange, voters: string[], learners: string[] = []): Entry<string> => ({
    type: 'conf',
    index,
    term,
    change,
    conf: { voters, learners },
  });

  it('records its bootstrap voters on the first start and keeps them: a later start with other voters changes nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'relaymq-raft-'));
    dirs.push(dir);
    const path = join(dir, 'g.log');
    const first = await open<string, never>(path, ['a', 'b', 'c']);
    first.setHardState({ term: 1, vote: 'a', commit: 0 });
    await first.sync();
    await first.close();

    // The broker restarts with a fourth peer on its command line: the group still started from a, b, c.
    const again = await open<string, never>(path, ['a', 'b', 'c', 'd']);
    expect(again.bootstrapVoters).toEqual(['a', 'b', 'c']);
    expect(again.reader.initialState().confState.voters).toEqual(['a', 'b', 'c']);
    expect(again.confState.voters).toEqual(['a', 'b', 'c']);
    await again.close();
  });

  it('says which configuration its log has in effect (the last conf entry), and a compacted log keeps it in its snapshot', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'relaymq-raft-'));
    dirs.push(dir);
    const path = join(dir, 'g.log');
    const storage = await open<string, string>(path, ['a', 'b', 'c']);
    storage.append([entry(1, 1, 'x'), conf(2, 1, { type: 'add-learner', node: 'd' }, ['a', 'b', 'c'], ['d']), conf(3, 1, { type: 'remove', node: 'c' }, ['a', 'b'], ['d'])]);
    storage.setHardState({ term: 1, vote: 'a', commit: 3 });
    await storage.sync();
    expect(storage.confState).toEqual({ voters: ['a', 'b'], learners: ['d'] });
    await storage.compact(3, 'state');
    await storage.close();

    const again = await open<string, string>(path, ['x', 'y', 'z']);
    expect(again.bootstrapVoters).toEqual(['a', 'b', 'c']);
    expect(again.reader.snapshot()?.meta.conf).toEqual({ voters: ['a', 'b'], learners: ['d'] });
    expect(again.confState).toEqual({ voters: ['a', 'b'], learners: ['d'] });
    await again.close();
  });

  it('resumeAt gives a state machine ahead of the log the latest configuration the log knows, not the bootstrap one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'relaymq-raft-'));
    dirs.push(dir);
    const storage = await open<string, string>(join(dir, 'g.log'), ['a', 'b', 'c']);
    storage.append([entry(1, 1, 'x'), conf(2, 1, { type: 'remove', node: 'c' }, ['a', 'b'])]);
    await storage.sync();
    storage.resumeAt(5, 1, 'checkpoint');
    expect(storage.reader.snapshot()?.meta).toMatchObject({ index: 5, conf: { voters: ['a', 'b'] } });
    await storage.close();
  });

  // Split layout: the partition's checkpoint is fsynced with its own segments, not with the Raft log. Under interval a
  // power cut can keep a checkpoint at 5 (the new leader's e5t2 applied) while the log loses the new leader's entries
  // and holds again the ones they replaced (the record file's overwrite is a later record): raising the commit over
  // those would take e3t1..e5t1 as committed. The log must not match the checkpoint's (index, term) for that.
  it("resumeAt at a checkpoint whose entry the log holds with another term (a power cut lost what the state machine applied) never takes the log's entries as committed", async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const options = { fsync: 'interval', fsyncIntervalMs: 3_600_000, fs } as const;
    const path = '/data/g';
    const storage = await open<string, string>(path, ['a', 'b', 'c'], options);
    storage.setHardState({ term: 1, vote: 'a', commit: 0 });
    storage.append([1, 2, 3, 4, 5].map((i) => entry(i, 1, `e${i}t1`)));
    await storage.sync(); // fsynced with the vote
    storage.setHardState({ term: 2, vote: null, commit: 0 });
    await storage.sync(); // fsynced with the term
    storage.append([3, 4, 5].map((i) => entry(i, 2, `e${i}t2`)));
    storage.setHardState({ term: 2, vote: null, commit: 5 });
    await storage.sync(); // written only; the state machine applies 3..5 and checkpoints (5, term 2) durably
    await fs.crash();
    const again = await open<string, string>(path, ['a', 'b', 'c'], options);
    again.resumeAt(5, 2, 'checkpoint at 5');
    const r = again.reader;
    const { commit } = again.hardState;
    expect(commit).toBe(5);
    for (let i = Math.max(1, r.firstIndex() - 1); i <= commit; i++) expect(r.term(i), `term of ${i}`).toBe(i <= 2 ? 1 : 2);
    await again.close();
  });

  // The same power cut, with a configuration change in the lost tail's place: the log given back ends in e6t1, a conf
  // entry removing c that was never committed (the new leader of term 2 replaced it). The state machine applied up to
  // (5, term 2) under {a, b, c}; starting over from there with the stale log's latest configuration would make this
  // node count a quorum of {a, b} (its own vote and b's) while the group's voters are {a, b, c}.
  it('resumeAt starts a log that does not hold the checkpoint over with the configuration recorded with it, not a stale tail\'s', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const options = { fsync: 'interval', fsyncIntervalMs: 3_600_000, fs } as const;
    const powerCut = async (path: string): Promise<Awaited<ReturnType<typeof open<string, string>>>> => {
      const storage = await open<string, string>(path, ['a', 'b', 'c'], options);
      storage.setHardState({ term: 1, vote: 'a', commit: 0 });
      storage.append([...[1, 2, 3, 4, 5].map((i) => entry(i, 1, `e${i}t1`)), conf(6, 1, { type: 'remove', node: 'c' }, ['a', 'b'])]);
      storage.setHardState({ term: 2, vote: null, commit: 0 });
      await storage.sync(); // fsynced with the term
      storage.append([3, 4, 5].map((i) => entry(i, 2, `e${i}t2`)));
      storage.setHardState({ term: 2, vote: null, commit: 5 });
      await storage.sync(); // written only
      await fs.crash();
      return open<string, string>(path, ['a', 'b', 'c'], options);
    };
    const recorded = await powerCut('/data/g');
    recorded.resumeAt(5, 2, 'checkpoint at 5', { voters: ['a', 'b', 'c'], learners: [] });
    expect(recorded.confState.voters).toEqual(['a', 'b', 'c']);
    await recorded.close();
    // A checkpoint from before the configuration was recorded: the one the log has in effect at its index, not after it.
    const legacy = await powerCut('/data/h');
    legacy.resumeAt(5, 2, 'checkpoint at 5');
    expect(legacy.confState.voters).toEqual(['a', 'b', 'c']);
    await legacy.close();
  });
});
