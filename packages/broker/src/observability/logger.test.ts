import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { childLog, createLogger } from './logger.js';

function capture(): { stream: Writable; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return { stream, lines: () => chunks.join('').trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('createLogger', () => {
  it('writes pino JSON lines with the broker id, level and context fields, above the level only', () => {
    const out = capture();
    const log = createLogger({ brokerId: 'b7', level: 'info', destination: out.stream });
    log('debug', 'hidden');
    log('info', 'raft group has a new leader', { group: 'p/orders/0', leader: 'b2', term: 4 });
    log('error', 'boom');
    const lines = out.lines();
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ level: 30, broker: 'b7', msg: 'raft group has a new leader', group: 'p/orders/0', leader: 'b2', term: 4 });
    expect(typeof lines[0]?.time).toBe('string');
    expect(lines[1]).toMatchObject({ level: 50, broker: 'b7', msg: 'boom' });
  });

  it('adds bindings in child loggers, fields winning', () => {
    const out = capture();
    const log = childLog(createLogger({ brokerId: 'b1', level: 'debug', destination: out.stream }), { group: 'p/x/1', term: 2 });
    log('debug', 'step', { term: 3 });
    expect(out.lines()[0]).toMatchObject({ broker: 'b1', group: 'p/x/1', term: 3, msg: 'step' });
  });

  it('is a no-op when silent', () => {
    expect(() => createLogger({ brokerId: 'b1', level: 'silent' })('error', 'nothing')).not.toThrow();
  });
});
