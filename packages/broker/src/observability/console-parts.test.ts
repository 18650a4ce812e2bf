import { describe, expect, it } from 'vitest';
import { parseBrokerReport } from './broker-report.js';
import { consumerLag, durablePositionSource, type PositionSource } from './consumer-lag.js';
import { BUCKET_COUNT, addCounts, bucketOf, bucketUpperMs, countLatencies, countsQuantile, parseCounts } from './latency-histogram.js';
import { BROWSE_MAX_MESSAGES, browse, parseBrowseQuery, type BrowseSource } from './message-browser.js';
import { encodeValue } from '@relaymq/sdk/protocol';

describe('latency histogram', () => {
  it('puts every latency in a bucket whose bound is within 10 % above it', () => {
    for (const ms of [0.01, 0.05, 0.051, 0.3, 1, 2.5, 17, 250, 999, 30_000]) {
      const upper = bucketUpperMs(bucketOf(ms));
      expect(upper).toBeGreaterThanOrEqual(ms);
      if (ms > 0.05) expect(upper).toBeLessThanOrEqual(ms * 1.1 + 1e-9);
    }
    expect(bucketOf(10 ** 9)).toBe(BUCKET_COUNT - 1);
  });

  it('adds brokers’ counts and reads nearest-rank quantiles from them', () => {
    const a = countLatencies([1, 1, 1, 1, 1, 1, 1, 1, 1]);
    const b = countLatencies([200]);
    const sum = addCounts([a, b]);
    expect(countsQuantile(sum, 0.5)).toBeCloseTo(bucketUpperMs(bucketOf(1)), 3);
    expect(countsQuantile(sum, 0.99)).toBeCloseTo(bucketUpperMs(bucketOf(200)), 3);
    expect(countsQuantile({}, 0.5)).toBeNull();
  });

  it('refuses counts a peer could not have sent', () => {
    expect(parseCounts({ 3: 2 })).toEqual({ 3: 2 });
    for (const bad of [[1], { [-1]: 1 }, { 3: -2 }, { 3: 1.5 }, { [BUCKET_COUNT]: 1 }, null, 'x']) expect(parseCounts(bad)).toBeUndefined();
  });
});

describe('consumer lag', () => {
  const durables = durablePositionSource(() => [
    { durable: 'billing', positions: [{ topic: 'orders', partition: 0, offset: 40 }, { topic: 'orders', partition: 1, offset: 7 }] },
    { durable: 'audit', positions: [{ topic: 'orders', partition: 0, offset: 120 }] },
  ]);
  const groups: PositionSource = { positions: () => [{ kind: 'group', consumer: 'g1', topic: 'orders', partition: 0, offset: 99 }] };

  it('reports end minus position for partitions led here only, from every source of positions', () => {
    const ledEnd = (topic: string, partition: number): number | undefined => (topic === 'orders' && partition === 0 ? 100 : undefined);
    expect(consumerLag([durables, groups], { end: ledEnd })).toEqual([
      { kind: 'durable', consumer: 'audit', topic: 'orders', partition: 0, offset: 120, end: 100, lag: 0 },
      { kind: 'durable', consumer: 'billing', topic: 'orders', partition: 0, offset: 40, end: 100, lag: 60 },
      { kind: 'group', consumer: 'g1', topic: 'orders', partition: 0, offset: 99, end: 100, lag: 1 },
    ]);
  });

  it('does not count offsets that hold no message (the backbone\'s holes) between the position and the end', () => {
    // Holes at offsets 41, 82 and 99 of orders/0 (a tracking chunk at each segment start).
    const holes = [41, 82, 99];
    const holesBetween = (_topic: string, _partition: number, from: number, to: number): number => holes.filter((h) => h >= from && h < to).length;
    const rows = consumerLag([durables, groups], { end: (topic, partition) => (topic === 'orders' && partition === 0 ? 100 : undefined), holesBetween });
    expect(rows.map((r) => [r.consumer, r.offset, r.lag])).toEqual([
      ['audit', 120, 0],
      ['billing', 40, 57],
      ['g1', 99, 0],
    ]);
  });

  it('keeps the largest lags when there are more rows than the bound', () => {
    const rows = consumerLag([durables, groups], { end: () => 100 }, 2);
    expect(rows.map((r) => [r.consumer, r.lag])).toEqual([
      ['billing', 60],
      ['billing', 93],
    ]);
  });
});

