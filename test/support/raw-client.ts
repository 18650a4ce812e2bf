import WebSocket from 'ws';
import { PROTOCOL_VERSION, decodeBrokerFrame, encodeFrame, type BrokerFrame, type ClientFrame } from '@relaymq/sdk/protocol';
import { waitFor } from './wait.js';

/**
 * A bare WebSocket speaking the protocol by hand, for tests that need exact
 * frames (or exactly wrong ones) rather than the SDK's behaviour.
 */
export class RawClient {
  readonly frames: BrokerFrame[] = [];
  closed: { code: number; reason: string } | undefined;
  /** The broker's readiness as its welcome, then its latest cluster frame, said (absent: ready). */
  ready = false;

  private constructor(
    readonly ws: WebSocket,
    answerPings: boolean,
  ) {
    ws.on('message', (data: Buffer) => {
      const frame = decodeBrokerFrame(data, 64 * 1024 * 1024);
      this.frames.push(frame);
      if (frame.type === 'welcome' || frame.type === 'cluster') this.ready = frame.ready !== false;
      // As every client does: a broker drops a client silent for two heartbeat intervals (2 s under the fixture),
      // less than a new cluster under load takes to elect the leaders its first publish waits for.
      if (answerPings && frame.type === 'ping' && ws.readyState === WebSocket.OPEN) this.send({ type: 'pong', id: frame.id });
    });
    ws.on('close', (code, reason) => (this.closed = { code, reason: reason.toString() }));
    ws.on('error', () => {});
  }

  /**
   * Opens a connection; with `hello`, handshakes (presenting `options.token`) and waits for `welcome`.
   * Pings are answered unless `options.answerPings` is false (a test of a silent client).
   */
  static async open(url: string, hello = true, options: { token?: string; ws?: WebSocket.ClientOptions; answerPings?: boolean } = {}): Promise<RawClient> {
    const ws = new WebSocket(url, { maxPayload: 0, ...options.ws });
    // Listen before 'open': a frame in the same read as the upgrade (e.g. a refusal) must not be missed.
    const client = new RawClient(ws, options.answerPings ?? true);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    if (hello) {
      client.send({ type: 'hello', version: PROTOCOL_VERSION, clientId: 'raw', producerId: 'raw-producer', ...(options.token === undefined ? {} : { token: options.token }) });
      await client.next('welcome', 15_000); // a broker on a loaded machine (CI under load 15 took over 5 s)
    }
    return client;
  }

  /**
   * Resolves once the broker says it is ready (it knows a metadata leader), as the SDK prefers ready brokers:
   * before, a publish to a new topic waits for that leader only the peer request timeout (2 s), then is
   * refused NOT_READY, which a loaded machine's first election can outlast.
   */
  async whenReady(timeoutMs = 20_000): Promise<void> {
    await waitFor(() => this.ready || this.closed !== undefined, 'the broker to say it is ready', timeoutMs);
    if (!this.ready) throw new Error(`the connection closed (${this.closed?.code} ${this.closed?.reason}) before the broker was ready`);
  }

  send(frame: ClientFrame): void {
    this.ws.send(encodeFrame(frame));
  }

  sendBytes(bytes: Uint8Array | string): void {
    this.ws.send(bytes);
  }

  /** The next not-yet-taken frame of `type` (bounded wait). */
  async next<T extends BrokerFrame['type']>(type: T, timeoutMs = 5000): Promise<Extract<BrokerFrame, { type: T }>> {
    let index = -1;
    // A closed connection brings no more frames: say so at once rather than wait out the bound.
    const found = (): boolean => (index = this.frames.findIndex((f) => f.type === type)) >= 0 || this.closed !== undefined;
    await waitFor(found, `a ${type} frame`, timeoutMs).catch((err: Error) => {
      // Say what came instead (a refusal, say), not only that nothing did.
      throw new Error(`${err.message}; frames not taken: ${this.describeFrames()}`);
    });
    if (index < 0) {
      const { code, reason } = this.closed as { code: number; reason: string };
      throw new Error(`the connection closed (${code} ${reason}) before a ${type} frame came; frames not taken: ${this.describeFrames()}`);
    }
    return this.frames.splice(index, 1)[0] as Extract<BrokerFrame, { type: T }>;
  }

  private describeFrames(): string {
    return JSON.stringify(this.frames, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)).slice(0, 2000);
  }

  async waitClosed(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    await waitFor(() => this.closed !== undefined, 'the connection to close', timeoutMs);
    return this.closed as { code: number; reason: string };
  }

  close(): void {
    this.ws.terminate();
  }
}
