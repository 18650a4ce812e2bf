import net from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A TCP proxy on loopback between a client and a broker, controlled by the
 * test: `cut()` drops every connection through it at once (as a crash or a
 * network fault would), new connections keep working.
 */
export interface TcpProxy {
  readonly port: number;
  readonly url: string;
  /** Connections currently open through the proxy. */
  readonly openConnections: number;
  /** Connections refused while blocked, since the start. */
  readonly refused: number;
  /** Destroys every open connection, both sides. */
  cut(): void;
  /** From now on, bytes from the target back to clients are discarded (replies lost in flight). */
  dropReplies(): void;
  /** From now on, bytes from clients to the target are held back (a slow link), in order, until `releaseRequests()`. */
  holdRequests(): void;
  /** Sends what was held, in order, and forwards as usual again. */
  releaseRequests(): void;
  /** A network partition: cuts every connection and refuses new ones until `unblock()`. */
  block(): void;
  unblock(): void;
  /**
   * A host down: cuts every connection and stops listening, so new ones are
   * refused (ECONNREFUSED) rather than accepted and dropped, until `reopen()`
   * listens on the same port again.
   */
  shut(): Promise<void>;
  reopen(): Promise<void>;
  close(): Promise<void>;
}

export async function startProxy(targetPort: number): Promise<TcpProxy> {
  const pairs = new Set<[net.Socket, net.Socket]>();
  let dropping = false;
  let holding = false;
  /** Bytes from clients held back while `holding`, in arrival order. */
  const held: Array<[net.Socket, Buffer]> = [];
  let blocked = false;
  let refused = 0;
  const server = net.createServer((inbound) => {
    if (blocked) {
      refused++;
      inbound.destroy();
      return;
    }
    const outbound = net.connect(targetPort, '127.0.0.1');
    const pair: [net.Socket, net.Socket] = [inbound, outbound];
    pairs.add(pair);
    const drop = (): void => {
      pairs.delete(pair);
      inbound.destroy();
      outbound.destroy();
    };
    inbound.on('error', drop).on('close', drop);
    outbound.on('error', drop).on('close', drop);
    inbound.on('data', (chunk: Buffer) => {
      if (holding) held.push([outbound, chunk]);
      else outbound.write(chunk);
    });
    outbound.on('data', (chunk: Buffer) => {
      if (!dropping) inbound.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const proxy: TcpProxy = {
    port,
    url: `ws://127.0.0.1:${port}`,
    get openConnections() {
      return pairs.size;
    },
    get refused() {
      return refused;
    },
    cut() {
      for (const [inbound, outbound] of [...pairs]) {
        inbound.resetAndDestroy();
        outbound.destroy();
      }
      pairs.clear();
      dropping = false;
    },
    dropReplies() {
      dropping = true;
    },
    holdRequests() {
      holding = true;
    },
    releaseRequests() {
      holding = false;
      for (const [outbound, chunk] of held.splice(0)) if (!outbound.destroyed) outbound.write(chunk);
    },
    block() {
      blocked = true;
      proxy.cut();
    },
    unblock() {
      blocked = false;
    },
    shut() {
      proxy.cut();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
    reopen() {
      return new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => {
          server.off('error', reject);
          resolve();
        });
      });
    },
    close() {
      proxy.cut();
      return new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
    },
  };
  return proxy;
}
