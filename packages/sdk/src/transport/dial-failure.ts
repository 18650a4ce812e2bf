import { RelayError, type DialFailure, type DialFailureKind, type ErrorCode } from '../protocol/index.js';

/** Platform codes (Node's `ws` puts them on `event.error.code`) and what they mean to a user. */
const systemCodes: Readonly<Record<string, [DialFailureKind, string]>> = {
  ECONNREFUSED: ['refused', 'connection refused'],
  ENOTFOUND: ['not-found', 'host not found'],
  EAI_AGAIN: ['not-found', 'host name lookup failed for now'],
  EAI_NONAME: ['not-found', 'host not found'],
  EHOSTUNREACH: ['unreachable', 'host unreachable'],
  ENETUNREACH: ['unreachable', 'network unreachable'],
  ETIMEDOUT: ['unreachable', 'connection timed out'],
  ECONNRESET: ['closed', 'connection reset'],
  EPIPE: ['closed', 'connection reset'],
  EADDRNOTAVAIL: ['unreachable', 'address not available'],
};

/** TLS failures: OpenSSL's verification codes and Node's `ERR_TLS_*`/`ERR_SSL_*`. */
const tlsCode = /^(ERR_TLS_|ERR_SSL_|DEPTH_ZERO_|SELF_SIGNED_|UNABLE_TO_|CERT_|HOSTNAME_MISMATCH)/;

interface ErrorLike {
  code?: unknown;
  message?: unknown;
  errors?: unknown;
}

function asErrorLike(value: unknown): ErrorLike | undefined {
  return typeof value === 'object' && value !== null ? (value as ErrorLike) : undefined;
}

/** The platform's code of an error, looking into an `AggregateError` (Node tries each address of a host). */
function systemCodeOf(error: ErrorLike | undefined): string | undefined {
  if (error === undefined) return undefined;
  if (typeof error.code === 'string' && error.code !== '') return error.code;
  if (Array.isArray(error.errors)) return systemCodeOf(asErrorLike(error.errors[0]));
  return undefined;
}

/**
 * Reads the cause of a WebSocket `error` event without knowing the platform:
 * Node's `ws` gives an `ErrorEvent` whose `error` has a `code` (`ECONNREFUSED`)
 * or says `Unexpected server response: 401`; a browser gives a bare `Event`.
 */
export function socketErrorFailure(url: string, event: unknown): DialFailure {
  const outer = asErrorLike(event);
  // An event wraps the error (`event.error`); a thrown error is its own cause.
  const inner = outer !== undefined && outer.code === undefined && 'error' in outer ? asErrorLike((outer as { error: unknown }).error) : outer;
  const systemCode = systemCodeOf(inner);
  const text = [inner?.message, outer?.message].find((m): m is string => typeof m === 'string' && m !== '') ?? '';
  if (systemCode !== undefined) {
    const known = systemCodes[systemCode];
    if (known !== undefined) return { url, kind: known[0], systemCode, message: `${known[1]} (${systemCode})` };
    if (tlsCode.test(systemCode)) return { url, kind: 'tls', systemCode, message: `TLS failed: ${text || systemCode} (${systemCode})` };
    return { url, kind: 'unknown', systemCode, message: `${text || 'connection failed'} (${systemCode})` };
  }
  const status = /Unexpected server response: (\d{3})/.exec(text)?.[1];
  if (status === '401' || status === '403') return { url, kind: 'unauthorized', message: `the server answered HTTP ${status}` };
  if (status !== undefined) return { url, kind: 'rejected', message: `the server answered HTTP ${status}, not a WebSocket upgrade` };
  return { url, kind: 'unknown', message: text === '' ? 'connection failed; the platform gave no cause' : text };
}

/** The failure a dial error stands for: its own, or one read from its code (token refused, timeout…). */
export function failureOf(url: string, error: RelayError): DialFailure {
  const own = error.details.dialFailures?.find((failure) => failure.url === url);
  if (own !== undefined) return own;
  return { url, kind: kindOfCode(error.code), message: error.message };
}

function kindOfCode(code: ErrorCode): DialFailureKind {
  switch (code) {
    case 'UNAUTHORIZED':
    case 'FORBIDDEN':
      return 'unauthorized';
    case 'TIMEOUT':
      return 'timeout';
    case 'CONNECTION_CLOSED':
      return 'closed';
    default:
      return 'rejected';
  }
}

/** A dial error that names its URL and cause, carrying the failure in `details.dialFailures`. */
export function dialError(code: ErrorCode, failure: DialFailure, cause?: unknown): RelayError {
  return new RelayError(code, `cannot connect to ${failure.url}: ${failure.message}`, { dialFailures: [failure], cause });
}

/** One line per URL, e.g. `ws://127.0.0.1:7401 connection refused (ECONNREFUSED)`. */
export function describeFailures(failures: readonly DialFailure[]): string {
  return failures.map((failure) => `${failure.url}: ${failure.message}`).join('; ');
}
