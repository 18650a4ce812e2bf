import net from 'node:net';
import { freePorts } from '../../../../test/support/ports.js';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeValue, encodeValue } from '@relaymq/sdk/protocol';
import { PeerTransport, parsePeer, type PeerAddress } from './peer-transport.js';


async function until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const started: PeerTransport[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((t) => t.close()));
});

async function mesh(ids: string[]): Promise<{ transports: PeerTransport[]; peers: PeerAddress[]; received: Array<[string, string, string, unknown]> }> {
  const ports = await freePorts(ids.length);
  const peers = ids.map((id, i) => ({ id, host: '127.0.0.1', port: ports[i] as number }));
  const received: Array<[string, string, string, unknown]> = [];
  const transports = peers.map((self) => {
    const t = new PeerTransport({
      id: self.id,
      host: '127.0.0.1',
      port: self.port,
      peers,
      maxFrameBytes: 1024 * 1024,
      maxQueuedBytes: 8 * 1024 * 1024,
      reconnect: { initialDelayMs: 10, maxDelayMs: 50 },
      log: () => {},
    });
    t.on('message', (from, channel, payload) => received.push([self.id, from, channel, payload]));
    started.push(t);
    return t;
  });
  await Promise.all(transports.map((t) => t.listen()));
  await until(() => transports.every((t) => t.connectedPeers().length === ids.length - 1), 'a full mesh');
  return { transports, peers, received };
}

describe('parsePeer', () => {
  it('parses id@host:port and names what is wrong otherwise', () => {
    expect(parsePeer('b2@127.0.0.1:7502')).toEqual({ id: 'b2', host: '127.0.0.1', port: 7502 });
    expect(parsePeer('b3@[::1]:7503')).toEqual({ id: 'b3', host: '::1', port: 7503 });
    for (const bad of ['b2', 'b2@host', '@h:1', 'b2@h:0', 'b2@h:70000', 'b 2@h:1']) {
      expect(() => parsePeer(bad)).toThrow(/id@host:port/);
    }
  });
});

describe('PeerTransport', () => {
  it('connects every pair once and multiplexes channels', async () => {
    const { transports, received } = await mesh(['b1', 'b2', 'b3']);
    const [b1, b2, b3] = transports as [PeerTransport, PeerTransport, PeerTransport];
    expect(b1.send('b2', 'gossip', { hi: 1 })).toBe(true);
    expect(b3.send('b1', 'raft/orders/0', { entries: [new Uint8Array([1, 2])] })).toBe(true);
    expect(b2.send('b3', 'gossip', 'x')).toBe(true);
    await until(() => received.length === 3, 'three messages');
    expect(received).toContainEqual(['b2', 'b1', 'gossip', { hi: 1 }]);
    expect(received).toContainEqual(['b1', 'b3', 'raft/orders/0', { entries: [new Uint8Array([1, 2])] }]);
    expect(received).toContainEqual(['b3', 'b2', 'gossip', 'x']);
    expect(b1.send('nobody', 'gossip', 1)).toBe(false);
  });

  it('keeps message order on a link and batches many sends', async () => {
    const { transports, received } = await mesh(['a', 'b']);
    for (let i = 0; i < 5000; i++) transports[0]?.send('b', 'seq', i);
    await until(() => received.length === 5000, '5000 messages');
    expect(received.map((r) => r[3])).toEqual(Array.from({ length: 5000 }, (_, i) => i));
  });

  it('redials a peer that restarts', async () => {
    const { transports, peers, received } = await mesh(['a', 'b']);
    const downs: string[] = [];
    transports[0]?.on('down', (peer) => downs.push(peer));
    await transports[1]?.close();
    await until(() => downs.includes('b'), 'a to notice b is down');
    const restarted = new PeerTransport({
      id: 'b', host: '127.0.0.1', port: peers[1]?.port as number, peers,
      maxFrameBytes: 1024 * 1024, maxQueuedBytes: 1024 * 1024, reconnect: { initialDelayMs: 10, maxDelayMs: 50 }, log: () => {},
    });
    started.push(restarted);
    restarted.on('message', (from, channel, payload) => received.push(['b', from, channel, payload]));
    await restarted.listen();
    await until(() => transports[0]?.connectedPeers().includes('b') === true, 'a to redial b');
    transports[0]?.send('b', 'after', 'restart');
    await until(() => received.some((r) => r[2] === 'after'), 'a message after the restart');
  });

  it('closes a connection that sends garbage, an oversized frame or an unknown id, and keeps working', async () => {
    const { transports, peers, received } = await mesh(['a', 'b']);
    const target = peers[1]?.port as number;
    const attempts = [
      Buffer.from([0, 0, 0, 3, 0xc1, 0xc1, 0xc1]), // undecodable
      Buffer.from([0xff, 0xff, 0xff, 0xff]), // 4 GiB frame
      (() => {
        const bogus = Buffer.from([0x82, 0xa1, 0x63, 0xa5, ...Buffer.from('hello'), 0xa1, 0x70, 0x81, 0xa2, 0x69, 0x64, 0xa1, 0x7a]);
        return Buffer.concat([Buffer.from([0, 0, 0, bogus.length]), bogus]); // hello from unknown peer "z"
      })(),
    ];
    for (const bytes of attempts) {
      const socket = net.connect(target, '127.0.0.1');
      const closed = new Promise((resolve) => socket.on('close', resolve));
      socket.on('error', () => {});
      socket.write(bytes);
      await closed;
    }
    transports[0]?.send('b', 'still', 'fine');
    await until(() => received.some((r) => r[2] === 'still'), 'the real peer to still get through');
  });
});

