import { afterEach, describe, expect, it } from 'vitest';
import { freePorts } from '../../../../test/support/ports.js';
import { applyPublish } from '../core/partition/apply.js';
import { Partition } from '../core/partition/partition.js';
import { PeerRpc } from '../net/peer-rpc.js';
import { PeerTransport } from '../net/peer-transport.js';
import { parsePartitionRead, parsePartitionReadResponse, parseTailNotice } from './peer-messages.js';
import { READ_METHOD, RemotePartitions } from './remote-partitions.js';

/** One broker of the test: its transport, its hosted logs and its RemotePartitions. */
interface Node {
  id: string;
  transport: PeerTransport;
  rpc: PeerRpc;
  logs: Map<string, Partition>;
  remote: RemotePartitions;
  appended: string[];
  calls: string[];
}

const nodes: Node[] = [];
async function stop(n: Node): Promise<void> {
  nodes.splice(nodes.indexOf(n), 1);
  n.remote.close();
  n.rpc.close();
  await n.transport.close();
}
afterEach(async () => {
  await Promise.all([...nodes].map(stop));
});

/** `r` reads; `x` and `y` replicate partition `t/0` (x first in the assignment), and both name `leader` as its leader. */
async function brokers(leader: string, pollMs = 60_000): Promise<{ r: Node; x: Node; y: Node }> {
  const ids = ['r', 'x', 'y'];
  const ports = await freePorts(3);
  const peers = ids.map((id, i) => ({ id, host: '127.0.0.1', port: ports[i] as number }));
  for (const self of peers) {
    const transport = new PeerTransport({
      id: self.id, host: '127.0.0.1', port: self.port, peers,
      maxFrameBytes: 1 << 20, maxQueuedBytes: 1 << 20, reconnect: { initialDelayMs: 10, maxDelayMs: 50 }, log: () => {},
    });
    const rpc = new PeerRpc(transport);
    const calls: string[] = [];
    const counted: Pick<PeerRpc, 'call' | 'handle'> = {
      call: (peer, method, body, timeoutMs) => {
        calls.push(`${peer}:${method}`);
        return rpc.call(peer, method, body, timeoutMs);
      },
      handle: (method, handler) => rpc.handle(method, handler),
    };
    const logs = new Map<string, Partition>();
    if (self.id !== 'r') logs.set('0:t', new Partition({ dedupeWindow: 100, retentionBytes: 1 << 20 }));
    const appended: string[] = [];
    const remote = new RemotePartitions({
      self: self.id,
      rpc: counted,
      transport,
      replicasOf: (topic, partition) => (topic === 't' && partition === 0 ? ['x', 'y'] : undefined),
      localLog: (topic, partition) => logs.get(`${partition}:${topic}`),
      leaderOf: () => leader,
      onAppended: (topic, partition) => appended.push(`${topic}/${partition}`),
      readTimeoutMs: 1000,
      now: Date.now,
      log: () => {},
      pollMs,
    });
    nodes.push({ id: self.id, transport, rpc, logs, remote, appended, calls });
  }
  await Promise.all(nodes.map((n) => n.transport.listen()));
  const deadline = Date.now() + 5000;
  while (nodes.some((n) => n.transport.connectedPeers().length < 2)) {
    if (Date.now() > deadline) throw new Error('peers did not connect');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const [r, x, y] = nodes.slice(-3) as [Node, Node, Node];
  return { r, x, y };
}

/** Appends `values` to a node's copy of `t/0` (a replica applying committed entries) and tells its readers. */
function append(node: Node, values: string[]): void {
  const log = node.logs.get('0:t') as Partition;
  for (const v of values) applyPublish(log, { producerId: 'p', firstSeq: log.endOffset, messages: [{ data: new TextEncoder().encode(v) }], timestampMs: 1000 + log.endOffset, dedupe: true });
  node.remote.localAppended('t', 0);
}

const texts = (messages: Array<{ data: Uint8Array }>): string[] => messages.map((m) => new TextDecoder().decode(m.data));

async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('RemotePartitions', () => {
  it('reads from the leader a replica names, answers at the known end without a round trip, and is woken by a tail notice', async () => {
    const { r, x, y } = await brokers('y');
    append(x, ['a', 'b', 'c']);
    append(y, ['a', 'b', 'c']);
    // First ask goes to x (first in the assignment); it names y as the leader, so y is asked next.
    expect(texts(await r.remote.read('t', 0, 0, 2, 1 << 20))).toEqual(['a', 'b']);
    expect(r.remote.bounds('t', 0)).toEqual({ start: 0, end: 3 });
    expect(texts(await r.remote.read('t', 0, 2, 10, 1 << 20))).toEqual(['c']);
    expect(r.calls).toEqual([`x:${READ_METHOD}`, `y:${READ_METHOD}`]);
    // At the end: nothing, synchronously, and no call.
    expect(r.remote.read('t', 0, 3, 10, 1 << 20)).toEqual([]);
    expect(r.calls).toHaveLength(2);
    append(x, ['d']);
    append(y, ['d']);
    await until(() => r.appended.length > 0, 'a tail notice from y');
    expect(r.appended[0]).toBe('t/0');
    expect(r.remote.bounds('t', 0).end).toBe(4);
    expect(texts(await r.remote.read('t', 0, 3, 10, 1 << 20))).toEqual(['d']);
  });

  it('fails over to another replica when the one it reads from goes away, at the same offset', async () => {
    const { r, x, y } = await brokers('x');
    const values = Array.from({ length: 20 }, (_, i) => `m${i}`);
    append(x, values);
    append(y, values);
    expect(texts(await r.remote.read('t', 0, 0, 5, 1 << 20))).toEqual(values.slice(0, 5));
    await stop(x);
    await until(() => !r.transport.connectedPeers().includes('x'), 'r to see x go');
    expect(texts(await r.remote.read('t', 0, 5, 100, 1 << 20))).toEqual(values.slice(5));
    expect(r.calls.at(-1)).toBe(`y:${READ_METHOD}`);
    // Bounds and time lookups go through the survivor too.
    await expect(r.remote.currentBounds('t', 0)).resolves.toEqual({ start: 0, end: 20 });
    await expect(r.remote.offsetForTime('t', 0, 1007)).resolves.toBe(7);
  });

  it('polls a followed partition, so growth whose notice was lost still wakes its readers', async () => {
    const { r, x, y } = await brokers('x', 50);
    append(x, ['a']);
    append(y, ['a']);
    await expect(r.remote.currentBounds('t', 0)).resolves.toEqual({ start: 0, end: 1 });
    // Grows without a notice (as if it was lost on the way).
    const log = x.logs.get('0:t') as Partition;
    applyPublish(log, { producerId: 'p', firstSeq: 1, messages: [{ data: new TextEncoder().encode('b') }], timestampMs: 2000, dedupe: true });
    await until(() => r.remote.bounds('t', 0).end === 2, 'the poll to see offset 1');
    expect(r.appended).toContain('t/0');
  });

  it('a replica whose own read failed reads another replica instead, without following the partition', async () => {
    const { r, x, y } = await brokers('x');
    append(x, ['a', 'b']);
    append(y, ['a', 'b']);
    // x hosts t/0 itself: the copy it asks for comes from y, never from x.
    expect(texts(await x.remote.readFromReplica('t', 0, 0, 10, 1 << 20))).toEqual(['a', 'b']);
    expect(x.calls).toEqual([`y:${READ_METHOD}`]);
    expect(x.remote.followedCount()).toBe(0);
    expect(r.remote.followedCount()).toBe(0);
  });

  it('refuses when no replica can be read, and for a partition that does not exist', async () => {
    const { r, x, y } = await brokers('x');
    await Promise.all([x, y].map(stop));
    await until(() => r.transport.connectedPeers().length === 0, 'r to see both replicas go');
    await expect(r.remote.read('t', 0, 0, 10, 1 << 20)).rejects.toMatchObject({ code: 'NO_QUORUM' });
    await expect(r.remote.read('t', 1, 0, 10, 1 << 20)).rejects.toMatchObject({ code: 'INVALID_PARTITION' });
    await expect(r.remote.currentBounds('t', 0)).rejects.toMatchObject({ code: 'NO_QUORUM' });
  });

  it('checks every body a peer sends', () => {
    expect(() => parsePartitionRead({ topic: 't', partition: 0, from: -1, max: 1, maxBytes: 1 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => parsePartitionRead(null)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => parsePartitionReadResponse({ start: 0, end: 1, messages: [{ offset: 0 }] })).toThrow(expect.objectContaining({ code: 'PROTOCOL_ERROR' }));
    expect(() => parsePartitionReadResponse({ start: 0, end: 'x', messages: [] })).toThrow(expect.objectContaining({ code: 'PROTOCOL_ERROR' }));
    expect(() => parseTailNotice({ topic: 't', partition: 0 })).toThrow(expect.objectContaining({ code: 'PROTOCOL_ERROR' }));
    expect(parseTailNotice({ topic: 't', partition: 0, end: 3 })).toEqual({ topic: 't', partition: 0, end: 3 });
  });
});
