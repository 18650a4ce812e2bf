import { mkdtemp, open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker, BrokerOptions } from '@relaymq/broker';
import type { GroupStatus } from '../packages/broker/src/engine/cluster.js';
import { RelayError, type GapEvent, type Message } from '@relaymq/sdk';
import type { PublishBatch } from '@relaymq/sdk/protocol';
import { nodeFileSystem } from '../packages/broker/src/storage/fs.js';
import { FaultyFileSystem } from '../packages/broker/test/support/faulty-fs.js';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { RawClient } from './support/raw-client.js';
import { waitFor, waitForAsync } from './support/wait.js';

const fixture = new Fixture();
const dirs: string[] = [];
afterEach(async () => {
  await fixture.cleanup();
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function dataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'relaymq-durability-'));
  dirs.push(dir);
  return dir;
}

const exists = async (path: string): Promise<boolean> => (await stat(path).catch(() => undefined)) !== undefined;

/** Reads a whole partition through the engine (from disk when it must). */
async function stored(broker: Broker, topic: string, partition = 0, from = 0): Promise<string[]> {
  const out: string[] = [];
  for (let offset = from, rounds = 0; rounds < 10_000; rounds++) {
    const messages = await broker.engine.read(topic, partition, offset, 5000, 16 * 1024 * 1024);
    const last = messages[messages.length - 1];
    if (last === undefined) break;
    for (const m of messages) out.push(Buffer.from(m.data).toString());
    offset = last.offset + 1;
  }
  return out;
}

/** Reads a whole partition from this broker's own replica, never from another broker. */
async function storedHere(broker: Broker, topic: string): Promise<string[]> {
  const engine = broker.engine as unknown as { readReplica(topic: string, partition: number, offset: number, maxCount: number, maxBytes: number): Promise<{ messages: Array<{ offset: number; data: Uint8Array }> } | undefined> };
  const out: string[] = [];
  for (let offset = 0, rounds = 0; rounds < 10_000; rounds++) {
    const read = await engine.readReplica(topic, 0, offset, 5000, 16 * 1024 * 1024);
    const last = read?.messages[read.messages.length - 1];
    if (read === undefined || last === undefined) break;
    for (const m of read.messages) out.push(Buffer.from(m.data).toString());
    offset = last.offset + 1;
  }
  return out;
}

const batch = (firstId: number, firstSeq: number, count: number, topic: string): PublishBatch => ({
  topic,
  partition: 0,
  ack: 'quorum',
  firstId,
  firstSeq,
  messages: Array.from({ length: count }, (_, i) => ({ data: new TextEncoder().encode(`m${firstSeq + i}`) })),
});

describe.each(['split', 'unified'] as const)('a standalone broker with a data directory (storage.layout %s)', (layout) => {
  it('keeps every message across a restart, in order, replays it from disk, and still recognises republished seqs', async () => {
    const dir = await dataDir();
    const [port] = await freePorts(1);
    const options: BrokerOptions = { port, dataDir: dir, segmentBytes: 64 * 1024, storage: { layout } };
    let broker = await fixture.broker(options);
    const raw = await RawClient.open(broker.url);
    for (let i = 0; i < 20; i++) raw.send({ type: 'publish', batches: [batch(1 + i * 100, i * 100, 100, 'orders')] });
    for (let i = 0; i < 20; i++) expect((await raw.next('ack')).acks).toEqual([{ id: 1 + i * 100, offset: i * 100, count: 100, duplicate: false }]);
    raw.close();
    await broker.close();
    // One log per partition replica on unified (no Raft record file); two on split.
    const files = async (...path: string[]): Promise<boolean> => (await stat(join(dir, ...path)).catch(() => undefined)) !== undefined;
    expect(await files('raft', 'p~orders~0.log')).toBe(layout === 'split');
    expect(await files('partitions', 'p~orders~0', 'meta', 'layout.meta')).toBe(layout === 'unified');

    broker = await fixture.broker(options);
    expect(broker.engine.bounds('orders', 0)).toEqual({ start: 0, end: 2000 });
    expect(await stored(broker, 'orders')).toEqual(Array.from({ length: 2000 }, (_, i) => `m${i}`));
    // The idempotence table came back too: a republish is answered with the original offsets.
    const again = await RawClient.open(broker.url);
    again.send({ type: 'publish', batches: [batch(1, 1990, 12, 'orders')] });
    expect((await again.next('ack')).acks).toEqual([
      { id: 1, offset: 1990, count: 10, duplicate: true },
      { id: 11, offset: 2000, count: 2, duplicate: false },
    ]);
    again.close();

    // Replay by offset and by time, through the SDK, from segments on disk.
    const client = await fixture.client([broker.url]);
    const fromOffset: number[] = [];
    await client.subscribe('orders', (m: Message) => void fromOffset.push(m.offset), { from: { offset: 1500 } });
    await waitFor(() => fromOffset.length === 502, 'replay from offset 1500');
    expect(fromOffset).toEqual(Array.from({ length: 502 }, (_, i) => 1500 + i));
    const fromTime: number[] = [];
    await client.subscribe('orders', (m: Message) => void fromTime.push(m.offset), { from: { time: 0 } });
    await waitFor(() => fromTime.length === 2002, 'replay from time 0');
    expect(fromTime[0]).toBe(0);

    // The data directory keeps its layout: a broker given the other one is refused, naming both.
    await fixture.cleanup();
    const other = layout === 'split' ? 'unified' : 'split';
    await expect(fixture.broker({ ...options, storage: { layout: other } })).rejects.toThrow(`holds storage.layout '${layout}', and this broker was started with storage.layout '${other}'`);
  });
});

