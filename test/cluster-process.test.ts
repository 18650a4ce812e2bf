import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { GapEvent, Message, PublishReceipt, RelayClient } from '@relaymq/sdk';
import { BrokerProcess } from './support/broker-process.js';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { RawClient } from './support/raw-client.js';
import { waitFor, waitForProgress, within } from './support/wait.js';

const fixture = new Fixture();
const dirs: string[] = [];
afterEach(async () => {
  await fixture.cleanup();
  await BrokerProcess.stopAll();
  // RELAYMQ_TEST_KEEP_DIRS=1 keeps the brokers' data directories (printed by a failing case) for inspection.
  const keep = process.env.RELAYMQ_TEST_KEEP_DIRS === '1';
  await Promise.all(dirs.splice(0).map((dir) => (keep ? undefined : rm(dir, { recursive: true, force: true }))));
});

type Layout = 'split' | 'unified';

/** How to start (and restart) each of three brokers: peers and a data directory apiece, in storage layout `layout`. */
async function clusterPlan(layout: Layout): Promise<{ ids: string[]; root: string; start: (i: number) => Promise<BrokerProcess> }> {
  const ids = ['c1', 'c2', 'c3'];
  const ports = await freePorts(3);
  const peers = ids.map((id, i) => `${id}@127.0.0.1:${ports[i]}`);
  const root = await mkdtemp(join(tmpdir(), 'relaymq-cluster-'));
  dirs.push(root);
  const start = (i: number): Promise<BrokerProcess> =>
    BrokerProcess.start(ids[i] as string, [
      '--peer-port', String(ports[i]), '--peers', peers.filter((_, j) => j !== i).join(','), '--data', join(root, ids[i] as string), '--storage-layout', layout,
      // Diagnosis: RELAYMQ_TEST_BROKER_LOG_LEVEL=info (the last --log-level wins) for the log tails a failure prints.
      ...(process.env.RELAYMQ_TEST_BROKER_LOG_LEVEL === undefined ? [] : ['--log-level', process.env.RELAYMQ_TEST_BROKER_LOG_LEVEL]),
    ]);
  return { ids, root, start };
}

/** Three broker processes with peers and data directories. */
async function startCluster(layout: Layout): Promise<BrokerProcess[]> {
  const { ids, start } = await clusterPlan(layout);
  return Promise.all(ids.map((_, i) => start(i)));
}

/** The partition leader, as a broker reports it in a metadata answer. */
async function leaderOf(brokers: BrokerProcess[], topic: string): Promise<BrokerProcess> {
  let leader: string | undefined;
  await waitFor(() => leader !== undefined && leader !== '', `a leader of ${topic}`, 10_000).catch(() => {});
  for (let attempt = 0; attempt < 100 && (leader === undefined || leader === ''); attempt++) {
    const raw = await RawClient.open((brokers[attempt % brokers.length] as BrokerProcess).url);
    raw.send({ type: 'metadata', id: 1, topics: [topic] });
    leader = (await raw.next('topics')).topics[0]?.leaders?.[0];
    raw.close();
    if (leader === '') await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const found = brokers.find((b) => b.id === leader);
  if (found === undefined) throw new Error(`no leader of ${topic} reported`);
  return found;
}

/** Publishes `total` numbers pipelined, doing `fault` to the leader after `faultAt`; returns the receipts. */
async function publishThrough(client: RelayClient, total: number, faultAt: number, fault: () => Promise<unknown>): Promise<PublishReceipt[]> {
  const receipts: Array<Promise<PublishReceipt>> = [];
  for (let i = 0; i < total; i++) {
    receipts.push(client.publish('orders', i));
    if (i === faultAt) await fault();
    if (i % 250 === 249) await new Promise((resolve) => setImmediate(resolve));
  }
  return within(Promise.all(receipts), `all ${total} publishes to be acknowledged`, 60_000);
}

/** One message read back: its value and where it was stored. */
interface Read {
  value: number;
  partition: number;
  offset: number;
}

/** Everything a subscriber on one broker was given: the messages and any gap events (offsets it was told to skip). */
interface ReadBack {
  reads: Read[];
  gaps: GapEvent[];
}

/**
 * Reads `orders` through a subscriber on `broker`, from earliest, until every one of `expected` was seen or no new
 * message arrived for `quietMs` (a tail of duplicates or of values stored out of order is read too, not cut off at
 * a count), bounded by `timeoutMs` in all. Resolves with everything read; the caller's assertions judge it.
 */
async function readAll(broker: BrokerProcess, expected: Iterable<number>, { quietMs = 3000, timeoutMs = 30_000 } = {}): Promise<ReadBack> {
  const missing = new Set(expected);
  const reader = await fixture.client([broker.url], { poolSize: 1, discovery: false });
  const reads: Read[] = [];
  const gaps: GapEvent[] = [];
  reader.on('gap', (event) => void gaps.push(event));
  let lastArrival = 0;
  await reader.subscribe(
    'orders',
    (m: Message<number>) => {
      reads.push({ value: m.data, partition: m.partition, offset: m.offset });
      missing.delete(m.data);
      lastArrival = Date.now();
    },
    { from: 'earliest' },
  );
  const deadline = Date.now() + timeoutMs;
  // Quiet counts only once something arrived: a broker recovering its log may take most of the bound to serve the first.
  await waitFor(() => missing.size === 0 || Date.now() > deadline || (lastArrival > 0 && Date.now() - lastArrival > quietMs), `messages from ${broker.id}`, timeoutMs + 1000);
  await reader.close();
  return { reads: [...reads], gaps };
}

/** `values` as runs `a..b`, for messages naming thousands of values. */
function ranges(values: readonly number[]): string[] {
  const sorted = [...values].sort((x, y) => x - y);
  const out: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && (sorted[j + 1] as number) === (sorted[j] as number) + 1) j++;
    out.push(i === j ? String(sorted[i]) : `${sorted[i]}..${sorted[j]}`);
    i = j + 1;
  }
  return out;
}

