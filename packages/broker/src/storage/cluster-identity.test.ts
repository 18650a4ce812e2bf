import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadIdentity, recordClusterId } from './identity.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});
async function dataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'relaymq-cluster-identity-'));
  dirs.push(dir);
  return dir;
}
const stored = async (dir: string): Promise<Record<string, unknown>> => JSON.parse(await readFile(join(dir, 'identity.json'), 'utf8')) as Record<string, unknown>;

describe('the cluster id of a data directory', () => {
  it('is recorded once learned, kept across restarts, and never replaced', async () => {
    const dir = await dataDir();
    const identity = await loadIdentity(dir, 'b1');
    expect(identity.clusterId).toBeUndefined();
    await recordClusterId(dir, identity, 'cluster-a');
    expect(identity.clusterId).toBe('cluster-a');
    expect(await stored(dir)).toEqual({ brokerId: 'b1', incarnation: identity.incarnation, clusterId: 'cluster-a' });
    await recordClusterId(dir, identity, 'cluster-b');
    expect((await stored(dir)).clusterId).toBe('cluster-a');
    expect(await loadIdentity(dir, 'b1')).toEqual({ brokerId: 'b1', incarnation: identity.incarnation, clusterId: 'cluster-a' });
  });

  it('takes a given cluster id on first use, or on a directory from before cluster ids', async () => {
    const fresh = await dataDir();
    expect((await loadIdentity(fresh, 'b1', undefined, 'prod')).clusterId).toBe('prod');
    expect((await stored(fresh)).clusterId).toBe('prod');

    const old = await dataDir();
    await writeFile(join(old, 'identity.json'), JSON.stringify({ brokerId: 'b1', incarnation: 'i-1' }));
    expect(await loadIdentity(old, 'b1', undefined, 'prod')).toEqual({ brokerId: 'b1', incarnation: 'i-1', clusterId: 'prod' });
    expect(await stored(old)).toEqual({ brokerId: 'b1', incarnation: 'i-1', clusterId: 'prod' });
  });

  it('refuses to start against another cluster\'s data, naming both clusters and what to do', async () => {
    const dir = await dataDir();
    await loadIdentity(dir, 'b1', undefined, 'staging');
    const start = loadIdentity(dir, 'b1', undefined, 'prod');
    await expect(start).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(start).rejects.toThrow(`data directory ${dir} belongs to cluster staging, not prod: a broker never starts against another cluster's data`);
    // Unchanged by the refused start.
    expect((await stored(dir)).clusterId).toBe('staging');
    // Without a given id it starts in the cluster it records.
    expect((await loadIdentity(dir, 'b1')).clusterId).toBe('staging');
  });

  it('reports a damaged cluster id', async () => {
    const dir = await dataDir();
    await writeFile(join(dir, 'identity.json'), JSON.stringify({ brokerId: 'b1', incarnation: 'i-1', clusterId: 7 }));
    await expect(loadIdentity(dir, 'b1')).rejects.toMatchObject({ code: 'STORAGE_ERROR' });
  });
});
