/**
 * Batch frames (issue 13): messages queued to a peer within one tick (after
 * the first frame of a turn: within the rest of the turn) leave in one
 * frame, to peers that said they accept them; a peer that did not (a broker
 * from before batch frames) gets one frame per message.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeValue, encodeValue } from '@relaymq/sdk/protocol';
import { freePorts } from '../../../../test/support/ports.js';
import { waitFor } from '../../../../test/support/wait.js';
import { BATCH_MAX_MESSAGES, PeerTransport, type PeerAddress } from './peer-transport.js';

const started: PeerTransport[] = [];
const sockets: net.Socket[] = [];
const servers: net.Server[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(started.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

type Received = Array<{ at: string; from: string; channel: string; payload: unknown }>;

function transport(self: PeerAddress, peers: PeerAddress[], received: Received, batchFrames = true, maxFrameBytes = 1024 * 1024): PeerTransport {
  const t = new PeerTransport({
    id: self.id,
    host: '127.0.0.1',
    port: self.port,
    peers,
    maxFrameBytes,
    maxQueuedBytes: 8 * 1024 * 1024,
    reconnect: { initialDelayMs: 10, maxDelayMs: 50 },
    batchFrames,
    log: () => {},
  });
  t.on('message', (from, channel, payload) => received.push({ at: self.id, from, channel, payload }));
  started.push(t);
  return t;
}

/** Transports for `ids`, linked in a full mesh; those in `old` introduce themselves as brokers from before batch frames. */
async function mesh(ids: string[], old: string[] = [], maxFrameBytes?: number): Promise<{ byId: Map<string, PeerTransport>; received: Received }> {
  const ports = await freePorts(ids.length);
  const peers = ids.map((id, i) => ({ id, host: '127.0.0.1', port: ports[i] as number }));
  const received: Received = [];
  const byId = new Map(peers.map((self) => [self.id, transport(self, peers, received, !old.includes(self.id), maxFrameBytes)]));
  await Promise.all([...byId.values()].map((t) => t.listen()));
  await waitFor(() => [...byId.values()].every((t) => t.connectedPeers().length === ids.length - 1), 'a full mesh', 10_000);
  return { byId, received };
}

/** A hand-driven peer's frame: one message, as brokers from before batch frames write them. */
function singleFrame(channel: string, payload: unknown): Buffer {
  const body = encodeValue({ c: channel, p: payload });
  const header = Buffer.alloc(4);
  header.writeUInt32BE(body.length, 0);
  return Buffer.concat([header, body]);
}

/** Every frame read from `socket`, decoded: a map `{ c, p }` (single) or an array (batch). */
function framesOf(socket: net.Socket): unknown[] {
  const frames: unknown[] = [];
  let buffered = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 4 && buffered.length >= 4 + buffered.readUInt32BE(0)) {
      const length = buffered.readUInt32BE(0);
      frames.push(decodeValue(buffered.subarray(4, 4 + length)));
      buffered = buffered.subarray(4 + length);
    }
  });
  return frames;
}

/** The `test` messages among `frames`, in order, whichever kind of frame carried them. */
function testPayloads(frames: unknown[]): unknown[] {
  const out: unknown[] = [];
  for (const f of frames) {
    if (Array.isArray(f)) {
      for (let i = 0; i < f.length; i += 2) if (f[i] === 'test') out.push(f[i + 1]);
    } else if ((f as { c?: unknown }).c === 'test') out.push((f as { p?: unknown }).p);
  }
  return out;
}

const batchFrames = (frames: unknown[]): number => frames.filter((f) => Array.isArray(f)).length;

