import { freePorts } from '../../../../test/support/ports.js';
import { afterEach, describe, expect, it } from 'vitest';
import { RelayError } from '@relaymq/sdk/protocol';
import { PeerRpc, isUnknownMethod } from './peer-rpc.js';
import { PeerTransport } from './peer-transport.js';


const transports: PeerTransport[] = [];
afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
});

async function pair(): Promise<[PeerRpc, PeerRpc, PeerTransport, PeerTransport]> {
  const ports = await freePorts(2);
  const peers = [
    { id: 'a', host: '127.0.0.1', port: ports[0] as number },
    { id: 'b', host: '127.0.0.1', port: ports[1] as number },
  ];
  const [ta, tb] = peers.map(
    (self) =>
      new PeerTransport({
        id: self.id, host: '127.0.0.1', port: self.port, peers,
        maxFrameBytes: 1 << 20, maxQueuedBytes: 1 << 20, reconnect: { initialDelayMs: 10, maxDelayMs: 50 }, log: () => {},
      }),
  ) as [PeerTransport, PeerTransport];
  transports.push(ta, tb);
  await Promise.all([ta.listen(), tb.listen()]);
  const deadline = Date.now() + 5000;
  while (ta.connectedPeers().length === 0 || tb.connectedPeers().length === 0) {
    if (Date.now() > deadline) throw new Error('peers did not connect');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return [new PeerRpc(ta), new PeerRpc(tb), ta, tb];
}

describe('PeerRpc', () => {
  it('calls a handler on another broker and returns its reply', async () => {
    const [a, b] = await pair();
    b.handle('echo', async (from, body) => ({ from, body }));
    await expect(a.call('b', 'echo', { x: 1 }, 1000)).resolves.toEqual({ from: 'a', body: { x: 1 } });
  });

  it('carries a RelayError back with its code', async () => {
    const [a, b] = await pair();
    b.handle('publish', async () => {
      throw new RelayError('NOT_LEADER', 'ask b3', { leader: 'b3' });
    });
    await expect(a.call('b', 'publish', {}, 1000)).rejects.toMatchObject({ code: 'NOT_LEADER', message: 'ask b3' });
    await expect(a.call('b', 'nope', {}, 1000)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('tells a method the peer does not serve (an older broker) from a refusal of the request by a handler', async () => {
    const [a, b] = await pair();
    // A handler's own INVALID_ARGUMENT (a bad topic name, say) is an answer, not an unknown method.
    b.handle('meta.partition-count', async () => {
      throw new RelayError('INVALID_ARGUMENT', 'meta.partition-count wants a topic name');
    });
    const refused = await a.call('b', 'meta.partition-count', {}, 1000).catch((err: unknown) => err);
    expect(refused).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(isUnknownMethod(refused, 'meta.partition-count')).toBe(false);
    const unknown = await a.call('b', 'meta.other', {}, 1000).catch((err: unknown) => err);
    expect(isUnknownMethod(unknown, 'meta.other')).toBe(true);
    expect(isUnknownMethod(unknown, 'meta.partition-count')).toBe(false); // another method's refusal
    // Even a handler's message that merely starts like it is not taken for it.
    b.handle('meta.x', async () => {
      throw new RelayError('INVALID_ARGUMENT', 'unknown peer method meta.x: topic "a b" is not a name');
    });
    expect(isUnknownMethod(await a.call('b', 'meta.x', {}, 1000).catch((err: unknown) => err), 'meta.x')).toBe(false);
  });

  it("carries a refusal's leader hint back, so a client hears it through every hop (a split: the hint names the far side)", async () => {
    const [a, b] = await pair();
    b.handle('publish', async () => {
      throw new RelayError('NO_QUORUM', 'no leader reachable from b; try c4', { leader: 'c4' });
    });
    await expect(a.call('b', 'publish', {}, 1000)).rejects.toMatchObject({ code: 'NO_QUORUM', details: { leader: 'c4' } });
  });

  it('fails with NOT_CONNECTED for a peer that is down and TIMEOUT for one that never answers', async () => {
    const [a, b, , tb] = await pair();
    b.handle('slow', () => new Promise(() => {}));
    await expect(a.call('b', 'slow', {}, 50)).rejects.toMatchObject({ code: 'TIMEOUT' });
    await expect(a.call('nobody', 'x', {}, 50)).rejects.toMatchObject({ code: 'NOT_CONNECTED' });
    await tb.close();
    const deadline = Date.now() + 5000;
    let result: unknown;
    while (Date.now() < deadline) {
      result = await a.call('b', 'slow', {}, 50).catch((err: RelayError) => err.code);
      if (result === 'NOT_CONNECTED') break;
    }
    expect(result).toBe('NOT_CONNECTED');
  });

  it('fails a call in flight with NOT_CONNECTED as soon as its peer goes away, not after the timeout', async () => {
    const [a, b, , tb] = await pair();
    let received!: () => void;
    const served = new Promise<void>((resolve) => (received = resolve));
    b.handle('slow', () => {
      received();
      return new Promise(() => {});
    });
    const started = Date.now();
    const call = a.call('b', 'slow', {}, 30_000).catch((err: RelayError) => err);
    await served;
    await tb.close();
    const error = await call;
    expect(error).toMatchObject({ code: 'NOT_CONNECTED' });
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
