import { EventEmitter } from 'eventemitter3';
import {
  PROTOCOL_VERSION,
  RelayError,
  decodeBrokerFrame,
  encodeFrame,
  isErrorCode,
  type BrokerFrame,
  type ClientFrame,
  type ErrorCode,
  type WelcomeFrame,
} from '../protocol/index.js';
import type { TokenSource } from '../options.js';
import { OPEN, type WebSocketConstructor, type WebSocketLike } from '../transport/websocket.js';
import { dialError, socketErrorFailure } from '../transport/dial-failure.js';

/** Frames that answer a request, by the `id` of that request. */
type Reply = Extract<BrokerFrame, { type: 'subscribed' | 'unsubscribed' | 'committed' | 'topics' | 'pong' }>;
/** Requests a connection can correlate. */
type Request = Extract<ClientFrame, { type: 'subscribe' | 'unsubscribe' | 'commit' | 'group-commit' | 'group-heartbeat' | 'metadata' | 'ping' }>;

/** A request before the connection assigns its `id`. */
type Unsent<T> = T extends unknown ? Omit<T, 'id'> : never;

/** Frames the connection hands up to the client. */
export type PushFrame = Extract<BrokerFrame, { type: 'ack' | 'nack' | 'message' | 'cluster' | 'goaway' | 'assignment' | 'error' }>;

export interface ConnectionEvents {
  frame: (frame: PushFrame) => void;
  /** The connection ended; `error` says why. Emitted once. */
  closed: (error: RelayError) => void;
}

/** What a connection needs to open. */
export interface ConnectionSettings {
  WebSocket: WebSocketConstructor;
  clientId: string;
  producerId: string;
  token: TokenSource | undefined;
  requestTimeoutMs: number;
  pingIntervalMs: number;
}

/** Silence, while answers are owed, after which the broker is probed (or half the ping interval, when lower). */
const PROBE_AFTER_MS = 500;
/**
 * Least time a probe may go unanswered before the broker is judged dead (or
 * the ping interval, when lower): above the round trip of a link slowed by
 * 400 ms each way, the worst latency fault the chaos suite injects.
 */
const PROBE_TIMEOUT_MS = 1000;

/** Least time a ping may go unanswered before the broker counts as suspect (see {@link BrokerConnection.pingOverdue}). */
const PING_OVERDUE_MS = 250;

/** Largest frame accepted from a broker: its biggest batch of its biggest messages. */
const MAX_INBOUND_FRAME = 64 * 1024 * 1024;

interface Pending {
  /** Pings do not count as answers owed (see {@link BrokerConnection.requestsPending}). */
  ping: boolean;
  /** Runs synchronously on the reply, before any later frame is handled. */
  onReply: ((frame: Reply) => void) | undefined;
  resolve: (frame: Reply) => void;
  reject: (error: RelayError) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** Maps a WebSocket close to the error it stands for. */
function closeError(url: string, code: number, reason: string): RelayError {
  if (isErrorCode(reason)) return new RelayError(reason, `broker ${url} closed the connection: ${reason}`);
  if (code === 1009) return new RelayError('PAYLOAD_TOO_LARGE', `broker ${url} closed the connection: frame too large`);
  return new RelayError('CONNECTION_CLOSED', `connection to ${url} closed (${code}${reason ? ` ${reason}` : ''})`);
}

/**
 * One open, handshaken connection to one broker: sends frames, correlates
 * requests with replies, pings, and reports every other frame as an event.
 */
export class BrokerConnection extends EventEmitter<ConnectionEvents> {
  /** Last measured round trip, in ms. */
  rttMs: number | undefined;
  /** Smoothed round trip (as TCP's SRTT), in ms: how long a probe may take before silence means death. */
  private smoothedRttMs: number | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private lastInboundMs = Date.now();
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private lastPingMs = 0;
  private ended: RelayError | undefined;
  /**
   * Set by the owner: whether silence on this connection must be judged
   * quickly — answers are owed that another broker could give (publishes in
   * flight here, or in flight elsewhere and about to move here on a
   * failover). Then a silent broker is probed and judged dead within a
   * couple of seconds instead of two ping intervals (see {@link tick}).
   */
  awaitingAnswers: () => boolean = () => false;

