import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { decodeBrokerFrame, decodeClientFrame, decodePayload, decodeValue, decodeValueInPlace, encodeFrame, encodePayload, encodeValue } from './codec.js';
import { ErrorCodes, RelayError } from './errors.js';
import type {
  AckFrame,
  BrokerFrame,
  BrokerInfo,
  ClientFrame,
  ClusterView,
  Cursor,
  DeliveryBatch,
  OutgoingMessage,
  PublishBatch,
  StartPosition,
  StoredMessageFrame,
} from './frames.js';
import { FIELD_LIMITS } from './validate.js';

const MAX_PAYLOAD = 1 << 20;
/** A limit high enough that only validation, never the size check, can refuse a frame. */
const UNLIMITED = Number.MAX_SAFE_INTEGER;

// ---- arbitraries ------------------------------------------------------------

// Any Unicode scalar value. (fast-check's built-in 'binary' unit costs ~1 s of setup on first use.)
const codePointArb = fc
  .oneof(
    { arbitrary: fc.integer({ min: 0, max: 0x7f }), weight: 4 },
    { arbitrary: fc.integer({ min: 0x80, max: 0xd7ff }), weight: 1 },
    { arbitrary: fc.integer({ min: 0xe000, max: 0x10ffff }), weight: 1 },
  )
  .map((c) => String.fromCodePoint(c));
/** Strings of at most `max` code points (so at most 2 × max UTF-16 units). */
const textArb = (max: number): fc.Arbitrary<string> => fc.string({ unit: codePointArb, maxLength: max });

/** Ids, offsets, counts: small ones (fixints, including 64..127 that msgpackr records would hijack) up to 2^53 - 1. */
const uintArb = fc.oneof(fc.nat({ max: 300 }), fc.nat(), fc.maxSafeNat());

const SEGMENT_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-';
const segmentArb = fc.oneof(
  { arbitrary: fc.string({ unit: fc.constantFrom(...SEGMENT_CHARS), minLength: 1, maxLength: 10 }), weight: 4 },
  { arbitrary: fc.string({ unit: fc.constantFrom(...SEGMENT_CHARS), minLength: 1, maxLength: 90 }), weight: 1 },
);

/** Joins segments, keeping as many leading ones as fit in 255 bytes (always at least the first). */
function fit(segments: readonly string[]): string {
  let out = segments[0] as string;
  for (let i = 1; i < segments.length; i++) {
    const next = `${out}.${segments[i] as string}`;
    if (next.length > 255) break;
    out = next;
  }
  return out;
}

const topicArb = fc.array(segmentArb, { minLength: 1, maxLength: 8 }).map(fit);

const patternArb = fc
  .tuple(
    fc.array(fc.oneof({ arbitrary: segmentArb, weight: 3 }, { arbitrary: fc.constant('*'), weight: 1 }), { minLength: 1, maxLength: 6 }),
    fc.boolean(),
  )
  .map(([segments, tail]) => {
    const head = fit(segments);
    return tail && head.length <= 253 ? `${head}.>` : head;
  });

const bytesArb = fc.uint8Array({ maxLength: 64 });
const headerNameArb = textArb(12).filter((name) => name !== '__proto__'); // msgpackr renames __proto__ keys
const headersArb = fc.dictionary(headerNameArb, textArb(16), { maxKeys: 4, noNullPrototype: true });
const encodingArb = fc.constantFrom('raw' as const, 'msgpack' as const);
const ackLevelArb = fc.constantFrom('none' as const, 'leader' as const, 'quorum' as const, 'all' as const);
const codeArb = fc.oneof(fc.constantFrom(...ErrorCodes), fc.stringMatching(/^[A-Z_]{1,64}$/));
const idStringArb = textArb(24);

const outgoingMessageArb: fc.Arbitrary<OutgoingMessage> = fc.record(
  { data: bytesArb, encoding: encodingArb, key: textArb(24), headers: headersArb },
  { requiredKeys: ['data'] },
);

const publishBatchArb: fc.Arbitrary<PublishBatch> = fc.record({
  topic: topicArb,
  partition: uintArb,
  ack: ackLevelArb,
  firstId: uintArb,
  firstSeq: uintArb,
  messages: fc.array(outgoingMessageArb, { maxLength: 4 }),
});

const storedMessageArb: fc.Arbitrary<StoredMessageFrame> = fc.record(
  { timestamp: uintArb, data: bytesArb, encoding: encodingArb, key: textArb(24), headers: headersArb },
  { requiredKeys: ['timestamp', 'data'] },
);

const deliveryBatchArb: fc.Arbitrary<DeliveryBatch> = fc.record({
  topic: topicArb,
  partition: uintArb,
  firstOffset: uintArb,
  messages: fc.array(storedMessageArb, { maxLength: 4 }),
  incarnation: uintArb,
}, { requiredKeys: ['topic', 'partition', 'firstOffset', 'messages'] });

const cursorArb: fc.Arbitrary<Cursor> = fc.record({ topic: topicArb, partition: uintArb, offset: uintArb });

const DURABLE_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-';
const durableArb = fc.string({ unit: fc.constantFrom(...DURABLE_CHARS), minLength: 1, maxLength: 128 });

const startPositionArb: fc.Arbitrary<StartPosition> = fc.oneof(
  fc.constant('new' as const),
  fc.constant('earliest' as const),
  fc.record({ offset: uintArb }),
  fc.record({ time: uintArb }),
);

const brokerInfoArb: fc.Arbitrary<BrokerInfo> = fc.record(
  {
    id: idStringArb,
    url: fc.webUrl(),
    state: fc.constantFrom('alive' as const, 'suspect' as const, 'dead' as const),
    load: fc.record({ connections: uintArb, partitionsLed: uintArb }),
  },
  { requiredKeys: ['id', 'url', 'state'] },
);

const clusterArb: fc.Arbitrary<ClusterView> = fc.record({ brokers: fc.array(brokerInfoArb, { maxLength: 4 }) });

const pingArb = fc.record({ type: fc.constant('ping' as const), id: uintArb });
const pongArb = fc.record({ type: fc.constant('pong' as const), id: uintArb });

