import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AlertNotification, Broker, ClusterReport } from '@relaymq/broker';
import { eventually, getJson } from './support/admin.js';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { waitFor } from './support/wait.js';
import { firing, webhookReceiver, type WebhookReceiver } from './support/webhook.js';

const fixture = new Fixture();
afterEach(() => fixture.cleanup());

const receiver = (failFirst = 0): Promise<WebhookReceiver> => webhookReceiver(fixture, failFirst);

describe('webhook alerts', () => {
  it('notifies every webhook when a broker goes down and its partitions are under-replicated, retrying a failing receiver', async () => {
    const steady = await receiver();
    const flaky = await receiver(2);
    const ids = ['a1', 'a2', 'a3'];
    const peerPorts = await freePorts(3);
    const peers = ids.map((id, i) => `${id}@127.0.0.1:${peerPorts[i]}`);
    const alerts = { webhooks: [steady.url, flaky.url], checkIntervalMs: 50, graceMs: 2500, retries: 4, retryDelayMs: 20 };
    const brokers = await Promise.all(
      ids.map((id, i) => fixture.broker({ id, peerPort: peerPorts[i], peers: peers.filter((_, j) => j !== i), alerts, adminPort: 0 })),
    );
    const [a1, , a3] = brokers as [Broker, Broker, Broker];
    const client = await fixture.client([a1.url], { poolSize: 1, discovery: false });
    await client.publish('ops.alerts', 'x');
    // Starting up (peers joining, first elections) stays within the grace time: a healthy cluster sends nothing.
    for (const b of brokers) await eventually(() => getJson<ClusterReport>(`${b.adminUrl}/api/cluster`), (r) => r.healthy, `${b.id} to be healthy`);
    expect(steady.received).toEqual([]);

    await a3.close();
    await waitFor(() => ['a1', 'a2'].every((b) => firing(steady, 'broker-down:a3').some((n) => n.reporter === b)), 'broker-down from a1 and a2');
    await waitFor(() => firing(steady, 'partition-under-replicated:p/ops.alerts/0').length === 1, 'the partition leader to report under-replication');
    const under = firing(steady, 'partition-under-replicated:p/ops.alerts/0')[0] as AlertNotification;
    expect(under.timeMs - under.sinceMs).toBeGreaterThanOrEqual(2500);
    expect(under.alert).toBe('partition-under-replicated');

    // The flaky receiver refused two attempts and still got every notification, once each.
    await waitFor(() => flaky.received.length === steady.received.length, 'the flaky receiver to catch up through retries');
    expect(flaky.attempts).toBe(flaky.received.length + 2);
    expect(flaky.received.map((n) => n.key).sort()).toEqual(steady.received.map((n) => n.key).sort());
  });

  it('fires disk-full when the data directory is past the threshold', async () => {
    const hook = await receiver();
    const dir = await mkdtemp(join(tmpdir(), 'relaymq-alerts-'));
    fixture.defer(() => rm(dir, { recursive: true, force: true }));
    await fixture.broker({ id: 'd1', dataDir: dir, alerts: { webhooks: [hook.url], checkIntervalMs: 50, diskFullPercent: 1 } });
    await waitFor(() => hook.received.length > 0, 'a disk-full alert');
    expect(hook.received[0]).toMatchObject({ status: 'firing', alert: 'disk-full', key: `disk-full:${dir}`, subject: dir, reporter: 'd1' });
    expect(hook.received[0]?.message).toMatch(/% full \(threshold 1%\)$/);
  });
});
