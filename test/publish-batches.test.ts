import { afterEach, describe, expect, it } from 'vitest';
import type { Broker } from '@relaymq/broker';
import type { BrokerFrame, PublishBatch } from '@relaymq/sdk/protocol';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { RawClient } from './support/raw-client.js';
import { tempDirs } from './support/temp-dirs.js';
import { waitFor } from './support/wait.js';

/**
 * One client flush (one `publish` frame) may carry batches of several
 * producers for one partition: a client's incarnations are producers of
 * their own. Each batch reaches the partition log as one value and is
 * applied by the one shared apply step, so every engine answers the same:
 * per producer, stored, duplicate and gap, in message order. (The cluster
 * engine once rebuilt a batch from its first message alone, assuming one
 * producer and consecutive seqs.)
 */

const tempDir = tempDirs('relaymq-batches-');
const fixture = new Fixture();
afterEach(() => fixture.cleanup());

const batch = (firstId: number, firstSeq: number, count: number, incarnation?: number): PublishBatch => ({
  topic: 'mixed',
  partition: 0,
  ack: 'quorum',
  firstId,
  firstSeq,
  messages: Array.from({ length: count }, (_, i) => ({ data: new TextEncoder().encode(`${incarnation ?? 0}:${firstSeq + i}`) })),
  ...(incarnation === undefined ? {} : { incarnation }),
});

/** The answers to two flushes, with the leader hint (a forwarded publish names the leader) left out. */
async function answers(broker: Broker): Promise<unknown[]> {
  const raw = await RawClient.open(broker.url);
  try {
    raw.send({ type: 'publish', batches: [batch(1, 0, 2), batch(3, 0, 1, 1), batch(4, 1, 2), batch(6, 1, 1, 1), batch(7, 5, 1)] });
    // Its answers first: the second flush republishes what the first stored.
    await waitFor(() => raw.frames.filter((f) => f.type === 'ack' || f.type === 'nack').length >= 2, 'the answers to the first flush', 20_000); // topic creation and elections on disk: 2-3 s alone, over 10 s in a loaded full run
    raw.send({ type: 'publish', batches: [batch(8, 0, 2, 1)] });
    await waitFor(() => raw.frames.filter((f) => f.type === 'ack' || f.type === 'nack').length >= 3, 'the answers to the second flush', 20_000);
    return raw.frames
      .filter((f): f is Extract<BrokerFrame, { type: 'ack' | 'nack' }> => f.type === 'ack' || f.type === 'nack')
      .map((f) => (f.type === 'ack' ? { type: 'ack', acks: f.acks.map(({ leader: _leader, ...ack }) => ack) } : f));
  } finally {
    raw.close();
  }
}

const EXPECTED = [
  {
    type: 'ack',
    acks: [
      { id: 1, offset: 0, count: 2, duplicate: false },
      { id: 3, offset: 2, count: 1, duplicate: false },
      { id: 4, offset: 1, count: 1, duplicate: true },
      { id: 5, offset: 3, count: 1, duplicate: false },
      { id: 6, offset: 4, count: 1, duplicate: false },
    ],
  },
  { type: 'nack', id: 7, code: 'SEQUENCE_GAP', message: 'seq 5 skips ahead; expected 3', expectedSeq: 3 },
  {
    type: 'ack',
    acks: [
      { id: 8, offset: 2, count: 1, duplicate: true },
      { id: 9, offset: 4, count: 1, duplicate: true },
    ],
  },
];

/** Per message: the offset its ack named, or the code of its nack. */
type Answer = { id: number; offset: number } | { id: number; code: string };
function perMessage(frames: unknown[]): Answer[] {
  return (frames as Array<{ type: string; acks?: Array<{ id: number; offset: number; count: number }>; id?: number; code?: string }>).flatMap((f): Answer[] =>
    f.type === 'ack'
      ? (f.acks ?? []).flatMap((a) => Array.from({ length: a.count }, (_, i) => ({ id: a.id + i, offset: a.offset + i })))
      : [{ id: f.id as number, code: f.code as string }],
  );
}

async function stored(broker: Broker): Promise<string[]> {
  const read = await broker.engine.read('mixed', 0, 0, 100, 1 << 20);
  return read.map((m) => new TextDecoder().decode(m.data));
}

describe('a flush mixing producers on one partition', () => {
  it('is answered per producer by the in-memory engine', async () => {
    const broker = await fixture.broker();
    expect(await answers(broker)).toEqual(EXPECTED);
    expect(await stored(broker)).toEqual(['0:0', '0:1', '1:0', '0:2', '1:1']);
  });

  it('is answered the same by a replicated cluster on disk, and every replica stores the same log', async () => {
    const ids = ['mix1', 'mix2', 'mix3'];
    const peerPorts = await freePorts(3);
    const dirs = await Promise.all(ids.map(() => tempDir()));
    const brokers = await Promise.all(
      ids.map((id, i) =>
        fixture.broker({
          id,
          peerPort: peerPorts[i] as number,
          peers: ids.flatMap((other, j) => (j === i ? [] : [`${other}@127.0.0.1:${peerPorts[j]}`])),
          dataDir: dirs[i] as string,
        }),
      ),
    );
    await fixture.client(brokers.map((b) => b.url)).then((client) => client.publish('warm', 0)); // a metadata leader
    // The partition created and led before the raw flush: its answers are the subject here, and a loaded full run
    // once spent the broker's whole publish timeout on topic creation and an election on disk (every answer TIMEOUT).
    await (brokers[0] as Broker).engine.ensureTopic('mixed');
    await waitFor(() => brokers.every((b) => b.engine.leaderOf?.('mixed', 0) !== undefined), 'a leader of mixed/0 known to every broker', 20_000);
    // Offsets and refusals as the in-memory engine answers them. (`duplicate` is not compared: a publish routed
    // with a hedged second copy reports a duplicate as stored at the same offset, see routed-publish.ts.)
    expect(perMessage(await answers(brokers[0] as Broker))).toEqual(perMessage(EXPECTED));
    await waitFor(() => brokers.every((b) => b.engine.bounds('mixed', 0).end === 5), 'every replica to apply the five messages', 10_000);
    for (const broker of brokers) expect(await stored(broker)).toEqual(['0:0', '0:1', '1:0', '0:2', '1:1']);
  }, 60_000);
});
