import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { listenOn } from '../net/listen.js';

/** One route's answer. */
export interface AdminResponse {
  status: number;
  contentType: string;
  body: string;
}

/** GET routes of the admin server, by path; a route gets the query string's parameters. */
export type AdminRoutes = Record<string, (query: URLSearchParams) => AdminResponse | Promise<AdminResponse>>;

/** A JSON answer. */
export function json(value: unknown, status = 200): AdminResponse {
  return { status, contentType: 'application/json; charset=utf-8', body: `${JSON.stringify(value)}\n` };
}

/**
 * The admin HTTP server: GET only, fixed routes, no request bodies read.
 * It carries no authentication, so it should listen on a private interface.
 */
export class AdminServer {
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async listen(host: string, port: number, routes: AdminRoutes): Promise<AdminServer> {
    const server = createServer((req, res) => void answer(routes, req, res));
    // Keep-alive sockets from a dashboard would hold close() open; they are cheap to reopen.
    server.keepAliveTimeout = 2000;
    await listenOn(server, 'admin', host, port);
    return new AdminServer(server, (server.address() as AddressInfo).port);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

async function answer(routes: AdminRoutes, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://admin');
  const path = url.pathname;
  let response: AdminResponse;
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    response = json({ error: `method ${req.method} not allowed; the admin API is read-only` }, 405);
  } else {
    const route = routes[path];
    try {
      response = route === undefined ? json({ error: `no such endpoint ${path}` }, 404) : await route(url.searchParams);
    } catch (err) {
      response = json({ error: String(err) }, 500);
    }
  }
  res.writeHead(response.status, { 'content-type': response.contentType, 'cache-control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : response.body);
}
