import { describe, expect, it } from 'vitest';
import { MemoryStorage, type Entry } from '../core/raft/index.js';
import type { PeerTransport } from '../net/peer-transport.js';
import { GroupClock } from '../runtime/group-clock.js';
import { HardStateJournal } from '../storage/hard-state-journal.js';
import { FaultyFileSystem } from '../../test/support/faulty-fs.js';
import { MemoryFileSystem } from '../../test/support/memory-fs.js';
import { GroupFactory, lastStateEntry } from './group-factory.js';

const log = (types: Array<'normal' | 'noop'>): MemoryStorage<string, never> => {
  const storage = new MemoryStorage<string, never>(['b1']);
  storage.append(types.map((type, i): Entry<string> => (type === 'normal' ? { index: i + 1, term: 1, type, data: `e${i + 1}` } : { index: i + 1, term: 1, type })));
  return storage;
};

describe('lastStateEntry (what a restarted group must apply again)', () => {
  it('is the last normal entry up to the commit: a new leader’s empty entries after it change nothing', () => {
    expect(lastStateEntry(log(['noop', 'normal', 'normal', 'noop', 'noop']), 0, 5)).toBe(3);
    expect(lastStateEntry(log(['noop', 'normal', 'normal', 'noop', 'noop']), 0, 2)).toBe(2);
  });

  it('is what is applied already when only empty entries follow it', () => {
    expect(lastStateEntry(log(['noop', 'normal', 'noop', 'noop']), 2, 4)).toBe(2);
    expect(lastStateEntry(log(['noop']), 0, 1)).toBe(0);
  });

  it('waits for the whole commit when it cannot tell (no log, or a commit beyond it)', () => {
    expect(lastStateEntry(undefined, 0, 7)).toBe(7);
    expect(lastStateEntry(log(['normal']), 0, 3)).toBe(3);
  });

  it('waits for the whole commit when the log was compacted past what is applied', () => {
    const storage = log(['normal', 'normal', 'noop', 'noop']);
    storage.setHardState({ term: 1, vote: null, commit: 4 });
    storage.createSnapshot(2, undefined as never);
    storage.compact(2);
    expect(lastStateEntry(storage, 0, 4)).toBe(4);
    expect(lastStateEntry(storage, 2, 4)).toBe(2);
  });
});

describe('GroupFactory: unified partitions keep their hard state in the broker\'s journal', () => {
  const DATA = '/relaymq-group-factory-test/data';
  const factoryOn = (fs: FaultyFileSystem, fsync: 'always' | 'interval' = 'always'): GroupFactory =>
    new GroupFactory({
      self: 'a',
      transport: { send: () => {}, understands: () => false, connectedPeers: () => [] } as unknown as PeerTransport,
      dataDir: DATA, // in memory: deleteReplicaFiles (node's fs) finds nothing there to delete
      dedupeWindow: 100,
      retentionBytes: 0,
      fsync,
      fsyncIntervalMs: 1000,
      segmentBytes: 64 * 1024,
      maxOpenSegmentFiles: 64,
      maxOpenRaftLogFiles: 64,
      raftLogMaxBytes: 1 << 20,
      storage: { layout: 'unified' },
      fileSystem: fs,
      raftConfig: {},
      clock: new GroupClock(),
      now: () => 0,
      log: () => {},
    });
  const hooks = {
    appended: () => {},
    applied: () => {},
    leaderChanged: () => {},
    confChanged: () => {},
    fetchFromLeader: () => Promise.reject(new Error('no leader')),
    fetchRecords: () => Promise.reject(new Error('no leader')),
    retentionFor: () => ({}),
  };

  it('a vote goes to <data dir>/hardstate.journal (no file per group), survives a restart, and a dropped replica created again starts from none', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const factory = factoryOn(fs);
    const opened = await Promise.all([0, 1, 2].map((p) => factory.partition('t', p, ['a', 'b', 'c'], hooks)));
    const storage = factory.unifiedStorage('p/t/1');
    expect(storage).toBeDefined();
    storage?.setHardState({ term: 4, vote: 'c', commit: 0 });
    await storage?.sync();
    expect(await fs.stat(`${DATA}/partitions/p~t~1/meta/hardstate.meta`)).toBeUndefined();
    for (const { group } of opened) group.stop();
    await factory.close();

    const journal = await HardStateJournal.open(`${DATA}/hardstate.journal`, { fs });
    expect(journal.get('p~t~1')).toEqual({ term: 4, vote: 'c', commit: 0 });
    expect(journal.stats().keys).toBe(3);
    await journal.close();

    const again = factoryOn(fs);
    const reopened = await again.partition('t', 1, ['a', 'b', 'c'], hooks);
    expect(reopened.group.status().term).toBe(4);
    reopened.group.stop();
    await again.dropPartition('t', 1, undefined);
    const recreated = await again.partition('t', 1, ['a', 'b', 'c'], hooks);
    expect(recreated.group.status().term).toBe(0);
    recreated.group.stop();
    await again.close();
    const after = await HardStateJournal.open(`${DATA}/hardstate.journal`, { fs });
    // Released by the drop (its directory, in memory here, was not deleted, so its creation did not reset it).
    expect(after.get('p~t~1')).toBeUndefined();
    expect(after.get('p~t~0')).toEqual({ term: 0, vote: null, commit: 0 });
    await after.close();
  });

  it('under fsync always a group still expects a log an interval run wrote (the data directory does not say): its follower reports lost entries, it does not throw', async () => {
    for (const fsync of ['always', 'interval'] as const) {
      const factory = factoryOn(new FaultyFileSystem(new MemoryFileSystem()), fsync);
      const { group } = await factory.partition('t', 0, ['a', 'b', 'c'], hooks);
      const { unsyncedAcks, unsyncedAcksBeforeStart } = group.node.config;
      expect([fsync, unsyncedAcks, unsyncedAcksBeforeStart]).toEqual(fsync === 'always' ? ['always', false, true] : ['interval', true, false]);
      group.stop();
      await factory.close();
    }
  });
});
