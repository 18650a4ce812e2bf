import { describe, expect, it } from 'vitest';
import type { Client } from 'rabbitmq-stream-js-client';
import type { BackboneConnection } from './connection.js';
import { MetaLog } from './meta-log.js';

type Deliver = (message: { offset: bigint; content: Buffer; applicationProperties?: Record<string, unknown> }) => void;

/**
 * A metadata stream in memory whose first `silentConsumers` consumers never
 * deliver: what a consumer declared on a stream RabbitMQ has just created
 * can do while the stream's members still elect a leader.
 */
function fakeBackbone(silentConsumers: number) {
  const records: Buffer[] = [];
  const consumers: { silent: boolean; deliver: Deliver; from: bigint }[] = [];
  let declared = 0;
  const client = {
    createStream: async () => true,
    queryOffset: async () => {
      throw new Error('query offset failed (code 19)');
    },
    declareConsumer: async (params: { offset: { value?: bigint } }, deliver: Deliver) => {
      const consumer = { silent: declared++ < silentConsumers, deliver, from: params.offset.value ?? 0n };
      consumers.push(consumer);
      return { extendedId: `c${declared}` };
    },
    declarePublisher: async () => ({
      closed: false,
      flush: async () => true,
      send: async (content: Buffer) => {
        records.push(content);
        const offset = BigInt(records.length - 1);
        for (const c of consumers) if (!c.silent && offset >= c.from) queueMicrotask(() => c.deliver({ offset, content }));
        return { sent: true, publishingId: offset };
      },
    }),
  } as unknown as Client;
  const connection = {
    on: () => connection,
    ready: async () => client,
    retrying: async <T>(_ms: number, step: (c: Client) => Promise<T>) => step(client),
    closeConsumer: async () => undefined,
    closePublisher: async () => undefined,
  } as unknown as BackboneConnection;
  return { connection, consumers: () => consumers.length };
}

function metaLog(connection: BackboneConnection, warnings: string[]): MetaLog {
  return new MetaLog(connection, {
    stream: 'test:__meta',
    replicationFactor: 3,
    requestTimeoutMs: 150,
    incarnation: 'g1',
    snapshotEveryEntries: 1_000,
    maxBytes: 1 << 20,
    isCoordinator: () => true,
    log: (level, message) => {
      if (level === 'warn') warnings.push(message);
    },
  });
}

describe('MetaLog start', () => {
  it('declares its consumer and publisher again when the start barrier is not read back, and starts', async () => {
    const backbone = fakeBackbone(1);
    const warnings: string[] = [];
    const log = metaLog(backbone.connection, warnings);
    await log.start();
    expect(backbone.consumers()).toBe(2);
    expect(warnings).toEqual([expect.stringContaining('start barrier')]);
    expect(log.stats().applied).toBeGreaterThanOrEqual(1);
    await log.close();
  });

  it('gives up with TIMEOUT after a bounded number of barriers', async () => {
    const backbone = fakeBackbone(Number.POSITIVE_INFINITY);
    const warnings: string[] = [];
    const log = metaLog(backbone.connection, warnings);
    await expect(log.start()).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(backbone.consumers()).toBe(3);
    expect(warnings).toHaveLength(2);
    await log.close();
  });
});
