import { createRequire } from 'node:module';

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
 * The engine also never sends `StreamStats` (3.11+).
 */
let applied = false;

interface ConnectionPrototype {
  exchangeCommandVersions(this: ConnectionLike): Promise<unknown>;
  received(this: ConnectionLike, data: Buffer): void;
}
interface ConnectionLike {
  peerProperties?: { version?: string };
  socket?: { destroy(err?: Error): void };
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
  const received = Connection.prototype.received;
  Connection.prototype.received = function (this: ConnectionLike, data: Buffer) {
    try {
      received.call(this, data);
    } catch (err) {
      this.socket?.destroy(err instanceof Error ? err : new Error(String(err)));
    }
  };
}
