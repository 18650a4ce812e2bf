import { afterEach, describe, expect, it } from 'vitest';
import { freePorts } from '../../../../test/support/ports.js';
import { ForeignClusterError, PeerTransport, type PeerAddress } from './peer-transport.js';

/** Brokers of two clusters over real loopback sockets: their links never come up, in either direction. */

const started: PeerTransport[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((t) => t.close()));
});

async function until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

interface Broker {
  transport: PeerTransport;
  known: Map<string, string>;
  errors: string[];
  cluster: { id: string | undefined };
}

function broker(id: string, port: number, peers: PeerAddress[], clusterId: string | undefined): Broker {
  const known = new Map<string, string>();
  const errors: string[] = [];
  const cluster = { id: clusterId };
  const transport = new PeerTransport({
    id,
    host: '127.0.0.1',
    port,
    peers,
    maxFrameBytes: 1024 * 1024,
    maxQueuedBytes: 8 * 1024 * 1024,
    reconnect: { initialDelayMs: 10, maxDelayMs: 50 },
    identity: { incarnation: `${id}-1`, clusterId: () => cluster.id, known: (peer) => known.get(peer), remember: (peer, inc) => void known.set(peer, inc) },
    log: (level, message) => {
      if (level === 'error') errors.push(message);
    },
  });
  started.push(transport);
  return { transport, known, errors, cluster };
}

describe('peers of another cluster', () => {
  it('are refused in both directions, logged on both sides, and their incarnation is not recorded', async () => {
    const [pa, pb] = await freePorts(2);
    const peers = [
      { id: 'a', host: '127.0.0.1', port: pa as number },
      { id: 'b', host: '127.0.0.1', port: pb as number },
    ];
    const a = broker('a', pa as number, peers, 'cluster-1');
    const b = broker('b', pb as number, peers, 'cluster-2');
    const heardByB: string[] = [];
    b.transport.on('message', (_from, channel) => heardByB.push(channel));
    await Promise.all([a.transport.listen(), b.transport.listen()]);
    a.transport.send('b', 'raft/meta', { type: 'heartbeat' });
    // a dials b (the lower id); b introduces itself to a after 1 s: both are refused.
    await until(() => a.errors.includes('refusing a broker of another cluster') && b.errors.includes('refusing a broker of another cluster'), 'both sides to refuse', 10_000);
    expect(a.transport.connectedPeers()).toEqual([]);
    expect(heardByB).toEqual([]);
    expect(a.known.has('b')).toBe(false);
    expect(b.known.has('a')).toBe(false);

    // A probe (`--join`) learns why, as a ForeignClusterError naming both clusters.
    const probe = await b.transport.introduce('127.0.0.1', pa as number, 2000).catch((err: unknown) => err);
    expect(probe).toBeInstanceOf(ForeignClusterError);
    expect(String((probe as Error).message)).toContain('belongs to cluster');
  });

  it('a broker that has no cluster id yet (a new one) links with anyone, and checks once it has one', async () => {
    const [pa, pb] = await freePorts(2);
    const peers = [
      { id: 'a', host: '127.0.0.1', port: pa as number },
      { id: 'b', host: '127.0.0.1', port: pb as number },
    ];
    const a = broker('a', pa as number, peers, 'cluster-1');
    const b = broker('b', pb as number, peers, undefined);
    await Promise.all([a.transport.listen(), b.transport.listen()]);
    await until(() => a.transport.connectedPeers().includes('b') && b.transport.connectedPeers().includes('a'), 'a link between a and b', 10_000);
    expect(a.errors).toEqual([]);
    // b learns it belongs to the same cluster: a probe from it still gets through.
    b.cluster.id = 'cluster-1';
    await expect(b.transport.introduce('127.0.0.1', pa as number, 2000)).resolves.toMatchObject({ id: 'a' });
    // Another cluster's id does not.
    b.cluster.id = 'cluster-9';
    await expect(b.transport.introduce('127.0.0.1', pa as number, 2000)).rejects.toBeInstanceOf(ForeignClusterError);
  });
});
