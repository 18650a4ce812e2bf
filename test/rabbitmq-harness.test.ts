import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, Offset, type Client, type Publisher } from 'rabbitmq-stream-js-client';
import { applyClientCompat } from './support/rabbitmq-client-compat.js';
import { reportRabbitOnFailure } from './support/engines.js';
import { processAlive, rabbitAvailable, startRabbitCluster, type RabbitCluster, type RabbitNode } from './support/rabbitmq.js';
import { waitFor, waitForAsync, within } from './support/wait.js';

/**
 * The RabbitMQ test harness (test/support/rabbitmq.ts) itself: a 3-node
 * streams cluster on loopback, a replicated stream, deduplicated publishing,
 * a node SIGKILLed and restarted, and nothing left running after stop().
 */

applyClientCompat();
const availability = rabbitAvailable();
if (!availability.ok) console.warn(`rabbitmq-harness: skipped, ${availability.reason}`);

const STREAM = 'harness-replicated';
const REF = 'harness-publisher';

describe.skipIf(!availability.ok)('RabbitMQ test harness', () => {
  let cluster: RabbitCluster;
  const clients: Client[] = [];

  beforeAll(async () => {
    cluster = await startRabbitCluster({ nodes: 3 });
    console.log(`rabbitmq-harness: 3-node cluster started in ${cluster.startupMs} ms`);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close().catch(() => undefined)));
    await cluster?.stop();
  }, 30_000);
  // The tests share one stream and a node restarted in the third: report, do not require running nodes.
  reportRabbitOnFailure(() => cluster, { requireRunning: false });

  async function clientOn(node: RabbitNode): Promise<Client> {
    const client = await within(
      connect({ hostname: '127.0.0.1', port: node.streamPort, username: cluster.username, password: cluster.password, vhost: '/' }),
      `a stream connection to ${node.name}`,
      15_000,
    );
    clients.push(client);
    return client;
  }

  /** Publishes `ids` (explicit publishing ids) and resolves once each is confirmed. */
  async function publishConfirmed(publisher: Publisher, ids: bigint[]): Promise<void> {
    const confirmed = new Set<bigint>();
    const errors: number[] = [];
    publisher.on('publish_confirm', (error, publishingIds) => {
      if (error !== null) errors.push(error);
      else for (const id of publishingIds) confirmed.add(id);
    });
    for (const id of ids) await publisher.send(Buffer.from(`m${id}`), { publishingId: id });
    await publisher.flush();
    await waitFor(() => errors.length > 0 || ids.every((id) => confirmed.has(id)), `confirms of ${ids.length} messages`, 20_000);
    expect(errors).toEqual([]);
  }

  /** Reads the stream from its first offset until `count` messages arrived, returning their bodies. */
  async function readAll(client: Client, count: number): Promise<string[]> {
    const bodies: string[] = [];
    const consumer = await client.declareConsumer({ stream: STREAM, offset: Offset.first() }, (message) => {
      bodies.push(message.content.toString());
    });
    await waitFor(() => bodies.length >= count, `${count} messages read back`, 20_000);
    await consumer.close();
    return bodies;
  }

  /** Waits until `client`'s metadata names a stream leader on another port than `notPort`. */
  async function leaderElsewhere(client: Client, notPort: number): Promise<void> {
    let last: unknown;
    await waitForAsync(
      async () => {
        const [metadata] = (last = await client.queryMetadata({ streams: [STREAM] }));
        const port = metadata?.leader?.port;
        return port !== undefined && port !== 0 && port !== notPort;
      },
      `a stream leader on another port than ${notPort}`,
      30_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}; last metadata ${JSON.stringify(last)}`);
    });
  }

  const range = (from: number, to: number): bigint[] => Array.from({ length: to - from + 1 }, (_, i) => BigInt(from + i));

  it('forms a 3-node cluster whose stream has its leader and replicas on all three nodes', async () => {
    expect(await cluster.runningNodes(2)).toEqual(cluster.nodes.map((node) => node.name).sort());
    const client = await clientOn(cluster.nodes[0] as RabbitNode);
    await client.createStream({ stream: STREAM, arguments: { 'initial-cluster-size': 3, 'max-length-bytes': 10_000_000, 'max-age': '1h' } });
    // The replicas start a moment after the leader: wait until the metadata lists all three members.
    await waitForAsync(
      async () => {
        const [metadata] = await client.queryMetadata({ streams: [STREAM] });
        return (metadata?.replicas?.length ?? 0) === 2;
      },
      'two replicas in the stream metadata',
      30_000,
    );
    const [metadata] = await client.queryMetadata({ streams: [STREAM] });
    const members = [metadata?.leader, ...(metadata?.replicas ?? [])].map((broker) => `${broker?.host}:${broker?.port}`).sort();
    expect(members).toEqual(cluster.nodes.map((node) => `127.0.0.1:${node.streamPort}`).sort());
  });

  it('deduplicates a republish by publisher reference and publishing id', async () => {
    const client = await clientOn(cluster.nodes[1] as RabbitNode);
    const publisher = await client.declarePublisher({ stream: STREAM, publisherRef: REF });
    await publishConfirmed(publisher, range(1, 10));
    await publishConfirmed(publisher, range(6, 12)); // 6..10 again: only 11 and 12 are new
    expect(await publisher.getLastPublishingId()).toBe(12n);
    expect(await readAll(client, 12)).toEqual(range(1, 12).map((id) => `m${id}`));
    await publisher.close();
  });

  it('keeps publishing and reading through the other nodes when the leader is SIGKILLed, and the node rejoins on restart', async () => {
    const locator = await clientOn(cluster.nodes[0] as RabbitNode);
    const [before] = await locator.queryMetadata({ streams: [STREAM] });
    const leader = cluster.nodes.find((node) => node.streamPort === before?.leader?.port) as RabbitNode;
    const leaderPid = leader.pid as number;
    await leader.kill('SIGKILL');
    expect(processAlive(leaderPid)).toBe(false);

    const survivor = cluster.nodes.find((node) => node.running) as RabbitNode;
    const client = await clientOn(survivor);
    await leaderElsewhere(client, leader.streamPort); // a new leader is elected among the two survivors
    const publisher = await client.declarePublisher({ stream: STREAM, publisherRef: REF });
    expect(await publisher.getLastPublishingId()).toBe(12n); // the dedup state survived the leader
    await publishConfirmed(publisher, range(10, 20)); // 10..12 are duplicates
    expect(await readAll(client, 20)).toEqual(range(1, 20).map((id) => `m${id}`));
    await publisher.close();

    await leader.start(60_000);
    expect(leader.pid).not.toBe(leaderPid);
    expect(await cluster.runningNodes(0)).toEqual(cluster.nodes.map((node) => node.name).sort());
    // The restarted node's member is a replica of the stream again (as the survivors see it: on RabbitMQ
    // 3.10 the restarted node itself may answer "stream not available" to metadata for a while).
    await waitForAsync(
      async () => {
        const [metadata] = await client.queryMetadata({ streams: [STREAM] });
        return (metadata?.replicas ?? []).some((replica) => replica.port === leader.streamPort);
      },
      `${leader.name} listed as a replica again`,
      30_000,
    );
  }, 120_000);

  it('retries a node start that failed for a transient reason: its stream port taken while it was down', async () => {
    const node = cluster.nodes[2] as RabbitNode;
    await node.kill('SIGKILL');
    // Something else listens on the node's stream port: its first start fails (eaddrinuse); the port is freed after that failure.
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(node.streamPort, '127.0.0.1', resolve));
    const restarted = node.start(90_000);
    try {
      await waitFor(() => node.lastExit?.code !== null && node.lastExit?.afterStartupMs === undefined, `${node.name}'s first start to fail`, 60_000);
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
    expect(node.lastExit?.code).not.toBe(0);
    await restarted;
    expect(node.running).toBe(true);
    expect(await cluster.runningNodes(0)).toEqual(cluster.nodes.map((n) => n.name).sort());
  }, 120_000);

  it('stop() leaves no process behind', async () => {
    await Promise.all(clients.splice(0).map((client) => client.close().catch(() => undefined)));
    const pids = cluster.pids();
    expect(pids.length).toBeGreaterThanOrEqual(4); // three VMs and epmd, at least
    await cluster.stop();
    await waitFor(() => pids.every((pid) => !processAlive(pid)), `pids ${pids.join(', ')} to exit`, 10_000);
  });
});
