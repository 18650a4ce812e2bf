/**
 * Authentication of the admin HTTP port: one shared admin token, presented
 * as `Authorization: Bearer <token>`. Mutating endpoints (anything but GET
 * and HEAD) always need it; endpoints that return message contents (the
 * message browser) need it whenever a token is configured, since the data
 * is the applications', not the cluster's state (and, on a broker whose
 * clients authenticate, are refused without one); other read-only endpoints
 * need it only when the operator asks (`adminProtectReads`). Without a
 * configured token the mutating endpoints are refused outright, so an admin
 * port left open on a network cannot change the cluster.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/** How the admin port authenticates. */
export interface AdminAuthPolicy {
  /** The shared admin token; `undefined`: none configured (mutations refused). */
  token: string | undefined;
  /** Read-only endpoints need the token too. */
  protectReads: boolean;
  /**
   * The client port authenticates (`auth`): message contents are guarded by
   * ACLs there, so without a configured token the message endpoints are
   * refused rather than open to anyone reaching the admin port.
   */
  clientAuth?: boolean;
}

/**
 * What a request does, which decides when it needs the token: `read` the
 * cluster's state (only with `protectReads`), read `messages` (whenever a
 * token is configured), or `change` something (always; refused without a
 * configured token).
 */
export type AdminAccess = 'read' | 'messages' | 'change';

/** Why a request was refused: an HTTP status and a stable code for scripts. */
export interface AdminRefusal {
  status: 401 | 403;
  code: 'UNAUTHORIZED' | 'FORBIDDEN';
  message: string;
}

/** The header scheme the token travels in. */
export const ADMIN_AUTH_SCHEME = 'Bearer';

/** Shortest admin token accepted: a guessable token would be no protection. */
export const MIN_ADMIN_TOKEN_LENGTH = 16;

/**
 * Equal strings, in time that depends on neither's content nor length:
 * both are hashed first, so the comparison is over equal-length digests.
 */
export function tokensEqual(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

/** The token of an `Authorization: Bearer <token>` header, or `undefined` when absent or another scheme. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return match?.[1];
}

/** Whether a request may proceed: `undefined` when it may, else the refusal. */
export function checkAdminRequest(policy: AdminAuthPolicy, access: AdminAccess, authorization: string | undefined): AdminRefusal | undefined {
  if (access === 'read' && !policy.protectReads) return undefined;
  if (policy.token === undefined) {
    if (access === 'change') return { status: 403, code: 'FORBIDDEN', message: 'mutating admin endpoints are disabled: start the broker with --admin-token (or RELAYMQ_ADMIN_TOKEN) to enable them' };
    if (access === 'messages' && policy.clientAuth === true) {
      return { status: 403, code: 'FORBIDDEN', message: 'message contents are disabled on the admin port of a broker whose clients authenticate: start it with --admin-token (or RELAYMQ_ADMIN_TOKEN) to enable them' };
    }
    return undefined;
  }
  const given = bearerToken(authorization);
  if (given === undefined) {
    return { status: 401, code: 'UNAUTHORIZED', message: 'this admin endpoint needs the admin token: send "Authorization: Bearer <token>" (relaymq commands read --admin-token or RELAYMQ_ADMIN_TOKEN)' };
  }
  if (!tokensEqual(given, policy.token)) return { status: 401, code: 'UNAUTHORIZED', message: 'the admin token is not valid' };
  return undefined;
}
