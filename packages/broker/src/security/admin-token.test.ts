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
    expect(checkAdminRequest(open, false, undefined)).toBeUndefined();
    expect(checkAdminRequest(open, true, undefined)).toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
    expect(checkAdminRequest(open, true, 'Bearer wrong-token-wrong-token')).toMatchObject({ status: 401, code: 'UNAUTHORIZED', message: 'the admin token is not valid' });
    expect(checkAdminRequest(open, true, `Bearer ${TOKEN}`)).toBeUndefined();

    const closed = { token: TOKEN, protectReads: true };
    expect(checkAdminRequest(closed, false, undefined)).toMatchObject({ status: 401 });
    expect(checkAdminRequest(closed, false, `Bearer ${TOKEN}`)).toBeUndefined();
  });

  it('disables mutations when no token is configured', () => {
    const none = { token: undefined, protectReads: false };
    expect(checkAdminRequest(none, false, undefined)).toBeUndefined();
    const refusal = checkAdminRequest(none, true, `Bearer ${TOKEN}`);
    expect(refusal).toMatchObject({ status: 403, code: 'FORBIDDEN' });
    expect(refusal?.message).toContain('--admin-token');
  });
});
