import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { RelayError } from '@relaymq/sdk/protocol';
import { Authenticator } from './auth.js';
import { rejection } from '../../../../test/support/rejection.js';

const SECRET = 'a-test-secret-of-at-least-32-characters!';
const dir = mkdtempSync(join(tmpdir(), 'relaymq-jwks-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const nowSec = (): number => Math.floor(Date.now() / 1000);


describe('Authenticator', () => {
  it('maps static tokens to principals and refuses unknown or missing ones', async () => {
    const auth = new Authenticator({ tokens: { 'token-of-alice': 'alice' } });
    await expect(auth.authenticate('token-of-alice')).resolves.toEqual({ name: 'alice' });
    const unknown = await rejection(auth.authenticate('token-of-mallory'), RelayError);
    expect(unknown.code).toBe('UNAUTHORIZED');
    expect(unknown.message).not.toContain('mallory');
    expect((await rejection(auth.authenticate(undefined), RelayError)).code).toBe('UNAUTHORIZED');
  });

  it('verifies HS256 tokens: principal from sub or a configured claim, exp required and enforced, issuer and audience checked', async () => {
    const auth = new Authenticator({ jwt: { secret: SECRET, issuer: 'issuer-1', audience: 'relaymq' } });
    const key = new TextEncoder().encode(SECRET);
    const sign = (claims: Record<string, unknown>, exp: number | undefined, issuer = 'issuer-1'): Promise<string> => {
      const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuer(issuer).setAudience('relaymq').setSubject('svc-a');
      if (exp !== undefined) jwt.setExpirationTime(exp);
      return jwt.sign(key);
    };
    const ok = await auth.authenticate(await sign({}, nowSec() + 60));
    expect(ok.name).toBe('svc-a');
    expect(ok.expiresAtMs).toBeGreaterThan(Date.now());
    expect((await rejection(auth.authenticate(await sign({}, nowSec() - 10)), RelayError)).message).toMatch(/expired/);
    expect((await rejection(auth.authenticate(await sign({}, undefined)), RelayError)).message).toMatch(/exp/);
    expect((await rejection(auth.authenticate(await sign({}, nowSec() + 60, 'someone-else')), RelayError)).message).toMatch(/iss/);
    const forged = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setIssuer('issuer-1').setAudience('relaymq').setSubject('admin')
      .setExpirationTime(nowSec() + 60).sign(new TextEncoder().encode('not-the-secret-but-32-characters-long'));
    expect((await rejection(auth.authenticate(forged), RelayError)).message).toMatch(/signature/);
    // Tampered payload, original signature.
    const [header, , signature] = (await sign({}, nowSec() + 60)).split('.');
    const payload = Buffer.from(JSON.stringify({ sub: 'admin', iss: 'issuer-1', aud: 'relaymq', exp: nowSec() + 60 })).toString('base64url');
    expect((await rejection(auth.authenticate(`${header}.${payload}.${signature}`), RelayError)).code).toBe('UNAUTHORIZED');

    const byClaim = new Authenticator({ jwt: { secret: SECRET, principalClaim: 'client_id' } });
    const token = await new SignJWT({ client_id: 'billing' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(nowSec() + 60).sign(key);
    expect((await byClaim.authenticate(token)).name).toBe('billing');
  });

  it('verifies RS256 and ES256 tokens against a JWKS file, and refuses alg "none" and keys not in the set', async () => {
    const rsa = await generateKeyPair('RS256');
    const ec = await generateKeyPair('ES256');
    const other = await generateKeyPair('ES256');
    const jwks = { keys: [{ ...(await exportJWK(rsa.publicKey)), kid: 'rsa', alg: 'RS256' }, { ...(await exportJWK(ec.publicKey)), kid: 'ec', alg: 'ES256' }] };
    const file = join(dir, 'jwks.json');
    writeFileSync(file, JSON.stringify(jwks));
    const auth = new Authenticator({ jwt: { jwksFile: file } });
    const sign = (alg: string, kid: string, key: CryptoKey): Promise<string> =>
      new SignJWT({}).setProtectedHeader({ alg, kid }).setSubject(`by-${kid}`).setExpirationTime(nowSec() + 60).sign(key);
    expect((await auth.authenticate(await sign('RS256', 'rsa', rsa.privateKey))).name).toBe('by-rsa');
    expect((await auth.authenticate(await sign('ES256', 'ec', ec.privateKey))).name).toBe('by-ec');
    expect((await rejection(auth.authenticate(await sign('ES256', 'ec', other.privateKey)), RelayError)).code).toBe('UNAUTHORIZED');
    const unsecured = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'x', exp: nowSec() + 60 })).toString('base64url')}.`;
    expect((await rejection(auth.authenticate(unsecured), RelayError)).code).toBe('UNAUTHORIZED');
    // An HS256 token is refused by a broker configured with only a JWKS (no algorithm confusion).
    const hs = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('x').setExpirationTime(nowSec() + 60).sign(new TextEncoder().encode(SECRET));
    expect((await rejection(auth.authenticate(hs), RelayError)).code).toBe('UNAUTHORIZED');
  });

  it('names an unreadable JWKS file', () => {
    expect(() => new Authenticator({ jwt: { jwksFile: join(dir, 'missing.json') } })).toThrow(/auth\.jwt\.jwksFile/);
  });
});
