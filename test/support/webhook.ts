import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'vitest';
import type { AlertNotification } from '@relaymq/broker';
import type { Fixture } from './cluster.js';

/** A webhook receiver on loopback, closed by `fixture.cleanup()`. */
export interface WebhookReceiver {
  url: string;
  /** Notifications received (answered 204), in order. */
  received: AlertNotification[];
  /** Requests received, refused ones included. */
  attempts: number;
}

/** A real webhook receiver; the first `failFirst` requests are answered 503. */
export async function webhookReceiver(fixture: Fixture, failFirst = 0): Promise<WebhookReceiver> {
  const state: WebhookReceiver = { url: '', received: [], attempts: 0 };
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      state.attempts++;
      if (state.attempts <= failFirst) {
        res.writeHead(503).end();
        return;
      }
      expect(req.method).toBe('POST');
      expect(req.headers['content-type']).toBe('application/json');
      state.received.push(JSON.parse(body) as AlertNotification);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  fixture.defer(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  return state;
}

/** The `firing` notifications of the condition `key`. */
export const firing = (r: Pick<WebhookReceiver, 'received'>, key: string): AlertNotification[] => r.received.filter((n) => n.key === key && n.status === 'firing');