describe('batch frames between brokers that accept them', () => {
  it('sends what one turn queues to a peer as one frame, handed on as one message event each, in order', async () => {
    const { byId, received } = await mesh(['a', 'b']);
    const [a, b] = [byId.get('a') as PeerTransport, byId.get('b') as PeerTransport];
    const sentBefore = a.stats();
    const receivedBefore = b.stats();
    for (let i = 0; i < 300; i++) expect(a.send('b', i % 2 === 0 ? 'raft/p/t/0' : 'gossip', { i, bytes: new Uint8Array([i & 0xff]) })).toBe(true);
    await waitFor(() => received.length === 300, '300 messages', 10_000);
    expect(received.map((r) => (r.payload as { i: number }).i)).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(received.every((r) => r.at === 'b' && r.from === 'a' && r.channel === ((r.payload as { i: number }).i % 2 === 0 ? 'raft/p/t/0' : 'gossip'))).toBe(true);
    expect([...(received[7]?.payload as { bytes: Uint8Array }).bytes]).toEqual([7]);
    const sent = a.stats();
    const got = b.stats();
    expect(sent.messagesSent - sentBefore.messagesSent).toBe(300);
    expect(sent.framesSent - sentBefore.framesSent).toBe(1);
    expect(got.messagesReceived - receivedBefore.messagesReceived).toBe(300);
    expect(got.framesReceived - receivedBefore.framesReceived).toBe(1);
  });

  it('writes a lone message at the end of its tick, before the turn ends; what follows it in the same turn goes together at the turn\'s end', async () => {
    const { byId, received } = await mesh(['a', 'b']);
    const a = byId.get('a') as PeerTransport;
    const before = a.stats().framesSent;
    const framesAt: number[] = [];
    // Queued before the sends: it runs at the end of this turn, after their tick (a flush in a setImmediate would run after it).
    setImmediate(() => framesAt.push(a.stats().framesSent - before));
    expect(a.send('b', 'test', 1)).toBe(true);
    expect(a.send('b', 'test', 2)).toBe(true);
    // A promise callback of the same tick still goes in the first frame (a Raft group answers from one).
    await Promise.resolve();
    expect(a.send('b', 'test', 3)).toBe(true);
    await new Promise<void>((resolve) => process.nextTick(resolve));
    await new Promise<void>((resolve) => process.nextTick(resolve));
    const afterTick = a.stats().framesSent - before;
    // The same turn, after the first frame left: these wait for the turn's end and go in one frame, ticks apart.
    expect(a.send('b', 'test', 4)).toBe(true);
    await new Promise<void>((resolve) => process.nextTick(resolve));
    await new Promise<void>((resolve) => process.nextTick(resolve));
    expect(a.stats().framesSent - before).toBe(1);
    expect(a.send('b', 'test', 5)).toBe(true);
    await new Promise<void>((resolve) => setImmediate(resolve));
    await waitFor(() => received.length === 5, '5 messages', 10_000);
    expect(framesAt).toEqual([1]);
    expect(afterTick).toBe(1);
    expect(a.stats().framesSent - before).toBe(2);
    expect(received.map((r) => r.payload)).toEqual([1, 2, 3, 4, 5]);
  });

  it('sends what the turn queued before closing (a broker leaving says so just before it closes)', async () => {
    const { byId, received } = await mesh(['a', 'b']);
    const a = byId.get('a') as PeerTransport;
    expect(a.send('b', 'gossip', { leave: 'a' })).toBe(true);
    await a.close();
    await waitFor(() => received.length === 1, 'the last message before close', 10_000);
    expect(received[0]).toMatchObject({ at: 'b', from: 'a', channel: 'gossip', payload: { leave: 'a' } });
  });

  it(`splits a turn of more than ${BATCH_MAX_MESSAGES} messages into full frames, keeping the order`, async () => {
    const { byId, received } = await mesh(['a', 'b']);
    const a = byId.get('a') as PeerTransport;
    const before = a.stats().framesSent;
    const count = 2 * BATCH_MAX_MESSAGES + 10;
    for (let i = 0; i < count; i++) a.send('b', 'seq', i);
    await waitFor(() => received.length === count, `${count} messages`, 10_000);
    expect(received.map((r) => r.payload)).toEqual(Array.from({ length: count }, (_, i) => i));
    expect(a.stats().framesSent - before).toBe(3);
  });

  it('sends messages too large for one batch frame as single frames, each within the frame limit', async () => {
    const { byId, received } = await mesh(['a', 'b']);
    const [a, b] = [byId.get('a') as PeerTransport, byId.get('b') as PeerTransport];
    const before = a.stats().framesSent;
    const big = new Uint8Array(600_000).fill(7); // two of them exceed the 1 MiB frame limit
    for (let i = 0; i < 3; i++) a.send('b', 'big', { i, big });
    await waitFor(() => received.length === 3, 'three large messages', 10_000);
    expect(received.map((r) => (r.payload as { i: number }).i)).toEqual([0, 1, 2]);
    expect(a.stats().framesSent - before).toBe(3);
    expect(b.connectedPeers()).toEqual(['a']);
    // Small messages after a bulk turn go in one frame again.
    const small = a.stats().framesSent;
    for (let i = 0; i < 10; i++) a.send('b', 'small', i);
    await waitFor(() => received.length === 13, 'ten small messages', 10_000);
    expect(a.stats().framesSent - small).toBe(1);
  });

  it('sends a message larger than any batch frame may be (the element bound) in a single frame, beside a batch of the small ones', async () => {
    const { byId, received } = await mesh(['a', 'b'], [], 8 * 1024 * 1024);
    const [a, b] = [byId.get('a') as PeerTransport, byId.get('b') as PeerTransport];
    const before = b.stats();
    const huge = new Uint8Array(5_000_000).fill(3); // within the 8 MiB frame limit, beyond the 4,000,000 bytes a batch may hold
    a.send('b', 'small', 1);
    a.send('b', 'huge', { huge });
    a.send('b', 'small', 2);
    await waitFor(() => received.length === 3, 'three messages', 10_000);
    expect(received.map((r) => r.channel)).toEqual(['small', 'huge', 'small']);
    expect((received[1]?.payload as { huge: Uint8Array }).huge.length).toBe(5_000_000);
    expect(b.stats().framesReceived - before.framesReceived).toBe(3);
    expect(b.connectedPeers()).toEqual(['a']);
  });
});