/** One arbitrary per client frame type, by type. */
const clientFrameArbs = {
  hello: fc.record(
    {
      type: fc.constant('hello' as const),
      version: uintArb,
      clientId: idStringArb,
      producerId: idStringArb,
      token: textArb(64),
    },
    { requiredKeys: ['type', 'version', 'clientId', 'producerId'] },
  ),
  publish: fc.record({ type: fc.constant('publish' as const), batches: fc.array(publishBatchArb, { maxLength: 3 }) }),
  subscribe: fc.record(
    {
      type: fc.constant('subscribe' as const),
      id: uintArb,
      subscription: uintArb,
      pattern: patternArb,
      from: startPositionArb,
      resume: fc.array(cursorArb, { maxLength: 4 }),
      credit: uintArb,
      durable: durableArb,
    },
    { requiredKeys: ['type', 'id', 'subscription', 'pattern', 'from', 'resume', 'credit'] },
  ),
  commit: fc.record({
    type: fc.constant('commit' as const),
    id: uintArb,
    durable: durableArb,
    positions: fc.array(cursorArb, { maxLength: 4 }),
  }),
  credit: fc.record({ type: fc.constant('credit' as const), subscription: uintArb, credit: uintArb }),
  unsubscribe: fc.record({ type: fc.constant('unsubscribe' as const), id: uintArb, subscription: uintArb }),
  metadata: fc.record({ type: fc.constant('metadata' as const), id: uintArb, topics: fc.array(topicArb, { maxLength: 4 }) }),
  'group-commit': fc.record(
    {
      type: fc.constant('group-commit' as const),
      id: uintArb,
      group: durableArb,
      member: durableArb,
      positions: fc.array(fc.record({ topic: topicArb, partition: uintArb, offset: uintArb, epoch: uintArb }), { maxLength: 4 }),
      release: fc.constant(true as const),
      leave: fc.constant(true as const),
    },
    { requiredKeys: ['type', 'id', 'group', 'member', 'positions'] },
  ),
  'group-heartbeat': fc.record({ type: fc.constant('group-heartbeat' as const), id: uintArb, group: durableArb, member: durableArb }),
  ping: pingArb,
  pong: pongArb,
} satisfies { [T in ClientFrame['type']]: fc.Arbitrary<Extract<ClientFrame, { type: T }>> };

/** One arbitrary per broker frame type, by type. */
const brokerFrameArbs = {
  welcome: fc.record({
    type: fc.constant('welcome' as const),
    version: uintArb,
    brokerId: idStringArb,
    clientId: idStringArb,
    producerId: idStringArb,
    cluster: clusterArb,
    limits: fc.record({ maxPayload: uintArb, dedupeWindow: uintArb, maxCredit: uintArb }),
    heartbeatMs: uintArb,
  }),
  ack: fc.record({
    type: fc.constant('ack' as const),
    acks: fc.array(fc.record({ id: uintArb, offset: uintArb, count: uintArb, duplicate: fc.boolean() }), { maxLength: 6 }),
  }),
  nack: fc.record(
    {
      type: fc.constant('nack' as const),
      id: uintArb,
      code: codeArb,
      message: textArb(40),
      leader: idStringArb,
      expectedSeq: uintArb,
    },
    { requiredKeys: ['type', 'id', 'code', 'message'] },
  ),
  subscribed: fc.record({
    type: fc.constant('subscribed' as const),
    id: uintArb,
    subscription: uintArb,
    cursors: fc.array(cursorArb, { maxLength: 4 }),
  }),
  message: fc.record({
    type: fc.constant('message' as const),
    subscription: uintArb,
    batches: fc.array(deliveryBatchArb, { maxLength: 3 }),
  }),
  unsubscribed: fc.record({ type: fc.constant('unsubscribed' as const), id: uintArb, subscription: uintArb }),
  committed: fc.record({ type: fc.constant('committed' as const), id: uintArb }),
  topics: fc.record({
    type: fc.constant('topics' as const),
    id: uintArb,
    topics: fc.array(fc.record({ topic: topicArb, partitions: uintArb }), { maxLength: 4 }),
  }),
  cluster: fc.record({ type: fc.constant('cluster' as const), cluster: clusterArb }),
  goaway: fc.record({ type: fc.constant('goaway' as const), code: codeArb, message: textArb(40) }),
  assignment: fc.record({
    type: fc.constant('assignment' as const),
    subscription: uintArb,
    partitions: fc.array(
      fc.record(
        { topic: topicArb, partition: uintArb, epoch: uintArb, offset: uintArb, revoking: fc.constant(true as const) },
        { requiredKeys: ['topic', 'partition', 'epoch'] },
      ),
      { maxLength: 4 },
    ),
  }),
  error: fc.record(
    { type: fc.constant('error' as const), code: codeArb, message: textArb(40), id: uintArb, subscription: uintArb, topic: textArb(40) },
    { requiredKeys: ['type', 'code', 'message'] },
  ),
  ping: pingArb,
  pong: pongArb,
} satisfies { [T in BrokerFrame['type']]: fc.Arbitrary<Extract<BrokerFrame, { type: T }>> };

const clientFrameArb: fc.Arbitrary<ClientFrame> = fc.oneof(...Object.values(clientFrameArbs));
const brokerFrameArb: fc.Arbitrary<BrokerFrame> = fc.oneof(...Object.values(brokerFrameArbs));

// ---- helpers ----------------------------------------------------------------

/**
 * A deep copy made of plain objects, arrays and plain Uint8Arrays (msgpackr
 * hands out Buffers), so that `toStrictEqual` compares content and keys only.
 */
function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return Uint8Array.from(value);
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

type Outcome = { ok: true; frame: unknown } | { ok: false; error: unknown };

function attempt(decode: () => unknown): Outcome {
  try {
    return { ok: true, frame: decode() };
  } catch (error) {
    return { ok: false, error };
  }
}

/** Asserts that `decode` throws a RelayError with `code`, and returns it. */
function expectRelayError(decode: () => unknown, code: 'PROTOCOL_ERROR' | 'PAYLOAD_TOO_LARGE' = 'PROTOCOL_ERROR'): RelayError {
  const outcome = attempt(decode);
  expect(outcome.ok, 'expected the decode to throw').toBe(false);
  const error = outcome.ok ? undefined : outcome.error;
  expect(error).toBeInstanceOf(RelayError);
  const relayError = error as RelayError;
  expect(relayError.code).toBe(code);
  return relayError;
}

/**
 * The hostile-input contract: decoding either yields a frame that is itself
 * valid (it encodes and decodes again) or throws a RelayError with one of the
 * two decoding codes. Any other exception fails the property.
 */
function expectOnlyProtocolErrors(bytes: Uint8Array): void {
  const decoders = [
    (b: Uint8Array): unknown => decodeClientFrame(b, MAX_PAYLOAD),
    (b: Uint8Array): unknown => decodeBrokerFrame(b, MAX_PAYLOAD),
  ] as const;
  for (const decode of decoders) {
    const outcome = attempt(() => decode(bytes));
    if (outcome.ok) {
      const again = attempt(() => decode(encodeFrame(outcome.frame as ClientFrame | BrokerFrame)));
      expect(again.ok ? undefined : again.error).toBeUndefined();
    } else {
      if (!(outcome.error instanceof RelayError)) throw outcome.error;
      expect(['PROTOCOL_ERROR', 'PAYLOAD_TOO_LARGE']).toContain(outcome.error.code);
    }
  }
}

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; byte: number }
  | { kind: 'insert'; at: number; byte: number }
  | { kind: 'delete'; at: number }
  | { kind: 'truncate'; at: number };

