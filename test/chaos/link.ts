import net from 'node:net';
import type { AddressInfo } from 'node:net';

/** Largest delay a link adds to a chunk; latency faults are drawn below it. */
export const MAX_LINK_LATENCY_MS = 2000;

/** One direction of a proxied connection: `forward` is dialer → target, `backward` the replies. */
export type Direction = 'forward' | 'backward';

/** The fault a link applies now. */
interface LinkState {
  /** Refuses new connections (existing ones were cut). */
  blocked: boolean;
  /** Directions whose bytes are discarded. */
  dropping: Set<Direction>;
  latencyMs: number;
}

/** Forwards chunks of one direction, each after the link's latency, in order. */
class Pipe {
  private readonly queue: Array<{ dueMs: number; chunk: Buffer }> = [];
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly to: net.Socket,
    private readonly state: LinkState,
    private readonly direction: Direction,
  ) {}

  push(chunk: Buffer): void {
    if (this.state.dropping.has(this.direction)) return;
    if (this.state.latencyMs === 0 && this.queue.length === 0) {
      this.to.write(chunk);
      return;
    }
    this.queue.push({ dueMs: Date.now() + this.state.latencyMs, chunk });
    this.schedule();
  }

  private schedule(): void {
    const head = this.queue[0];
    if (this.timer !== undefined || head === undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const now = Date.now();
      while (this.queue.length > 0 && (this.queue[0] as { dueMs: number }).dueMs <= now) {
        const { chunk } = this.queue.shift() as { chunk: Buffer };
        if (!this.to.destroyed) this.to.write(chunk);
      }
      this.schedule();
    }, Math.max(0, head.dueMs - Date.now()));
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
  }
}

/**
 * A fault-injecting TCP proxy on loopback in front of one port: every
 * broker-to-broker link and every client link of a chaos cluster goes
 * through one. Faults: refuse and cut (a partition), discard one direction
 * (a one-way partition), delay every chunk (latency), cut once (a link
 * reset). `heal()` ends them all.
 */
export class FaultLink {
  private readonly state: LinkState = { blocked: false, dropping: new Set(), latencyMs: 0 };
  private readonly connections = new Set<{ inbound: net.Socket; outbound: net.Socket; pipes: Pipe[] }>();

  private constructor(
    readonly name: string,
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(name: string, targetPort: number, listenPort = 0): Promise<FaultLink> {
    let link: FaultLink | undefined;
    const server = net.createServer((inbound) => link?.accept(inbound, targetPort));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listenPort, '127.0.0.1', () => resolve());
    });
    link = new FaultLink(name, server, (server.address() as AddressInfo).port);
    return link;
  }

  private accept(inbound: net.Socket, targetPort: number): void {
    if (this.state.blocked) {
      inbound.destroy();
      return;
    }
    const outbound = net.connect(targetPort, '127.0.0.1');
    const forward = new Pipe(outbound, this.state, 'forward');
    const backward = new Pipe(inbound, this.state, 'backward');
    const connection = { inbound, outbound, pipes: [forward, backward] };
    this.connections.add(connection);
    const drop = (): void => {
      this.connections.delete(connection);
      forward.close();
      backward.close();
      inbound.destroy();
      outbound.destroy();
    };
    inbound.setNoDelay(true);
    outbound.setNoDelay(true);
    inbound.on('error', drop).on('close', drop);
    outbound.on('error', drop).on('close', drop);
    inbound.on('data', (chunk: Buffer) => forward.push(chunk));
    outbound.on('data', (chunk: Buffer) => backward.push(chunk));
  }

  get openConnections(): number {
    return this.connections.size;
  }

  /** Resets every open connection (new ones are accepted). */
  cut(): void {
    for (const c of [...this.connections]) {
      c.pipes.forEach((p) => p.close());
      c.inbound.resetAndDestroy();
      c.outbound.destroy();
    }
    this.connections.clear();
  }

  /** A partition: cuts every connection and refuses new ones until `heal()`. */
  block(): void {
    this.state.blocked = true;
    this.cut();
  }

  /** Discards the bytes of one direction until `heal()` (the stream is then broken, so heal cuts it). */
  drop(direction: Direction): void {
    this.state.dropping.add(direction);
  }

  /** Delays every chunk by `ms` (order kept) until `heal()`. */
  delay(ms: number): void {
    this.state.latencyMs = Math.min(ms, MAX_LINK_LATENCY_MS);
  }

  /** Ends every fault; connections that lost bytes are cut, so both ends start a fresh stream. */
  heal(): void {
    const lostBytes = this.state.dropping.size > 0;
    this.state.blocked = false;
    this.state.dropping.clear();
    this.state.latencyMs = 0;
    if (lostBytes) this.cut();
  }

  close(): Promise<void> {
    this.state.blocked = true;
    this.cut();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
