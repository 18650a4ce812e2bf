import { mkdir, mkdtemp, open, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { PublishReceipt } from '@relaymq/sdk';
import { getJson } from './support/admin.js';
import { BrokerProcess } from './support/broker-process.js';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { mountTmpfs, tmpfsUnavailable } from './support/tmpfs.js';
import { waitForAsync } from './support/wait.js';

/**
 * Issue 10, findings 1 and 3, with real processes and a real full disk: one
 * broker's data directory is a size-limited tmpfs, filled to ENOSPC by a
 * ballast file while the cluster takes writes, then given space back.
 */

const fixture = new Fixture();
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  await fixture.cleanup();
  await BrokerProcess.stopAll();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const unmountable = tmpfsUnavailable();
if (unmountable !== undefined) console.warn(`full-disk-tmpfs.test.ts skipped: ${unmountable}; test/full-disk.test.ts covers the same with an injected file system`);

interface ReplicaPage {
  end: number;
  messages: Array<{ offset: number; key?: string; data: string }>;
}

/** A broker's own copy of partition 0 of `topic`, through its admin endpoint. */
async function replica(adminUrl: string, topic: string): Promise<ReplicaPage['messages']> {
  const out: ReplicaPage['messages'] = [];
  for (let from = 0, rounds = 0; rounds < 1000; rounds++) {
    const page = await getJson<ReplicaPage>(`${adminUrl}/api/replica?topic=${topic}&partition=0&from=${from}&max=1000`);
    out.push(...page.messages);
    const last = page.messages[page.messages.length - 1];
    if (last === undefined || last.offset + 1 >= page.end) break;
    from = last.offset + 1;
  }
  return out;
}

/** Writes zeros to `path` until the file system is full (ENOSPC); returns the bytes written. */
async function fill(path: string): Promise<number> {
  const handle = await open(path, 'w');
  const chunk = Buffer.alloc(64 * 1024);
  let written = 0;
  try {
    for (let i = 0; i < 100_000; i++) {
      await handle.write(chunk);
      written += chunk.length;
    }
    throw new Error('the tmpfs never filled up');
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOSPC') throw err;
    return written;
  } finally {
    await handle.close();
  }
}

describe.skipIf(unmountable !== undefined)('a real full disk (tmpfs) under one of three broker processes', () => {
  it('the cluster keeps taking writes; once space returns the full replica catches up without a restart and holds the same log', async () => {
    const root = await mkdtemp(join(tmpdir(), 'relaymq-tmpfs-'));
    cleanups.push(() => rm(root, { recursive: true, force: true }));
    const mountPoint = join(root, 'b3');
    await mkdir(mountPoint, { recursive: true });
    const unmount = mountTmpfs(mountPoint, '8m');
    cleanups.push(async () => unmount());

    const ids = ['b1', 'b2', 'b3'];
    const ports = await freePorts(3);
    const peers = ids.map((id, i) => `${id}@127.0.0.1:${ports[i]}`);
    const brokers = await Promise.all(
      ids.map((id, i) =>
        BrokerProcess.start(id, [
          '--peer-port', String(ports[i]), '--peers', peers.filter((_, j) => j !== i).join(','), '--data', join(root, id), '--admin-port', '0',
        ]),
      ),
    );
    const client = await fixture.client(brokers.map((b) => b.url), { publishTimeoutMs: 30_000 });
    const receipts = new Map<string, PublishReceipt>();
    const publish = async (from: number, count: number): Promise<void> => {
      for (let i = from; i < from + count; i += 20) {
        await Promise.all(
          Array.from({ length: Math.min(20, from + count - i) }, async (_, j) => {
            const value = `m${i + j}`.padEnd(200, '.');
            receipts.set(value, await client.publish('tmpfs', value, { key: `k${(i + j) % 4}` }));
          }),
        );
      }
    };
    await publish(0, 200);

    const ballast = join(mountPoint, 'ballast');
    expect(await fill(ballast)).toBeGreaterThan(0);
    await publish(200, 600); // through the majority
    await unlink(ballast); // space returns
    await publish(800, 200);

    const [b1, , b3] = brokers as [BrokerProcess, BrokerProcess, BrokerProcess];
    const count = async (b: BrokerProcess): Promise<number> => (await replica(b.adminUrl as string, 'tmpfs')).length;
    await waitForAsync(async () => (await count(b1)) === 1000 && (await count(b3)) === 1000, 'the full replica to catch up without a restart', 60_000);
    const reference = await replica(b1.adminUrl as string, 'tmpfs');
    expect(await replica(b3.adminUrl as string, 'tmpfs')).toEqual(reference);
    expect(new Set([...receipts.values()].map((r) => r.offset)).size).toBe(1000);
    expect(b3.stderr).toContain('raft group fenced after a storage failure');
  }, 180_000);
});
