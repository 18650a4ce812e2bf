import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

const entry = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

describe('the SDK core runs in browsers', () => {
  it('bundles for the browser with no Node built-in and no ws', async () => {
    const result = await build({
      entryPoints: [entry('./browser.ts')],
      bundle: true,
      platform: 'browser',
      format: 'esm',
      write: false,
      metafile: true,
      logLevel: 'silent',
    });
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs.some((path) => path.includes('node_modules/ws/'))).toBe(false);
    expect(inputs.filter((path) => path.startsWith('node:'))).toEqual([]);
    expect(inputs.some((path) => path.endsWith('client.ts'))).toBe(true);
  });

  it('refuses the Node-only tls option, which a browser cannot honour', async () => {
    const { createClient } = await import('./browser.js');
    expect(() => createClient({ brokers: ['wss://127.0.0.1:1'], tls: { ca: 'pem' } })).toThrow(/tls is for Node/);
  });

  it('in Node, refuses tls together with a custom WebSocket (the option would be silently ignored)', async () => {
    const { createClient } = await import('./node.js');
    const Custom = class {} as never;
    expect(() => createClient({ brokers: ['wss://127.0.0.1:1'], tls: { ca: 'pem' }, WebSocket: Custom })).toThrow(/option tls/);
  });
});
