/**
 * `relaymq cluster move` against real broker processes over their admin
 * ports: one replica of a partition moved from a broker to one holding none,
 * under a producer publishing with ack `quorum`. `relaymq cluster moves`
 * shows the move in progress (or it is done already: a small partition moves
 * in well under a second), `relaymq topic describe` the new replica set;
 * the new replica holds every acknowledged message. The refusals come back
 * with their code and stable reason (exit 1), the missing admin token with
 * UNAUTHORIZED.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { decodePayload, partitionForKey } from '@relaymq/sdk/protocol';
import { BrokerProcess, CLI, runCli, type CliRun } from './support/broker-process.js';
import { Fixture } from './support/cluster.js';
import { ProcessCluster } from './support/process-cluster.js';
import { tempDirs } from './support/temp-dirs.js';
import { waitFor, waitForAsync, within } from './support/wait.js';

const fixture = new Fixture();
const tempDir = tempDirs('relaymq-cluster-move-');
afterEach(async () => {
  await fixture.cleanup();
  await BrokerProcess.stopAll();
});

const TOKEN = 'cluster-move-token-0123456789abcdef';

/** Runs the built CLI; resolves with exit code and output (never rejects on a non-zero exit). */
const relaymq = (args: string[], env: Record<string, string> = { RELAYMQ_ADMIN_TOKEN: TOKEN }): Promise<CliRun> => runCli(args, env, 40_000);

interface Described {
  partitions: Array<{ partition: number; leader: string | null; replicas: string[]; moving?: { from: string; to: string } }>;
}
interface Moves {
  moves: Array<{ topic: string; partition: number; from: string; to: string; phase: string }>;
}

