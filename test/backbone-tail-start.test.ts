import { afterEach, describe, expect, it } from 'vitest';
import type { BackboneOptions, Broker } from '@relaymq/broker';
import type { AppendOutcome, ProducerBatch } from '../packages/broker/src/core/partition/partition.js';
import type { BackboneEngine } from '../packages/broker/src/engine/backbone/engine.js';
import { Fixture } from './support/cluster.js';
import { backboneBrokerOptions, rabbitClusterForFile, reportRabbitOnFailure } from './support/engines.js';

/**
 * A gateway starting over a long partition stream tails only its newest
 * messages (`backbone.tailStartMessages`), so it serves its first publish
 * after a bounded read, whatever the stream's length; a republish of a seq
 * stored long before the tail's start is still answered `duplicate` with
 * its original offset, found by looking back (`republishLookbackMessages`),
 * and `too-old` only beyond that bound.
 */
const rabbitmq = rabbitClusterForFile('the backbone tail start test', 1);
const fixture = new Fixture();
afterEach(() => fixture.cleanup(), 60_000);

const TOPIC = 'history.long';
const EARLY = 100;
const BULK = 50_000;
const TAIL_START = 2_000;

function batch(producerId: string, firstSeq: number, count: number): ProducerBatch {
  return { producerId, firstSeq, messages: Array.from({ length: count }, (_, i) => ({ data: new TextEncoder().encode(`${producerId}-${firstSeq + i}`) })) };
}

async function gateway(prefix: string, id: string, extra: Partial<BackboneOptions> = {}): Promise<{ broker: Broker; engine: BackboneEngine }> {
  const { backbone } = backboneBrokerOptions(rabbitmq.cluster(), prefix);
  const broker = await fixture.broker({ id, backbone: { ...(backbone as BackboneOptions), tailStartMessages: TAIL_START, ...extra } });
  return { broker, engine: broker.engine as BackboneEngine };
}

describe.runIf(rabbitmq.available)('backbone tail start (1 RabbitMQ node)', () => {
  reportRabbitOnFailure(rabbitmq.cluster);

  it('a gateway over a 50k-message stream serves its first publish after a bounded read, and answers old republishes duplicate with their offsets', async () => {
    const prefix = `tail-${process.pid}`;
    const first = await gateway(prefix, 'g1');
    await first.engine.createTopic(TOPIC, { partitions: 1 });
    // `early` first (offsets 0..99), then 50k small messages of `bulk` after it.
    const early = await first.engine.append(TOPIC, 0, batch('early', 0, EARLY), 'leader');
    expect(early.map((o) => (o.kind === 'stored' ? o.offset : -1))).toEqual(Array.from({ length: EARLY }, (_, i) => i));
    for (let seq = 0; seq < BULK; seq += 1_000) {
      const outcomes = await first.engine.append(TOPIC, 0, batch('bulk', seq, 1_000), 'leader');
      expect(outcomes.every((o) => o.kind === 'stored')).toBe(true);
    }
    const end = EARLY + BULK;
    expect(first.engine.bounds(TOPIC, 0)).toEqual({ start: 0, end });
    await first.broker.close();

    const second = await gateway(prefix, 'g2');
    const fresh = await second.engine.append(TOPIC, 0, batch('fresh', 0, 1), 'leader');
    expect(fresh).toEqual([{ kind: 'stored', offset: end }]);
    const read = second.engine.partitionStats(TOPIC, 0);
    // The tail read its start window and the last chunk, not the 50k before (the old tail read all 50,101).
    expect(read?.tailRead).toBeGreaterThanOrEqual(TAIL_START);
    expect(read?.tailRead).toBeLessThan(TAIL_START + 10_000);
    expect(read?.lookbackRead).toBe(0);
    // The bounds still start at the stream's first message, and offsets below the tail are read from RabbitMQ.
    expect(await second.engine.currentBounds(TOPIC, 0)).toEqual({ start: 0, end: end + 1 });
    const old = await second.engine.read(TOPIC, 0, 10, 1, 1 << 20);
    expect(old.map((m) => [m.offset, new TextDecoder().decode(m.data)])).toEqual([[10, 'early-10']]);

    // A republish inside the tail is answered from memory; one of `early`, 50k offsets before the tail, by looking back.
    const recent = await second.engine.append(TOPIC, 0, batch('bulk', BULK - 1, 1), 'leader');
    expect(recent).toEqual([{ kind: 'duplicate', offset: end - 1 }]);
    expect(second.engine.partitionStats(TOPIC, 0)?.lookbackRead).toBe(0);
    const republished = await second.engine.append(TOPIC, 0, batch('early', 5, 3), 'leader');
    expect(republished).toEqual<AppendOutcome[]>([5, 6, 7].map((offset) => ({ kind: 'duplicate', offset })));
    const looked = second.engine.partitionStats(TOPIC, 0)?.lookbackRead ?? 0;
    // It read back from where the tail started (~48,000) to `early`.
    expect(looked).toBeGreaterThan(BULK / 2);
    // The producer continues where the backbone says it stopped: its next seq is stored after everything.
    expect(await second.engine.append(TOPIC, 0, batch('early', EARLY, 1), 'leader')).toEqual([{ kind: 'stored', offset: end + 1 }]);

    // Beyond the look-back bound: too old (the SDK fails that publish with SEQUENCE_TOO_OLD), never a wrong offset.
    const third = await gateway(prefix, 'g3', { republishLookbackMessages: 5_000 });
    const tooOld = await third.engine.append(TOPIC, 0, batch('early', 5, 1), 'leader');
    expect(tooOld).toEqual([{ kind: 'too-old', expectedSeq: EARLY + 1 }]);
    expect(third.engine.partitionStats(TOPIC, 0)?.lookbackRead).toBeLessThan(5_000 + 10_000);
  }, 180_000);
});
