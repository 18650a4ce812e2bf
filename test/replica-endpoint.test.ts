import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import { decodePayload } from '@relaymq/sdk/protocol';
import { eventually, get, getJson } from './support/admin.js';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

interface ReplicaPage {
  broker: string;
  start: number;
  end: number;
  messages: Array<{ offset: number; key?: string; encoding: 'raw' | 'msgpack'; data: string }>;
}

const page = (b: Broker, query: string): Promise<ReplicaPage> => getJson<ReplicaPage>(`${b.adminUrl}/api/replica?${query}`);
const values = (p: ReplicaPage): unknown[] => p.messages.map((m) => decodePayload(Buffer.from(m.data, 'base64')));

describe('GET /api/replica (the chaos checker reads every replica through it)', () => {
  it("answers each broker's own committed copy, pages by from/max, and refuses bad queries", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'relaymq-replica-'));
    fixture.defer(() => rm(dir, { recursive: true, force: true }));
    const ids = ['r1', 'r2', 'r3'];
    const peerPorts = await freePorts(3);
    const peers = ids.map((id, i) => `${id}@127.0.0.1:${peerPorts[i]}`);
    const brokers = await Promise.all(
      ids.map((id, i) =>
        fixture.broker({ id, peerPort: peerPorts[i], peers: peers.filter((_, j) => j !== i), adminPort: 0, dataDir: join(dir, id), defaultPartitions: 2 }),
      ),
    );
    const client = await fixture.client([(brokers[0] as Broker).url], { poolSize: 1 });
    const receipts = await Promise.all(Array.from({ length: 40 }, (_, i) => client.publish('replica.t', `m${i}`, { key: `k${i % 5}` })));
    const inP0 = receipts.filter((r) => r.partition === 0).length;
    expect(inP0).toBeGreaterThan(0);

    // Followers apply a commit a heartbeat later: wait until every copy holds all of partition 0.
    for (const b of brokers) await eventually(() => page(b, 'topic=replica.t&partition=0'), (p) => p.end === inP0, `${b.id}'s copy of partition 0`);
    const copies = await Promise.all(brokers.map((b) => page(b, 'topic=replica.t&partition=0')));
    expect(copies.map((c) => c.broker)).toEqual(ids);
    for (const copy of copies) {
      expect(copy.messages.map((m) => m.offset)).toEqual(Array.from({ length: inP0 }, (_, i) => i));
      expect(values(copy)).toEqual(values(copies[0] as ReplicaPage));
    }
    // Each acknowledged message is where its receipt said.
    const stored = values(copies[0] as ReplicaPage);
    receipts.forEach((r, i) => {
      if (r.partition === 0) expect(stored[r.offset]).toBe(`m${i}`);
    });

    const paged = await page(brokers[1] as Broker, 'topic=replica.t&partition=0&from=1&max=2');
    expect(paged.messages.map((m) => m.offset)).toEqual([1, 2]);
    expect(paged.end).toBe(inP0);

    expect((await get(`${brokers[0]?.adminUrl}/api/replica?topic=replica.t`)).status).toBe(400);
    expect((await get(`${brokers[0]?.adminUrl}/api/replica?topic=replica.t&partition=x`)).status).toBe(400);
    expect((await get(`${brokers[0]?.adminUrl}/api/replica?topic=replica.none&partition=0`)).status).toBe(404);
  });
});