/** Bytes that mean something to msgpack: headers of containers, long lengths, extensions, the unused 0xc1. */
const interestingByteArb = fc.oneof(
  fc.integer({ min: 0, max: 255 }),
  fc.constantFrom(0x00, 0x40, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc4, 0xc7, 0xcb, 0xcf, 0xd4, 0xd6, 0xd7, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xff),
);

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: interestingByteArb }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), byte: interestingByteArb }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
);

/** Applies mutations to a copy; `at` is taken modulo the current length. */
function mutate(original: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let bytes = Uint8Array.from(original);
  for (const m of mutations) {
    const at = bytes.length === 0 ? 0 : m.at % bytes.length;
    switch (m.kind) {
      case 'flip':
        if (bytes.length > 0) bytes[at] = (bytes[at] as number) ^ (1 << m.bit);
        break;
      case 'set':
        if (bytes.length > 0) bytes[at] = m.byte;
        break;
      case 'insert': {
        const next = new Uint8Array(bytes.length + 1);
        next.set(bytes.subarray(0, at));
        next[at] = m.byte;
        next.set(bytes.subarray(at), at + 1);
        bytes = next;
        break;
      }
      case 'delete':
        bytes = Uint8Array.from([...bytes.subarray(0, at), ...bytes.subarray(at + 1)]);
        break;
      case 'truncate':
        bytes = bytes.slice(0, at);
        break;
    }
  }
  return bytes;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

const hex = (text: string): Uint8Array =>
  Uint8Array.from(text.replace(/\s+/g, '').match(/../g) ?? [], (pair) => parseInt(pair, 16));

/** A msgpackr with defaults other than ours: it writes records, extensions and `undefined` as ext 0. */
const foreignPackr = new Packr({ useRecords: true, moreTypes: true, structuredClone: true, encodeUndefinedAsNil: false });
/** A msgpackr that writes plain maps but, unlike ours, keeps Maps (non-string keys) and extensions. */
const mapPackr = new Packr({ useRecords: false, mapsAsObjects: false, moreTypes: true, encodeUndefinedAsNil: false });

const validPing = (): ClientFrame => ({ type: 'ping', id: 1 });
const validBatch = (batch: Partial<PublishBatch> = {}, message: Partial<OutgoingMessage> = {}): PublishBatch => ({
  topic: 'orders.eu',
  partition: 0,
  ack: 'quorum',
  firstId: 1,
  firstSeq: 0,
  messages: [{ data: Uint8Array.of(1, 2), encoding: 'raw', ...message }],
  ...batch,
});
const validPublish = (batch: Partial<PublishBatch> = {}, message: Partial<OutgoingMessage> = {}): ClientFrame => ({
  type: 'publish',
  batches: [validBatch(batch, message)],
});

// ---- round trips ------------------------------------------------------------

describe('round trips', () => {
  it.each(Object.entries(clientFrameArbs))('client frame %s: decodeClientFrame(encodeFrame(f)) equals f', (_type, arb) => {
    fc.assert(
      fc.property(arb, (frame: ClientFrame) => {
        expect(plain(decodeClientFrame(encodeFrame(frame), MAX_PAYLOAD))).toStrictEqual(plain(frame));
      }),
      { numRuns: 150 },
    );
  });

  it.each(Object.entries(brokerFrameArbs))('broker frame %s: decodeBrokerFrame(encodeFrame(f)) equals f', (_type, arb) => {
    fc.assert(
      fc.property(arb, (frame: BrokerFrame) => {
        expect(plain(decodeBrokerFrame(encodeFrame(frame), MAX_PAYLOAD))).toStrictEqual(plain(frame));
      }),
      { numRuns: 150 },
    );
  });

  it('decodeValueInPlace gives byte strings as views into the bytes (decodeValue copies them), after the same structure check', () => {
    const value = { t: 'normal', d: { messages: [{ data: Uint8Array.of(1, 2, 3) }, { data: Uint8Array.of(4) }] } };
    const bytes = encodeValue(value);
    const inPlace = decodeValueInPlace(bytes) as typeof value;
    const copied = decodeValue(bytes) as typeof value;
    expect(plain(inPlace)).toStrictEqual(plain(value));
    expect(plain(copied)).toStrictEqual(plain(value));
    for (const m of inPlace.d.messages) expect(m.data.buffer).toBe(bytes.buffer);
    for (const m of copied.d.messages) expect(m.data.buffer).not.toBe(bytes.buffer);
    expectRelayError(() => decodeValueInPlace(new Packr({ useRecords: true }).pack({ type: 'ping', id: 1 })));
    expectRelayError(() => decodeValueInPlace(concat(new Uint8Array(100).fill(0x91), Uint8Array.of(0xc0))));
  });

  it('decodes a frame that sits inside a larger buffer', () => {
    const frame = validPublish();
    const bytes = encodeFrame(frame);
    const backing = concat(Uint8Array.of(0xc1, 0xc1), bytes, Uint8Array.of(0xc1));
    const view = backing.subarray(2, 2 + bytes.length);
    expect(plain(decodeClientFrame(view, MAX_PAYLOAD))).toStrictEqual(plain(frame));
  });

  it('hands applications data that does not alias the receive buffer (broker frames)', () => {
    const bytes = Uint8Array.from(
      encodeFrame({ type: 'message', subscription: 1, batches: [{ topic: 't', partition: 0, firstOffset: 0, messages: [{ timestamp: 1, data: new Uint8Array([1, 2]) }] }] }),
    );
    const decoded = decodeBrokerFrame(bytes, MAX_PAYLOAD);
    bytes.fill(0);
    expect(decoded.type === 'message' && Array.from(decoded.batches[0]?.messages[0]?.data ?? [])).toEqual([1, 2]);
  });

  it('packs small delivered data into shared 8 KiB chunks and gives large data a copy of its own: a message kept pins neither its frame nor more than 8 KiB', () => {
    const sizes = [0, 1, 100, 4096, 4097, 9000, ...Array.from({ length: 200 }, (_, i) => 1 + ((i * 37) % 300))];
    const messages = sizes.map((size, i) => ({ timestamp: i, data: Uint8Array.from({ length: size }, (_, k) => (i + k) & 0xff) }));
    // A Node Buffer, as a socket hands over: its `slice` is a view, so copies must not use it.
    const bytes = Buffer.from(encodeFrame({ type: 'message', subscription: 1, batches: [{ topic: 't', partition: 0, firstOffset: 0, messages }] }));
    const decoded = decodeBrokerFrame(bytes, MAX_PAYLOAD);
    const data = decoded.type === 'message' ? (decoded.batches[0]?.messages ?? []).map((m) => m.data) : [];
    bytes.fill(0);
    expect(data.map((d) => Array.from(d))).toEqual(messages.map((m) => Array.from(m.data)));
    for (const d of data) {
      expect(d.buffer).not.toBe(bytes.buffer);
      expect(d.buffer.byteLength).toBe(d.length > 4096 ? d.length : 8192);
    }
    // Shared: far fewer chunks than messages.
    expect(new Set(data.map((d) => d.buffer)).size).toBeLessThan(20);
  });

  it("carries a delivery batch's hole (from) and refuses one not below firstOffset", () => {
    const frame = (from: number): Uint8Array =>
      encodeFrame({ type: 'message', subscription: 1, batches: [{ topic: 't', partition: 0, firstOffset: 41, from, messages: [{ timestamp: 1, data: new Uint8Array([1]) }] }] });
    const decoded = decodeBrokerFrame(frame(40), MAX_PAYLOAD);
    expect(decoded.type === 'message' ? decoded.batches[0]?.from : undefined).toBe(40);
    expect(() => decodeBrokerFrame(frame(41), MAX_PAYLOAD)).toThrow(/from must be below firstOffset/);
  });

  it('lets the broker keep client message bytes as views into the frame (no copy per message)', () => {
    const bytes = Uint8Array.from(encodeFrame(validPublish()));
    const decoded = decodeClientFrame(bytes, MAX_PAYLOAD);
    const data = decoded.type === 'publish' ? decoded.batches[0]?.messages[0]?.data : undefined;
    expect(data?.buffer).toBe(bytes.buffer);
    expect(Array.from(data ?? [])).toEqual([1, 2]);
  });

  it('drops unknown fields and keeps only what the frame type defines', () => {
    const bytes = encodeValue({ type: 'ping', id: 3, extra: 'x', nested: { a: 1 } });
    expect(plain(decodeClientFrame(bytes, MAX_PAYLOAD))).toStrictEqual({ type: 'ping', id: 3 });
  });

  it('treats nil optional fields as absent', () => {
    const bytes = encodeValue({ type: 'error', code: 'INTERNAL', message: 'x', id: null });
    expect(plain(decodeBrokerFrame(bytes, MAX_PAYLOAD))).toStrictEqual({ type: 'error', code: 'INTERNAL', message: 'x' });
  });

  it('keeps the subscription (and topic) an error frame names: the broker ended that subscription, or one topic of it', () => {
    const ended = encodeValue({ type: 'error', code: 'INVALID_TOPIC', message: 'topic orders was deleted', subscription: 7 });
    expect(plain(decodeBrokerFrame(ended, MAX_PAYLOAD))).toStrictEqual({ type: 'error', code: 'INVALID_TOPIC', message: 'topic orders was deleted', subscription: 7 });
    const oneTopic = encodeValue({ type: 'error', code: 'INVALID_TOPIC', message: 'm', subscription: 2, topic: 'orders' });
    expect(plain(decodeBrokerFrame(oneTopic, MAX_PAYLOAD))).toStrictEqual({ type: 'error', code: 'INVALID_TOPIC', message: 'm', subscription: 2, topic: 'orders' });
    expectRelayError(() => decodeBrokerFrame(encodeValue({ type: 'error', code: 'INVALID_TOPIC', message: 'm', subscription: -1 }), MAX_PAYLOAD));
  });

  it('round-trips msgpack payloads, dates of any era included', () => {
    const valueArb = fc.record({
      n: fc.integer(),
      s: textArb(20),
      b: bytesArb,
      at: fc.date({ noInvalidDate: true }),
      list: fc.array(fc.oneof(fc.boolean(), fc.constant(null), fc.maxSafeInteger()), { maxLength: 5 }),
    });
    fc.assert(
      fc.property(valueArb, (value) => {
        expect(plain(decodePayload(encodePayload(value)))).toStrictEqual(plain(value));
      }),
      { numRuns: 300 },
    );
  });
});

// ---- hostile input ----------------------------------------------------------

describe('hostile input', () => {
  it('random bytes produce a frame or a protocol error, never another exception', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 128 }), expectOnlyProtocolErrors), { numRuns: 1500 });
  });

  it('random bytes behind a map header produce a frame or a protocol error', () => {
    // Random bytes rarely start a map; these get past the first check and into the field readers.
    const arb = fc.tuple(fc.integer({ min: 0x80, max: 0x8f }), fc.uint8Array({ maxLength: 128 }));
    fc.assert(fc.property(arb, ([header, rest]) => expectOnlyProtocolErrors(concat(Uint8Array.of(header), rest))), { numRuns: 1500 });
  });

  it('mutated client frames produce a frame or a protocol error', () => {
    const arb = fc.tuple(clientFrameArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 }));
    fc.assert(fc.property(arb, ([frame, mutations]) => expectOnlyProtocolErrors(mutate(encodeFrame(frame), mutations))), { numRuns: 2000 });
  });

  it('mutated broker frames produce a frame or a protocol error', () => {
    const arb = fc.tuple(brokerFrameArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 }));
    fc.assert(fc.property(arb, ([frame, mutations]) => expectOnlyProtocolErrors(mutate(encodeFrame(frame), mutations))), { numRuns: 2000 });
  });

  it('frames of wrongly typed fields produce a protocol error', () => {
    // A valid frame with one field replaced by a value of another msgpack type.
    const wrongArb = fc.oneof(
      fc.constant(null),
      fc.boolean(),
      fc.integer({ min: -5, max: 5 }),
      fc.double(),
      fc.string({ maxLength: 5 }),
      fc.uint8Array({ maxLength: 3 }),
      fc.array(fc.nat(), { maxLength: 2 }),
      fc.constant({ toString: 0, valueOf: 0 }),
      fc.constant([{ toString: 0 }]),
      fc.constant({}),
    );
    const arb = fc.tuple(fc.oneof(clientFrameArb, brokerFrameArb), fc.nat(), wrongArb);
    fc.assert(
      fc.property(arb, ([frame, which, wrong]) => {
        const fields = Object.keys(frame);
        const field = fields[which % fields.length] as string;
        const bytes = encodeValue({ ...frame, [field]: wrong });
        expectOnlyProtocolErrors(bytes);
      }),
      { numRuns: 1000 },
    );
  });

  it('a non-string frame type is a protocol error, even a map with its own toString', () => {
    // Regression: the unknown-type message used String(type), which throws a TypeError on such maps.
    for (const type of [{ toString: 0 }, { toString: 0, valueOf: 0 }, [{ valueOf: 0 }], 7, true, null, Uint8Array.of(1), {}]) {
      const bytes = encodeValue({ type, id: 1 });
      expect(expectRelayError(() => decodeClientFrame(bytes, MAX_PAYLOAD)).message).toMatch(/unknown client frame type/);
      expect(expectRelayError(() => decodeBrokerFrame(bytes, MAX_PAYLOAD)).message).toMatch(/unknown broker frame type/);
    }
  });
});

