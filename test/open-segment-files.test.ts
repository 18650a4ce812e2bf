/**
 * A broker with more partitions than `maxOpenSegmentFiles` and
 * `maxOpenRaftLogFiles` (issue 13: ten thousand partitions must fit a file
 * descriptor limit): the segment files and Raft log files it keeps open,
 * counted from the process's own descriptors, come back under their bounds
 * once writes are fsynced; every partition is published to, read back, and
 * read back again from disk after a restart on the same data directory.
 */
import { readdirSync, readlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Broker, BrokerOptions } from '@relaymq/broker';
import type { PublishBatch } from '@relaymq/sdk/protocol';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { RawClient } from './support/raw-client.js';
import { waitFor } from './support/wait.js';

const fixture = new Fixture();
const dirs: string[] = [];
afterEach(async () => {
  await fixture.cleanup();
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

const TOPICS = 8;
const PARTITIONS = 8;
const BOUND = 8;
/** Messages per partition: with 4 KiB segments, about three segments each. */
const PER_PARTITION = 120;

/** Segment files of `dir` this process has open now, from /proc/self/fd (Linux). */
function openSegmentFiles(dir: string): number {
  return openLogFiles(join(dir, 'partitions'));
}

/** Raft log files of `dir` this process has open now (one per group: the partitions' and the metadata's). */
function openRaftLogFiles(dir: string): number {
  return openLogFiles(join(dir, 'raft'));
}

/** `.log` files under `dir` this process has open now, from /proc/self/fd (Linux). */
function openLogFiles(dir: string): number {
  let count = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    if (target.startsWith(`${dir}/`) && target.endsWith('.log')) count++;
  }
  return count;
}

const body = (topic: string, partition: number, i: number): string => `${topic}/${partition}/${i} ${'.'.repeat(60)}`;

/** One producer ('raw-producer'): its sequence numbers per partition are the message indexes. */
const batch = (id: number, topic: string, partition: number, from: number, count: number): PublishBatch => ({
  topic,
  partition,
  ack: 'quorum',
  firstId: id,
  firstSeq: from,
  messages: Array.from({ length: count }, (_, i) => ({ data: new TextEncoder().encode(body(topic, partition, from + i)) })),
});

/** Every message of one partition, through the engine (from disk after a restart; before it the newest 4 MiB come from memory). */
async function stored(broker: Broker, topic: string, partition: number): Promise<string[]> {
  const out: string[] = [];
  for (let offset = 0, rounds = 0; rounds < 1000; rounds++) {
    const messages = await broker.engine.read(topic, partition, offset, 1000, 16 * 1024 * 1024);
    const last = messages[messages.length - 1];
    if (last === undefined) break;
    for (const m of messages) out.push(Buffer.from(m.data).toString());
    offset = last.offset + 1;
  }
  return out;
}

/** The acks of `count` batches: each partition is answered on its own, in any order; sorted by id. */
async function acks(raw: RawClient, count: number): Promise<Array<{ id: number; offset: number; count: number; duplicate: boolean }>> {
  const got: Array<{ id: number; offset: number; count: number; duplicate: boolean }> = [];
  for (let frames = 0; got.length < count && frames < count; frames++) got.push(...(await raw.next('ack', 30_000)).acks); // the first publish of a topic creates its 8 partitions: over 20 s seen at load 28
  return got.sort((a, b) => a.id - b.id);
}

const expected = (topic: string, partition: number, count: number): string[] => Array.from({ length: count }, (_, i) => body(topic, partition, i));

describe('a broker with more partitions than maxOpenSegmentFiles and maxOpenRaftLogFiles', () => {
  // On split every partition has a Raft log file under raft/ too; on unified its segments are its Raft log (raft/ holds the metadata's only).
  it.each(['split', 'unified'] as const)(`hosts ${TOPICS * PARTITIONS} partitions of several segments with at most ${BOUND} segment files and ${BOUND} Raft log files open once idle, reads every partition back, and again after a restart (storage.layout %s)`, async (layout) => {
    const dir = await mkdtemp(join(tmpdir(), 'relaymq-open-segments-'));
    dirs.push(dir);
    const [port] = await freePorts(1);
    const options: BrokerOptions = { port, dataDir: dir, defaultPartitions: PARTITIONS, segmentBytes: 4096, maxOpenSegmentFiles: BOUND, maxOpenRaftLogFiles: BOUND, storage: { layout } };
    const topics = Array.from({ length: TOPICS }, (_, i) => `files.t${i}`);
    let broker = await fixture.broker(options);

    const raw = await RawClient.open(broker.url);
    let id = 1;
    for (const topic of topics) {
      // Two publishes per partition, so that segments roll and are read back sealed.
      for (const [from, count] of [[0, PER_PARTITION / 2], [PER_PARTITION / 2, PER_PARTITION / 2]] as const) {
        raw.send({ type: 'publish', batches: Array.from({ length: PARTITIONS }, (_, p) => batch(id + p * 10_000, topic, p, from, count)) });
        expect((await acks(raw, PARTITIONS)).map((a) => [a.offset, a.count, a.duplicate])).toEqual(Array.from({ length: PARTITIONS }, () => [from, count, false]));
        id += 100;
      }
    }
    raw.close();
    // Written segments stay open until their fsync (the segment logs' interval); then the bound closes the idle ones.
    await waitFor(() => openSegmentFiles(dir) <= BOUND, `at most ${BOUND} segment files open (${openSegmentFiles(dir)})`, 15_000);
    // Every partition's Raft log was written (and fsynced: fsync always); idle, at most the bound stay open.
    await waitFor(() => openRaftLogFiles(dir) <= BOUND, `at most ${BOUND} Raft log files open (${openRaftLogFiles(dir)})`, 15_000);
    // The broker's own stats say the same (what /metrics exports as relaymq_broker_stat).
    await waitFor(() => broker.stats().openSegmentFiles <= BOUND && broker.stats().openRaftLogFiles <= BOUND, `the broker's stats within the bounds (${JSON.stringify(broker.stats())})`, 15_000);
    expect(broker.stats().openRaftLogFiles).toBeGreaterThan(0);

    for (const topic of topics) {
      for (let p = 0; p < PARTITIONS; p++) expect(await stored(broker, topic, p)).toEqual(expected(topic, p, PER_PARTITION));
    }
    // Reading opened sealed segments; the bound closes the idle ones again (asynchronously: 13 were seen under load 15).
    await waitFor(() => openSegmentFiles(dir) <= BOUND, `at most ${BOUND} segment files open after the reads (${openSegmentFiles(dir)})`, 15_000);

    await broker.close();
    expect(openSegmentFiles(dir)).toBe(0);
    expect(openRaftLogFiles(dir)).toBe(0);
    broker = await fixture.broker(options);
    for (const topic of topics) {
      for (let p = 0; p < PARTITIONS; p++) expect(await stored(broker, topic, p)).toEqual(expected(topic, p, PER_PARTITION));
    }
    // And they take writes again, through reopened files.
    const after = await RawClient.open(broker.url);
    for (const topic of topics) {
      after.send({ type: 'publish', batches: Array.from({ length: PARTITIONS }, (_, p) => batch(id + p * 10_000, topic, p, PER_PARTITION, 1)) });
      expect((await acks(after, PARTITIONS)).map((a) => [a.offset, a.duplicate])).toEqual(Array.from({ length: PARTITIONS }, () => [PER_PARTITION, false]));
      id += 100;
    }
    after.close();
    for (const topic of topics) {
      for (let p = 0; p < PARTITIONS; p++) expect(await stored(broker, topic, p)).toEqual(expected(topic, p, PER_PARTITION + 1));
    }
    await waitFor(() => openSegmentFiles(dir) <= BOUND, `at most ${BOUND} segment files open after the restart (${openSegmentFiles(dir)})`, 15_000);
    await waitFor(() => openRaftLogFiles(dir) <= BOUND, `at most ${BOUND} Raft log files open after the restart (${openRaftLogFiles(dir)})`, 15_000);
  }, 120_000);
});
