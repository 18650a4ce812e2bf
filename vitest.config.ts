import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

const src = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

/**
 * The longest test files, longest first (wall seconds on the 2-core machine, 2026-12-07: about 100, 79, 66).
 * Without durations from an earlier run, which a fresh checkout (CI) never has, vitest runs larger files
 * first: chaos.test.ts, the longest file and one of the smallest, came 223rd of 245, so its 100 s were the
 * run's tail, on one worker once the other had run out of files.
 */
const LONGEST_FIRST = ['test/chaos.test.ts', 'test/cluster-process.test.ts', 'test/rabbitmq-harness.test.ts'];

/** Vitest's order (failed first, then longest by recorded duration or largest), with {@link LONGEST_FIRST} ahead of the rest. */
class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (file: TestSpecification): number => {
      const at = LONGEST_FIRST.indexOf(relative(file.project.config.root, file.moduleId));
      return at === -1 ? LONGEST_FIRST.length : at;
    };
    const sorted = await super.sort(files);
    return sorted.map((file, at) => ({ file, at })).sort((a, b) => rank(a.file) - rank(b.file) || a.at - b.at).map(({ file }) => file);
  }
}

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
    sequence: { sequencer: LongestFirst },
  },
});