// ---- explicit cases ---------------------------------------------------------

describe('extension types are rejected anywhere', () => {
  const cases: [string, unknown][] = [
    ['Date', new Date(0)],
    ['Date with milliseconds', new Date(1_700_000_000_123)],
    ['Date before 1970', new Date(-1_000)],
    ['invalid Date', new Date(Number.NaN)],
    ['Set', new Set([1])],
    ['RegExp', /relay/g],
    ['Error', new Error('x')],
    ['Float32Array', new Float32Array([1])],
    ['undefined (ext 0)', undefined],
  ];

  it.each(cases)('%s as a whole frame', (_name, value) => {
    const bytes = foreignPackr.pack(value);
    expectRelayError(() => decodeClientFrame(bytes, MAX_PAYLOAD));
    expectRelayError(() => decodeBrokerFrame(bytes, MAX_PAYLOAD));
  });

  it.each(cases)('%s as a top-level field', (_name, value) => {
    const bytes = mapPackr.pack(new Map<unknown, unknown>([['type', 'ping'], ['id', 1], ['extra', value]]));
    expect(bytes.some((b) => b === 0xd4 || b === 0xd6 || b === 0xd7 || b === 0xc7)).toBe(true);
    expectRelayError(() => decodeClientFrame(bytes, MAX_PAYLOAD));
  });

  it.each(cases)('%s in a message header', (_name, value) => {
    const batch = validBatch();
    const bytes = mapPackr.pack({ type: 'publish', batches: [{ ...batch, messages: [{ ...batch.messages[0], headers: { h: value } }] }] });
    expectRelayError(() => decodeClientFrame(bytes, MAX_PAYLOAD));
  });

  it.each([
    ['fixext 1', 'd4 01 00'],
    ['fixext 2', 'd5 01 00 00'],
    ['fixext 4 timestamp', 'd6 ff 00 00 00 00'],
    ['fixext 8 timestamp', 'd7 ff 00 00 00 00 00 00 00 00'],
    ['fixext 16', `d8 01 ${'00 '.repeat(16)}`],
    ['ext 8 timestamp', `c7 0c ff ${'00 '.repeat(12)}`],
    ['ext 16', 'c8 00 01 05 00'],
    ['ext 32', 'c9 00 00 00 01 05 00'],
  ])('raw %s as the id of a ping', (_name, ext) => {
    // { type: 'ping', id: <ext> }
    const bytes = concat(hex('82 a4 74797065 a4 70696e67 a2 6964'), hex(ext));
    expectRelayError(() => decodeClientFrame(bytes, MAX_PAYLOAD));
  });

  it('allows timestamps inside a msgpack payload, but no other extension', () => {
    expect(decodePayload(encodePayload({ at: new Date(1_700_000_000_123) }))).toEqual({ at: new Date(1_700_000_000_123) });
    expect(() => decodePayload(foreignPackr.pack({ s: new Set([1]) }))).toThrowError(expect.objectContaining({ code: 'PROTOCOL_ERROR' }));
    expect(() => decodePayload(foreignPackr.pack([undefined]))).toThrowError(expect.objectContaining({ code: 'PROTOCOL_ERROR' }));
  });
});