/**
 * What is wrong with `reads` against `acknowledged` (value -> offset its ack named): acknowledged values missing (as
 * runs, with the offsets their acks named and the reads around that offset), duplicates, and every place the values
 * go down (partition and offsets either side). Empty when every acknowledged value is there, once, in publish order.
 */
function safetyProblems({ reads, gaps }: ReadBack, acknowledged: ReadonlyMap<number, number>): string[] {
  const problems: string[] = [];
  const seen = new Map<number, Read>();
  const duplicates: Read[] = [];
  for (const read of reads) {
    if (seen.has(read.value)) duplicates.push(read);
    else seen.set(read.value, read);
  }
  const missing = [...acknowledged.keys()].filter((v) => !seen.has(v));
  const byOffset = new Map(reads.map((r) => [`${r.partition}/${r.offset}`, r]));
  for (const run of ranges(missing)) {
    const [first, last] = run.split('..').map(Number) as [number, number?];
    const ackedAt = (v: number): string => String(acknowledged.get(v));
    const storedThere = (v: number): string => {
      const r = byOffset.get(`0/${acknowledged.get(v)}`);
      return r === undefined ? 'nothing read there' : `value ${r.value} read there`;
    };
    problems.push(`missing ${run}: acked at offsets ${ackedAt(first)}..${ackedAt(last ?? first)} (${storedThere(first)}; ${storedThere(last ?? first)})`);
  }
  if (duplicates.length > 0) problems.push(`duplicates ${ranges(duplicates.map((d) => d.value)).join(', ')} (first at ${duplicates[0]?.partition}/${duplicates[0]?.offset})`);
  for (let i = 1; i < reads.length; i++) {
    const [prev, next] = [reads[i - 1] as Read, reads[i] as Read];
    if (next.value <= prev.value) problems.push(`order break at read ${i}: ${prev.value} at ${prev.partition}/${prev.offset}, then ${next.value} at ${next.partition}/${next.offset}`);
  }
  // Where an ack said a value is stored: a value read elsewhere was acknowledged with a wrong offset (judged in diagnosis only).
  const moved = reads.filter((r) => acknowledged.has(r.value) && acknowledged.get(r.value) !== r.offset);
  const movedStory = moved.length === 0 ? [] : [`${moved.length} acknowledged values read at another offset than their ack named (first: ${moved[0]?.value} acked at ${acknowledged.get(moved[0]?.value as number)}, read at ${moved[0]?.offset})`];
  if (process.env.RELAYMQ_TEST_READ_EVERY_BROKER === '1') problems.push(...movedStory);
  if (problems.length === 0) return problems;
  if (process.env.RELAYMQ_TEST_READ_EVERY_BROKER !== '1') problems.push(...movedStory);
  // Offsets the subscriber was told to skip, for a failure's story (not themselves judged: only what was acknowledged is).
  for (const g of gaps) problems.push(`gap event: expected offset ${g.expectedOffset}, first available ${g.firstAvailableOffset}${g.reset === true ? ' (reset)' : ''}`);
  for (let i = 1; i < reads.length; i++) {
    const [prev, next] = [reads[i - 1] as Read, reads[i] as Read];
    if (next.partition === prev.partition && next.offset !== prev.offset + 1) problems.push(`offsets jump at read ${i}: ${prev.value} at ${prev.partition}/${prev.offset}, then ${next.value} at ${next.partition}/${next.offset}`);
  }
  problems.push(`read ${reads.length}: values ${reads[0]?.value}..${reads.at(-1)?.value}, offsets ${reads[0]?.offset}..${reads.at(-1)?.offset}`);
  return problems;
}

