/**
 * Scripted protocol scenarios with golden output (testdata/*.txt). Each file
 * interleaves commands and the trace they produce; the test re-runs the
 * commands and compares. After a deliberate change of behaviour, regenerate
 * with `UPDATE_GOLDEN=1 npx vitest run packages/broker/test/raft` and review
 * the diff: it is the protocol, spelled out.
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runScript } from './harness.js';

const dir = fileURLToPath(new URL('./testdata/', import.meta.url));
const files = readdirSync(dir).filter((f) => f.endsWith('.txt')).sort();
const update = process.env['UPDATE_GOLDEN'] === '1';

describe('raft scenarios (golden traces)', () => {
  it('has scenarios', () => {
    expect(files.length).toBeGreaterThanOrEqual(7);
  });
  for (const file of files) {
    it(file, () => {
      const path = `${dir}${file}`;
      const expected = readFileSync(path, 'utf8');
      const actual = runScript(expected);
      if (update && actual !== expected) writeFileSync(path, actual);
      else expect(actual).toBe(expected);
    });
  }
});
