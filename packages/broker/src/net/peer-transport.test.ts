import net from 'node:net';
import { freePorts } from '../../../../test/support/ports.js';
import { afterEach, describe, expect, it } from 'vitest';
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
