import { describe, expect, it } from 'vitest';
import { effectiveConfig, resolveConfig } from './config.js';
import { resolveBrokerOptions } from './options.js';

const TOKEN = 'from-the-environment-0123456789';

describe('admin token configuration', () => {
  it('comes from RELAYMQ_ADMIN_TOKEN or --admin-token (the flag wins) and is never printed', () => {
    const fromEnv = resolveConfig({ env: { RELAYMQ_ADMIN_TOKEN: TOKEN, RELAYMQ_ADMIN_PROTECT_READS: 'true' }, flags: {} });
    expect(fromEnv.options.adminToken).toBe(TOKEN);
    expect(fromEnv.options.adminProtectReads).toBe(true);
    const fromFlag = resolveConfig({ env: { RELAYMQ_ADMIN_TOKEN: TOKEN }, flags: { 'admin-token': 'from-the-flag-0123456789' } });
    expect(fromFlag.options.adminToken).toBe('from-the-flag-0123456789');
    const printed = JSON.stringify(effectiveConfig(resolveBrokerOptions(fromEnv.options)));
    expect(printed).not.toContain(TOKEN);
    expect(printed).toContain('"adminToken":"REDACTED"');
  });
});
