import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RelayError } from './errors.js';
import { MAX_TOPIC_BYTES, assertPattern, assertTopic, isWildcard, patternProblem, topicMatches, topicProblem } from './topic.js';

const SEGMENT_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-';
const segmentArb = fc.string({ unit: fc.constantFrom(...SEGMENT_CHARS), minLength: 1, maxLength: 12 });

/** Joins segments, keeping as many leading ones as fit in MAX_TOPIC_BYTES (always at least the first). */
function fit(segments: readonly string[]): string {
  let out = segments[0] as string;
  for (let i = 1; i < segments.length; i++) {
    const next = `${out}.${segments[i] as string}`;
    if (next.length > MAX_TOPIC_BYTES) break;
    out = next;
  }
  return out;
}

const longSegmentArb = fc.string({ unit: fc.constantFrom(...SEGMENT_CHARS), minLength: 1, maxLength: 80 });
const topicArb = fc.oneof(
  fc.array(segmentArb, { minLength: 1, maxLength: 8 }).map(fit),
  fc.array(longSegmentArb, { minLength: 1, maxLength: 8 }).map(fit),
);

const ok = undefined;
const long = (n: number): string => 'a'.repeat(n);
/** A valid dotted topic of exactly n characters. */
const dotted = (n: number): string => Array.from({ length: Math.ceil(n / 2) }, () => 'a').join('.').padEnd(n, 'b');

describe('topicProblem', () => {
  it.each([
    ['single segment', 'orders', ok],
    ['dotted', 'orders.eu.created', ok],
    ['all allowed characters', 'aZ09_-.x', ok],
    ['digits only', '123.456', ok],
    ['dash and underscore segments', '-._', ok],
    [`exactly ${MAX_TOPIC_BYTES} bytes`, long(MAX_TOPIC_BYTES), ok],
    [`dotted, exactly ${MAX_TOPIC_BYTES} bytes`, dotted(MAX_TOPIC_BYTES), ok],
    ['empty', '', /empty/],
    [`${MAX_TOPIC_BYTES + 1} bytes`, long(MAX_TOPIC_BYTES + 1), /longer than 255/],
    ['very long', long(100_000), /longer than 255/],
    ['empty middle segment', 'a..b', /segment/],
    ['leading dot', '.a', /segment/],
    ['trailing dot', 'a.', /segment/],
    ['only a dot', '.', /segment/],
    ['space', 'a b', /segment/],
    ['slash', 'a/b', /segment/],
    ['non-ASCII', 'caf\u00e9', /segment/],
    ['emoji', 'a.\u{1F600}', /segment/],
    ['NUL', 'a\u0000', /segment/],
    ['newline', 'a\n', /segment/],
    ['star wildcard', 'orders.*', /wildcard/],
    ['tail wildcard', 'orders.>', /wildcard/],
    ['only a star', '*', /wildcard/],
    ['star inside a segment', 'a*', /segment/],
    ['gt inside a segment', 'a>b', /segment/],
  ])('%s: %j', (_name, topic, expected) => {
    const problem = topicProblem(topic);
    if (expected === undefined) expect(problem).toBeUndefined();
    else expect(problem).toMatch(expected);
  });

  it('accepts every generated topic', () => {
    fc.assert(
      fc.property(topicArb, (topic) => {
        expect(topic.length).toBeLessThanOrEqual(MAX_TOPIC_BYTES);
        expect(topicProblem(topic)).toBeUndefined();
      }),
      { numRuns: 500 },
    );
  });
});

describe('patternProblem', () => {
  it.each([
    ['plain topic', 'orders.eu.created', ok],
    ['star', '*', ok],
    ['gt', '>', ok],
    ['star segment', 'orders.*.created', ok],
    ['several stars', '*.*.*', ok],
    ['trailing gt', 'orders.>', ok],
    ['star then gt', '*.>', ok],
    [`exactly ${MAX_TOPIC_BYTES} bytes`, `${long(MAX_TOPIC_BYTES - 2)}.>`, ok],
    ['empty', '', /empty/],
    [`${MAX_TOPIC_BYTES + 1} bytes`, `${long(MAX_TOPIC_BYTES - 1)}.>`, /longer than 255/],
    ['gt not last', '>.orders', /last segment/],
    ['gt in the middle', 'a.>.b', /last segment/],
    ['two gts', '>.>', /last segment/],
    ['empty segment', 'a..*', /segment/],
    ['leading dot', '.*', /segment/],
    ['trailing dot', '*.', /segment/],
    ['partial star', 'ord*', /segment/],
    ['partial gt', 'a.b>', /segment/],
    ['double star', '**', /segment/],
    ['space', 'a .b', /segment/],
  ])('%s: %j', (_name, pattern, expected) => {
    const problem = patternProblem(pattern);
    if (expected === undefined) expect(problem).toBeUndefined();
    else expect(problem).toMatch(expected);
  });
});

