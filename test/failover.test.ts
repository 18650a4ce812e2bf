import { afterEach, describe, expect, it } from 'vitest';
import type { Message, PublishReceipt } from '@relaymq/sdk';
import { Fixture } from './support/cluster.js';
import { startProxy } from './support/proxy.js';
import { nextEvent, waitFor, within } from './support/wait.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

describe('failover without loss, duplication or reordering', () => {
  it('survives the socket dropping in the middle of 10,000 pipelined publishes', async () => {
    const broker = await fixture.broker();
    const proxy = await startProxy(broker.port);
    fixture.defer(() => proxy.close());
    const publisher = await fixture.client([proxy.url], { poolSize: 1 });

    const total = 10_000;
    const receipts: Array<Promise<PublishReceipt>> = [];
    for (let i = 0; i < total; i++) {
      receipts.push(publisher.publish('stream.numbers', { i }));
      if (i % 250 === 249) await new Promise((resolve) => setImmediate(resolve)); // let frames leave
      // Mid-stream: acks stop arriving (the broker stores but the answers are lost), then the socket dies.
      if (i === 4000) proxy.dropReplies();
      if (i === 6000) proxy.cut();
    }
    const results = await within(Promise.all(receipts), 'all 10,000 publishes to resolve', 20_000);
    const stats = publisher.stats();
    expect(stats.publish.republished).toBeGreaterThan(0);
    // Stored before the cut but never acknowledged: recognised on republish, not stored again.
    expect(stats.publish.duplicates).toBeGreaterThan(0);
    expect(results.some((r) => r.duplicate)).toBe(true);

    // Every publish resolved to its own offset, in publish order.
    expect(results.map((r) => r.offset)).toEqual(Array.from({ length: total }, (_, i) => i));
    // The log holds each message exactly once, in order.
    const log = broker.engine.read('stream.numbers', 0, 0, total + 10, Number.MAX_SAFE_INTEGER);
    expect(log).toHaveLength(total);

    const received: number[] = [];
    const subscriber = await fixture.client([broker.url]);
    await subscriber.subscribe('stream.numbers', (m: Message<{ i: number }>) => void received.push(m.data.i), { from: 'earliest' });
    await waitFor(() => received.length >= total, '10,000 messages at the subscriber', 15_000);
    expect(received).toEqual(Array.from({ length: total }, (_, i) => i));
  });

  it('resends a bounded window on each reconnect, the rest as acks free it: exactly once, in order', async () => {
    const broker = await fixture.broker();
    const proxy = await startProxy(broker.port);
    fixture.defer(() => proxy.close());
    // A stalled store: appends wait at a gate, so nothing is acknowledged until it opens; the broker counts what arrives.
    let received = 0;
    let openGate: () => void = () => {};
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    const append = broker.engine.append.bind(broker.engine);
    broker.engine.append = async (topic, partition, batch, ack) => {
      received += batch.messages.length;
      await gate;
      return append(topic, partition, batch, ack);
    };
    const window = 200;
    const publisher = await fixture.client([proxy.url], { poolSize: 1, outbox: { resendMessages: window } });

    const total = 3000;
    const receipts = Array.from({ length: total }, (_, i) => publisher.publish('bounded.resend', { i }));
    void Promise.allSettled(receipts); // a failed assertion below closes the client: its rejections are not the failure
    await waitFor(() => received === total, 'all 3,000 publishes at the broker');
    // Each reconnect resends the window (one frame) and no more: nothing is acknowledged to free it.
    for (let cut = 1; cut <= 3; cut++) {
      proxy.cut();
      await waitFor(() => received >= total + cut * window, `the resend after cut ${cut}`);
      expect(received).toBe(total + cut * window);
    }

    openGate();
    const results = await within(Promise.all(receipts), 'all 3,000 publishes to resolve', 20_000);
    // Every publish resolved to its own offset, in publish order; the last connection sent the rest window by window.
    expect(results.map((r) => r.offset)).toEqual(Array.from({ length: total }, (_, i) => i));
    expect(publisher.stats().publish.republished).toBe(3 * window + (total - window));
    const log = broker.engine.read('bounded.resend', 0, 0, total + 10, Number.MAX_SAFE_INTEGER);
    expect(log).toHaveLength(total);
  });

  it('resumes a subscription after its connection drops, without duplicates or gaps', async () => {
    const broker = await fixture.broker();
    const proxy = await startProxy(broker.port);
    fixture.defer(() => proxy.close());
    const subscriber = await fixture.client([proxy.url], { poolSize: 1, subscriptionCredit: 50 });
    const publisher = await fixture.client([broker.url]);

    const received: number[] = [];
    await subscriber.subscribe('resume.test', (m: Message<number>) => void received.push(m.data), { from: 'new' });
    const total = 2000;
    for (let i = 0; i < total; i++) {
      void publisher.publish('resume.test', i);
      if (i === 1000) {
        await waitFor(() => received.length > 100, 'some deliveries before the cut');
        proxy.cut();
      }
    }
    await waitFor(() => received.length >= total, `${total} messages`, 15_000);
    expect(received).toEqual(Array.from({ length: total }, (_, i) => i));
  });

  it('moves to another seed broker by itself when its broker stops', async () => {
    const first = await fixture.broker({ id: 'first' });
    const second = await fixture.broker({ id: 'second' });
    const client = await fixture.client([first.url, second.url], { poolSize: 2 });
    await waitFor(() => client.stats().connectedBrokers.length === 2, 'two pooled connections (warm standby)');

    const active = client.stats().activeBroker;
    const [stopping, remaining] = active?.id === 'first' ? [first, second] : [second, first];
    const failover = nextEvent(client, 'failover');
    await stopping.close();
    const event = await failover;
    expect(event.from.id).toBe(stopping.id);
    expect(event.to.id).toBe(remaining.id);
    expect(event.reason.code).toBe('SHUTTING_DOWN');

    const receipt = await client.publish('after.failover', 'hello');
    expect(receipt.offset).toBe(0);
    expect(remaining.engine.bounds('after.failover', 0).end).toBe(1);
    expect(client.stats().failovers).toBe(1);
  });

  it('detects a broker that stops answering (heartbeats) and fails over to the standby', async () => {
    const first = await fixture.broker({ id: 'first' });
    const second = await fixture.broker({ id: 'second' });
    const proxies = { first: await startProxy(first.port), second: await startProxy(second.port) };
    fixture.defer(() => proxies.first.close());
    fixture.defer(() => proxies.second.close());
    const client = await fixture.client([proxies.first.url, proxies.second.url], { poolSize: 2, pingIntervalMs: 100 });
    await waitFor(() => client.stats().connectedBrokers.length === 2, 'a warm standby');

    const active = client.stats().activeBroker?.id as 'first' | 'second';
    const failover = nextEvent(client, 'failover', 5000);
    proxies[active].dropReplies(); // the broker looks alive to TCP but says nothing
    const event = await failover;
    expect(event.from.id).toBe(active);
    expect(event.reason.code).toBe('CONNECTION_CLOSED');
    expect(event.reason.message).toMatch(/silent/);
    await expect(client.publish('after.silence', 1)).resolves.toMatchObject({ offset: 0 });
  });

  it('says so with a gap event when a restarted in-memory broker lost the log, and delivers what is new', async () => {
    const original = await fixture.broker({ id: 'memory' });
    const port = original.port;
    const proxy = await startProxy(port);
    fixture.defer(() => proxy.close());
    const subscriber = await fixture.client([proxy.url], { poolSize: 1 });
    const received: string[] = [];
    await subscriber.subscribe('lost.log', (m: Message<string>) => void received.push(m.data), { from: 'earliest' });
    const publisher = await fixture.client([original.url], { poolSize: 1 });
    for (let i = 0; i < 5; i++) await publisher.publish('lost.log', `old-${i}`);
    await waitFor(() => received.length === 5, 'the first five');
    await publisher.close();

    const gap = nextEvent(subscriber, 'gap', 5000);
    await original.close();
    const restarted = await fixture.broker({ id: 'memory', port });
    const again = await fixture.client([restarted.url], { poolSize: 1 });
    for (let i = 0; i < 3; i++) await again.publish('lost.log', `new-${i}`);

    expect(await gap).toEqual({ topic: 'lost.log', partition: 0, expectedOffset: 5, firstAvailableOffset: 0, reset: true });
    await waitFor(() => received.length === 8, 'the three new messages');
    expect(received.slice(5)).toEqual(['new-0', 'new-1', 'new-2']);
  });
});
