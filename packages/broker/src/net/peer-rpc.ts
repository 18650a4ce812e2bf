import { RelayError, isErrorCode } from '@relaymq/sdk/protocol';
import type { PeerTransport } from './peer-transport.js';

/** The channel requests and replies travel on, unless the RPC is given its own. */
const DEFAULT_CHANNEL = 'rpc';

/** How a method this broker does not serve is refused (`INVALID_ARGUMENT`): older brokers say it too, so callers can tell. */
const UNKNOWN_METHOD = 'unknown peer method';

/**
 * Whether `err` is a peer's refusal of `method` as unknown: a broker of an older
 * version, which a caller of a newer method answers the way it did before.
 */
export function isUnknownMethod(err: unknown, method: string): boolean {
  return err instanceof RelayError && err.code === 'INVALID_ARGUMENT' && err.message === `${UNKNOWN_METHOD} ${method}`;
}

/** Serves one method: gets the (unvalidated) request body, returns the reply body or throws a RelayError. */
export type RpcHandler = (from: string, body: unknown) => Promise<unknown>;

interface Pending {
  /** The broker asked: its link going down fails the call at once. */
  peer: string;
  resolve: (body: unknown) => void;
  reject: (error: RelayError) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** Wire shapes: a request names its method; a reply carries either a body or an error. */
type RpcFrame =
  | { kind: 'req'; id: number; method: string; body: unknown }
  | { kind: 'res'; id: number; body: unknown }
  /** `leader`: the hint a refusal carries (the leader, or a broker that reaches it), passed on hop by hop. */
  | { kind: 'err'; id: number; code: string; message: string; leader?: string };

/** Most requests awaiting replies at once; beyond it calls fail fast instead of queueing. */
const MAX_PENDING = 100_000;

/**
 * Request/response between brokers over the peer transport (e.g. a publish
 * forwarded to a partition's leader). Requests carry ids; a reply that never
 * comes fails the call with `TIMEOUT`, a peer that is down with
 * `NOT_CONNECTED` — also a call already sent when the link to its peer goes
 * down, at once rather than after its timeout (the request may have been
 * carried out: every method is safe to retry). Handlers' RelayErrors travel
 * back with their code.
 */
export class PeerRpc {
  private readonly handlers = new Map<string, RpcHandler>();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private readonly onMessage = (from: string, channel: string, payload: unknown): void => {
    if (channel === this.channel) this.receive(from, payload);
  };
  /**
   * A peer that went away will not answer: fail its calls now, so that a
   * publish forwarded to a leader killed meanwhile is retried with the next
   * leader at once instead of stalling for the whole timeout.
   */
  private readonly onDown = (peer: string): void => {
    for (const [id, pending] of this.pending) {
      if (pending.peer !== peer) continue;
      clearTimeout(pending.timer);
      this.pending.delete(id);
      pending.reject(new RelayError('NOT_CONNECTED', `broker ${peer} went away before answering`));
    }
  };

  /**
   * @param channel - the transport channel of this RPC's frames. Request ids
   * are per instance, so two instances on one transport need two channels
   * (operations asks peers for their state on its own, see
   * observability/peer-reports.ts).
   */
  constructor(
    private readonly transport: PeerTransport,
    private readonly channel: string = DEFAULT_CHANNEL,
  ) {
    transport.on('message', this.onMessage);
    transport.on('down', this.onDown);
  }

  handle(method: string, handler: RpcHandler): void {
    this.handlers.set(method, handler);
  }

  call(peer: string, method: string, body: unknown, timeoutMs: number): Promise<unknown> {
    if (this.pending.size >= MAX_PENDING) return Promise.reject(new RelayError('LIMIT_EXCEEDED', 'too many requests to peers in flight'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RelayError('TIMEOUT', `${method} to broker ${peer} unanswered after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { peer, resolve, reject, timer });
      const frame: RpcFrame = { kind: 'req', id, method, body };
      if (!this.transport.send(peer, this.channel, frame)) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new RelayError('NOT_CONNECTED', `broker ${peer} is not connected`));
      }
    });
  }

  close(): void {
    this.transport.off('message', this.onMessage);
    this.transport.off('down', this.onDown);
    for (const [id, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(new RelayError('SHUTTING_DOWN', 'broker is shutting down'));
      this.pending.delete(id);
    }
  }

  private receive(from: string, payload: unknown): void {
    const frame = asFrame(payload);
    if (frame === undefined) return; // malformed: a request without an id cannot even be answered
    if (frame.kind === 'req') {
      void this.serve(from, frame.id, frame.method, frame.body);
      return;
    }
    const pending = this.pending.get(frame.id);
    if (pending === undefined) return; // late reply to a call that timed out
    this.pending.delete(frame.id);
    clearTimeout(pending.timer);
    if (frame.kind === 'res') pending.resolve(frame.body);
    else pending.reject(new RelayError(isErrorCode(frame.code) ? frame.code : 'INTERNAL', frame.message, frame.leader === undefined ? {} : { leader: frame.leader }));
  }

  private async serve(from: string, id: number, method: string, body: unknown): Promise<void> {
    const handler = this.handlers.get(method);
    let reply: RpcFrame;
    try {
      if (handler === undefined) throw new RelayError('INVALID_ARGUMENT', `${UNKNOWN_METHOD} ${method}`);
      reply = { kind: 'res', id, body: await handler(from, body) };
    } catch (err) {
      const error = err instanceof RelayError ? err : new RelayError('INTERNAL', 'peer request failed', { cause: err });
      reply = { kind: 'err', id, code: error.code, message: error.message };
      if (error.details.leader !== undefined) reply.leader = error.details.leader;
    }
    this.transport.send(from, this.channel, reply);
  }
}

function asFrame(payload: unknown): RpcFrame | undefined {
  if (typeof payload !== 'object' || payload === null) return undefined;
  const o = payload as Record<string, unknown>;
  if (typeof o.id !== 'number' || !Number.isSafeInteger(o.id)) return undefined;
  if (o.kind === 'req' && typeof o.method === 'string') return { kind: 'req', id: o.id, method: o.method, body: o.body };
  if (o.kind === 'res') return { kind: 'res', id: o.id, body: o.body };
  if (o.kind === 'err' && typeof o.code === 'string' && typeof o.message === 'string') {
    const frame: RpcFrame = { kind: 'err', id: o.id, code: o.code, message: o.message };
    if (typeof o.leader === 'string') frame.leader = o.leader;
    return frame;
  }
  return undefined;
}
