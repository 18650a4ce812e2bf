/**
 * Cluster ids over real sockets: a new cluster is named by its metadata
 * leader and every broker records the id in its data directory; a broker
 * whose data directory belongs to another cluster never joins (`--join`) or
 * starts (`--peers`, `--cluster-id`): the start fails with a clear error, and
 * the CLI exits 2 with it.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { startBroker, type Broker } from '@relaymq/broker';
import { CLI } from './support/broker-process.js';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { waitForAsync } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'relaymq-cluster-id-'));
  // Retried: a partition group still being created when its broker closes may write a moment longer.
  fixture.defer(() => rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 }));
  return dir;
}

async function recordedCluster(dataDir: string): Promise<string | undefined> {
  const text = await readFile(join(dataDir, 'identity.json'), 'utf8').catch(() => undefined);
  return text === undefined ? undefined : (JSON.parse(text) as { clusterId?: string }).clusterId;
}

/** Three brokers with data directories under `dir`; their peer ports. */
async function cluster(dir: string, prefix: string): Promise<{ brokers: Broker[]; peers: string[]; peerPorts: number[] }> {
  const ids = [1, 2, 3].map((n) => `${prefix}${n}`);
  const peerPorts = await freePorts(3);
  const peers = ids.map((id, i) => `${id}@127.0.0.1:${peerPorts[i]}`);
  const brokers = await Promise.all(
    ids.map((id, i) => fixture.broker({ id, peerPort: peerPorts[i], peers: peers.filter((_, j) => j !== i), dataDir: join(dir, id) })),
  );
  return { brokers, peers, peerPorts };
}

/** A data directory that belongs to broker `id` of cluster `clusterId` (as one copied from elsewhere would). */
async function foreignDataDir(dir: string, id: string, clusterId: string): Promise<string> {
  const dataDir = join(dir, `foreign-${id}`);
  await mkdir(dataDir, { recursive: true });
  await writeFile(join(dataDir, 'identity.json'), JSON.stringify({ brokerId: id, incarnation: `inc-${id}`, clusterId }));
  return dataDir;
}

describe('cluster ids', () => {
  it('a new cluster is named once; every broker records the same id in its data directory, and keeps it across a restart', { timeout: 60_000 }, async () => {
    const dir = await tempDir();
    const { brokers, peers, peerPorts } = await cluster(dir, 'ci');
    const dirs = brokers.map((b) => join(dir, b.id));
    await waitForAsync(async () => (await Promise.all(dirs.map(recordedCluster))).every((c) => c !== undefined), 'every broker to record the cluster id', 20_000);
    const ids = await Promise.all(dirs.map(recordedCluster));
    expect(new Set(ids).size).toBe(1);
    expect(ids[0]).toMatch(/^[0-9a-f-]{36}$/);

    // A restarted broker presents the same cluster and is linked again (it serves a topic created afterwards).
    await (brokers[2] as Broker).close();
    const again = await fixture.broker({ id: 'ci3', peerPort: peerPorts[2], peers: peers.filter((_, j) => j !== 2), dataDir: dirs[2] as string });
    expect(await recordedCluster(dirs[2] as string)).toBe(ids[0]);
    await again.engine.ensureTopic('after-restart');
    expect(again.engine.partitionCount('after-restart')).toBe(1);
  });

  it('a broker with another cluster\'s data directory never joins: --join and --peers fail the start, naming both clusters', { timeout: 60_000 }, async () => {
    const dir = await tempDir();
    const { brokers, peers } = await cluster(dir, 'cj');
    await waitForAsync(async () => (await recordedCluster(join(dir, 'cj1'))) !== undefined, 'the cluster to be named', 20_000);
    const ours = (await recordedCluster(join(dir, 'cj1'))) as string;
    const seed = peers[0]?.split('@')[1] as string;

    const joinStart = startBroker({ id: 'cj4', port: 0, peerPort: 0, join: [seed], dataDir: await foreignDataDir(dir, 'cj4', 'elsewhere'), drainTimeoutMs: 200 });
    await expect(joinStart).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(joinStart).rejects.toThrow(`refused this broker: broker cj4 belongs to cluster elsewhere, broker cj1 to cluster ${ours}: brokers of two clusters never link`);

    const peersStart = startBroker({ id: 'cj5', port: 0, peerPort: 0, peers, dataDir: await foreignDataDir(dir, 'cj5', 'elsewhere'), drainTimeoutMs: 200 });
    await expect(peersStart).rejects.toThrow(/broker cj5 belongs to cluster elsewhere, broker cj\d to cluster [0-9a-f-]{36}: brokers of two clusters never link/);

    // The cluster keeps serving.
    await (brokers[0] as Broker).engine.ensureTopic('still-ours');

    // An empty data directory joins (it has no cluster yet) and records this cluster's id.
    const newcomerDir = join(dir, 'cj6');
    await fixture.broker({ id: 'cj6', peerPort: 0, join: [seed], dataDir: newcomerDir });
    await waitForAsync(async () => (await recordedCluster(newcomerDir)) === ours, 'the newcomer to record the cluster id', 20_000);
  });

  it('relaymq broker exits 2 with one line when --cluster-id differs from its data directory\'s', { timeout: 30_000 }, async () => {
    const dir = await tempDir();
    const dataDir = await foreignDataDir(dir, 'cx1', 'staging');
    const run = promisify(execFile);
    const outcome = await run(process.execPath, [CLI, 'broker', '--id', 'cx1', '--port', '0', '--log-level', 'silent', '--data-dir', dataDir, '--cluster-id', 'prod'], {
      env: { PATH: process.env.PATH ?? '' },
      timeout: 15_000,
    }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }),
    );
    expect(outcome.code).toBe(2);
    expect(outcome.stderr).toBe(
      `relaymq: data directory ${dataDir} belongs to cluster staging, not prod: a broker never starts against another cluster's data; give it an empty data directory to join cluster prod, or start it in cluster staging\n`,
    );
  });
});