  private constructor(
    readonly url: string,
    private readonly socket: WebSocketLike,
    readonly welcome: WelcomeFrame,
    private readonly settings: ConnectionSettings,
  ) {
    super();
  }

  /** The broker's id. */
  get brokerId(): string {
    return this.welcome.brokerId;
  }

  /** The broker's log when it does not survive a restart (see `WelcomeFrame.logId`). */
  get logId(): string | undefined {
    return this.welcome.logId;
  }

  /** Whether the connection is still usable. */
  get open(): boolean {
    return this.ended === undefined && this.socket.readyState === OPEN;
  }

  /**
   * Dials `url`, sends `hello` and resolves once `welcome` arrives. Rejects
   * with a `RelayError` (`NOT_CONNECTED`, `TIMEOUT` or the broker's code).
   */
  static open(url: string, settings: ConnectionSettings): Promise<BrokerConnection> {
    const { token } = settings;
    // A fixed token dials at once; a provider is asked for a fresh token first, on every dial.
    if (typeof token !== 'function') return BrokerConnection.dial(url, settings, token);
    return currentToken(token).then((current) => BrokerConnection.dial(url, settings, current));
  }

  private static dial(url: string, settings: ConnectionSettings, token: string | undefined): Promise<BrokerConnection> {
    return new Promise((resolve, reject) => {
      let socket: WebSocketLike;
      try {
        socket = new settings.WebSocket(url);
      } catch (err) {
        reject(dialError('NOT_CONNECTED', socketErrorFailure(url, err), err));
        return;
      }
      // Binary messages as bytes: `ws` (Node) hands over its Buffers as they are unless asked for an ArrayBuffer,
      // which costs a copy of every frame; a browser's WebSocket gives Blobs unless asked.
      if (socket.binaryType !== 'nodebuffer') socket.binaryType = 'arraybuffer';
      let settled = false;
      const fail = (error: RelayError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.onopen = socket.onmessage = socket.onclose = null;
        // Closing a socket still connecting makes `ws` emit 'error'; with no listener that is an uncaught exception.
        socket.onerror = () => {};
        try {
          socket.close();
        } catch {
          // already closed
        }
        reject(error);
      };
      const timer = setTimeout(
        () => fail(dialError('TIMEOUT', { url, kind: 'timeout', message: `no welcome (handshake answer) within ${settings.requestTimeoutMs} ms` })),
        settings.requestTimeoutMs,
      );
      // The cause (ECONNREFUSED, a TLS or DNS failure, HTTP 401) is read from the event, whatever the platform.
      socket.onerror = (event) => {
        const failure = socketErrorFailure(url, event);
        const cause = typeof event === 'object' && event !== null && 'error' in event ? (event as { error: unknown }).error : undefined;
        fail(dialError(failure.kind === 'unauthorized' ? 'UNAUTHORIZED' : 'NOT_CONNECTED', failure, cause ?? undefined));
      };
      socket.onclose = (event) => fail(closeError(url, event.code, event.reason));
      socket.onopen = () => {
        const hello: ClientFrame = { type: 'hello', version: PROTOCOL_VERSION, clientId: settings.clientId, producerId: settings.producerId };
        if (token !== undefined) hello.token = token;
        socket.send(encodeFrame(hello));
      };
      socket.onmessage = (event) => {
        let frame: BrokerFrame;
        try {
          frame = decodeBrokerFrame(toBytes(event.data), MAX_INBOUND_FRAME);
        } catch (err) {
          fail(err instanceof RelayError ? err : new RelayError('PROTOCOL_ERROR', String(err)));
          return;
        }
        if (frame.type === 'error') {
          fail(new RelayError(asCode(frame.code), `broker ${url} refused the handshake: ${frame.message}`));
          return;
        }
        if (frame.type !== 'welcome') {
          fail(new RelayError('PROTOCOL_ERROR', `expected welcome from ${url}, got ${frame.type}`));
          return;
        }
        settled = true;
        clearTimeout(timer);
        const connection = new BrokerConnection(url, socket, frame, settings);
        connection.attach();
        resolve(connection);
      };
    });
  }