describe('peers that join and peers with amnesia', () => {
  const transport = (id: string, port: number, peers: PeerAddress[], identity?: { incarnation: string; known: Map<string, string>; replaceable?: () => boolean }) => {
    const t = new PeerTransport({
      id,
      host: '127.0.0.1',
      port,
      peers,
      maxFrameBytes: 1024 * 1024,
      maxQueuedBytes: 8 * 1024 * 1024,
      reconnect: { initialDelayMs: 10, maxDelayMs: 50 },
      ...(identity === undefined
        ? {}
        : {
            identity: {
              incarnation: identity.incarnation,
              known: (peer: string) => identity.known.get(peer),
              remember: (peer: string, inc: string) => void identity.known.set(peer, inc),
              ...(identity.replaceable === undefined ? {} : { replaceable: identity.replaceable, replace: (peer: string, inc: string) => void identity.known.set(peer, inc) }),
            },
          }),
      log: () => {},
    });
    started.push(t);
    return t;
  };

  it('a broker the others were not configured with (a higher id, which does not dial) introduces itself, is added and then dialed by the lower id', async () => {
    const [p1, p9] = await freePorts(2);
    const a = transport('a', p1 as number, []);
    const z = transport('z', p9 as number, [{ id: 'a', host: '127.0.0.1', port: p1 as number }]);
    const added: PeerAddress[] = [];
    a.on('added', (peer) => added.push(peer));
    await Promise.all([a.listen(), z.listen()]);
    await until(() => a.connectedPeers().includes('z') && z.connectedPeers().includes('a'), 'a link between a and z', 10_000);
    expect(added).toEqual([{ id: 'z', host: '127.0.0.1', port: p9 }]);
    expect(a.peerIds()).toEqual(['z']);
    // `--join` asks an address who listens there.
    const y = transport('y', 0, []);
    await y.listen();
    await expect(y.introduce('127.0.0.1', p1 as number, 2000)).resolves.toEqual({ id: 'a', host: '127.0.0.1', port: p1 });
  });

  it('refuses a peer presenting another incarnation than the one first met, in both directions, and sends it nothing', async () => {
    const [pa, pb] = await freePorts(2);
    const peers = [
      { id: 'a', host: '127.0.0.1', port: pa as number },
      { id: 'b', host: '127.0.0.1', port: pb as number },
    ];
    const knownByA = new Map([['b', 'old-b']]);
    const a = transport('a', pa as number, peers, { incarnation: 'a1', known: knownByA });
    const b = transport('b', pb as number, peers, { incarnation: 'new-b', known: new Map() });
    const heardByB: string[] = [];
    b.on('message', (_from, channel) => heardByB.push(channel));
    await Promise.all([a.listen(), b.listen()]);
    a.send('b', 'raft/meta', { type: 'heartbeat' });
    await new Promise((resolve) => setTimeout(resolve, 1500)); // a dials b (lower id), b introduces itself to a after 1 s
    // a never lets the link up (b may see a's dial for an instant before a reads its welcome and drops it).
    expect(a.connectedPeers()).toEqual([]);
    expect(heardByB).toEqual([]);
    expect(knownByA.get('b')).toBe('old-b');
  });

  it('accepts another incarnation of a peer an operator let come back (replaceable), and keeps the new one', async () => {
    const [pa, pb] = await freePorts(2);
    const peers = [
      { id: 'a', host: '127.0.0.1', port: pa as number },
      { id: 'b', host: '127.0.0.1', port: pb as number },
    ];
    const knownByA = new Map([['b', 'old-b']]);
    const a = transport('a', pa as number, peers, { incarnation: 'a1', known: knownByA, replaceable: () => true });
    const b = transport('b', pb as number, peers, { incarnation: 'new-b', known: new Map() });
    await Promise.all([a.listen(), b.listen()]);
    await until(() => a.connectedPeers().includes('b') && b.connectedPeers().includes('a'), 'a link between a and the new b', 10_000);
    expect(knownByA.get('b')).toBe('new-b');
  });
});

