/**
 * The pure cores (`core/raft`, `core/swim`, `core/partition`, `core/metadata`) stay pure:
 * no clock, timer, randomness, I/O or `any`. Time comes in as ticks and randomness as an
 * injected source, so the simulator and the golden traces replay them exactly. (What they
 * may import, their own files and the SDK's protocol, is checked by test/architecture.test.ts.)
 * SWIM's public surface also keeps its test-only knobs private.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as swim from '../src/core/swim/index.js';

const coreDir = fileURLToPath(new URL('../src/core/', import.meta.url));
const CORES = ['raft', 'swim', 'partition', 'metadata'];
const sourcesOf = (core: string): string[] =>
  readdirSync(coreDir + core)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
    .sort();
const sources = CORES.flatMap((core) => sourcesOf(core).map((file) => `${core}/${file}`));

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

describe('pure cores', () => {
  it('covers every folder of core/', () => {
    const folders = readdirSync(coreDir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    expect(folders.sort()).toEqual([...CORES].sort());
  });

  it('SWIM has the modules it is made of', () => {
    expect(sourcesOf('swim')).toEqual(['awareness.ts', 'broadcast.ts', 'config.ts', 'index.ts', 'suspicion.ts', 'swim.ts', 'types.ts', 'validate.ts', 'view.ts']);
  });

  it.each(sources)('%s uses no clock, timer, randomness, I/O or any', (file) => {
    const text = readFileSync(coreDir + file, 'utf8');
    for (const [what, pattern] of FORBIDDEN) expect(pattern.test(text), `${file} uses ${what}`).toBe(false);
  });

  it('SWIM exports a factory and types, not the class whose constructor takes the test knobs', () => {
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
    expect(readFileSync(coreDir + 'swim/index.ts', 'utf8')).not.toMatch(/Knobs/);
  });
});
