import { describe, expect, it } from 'vitest';
import { streamArguments } from './retention.js';

describe('stream arguments of a partition stream', () => {
  const settings = {
    retention: { maxAgeMs: 1500, maxBytes: 10_000_000 },
    topicRetention: [
      { pattern: 'logs.>', maxAgeMs: 3_600_000 },
      { pattern: 'logs.audit', maxBytes: 1 },
    ],
    segmentBytes: 4096,
  };

  it('maps retention to max-age (whole seconds, rounded up) and max-length-bytes, segmentBytes to the segment size', () => {
    expect(streamArguments('orders', settings)).toEqual({ 'stream-max-segment-size-bytes': 4096, 'max-age': '2s', 'max-length-bytes': 10_000_000 });
    expect(streamArguments('orders', { ...settings, retention: {} })).toEqual({ 'stream-max-segment-size-bytes': 4096 });
  });

  it('takes the first topicRetention pattern matching the topic instead of retention, as the embedded engine does', () => {
    expect(streamArguments('logs.audit', settings)).toEqual({ 'stream-max-segment-size-bytes': 4096, 'max-age': '3600s' });
    expect(streamArguments('logs', settings)).toEqual({ 'stream-max-segment-size-bytes': 4096, 'max-age': '2s', 'max-length-bytes': 10_000_000 });
  });
});
