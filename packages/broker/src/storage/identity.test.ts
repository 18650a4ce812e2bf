import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadIdentity, PeerIncarnations } from './identity.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});
async function dataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'relaymq-identity-'));
  dirs.push(dir);
  return dir;
}

describe('loadIdentity', () => {
  it('makes an incarnation on first use and keeps it across restarts (a restart, even after kill -9, is the same broker)', async () => {
    const dir = await dataDir();
    const first = await loadIdentity(dir, 'b1');
    expect(first.brokerId).toBe('b1');
    expect(first.incarnation).toMatch(/^[0-9a-f-]{36}$/);
    expect(await loadIdentity(dir, 'b1')).toEqual(first);
    expect(JSON.parse(await readFile(join(dir, 'identity.json'), 'utf8'))).toEqual(first);
  });

  it('gives an empty data directory (a broker with amnesia) another incarnation', async () => {
    const before = await loadIdentity(await dataDir(), 'b1');
    const after = await loadIdentity(await dataDir(), 'b1');
    expect(after.incarnation).not.toBe(before.incarnation);
  });

  it('creates a data directory that does not exist yet', async () => {
    const dir = join(await dataDir(), 'nested', 'b1');
    await expect(loadIdentity(dir, 'b1')).resolves.toMatchObject({ brokerId: 'b1' });
  });

  it('never uses a data directory under another broker id', async () => {
    const dir = await dataDir();
    await loadIdentity(dir, 'b1');
    await expect(loadIdentity(dir, 'b2')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/belongs to broker b1, not b2/) });
  });

  it.each([
    ['not JSON', '{"brokerId": "b1", "incarn'],
    ['no incarnation', '{"brokerId": "b1"}'],
    ['null', 'null'],
  ])('reports a damaged identity.json (%s) as a storage error naming the file', async (_name, content) => {
    const dir = await dataDir();
    await writeFile(join(dir, 'identity.json'), content);
    await expect(loadIdentity(dir, 'b1')).rejects.toMatchObject({ code: 'STORAGE_ERROR', message: expect.stringContaining('identity.json is damaged') });
  });
});

describe('PeerIncarnations', () => {
  it('records a peer met for the first time, keeps the first incarnation, and reads it back after a restart', async () => {
    const dir = await dataDir();
    const errors: unknown[] = [];
    const known = await PeerIncarnations.open(dir, (err) => errors.push(err));
    expect(known.get('b2')).toBeUndefined();
    known.remember('b2', 'inc-2');
    known.remember('b3', 'inc-3');
    known.remember('b2', 'other'); // only the first meeting counts
    expect(known.get('b2')).toBe('inc-2');
    await known.flushed();
    const again = await PeerIncarnations.open(dir, (err) => errors.push(err));
    expect([again.get('b2'), again.get('b3')]).toEqual(['inc-2', 'inc-3']);
    again.forget('b3');
    await again.flushed();
    expect((await PeerIncarnations.open(dir, () => {})).get('b3')).toBeUndefined();
    expect(errors).toEqual([]);
  });

  it('keeps incarnations in memory only without a data directory', async () => {
    const known = await PeerIncarnations.open(undefined, () => {});
    known.remember('b2', 'inc-2');
    await known.flushed();
    expect(known.get('b2')).toBe('inc-2');
  });

  it('reports a damaged peers.json as a storage error naming the file', async () => {
    const dir = await dataDir();
    await writeFile(join(dir, 'peers.json'), '["b2"]');
    await expect(PeerIncarnations.open(dir, () => {})).rejects.toMatchObject({ code: 'STORAGE_ERROR', message: expect.stringContaining('peers.json is damaged') });
    await writeFile(join(dir, 'peers.json'), '{"b2": ');
    await expect(PeerIncarnations.open(dir, () => {})).rejects.toMatchObject({ code: 'STORAGE_ERROR', message: expect.stringContaining('peers.json is damaged') });
  });
});
