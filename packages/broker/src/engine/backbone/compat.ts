import { createRequire } from 'node:module';
import type { Client } from 'rabbitmq-stream-js-client';
import { RelayError } from '@relaymq/sdk/protocol';

/**
 * Makes `rabbitmq-stream-js-client` 1.0 usable against RabbitMQ 3.9/3.10
 * (Debian's 3.10.8 here). The client sends `ExchangeCommandVersions`
 * (a 3.11 command) on every connection and 3.10 closes a connection on an
 * unknown command; and a server-sent `Close` frame makes the client throw
 * from its socket handler, which would end the whole broker process.
 * Applied once, before the first connection:
 * - the version exchange is skipped when the server says it is older than 3.11;
 * - a frame the client cannot decode destroys that connection (its close
 *   listeners run and the engine reconnects) instead of throwing.
 * - when a stream's replicas change the client closes its consumers and
 *   publishers from an event callback whose rejection ("Consumer ... does
 *   not exist" when the engine closed it first) nobody handles; an
 *   unhandled rejection would end the process, so it is dropped.
 * - the client's connection pool keys connections by host without the port
 *   and keeps a connection whose socket died: nodes sharing a host name
 *   (every node on loopback, nodes behind one name) got each other's
 *   connections, and a dead node's connection was handed out forever. The
 *   pool now keys by host and port and skips closed connections, and
 *   consumers read from the stream's leader (see patchPool).
 * - a request waits for its response with no bound and nothing answers it
 *   when the connection's socket closes: a request in flight when a node
 *   died (a metadata query on the locator connection, a subscribe) hung
 *   until the engine's request timeout (10 s) ran out, so a SIGKILLed first
 *   node stalled publishing for 10 s. Requests waiting on a connection now
 *   fail as soon as its socket closes, and a request on a closed connection
 *   fails at once (see patchFailFast); the request timeout is left for peers
 *   that hang with their socket open.
 * - the heartbeat runs from a timer as an async function whose failure
 *   nobody handles: after missed heartbeats it closes the connection, and
 *   that close's write to a reset socket (ECONNRESET) was an unhandled
 *   rejection, ending the process (seen in a test cutting a gateway off
 *   through a proxy). A failed heartbeat now destroys the connection's
 *   socket, so its close listeners run and the engine reconnects
 *   (patchHeartbeat). The same for the async callbacks it runs for each
 *   delivery (a credit write to a closing socket, EPIPE) and consumer update
 *   (patchDeliveryCallbacks).
 * - the handshake runs in an async 'connect' listener whose failure nobody
 *   handles: a write to a socket the server closed meanwhile (RabbitMQ
 *   closes a connection whose handshake it finds too slow, as on a loaded
 *   machine) was an unhandled rejection (`write EPIPE`, seen failing a CI
 *   run of backbone-meta.test.ts). A failed handshake step now destroys
 *   the socket with its error, which fails the connect (patchHandshake).
 * - a request whose socket write fails rejected with the bare socket error
 *   (`write EPIPE`, which failed a CI run of backbone-meta.test.ts: no
 *   caller retries it); it now fails `NOT_READY`, as a request on a closed
 *   connection does (patchFailFast).
 * The engine also never sends `StreamStats` (3.11+).
 */
let applied = false;

interface ConnectionPrototype {
  exchangeCommandVersions(this: ConnectionLike): Promise<unknown>;
  registerSocketListeners(this: ConnectionLike): Promise<unknown>;
  waitResponse(this: ConnectionLike, params: unknown): Promise<unknown>;
  sendAndWait(this: ConnectionLike, cmd: unknown): Promise<unknown>;
  received(this: ConnectionLike, data: Buffer): void;
  registerForClosePublisher(this: ConnectionLike, id: string, stream: string, callback: () => Promise<void>): void;
  registerForCloseConsumer(this: ConnectionLike, id: string, stream: string, callback: () => Promise<void>): void;
}
interface ConnectionLike {
  peerProperties?: { version?: string };
  socket?: { destroy(err?: Error): void; on(event: string, listener: (...args: unknown[]) => unknown): unknown; emit(event: 'error', err: Error): boolean; destroyed: boolean };
  waitingResponses: Array<{ promise: { reject(err: unknown): void } }>;
  params: { hostname: string; port: number };
}

