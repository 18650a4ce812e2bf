import { describe, expect, it } from 'vitest';
import { RelayError } from '../protocol/index.js';
import { describeFailures, dialError, failureOf, socketErrorFailure } from './dial-failure.js';

const url = 'ws://127.0.0.1:7401';
/** What Node's `ws` hands to `onerror`: an event wrapping the system error. */
const wsEvent = (error: object | null, message = ''): object => ({ type: 'error', error, message });
const systemError = (code: string, message = `connect ${code}`): object => Object.assign(new Error(message), { code });

describe('socketErrorFailure (the cause of a failed dial, from any platform)', () => {
  it.each<[string, unknown, string, string | undefined, string]>([
    ['refused', wsEvent(systemError('ECONNREFUSED')), 'refused', 'ECONNREFUSED', 'connection refused (ECONNREFUSED)'],
    ['unknown host', wsEvent(systemError('ENOTFOUND')), 'not-found', 'ENOTFOUND', 'host not found (ENOTFOUND)'],
    ['DNS unavailable', wsEvent(systemError('EAI_AGAIN')), 'not-found', 'EAI_AGAIN', 'host name lookup failed for now (EAI_AGAIN)'],
    ['no route', wsEvent(systemError('EHOSTUNREACH')), 'unreachable', 'EHOSTUNREACH', 'host unreachable (EHOSTUNREACH)'],
    ['self-signed certificate', wsEvent(systemError('DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate')), 'tls', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'TLS failed: self-signed certificate (DEPTH_ZERO_SELF_SIGNED_CERT)'],
    ['wrong host name', wsEvent(systemError('ERR_TLS_CERT_ALTNAME_INVALID', 'altname')), 'tls', 'ERR_TLS_CERT_ALTNAME_INVALID', 'TLS failed: altname (ERR_TLS_CERT_ALTNAME_INVALID)'],
    ['HTTP 401 on upgrade', wsEvent(new Error('Unexpected server response: 401')), 'unauthorized', undefined, 'the server answered HTTP 401'],
    ['HTTP 502 on upgrade', wsEvent(new Error('Unexpected server response: 502')), 'rejected', undefined, 'the server answered HTTP 502, not a WebSocket upgrade'],
    ['every address refused (AggregateError)', wsEvent(Object.assign(new AggregateError([systemError('ECONNREFUSED')], ''), {})), 'refused', 'ECONNREFUSED', 'connection refused (ECONNREFUSED)'],
    ['a thrown error (invalid URL)', new SyntaxError('Invalid URL'), 'unknown', undefined, 'Invalid URL'],
    ['a browser Event (no cause)', { type: 'error' }, 'unknown', undefined, 'connection failed; the platform gave no cause'],
    ['an unknown system code', wsEvent(systemError('EWHATEVER', 'odd')), 'unknown', 'EWHATEVER', 'odd (EWHATEVER)'],
  ])('reads %s', (_, event, kind, systemCode, message) => {
    const failure = socketErrorFailure(url, event);
    expect(failure).toEqual({ url, kind, message, ...(systemCode === undefined ? {} : { systemCode }) });
  });
});

describe('failureOf / dialError', () => {
  it('a dial error names its URL and cause and carries it', () => {
    const error = dialError('NOT_CONNECTED', socketErrorFailure(url, wsEvent(systemError('ECONNREFUSED'))));
    expect(error.message).toBe(`cannot connect to ${url}: connection refused (ECONNREFUSED)`);
    expect(failureOf(url, error)).toMatchObject({ kind: 'refused', systemCode: 'ECONNREFUSED' });
  });

  it.each<[RelayError['code'], string]>([
    ['UNAUTHORIZED', 'unauthorized'],
    ['TIMEOUT', 'timeout'],
    ['CONNECTION_CLOSED', 'closed'],
    ['LIMIT_EXCEEDED', 'rejected'],
  ])('reads a %s refusal as %s', (code, kind) => {
    expect(failureOf(url, new RelayError(code, 'why'))).toEqual({ url, kind, message: 'why' });
  });

  it('describes several URLs on one line', () => {
    expect(describeFailures([{ url: 'ws://a:1', kind: 'refused', message: 'connection refused (ECONNREFUSED)' }, { url: 'ws://b:2', kind: 'not-found', message: 'host not found (ENOTFOUND)' }])).toBe(
      'ws://a:1: connection refused (ECONNREFUSED); ws://b:2: host not found (ENOTFOUND)',
    );
  });
});
