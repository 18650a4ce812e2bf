import type { Broker, BrokerOptions } from '@relaymq/broker';
import type { RelayClient } from '@relaymq/sdk';
import type { Fixture } from './cluster.js';
import type { EngineContext } from './engines.js';

/**
 * Helpers of the conformance suite (test/conformance*.test.ts): the same
 * brokers and publishing for every engine.
 */

/** Bound on waits: gateways read every confirmed message back from RabbitMQ, at a load of 10-25 on 2 cores. */
export const LONG = 30_000;

export const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

/**
 * `count` brokers of the engine under test, peers of each other: embedded
 * brokers form one Raft cluster (replication factor 3, so with 3 every
 * broker holds every partition), gateways gossip over the same RabbitMQ.
 */
export function engineBrokers(fixture: Fixture, context: () => EngineContext, count: number, options: BrokerOptions = {}): Promise<Broker[]> {
  return fixture.cluster(count, { replicationFactor: 3, ...options, ...context().brokerOptions, prefix: 'c' });
}

/** Publishes the numbers `from … from+count-1` to `topic` in order, 20 at a time. */
export async function publishNumbers(client: RelayClient, topic: string, count: number, from = 0): Promise<void> {
  for (let i = from; i < from + count; i += 20) {
    await Promise.all(Array.from({ length: Math.min(20, from + count - i) }, (_, j) => client.publish(topic, i + j)));
  }
}