export function applyClientCompat(): void {
  if (applied) return;
  applied = true;
  const require = createRequire(import.meta.url);
  const { Connection } = require('rabbitmq-stream-js-client/dist/connection.js') as { Connection: { prototype: ConnectionPrototype } };
  const exchange = Connection.prototype.exchangeCommandVersions;
  Connection.prototype.exchangeCommandVersions = async function (this: ConnectionLike) {
    const version = this.peerProperties?.version ?? '';
    if (/^3\.(9|10)\./.test(version)) return true;
    return exchange.call(this);
  };
  for (const name of ['registerForClosePublisher', 'registerForCloseConsumer'] as const) {
    const register = Connection.prototype[name];
    Connection.prototype[name] = function (this: ConnectionLike, id: string, stream: string, callback: () => Promise<void>) {
      register.call(this, id, stream, () => Promise.resolve().then(callback).catch(() => undefined));
    };
  }
  patchPool(require);
  patchFailFast(Connection.prototype);
  patchHandshake(Connection.prototype);
  patchHeartbeat(require);
  patchDeliveryCallbacks(require);
  const received = Connection.prototype.received;
  Connection.prototype.received = function (this: ConnectionLike, data: Buffer) {
    try {
      received.call(this, data);
    } catch (err) {
      this.socket?.destroy(err instanceof Error ? err : new Error(String(err)));
    }
  };
}

/**
 * See {@link applyClientCompat}: the client hands its socket decoder async
 * callbacks for deliveries (which write credit requests) and consumer
 * updates, and drops their promises; a credit write to a socket closing under
 * it (EPIPE, seen when a short-lived read consumer was closed mid-delivery)
 * rejected unhandled, which ends the process. Their failures are dropped: the
 * connection is going away, and its close listeners take it from there.
 */
function patchDeliveryCallbacks(require: NodeRequire): void {
  const { Client } = require('rabbitmq-stream-js-client/dist/client.js') as { Client: { prototype: Record<string, unknown> } };
  for (const name of ['getDeliverV1Callback', 'getDeliverV2Callback', 'getConsumerUpdateCallback']) {
    const factory = Client.prototype[name] as (this: unknown, connectionId: string) => (response: unknown) => Promise<unknown>;
    Client.prototype[name] = function (this: unknown, connectionId: string) {
      const callback = factory.call(this, connectionId);
      return (response: unknown) => callback(response).catch(() => undefined);
    };
  }
}

/** See {@link applyClientCompat}: a failed heartbeat ends its connection instead of rejecting unhandled. */
function patchHeartbeat(require: NodeRequire): void {
  const { Heartbeat } = require('rabbitmq-stream-js-client/dist/heartbeat.js') as { Heartbeat: { prototype: HeartbeatLike } };
  const heartbeat = Heartbeat.prototype.heartbeat;
  Heartbeat.prototype.heartbeat = function (this: HeartbeatLike) {
    return heartbeat.call(this).catch((err: unknown) => {
      this.connection.socket?.destroy(err instanceof Error ? err : new Error(String(err)));
    });
  };
}
interface HeartbeatLike {
  connection: ConnectionLike;
  heartbeat(this: HeartbeatLike): Promise<void>;
}

/** See {@link applyClientCompat}: requests of a connection whose socket closed fail at once instead of waiting forever. */
function patchFailFast(proto: ConnectionPrototype): void {
  const register = proto.registerSocketListeners;
  proto.registerSocketListeners = function (this: ConnectionLike) {
    const started = register.call(this);
    let established = false;
    started.then(() => (established = true), () => undefined);
    const socket = this.socket;
    socket?.on('close', () => {
      const lost = connectionClosed(this.params);
      // Closed during the handshake: the connect promise fails (its handshake requests stay unanswered; they have no other waiter).
      if (!established) {
        socket.emit('error', lost);
        return;
      }
      for (const waiting of this.waitingResponses.splice(0)) waiting.promise.reject(lost);
    });
    return started;
  };
  const waitResponse = proto.waitResponse;
  proto.waitResponse = function (this: ConnectionLike, params: unknown) {
    if (this.socket?.destroyed === true) return Promise.reject(connectionClosed(this.params));
    return waitResponse.call(this, params);
  };
  // A request whose write fails (EPIPE, ECONNRESET: the server closed the socket under it) failed with the bare socket
  // error, which no caller retries and which reached a test as `write EPIPE`; it is the same lost connection.
  const sendAndWait = proto.sendAndWait;
  proto.sendAndWait = function (this: ConnectionLike, cmd: unknown) {
    return sendAndWait.call(this, cmd).catch((err: unknown) => {
      throw isSocketError(err) ? connectionClosed(this.params, err) : err;
    });
  };
}

