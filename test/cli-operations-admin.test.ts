/**
 * `relaymq topic` and `relaymq cluster` against real broker processes, over
 * their admin ports, with the admin token: create, describe and alter a
 * topic (new partitions reach a live subscriber); cluster status; removal
 * refused below the replication factor; a joined broker removed, then added
 * back; a broker holding replicas decommissioned (its replicas moved off,
 * then out of the metadata group) while the subscriber reads on.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Message } from '@relaymq/sdk';
import { BrokerProcess, CLI, runCli, type CliRun } from './support/broker-process.js';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { ProcessCluster } from './support/process-cluster.js';
import { tempDirs } from './support/temp-dirs.js';
import { waitFor, waitForAsync, within } from './support/wait.js';

const fixture = new Fixture();
const tempDir = tempDirs('relaymq-cli-admin-');
afterEach(async () => {
  await fixture.cleanup();
  await BrokerProcess.stopAll();
});

const TOKEN = 'cli-admin-token-0123456789abcdef';

/** Runs the built CLI; resolves with exit code and output (never rejects on a non-zero exit). */
const relaymq = (args: string[], env: Record<string, string> = { RELAYMQ_ADMIN_TOKEN: TOKEN }): Promise<CliRun> => runCli(args, env, 40_000);

interface Membership {
  clusterId: string | null;
  members: Array<{ id: string; role: string; replicas: number }>;
}

