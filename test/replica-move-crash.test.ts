/**
 * A move's new replica killed (SIGKILL) in the middle of its segment copy,
 * then started again on the same data directory: the copy starts over from
 * its last checkpoint (none: a new replica), the move finishes, and the new
 * replica holds exactly what the others hold, offset for offset. The copy
 * writes each page to its segment files while the next is fetched (and
 * fsyncs every 64 MiB or second), so a crash leaves pages on disk that no
 * checkpoint vouches for: they must be cut, never served or appended after.
 * The restarted broker is a learner of the metadata group, which cannot
 * campaign: it learns its leader only because the leader, quiesced while
 * nothing changed, wakes when the link to it comes up again.
 *
 * A segment copy happens only when the partition's log was compacted before
 * the new replica is added: until then the leader sends it the Raft entries,
 * which are not throttled, and the whole move is over in a second or two.
 * So the move starts once every replica has recorded a snapshot (each
 * partition row's `firstIndex` above 1). Started within a partition's first
 * two seconds (before its first snapshot: a quick setup on a quiet machine),
 * the move was done before any poll saw it copying: how 2 of 13 runs on the
 * unified layout timed out (62.5 s in all, so a setup of about 2 s).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { get, getJson, postAdmin } from './support/admin.js';
import { BrokerProcess } from './support/broker-process.js';
import { Fixture } from './support/cluster.js';
import { freePorts } from './support/ports.js';
import { ProcessCluster } from './support/process-cluster.js';
import { tempDirs } from './support/temp-dirs.js';
import { waitForAsync } from './support/wait.js';

const fixture = new Fixture();
const tempDir = tempDirs('relaymq-move-crash-');
afterEach(async () => {
  await fixture.cleanup();
  await BrokerProcess.stopAll();
});

const TOKEN = 'move-crash-token-0123456789abcdef';
const TOPIC = 'copied';
const MESSAGES = 240;
const MESSAGE_BYTES = 32 * 1024;

interface Moves {
  metadataLeader: string | null;
  moves: Array<{ topic: string; from: string; to: string; phase: string; copiedBytes?: number | null }>;
}
interface ReplicaPage {
  messages: Array<{ offset: number; data: string }>;
}

describe.each(['unified', 'split'] as const)('a move whose new replica crashes mid-copy (processes, storage layout %s)', (layout) => {
  it('the restarted replica copies again and ends holding exactly what the others hold', { timeout: 180_000 }, async () => {
    const dirs = new Map<string, string>();
    for (const id of ['c1', 'c2', 'c3', 'c4']) dirs.set(id, await tempDir());
    const common = (id: string): string[] => ['--storage-layout', layout, '--data', dirs.get(id) as string, '--partitions', '1', '--replication-factor', '3', '--admin-token', TOKEN, '--auto-rebalance', 'false', '--max-payload', String(2 * MESSAGE_BYTES)];
    const cluster = await ProcessCluster.start(['c1', 'c2', 'c3'], common, 30_000);
    const seed = cluster.get('c1');
    const client = await fixture.client([seed.url]);
    for (let i = 0; i < MESSAGES; i += 16) {
      await Promise.all(Array.from({ length: 16 }, (_, j) => client.publish(TOPIC, new Uint8Array(MESSAGE_BYTES).fill((i + j) % 251), { ack: 'quorum' })));
    }
    // Every replica (whichever leads when c4 is added) has compacted its log: c4 gets a snapshot and copies segments.
    await waitForAsync(
      async () => {
        const rows = await Promise.all(['c1', 'c2', 'c3'].map((id) => cluster.partitions(id)));
        return rows.every((r) => (r.find((p) => p.topic === TOPIC)?.firstIndex ?? 0) > 1);
      },
      'every replica to record a snapshot of the partition',
      30_000,
    );

    // c4 joins with a slow copy (1 MB/s: about 8 s for the partition), so it can be killed in the middle of it.
    const [peerPort] = await freePorts(1);
    const c4Args = ['--peer-port', String(peerPort), '--join', `127.0.0.1:${cluster.peerPortOf('c1')}`, '--admin-port', '0', '--move-bytes-per-second', '1000000', ...common('c4')];
    let c4 = await BrokerProcess.start('c4', c4Args, 30_000);
    await waitForAsync(async () => (await get(`${c4.adminUrl as string}/readyz`, 2000).catch(() => ({ status: 0 }))).status === 200, 'c4 to be admitted', 30_000);
    const topic = await getJson<{ partitions: Array<{ replicas: string[]; leader: string | null }> }>(`${seed.adminUrl as string}/api/topics?topic=${TOPIC}`);
    const partition = topic.partitions[0] as { replicas: string[]; leader: string | null };
    const metadataLeader = (await getJson<Moves>(`${seed.adminUrl as string}/api/cluster/moves`)).metadataLeader;
    const driver = cluster.get(metadataLeader as string);
    // The metadata leader drives the move and knows how far the copy got (the others say "pending"): asked wherever
    // the leadership is now, as an election under load may move it.
    const moves = async (): Promise<Moves> => {
      const seen = await getJson<Moves>(`${driver.adminUrl as string}/api/cluster/moves`);
      const leader = seen.metadataLeader === null ? undefined : cluster.brokers.get(seen.metadataLeader);
      return leader === undefined || leader === driver ? seen : getJson<Moves>(`${leader.adminUrl as string}/api/cluster/moves`);
    };
    const from = partition.replicas.find((r) => r !== partition.leader && r !== metadataLeader) as string;
    expect(from).toBeDefined();
    // Publishing goes on during the move (one small message at a time, ack quorum), as it would on a live cluster.
    let published = MESSAGES;
    let stop = false;
    const publishing = (async () => {
      for (; !stop; published++) await client.publish(TOPIC, new Uint8Array(16).fill(published % 251), { ack: 'quorum' });
    })();
    // Awaited below; a failed wait in between leaves it to end with the client (no unhandled rejection then).
    publishing.catch(() => undefined);
    const removal = await postAdmin(driver.adminUrl as string, '/api/cluster/remove', { broker: from }, TOKEN);
    expect(removal.status, JSON.stringify(removal.body)).toBe(200);

    // Mid-copy: some bytes copied, the replica not promoted yet.
    let lastMoves: Moves | undefined;
    await waitForAsync(
      async () => {
        lastMoves = await moves();
        const move = lastMoves.moves.find((m) => m.to === 'c4');
        return move?.phase === 'catching-up' && (move.copiedBytes ?? 0) >= 2_000_000;
      },
      () => `c4 to be copying the partition (last seen: ${JSON.stringify(lastMoves)})`,
      60_000,
    ).catch((err: unknown) => {
      for (const b of [...cluster.brokers.values(), c4]) console.error(`${b.id} stderr:`, b.stderr.slice(-4000));
      throw err;
    });
    await c4.signal('SIGKILL');
    c4 = await BrokerProcess.start('c4', c4Args, 30_000);
    // A quiesced metadata leader heartbeats nobody: the restarted learner must still hear from it, at once.
    await waitForAsync(
      async () => {
        const leader = (await moves()).metadataLeader;
        return leader !== null && (await getJson<{ metadataLeader: string | null }>(`${c4.adminUrl as string}/api/broker`)).metadataLeader === leader;
      },
      'the restarted c4 to know the metadata leader',
      10_000,
    );

    // The move finishes: the drained broker leaves the metadata group.
    await waitForAsync(
      async () => {
        const view = await getJson<{ members: Array<{ id: string; role: string }> }>(`${driver.adminUrl as string}/api/membership`);
        return view.members.find((m) => m.id === from)?.role === 'none';
      },
      `the move off ${from} to finish`,
      60_000,
    ).catch(async (err) => {
      console.error('DIAG moves', JSON.stringify(await moves()));
      console.error('DIAG c4 stderr', c4.stderr.slice(-3000));
      throw err;
    });

    stop = true;
    await publishing;
    const readReplica = async (adminUrl: string): Promise<string[]> => {
      const values: string[] = [];
      for (let offset = 0; ; ) {
        const response = await fetch(`${adminUrl}/api/replica?topic=${TOPIC}&partition=0&from=${offset}&max=100`, { headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(10_000) });
        expect(response.status).toBe(200);
        const page = (await response.json()) as ReplicaPage;
        if (page.messages.length === 0) return values;
        for (const m of page.messages) values.push(`${m.offset}:${m.data.length}:${m.data.slice(0, 64)}`);
        offset = (page.messages.at(-1) as { offset: number }).offset + 1;
      }
    };
    const holders = [...['c1', 'c2', 'c3'].filter((id) => id !== from).map((id) => cluster.get(id)), c4];
    let copies: string[][] = [];
    await waitForAsync(
      async () => {
        copies = await Promise.all(holders.map((b) => readReplica(b.adminUrl as string)));
        return copies.every((c) => c.length === published);
      },
      'every replica to hold every message',
      30_000,
    );
    for (const copy of copies) expect(copy).toEqual(copies[0]);
    expect((copies[0] as string[]).map((v) => Number(v.split(':')[0]))).toEqual(Array.from({ length: published }, (_, i) => i));
  });
});