describe('msgpackr record definitions', () => {
  it('are rejected, with or without a use of the record', () => {
    const withRecords = new Packr({ useRecords: true });
    const recordFrame = withRecords.pack({ type: 'ping', id: 1 });
    expect(Array.from(recordFrame.subarray(0, 2))).toEqual([0xd4, 0x72]);
    expectRelayError(() => decodeClientFrame(recordFrame, MAX_PAYLOAD));
    expectRelayError(() => decodeBrokerFrame(recordFrame, MAX_PAYLOAD));
    // A bare definition of record 0x40 with keys [type, id], then the value 0x40 would stand for.
    const definition = hex('d4 72 40 92 a4 74797065 a2 6964');
    expectRelayError(() => decodeClientFrame(concat(definition, hex('a4 70696e67 01')), MAX_PAYLOAD));
    expectRelayError(() => decodeClientFrame(hex('92 d4 72 40 92 a4 74797065 a2 6964 40'), MAX_PAYLOAD));
  });

  it('do not poison later decoding of small integers 64..127', () => {
    const poison = [
      new Packr({ useRecords: true }).pack({ type: 'ping', id: 1 }),
      new Packr({ useRecords: true }).pack([{ type: 'ping', id: 1 }, { type: 'ping', id: 2 }]),
      hex('d4 72 40 92 a4 74797065 a2 6964 a4 70696e67 01'),
    ];
    for (const bytes of poison) {
      expectRelayError(() => decodeClientFrame(bytes, MAX_PAYLOAD));
      for (let n = 64; n <= 127; n++) {
        expect(decodeClientFrame(encodeFrame({ type: 'ping', id: n }), MAX_PAYLOAD)).toEqual({ type: 'ping', id: n });
      }
      const frame = validPublish({ firstId: 64, partition: 100, firstSeq: 127 }, { data: Uint8Array.of(64, 65, 127) });
      expect(plain(decodeClientFrame(encodeFrame(frame), MAX_PAYLOAD))).toStrictEqual(plain(frame));
      const ack: AckFrame = { type: 'ack', acks: [{ id: 64, offset: 127, count: 100, duplicate: false }] };
      expect(decodeBrokerFrame(encodeFrame(ack), MAX_PAYLOAD)).toEqual(ack);
      expect(decodeValue(encodeValue([64, 90, 127]))).toEqual([64, 90, 127]);
    }
  });
});

