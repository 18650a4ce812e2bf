import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker, BrokerOptions, StoredMessage } from '@relaymq/broker';
import type { PublishReceipt } from '@relaymq/sdk';
import { nodeFileSystem } from '../packages/broker/src/storage/fs.js';
import { FaultyFileSystem } from '../packages/broker/test/support/faulty-fs.js';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { waitFor } from './support/wait.js';

/**
 * Issue 10, findings 1 and 3: one replica's disk fills up (ENOSPC part way
 * through a write) while the others keep taking writes. The full replica
 * must stop acknowledging, the partition must go on through the majority,
 * and once space returns the replica must catch up by itself — no restart —
 * holding exactly the log the others hold, also after a restart right away.
 */

const fixture = new Fixture();
const dirs: string[] = [];
afterEach(async () => {
  await fixture.cleanup();
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

/** One replica's copy of a partition, message by message (offset, timestamp, key, data). */
async function replica(broker: Broker, topic: string): Promise<string[]> {
  const out: string[] = [];
  for (let offset = 0, rounds = 0; rounds < 10_000; rounds++) {
    const messages: StoredMessage[] = await broker.engine.read(topic, 0, offset, 5000, 16 * 1024 * 1024);
    const last = messages[messages.length - 1];
    if (last === undefined) break;
    for (const m of messages) out.push(`${m.offset}|${m.timestamp}|${m.key ?? ''}|${Buffer.from(m.data).toString('hex')}`);
    offset = last.offset + 1;
  }
  return out;
}

async function cluster(size: number): Promise<{ options: (i: number) => BrokerOptions; fss: FaultyFileSystem[]; lines: string[][] }> {
  const root = await mkdtemp(join(tmpdir(), 'relaymq-full-disk-'));
  dirs.push(root);
  const ids = Array.from({ length: size }, (_, i) => `d${i + 1}`);
  const peerPorts = await freePorts(size);
  const peers = ids.map((id, i) => `${id}@127.0.0.1:${peerPorts[i]}`);
  const fss = ids.map(() => new FaultyFileSystem(nodeFileSystem));
  const lines = ids.map((): string[] => []);
  const options = (i: number): BrokerOptions => ({
    id: ids[i],
    peerPort: peerPorts[i],
    peers: peers.filter((_, j) => j !== i),
    dataDir: join(root, ids[i] as string),
    replicationFactor: size,
    segmentBytes: 32 * 1024,
    fileSystem: fss[i],
    log: (_level, message, fields) => void lines[i]?.push(`${message} ${String(fields?.group ?? '')}`),
  });
  return { options, fss, lines };
}

describe.each([
  [3, 3],
  [5, 5],
])('a full disk on one replica (%i brokers, replication factor %i)', (size) => {
  it('fences that replica while the majority takes writes; once space returns it catches up without a restart and holds the same log', async () => {
    const { options, fss, lines } = await cluster(size);
    const brokers = await Promise.all(Array.from({ length: size }, (_, i) => fixture.broker(options(i))));
    const client = await fixture.client(brokers.map((b) => b.url), { publishTimeoutMs: 30_000 });
    const receipts = new Map<string, PublishReceipt>();
    const publish = async (from: number, count: number): Promise<void> => {
      // Four keys, each in order: every batch is awaited before the next.
      for (let i = from; i < from + count; i += 20) {
        await Promise.all(
          Array.from({ length: Math.min(20, from + count - i) }, async (_, j) => {
            const value = `m${i + j}`.padEnd(120, '.');
            receipts.set(value, await client.publish('disk', value, { key: `k${(i + j) % 4}` }));
          }),
        );
      }
    };
    await publish(0, 200);

    // The victim: the leader itself (it must hand over, then come back as a follower).
    const leaderId = brokers[0]?.engine.leaderOf?.('disk', 0);
    const victimIndex = brokers.findIndex((b) => b.id === leaderId);
    const victim = brokers[victimIndex] as Broker;
    const fs = fss[victimIndex] as FaultyFileSystem;
    const others = brokers.filter((b) => b !== victim);
    fs.setCapacity(fs.usedBytes + 1500); // the next writes fill it part way, then ENOSPC

    // Writes go on through the majority.
    await publish(200, 600);
    expect(receipts.size).toBe(800);
    expect(victim.engine.bounds('disk', 0).end).toBeLessThan(800);
    const victimLines = lines[victimIndex] as string[];
    // The disk stays full while the replica tries to rejoin: it is fenced again, and never acknowledged what it could not write.
    const fences = (): number => victimLines.filter((line) => line.startsWith('raft group fenced after a storage failure') && line.endsWith('p/disk/0')).length;
    await waitFor(() => fences() >= 2, 'a recovery attempt of the full replica to meet the full disk', 15_000);

    // Space returns: the victim rejoins by itself, repaired by the leader like a lagging replica.
    fs.setCapacity(undefined);
    await publish(800, 200);
    await waitFor(() => victim.engine.bounds('disk', 0).end === 1000, 'the full replica to catch up without a restart', 30_000);
    expect(victimLines.some((line) => line.startsWith('fenced raft group recovered') && line.endsWith('p/disk/0'))).toBe(true);
    await waitFor(() => others.every((b) => b.engine.bounds('disk', 0).end === 1000), 'every replica to apply everything');
    const reference = await replica(others[0] as Broker, 'disk');
    expect(reference).toHaveLength(1000);
    for (const broker of [victim, ...others.slice(1)]) expect(await replica(broker, 'disk')).toEqual(reference);

    // Every acknowledgement names its own message, once; per key, offsets follow publish order.
    const byOffset = new Map(reference.map((line) => [Number(line.split('|')[0]), Buffer.from(line.split('|')[3] as string, 'hex').toString()]));
    for (const [value, receipt] of receipts) expect(byOffset.get(receipt.offset)?.endsWith(value)).toBe(true); // msgpack: a header, then the string
    expect(new Set([...receipts.values()].map((r) => r.offset)).size).toBe(1000);
    for (let key = 0; key < 4; key++) {
      const offsets = [...receipts.entries()].filter(([v]) => Number(/m(\d+)/.exec(v)?.[1]) % 4 === key).map(([, r]) => r.offset);
      expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    }

    // A restart right after the recovery keeps exactly that log.
    await victim.close();
    const again = await fixture.broker(options(victimIndex));
    await publish(1000, 40);
    await waitFor(() => [again, ...others].every((b) => b.engine.bounds('disk', 0).end === 1040), 'the restarted replica to catch up', 30_000);
    const after = await replica(others[0] as Broker, 'disk');
    expect(after.slice(0, 1000)).toEqual(reference);
    expect(await replica(again, 'disk')).toEqual(after);
  }, 120_000);
});
