import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JWK, type JWTVerifyGetKey } from 'jose';
import { RelayError } from '@relaymq/sdk/protocol';
import type { AuthOptions, JwtAuthOptions } from '../options.js';

/** Who a connection authenticated as. */
export interface Principal {
  name: string;
  /** When its credential expires (JWT `exp`, plus `clockToleranceSec` as verification allowed); the connection is closed then. */
  expiresAtMs?: number;
}

const JWT_ALGORITHMS_SECRET = ['HS256'];
const JWT_ALGORITHMS_JWKS = ['RS256', 'ES256'];
/** Shape of a compact JWS: three base64url parts. */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('base64');
}

function unauthorized(message: string): RelayError {
  return new RelayError('UNAUTHORIZED', message);
}

/**
 * Checks the token of a `hello`. Static tokens are kept hashed and looked up
 * by hash; JWTs are verified with jose (signature, algorithm, `exp` which is
 * required, `nbf`, and `iss`/`aud` when configured). Every failure is an
 * `UNAUTHORIZED` whose message never echoes the token.
 */
export class Authenticator {
  private readonly tokens = new Map<string, string>();
  private readonly jwtKey: JWTVerifyGetKey | undefined;
  private readonly algorithms: string[] = [];

  constructor(private readonly options: AuthOptions) {
    for (const [token, principal] of Object.entries(options.tokens ?? {})) this.tokens.set(hashToken(token), principal);
    const jwt = options.jwt;
    if (jwt === undefined) return;
    const secret = jwt.secret === undefined ? undefined : new TextEncoder().encode(jwt.secret);
    const jwks = jwt.jwksFile === undefined ? undefined : createLocalJWKSet(readJwks(jwt.jwksFile));
    if (secret !== undefined) this.algorithms.push(...JWT_ALGORITHMS_SECRET);
    if (jwks !== undefined) this.algorithms.push(...JWT_ALGORITHMS_JWKS);
    this.jwtKey = async (header, token) => {
      if (header.alg === 'HS256' && secret !== undefined) return secret;
      if (jwks !== undefined) return jwks(header, token);
      throw unauthorized(`token algorithm ${String(header.alg)} is not accepted`);
    };
  }

  /** The principal `token` stands for; rejects with `UNAUTHORIZED`. */
  async authenticate(token: string | undefined): Promise<Principal> {
    if (token === undefined || token === '') throw unauthorized('this broker requires a token in hello');
    const principal = this.tokens.get(hashToken(token));
    if (principal !== undefined) return { name: principal };
    if (this.jwtKey === undefined || !JWT_SHAPE.test(token)) throw unauthorized('unknown token');
    const jwt = this.options.jwt as JwtAuthOptions;
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, this.jwtKey, {
        algorithms: this.algorithms,
        issuer: jwt.issuer,
        audience: jwt.audience,
        clockTolerance: jwt.clockToleranceSec ?? 0,
        requiredClaims: ['exp'],
      }));
    } catch (err) {
      if (err instanceof RelayError) throw err;
      if (err instanceof joseErrors.JWTExpired) throw unauthorized('token expired');
      if (err instanceof joseErrors.JWTClaimValidationFailed) throw unauthorized(`token claim ${err.claim} is not acceptable: ${err.reason}`);
      throw unauthorized('token signature or format is invalid');
    }
    const name = payload[jwt.principalClaim ?? 'sub'];
    if (typeof name !== 'string' || name === '') throw unauthorized(`token has no "${jwt.principalClaim ?? 'sub'}" claim to name its principal`);
    // The skew verification allowed holds for the connection's lifetime too: accepted, it is not closed as expired at once.
    return { name, expiresAtMs: typeof payload.exp === 'number' ? (payload.exp + (jwt.clockToleranceSec ?? 0)) * 1000 : undefined };
  }
}

function readJwks(file: string): { keys: JWK[] } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new RelayError('INVALID_ARGUMENT', `broker option auth.jwt.jwksFile: cannot read a JSON JWKS from ${file}: ${(err as Error).message}`);
  }
  const keys = (parsed as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new RelayError('INVALID_ARGUMENT', `broker option auth.jwt.jwksFile: ${file} must hold { "keys": [...] } with at least one key`);
  }
  return { keys: keys as JWK[] };
}
