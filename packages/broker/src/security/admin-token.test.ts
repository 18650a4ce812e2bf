import { describe, expect, it } from 'vitest';
import { bearerToken, checkAdminRequest, tokensEqual } from './admin-token.js';

const TOKEN = 'correct-horse-battery-staple';

describe('admin token', () => {
  it('compares tokens exactly, whatever their lengths', () => {
    expect(tokensEqual(TOKEN, TOKEN)).toBe(true);
    expect(tokensEqual(`${TOKEN}x`, TOKEN)).toBe(false);
    expect(tokensEqual(TOKEN.slice(0, -1), TOKEN)).toBe(false);
    expect(tokensEqual('', TOKEN)).toBe(false);
    expect(tokensEqual(TOKEN.toUpperCase(), TOKEN)).toBe(false);
  });

  it('reads a bearer token and nothing else', () => {
    expect(bearerToken(`Bearer ${TOKEN}`)).toBe(TOKEN);
    expect(bearerToken(`bearer   ${TOKEN} `)).toBe(TOKEN);
    expect(bearerToken(`Basic ${TOKEN}`)).toBeUndefined();
    expect(bearerToken('Bearer')).toBeUndefined();
    expect(bearerToken('Bearer a b')).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });

  it('lets reads through unless protected, and refuses mutations without the right token', () => {
    const open = { token: TOKEN, protectReads: false };
    expect(checkAdminRequest(open, 'read', undefined)).toBeUndefined();
    expect(checkAdminRequest(open, 'change', undefined)).toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
    expect(checkAdminRequest(open, 'change', 'Bearer wrong-token-wrong-token')).toMatchObject({ status: 401, code: 'UNAUTHORIZED', message: 'the admin token is not valid' });
    expect(checkAdminRequest(open, 'change', `Bearer ${TOKEN}`)).toBeUndefined();

    const closed = { token: TOKEN, protectReads: true };
    expect(checkAdminRequest(closed, 'read', undefined)).toMatchObject({ status: 401 });
    expect(checkAdminRequest(closed, 'read', `Bearer ${TOKEN}`)).toBeUndefined();
  });

  it('disables mutations when no token is configured', () => {
    const none = { token: undefined, protectReads: false };
    expect(checkAdminRequest(none, 'read', undefined)).toBeUndefined();
    const refusal = checkAdminRequest(none, 'change', `Bearer ${TOKEN}`);
    expect(refusal).toMatchObject({ status: 403, code: 'FORBIDDEN' });
    expect(refusal?.message).toContain('--admin-token');
  });

  it('guards message contents whenever a token is configured, even with open reads', () => {
    const open = { token: TOKEN, protectReads: false };
    expect(checkAdminRequest(open, 'messages', undefined)).toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
    expect(checkAdminRequest(open, 'messages', 'Bearer wrong-token-wrong-token')).toMatchObject({ status: 401, message: 'the admin token is not valid' });
    expect(checkAdminRequest(open, 'messages', `Bearer ${TOKEN}`)).toBeUndefined();
    // No token configured (a development broker): the browser stays open, as every read does.
    expect(checkAdminRequest({ token: undefined, protectReads: false }, 'messages', undefined)).toBeUndefined();
    // Unless the broker's clients authenticate: their messages are behind ACLs, so the browser is refused.
    expect(checkAdminRequest({ token: undefined, protectReads: false, clientAuth: true }, 'messages', undefined)).toMatchObject({ status: 403, code: 'FORBIDDEN' });
    expect(checkAdminRequest({ token: undefined, protectReads: false, clientAuth: true }, 'read', undefined)).toBeUndefined();
  });
});
