import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ErrorCodes, RelayError, isErrorCode, protocolError, type ErrorCode } from './errors.js';

/** The rows of the code table in errors.ts's TSDoc: code → the text of its `retriable` column. */
function documentedCodes(): Map<string, string> {
  const source = readFileSync(new URL('./errors.ts', import.meta.url), 'utf8');
  const rows = new Map<string, string>();
  for (const match of source.matchAll(/^\s*\*\s*\|\s*`([A-Z_]+)`\s*\|[^|\n]*\|([^|\n]*)\|\s*$/gm)) {
    const code = match[1] as string;
    expect(rows.has(code), `${code} is documented twice`).toBe(false);
    rows.set(code, (match[2] as string).trim());
  }
  return rows;
}

describe('ErrorCodes', () => {
  it('has no duplicates and only UPPER_SNAKE codes', () => {
    expect(new Set(ErrorCodes).size).toBe(ErrorCodes.length);
    for (const code of ErrorCodes) expect(code).toMatch(/^[A-Z][A-Z_]*[A-Z]$/);
  });

  it('documents every code in the TSDoc table, and only known codes', () => {
    const rows = documentedCodes();
    for (const code of ErrorCodes) expect(rows.has(code), `${code} is missing from the table in errors.ts`).toBe(true);
    for (const code of rows.keys()) expect(isErrorCode(code), `table row ${code} is not in ErrorCodes`).toBe(true);
    expect(rows.size).toBe(ErrorCodes.length);
  });

  it('agrees with the table on retriability: retriable codes say "yes", "no" codes are not retriable', () => {
    const rows = documentedCodes();
    for (const code of ErrorCodes) {
      const column = rows.get(code) ?? '';
      const retriable = new RelayError(code, 'x').retriable;
      if (retriable) expect(column, `${code} is retriable`).toMatch(/^yes/);
      if (column === 'no') expect(retriable, `${code} is documented as not retriable`).toBe(false);
    }
  });
});

describe('isErrorCode', () => {
  it.each(ErrorCodes.map((code) => [code]))('accepts %s', (code) => {
    expect(isErrorCode(code)).toBe(true);
  });

  it.each([
    ['lower case', 'protocol_error'],
    ['unknown', 'NOPE'],
    ['empty', ''],
    ['padded', ' TIMEOUT'],
    ['number', 1],
    ['null', null],
    ['undefined', undefined],
    ['object', { code: 'TIMEOUT' }],
    ['array', ['TIMEOUT']],
    ['inherited name', 'toString'],
  ])('rejects %s', (_name, value) => {
    expect(isErrorCode(value)).toBe(false);
  });
});

describe('RelayError', () => {
  it('carries name, code, message and empty details by default', () => {
    const err = new RelayError('TIMEOUT', 'no answer in 5000 ms');
    expect(err).toBeInstanceOf(Error);
    expect(err).toBeInstanceOf(RelayError);
    expect(err.name).toBe('RelayError');
    expect(err.code).toBe('TIMEOUT');
    expect(err.message).toBe('no answer in 5000 ms');
    expect(err.details).toEqual({});
    expect('cause' in err).toBe(false);
    expect(String(err)).toBe('RelayError: no answer in 5000 ms');
    expect(err.stack).toContain('RelayError');
  });

  it('keeps details and passes details.cause on as the standard Error cause', () => {
    const cause = new TypeError('boom');
    const err = new RelayError('NOT_LEADER', 'go elsewhere', { leader: 'b2', cause });
    expect(err.details).toEqual({ leader: 'b2', cause });
    expect(err.details.leader).toBe('b2');
    expect(err.cause).toBe(cause);
    const gap = new RelayError('SEQUENCE_GAP', 'gap', { expectedSeq: 7 });
    expect(gap.details.expectedSeq).toBe(7);
  });

  const retriable: readonly ErrorCode[] = [
    'SEQUENCE_GAP',
    'NOT_LEADER',
    'NOT_READY',
    'NO_QUORUM',
    'CONNECTION_CLOSED',
    'NOT_CONNECTED',
    'RATE_LIMITED',
    'SLOW_CONSUMER',
    'SHUTTING_DOWN',
  ];
  it.each(ErrorCodes.map((code) => [code, retriable.includes(code)] as const))('%s retriable = %s', (code, expected) => {
    expect(new RelayError(code, 'x').retriable).toBe(expected);
  });

  it('protocolError is a PROTOCOL_ERROR RelayError', () => {
    const err = protocolError('bad frame');
    expect(err).toBeInstanceOf(RelayError);
    expect(err.code).toBe('PROTOCOL_ERROR');
    expect(err.message).toBe('bad frame');
    expect(err.retriable).toBe(false);
  });
});