describe('a broker given no storage.layout (the default)', () => {
  it('makes a new data directory unified, and keeps opening a split one as split: no silent conversion', async () => {
    const [port] = await freePorts(1);
    const fresh = await dataDir();
    let broker = await fixture.broker({ port, dataDir: fresh });
    let client = await fixture.client([broker.url]);
    await client.publish('orders', 'new');
    await fixture.cleanup();
    expect(await readFile(join(fresh, 'storage-layout'), 'utf8')).toBe('unified\n');
    expect(await exists(join(fresh, 'partitions', 'p~orders~0', 'meta', 'layout.meta'))).toBe(true);
    expect(await exists(join(fresh, 'raft', 'p~orders~0.log'))).toBe(false);

    // A directory a split broker wrote (as every directory before this default) opens as split, its messages intact.
    const old = await dataDir();
    broker = await fixture.broker({ port, dataDir: old, storage: { layout: 'split' } });
    client = await fixture.client([broker.url]);
    const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
    for (let i = 0; i < 10; i++) await client.publish('orders', bytes(`m${i}`));
    await fixture.cleanup();
    broker = await fixture.broker({ port, dataDir: old });
    expect(await stored(broker, 'orders')).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`));
    client = await fixture.client([broker.url]);
    await client.publish('orders', bytes('m10'));
    expect(await stored(broker, 'orders')).toHaveLength(11);
    await fixture.cleanup();
    expect(await readFile(join(old, 'storage-layout'), 'utf8')).toBe('split\n');
    expect(await exists(join(old, 'raft', 'p~orders~0.log'))).toBe(true);
    expect(await exists(join(old, 'partitions', 'p~orders~0', 'meta', 'layout.meta'))).toBe(false);
  });
});

describe.each(['split', 'unified'] as const)('a standalone broker with a data directory (storage.layout %s, snapshots)', (layout) => {
  it('checkpoints (split) or snapshots (unified) partitions and compacts their Raft logs, so a restart does not replay everything', async () => {
    const dir = await dataDir();
    const [port] = await freePorts(1);
    const options: BrokerOptions = { port, dataDir: dir, storage: { layout } };
    let broker = await fixture.broker(options);
    const client = await fixture.client([broker.url]);
    const data = new Uint8Array(1024);
    for (let round = 0; round < 5; round++) await Promise.all(Array.from({ length: 1000 }, () => client.publish('big', data)));
    if (layout === 'split') {
      const raftLog = join(dir, 'raft', 'p~big~0.log');
      const checkpoint = join(dir, 'partitions', 'p~big~0', 'meta', 'checkpoint.meta');
      // 5 MiB went through the Raft log; once checkpointed, it holds only what came after.
      await waitForAsync(async () => (await exists(checkpoint)) && (await stat(raftLog)).size < 1024 * 1024, 'a checkpoint and a compacted Raft log', 15_000);
    } else {
      // One log: the recorded snapshot (the idempotence table at an index) is what a restart resumes after.
      await waitForAsync(async () => exists(join(dir, 'partitions', 'p~big~0', 'meta', 'snapshot.meta')), 'a recorded snapshot', 15_000);
      expect(await exists(join(dir, 'raft', 'p~big~0.log'))).toBe(false);
    }
    await client.close();
    await broker.close();
    broker = await fixture.broker(options);
    expect(broker.engine.bounds('big', 0)).toEqual({ start: 0, end: 5000 });
    expect((await stored(broker, 'big')).length).toBe(5000);
  });
});

describe('a standalone broker with a data directory', () => {
  it('deletes whole segments by retention (bytes, count, age) (storage.layout split: a record per message; unified: see below)', async () => {
    const dir = await dataDir();
    const broker = await fixture.broker({
      dataDir: dir,
      storage: { layout: 'split' },
      segmentBytes: 8 * 1024,
      topicRetention: [
        { pattern: 'bytes', maxBytes: 32 * 1024 },
        { pattern: 'count', maxMessages: 100 },
        { pattern: 'slow', maxMessages: 50 },
        { pattern: 'age', maxAgeMs: 1 },
      ],
    });
    const client = await fixture.client([broker.url]);
    const payload = new Uint8Array(500);
    for (const topic of ['bytes', 'count', 'age', 'kept']) {
      for (let i = 0; i < 4; i++) await Promise.all(Array.from({ length: 100 }, () => client.publish(topic, payload)));
    }
    const count = (topic: string): number => broker.engine.bounds(topic, 0).end - broker.engine.bounds(topic, 0).start;
    // Limits are met with whole segments (about 15 messages each); the active segment always stays.
    // (A 500-byte message is a ~530-byte record: about 15 to a segment.)
    await waitFor(() => count('bytes') * 500 <= 32 * 1024 && count('bytes') * 530 > 32 * 1024 - 8 * 1024 - 530, 'retention by bytes', 15_000);
    await waitFor(() => count('count') <= 100 && count('count') > 100 - 20, 'retention by count', 15_000);
    const files = async (topic: string): Promise<number> =>
      (await readdir(join(dir, 'partitions', `p~${topic}~0`, 'log'))).filter((f) => f.endsWith('.log')).length;
    await waitForAsync(async () => (await files('age')) === 1, 'every sealed segment of "age" to go', 15_000);
    expect(broker.engine.bounds('kept', 0)).toEqual({ start: 0, end: 400 });
  });

  it.each(['split', 'unified'] as const)('tells a subscriber resuming behind retention about the gap (storage.layout %s)', async (layout) => {
    const dir = await dataDir();
    const broker = await fixture.broker({ dataDir: dir, storage: { layout }, segmentBytes: 8 * 1024, topicRetention: [{ pattern: 'slow', maxMessages: 50 }] });
    const client = await fixture.client([broker.url]);
    const payload = new Uint8Array(500);

    // A subscriber that falls behind retention gets a gap event, never a silent skip: it holds its
    // first message (so its credit of 10 runs out) while 400 more arrive and old segments go.
    const gaps: GapEvent[] = [];
    const reader = await fixture.client([broker.url], { subscriptionCredit: 10 });
    reader.on('gap', (event) => gaps.push(event));
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const offsets: number[] = [];
    await reader.subscribe(
      'slow',
      async (m: Message) => {
        offsets.push(m.offset);
        if (m.offset === 0) await held;
      },
      { from: 'earliest' },
    );
    await client.publish('slow', payload);
    await waitFor(() => offsets.length === 1, 'the first message');
    for (let i = 0; i < 4; i++) await Promise.all(Array.from({ length: 100 }, () => client.publish('slow', payload)));
    await waitFor(() => broker.engine.bounds('slow', 0).start > 10, 'retention to pass the subscriber', 15_000);
    const firstAvailable = broker.engine.bounds('slow', 0).start;
    release();
    await waitFor(() => offsets[offsets.length - 1] === 400, 'the subscriber to catch up');
    // Retention may strike again while it catches up: every jump is announced, nothing is delivered twice.
    expect(gaps.length).toBeGreaterThanOrEqual(1);
    expect(gaps[0]).toMatchObject({ topic: 'slow', partition: 0, expectedOffset: 10 });
    expect(gaps[0]?.firstAvailableOffset).toBeGreaterThanOrEqual(firstAvailable);
    expect(offsets.slice(0, 10)).toEqual(Array.from({ length: 10 }, (_, i) => i));
    const jumps = offsets.slice(1).flatMap((offset, i) => (offset === (offsets[i] as number) + 1 ? [] : [{ expectedOffset: (offsets[i] as number) + 1, firstAvailableOffset: offset }]));
    expect(jumps).toEqual(gaps.map(({ expectedOffset, firstAvailableOffset }) => ({ expectedOffset, firstAvailableOffset })));
  });
});

describe('retention on storage.layout unified', () => {
  it('deletes whole segments by bytes and by count (at least maxMessages stay), never the newest, and reads start at the first offset held', async () => {
    const dir = await dataDir();
    const broker = await fixture.broker({
      dataDir: dir,
      storage: { layout: 'unified' },
      segmentBytes: 8 * 1024,
      topicRetention: [
        { pattern: 'bytes', maxBytes: 32 * 1024 },
        { pattern: 'count', maxMessages: 100 },
      ],
    });
    const client = await fixture.client([broker.url]);
    const payload = new Uint8Array(500);
    for (const topic of ['bytes', 'count', 'kept']) {
      for (let i = 0; i < 4; i++) await Promise.all(Array.from({ length: 100 }, () => client.publish(topic, payload)));
    }
    const bounds = (topic: string): { start: number; end: number } => broker.engine.bounds(topic, 0);
    // Records are entries (here about one per 100 concurrent publishes, a segment of its own beyond 8 KiB), and the
    // newest segment always stays: at most the limit plus one entry is held. Retention waits for the snapshot (every
    // 2 s) to pass the records it deletes.
    await waitFor(() => bounds('bytes').start > 0 && (bounds('bytes').end - bounds('bytes').start) * 500 <= 32 * 1024 + 100 * 500, 'retention by bytes', 20_000);
    await waitFor(() => bounds('count').start > 0, 'retention by count', 20_000);
    expect(bounds('count').end - bounds('count').start).toBeGreaterThanOrEqual(100);
    expect(bounds('count').end).toBe(400);
    expect(bounds('kept')).toEqual({ start: 0, end: 400 });
    // Reads from 0 start at the first offset held, and hold everything after it.
    const held = await storedHere(broker, 'count');
    expect(held.length).toBe(400 - bounds('count').start);
  });
});

describe.each(['split', 'unified'] as const)('a broker whose disk fills up (storage.layout %s)', (layout) => {
  it('refuses publishes with STORAGE_FULL, keeps serving reads, loses nothing acknowledged, and recovers by itself when space returns', async () => {
    const dir = await dataDir();
    const fs = new FaultyFileSystem(nodeFileSystem);
    const broker = await fixture.broker({ dataDir: dir, fileSystem: fs, storage: { layout } });
    const client = await fixture.client([broker.url], { publishTimeoutMs: 5000 });
    for (let i = 0; i < 100; i++) await client.publish('full', `before-${i}`);

    // What each publish was told: 'stored', or an error code (TIMEOUT: outcome unknown).
    const outcomes = new Map<string, string>();
    const publish = (value: string): Promise<string> =>
      client.publish('full', value).then(
        () => 'stored',
        (err: unknown) => (err instanceof RelayError ? err.code : String(err)),
      ).then((outcome) => (outcomes.set(value, outcome), outcome));

    fs.failNext('write', 'ENOSPC', Number.POSITIVE_INFINITY);
    // The first publishes may meet the failing write (their outcome unknown until the disk is back);
    // once the broker knows, publishes are refused at once with a clear code.
    let refused = false;
    for (let i = 0; i < 100 && !refused; i++) {
      refused = (await publish(`during-${i}`)) === 'STORAGE_FULL';
      if (!refused) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(refused).toBe(true);

    // Reads go on.
    const reader = await fixture.client([broker.url]);
    const read: string[] = [];
    await reader.subscribe('full', (m: Message<string>) => void read.push(m.data), { from: 'earliest' });
    await waitFor(() => read.length >= 100, 'the stored messages while the disk is full');
    expect(read.slice(0, 100)).toEqual(Array.from({ length: 100 }, (_, i) => `before-${i}`));

    // Space returns; the broker finds out by its own retry (backoff up to 2 s).
    fs.heal();
    let accepted = false;
    for (let i = 0; i < 100 && !accepted; i++) {
      accepted = (await publish(`after-${i}`)) === 'stored';
      if (!accepted) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(accepted).toBe(true);
    const last = [...outcomes.keys()].pop() as string;
    await waitFor(() => read[read.length - 1] === last, 'the publish after recovery');
    // Stored once each, in order; everything acknowledged is there, nothing refused with STORAGE_FULL is.
    expect(new Set(read).size).toBe(read.length);
    const published = [...outcomes.keys()];
    expect(read.slice(100)).toEqual(published.filter((v) => read.includes(v)));
    for (const [value, outcome] of outcomes) {
      if (outcome === 'stored') expect(read).toContain(value);
      else if (outcome === 'STORAGE_FULL') expect(read).not.toContain(value);
      else expect(outcome).toBe('TIMEOUT');
    }
  }, 60_000);
});

/** Options of broker `i` of three with data directories under `root`, plus `extra`; brokers are started with them (again) by the test. */
async function clusterOptions(root: string, extra: Partial<BrokerOptions>): Promise<(i: number) => BrokerOptions> {
  const ids = ['s1', 's2', 's3'];
  const peerPorts = await freePorts(3);
  const peers = ids.map((id, i) => `${id}@127.0.0.1:${peerPorts[i]}`);
  return (i) => ({ id: ids[i], peerPort: peerPorts[i], peers: peers.filter((_, j) => j !== i), dataDir: join(root, ids[i] as string), ...extra });
}

describe('a 3-broker cluster with data directories', () => {
  it.each(['split', 'unified'] as const)('a replica that was down while the leader compacted its Raft log catches up from a snapshot and holds the same log (storage.layout %s)', async (layout) => {
    const root = await dataDir();
    const lines: Array<{ message: string; fields?: Record<string, unknown> }> = [];
    // raftLogMaxBytes 0: compact even though a replica lags, which must then get a snapshot.
    const options = await clusterOptions(root, { segmentBytes: 64 * 1024, raftLogMaxBytes: 0, storage: { layout }, log: (_level, message, fields) => void lines.push({ message, fields }) });
    const brokers = await Promise.all([0, 1, 2].map((i) => fixture.broker(options(i))));
    const client = await fixture.client(brokers.map((b) => b.url));
    const payload = (i: number): string => `v${i}`.padEnd(200, '.');
    for (let i = 0; i < 200; i++) await client.publish('snap', payload(i));
    const leaderId = brokers[0]?.engine.leaderOf?.('snap', 0);
    const downIndex = brokers.findIndex((b) => b.id !== leaderId);
    const down = brokers[downIndex] as Broker;
    const statusOf = (b: Broker): GroupStatus | undefined => (b.engine as unknown as { groupStatus(): GroupStatus[] }).groupStatus().find((g) => g.group === 'p/snap/0');
    const heldWhenDown = statusOf(down)?.lastIndex ?? 0;
    await down.close();

    // Enough entries for checkpoints, and time for the leader to compact past what the replica holds.
    for (let round = 0; round < 10; round++) await Promise.all(Array.from({ length: 300 }, (_, i) => client.publish('snap', payload(200 + round * 300 + i))));
    const leader = brokers.find((b) => b.id === leaderId) as Broker;
    if (layout === 'split') {
      const leaderRaftLog = join(root, leaderId as string, 'raft', 'p~snap~0.log');
      await waitForAsync(async () => (await stat(leaderRaftLog)).size < 64 * 1024, "the leader's Raft log to be compacted", 15_000);
    } else {
      // One log: the leader's snapshot drops the entries from memory only; the replica needs a snapshot, then the records below it.
      await waitFor(() => (statusOf(leader)?.firstIndex ?? 0) > heldWhenDown + 1, "the leader's log to be compacted past the replica's", 15_000);
    }

    const back = await fixture.broker(options(downIndex));
    await waitFor(() => back.engine.bounds('snap', 0).end === 3200, 'the replica to catch up', 20_000);
    // Its own replica (never read from another broker): every message, below the snapshot too.
    const held = await storedHere(back, 'snap');
    expect(held).toEqual(await storedHere(leader, 'snap'));
    expect(held.map((v) => /v\d+/.exec(v)?.[0])).toEqual(Array.from({ length: 3200 }, (_, i) => `v${i}`));
    if (layout === 'unified') expect(lines.some((l) => l.message === 'installed a leader snapshot: records below it copied' && l.fields?.group === 'p/snap/0')).toBe(true);
  });

  it('compacts the metadata log too: a broker that was down learns topics from a snapshot, and a restart keeps them', async () => {
    const root = await dataDir();
    const options = await clusterOptions(root, { raftLogMaxBytes: 0 });
    const brokers = await Promise.all([0, 1, 2].map((i) => fixture.broker(options(i))));
    const client = await fixture.client(brokers.map((b) => b.url));
    await client.publish('early', 'e');
    const downIndex = 2;
    await (brokers[downIndex] as Broker).close();
    // While it is down: a new topic, then more than 2,000 metadata entries (durable position commits).
    await client.publish('late', 'l');
    const up = brokers[0] as Broker;
    for (let i = 1; i <= 2100; i++) await up.engine.commitPositions('billing', [{ topic: 'early', partition: 0, offset: i % 2 }]);
    const metaLog = (id: string): string => join(root, id, 'raft', 'meta.log');
    // Uncompacted, 2,100 commits take over 300 KiB; a compaction may strike before the last ones, which stay.
    await waitForAsync(async () => (await stat(metaLog(up.id))).size < 96 * 1024, 'the metadata log to be compacted', 15_000);

    const back = await fixture.broker(options(downIndex));
    await waitFor(() => back.engine.partitionCount('late') === 1, 'the restarted broker to learn "late" from the snapshot', 15_000);
    const reader = await fixture.client([back.url], { poolSize: 1, discovery: false });
    const read: string[] = [];
    await reader.subscribe('late', (m: Message<string>) => void read.push(m.data), { from: 'earliest' });
    await waitFor(() => read.length === 1, 'the message of "late" from the restarted broker');
    expect(read).toEqual(['l']);

    // A broker whose own metadata log was compacted restarts from its snapshot.
    await up.close();
    const again = await fixture.broker(options(0));
    expect(again.engine.partitionCount('late')).toBe(1);
    expect(await again.engine.positions('billing', 'early')).toEqual([{ topic: 'early', partition: 0, offset: 1 }]);
  });

  it.each(['split', 'unified'] as const)('a replica that finds a flipped bit in a sealed segment reports it, does not serve it, and repairs it from a healthy replica (storage.layout %s)', async (layout) => {
    const root = await dataDir();
    const lines: Array<{ message: string; fields?: Record<string, unknown> }> = [];
    const options = await clusterOptions(root, { segmentBytes: 8 * 1024, storage: { layout }, log: (_level, message, fields) => void lines.push({ message, fields }) });
    const brokers = await Promise.all([0, 1, 2].map((i) => fixture.broker(options(i))));
    const client = await fixture.client(brokers.map((b) => b.url));
    // In 20 rounds: at least 20 publish batches (a unified record is a whole batch).
    for (let round = 0; round < 20; round++) await Promise.all(Array.from({ length: 50 }, (_, i) => client.publish('bits', `m${round * 50 + i}`.padEnd(200, '.'))));
    const leaderId = brokers[0]?.engine.leaderOf?.('bits', 0);
    const victimIndex = brokers.findIndex((b) => b.id !== leaderId);
    const victim = brokers[victimIndex] as Broker;
    const logDir = join(root, victim.id, 'partitions', 'p~bits~0', 'log');
    // The victim applied every message, in more than five segments.
    await waitForAsync(
      async () => (await readdir(logDir)).filter((f) => f.endsWith('.log')).length > 5 && (await stored(victim, 'bits')).length === 1000,
      'the replica to hold every message in segments',
    );
    await victim.close(); // its last checkpoint puts every segment on disk

    const sealed = (await readdir(logDir)).filter((f) => f.endsWith('.log')).sort()[3] as string;
    const file = await open(join(logDir, sealed), 'r+');
    const size = (await file.stat()).size;
    const byte = Buffer.alloc(1);
    await file.read(byte, 0, 1, Math.floor(size / 2));
    byte[0] = (byte[0] as number) ^ 0x10;
    await file.write(byte, 0, 1, Math.floor(size / 2));
    await file.close();

    const back = await fixture.broker(options(victimIndex));
    // Split checks every segment on open; unified only the active one, so there a read finds the damage: it is served from another replica.
    if (layout === 'unified') {
      expect((await stored(back, 'bits')).map((v) => /m\d+/.exec(v)?.[0])).toEqual(Array.from({ length: 1000 }, (_, i) => `m${i}`));
      expect(lines.some((l) => l.message === 'reading a hosted partition failed; reading another replica')).toBe(true);
    }
    await waitFor(() => lines.some((l) => l.message.startsWith('partition log damaged') && l.fields?.group === 'p/bits/0'), 'the damage to be reported');
    await waitFor(() => lines.some((l) => l.message === 'partition log repaired from the leader'), 'the repair', 20_000);
    expect(back.engine.leaderOf?.('bits', 0)).not.toBe(back.id);
    const leader = brokers.find((b) => b.id === leaderId) as Broker;
    expect(await stored(back, 'bits')).toEqual(await stored(leader, 'bits'));
    expect((await stored(back, 'bits')).map((v) => /m\d+/.exec(v)?.[0])).toEqual(Array.from({ length: 1000 }, (_, i) => `m${i}`));
  });
});