  /** Whether a request other than a ping awaits its reply. */
  get requestsPending(): boolean {
    for (const pending of this.pending.values()) if (!pending.ping) return true;
    return false;
  }

  /**
   * Whether a ping has gone unanswered for longer than this link's round
   * trips explain (at least {@link PING_OVERDUE_MS}): the broker may be
   * stopped. Not yet a judgement of death (see {@link tick}), but reason
   * enough not to move traffic here while another broker answers.
   */
  pingOverdue(now = Date.now()): boolean {
    return this.lastPingMs > this.lastInboundMs && now - this.lastPingMs >= Math.max(PING_OVERDUE_MS, 2 * (this.smoothedRttMs ?? 0));
  }

  /** Sends a frame; returns false when the connection is no longer open. */
  send(frame: ClientFrame): boolean {
    if (!this.open) return false;
    this.socket.send(encodeFrame(frame));
    return true;
  }

  /**
   * Sends a request and resolves with its reply; rejects on an `error` reply,
   * timeout or close. `onReply` sees the reply synchronously, before any frame
   * after it (a promise callback would run only after frames that arrived in
   * the same read). `timeoutMs`: this request's own bound (the request
   * timeout unless given).
   */
  request(frame: Unsent<Request>, onReply?: (frame: Reply) => void, timeoutMs = this.settings.requestTimeoutMs): Promise<Reply> {
    if (this.ended !== undefined) return Promise.reject(this.ended);
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RelayError('TIMEOUT', `${frame.type} to ${this.url} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { ping: frame.type === 'ping', onReply, resolve, reject, timer });
      this.send({ ...frame, id } as Request);
    });
  }

  /** Closes the connection; `closed` is emitted with `reason`. */
  close(reason: RelayError = new RelayError('CLIENT_CLOSED', 'closed by the client')): void {
    if (this.ended !== undefined) return;
    try {
      this.socket.close(1000, 'bye');
    } catch {
      // already closing
    }
    this.end(reason);
  }

  private attach(): void {
    this.lastInboundMs = Date.now();
    this.socket.onmessage = (event) => this.receive(event.data);
    this.socket.onclose = (event) => this.end(closeError(this.url, event.code, event.reason));
    this.socket.onerror = () => {}; // followed by onclose
    // Silence is judged on a finer tick than pings go out, so a dead broker is noticed at twice the
    // interval, not up to three times it, and a probe is sent and judged on time (the publisher's failover waits on this).
    this.pingTimer = setInterval(() => this.tick(), Math.max(10, Math.floor(Math.min(this.settings.pingIntervalMs, PROBE_AFTER_MS) / 4)));
  }

  /**
   * Judges silence and sends pings. A broker silent for twice the ping
   * interval is dead. When answers are owed (see {@link awaitingAnswers}), a
   * healthy broker would have sent something within milliseconds: after
   * {@link PROBE_AFTER_MS} of silence it is probed with a ping at once, and
   * once that probe has gone unanswered for {@link probeTimeoutMs} it is
   * judged dead — a stopped broker (SIGSTOP, a frozen VM) keeps its TCP
   * connection open, and every publish waits for this judgement. The probe's
   * time allows for a slow link (a probe answered late is not a dead broker:
   * failing over from it would only stall its partitions' publishes longer).
   */
  private tick(): void {
    const now = Date.now();
    const interval = this.settings.pingIntervalMs;
    const silentMs = now - this.lastInboundMs;
    if (silentMs > 2 * interval) {
      this.close(new RelayError('CONNECTION_CLOSED', `broker ${this.url} silent for ${2 * interval} ms`));
      return;
    }
    if (silentMs >= Math.min(interval / 2, PROBE_AFTER_MS) && this.awaitingAnswers()) {
      const probed = this.lastPingMs > this.lastInboundMs;
      if (!probed) {
        this.ping(now);
        return;
      }
      const probeAgeMs = now - this.lastPingMs;
      if (probeAgeMs >= this.probeTimeoutMs()) {
        this.close(new RelayError('CONNECTION_CLOSED', `broker ${this.url} silent for ${silentMs} ms while answers are owed; a ping went unanswered for ${probeAgeMs} ms`));
        return;
      }
    }
    if (now - this.lastPingMs >= interval) this.ping(now);
  }

  /**
   * How long a probe may go unanswered before the broker is judged dead:
   * {@link PROBE_TIMEOUT_MS} (or the ping interval, when set lower), or three
   * smoothed round trips on a link that is slow all the time.
   */
  private probeTimeoutMs(): number {
    return Math.max(Math.min(this.settings.pingIntervalMs, PROBE_TIMEOUT_MS), 3 * (this.smoothedRttMs ?? 0));
  }

  private ping(sentMs: number): void {
    this.lastPingMs = sentMs;
    this.request({ type: 'ping' }).then(
      () => {
        const rtt = Date.now() - sentMs;
        this.rttMs = rtt;
        this.smoothedRttMs = this.smoothedRttMs === undefined ? rtt : 0.875 * this.smoothedRttMs + 0.125 * rtt;
      },
      () => {}, // a lost ping is judged by silence above
    );
  }

  private receive(data: unknown): void {
    this.lastInboundMs = Date.now();
    let frame: BrokerFrame;
    try {
      frame = decodeBrokerFrame(toBytes(data), MAX_INBOUND_FRAME);
    } catch (err) {
      this.close(err instanceof RelayError ? err : new RelayError('PROTOCOL_ERROR', String(err)));
      return;
    }
    switch (frame.type) {
      case 'subscribed':
      case 'unsubscribed':
      case 'committed':
      case 'topics':
      case 'pong':
        this.settle(frame.id, frame);
        return;
      case 'error':
        if (frame.id !== undefined) this.settle(frame.id, new RelayError(asCode(frame.code), frame.message));
        else if (frame.subscription !== undefined) this.emit('frame', frame); // one subscription ended (subscriber.ts)
        else this.close(new RelayError(asCode(frame.code), `broker ${this.url}: ${frame.message}`));
        return;
      case 'ping':
        this.send({ type: 'pong', id: frame.id });
        return;
      case 'welcome':
        this.close(new RelayError('PROTOCOL_ERROR', `unexpected second welcome from ${this.url}`));
        return;
      default:
        this.emit('frame', frame);
    }
  }

  private settle(id: number, outcome: Reply | RelayError): void {
    const pending = this.pending.get(id);
    if (pending === undefined) return;
    this.pending.delete(id);
    clearTimeout(pending.timer);
    if (outcome instanceof RelayError) {
      pending.reject(outcome);
      return;
    }
    pending.onReply?.(outcome);
    pending.resolve(outcome);
  }

  private end(error: RelayError): void {
    if (this.ended !== undefined) return;
    this.ended = error;
    clearInterval(this.pingTimer);
    this.socket.onmessage = this.socket.onclose = null;
    this.socket.onerror = () => {}; // a late socket error after the end must not be an uncaught exception (`ws`)
    for (const [id, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(error);
      this.pending.delete(id);
    }
    this.emit('closed', error);
  }
}

/** The token to present now: the string, or what the provider returns for this dial. */
async function currentToken(source: () => string | Promise<string>): Promise<string> {
  let token: unknown;
  try {
    token = await source();
  } catch (err) {
    throw new RelayError('UNAUTHORIZED', `the token provider failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  if (typeof token !== 'string' || token === '') throw new RelayError('UNAUTHORIZED', 'the token provider returned no token');
  return token;
}

function asCode(code: string): ErrorCode {
  return isErrorCode(code) ? code : 'INTERNAL';
}

function toBytes(data: unknown): Uint8Array {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (data instanceof Uint8Array) return data;
  throw new RelayError('PROTOCOL_ERROR', 'expected a binary message');
}