describe('message browser', () => {
  it('validates its query', () => {
    const q = (s: string): ReturnType<typeof parseBrowseQuery> => parseBrowseQuery(new URLSearchParams(s));
    expect(q('topic=orders&partition=2&count=5&from=10')).toEqual({ topic: 'orders', partition: 2, count: 5, from: 10 });
    expect(q('topic=orders')).toEqual({ topic: 'orders', partition: 0, count: 20, from: undefined });
    expect(q('')).toBe('topic: topic is required');
    expect(q('topic=a.*')).toMatch(/^topic: /);
    expect(q('topic=a&partition=-1')).toBe('partition must be a non-negative integer');
    expect(q(`topic=a&count=${BROWSE_MAX_MESSAGES + 1}`)).toBe(`count must be an integer from 1 to ${BROWSE_MAX_MESSAGES}`);
    expect(q('topic=a&count=0')).toMatch(/^count must be/);
    expect(q('topic=a&from=1e3')).toMatch(/^from must be/);
  });

  const messages = [
    { offset: 5, timestamp: 1, encoding: 'msgpack' as const, data: encodeValue({ id: 7, blob: new Uint8Array([1, 2]) }) },
    { offset: 6, timestamp: 2, encoding: 'raw' as const, data: new TextEncoder().encode('héllo'), key: 'k' },
    { offset: 7, timestamp: 3, encoding: 'raw' as const, data: new Uint8Array([0xff, 0xfe]) },
  ];
  const source: BrowseSource = {
    partitionCount: (topic) => (topic === 'orders' ? 1 : undefined),
    bounds: async () => ({ start: 5, end: 8 }),
    read: async (_t, _p, offset, max) => messages.filter((m) => m.offset >= offset).slice(0, max),
  };

  it('reads the last N messages or N from an offset, decoded as JSON or text where they can be', async () => {
    const last = await browse(source, { topic: 'orders', partition: 0, count: 2, from: undefined });
    expect(typeof last !== 'string' && last.messages.map((m) => m.offset)).toEqual([6, 7]);
    const all = await browse(source, { topic: 'orders', partition: 0, count: 50, from: 0 });
    if (typeof all === 'string') throw new Error(all);
    expect(all.messages.map((m) => [m.offset, m.json, m.text, m.data])).toEqual([
      [5, { id: 7, blob: { $bytes: 'AQI=' } }, null, Buffer.from(messages[0]?.data ?? []).toString('base64')],
      [6, null, 'héllo', Buffer.from('héllo').toString('base64')],
      [7, null, null, '//4='],
    ]);
    expect(await browse(source, { topic: 'nope', partition: 0, count: 1, from: undefined })).toBe('topic nope does not exist');
    expect(await browse(source, { topic: 'orders', partition: 3, count: 1, from: undefined })).toBe('topic orders has 1 partition');
  });
});

describe('parseBrokerReport', () => {
  it('refuses a malformed report from a peer', () => {
    expect(() => parseBrokerReport({ broker: 'b2' })).toThrow(/malformed broker report/);
    expect(() => parseBrokerReport(null)).toThrow(/malformed broker report/);
  });

  it('takes the moves of a report when there are any, and a report without them (an older broker)', () => {
    const base = { broker: 'b1', url: 'ws://b1', timeMs: 1, ready: true, metadataLeader: 'b1', members: [], partitions: [], connections: 0, subscriptions: 0, series: [], topicRates: [], stores: [], disk: null, consumers: [], topics: [], events: [] };
    expect(parseBrokerReport(base).moves).toBeUndefined();
    const move = { topic: 'orders', partition: 2, from: 'b1', to: 'b4', startedAtMs: 5, phase: 'catching-up', copiedBytes: 100, totalBytes: 400, bytesPerSecond: 50, timeLeftMs: 6000, error: null };
    expect(parseBrokerReport({ ...base, moves: [move, { ...move, partition: 3, copiedBytes: null, totalBytes: null, bytesPerSecond: null, timeLeftMs: null, error: 'NOT_LEADER' }] }).moves).toHaveLength(2);
    expect(() => parseBrokerReport({ ...base, moves: [{ ...move, copiedBytes: -1 }] })).toThrow(/malformed broker report \(moves\)/);
    expect(() => parseBrokerReport({ ...base, moves: [{ ...move, topic: 7 }] })).toThrow(/malformed broker report \(moves\)/);
  });
});