describe('assertTopic and assertPattern', () => {
  it('throw INVALID_TOPIC with the problem as message', () => {
    expect(() => assertTopic('a.*')).toThrowError(expect.objectContaining({ code: 'INVALID_TOPIC', message: topicProblem('a.*') }));
    expect(() => assertPattern('>.a')).toThrowError(RelayError);
    expect(() => assertPattern('>.a')).toThrowError(expect.objectContaining({ code: 'INVALID_TOPIC' }));
    expect(() => assertTopic('a.b')).not.toThrow();
    expect(() => assertPattern('a.*.>')).not.toThrow();
  });
});

describe('topicMatches', () => {
  it.each([
    ['a', 'a', true],
    ['a.b.c', 'a.b.c', true],
    ['a.b', 'a.b.c', false],
    ['a.b.c', 'a.b', false],
    ['a.b.c', 'a.b.d', false],
    ['A', 'a', false],
    ['ab', 'a', false],
    // * matches exactly one segment
    ['*', 'a', true],
    ['*', 'a.b', false],
    ['a.*', 'a.b', true],
    ['a.*', 'a', false],
    ['a.*', 'a.b.c', false],
    ['*.b', 'a.b', true],
    ['*.b', 'a.c', false],
    ['a.*.c', 'a.x.c', true],
    ['a.*.c', 'a.x.y.c', false],
    ['*.*', 'a.b', true],
    ['*.*', 'a', false],
    // > matches one or more trailing segments
    ['>', 'a', true],
    ['>', 'a.b.c', true],
    ['a.>', 'a.b', true],
    ['a.>', 'a.b.c.d', true],
    ['a.>', 'a', false],
    ['a.>', 'b.c', false],
    ['a.b.>', 'a.b', false],
    ['*.>', 'a.b', true],
    ['*.>', 'a', false],
    ['a.*.>', 'a.b.c', true],
    ['a.*.>', 'a.b', false],
  ])('%j matches %j: %s', (pattern, topic, expected) => {
    expect(topicMatches(pattern, topic)).toBe(expected);
  });

  it('matches every topic against itself, and against it with every segment replaced by *', () => {
    fc.assert(
      fc.property(topicArb, (topic) => {
        expect(topicMatches(topic, topic)).toBe(true);
        const segments = topic.split('.');
        const stars = segments.map(() => '*').join('.');
        expect(patternProblem(stars)).toBeUndefined();
        expect(topicMatches(stars, topic)).toBe(true);
        expect(topicMatches('>', topic)).toBe(true);
        expect(topicMatches(`${stars}.*`, topic)).toBe(false);
        expect(topicMatches(`${topic}.>`, topic)).toBe(false);
      }),
      { numRuns: 500 },
    );
  });

  it('matches a pattern built from a topic by replacing any segments with * and any tail with >', () => {
    const arb = topicArb.chain((topic) => {
      const n = topic.split('.').length;
      return fc.tuple(fc.constant(topic), fc.array(fc.boolean(), { minLength: n, maxLength: n }), fc.nat({ max: n - 1 }));
    });
    fc.assert(
      fc.property(arb, ([topic, starred, tailAt]) => {
        const segments = topic.split('.').map((s, i) => (starred[i] === true ? '*' : s));
        const pattern = [...segments.slice(0, tailAt), '>'].join('.');
        expect(topicMatches(segments.join('.'), topic)).toBe(true);
        if (pattern.length <= MAX_TOPIC_BYTES) expect(patternProblem(pattern)).toBeUndefined();
        expect(topicMatches(pattern, topic)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });
});

describe('isWildcard', () => {
  it.each([
    ['a', false],
    ['a.b.c', false],
    ['*', true],
    ['>', true],
    ['a.*', true],
    ['a.>', true],
    ['*.b', true],
    ['a*', false],
    ['a.b>', false],
  ])('%j: %s', (pattern, expected) => {
    expect(isWildcard(pattern)).toBe(expected);
  });
});

describe('topicProblem agrees with the segment rule it checks in one pass', () => {
  /** The rule as written: 1-255 characters, every dot-separated segment matching [A-Za-z0-9_-]+. */
  const valid = (topic: string): boolean => topic.length > 0 && topic.length <= MAX_TOPIC_BYTES && topic.split('.').every((s) => /^[A-Za-z0-9_-]+$/.test(s));

  it('accepts exactly the topics the rule accepts', () => {
    const unit = fc.constantFrom('a', 'Z', '9', '_', '-', '.', '.', '*', '>', ' ', 'é', '/', '\u0000');
    fc.assert(
      fc.property(fc.string({ unit, maxLength: 300 }), (topic) => {
        expect(topicProblem(topic) === undefined).toBe(valid(topic));
      }),
      { numRuns: 2000 },
    );
  });

  it.each(['', '.', 'a.', '.a', 'a..b', 'a.*', 'a.>', 'a b', `${'a'.repeat(MAX_TOPIC_BYTES)}b`])('refuses %j with a reason', (topic) => {
    expect(topicProblem(topic)).toEqual(expect.any(String));
  });
});
