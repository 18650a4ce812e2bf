/**
 * Deleting the files of a partition replica this broker no longer holds (it
 * moved to another broker): its partition directory (segments, indexes,
 * checkpoint) and its Raft log. Straight on the node file system: the
 * injectable one (fs.ts) has no directory removal, and nothing here needs
 * injected faults — a deletion that fails leaves files no one opens.
 */
import { rm } from 'node:fs/promises';

/** Removes `partitionDir` with everything in it, and the Raft log at `raftLog` (and its temporary twin). */
export async function deleteReplicaFiles(partitionDir: string, raftLog: string): Promise<void> {
  await Promise.all([rm(partitionDir, { recursive: true, force: true }), rm(raftLog, { force: true }), rm(`${raftLog}.tmp`, { force: true })]);
}