/** An error of the socket itself (it names the system call that failed), not an answer of the server. */
function isSocketError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).syscall === 'string';
}

/** See {@link applyClientCompat}: a handshake step that fails destroys the socket (failing the connect) instead of rejecting unhandled. */
function patchHandshake(proto: ConnectionPrototype): void {
  const register = proto.registerSocketListeners;
  proto.registerSocketListeners = function (this: ConnectionLike) {
    const socket = this.socket;
    if (socket === undefined) return register.call(this);
    // The client adds its listeners synchronously here: its 'connect' listener (the handshake) is wrapped on the way in.
    const on = socket.on;
    socket.on = function (this: unknown, event: string, listener: (...args: unknown[]) => unknown) {
      if (event !== 'connect') return on.call(this, event, listener);
      return on.call(this, event, (...args: unknown[]) => {
        Promise.resolve(listener.apply(this, args)).catch((err: unknown) => socket.destroy(err instanceof Error ? err : new Error(String(err))));
      });
    };
    try {
      return register.call(this);
    } finally {
      delete (socket as { on?: unknown }).on; // the socket's own method again (from its prototype)
      if (socket.on !== on) socket.on = on;
    }
  };
}

/** `NOT_READY`: the request may succeed again on the connection that replaces this one. */
function connectionClosed(params: { hostname: string; port: number }, cause?: Error): RelayError {
  const why = cause === undefined ? '' : ` (${cause.message})`;
  return new RelayError('NOT_READY', `the backbone connection to ${params.hostname}:${params.port} closed${why}`, cause === undefined ? {} : { cause });
}

interface NodeInfo {
  host: string;
  port: number;
}
interface PooledConnection {
  readonly ready: boolean;
  getConnectionInfo(): { writable: boolean };
}
interface ClientLike {
  queryMetadata(params: { streams: string[] }): Promise<Array<{ leader?: NodeInfo; replicas?: NodeInfo[] }>>;
  pool: { connectionsMap: Map<string, PooledConnection[]>; getConnection(...args: unknown[]): Promise<PooledConnection> };
  locatorConnection: { vhost: string };
  getConnectionOnChosenNode(isPublisher: boolean, stream: string, node: NodeInfo, metadata: unknown, listener: unknown): Promise<PooledConnection>;
}

/** See {@link applyClientCompat}: connections pooled per host and port, dead ones never handed out. */
function patchPool(require: NodeJS.Require): void {
  const { Client } = require('rabbitmq-stream-js-client/dist/client.js') as { Client: { prototype: Record<string, unknown> } };
  Client.prototype.getConnection = async function (this: ClientLike, streamName: string, purpose: 'publisher' | 'consumer', listener: unknown) {
    const [metadata] = await this.queryMetadata({ streams: [streamName] });
    const replicas = metadata?.replicas ?? [];
    // Publishers must reach the stream's leader. Consumers too, while it has one: a replica delivers a chunk only once
    // it learns the chunk is committed, which can wait for the next write, so a gateway reading from a replica might not
    // see (and acknowledge) the last messages of a stream that went quiet.
    const node = metadata?.leader ?? (purpose === 'publisher' ? undefined : replicas[Math.floor(Math.random() * replicas.length)]);
    if (node === undefined) throw new Error('Stream was not found on any node');
    const address = `${node.host}:${node.port}`;
    for (const [key, list] of this.pool.connectionsMap) this.pool.connectionsMap.set(key, list.filter((c) => c.ready && c.getConnectionInfo().writable));
    return this.pool.getConnection(purpose, streamName, this.locatorConnection.vhost, address, () =>
      this.getConnectionOnChosenNode(purpose === 'publisher', streamName, node, metadata, listener),
    );
  };
}

/**
 * Stream protocol connections `client` has open: its main (locator)
 * connection and the distinct live ones of its pool (consumers and
 * publishers share them per node and stream). Read from the client's
 * internals, as {@link patchPool} does; for the console.
 */
export function openConnections(client: Client): number {
  const internals = client as unknown as { locatorConnection?: Partial<PooledConnection>; pool?: Partial<ClientLike['pool']> };
  const live = new Set<PooledConnection>();
  for (const list of internals.pool?.connectionsMap?.values() ?? []) for (const c of list) if (c.ready && c.getConnectionInfo().writable) live.add(c);
  return live.size + (internals.locatorConnection?.ready === true ? 1 : 0);
}
