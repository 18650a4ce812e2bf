/**
 * The SWIM core stays pure (no clock, timer, randomness, I/O or `any`), and
 * its public surface does not expose the test-only knobs.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as swim from '../../src/core/swim/index.js';

const dir = fileURLToPath(new URL('../../src/core/swim/', import.meta.url));
const sources = readdirSync(dir).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'));

const FORBIDDEN: Array<[string, RegExp]> = [
  ['Date', /\bDate\b/],
  ['Math.random', /Math\.random/],
  ['timers', /\b(setTimeout|setInterval|setImmediate|queueMicrotask)\b/],
  ['performance', /\bperformance\./],
  ['process', /\bprocess\./],
  ['node: imports', /from ['"]node:/],
  ['require', /\brequire\(/],
  ['any', /(:\s*any\b|\bas any\b|<any>|\bany\[\])/],
];

describe('SWIM core purity', () => {
  it('has the modules it is made of', () => {
    expect(sources.sort()).toEqual(['awareness.ts', 'broadcast.ts', 'config.ts', 'index.ts', 'suspicion.ts', 'swim.ts', 'types.ts', 'validate.ts', 'view.ts']);
  });

  it.each(sources)('%s uses no clock, timer, randomness, I/O or any', (file) => {
    const text = readFileSync(dir + file, 'utf8');
    for (const [what, pattern] of FORBIDDEN) expect(pattern.test(text), `${file} uses ${what}`).toBe(false);
  });

  it('exports a factory and types, not the class whose constructor takes the test knobs', () => {
    expect(Object.keys(swim).sort()).toEqual([
      'SWIM_DEFAULTS',
      'SWIM_PRESETS',
      'SWIM_WIRE_LIMITS',
      'changesClusterView',
      'clusterView',
      'createSwim',
      'expectedConfirmations',
      'parseSwimMessage',
      'resolveSwimConfig',
      'retransmitLimit',
      'suspicionBounds',
      'suspicionTimeoutTicks',
    ]);
    expect(readFileSync(dir + 'index.ts', 'utf8')).not.toMatch(/Knobs/);
  });
});
