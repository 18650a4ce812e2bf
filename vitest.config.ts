import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests run against the TypeScript sources; multi-process tests spawn the built CLI.
    alias: [
      { find: /^@relaymq\/sdk\/protocol$/, replacement: src('./packages/sdk/src/protocol/index.ts') },
      { find: /^@relaymq\/sdk\/core$/, replacement: src('./packages/sdk/src/index.ts') },
      { find: /^@relaymq\/sdk$/, replacement: src('./packages/sdk/src/node.ts') },
      { find: /^@relaymq\/broker$/, replacement: src('./packages/broker/src/index.ts') },
    ],
  },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
