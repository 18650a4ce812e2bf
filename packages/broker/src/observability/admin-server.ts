import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { listenOn } from '../net/listen.js';
import { ADMIN_AUTH_SCHEME, checkAdminRequest, type AdminAccess, type AdminAuthPolicy } from '../security/admin-token.js';

/** One route's answer. */
export interface AdminResponse {
  status: number;
  contentType: string;
  body: string;
  /** Extra response headers. */
  headers?: Record<string, string>;
}

/** GET routes of the admin server, by path; a route gets the query string's parameters. */
export type AdminRoutes = Record<string, (query: URLSearchParams) => AdminResponse | Promise<AdminResponse>>;

/** What a mutating route gets: the query string's parameters and the JSON body (`undefined` when none was sent). */
export interface AdminRequest {
  query: URLSearchParams;
  body: unknown;
}

/** Mutating routes (POST, PUT, PATCH, DELETE), by `"<METHOD> <path>"`, e.g. `"POST /api/topics"`. */
export type AdminMutations = Record<string, (request: AdminRequest) => AdminResponse | Promise<AdminResponse>>;

/** How the admin server authenticates and what it may change. */
export interface AdminServerOptions {
  auth: AdminAuthPolicy;
  mutations?: AdminMutations;
  /** GET routes that answer with message contents: they need the token whenever one is configured, reads protected or not. */
  messageRoutes?: ReadonlySet<string>;
}

/** Largest request body a mutating route reads: admin requests are small JSON objects. */
export const MAX_ADMIN_BODY_BYTES = 64 * 1024;

/**
 * Routes that stay open even when reads need the token: load balancers and
 * orchestrators probe the health routes, and the dashboard's page (`/`) is
 * static: it holds no data, and a browser cannot send a token to load it.
 * Its requests for data carry the token the operator enters.
 */
const ALWAYS_OPEN = new Set(['/', '/healthz', '/readyz']);

/** A JSON answer. */
export function json(value: unknown, status = 200): AdminResponse {
  return { status, contentType: 'application/json; charset=utf-8', body: `${JSON.stringify(value)}\n` };
}

/** A JSON error answer: `{ error, code }`, `code` a stable error code scripts can test. */
export function jsonError(status: number, code: string, message: string): AdminResponse {
  return json({ error: message, code }, status);
}

/**
 * The admin HTTP server: fixed routes. GET routes read; mutating routes
 * need the admin token (security/admin-token.ts), message routes need it
 * whenever one is configured, and so do GET routes but the health probes and
 * the dashboard's page when reads are protected.
 */
export class AdminServer {
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async listen(host: string, port: number, routes: AdminRoutes, options: AdminServerOptions = { auth: { token: undefined, protectReads: false } }): Promise<AdminServer> {
    const server = createServer((req, res) => void answer(routes, options, req, res));
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

async function answer(routes: AdminRoutes, options: AdminServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://admin');
  const path = url.pathname;
  const method = req.method ?? 'GET';
  const mutating = method !== 'GET' && method !== 'HEAD';
  let response: AdminResponse;
  try {
    response = await route(routes, options, method, mutating, path, url.searchParams, req);
  } catch (err) {
    response = err instanceof BodyError ? jsonError(err.status, 'INVALID_ARGUMENT', err.message) : jsonError(500, 'INTERNAL', String(err));
  }
  if (!req.complete) {
    // A body nobody read (a refused or unknown request): do not keep the connection for the rest of it.
    res.setHeader('connection', 'close');
  }
  res.writeHead(response.status, { ...response.headers, 'content-type': response.contentType, 'cache-control': 'no-store' });
  res.end(method === 'HEAD' ? undefined : response.body);
}

async function route(
  routes: AdminRoutes,
  options: AdminServerOptions,
  method: string,
  mutating: boolean,
  path: string,
  query: URLSearchParams,
  req: IncomingMessage,
): Promise<AdminResponse> {
  const mutation = mutating ? options.mutations?.[`${method} ${path}`] : undefined;
  const read = mutating ? undefined : routes[path];
  if (mutation === undefined && read === undefined) {
    if (mutating && Object.keys(options.mutations ?? {}).some((key) => key.endsWith(` ${path}`))) {
      return jsonError(405, 'INVALID_ARGUMENT', `method ${method} not allowed on ${path}`);
    }
    if (mutating && routes[path] !== undefined) return jsonError(405, 'INVALID_ARGUMENT', `method ${method} not allowed on ${path}; it is read-only`);
    return jsonError(404, 'INVALID_ARGUMENT', `no such endpoint ${method} ${path}`);
  }
  // Authentication comes before the body is read: an unauthenticated client cannot make the server buffer anything.
  const access: AdminAccess = mutating ? 'change' : options.messageRoutes?.has(path) === true ? 'messages' : 'read';
  const refusal = ALWAYS_OPEN.has(path) && !mutating ? undefined : checkAdminRequest(options.auth, access, req.headers.authorization);
  if (refusal !== undefined) {
    const response = jsonError(refusal.status, refusal.code, refusal.message);
    if (refusal.status === 401) response.headers = { 'www-authenticate': `${ADMIN_AUTH_SCHEME} realm="relaymq admin"` };
    return response;
  }
  if (read !== undefined) return read(query);
  return (mutation as NonNullable<typeof mutation>)({ query, body: await readJsonBody(req) });
}

class BodyError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The request's JSON body, at most {@link MAX_ADMIN_BODY_BYTES}; `undefined` when empty. */
async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_ADMIN_BODY_BYTES) throw new BodyError(413, `request body larger than ${MAX_ADMIN_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new BodyError(400, 'request body is not valid JSON');
  }
}
