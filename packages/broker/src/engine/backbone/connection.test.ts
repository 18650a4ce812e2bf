import { describe, expect, it } from 'vitest';
import type { Client } from 'rabbitmq-stream-js-client';
import { RelayError } from '@relaymq/sdk/protocol';
import { BackboneConnection } from './connection.js';

/** A connection whose client is `client` (as after a successful connect), without dialing RabbitMQ. */
function connectedTo(client: object): BackboneConnection {
  const connection = new BackboneConnection({ hosts: [{ host: '127.0.0.1', port: 1 }], username: 'u', password: 'p', vhost: '/' }, () => undefined);
  (connection as unknown as { current: object }).current = client;
  return connection;
}

describe('BackboneConnection.retrying', () => {
  it('runs a request again while a backbone connection closes under it (NOT_READY), then answers', async () => {
    const connection = connectedTo({});
    let calls = 0;
    const answer = await connection.retrying(5_000, async (client: Client) => {
      expect(client).toBeDefined();
      if (++calls < 3) throw new RelayError('NOT_READY', 'the backbone connection to 127.0.0.1:1 closed');
      return 'created';
    });
    expect(answer).toBe('created');
    expect(calls).toBe(3);
  });

  it('does not run a request again for other failures (a timeout would outlast its bound; a refusal stays one)', async () => {
    const connection = connectedTo({});
    for (const failure of [new RelayError('TIMEOUT', 'no answer'), new Error('stream refused')]) {
      let calls = 0;
      await expect(connection.retrying(5_000, async () => {
        calls++;
        throw failure;
      })).rejects.toBe(failure);
      expect(calls).toBe(1);
    }
  });

  it('gives up once its time is spent, with the last failure', async () => {
    const connection = connectedTo({});
    let calls = 0;
    const started = Date.now();
    await expect(connection.retrying(300, async () => {
      calls++;
      throw new RelayError('NOT_READY', 'closed again');
    })).rejects.toMatchObject({ code: 'NOT_READY' });
    expect(calls).toBeGreaterThan(1);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