describe('limits', () => {
  it('rejects 10k levels of nesting without overflowing the stack', () => {
    const deep = concat(new Uint8Array(10_000).fill(0x91), Uint8Array.of(0xc0));
    expect(expectRelayError(() => decodeClientFrame(deep, MAX_PAYLOAD)).message).toMatch(/nests deeper/);
    const deepMaps = concat(...Array.from({ length: 10_000 }, () => hex('81 a1 61')), Uint8Array.of(0xc0));
    expectRelayError(() => decodeBrokerFrame(deepMaps, MAX_PAYLOAD));
    // The same depth inside a field of an otherwise valid frame, and inside a payload.
    const inField = concat(hex('82 a4 74797065 a4 70696e67 a2 6964'), deep);
    expectRelayError(() => decodeClientFrame(inField, MAX_PAYLOAD));
    expectRelayError(() => decodePayload(deep));
  });

  it('rejects an array32 declaring 2^32-1 elements with no bytes, quickly', () => {
    const start = performance.now();
    for (const header of ['dd ff ff ff ff', 'df ff ff ff ff', 'c6 ff ff ff ff', 'db ff ff ff ff']) {
      expectRelayError(() => decodeClientFrame(hex(header), MAX_PAYLOAD));
      expectRelayError(() => decodePayload(hex(header)));
      // The same lie inside a frame: { type: 'metadata', id: 1, topics: <array32 of 2^32-1> }
      const inField = concat(hex('83 a4 74797065 a8 6d65746164617461 a2 6964 01 a6 746f70696373'), hex(header));
      expectRelayError(() => decodeClientFrame(inField, MAX_PAYLOAD));
    }
    expect(performance.now() - start).toBeLessThan(1000);
  });

  it('refuses a frame bigger than maxPayload before decoding it', () => {
    const frame = encodeFrame(validPing());
    expect(expectRelayError(() => decodeClientFrame(frame, frame.length - 1), 'PAYLOAD_TOO_LARGE').message).toMatch(/exceeds maxPayload/);
    expect(decodeClientFrame(frame, frame.length)).toEqual(validPing());
    // Garbage that would be a PROTOCOL_ERROR if decoded is PAYLOAD_TOO_LARGE: the size comes first.
    const garbage = new Uint8Array(MAX_PAYLOAD + 1).fill(0xc1);
    expectRelayError(() => decodeClientFrame(garbage, MAX_PAYLOAD), 'PAYLOAD_TOO_LARGE');
    expectRelayError(() => decodeBrokerFrame(garbage, MAX_PAYLOAD), 'PAYLOAD_TOO_LARGE');
    expectRelayError(() => decodeBrokerFrame(Uint8Array.of(0xc0), 0), 'PAYLOAD_TOO_LARGE');
  });

  it('rejects more than FIELD_LIMITS.maxBatch messages per frame, in one batch or summed over batches', () => {
    const max = FIELD_LIMITS.maxBatch;
    const outgoing: OutgoingMessage = { data: new Uint8Array(0) };
    const publish = (...sizes: number[]): Uint8Array =>
      encodeFrame({ type: 'publish', batches: sizes.map((n) => validBatch({ messages: Array.from({ length: n }, () => outgoing) })) });
    const atLimit = decodeClientFrame(publish(max), UNLIMITED);
    expect(atLimit.type === 'publish' && atLimit.batches[0]?.messages.length).toBe(max);
    expect(decodeClientFrame(publish(max / 2, max / 2), UNLIMITED).type).toBe('publish');
    expectRelayError(() => decodeClientFrame(publish(max + 1), UNLIMITED));
    expect(expectRelayError(() => decodeClientFrame(publish(max / 2, max / 2 + 1), UNLIMITED)).message).toMatch(/more than/);
    expectRelayError(() => decodeClientFrame(publish(...Array.from({ length: max + 1 }, () => 0)), UNLIMITED));

    const stored: StoredMessageFrame = { timestamp: 0, data: new Uint8Array(0) };
    const deliver = (...sizes: number[]): Uint8Array =>
      encodeFrame({
        type: 'message',
        subscription: 1,
        batches: sizes.map((n) => ({ topic: 't', partition: 0, firstOffset: 0, messages: Array.from({ length: n }, () => stored) })),
      });
    expect(decodeBrokerFrame(deliver(max), UNLIMITED).type).toBe('message');
    expectRelayError(() => decodeBrokerFrame(deliver(max + 1), UNLIMITED));
    expectRelayError(() => decodeBrokerFrame(deliver(max, 1), UNLIMITED));

    const acks = (n: number): Uint8Array =>
      encodeFrame({ type: 'ack', acks: Array.from({ length: n }, (_, i) => ({ id: i, offset: i, count: 1, duplicate: false })) });
    expect(decodeBrokerFrame(acks(max), UNLIMITED).type).toBe('ack');
    expectRelayError(() => decodeBrokerFrame(acks(max + 1), UNLIMITED));
  });

  it('rejects lists, headers, strings and cluster views beyond their limits', () => {
    const topics = Array.from({ length: FIELD_LIMITS.maxList + 1 }, () => 't');
    expectRelayError(() => decodeClientFrame(encodeValue({ type: 'metadata', id: 1, topics }), UNLIMITED));
    const headers = Object.fromEntries(Array.from({ length: FIELD_LIMITS.maxHeaders + 1 }, (_, i) => [`h${i}`, 'v']));
    expectRelayError(() => decodeClientFrame(encodeFrame(validPublish({}, { headers })), UNLIMITED));
    const longText = 'k'.repeat(FIELD_LIMITS.maxString + 1);
    expectRelayError(() => decodeClientFrame(encodeFrame(validPublish({}, { key: longText })), UNLIMITED));
    expectRelayError(() => decodeClientFrame(encodeFrame(validPublish({}, { headers: { [longText]: 'v' } })), UNLIMITED));
    expectRelayError(() => decodeClientFrame(encodeFrame(validPublish({}, { headers: { h: longText } })), UNLIMITED));
    expectRelayError(() => decodeClientFrame(encodeFrame({ type: 'hello', version: 1, clientId: 'c'.repeat(257), producerId: 'p' }), UNLIMITED));
    const broker: BrokerInfo = { id: 'b', url: 'ws://x', state: 'alive' };
    const cluster = { brokers: Array.from({ length: FIELD_LIMITS.maxBrokers + 1 }, () => broker) };
    expectRelayError(() => decodeBrokerFrame(encodeFrame({ type: 'cluster', cluster }), UNLIMITED));
  });
});

