import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { deleteReplicaFiles, replicaFilesOf } from './replica-files.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

describe('replica files of a topic', () => {
  it('finds every partition of exactly that topic (directory, Raft log or both), and they delete', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'relaymq-replica-files-'));
    dirs.push(dataDir);
    await mkdir(join(dataDir, 'partitions'), { recursive: true });
    await mkdir(join(dataDir, 'raft'), { recursive: true });
    for (const name of ['p~orders~0', 'p~orders~1', 'p~orders.eu~0', 'p~ordersx~0']) {
      await mkdir(join(dataDir, 'partitions', name));
      await writeFile(join(dataDir, 'partitions', name, '00000000000000000000.log'), 'x');
    }
    for (const name of ['p~orders~0.log', 'p~orders~2.log', 'p~orders.eu~0.log', 'meta.log']) await writeFile(join(dataDir, 'raft', name), 'x');
    const found = await replicaFilesOf(dataDir, 'orders');
    expect(found).toEqual([0, 1, 2].map((partition) => ({ partition, partitionDir: join(dataDir, 'partitions', `p~orders~${partition}`), raftLog: join(dataDir, 'raft', `p~orders~${partition}.log`) })));
    for (const files of found) await deleteReplicaFiles(files.partitionDir, files.raftLog);
    expect(await replicaFilesOf(dataDir, 'orders')).toEqual([]);
    expect((await readdir(join(dataDir, 'partitions'))).sort()).toEqual(['p~orders.eu~0', 'p~ordersx~0']);
    expect((await readdir(join(dataDir, 'raft'))).sort()).toEqual(['meta.log', 'p~orders.eu~0.log']);
    expect(await replicaFilesOf(join(dataDir, 'missing'), 'orders')).toEqual([]);
  });
});
