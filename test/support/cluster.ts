import { startBroker, type Broker, type BrokerOptions, type LogEngine, type StoredMessage } from '@relaymq/broker';
import { connect, type ClientOptions, type RelayClient } from '@relaymq/sdk';
import { freePorts } from './ports.js';

/** Tracks brokers and clients a test starts so that `cleanup()` stops all of them. */
export class Fixture {
  private readonly brokers: Broker[] = [];
  private readonly clients: RelayClient[] = [];
  private readonly closers: Array<() => Promise<void>> = [];

  async broker(options: BrokerOptions = {}): Promise<Broker> {
    const broker = await startBroker({ port: 0, drainTimeoutMs: 200, heartbeatMs: 1000, ...options });
    this.brokers.push(broker);
    return broker;
  }

  /**
   * `count` brokers that know each other as peers, named `<prefix>1..<prefix>count`
   * (default prefix `b`). `options` apply to every broker; set `replicationFactor`
   * below `count` to get a cluster where no broker hosts every partition.
   */
  async cluster(count: number, options: BrokerOptions & { prefix?: string } = {}): Promise<Broker[]> {
    const { prefix = 'b', ...brokerOptions } = options;
    const ids = Array.from({ length: count }, (_, i) => `${prefix}${i + 1}`);
    const peerPorts = await freePorts(count);
    const peers = ids.map((id, i) => `${id}@127.0.0.1:${peerPorts[i]}`);
    return Promise.all(ids.map((id, i) => this.broker({ ...brokerOptions, id, peerPort: peerPorts[i], peers: peers.filter((_, j) => j !== i) })));
  }

  async client(brokers: string[], options: Partial<ClientOptions> = {}): Promise<RelayClient> {
    const client = await connect({
      brokers,
      connectTimeoutMs: 5000,
      reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
      closeTimeoutMs: 1000,
      ...options,
    });
    this.clients.push(client);
    return client;
  }

  /** Registers any other resource to release at cleanup. */
  defer(close: () => Promise<void>): void {
    this.closers.push(close);
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.clients.splice(0).map((c) => c.close()));
    // Brokers before the other resources: a data directory removed under a running broker fails with ENOTEMPTY.
    await Promise.all(this.brokers.splice(0).map((b) => b.close()));
    await Promise.all(this.closers.splice(0).map((close) => close()));
  }
}

/** A partition as an in-memory engine holds it (its reads never need the disk). */
export function readInMemory(engine: LogEngine, topic: string, partition: number, from = 0): StoredMessage[] {
  const read = engine.read(topic, partition, from, 1_000_000, Number.MAX_SAFE_INTEGER);
  if (!Array.isArray(read)) throw new Error('readInMemory: this engine reads from disk; await engine.read instead');
  return read;
}
