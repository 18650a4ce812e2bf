import type { Server } from 'node:net';

/** Why a server could not listen: one line naming the port, and the system's code (`EADDRINUSE`...) kept for callers. */
export class ListenError extends Error {
  override readonly name = 'ListenError';

  constructor(
    /** The system error code: `EADDRINUSE`, `EACCES`, `EADDRNOTAVAIL`, ... */
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const CAUSES: Readonly<Record<string, string>> = {
  EADDRINUSE: 'is already in use',
  EACCES: 'needs privileges this process does not have',
  EADDRNOTAVAIL: 'is on an address this host does not have',
};

/**
 * Starts `server` listening on host:port. A failure rejects with a
 * {@link ListenError} such as `client port 127.0.0.1:7401 is already in use
 * (EADDRINUSE)`, so the CLI can print it as the one line it exits with.
 */
export function listenOn(server: Server, role: string, host: string, port: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const failed = (err: NodeJS.ErrnoException): void => {
      const code = err.code ?? 'UNKNOWN';
      const cause = CAUSES[code] ?? `cannot be listened on: ${err.message}`;
      reject(new ListenError(code, `${role} port ${host}:${port} ${cause} (${code})`, { cause: err }));
    };
    server.once('error', failed);
    server.listen(port, host, () => {
      server.off('error', failed);
      resolve();
    });
  });
}
