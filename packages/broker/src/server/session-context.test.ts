import { RelayError } from '@relaymq/sdk/protocol';
import { describe, expect, it } from 'vitest';
import { unlessNotReady, type SessionContext } from './session-context.js';

function context(ready: boolean): SessionContext {
  return { ready: () => ready, draining: () => false, options: { id: 'b1' } } as unknown as SessionContext;
}

describe('unlessNotReady', () => {
  it('answers NOT_READY for a broker that is not ready, keeping the leader the refusal named', () => {
    const error = unlessNotReady(context(false), new RelayError('NO_QUORUM', 'lost its links to b4, b5', { leader: 'b4' }));
    expect(error.code).toBe('NOT_READY');
    expect(error.details.leader).toBe('b4');
  });

  it('names no leader when the refusal named none', () => {
    const error = unlessNotReady(context(false), new RelayError('TIMEOUT', 'no answer'));
    expect(error.code).toBe('NOT_READY');
    expect(error.details.leader).toBeUndefined();
  });

  it('passes the refusal on unchanged from a ready broker, and never rewrites other codes', () => {
    const refusal = new RelayError('NO_QUORUM', 'x', { leader: 'b4' });
    expect(unlessNotReady(context(true), refusal)).toBe(refusal);
    const forbidden = new RelayError('FORBIDDEN', 'no');
    expect(unlessNotReady(context(false), forbidden)).toBe(forbidden);
  });
});
