import { afterEach, describe, expect, it } from 'vitest';
import type { PublishReceipt } from '@relaymq/sdk';
import { BrokerProcess } from './support/broker-process.js';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { nextEvent, waitFor, within } from './support/wait.js';

const fixture = new Fixture();
afterEach(async () => {
  await fixture.cleanup();
  await BrokerProcess.stopAll();
});

describe('real broker processes', () => {
  it('kill -9 of the active broker: the client fails over to the standby and publishing continues', async () => {
    const a = await BrokerProcess.start('proc-a');
    const b = await BrokerProcess.start('proc-b');
    const client = await fixture.client([a.url, b.url], { poolSize: 2, pingIntervalMs: 200 });
    await waitFor(() => client.stats().connectedBrokers.length === 2, 'a warm standby');
    const victim = client.stats().activeBroker?.id === a.id ? a : b;
    const survivor = victim === a ? b : a;

    const failover = nextEvent(client, 'failover', 5000);
    const receipts: Array<Promise<PublishReceipt>> = [];
    for (let i = 0; i < 200; i++) receipts.push(client.publish('proc.kill', i));
    await victim.signal('SIGKILL');
    for (let i = 200; i < 400; i++) receipts.push(client.publish('proc.kill', i));
    const event = await failover;
    expect(event.from.id).toBe(victim.id);
    expect(event.to.id).toBe(survivor.id);
    // Every publish resolves; the ones the victim never acknowledged went to the survivor.
    const results = await within(Promise.all(receipts), 'every publish to resolve', 10_000);
    expect(results).toHaveLength(400);
    expect(results.every((r) => r.offset >= 0)).toBe(true);
  });

  it('SIGTERM drains: clients get goaway and move before the broker exits', async () => {
    const a = await BrokerProcess.start('drain-a', ['--drain-timeout-ms', '5000']);
    const b = await BrokerProcess.start('drain-b');
    const client = await fixture.client([a.url, b.url], { poolSize: 2 });
    await waitFor(() => client.stats().connectedBrokers.length === 2, 'a warm standby');
    const victim = client.stats().activeBroker?.id === a.id ? a : b;
    const failover = nextEvent(client, 'failover', 5000);
    const exit = victim.signal('SIGTERM');
    expect((await failover).reason.code).toBe('SHUTTING_DOWN');
    // The broker exits as soon as its clients left, well before the 5 s drain timeout.
    expect(await within(exit as Promise<number | null>, 'the drained broker to exit', 4000)).toBe(0);
  });

  it('SIGSTOP (a paused broker): heartbeats notice, the client fails over', async () => {
    const a = await BrokerProcess.start('stop-a');
    const b = await BrokerProcess.start('stop-b');
    const client = await fixture.client([a.url, b.url], { poolSize: 2, pingIntervalMs: 100 });
    await waitFor(() => client.stats().connectedBrokers.length === 2, 'a warm standby');
    const victim = client.stats().activeBroker?.id === a.id ? a : b;
    const failover = nextEvent(client, 'failover', 5000);
    await victim.signal('SIGSTOP');
    const event = await failover;
    expect(event.from.id).toBe(victim.id);
    await expect(client.publish('after.pause', 'x')).resolves.toMatchObject({ offset: 0 });
    await victim.signal('SIGCONT');
  });

  it('gossip: kill -9 of a broker is detected by the cluster, and clients forget it', async () => {
    const ids = ['g1', 'g2', 'g3'];
    const ports = await freePorts(3);
    const peers = ids.map((id, i) => `${id}@127.0.0.1:${ports[i]}`);
    const brokers = await Promise.all(
      ids.map((id, i) => BrokerProcess.start(id, ['--peer-port', String(ports[i]), '--peers', peers.filter((_, j) => j !== i).join(',')])),
    );
    const [g1, , g3] = brokers as [BrokerProcess, BrokerProcess, BrokerProcess];
    const client = await fixture.client([g1.url], { poolSize: 1 });
    await waitFor(() => client.stats().knownBrokers.length === 3, 'discovery of g2 and g3', 10_000);
    const forgotten = new Promise<void>((resolve) =>
      client.on('brokers', ({ removed }) => {
        if (removed.includes(g3.url)) resolve();
      }),
    );
    await g3.signal('SIGKILL');
    // Suspicion, then death, spread by gossip and pushed to the client in a cluster frame.
    await within(forgotten, 'the client to forget the killed broker', 20_000);
    expect(client.stats().knownBrokers).not.toContain(g3.url);
  });
});
