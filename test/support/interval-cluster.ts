import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrokerOptions } from '@relaymq/broker';
import { nodeFileSystem } from '../../packages/broker/src/storage/fs.js';
import { FaultyFileSystem } from '../../packages/broker/test/support/faulty-fs.js';
import { freePorts } from './ports.js';

/** Three brokers' options on loopback, each over its own faulty file system (power cuts, full disks), and their log lines. */
export interface IntervalCluster {
  ids: string[];
  /** Broker `i`'s options: fsync `interval` with no timer fsync within a test (what is acknowledged after the elections is written only), or `always`. */
  options: (i: number, fsync?: 'always' | 'interval') => BrokerOptions;
  fss: FaultyFileSystem[];
  /** Each broker's log, a line per entry: `level message group error`. */
  lines: string[][];
}

/** Makes the data root under the temp directory (pushed onto `dirs` for the test to remove) and the three brokers' settings. */
export async function intervalCluster(prefix: string, ids: [string, string, string], dirs: string[]): Promise<IntervalCluster> {
  const root = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(root);
  const peerPorts = await freePorts(ids.length);
  const peers = ids.map((id, i) => `${id}@127.0.0.1:${peerPorts[i]}`);
  const fss = ids.map(() => new FaultyFileSystem(nodeFileSystem));
  const lines = ids.map((): string[] => []);
  const options = (i: number, fsync: 'always' | 'interval' = 'interval'): BrokerOptions => ({
    id: ids[i],
    peerPort: peerPorts[i],
    peers: peers.filter((_, j) => j !== i),
    dataDir: join(root, ids[i] as string),
    replicationFactor: 3,
    fsync,
    ...(fsync === 'interval' ? { fsyncIntervalMs: 3_600_000 } : {}),
    fileSystem: fss[i],
    log: (level, message, fields) => void lines[i]?.push(`${level} ${message} ${String(fields?.group ?? '')} ${String(fields?.error ?? '')}`),
  });
  return { ids, options, fss, lines };
}
