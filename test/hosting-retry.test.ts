import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { BrokerOptions } from '@relaymq/broker';
import { nodeFileSystem } from '../packages/broker/src/storage/fs.js';
import { FaultyFileSystem } from '../packages/broker/test/support/faulty-fs.js';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { waitFor } from './support/wait.js';

/**
 * A replica whose group could not be created (its disk refused to open the
 * partition's files) is hosted again once the disk works, with nothing else
 * changing in the cluster: the engine's once-a-second hosting pass walks
 * the metadata only after a change or a failed creation (an idle broker's
 * pass costs nothing), and a failed creation is one.
 */

const fixture = new Fixture();
const dirs: string[] = [];
afterEach(async () => {
  await fixture.cleanup();
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

describe('a partition whose group creation failed on one broker', () => {
  it('is hosted there once its disk works again, without a metadata change', async () => {
    const root = await mkdtemp(join(tmpdir(), 'relaymq-hosting-retry-'));
    dirs.push(root);
    const ids = ['h1', 'h2', 'h3'];
    const peerPorts = await freePorts(ids.length);
    const peers = ids.map((id, i) => `${id}@127.0.0.1:${peerPorts[i]}`);
    const fss = ids.map(() => new FaultyFileSystem(nodeFileSystem));
    const lines = ids.map((): string[] => []);
    const options = (i: number): BrokerOptions => ({
      id: ids[i],
      peerPort: peerPorts[i],
      peers: peers.filter((_, j) => j !== i),
      dataDir: join(root, ids[i] as string),
      replicationFactor: 3,
      defaultPartitions: 1,
      fileSystem: fss[i],
      log: (_level, message, fields) => void lines[i]?.push(`${message} ${String(fields?.group ?? '')}`),
    });
    const brokers = await Promise.all(ids.map((_, i) => fixture.broker(options(i))));
    const [fs3, b3] = [fss[2] as FaultyFileSystem, brokers[2]];
    const groupsBefore = b3?.stats().raftGroups ?? Number.NaN;
    fs3.failNext('open', 'ENOSPC', 1_000_000);
    const client = await fixture.client(brokers.map((b) => b.url), { publishTimeoutMs: 30_000 });
    const receipt = await client.publish('retry.t', 'while h3 cannot open files', { key: 'k' });
    expect(receipt.offset).toBe(0);
    await waitFor(() => lines[2]?.some((line) => line.startsWith('could not host partition; retrying')) === true, 'h3 failing to host the partition', 20_000);
    expect(b3?.stats().raftGroups, 'not hosted while the disk refuses').toBe(groupsBefore);
    fs3.heal();
    const healedAt = lines[2]?.length ?? 0;
    await waitFor(() => b3?.stats().raftGroups === groupsBefore + 1, 'h3 hosting the partition once its disk works', 20_000).catch((err: Error) => {
      // What h3 did: its retries while the disk refused, and whether any came after the heal.
      throw new Error(`${err.message}; h3 has ${b3?.stats().raftGroups} groups (${groupsBefore} before); its log, healed at line ${healedAt}:\n${lines[2]?.slice(-40).join('\n')}`);
    });
  }, 60_000);
});