describe('relaymq topic and cluster (processes)', () => {
  it('creates, describes and alters a topic; reports, refuses, removes and re-adds brokers', { timeout: 180_000 }, async () => {
    const dirs = new Map<string, string>();
    for (const id of ['a1', 'a2', 'a3', 'a4']) dirs.set(id, await tempDir());
    // No automatic rebalancing: a4, which joins below, must hold no replica until a1 drains onto it.
    const cluster = await ProcessCluster.start(['a1', 'a2', 'a3'], (id) => ['--data', dirs.get(id) as string, '--admin-token', TOKEN, '--auto-rebalance', 'false'], 30_000);
    const admin1 = ['--broker', cluster.get('a1').adminUrl as string];
    const admin2 = ['--broker', cluster.get('a2').adminUrl as string];

    // Without the token: refused by the broker, exit 1, nothing created.
    const denied = await relaymq(['topic', 'create', 'orders', ...admin1], {});
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/^relaymq: topic create: this admin endpoint needs the admin token: .* \(UNAUTHORIZED\)\n$/);
    const wrong = await relaymq(['topic', 'create', 'orders', ...admin1, '--admin-token', 'not-the-token-at-all']);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toBe('relaymq: topic create: the admin token is not valid (UNAUTHORIZED)\n');
    expect((await relaymq(['topic', 'describe', 'orders', ...admin1])).code).toBe(1);

    const created = await relaymq(['topic', 'create', 'orders', '--partitions', '3', '--replication-factor', '2', ...admin1]);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/^created topic orders: 3 partitions, replication factor 2\nPARTITION {2}LEADER +REPLICAS\n/);

    // Described by another broker, as JSON, once every partition has a leader.
    let described: { partitions: Array<{ partition: number; leader: string | null; replicas: string[] }>; replicationFactor: number } | undefined;
    await waitForAsync(
      async () => {
        const out = await relaymq(['topic', 'describe', 'orders', '--json', ...admin2]);
        described = out.code === 0 ? (JSON.parse(out.stdout) as typeof described) : undefined;
        // Leaders are as the answering broker knows them: of a partition it does not host, only once traffic told it.
        return described !== undefined;
      },
      'a2 to describe orders',
      30_000,
    );
    expect(described?.replicationFactor).toBe(2);
    expect(described?.partitions.map((p) => p.replicas.length)).toEqual([2, 2, 2]);

    // A live subscriber, and keyed messages before the change.
    const subscriber = await fixture.client([cluster.get('a3').url]);
    const received: string[] = [];
    const partitionsSeen = new Set<number>();
    await subscriber.subscribe(
      'orders',
      (m: Message<string>) => {
        received.push(m.data);
        partitionsSeen.add(m.partition);
      },
      { from: 'earliest' },
    );
    const before = await fixture.client([cluster.get('a1').url]);
    for (let i = 0; i < 30; i++) await within(before.publish('orders', `before-${i}`, { key: `k${i}`, ack: 'quorum' }), 'a publish before the change', 20_000);

    const lowered = await relaymq(['topic', 'alter', 'orders', '--partitions', '2', ...admin1]);
    expect(lowered.code).toBe(1);
    expect(lowered.stderr).toBe('relaymq: topic alter: topic orders has 3 partitions; the count can only be raised (asked for 2) (INVALID_ARGUMENT)\n');
    const altered = await relaymq(['topic', 'alter', 'orders', '--partitions', '5', ...admin2]);
    expect(altered.stderr).toBe('');
    expect(altered.code).toBe(0);
    expect(altered.stdout).toMatch(/^altered topic orders: 5 partitions, replication factor 2\n/);

    // A new producer sees five partitions; the subscriber gets every message, the new partitions' too.
    const after = await fixture.client([cluster.get('a2').url]);
    for (let i = 0; i < 30; i++) await within(after.publish('orders', `after-${i}`, { key: `k${i}`, ack: 'quorum' }), 'a publish after the change', 20_000);
    await waitFor(() => received.length === 60, 'the subscriber to get all 60 messages', 30_000);
    expect(new Set(received).size).toBe(60);
    // 30 keys over five partitions: the new ones (3, 4) got some, and the subscriber read them.
    expect([...partitionsSeen].some((p) => p >= 3)).toBe(true);
    const json = await relaymq(['topic', 'describe', 'orders', '--json', ...admin1]);
    const five = JSON.parse(json.stdout) as { partitions: Array<{ partition: number }> };
    expect(five.partitions.map((p) => p.partition)).toEqual([0, 1, 2, 3, 4]);

    // Cluster status: three voters, the cluster named.
    let membership: Membership | undefined;
    await waitForAsync(
      async () => {
        const out = await relaymq(['cluster', 'status', '--json', ...admin1]);
        membership = out.code === 0 ? (JSON.parse(out.stdout) as Membership) : undefined;
        return membership?.clusterId !== null && membership?.clusterId !== undefined;
      },
      'the cluster to be named',
      20_000,
    );
    expect(membership?.members.map((m) => [m.id, m.role])).toEqual([
      ['a1', 'voter'],
      ['a2', 'voter'],
      ['a3', 'voter'],
    ]);
    const human = await relaymq(['cluster', 'status', ...admin2]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(new RegExp(`^cluster ${membership?.clusterId} as seen by a2: 3 brokers, metadata leader a\\d, 3 of at most 3 metadata voters\\nBROKER +METADATA +STATE`));

    // Three brokers, replication factor 3 (the default): none may go.
    const tooFew = await relaymq(['cluster', 'remove', 'a3', ...admin1]);
    expect(tooFew.code).toBe(1);
    expect(tooFew.stderr).toBe('relaymq: cluster remove: removing broker a3 would leave 2 brokers, fewer than the replication factor (3): add a broker first (FORBIDDEN)\n');

    // A fourth broker joins; it holds no replica, so it may be removed, and added back.
    const [a4Port] = await freePorts(1);
    // a4 keeps running to the end: after a1's drain it holds replicas.
    await BrokerProcess.start('a4', ['--peer-port', String(a4Port), '--join', `127.0.0.1:${cluster.peerPortOf('a1')}`, '--admin-port', '0', '--data', dirs.get('a4') as string, '--admin-token', TOKEN, '--auto-rebalance', 'false'], 30_000);
    const roleOf = async (id: string, admin = admin1): Promise<string | undefined> => {
      const out = await relaymq(['cluster', 'status', '--json', ...admin]);
      return out.code === 0 ? (JSON.parse(out.stdout) as Membership).members.find((m) => m.id === id)?.role : undefined;
    };
    await waitForAsync(async () => (await roleOf('a4')) === 'learner', 'a4 to be admitted as a learner', 30_000);

    const removed = await relaymq(['cluster', 'remove', 'a4', ...admin2]);
    expect(removed.stderr).toBe('');
    expect(removed.code).toBe(0);
    expect(removed.stdout).toMatch(/^removed a4: stop it now\n/);
    // The removal is committed; a1 applies it a moment later.
    await waitForAsync(async () => (await roleOf('a4')) === 'none', 'a1 to see a4 out of the metadata group', 20_000);
    expect((await relaymq(['cluster', 'remove', 'a4', ...admin1])).stderr).toMatch(/^relaymq: cluster remove: broker a4 is not a member of the cluster/);

    const added = await relaymq(['cluster', 'add', 'a4', ...admin1]);
    expect(added.stderr).toBe('');
    expect(added.code).toBe(0);
    await waitForAsync(async () => (await roleOf('a4')) === 'learner', 'a4 to be a learner again', 30_000);

    // a1 holds replicas of orders: it drains (each replica moves to another broker), then leaves the metadata group.
    const drained = await relaymq(['cluster', 'remove', 'a1', ...admin2]);
    expect(drained.stderr).toBe('');
    expect(drained.code).toBe(0);
    expect(drained.stdout).toMatch(/^draining a1: \d+ replicas? to move off, then it leaves the metadata group/);
    const moving = await relaymq(['cluster', 'moves', '--json', ...admin2]);
    expect(moving.code).toBe(0);
    expect(JSON.parse(moving.stdout)).toMatchObject({ broker: 'a2', moves: expect.any(Array), draining: expect.any(Array) });
    await waitForAsync(async () => (await roleOf('a1', admin2)) === 'none', 'a1 to leave the metadata group once drained', 90_000);
    const emptied = JSON.parse((await relaymq(['topic', 'describe', 'orders', '--json', ...admin2])).stdout) as { partitions: Array<{ replicas: string[]; moving?: unknown }> };
    expect(emptied.partitions.map((p) => p.replicas.length)).toEqual([2, 2, 2, 2, 2]);
    expect(emptied.partitions.some((p) => p.replicas.includes('a1') || p.moving !== undefined)).toBe(false);
    const done = await relaymq(['cluster', 'moves', ...admin2]);
    expect(done.stdout).toMatch(/^0 replica moves in progress, no broker draining/);
    await cluster.get('a1').signal('SIGTERM');

    // The cluster kept serving throughout.
    await within(after.publish('orders', 'last', { key: 'k0', ack: 'quorum' }), 'a publish at the end', 20_000);
    await waitFor(() => received.includes('last'), 'the last message', 20_000);
    expect(new Set(received).size).toBe(received.length);
  });

  it('exits 2 on usage errors and prints help', { timeout: 60_000 }, async () => {
    const help = await relaymq(['topic', 'alter', '--help'], {});
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('usage: relaymq topic alter <topic> --partitions <n> [options]');
    expect(help.stdout).toContain('Key order');
    const top = await relaymq(['--help'], {});
    expect(top.stdout).toContain('cluster   brokers: status, add, remove, forget,   relaymq cluster --help\n            moves, rebalance, move\n');
    const usage = await relaymq(['topic', 'create', '--broker', 'http://127.0.0.1:1'], {});
    expect(usage.code).toBe(2);
    expect(usage.stderr).toBe('relaymq: topic create needs a topic name, e.g. relaymq topic create orders\n');
    const unreachable = await relaymq(['cluster', 'status', '--broker', 'http://127.0.0.1:1', '--timeout-ms', '2000'], {});
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/^relaymq: cluster status: cannot reach the admin port at http:\/\/127\.0\.0\.1:1/);
  });
});
