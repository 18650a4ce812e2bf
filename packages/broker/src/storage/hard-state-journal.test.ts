/**
 * The broker's journal of hard states: the votes of many groups share one
 * fsync, a message that depends on a vote still waits for it, and what a
 * crash or a failed fsync leaves is what was acknowledged (or the failed
 * write's, never a mix). The crash property of the unified Raft log with the
 * journal is in segment-raft-storage.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { createRaftNode, runReady, type Message, type ReadyHandlers } from '../core/raft/index.js';
import { FaultyFileSystem } from '../../test/support/faulty-fs.js';
import { MemoryFileSystem } from '../../test/support/memory-fs.js';
import { HardStateJournal } from './hard-state-journal.js';
import { SegmentRaftStorage } from './segment-raft-storage.js';

const JOURNAL = '/data/hardstate.journal';

function openGroup(fs: FaultyFileSystem, journal: HardStateJournal, i: number): Promise<SegmentRaftStorage<string, string>> {
  return SegmentRaftStorage.open<string, string>(`/data/partitions/p${i}`, ['a', 'b', 'c'], { fsync: 'always', fsyncIntervalMs: 1000, fs, hardStates: { journal, key: `p${i}` } });
}

describe('HardStateJournal', () => {
  it('the votes of 200 groups made in one turn cost one fsync and open no file, and each sync() resolves only after it', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const journal = await HardStateJournal.open(JOURNAL, { fs });
    const groups = await Promise.all(Array.from({ length: 200 }, (_, i) => openGroup(fs, journal, i)));
    const before = { journal: journal.stats().fsyncs, datasyncs: fs.calls.datasync, renames: fs.calls.rename, opens: fs.calls.open };
    const gate = fs.pauseNext('datasync');
    const synced: number[] = [];
    const syncs = groups.map((storage, i) => {
      storage.setHardState({ term: 3, vote: 'b', commit: 0 });
      return storage.sync().then(() => synced.push(i));
    });
    await gate.reached;
    expect(synced).toEqual([]); // the fsync is in flight: nobody was answered yet
    gate.release();
    await Promise.all(syncs);
    expect(synced).toHaveLength(200);
    expect(journal.stats().fsyncs - before.journal).toBe(1);
    expect(fs.calls.datasync - before.datasyncs).toBe(1);
    expect(fs.calls.rename - before.renames).toBe(0); // no per-group file replaced
    expect(fs.calls.open - before.opens).toBe(0); // nor any descriptor opened: the journal's stays open
    // A restart reads every vote back.
    await Promise.all(groups.map((g) => g.close()));
    await journal.close();
    await fs.crash();
    const again = await HardStateJournal.open(JOURNAL, { fs });
    expect(again.stats().keys).toBe(200);
    const reopened = await openGroup(fs, again, 117);
    expect(reopened.hardState).toEqual({ term: 3, vote: 'b', commit: 0 });
    await reopened.close();
    await again.close();
  });

  it('a campaign\'s vote requests leave only after its term and vote are fsynced in the journal', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const journal = await HardStateJournal.open(JOURNAL, { fs });
    const storage = await openGroup(fs, journal, 0);
    const node = createRaftNode<string, string>({ id: 'a', storage: storage.reader, random: { nextInt: () => 0 }, config: { preVote: false } });
    const sent: Array<Message<string, string>> = [];
    const io: ReadyHandlers<string, string> = {
      storage: storage,
      send: (messages) => sent.push(...messages),
      restore: () => {},
      apply: () => {},
    };
    node.campaign();
    const gate = fs.pauseNext('datasync');
    const handled = runReady(node, io);
    await gate.reached;
    expect(sent).toEqual([]);
    expect(journal.get('p0')?.term ?? 0).toBe(0); // not durable yet
    gate.release();
    await handled;
    expect(journal.get('p0')).toEqual({ term: 1, vote: 'a', commit: 0 });
    expect(sent.map((m) => [m.type, m.to]).sort()).toEqual([
      ['vote', 'b'],
      ['vote', 'c'],
    ]);
    await storage.close();
    await journal.close();
  });

  it('a failed fsync rejects its batch, and its records never reach the disk later; a crash keeps the last fsynced state of each key', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const journal = await HardStateJournal.open(JOURNAL, { fs });
    await Promise.all([journal.write('x', { term: 1, vote: 'a', commit: 0 }), journal.write('y', { term: 1, vote: 'b', commit: 0 })]);
    fs.failNext('datasync', 'EIO');
    await expect(journal.write('x', { term: 2, vote: 'c', commit: 0 })).rejects.toThrow(/EIO/);
    expect(journal.get('x')).toEqual({ term: 1, vote: 'a', commit: 0 });
    await journal.write('y', { term: 2, vote: 'a', commit: 5 });
    await fs.crash({ keepUnsyncedBytes: 1 << 20 });
    const again = await HardStateJournal.open(JOURNAL, { fs });
    expect(again.get('x')).toEqual({ term: 1, vote: 'a', commit: 0 });
    expect(again.get('y')).toEqual({ term: 2, vote: 'a', commit: 5 });
    await again.close();
  });

  it('grows by appends and is rewritten with the live records once it is 4 times their size; released keys are gone after a restart', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const journal = await HardStateJournal.open(JOURNAL, { fs, compactBytes: 1 });
    for (let term = 1; term <= 50; term++) await Promise.all(['x', 'y', 'z'].map((key) => journal.write(key, { term, vote: key, commit: term })));
    expect(journal.stats().compactions).toBeGreaterThan(0);
    expect(journal.stats().bytes).toBeLessThanOrEqual(4 * 3 * (1 + 40));
    journal.release('y');
    await journal.write('z', { term: 51, vote: null, commit: 50 });
    await journal.close();
    await fs.crash();
    const again = await HardStateJournal.open(JOURNAL, { fs });
    expect(again.get('x')).toEqual({ term: 50, vote: 'x', commit: 50 });
    expect(again.get('y')).toBeUndefined();
    expect(again.get('z')).toEqual({ term: 51, vote: null, commit: 50 });
    await again.close();
  });

  it('a new partition directory starts from no hard state, whatever its key held before (a replica deleted and created again)', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const journal = await HardStateJournal.open(JOURNAL, { fs });
    await journal.write('p4', { term: 9, vote: 'c', commit: 12 });
    const storage = await openGroup(fs, journal, 4);
    expect(storage.hardState).toEqual({ term: 0, vote: null, commit: 0 });
    expect(journal.get('p4')).toEqual({ term: 0, vote: null, commit: 0 });
    await storage.close();
    await journal.close();
  });
});
