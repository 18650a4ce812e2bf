import { RelayError } from './errors.js';

/** Longest topic or pattern, in UTF-8 bytes (topics are ASCII, so bytes = chars). */
export const MAX_TOPIC_BYTES = 255;

const SEGMENT = /^[A-Za-z0-9_-]+$/;

/** Whether `c` (a UTF-16 code unit) may be in a topic segment: [A-Za-z0-9_-]. */
function isSegmentChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95 || c === 45;
}

const DOT = 46;

/**
 * Whether `topic` is a valid publish topic, in one pass without allocating
 * (it runs on every publish, on the client and on the broker).
 */
function isValidTopic(topic: string): boolean {
  const { length } = topic;
  if (length === 0 || length > MAX_TOPIC_BYTES) return false;
  let segmentStart = 0;
  for (let i = 0; i < length; i++) {
    const c = topic.charCodeAt(i);
    if (c === DOT) {
      if (i === segmentStart) return false; // an empty segment
      segmentStart = i + 1;
    } else if (!isSegmentChar(c)) {
      return false;
    }
  }
  return segmentStart < length;
}

/** Why `topic` is not a valid publish topic, or `undefined` when it is. */
export function topicProblem(topic: string): string | undefined {
  if (isValidTopic(topic)) return undefined;
  if (topic.length === 0) return 'topic is empty';
  if (topic.length > MAX_TOPIC_BYTES) return `topic is longer than ${MAX_TOPIC_BYTES} bytes`;
  for (const segment of topic.split('.')) {
    if (segment === '*' || segment === '>') return 'topic contains a wildcard; wildcards are only for subscriptions';
    if (!SEGMENT.test(segment)) return `topic segment "${segment}" must match [A-Za-z0-9_-]+`;
  }
  return undefined;
}

/** Why `pattern` is not a valid subscription pattern, or `undefined` when it is. */
export function patternProblem(pattern: string): string | undefined {
  if (pattern.length === 0) return 'pattern is empty';
  if (pattern.length > MAX_TOPIC_BYTES) return `pattern is longer than ${MAX_TOPIC_BYTES} bytes`;
  const segments = pattern.split('.');
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] as string;
    if (segment === '*') continue;
    if (segment === '>') {
      if (i !== segments.length - 1) return '">" is only allowed as the last segment';
      continue;
    }
    if (!SEGMENT.test(segment)) return `pattern segment "${segment}" must be *, > or match [A-Za-z0-9_-]+`;
  }
  return undefined;
}

/** Throws `INVALID_TOPIC` unless `topic` is a valid publish topic. */
export function assertTopic(topic: string): void {
  const problem = topicProblem(topic);
  if (problem !== undefined) throw new RelayError('INVALID_TOPIC', problem);
}

/** Throws `INVALID_TOPIC` unless `pattern` is a valid subscription pattern. */
export function assertPattern(pattern: string): void {
  const problem = patternProblem(pattern);
  if (problem !== undefined) throw new RelayError('INVALID_TOPIC', problem);
}

/**
 * Whether a (valid) topic matches a (valid) pattern: `*` matches exactly one
 * segment, a trailing `>` matches one or more remaining segments (as in NATS).
 */
export function topicMatches(pattern: string, topic: string): boolean {
  if (pattern === topic) return true;
  const p = pattern.split('.');
  const t = topic.split('.');
  for (let i = 0; i < p.length; i++) {
    const segment = p[i];
    if (segment === '>') return t.length > i;
    if (i >= t.length) return false;
    if (segment !== '*' && segment !== t[i]) return false;
  }
  return p.length === t.length;
}

/** Whether a pattern contains wildcards (and so may match more than one topic). */
export function isWildcard(pattern: string): boolean {
  return pattern.split('.').some((s) => s === '*' || s === '>');
}
