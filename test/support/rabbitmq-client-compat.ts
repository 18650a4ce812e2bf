import { createRequire } from 'node:module';

/**
 * Makes `rabbitmq-stream-js-client` 1.0.0 connect to RabbitMQ 3.10 (Debian's
 * 3.10.8), for tests that use the client directly. The client sends
 * `ExchangeCommandVersions` (command 27, added in RabbitMQ 3.11) on every
 * connection; 3.10 logs "unknown command" and sends `Close`, which the
 * client cannot decode ("Unknown response 22", thrown from its socket
 * handler as an uncaught exception). Skipped for servers older than 3.11;
 * an undecodable frame destroys its connection instead of throwing.
 *
 * The backbone engine carries the same shim (engine/backbone/compat.ts on
 * the `backbone` branch); once both are on main this file should re-export
 * that one.
 */
let applied = false;

interface ConnectionLike {
  peerProperties?: { version?: string };
  socket?: { destroy(error?: Error): void };
}
interface ConnectionPrototype {
  exchangeCommandVersions(this: ConnectionLike): Promise<unknown>;
  received(this: ConnectionLike, data: Buffer): void;
}

export function applyClientCompat(): void {
  if (applied) return;
  applied = true;
  const require = createRequire(import.meta.url);
  const { Connection } = require('rabbitmq-stream-js-client/dist/connection.js') as { Connection: { prototype: ConnectionPrototype } };
  const exchange = Connection.prototype.exchangeCommandVersions;
  Connection.prototype.exchangeCommandVersions = async function (this: ConnectionLike) {
    if (/^3\.(9|10)\./.test(this.peerProperties?.version ?? '')) return true;
    return exchange.call(this);
  };
  const received = Connection.prototype.received;
  Connection.prototype.received = function (this: ConnectionLike, data: Buffer) {
    try {
      received.call(this, data);
    } catch (error) {
      this.socket?.destroy(error instanceof Error ? error : new Error(String(error)));
    }
  };
}