/** A hand-driven peer: raw sockets speaking the transport's frames, to force orderings a real peer only hits by chance. */
const rawFrame = (channel: string, payload: unknown): Buffer => {
  const body = encodeValue({ c: channel, p: payload });
  return Buffer.concat([Buffer.from([body.length >>> 24, (body.length >>> 16) & 0xff, (body.length >>> 8) & 0xff, body.length & 0xff]), body]);
};
function rawFrames(socket: net.Socket): Array<{ c: string; p: unknown }> {
  const frames: Array<{ c: string; p: unknown }> = [];
  let buffered = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 4 && buffered.length >= 4 + buffered.readUInt32BE(0)) {
      const length = buffered.readUInt32BE(0);
      frames.push(decodeValue(buffered.subarray(4, 4 + length)) as { c: string; p: unknown });
      buffered = buffered.subarray(4 + length);
    }
  });
  return frames;
}

describe('handshakes that go wrong', () => {
  const logged: Array<{ message: string; fields?: Record<string, unknown> }> = [];
  const transport = (id: string, port: number, peers: PeerAddress[], known?: Map<string, string>) => {
    const t = new PeerTransport({
      id,
      host: '127.0.0.1',
      port,
      peers,
      maxFrameBytes: 1024 * 1024,
      maxQueuedBytes: 8 * 1024 * 1024,
      reconnect: { initialDelayMs: 10, maxDelayMs: 50 },
      ...(known === undefined
        ? {}
        : { identity: { incarnation: `${id}-1`, known: (peer: string) => known.get(peer), remember: (peer: string, inc: string) => void known.set(peer, inc) } }),
      log: (_level, message, fields) => void logged.push({ message, ...(fields === undefined ? {} : { fields }) }),
    });
    started.push(t);
    return t;
  };
  const servers: net.Server[] = [];
  afterEach(async () => {
    logged.length = 0;
    await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
  });
  /** A listener on `port` that hands each accepted socket to the test. */
  const listenRaw = async (port: number, onSocket: (socket: net.Socket) => void): Promise<net.Socket[]> => {
    const accepted: net.Socket[] = [];
    const server = net.createServer((socket) => {
      socket.on('error', () => {});
      accepted.push(socket);
      onSocket(socket);
      socket.resume(); // read (and so notice the close) even when the test does not look at the bytes
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    return accepted;
  };

  it('does not take another broker answering at a peer\'s address for that peer, nor record its incarnation as the peer\'s', async () => {
    const [pa, pb] = await freePorts(2);
    const known = new Map<string, string>();
    // "b" is configured at pb, but broker "x" listens there now (b moved, or its port was reused).
    const x = transport('x', pb as number, [], new Map());
    const a = transport('a', pa as number, [{ id: 'b', host: '127.0.0.1', port: pb as number }], known);
    await Promise.all([x.listen(), a.listen()]);
    await until(() => logged.some((l) => l.message === 'a peer address is held by another broker' && l.fields?.answered === 'x'), 'a to notice x answers for b', 10_000);
    expect(a.connectedPeers()).not.toContain('b');
    expect(known.has('b')).toBe(false);
  });

  it('a broker\'s introduction that crosses the dialer\'s own connection gives way to it: one link, the dialer\'s, is kept', async () => {
    const [pa, pz] = await freePorts(2);
    // "a" is played by hand: it holds z's introduction unanswered while it dials z itself, and only then welcomes it.
    let introduction: net.Socket | undefined;
    let introductionFrames: Array<{ c: string; p: unknown }> = [];
    await listenRaw(pa as number, (socket) => {
      introduction = socket;
      introductionFrames = rawFrames(socket);
    });
    const z = transport('z', pz as number, [{ id: 'a', host: '127.0.0.1', port: pa as number }]);
    const fromA: unknown[] = [];
    z.on('message', (from, channel, payload) => from === 'a' && channel === 'test' && fromA.push(payload));
    await z.listen();
    // z (the higher id) introduces itself after a quiet second.
    await until(() => introductionFrames.some((f) => f.c === 'hello'), 'z to introduce itself to a', 10_000);
    // a dials z as the pair's dialer, is welcomed, and its link is up on z.
    const dialed = net.connect(pz as number, '127.0.0.1');
    dialed.on('error', () => {});
    const dialedFrames = rawFrames(dialed);
    await new Promise((resolve) => dialed.once('connect', resolve));
    dialed.write(rawFrame('hello', { id: 'a', address: `127.0.0.1:${pa}` }));
    await until(() => dialedFrames.some((f) => f.c === 'welcome') && z.connectedPeers().includes('a'), 'z to welcome a\'s own connection');
    // Only now does a answer z's introduction.
    const introductionClosed = new Promise((resolve) => (introduction as net.Socket).once('close', resolve));
    (introduction as net.Socket).write(rawFrame('welcome', { id: 'a', address: `127.0.0.1:${pa}` }));
    await within(introductionClosed, 'z to drop its introduction');
    // a's connection is the link: frames both ways still flow on it.
    dialed.write(rawFrame('test', 'over the dialer\'s link'));
    await until(() => fromA.length === 1, 'z to hear a on the kept link');
    expect(z.send('a', 'test', 'back')).toBe(true);
    await until(() => dialedFrames.some((f) => f.c === 'test' && f.p === 'back'), 'a to hear z on the kept link');
    expect(dialed.destroyed).toBe(false);
    dialed.destroy();
  });

  it('reads frames however the stream splits them: a header cut in two, a large frame in many pieces, several frames in one piece', async () => {
    const [pa, pz] = await freePorts(2);
    await listenRaw(pa as number, () => {}); // z's introduction to a goes nowhere
    const z = transport('z', pz as number, [{ id: 'a', host: '127.0.0.1', port: pa as number }]);
    const fromA: unknown[] = [];
    z.on('message', (from, channel, payload) => from === 'a' && channel === 'test' && fromA.push(payload));
    await z.listen();
    const dialed = net.connect(pz as number, '127.0.0.1');
    dialed.on('error', () => {});
    const dialedFrames = rawFrames(dialed);
    await new Promise((resolve) => dialed.once('connect', resolve));
    dialed.write(rawFrame('hello', { id: 'a', address: `127.0.0.1:${pa}` }));
    await until(() => dialedFrames.some((f) => f.c === 'welcome') && z.connectedPeers().includes('a'), 'z to welcome a');
    const large = new Uint8Array(700_000).map((_, i) => i % 251);
    const stream = Buffer.concat([rawFrame('test', { n: 1, data: large }), rawFrame('test', { n: 2 }), rawFrame('test', { n: 3 })]);
    // Pieces of 3 bytes (the first header cut), then 64 KiB (the large frame in eleven), then the two small frames at once.
    const cuts = [3, 6, ...Array.from({ length: 11 }, (_, i) => Math.min(6 + (i + 1) * 65_536, stream.length - 40)), stream.length];
    let at = 0;
    for (const cut of cuts) {
      await new Promise((resolve) => dialed.write(stream.subarray(at, cut), resolve));
      at = cut;
    }
    await until(() => fromA.length === 3, 'the three frames');
    expect(fromA.map((f) => (f as { n: number }).n)).toEqual([1, 2, 3]);
    expect(Buffer.from((fromA[0] as { data: Uint8Array }).data).equals(Buffer.from(large))).toBe(true);
    expect(dialed.destroyed).toBe(false);
    dialed.destroy();
  });

  it('close() ends a dial still waiting for the peer\'s welcome', async () => {
    const [pa, pb] = await freePorts(2);
    const accepted = await listenRaw(pb as number, () => {}); // accepts and never answers
    const a = transport('a', pa as number, [{ id: 'b', host: '127.0.0.1', port: pb as number }]);
    await a.listen();
    await until(() => accepted.length > 0, 'a to dial b');
    const closedAtB = new Promise((resolve) => (accepted[0] as net.Socket).once('close', resolve));
    await within(a.close(), 'close()', 2000);
    await within(closedAtB, 'the pending dial to be closed', 2000);
  });
});

async function within<T>(promise: Promise<T>, what: string, timeoutMs = 5000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs)))]);
  } finally {
    clearTimeout(timer);
  }
}
