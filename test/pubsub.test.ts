import { afterEach, describe, expect, it } from 'vitest';
import { startBroker, type Broker } from '@relaymq/broker';
import { connect, type Message, type RelayClient } from '@relaymq/sdk';
import { waitFor } from './support/wait.js';

const brokers: Broker[] = [];
const clients: RelayClient[] = [];

async function broker(options: Parameters<typeof startBroker>[0] = {}): Promise<Broker> {
  const b = await startBroker({ port: 0, drainTimeoutMs: 100, ...options });
  brokers.push(b);
  return b;
}

async function client(b: Broker, options: Partial<Parameters<typeof connect>[0]> = {}): Promise<RelayClient> {
  const c = await connect({ brokers: [b.url], connectTimeoutMs: 5000, ...options });
  clients.push(c);
  return c;
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(brokers.splice(0).map((b) => b.close()));
});

describe('publish and subscribe over real sockets', () => {
  it('acks a publish with partition and offset, and delivers it to a subscriber', async () => {
    const b = await broker();
    const c = await client(b);
    const received: Message[] = [];
    await c.subscribe('orders.created', (m) => void received.push(m));
    const receipt = await c.publish('orders.created', { id: 42 });
    expect(receipt).toEqual({ topic: 'orders.created', partition: 0, offset: 0, duplicate: false });
    await waitFor(() => received.length === 1, 'the message');
    expect(received[0]).toMatchObject({ topic: 'orders.created', partition: 0, offset: 0, data: { id: 42 } });
  });
});