describe('brokers from before batch frames (rolling upgrade)', () => {
  it('mixed cluster: batch frames between brokers that accept them, single frames to the one that did not say so', async () => {
    const { byId, received } = await mesh(['a', 'b', 'c'], ['c']);
    const [a, b, c] = ['a', 'b', 'c'].map((id) => byId.get(id) as PeerTransport) as [PeerTransport, PeerTransport, PeerTransport];
    const before = [a, b, c].map((t) => t.stats());
    for (let i = 0; i < 50; i++) {
      a.send('b', 'test', i);
      a.send('c', 'test', i);
      c.send('a', 'test', i); // c itself reads batches from a and writes them to a: a said it accepts them
      b.send('c', 'test', i);
    }
    await waitFor(() => received.length === 200, '200 messages', 10_000);
    for (const [from, to] of [['a', 'b'], ['a', 'c'], ['c', 'a'], ['b', 'c']]) {
      expect(received.filter((r) => r.from === from && r.at === to).map((r) => r.payload), `${from} to ${to}`).toEqual(Array.from({ length: 50 }, (_, i) => i));
    }
    const [da, db, dc] = [a, b, c].map((t, i) => {
      const now = t.stats();
      const then = before[i] as typeof now;
      return { framesReceived: now.framesReceived - then.framesReceived, messagesReceived: now.messagesReceived - then.messagesReceived };
    });
    expect(dc).toEqual({ framesReceived: 100, messagesReceived: 100 }); // one frame per message from a and from b
    expect(db).toEqual({ framesReceived: 1, messagesReceived: 50 });
    expect(da).toEqual({ framesReceived: 1, messagesReceived: 50 });
  });

  it('an old dialer (no batch in its hello) gets single frames; one that says so gets a batch frame; single frames from it are read', async () => {
    const [pa, pz] = await freePorts(2);
    // a (the lower id) is played by hand; it dials z. z's own introduction to a goes to a listener that never answers.
    const server = net.createServer((s) => {
      s.on('error', () => {});
      sockets.push(s);
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(pa, '127.0.0.1', resolve));
    const received: Received = [];
    const z = transport({ id: 'z', host: '127.0.0.1', port: pz as number }, [{ id: 'a', host: '127.0.0.1', port: pa as number }], received);
    await z.listen();
    for (const told of [undefined, 1024 * 1024]) {
      const dialed = net.connect(pz as number, '127.0.0.1');
      sockets.push(dialed);
      dialed.on('error', () => {});
      const frames = framesOf(dialed);
      await new Promise((resolve) => dialed.once('connect', resolve));
      dialed.write(singleFrame('hello', told === undefined ? { id: 'a', address: `127.0.0.1:${pa}` } : { id: 'a', address: `127.0.0.1:${pa}`, batch: told }));
      await waitFor(() => frames.some((f) => (f as { c?: unknown }).c === 'welcome') && z.connectedPeers().includes('a'), 'z to welcome a', 10_000);
      expect((frames[0] as { p: { batch?: unknown } }).p.batch).toBe(1024 * 1024); // z tells its own limit either way
      for (let i = 0; i < 5; i++) z.send('a', 'test', i);
      await waitFor(() => testPayloads(frames).length === 5, 'five messages to a', 10_000);
      expect(testPayloads(frames)).toEqual([0, 1, 2, 3, 4]);
      expect(batchFrames(frames)).toBe(told === undefined ? 0 : 1);
      dialed.write(Buffer.concat([singleFrame('test', 'single'), singleFrame('test', 'frames')]));
      await waitFor(() => received.length === 2, 'z to read single frames', 10_000);
      expect(received.map((r) => r.payload)).toEqual(['single', 'frames']);
      received.length = 0;
      dialed.destroy();
      await waitFor(() => !z.connectedPeers().includes('a'), 'z to see a go', 10_000);
    }
  });

  it('a dialer answered by an old broker (no batch in its welcome) sends it single frames; answered by a new one, a batch frame', async () => {
    for (const told of [undefined, 1024 * 1024]) {
      const [pa, pb] = await freePorts(2);
      let accepted: net.Socket | undefined;
      let frames: unknown[] = [];
      const server = net.createServer((s) => {
        s.on('error', () => {});
        sockets.push(s);
        accepted = s;
        frames = framesOf(s);
        s.write(singleFrame('welcome', told === undefined ? { id: 'b', address: `127.0.0.1:${pb}` } : { id: 'b', address: `127.0.0.1:${pb}`, batch: told }));
      });
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(pb, '127.0.0.1', resolve));
      const received: Received = [];
      const a = transport({ id: 'a', host: '127.0.0.1', port: pa as number }, [{ id: 'b', host: '127.0.0.1', port: pb as number }], received);
      await a.listen();
      await waitFor(() => a.connectedPeers().includes('b'), 'a to link to b', 10_000);
      expect((frames[0] as { c: string; p: { batch?: unknown } }).c).toBe('hello');
      expect((frames[0] as { p: { batch?: unknown } }).p.batch).toBe(1024 * 1024);
      for (let i = 0; i < 5; i++) a.send('b', 'test', i);
      await waitFor(() => testPayloads(frames).length === 5, 'five messages to b', 10_000);
      expect(testPayloads(frames)).toEqual([0, 1, 2, 3, 4]);
      expect(batchFrames(frames)).toBe(told === undefined ? 0 : 1);
      (accepted as net.Socket).write(singleFrame('test', 'back'));
      await waitFor(() => received.length === 1, 'a to read b', 10_000);
      await a.close();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