describe('frame shape', () => {
  it('rejects non-string map keys', () => {
    const withIntKey = mapPackr.pack(new Map<unknown, unknown>([['type', 'ping'], ['id', 1], [1, 2]]));
    expect(expectRelayError(() => decodeClientFrame(withIntKey, MAX_PAYLOAD)).message).toMatch(/map key is not a string/);
    const nested = mapPackr.pack({ type: 'publish', batches: [{ ...validBatch(), messages: [new Map<unknown, unknown>([[null, 1]])] }] });
    expectRelayError(() => decodeClientFrame(nested, MAX_PAYLOAD));
    const binKey = hex('82 a4 74797065 a4 70696e67 c4 02 6964 01');
    expectRelayError(() => decodeClientFrame(binKey, MAX_PAYLOAD));
  });

  it('rejects trailing bytes after a valid frame', () => {
    const frame = encodeFrame(validPing());
    for (const tail of [Uint8Array.of(0xc0), Uint8Array.of(0x00), frame]) {
      expect(expectRelayError(() => decodeClientFrame(concat(frame, tail), MAX_PAYLOAD)).message).toMatch(/trailing bytes/);
    }
  });

  it('rejects frames that are not maps', () => {
    for (const value of [null, 1, 'ping', [{ type: 'ping', id: 1 }], Uint8Array.of(1), true]) {
      expect(expectRelayError(() => decodeClientFrame(encodeValue(value), MAX_PAYLOAD)).message).toMatch(/frame must be a map/);
      expectRelayError(() => decodeBrokerFrame(encodeValue(value), MAX_PAYLOAD));
    }
    expectRelayError(() => decodeClientFrame(new Uint8Array(0), MAX_PAYLOAD));
  });

  it('rejects a broker frame given to decodeClientFrame, and the reverse', () => {
    const brokerOnly = fc.oneof(...Object.entries(brokerFrameArbs).filter(([t]) => t !== 'ping' && t !== 'pong').map(([, a]) => a));
    const clientOnly = fc.oneof(...Object.entries(clientFrameArbs).filter(([t]) => t !== 'ping' && t !== 'pong').map(([, a]) => a));
    fc.assert(
      fc.property(brokerOnly, (frame: BrokerFrame) => {
        expect(expectRelayError(() => decodeClientFrame(encodeFrame(frame), MAX_PAYLOAD)).message).toMatch(/unknown client frame type/);
      }),
      { numRuns: 200 },
    );
    fc.assert(
      fc.property(clientOnly, (frame: ClientFrame) => {
        expect(expectRelayError(() => decodeBrokerFrame(encodeFrame(frame), MAX_PAYLOAD)).message).toMatch(/unknown broker frame type/);
      }),
      { numRuns: 200 },
    );
  });

  it('rejects unknown and missing frame types', () => {
    for (const type of ['bogus', 'PING', 'ping ', '', 'constructor', '__proto__', 'toString']) {
      expectRelayError(() => decodeClientFrame(encodeValue({ type, id: 1 }), MAX_PAYLOAD));
      expectRelayError(() => decodeBrokerFrame(encodeValue({ type, id: 1 }), MAX_PAYLOAD));
    }
    expectRelayError(() => decodeClientFrame(encodeValue({ id: 1 }), MAX_PAYLOAD));
  });

  it.each(['orders.*', 'orders.>', '*', '>', 'a..b', '.a', '', 'caf\u00e9', 'x'.repeat(256)])('rejects topic %j where a topic is required', (topic) => {
    expect(expectRelayError(() => decodeClientFrame(encodeFrame(validPublish({ topic })), MAX_PAYLOAD)).message).toMatch(/topic/);
    expectRelayError(() => decodeClientFrame(encodeValue({ type: 'metadata', id: 1, topics: ['ok', topic] }), MAX_PAYLOAD));
    const cursor: Cursor = { topic, partition: 0, offset: 0 };
    expectRelayError(() =>
      decodeClientFrame(encodeFrame({ type: 'subscribe', id: 1, subscription: 1, pattern: '>', from: 'new', resume: [cursor], credit: 1 }), MAX_PAYLOAD),
    );
    expectRelayError(() => decodeBrokerFrame(encodeFrame({ type: 'subscribed', id: 1, subscription: 1, cursors: [cursor] }), MAX_PAYLOAD));
    expectRelayError(() => decodeBrokerFrame(encodeFrame({ type: 'topics', id: 1, topics: [{ topic, partitions: 1 }] }), MAX_PAYLOAD));
  });

  it.each([
    ['wildcards', 'orders.*.>', true],
    ['gt not last', '>.orders', false],
    ['empty segment', 'a..*', false],
    ['partial wildcard', 'ord*', false],
  ])('subscribe pattern with %s: accepted = %s', (_name, pattern, accepted) => {
    const bytes = encodeFrame({ type: 'subscribe', id: 1, subscription: 1, pattern, from: 'earliest', resume: [], credit: 10 });
    if (accepted) expect(decodeClientFrame(bytes, MAX_PAYLOAD)).toMatchObject({ pattern });
    else expect(expectRelayError(() => decodeClientFrame(bytes, MAX_PAYLOAD)).message).toMatch(/pattern/);
  });

  it.each([
    ['a negative firstId', { firstId: -1 }],
    ['a fractional firstSeq', { firstSeq: 1.5 }],
    ['a firstId beyond 2^53', { firstId: 2 ** 53 }],
    ['a string partition', { partition: '0' }],
    ['an unknown ack level', { ack: 'some' }],
    ['no ack level', { ack: null }],
    ['messages as a map', { messages: { 0: { data: Uint8Array.of(1) } } }],
  ])('rejects a publish batch with %s', (_name, change) => {
    expectRelayError(() => decodeClientFrame(encodeValue({ type: 'publish', batches: [{ ...validBatch(), ...change }] }), MAX_PAYLOAD));
  });

  it.each([
    ['an unknown encoding', { encoding: 'json' }],
    ['no data', { data: null }],
    ['data as a string', { data: 'bytes' }],
    ['data as an array', { data: [1, 2] }],
    ['headers as an array', { headers: ['a'] }],
    ['headers as bytes', { headers: Uint8Array.of(1) }],
    ['a numeric header value', { headers: { a: 1 } }],
    ['a numeric key', { key: 5 }],
  ])('rejects a published message with %s', (_name, change) => {
    const batch = validBatch();
    const bytes = encodeValue({ type: 'publish', batches: [{ ...batch, messages: [{ ...batch.messages[0], ...change }] }] });
    expectRelayError(() => decodeClientFrame(bytes, MAX_PAYLOAD));
  });

  it('reads an absent encoding as absent (raw), not as an error', () => {
    const frame: ClientFrame = { type: 'publish', batches: [{ ...validBatch(), messages: [{ data: Uint8Array.of(9) }] }] };
    expect(plain(decodeClientFrame(encodeFrame(frame), MAX_PAYLOAD))).toStrictEqual(plain(frame));
  });

  it.each([
    ['lower case', 'not_leader'],
    ['digits', 'E42'],
    ['too long', 'A'.repeat(65)],
    ['empty', ''],
  ])('rejects an error code that does not look like a code: %s', (_name, code) => {
    expectRelayError(() => decodeBrokerFrame(encodeValue({ type: 'error', code, message: 'x' }), MAX_PAYLOAD));
    expectRelayError(() => decodeBrokerFrame(encodeValue({ type: 'nack', id: 1, code, message: 'x' }), MAX_PAYLOAD));
  });

  it('keeps unknown but well-formed codes from a newer peer', () => {
    const frame: BrokerFrame = { type: 'goaway', code: 'FUTURE_CODE', message: 'bye' };
    expect(decodeBrokerFrame(encodeFrame(frame), MAX_PAYLOAD)).toEqual(frame);
  });

  it('rejects a subscribe whose from is not a start position', () => {
    for (const from of ['latest', 5, {}, { offset: -1 }, { time: 'now' }, null]) {
      expectRelayError(() =>
        decodeClientFrame(encodeValue({ type: 'subscribe', id: 1, subscription: 1, pattern: 'a', from, resume: [], credit: 1 }), MAX_PAYLOAD),
      );
    }
  });

  it.each([
    ['empty', ''],
    ['too long', 'd'.repeat(129)],
    ['a space', 'bill ing'],
    ['a slash', 'billing/eu'],
    ['a wildcard', 'billing.*'],
    ['a number', 7],
  ])('rejects a durable name that is %s, in subscribe and in commit', (_name, durable) => {
    const subscribe = { type: 'subscribe', id: 1, subscription: 1, pattern: 'a', from: 'new', resume: [], credit: 1, durable };
    expectRelayError(() => decodeClientFrame(encodeValue(subscribe), MAX_PAYLOAD));
    expectRelayError(() => decodeClientFrame(encodeValue({ type: 'commit', id: 1, durable, positions: [] }), MAX_PAYLOAD));
  });

  it('accepts a durable name of 128 characters and reads an absent one as absent', () => {
    const durable = 'd'.repeat(128);
    const commit: ClientFrame = { type: 'commit', id: 3, durable, positions: [{ topic: 'orders', partition: 1, offset: 9 }] };
    expect(plain(decodeClientFrame(encodeFrame(commit), MAX_PAYLOAD))).toStrictEqual(plain(commit));
    const subscribe = { type: 'subscribe', id: 1, subscription: 1, pattern: 'a', from: 'new', resume: [], credit: 1, durable: null };
    expect(decodeClientFrame(encodeValue(subscribe), MAX_PAYLOAD)).not.toHaveProperty('durable');
  });

  it('rejects a commit with more than FIELD_LIMITS.maxList positions or a bad cursor', () => {
    const positions = Array.from({ length: FIELD_LIMITS.maxList + 1 }, () => ({ topic: 'a', partition: 0, offset: 0 }));
    expectRelayError(() => decodeClientFrame(encodeValue({ type: 'commit', id: 1, durable: 'd', positions }), 64 * MAX_PAYLOAD));
    for (const bad of [{ topic: 'a.*', partition: 0, offset: 0 }, { topic: 'a', partition: -1, offset: 0 }, { topic: 'a', partition: 0, offset: 1.5 }]) {
      expectRelayError(() => decodeClientFrame(encodeValue({ type: 'commit', id: 1, durable: 'd', positions: [bad] }), MAX_PAYLOAD));
    }
  });
  it("carries a cursor's topic incarnation in subscribe resume, subscribed cursors and resets; absent stays absent", () => {
    const resume: Cursor[] = [{ topic: 'a', partition: 0, offset: 3, incarnation: 2 }, { topic: 'b', partition: 1, offset: 4 }];
    const subscribe = decodeClientFrame(encodeFrame({ type: 'subscribe', id: 1, subscription: 1, pattern: '>', from: 'new', resume, credit: 1 }), MAX_PAYLOAD);
    expect(subscribe).toMatchObject({ resume: [{ topic: 'a', partition: 0, offset: 3, incarnation: 2 }, { topic: 'b', partition: 1, offset: 4 }] });
    expect((subscribe as { resume: Cursor[] }).resume[1]).not.toHaveProperty('incarnation');
    const subscribed = decodeBrokerFrame(
      encodeFrame({ type: 'subscribed', id: 1, subscription: 1, cursors: [{ topic: 'a', partition: 0, offset: 0, incarnation: 0 }], resets: [{ topic: 'a', partition: 0, offset: 0, incarnation: 7 }] }),
      MAX_PAYLOAD,
    );
    expect(subscribed).toMatchObject({ cursors: [{ incarnation: 0 }], resets: [{ incarnation: 7 }] });
    // null reads as absent, as other optional fields.
    const nulled = decodeClientFrame(encodeValue({ type: 'subscribe', id: 1, subscription: 1, pattern: 'a', from: 'new', resume: [{ topic: 'a', partition: 0, offset: 1, incarnation: null }], credit: 1 }), MAX_PAYLOAD);
    expect((nulled as { resume: Cursor[] }).resume[0]).not.toHaveProperty('incarnation');
  });

  it("carries a commit position's incarnation (the broker stores none of a deleted one); absent or null stays absent", () => {
    const positions = [{ topic: 'a', partition: 0, offset: 1, incarnation: 2 }, { topic: 'b', partition: 1, offset: 4 }, { topic: 'c', partition: 0, offset: 0, incarnation: null }];
    const commit = decodeClientFrame(encodeValue({ type: 'commit', id: 1, durable: 'd', positions }), MAX_PAYLOAD) as { positions: Cursor[] };
    expect(commit.positions[0]).toStrictEqual({ topic: 'a', partition: 0, offset: 1, incarnation: 2 });
    expect(commit.positions[1]).toStrictEqual({ topic: 'b', partition: 1, offset: 4 });
    expect(commit.positions[2]).toStrictEqual({ topic: 'c', partition: 0, offset: 0 });
    // Round trip through the SDK's encoder too.
    const sent = decodeClientFrame(encodeFrame({ type: 'commit', id: 2, durable: 'd', positions: [{ topic: 'a', partition: 0, offset: 1, incarnation: 0 }] }), MAX_PAYLOAD);
    expect((sent as { positions: Cursor[] }).positions).toStrictEqual([{ topic: 'a', partition: 0, offset: 1, incarnation: 0 }]);
  });

  it.each([-1, 1.5, '2', Number.MAX_SAFE_INTEGER + 2, true])('rejects a commit position incarnation %j (a protocol error: the connection closes)', (incarnation) => {
    const frame = { type: 'commit', id: 1, durable: 'd', positions: [{ topic: 'a', partition: 0, offset: 1, incarnation }] };
    expect(expectRelayError(() => decodeClientFrame(encodeValue(frame), MAX_PAYLOAD)).message).toMatch(/incarnation/);
  });

  it.each([-1, 1.5, '2', Number.MAX_SAFE_INTEGER + 2, true])('rejects a cursor incarnation %j (resume, subscribed cursors)', (incarnation) => {
    const cursor = { topic: 'a', partition: 0, offset: 0, incarnation };
    expect(expectRelayError(() => decodeClientFrame(encodeValue({ type: 'subscribe', id: 1, subscription: 1, pattern: 'a', from: 'new', resume: [cursor], credit: 1 }), MAX_PAYLOAD)).message).toMatch(/incarnation/);
    expect(expectRelayError(() => decodeBrokerFrame(encodeValue({ type: 'subscribed', id: 1, subscription: 1, cursors: [cursor] }), MAX_PAYLOAD)).message).toMatch(/incarnation/);
  });

  it("carries a delivery batch's topic incarnation (a topic the subscription was not told of); absent or null stays absent", () => {
    const message = (incarnation: unknown): unknown => ({
      type: 'message',
      subscription: 1,
      batches: [{ topic: 'a', partition: 0, firstOffset: 3, incarnation, messages: [{ timestamp: 1, data: Uint8Array.of(1) }] }],
    });
    const told = decodeBrokerFrame(encodeValue(message(4)), MAX_PAYLOAD) as { batches: DeliveryBatch[] };
    expect(told.batches[0]).toMatchObject({ topic: 'a', firstOffset: 3, incarnation: 4 });
    for (const absent of [undefined, null]) {
      expect((decodeBrokerFrame(encodeValue(message(absent)), MAX_PAYLOAD) as { batches: DeliveryBatch[] }).batches[0]).not.toHaveProperty('incarnation');
    }
  });

  it.each([-1, 1.5, '2', Number.MAX_SAFE_INTEGER + 2, true])('rejects a delivery batch incarnation %j (a protocol error: the connection closes)', (incarnation) => {
    const frame = { type: 'message', subscription: 1, batches: [{ topic: 'a', partition: 0, firstOffset: 0, incarnation, messages: [] }] };
    expect(expectRelayError(() => decodeBrokerFrame(encodeValue(frame), MAX_PAYLOAD)).message).toMatch(/incarnation/);
  });
});