describe('relaymq cluster move (processes)', () => {
  it('moves one replica to a broker holding none under quorum publishing; cluster moves and topic describe show it; refusals say why', { timeout: 180_000 }, async () => {
    const ids = ['c1', 'c2', 'c3', 'c4'];
    const dirs = new Map<string, string>();
    for (const id of ids) dirs.set(id, await tempDir());
    // No automatic rebalancing: the replicas stay where the operator puts them.
    const cluster = await ProcessCluster.start(ids, (id) => ['--data', dirs.get(id) as string, '--admin-token', TOKEN, '--auto-rebalance', 'false'], 30_000);
    const admin = ['--broker', cluster.get('c1').adminUrl as string];

    const created = await relaymq(['topic', 'create', 'orders', '--partitions', '2', '--replication-factor', '3', ...admin]);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    const describe = async (): Promise<Described> => {
      const out = await relaymq(['topic', 'describe', 'orders', '--json', ...admin]);
      expect(out.code, out.stderr).toBe(0);
      return JSON.parse(out.stdout) as Described;
    };
    const replicas = (await describe()).partitions[0]?.replicas as string[];
    expect(replicas).toHaveLength(3);
    const from = replicas[0] as string;
    const to = ids.find((id) => !replicas.includes(id)) as string;
    const other = replicas[1] as string;

    // A producer publishes to orders/0 (a key of it) with ack quorum throughout.
    const key = Array.from({ length: 100 }, (_, i) => `k${i}`).find((k) => partitionForKey(k, 2) === 0) as string;
    const client = await fixture.client([cluster.get('c1').url]);
    const acked: number[] = [];
    let stop = false;
    const producer = (async () => {
      for (let i = 0; !stop; i++) {
        await client.publish('orders', String(i), { key, ack: 'quorum' });
        acked.push(i);
      }
    })();
    producer.catch(() => {}); // awaited below
    await waitFor(() => acked.length >= 100, 'the producer to get going', 30_000);

    // Refused, each with its code and reason, nothing recorded: no token; unknown topic, partition, broker; a target
    // holding a replica; a source holding none.
    const noToken = await relaymq(['cluster', 'move', 'orders', '0', '--from', from, '--to', to, ...admin], {});
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toMatch(/^relaymq: cluster move: .*\(UNAUTHORIZED\)\n$/);
    const refusals: Array<[string[], RegExp]> = [
      [['nope', '0', '--from', from, '--to', to], /^relaymq: cluster move: no topic "nope" \(INVALID_TOPIC, unknown-topic\)\n$/],
      [['orders', '7', '--from', from, '--to', to], /topic orders has no partition 7 .*\(INVALID_PARTITION, unknown-partition\)\n$/],
      [['orders', '0', '--from', from, '--to', 'c9'], /broker c9 is not a member of the cluster .*\(INVALID_ARGUMENT, unknown-broker\)\n$/],
      [['orders', '0', '--from', from, '--to', other], new RegExp(`broker ${other} holds a replica of orders/0 already .*\\(INVALID_ARGUMENT, target-is-replica\\)\\n$`)],
      [['orders', '0', '--from', to, '--to', other], new RegExp(`broker ${to} holds no replica of orders/0 .*\\(INVALID_ARGUMENT, source-not-replica\\)\\n$`)],
    ];
    for (const [args, stderr] of refusals) {
      const out = await relaymq(['cluster', 'move', ...args, ...admin]);
      expect(out.code, out.stderr).toBe(1);
      expect(out.stderr).toMatch(stderr);
    }
    const json = await relaymq(['cluster', 'move', 'orders', '0', '--from', from, '--to', other, '--json', ...admin]);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ code: 'INVALID_ARGUMENT', reason: 'target-is-replica', status: 409 });
    expect((await describe()).partitions[0]?.replicas).toEqual(replicas);

    // The move, asked of another broker than the producer's.
    const moved = await relaymq(['cluster', 'move', 'orders', '0', '--from', from, '--to', to, '--broker', cluster.get('c2').adminUrl as string]);
    expect(moved.stderr).toBe('');
    expect(moved.code).toBe(0);
    expect(moved.stdout).toMatch(new RegExp(`^moving orders/0 from ${from} to ${to}: follow with relaymq cluster moves\\n`));
    // In progress, as the metadata leader's `cluster moves` lists it, or done already: the new replica set.
    const expected = replicas.map((id) => (id === from ? to : id));
    const movesOut = await relaymq(['cluster', 'moves', '--json', ...admin]);
    expect(movesOut.code).toBe(0);
    const listed = (JSON.parse(movesOut.stdout) as Moves).moves.find((m) => m.topic === 'orders' && m.partition === 0);
    if (listed !== undefined) expect(listed).toMatchObject({ from, to });
    else expect((await describe()).partitions[0]?.replicas).toEqual(expected);
    // Asked again while it runs, or once done: refused.
    const again = await relaymq(['cluster', 'move', 'orders', '0', '--from', from, '--to', to, ...admin]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/\((FORBIDDEN, moving-already|INVALID_ARGUMENT, source-not-replica)\)\n$/);

    await waitForAsync(async () => JSON.stringify((await describe()).partitions[0]?.replicas) === JSON.stringify(expected), 'the move to finish', 60_000);
    await waitForAsync(async () => (JSON.parse((await relaymq(['cluster', 'moves', '--json', ...admin])).stdout) as Moves).moves.length === 0, 'cluster moves to list no move', 30_000);
    expect((await describe()).partitions[1]?.replicas).toHaveLength(3); // the other partition untouched

    // Publishing goes on; the new replica holds every acknowledged message, once, in order.
    const sent = acked.length;
    await waitFor(() => acked.length >= sent + 100, 'the producer to carry on after the move', 30_000);
    stop = true;
    await within(producer, 'the producer to stop', 30_000);
    const target = cluster.get(to);
    const read = async (): Promise<string[]> => {
      const response = await fetch(`${target.adminUrl as string}/api/replica?topic=orders&partition=0&from=0&max=100000`, { headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(10_000) });
      expect(response.status).toBe(200);
      const page = (await response.json()) as { messages: Array<{ data: string }> };
      return page.messages.map((m) => decodePayload(Buffer.from(m.data, 'base64')) as string);
    };
    let stored: string[] = [];
    await waitForAsync(async () => (stored = await read()).length >= acked.length, `${to} to hold every acknowledged message`, 30_000);
    expect(stored).toEqual(acked.map(String));
  });
});
