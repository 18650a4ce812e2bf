/**
 * Deleting the files of a partition replica this broker no longer holds (it
 * moved to another broker, or its topic was deleted): its partition directory (segments, indexes,
 * checkpoint) and its Raft log. Straight on the node file system: the
 * injectable one (fs.ts) has no directory removal, and nothing here needs
 * injected faults — a deletion that fails leaves files no one opens.
 */
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

/** Removes `partitionDir` with everything in it, and the Raft log at `raftLog` (and its temporary twin). */
export async function deleteReplicaFiles(partitionDir: string, raftLog: string): Promise<void> {
  await Promise.all([rm(partitionDir, { recursive: true, force: true }), rm(raftLog, { force: true }), rm(`${raftLog}.tmp`, { force: true })]);
}

/** One partition replica's files of a topic, as {@link replicaFilesOf} finds them. */
export interface ReplicaFiles {
  partition: number;
  partitionDir: string;
  raftLog: string;
}

/**
 * The partition replicas of `topic` with files under `dataDir` (a
 * partition directory `partitions/p~<topic>~<n>`, a Raft log
 * `raft/p~<topic>~<n>.log`, or both: the layout engine/group-factory.ts
 * writes). For deleting those of a deleted topic no group holds.
 */
export async function replicaFilesOf(dataDir: string, topic: string): Promise<ReplicaFiles[]> {
  const names = new Set<string>();
  for (const name of await readdir(join(dataDir, 'partitions')).catch(() => [] as string[])) names.add(name);
  for (const name of await readdir(join(dataDir, 'raft')).catch(() => [] as string[])) if (name.endsWith('.log')) names.add(name.slice(0, -4));
  const found: ReplicaFiles[] = [];
  for (const name of names) {
    const match = /^p~(.+)~(\d+)$/.exec(name);
    if (match === null || match[1] !== topic) continue;
    found.push({ partition: Number(match[2]), partitionDir: join(dataDir, 'partitions', name), raftLog: join(dataDir, 'raft', `${name}.log`) });
  }
  return found.sort((a, b) => a.partition - b.partition);
}