/** The partition count and leaders of `topic` as `broker` reports them, for a failure message (never throws). */
async function topicReport(broker: BrokerProcess, topic: string): Promise<string> {
  try {
    const raw = await RawClient.open(broker.url);
    raw.send({ type: 'metadata', id: 1, topics: [topic] });
    const info = (await raw.next('topics', 5000)).topics[0];
    raw.close();
    return `${topic}: ${info?.partitions} partition(s), leaders ${JSON.stringify(info?.leaders)} (asked ${broker.id})`;
  } catch (err) {
    return `${topic}: no metadata from ${broker.id} (${(err as Error).message})`;
  }
}

/** The last `lines` lines a broker wrote to stderr. */
function logTail(broker: BrokerProcess, lines = 15): string {
  return `--- ${broker.id} (pid ${broker.pid}) last log lines:\n${broker.stderr.trimEnd().split('\n').slice(-lines).join('\n')}`;
}

describe.each(['split', 'unified'] as const)('a 3-broker cluster of real processes (storage.layout %s)', (layout) => {
  it('kill -9 of the partition leader during 10,000 pipelined publishes loses, duplicates and reorders nothing', async () => {
    const brokers = await startCluster(layout);
    // The default ping interval, as in the kill-all case: kill -9 closes the sockets, no silence needs noticing.
    const client = await fixture.client(brokers.map((b) => b.url), { poolSize: 2 });
    await client.publish('orders', -1);
    const leader = await leaderOf(brokers, 'orders');
    const results = await publishThrough(client, 10_000, 3000, () => leader.signal('SIGKILL'));
    expect(results).toHaveLength(10_000);
    const survivor = brokers.find((b) => b !== leader) as BrokerProcess;
    const expected = [-1, ...Array.from({ length: 10_000 }, (_, i) => i)];
    expect((await readAll(survivor, expected)).reads.map((r) => r.value)).toEqual(expected);
  }, 90_000);

  it('SIGSTOP of the partition leader (a paused broker): the rest elect a leader and nothing is lost', async () => {
    const brokers = await startCluster(layout);
    const client = await fixture.client(brokers.map((b) => b.url), { poolSize: 2, pingIntervalMs: 200 });
    await client.publish('orders', -1);
    const leader = await leaderOf(brokers, 'orders');
    const results = await publishThrough(client, 10_000, 3000, () => leader.signal('SIGSTOP'));
    expect(results).toHaveLength(10_000);
    const survivor = brokers.find((b) => b !== leader) as BrokerProcess;
    const expected = [-1, ...Array.from({ length: 10_000 }, (_, i) => i)];
    expect((await readAll(survivor, expected)).reads.map((r) => r.value)).toEqual(expected);
    await leader.signal('SIGCONT');
  }, 90_000);

  it('kill -9 of all three brokers mid-stream at ack quorum: after a restart every acknowledged message is there, once, in order', async () => {
    const { ids, root, start } = await clusterPlan(layout);
    let brokers = await Promise.all(ids.map((_, i) => start(i)));
    const crashed: BrokerProcess[] = brokers;
    // The default ping interval, not 200 ms: nothing here needs a silent broker noticed (kill -9 closes the sockets).
    // At 200 ms a broker silent for 400 ms is judged dead, and on one loaded core (this loop and three brokers) the
    // brokers were, so the client failed over again and again, republishing its 10,000-message outbox to each next
    // broker, which stalled that one too: no ack for 10-26 s, and 2 of 3 pinned runs missed 3,000 acks in 30 s.
    // Diagnosis: RELAYMQ_TEST_PING_MS=200 brings back the failovers described above (acks then arrive out of publish order).
    const ping = process.env.RELAYMQ_TEST_PING_MS === undefined ? {} : { pingIntervalMs: Number(process.env.RELAYMQ_TEST_PING_MS) };
    const client = await fixture.client(brokers.map((b) => b.url), { poolSize: 2, publishTimeoutMs: 60_000, ...ping });
    // Each acknowledged value and the offset its ack named (a failure says where a missing value was acked).
    const acknowledged = new Map<number, number>();
    let republished = 0;
    let sent = 0;
    let stopped = false;
    const load = (async () => {
      while (!stopped && sent < 50_000) {
        const value = sent++;
        client.publish('orders', value, { ack: 'quorum' }).then(
          (receipt) => {
            acknowledged.set(value, receipt.offset);
            if (receipt.duplicate) republished++;
          },
          () => {}, // unacknowledged at the crash: it may or may not be stored
        );
        if (sent % 100 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
      }
    })();
    // Bounded on stalls (no new ack for 20 s: election and the first quorum commit included), not on a total that assumes an idle machine.
    // Diagnosis: RELAYMQ_TEST_KILL_AFTER_ACKS=15000 crashes later, inside the client's second outbox window (10,000 messages).
    const killAfter = Number(process.env.RELAYMQ_TEST_KILL_AFTER_ACKS ?? 3000);
    await waitForProgress(() => acknowledged.size, killAfter, 'acknowledged publishes', 20_000, 60_000);
    // Asked in diagnosis only: a metadata round trip here would move the crash later than the acks that triggered it.
    const leaderBefore = process.env.RELAYMQ_TEST_READ_EVERY_BROKER === '1' ? await topicReport(brokers[1] as BrokerProcess, 'orders') : 'not asked';
    stopped = true;
    await Promise.all(brokers.map((b) => b.signal('SIGKILL')));
    await load;
    const before = new Map(acknowledged);
    expect(before.size).toBeGreaterThanOrEqual(3000);

    brokers = await Promise.all(ids.map((_, i) => start(i)));
    // Read until every acknowledged value was seen or the log went quiet, then judge everything read, not a prefix.
    // RELAYMQ_TEST_READ_EVERY_BROKER=1 (diagnosis) reads through each broker, not only c2.
    const readers = process.env.RELAYMQ_TEST_READ_EVERY_BROKER === '1' ? brokers : [brokers[1] as BrokerProcess];
    const report: string[] = [];
    for (const reader of readers) {
      // Three processes recovering at once on a CI machine busy with other test files: a longer bound.
      const readBack = await readAll(reader, before.keys(), { timeoutMs: 60_000 });
      const problems = safetyProblems(readBack, before);
      if (process.env.RELAYMQ_TEST_READ_EVERY_BROKER === '1') {
        // Diagnosis: the acks' shape, and what the former check (the first before.size values read, judged alone) would have said.
        const largest = Math.max(...before.keys());
        const prefix = new Set(readBack.reads.slice(0, before.size).map((r) => r.value));
        const unseen = [...before.keys()].filter((v) => !prefix.has(v));
        console.log(`[ack shape ${layout} via ${reader.id}] acked ${before.size}, largest ${largest}, unacked below it ${largest + 1 - before.size}; read ${readBack.reads.length}; former check: ${unseen.length === 0 ? 'pass' : `FAIL, missing ${ranges(unseen).join(' ')}`}`);
      }
      if (problems.length > 0) report.push(`read through ${reader.id}:`, ...problems.slice(0, 40));
    }
    if (process.env.RELAYMQ_TEST_KEEP_DIRS === '1') {
      // Beside the kept data: what each broker wrote before the crash and after the restart, failing or not.
      await Promise.all([...crashed.map((b) => [b, 'crashed'] as const), ...brokers.map((b) => [b, 'restarted'] as const)].map(([b, when]) => writeFile(join(root, `${b.id}-${when}.log`), b.stderr)));
    }
    if (report.length > 0) {
      const maxAcked = Math.max(...before.keys());
      report.unshift(
        `${before.size} acknowledged of ${sent} sent (largest ${maxAcked}, ${republished} acked as duplicates of a republish)`,
        `before the crash: ${leaderBefore}`,
        `after the restart: ${await topicReport(brokers[1] as BrokerProcess, 'orders')}`,
      );
      report.push(...crashed.map((b) => logTail(b)), ...brokers.map((b) => logTail(b)));
      if (process.env.RELAYMQ_TEST_KEEP_DIRS === '1') report.push(`data directories kept under ${root}`);
    }
    // Every acknowledged value present, none twice, ascending (publish order) over all that was read.
    expect(report.join('\n')).toBe('');
  }, 120_000);

  it('a rolling restart of all three brokers under load loses and duplicates nothing', async () => {
    const { ids, start } = await clusterPlan(layout);
    const brokers = await Promise.all(ids.map((_, i) => start(i)));
    // The default ping interval, as in the kill-all case: brokers leave with a goodbye (SIGTERM), none needs noticing as silent.
    const client = await fixture.client(brokers.map((b) => b.url), { poolSize: 2 });
    await client.publish('orders', -1);

    let stop = false;
    let sent = 0;
    const receipts: Array<Promise<PublishReceipt>> = [];
    const load = (async () => {
      while (!stop && sent < 20_000) {
        receipts.push(client.publish('orders', sent++));
        if (sent % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
      }
    })();
    for (let i = 0; i < 3; i++) {
      const broker = brokers[i] as BrokerProcess;
      expect(await broker.signal('SIGTERM')).toBe(0); // graceful: leadership handed over, clients told to move
      brokers[i] = await start(i);
    }
    stop = true;
    await load;
    await within(Promise.all(receipts), 'every publish to be acknowledged', 60_000);
    const expected = [-1, ...Array.from({ length: sent }, (_, i) => i)];
    expect((await readAll(brokers[0] as BrokerProcess, expected)).reads.map((r) => r.value)).toEqual(expected);
  }, 120_000);
});
