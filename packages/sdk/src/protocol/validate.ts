import { isErrorCode, protocolError } from './errors.js';
import type {
  Ack,
  AckLevel,
  BrokerFrame,
  BrokerInfo,
  BrokerLimits,
  ClientFrame,
  ClusterView,
  Cursor,
  DeliveryBatch,
  Encoding,
  OutgoingMessage,
  PublishBatch,
  StartPosition,
  StoredMessageFrame,
  TopicInfo,
} from './frames.js';
import { durableNameProblem } from './durable.js';
import { patternProblem, topicProblem } from './topic.js';
import { groupName, memberId, sessionTimeout, validateAssignmentFrame, validateGroupClientFrame } from './groups.js';

/** Bounds on the fields of a frame; everything a frame holds is capped. */
export const FIELD_LIMITS = Object.freeze({
  /** Messages in one `publish` or `message` frame (over all its batches), acks in one `ack` frame. */
  maxBatch: 10_000,
  /** Cursors in a subscribe's `resume` or a `commit`, topics in a `metadata` request. */
  maxList: 10_000,
  /** Header entries per message. */
  maxHeaders: 64,
  /** Characters in ids, keys, header names and values, messages. */
  maxString: 4096,
  /** Brokers in a cluster view. */
  maxBrokers: 1024,
});

type Obj = Record<string, unknown>;

// Small typed readers: each returns the field or throws a PROTOCOL_ERROR that names it.

function obj(value: unknown, what: string): Obj {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    throw protocolError(`${what} must be a map`);
  }
  return value as Obj;
}

function str(o: Obj, field: string, maxLength: number = FIELD_LIMITS.maxString): string {
  const value = o[field];
  if (typeof value !== 'string') throw protocolError(`${field} must be a string`);
  if (value.length > maxLength) throw protocolError(`${field} is longer than ${maxLength}`);
  return value;
}

function optStr(o: Obj, field: string): string | undefined {
  return o[field] === undefined || o[field] === null ? undefined : str(o, field);
}

function uint(o: Obj, field: string): number {
  const value = o[field];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw protocolError(`${field} must be a non-negative integer`);
  }
  return value;
}

function optUint(o: Obj, field: string): number | undefined {
  return o[field] === undefined || o[field] === null ? undefined : uint(o, field);
}

function bool(o: Obj, field: string): boolean {
  const value = o[field];
  if (typeof value !== 'boolean') throw protocolError(`${field} must be a boolean`);
  return value;
}

function optBool(o: Obj, field: string): boolean | undefined {
  return o[field] === undefined || o[field] === null ? undefined : bool(o, field);
}

function bytes(o: Obj, field: string): Uint8Array {
  const value = o[field];
  if (!(value instanceof Uint8Array)) throw protocolError(`${field} must be bytes`);
  return value;
}

function list(o: Obj, field: string, max: number): unknown[] {
  const value = o[field];
  if (!Array.isArray(value)) throw protocolError(`${field} must be an array`);
  if (value.length > max) throw protocolError(`${field} has more than ${max} elements`);
  return value;
}

function oneOf<T extends string>(o: Obj, field: string, allowed: readonly T[]): T {
  const value = o[field];
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw protocolError(`${field} must be one of ${allowed.join(', ')}`);
  }
  return value as T;
}

function topic(o: Obj, field: string): string {
  const value = str(o, field);
  const problem = topicProblem(value);
  if (problem !== undefined) throw protocolError(`${field}: ${problem}`);
  return value;
}

function headers(o: Obj): Record<string, string> | undefined {
  const value = o.headers;
  if (value === undefined || value === null) return undefined;
  const map = obj(value, 'headers');
  const keys = Object.keys(map);
  if (keys.length > FIELD_LIMITS.maxHeaders) throw protocolError(`headers has more than ${FIELD_LIMITS.maxHeaders} entries`);
  const result: Record<string, string> = {};
  for (const key of keys) {
    if (key.length > FIELD_LIMITS.maxString) throw protocolError('header name is too long');
    result[key] = str(map, key);
  }
  return result;
}

const ackLevels: readonly AckLevel[] = ['none', 'leader', 'quorum', 'all'];
const encodings: readonly Encoding[] = ['raw', 'msgpack'];
const brokerStates: readonly BrokerInfo['state'][] = ['alive', 'suspect', 'dead'];

function code(o: Obj): string {
  const value = str(o, 'code');
  // Unknown codes from a newer peer are kept as they are but must look like codes.
  if (!isErrorCode(value) && !/^[A-Z_]{1,64}$/.test(value)) throw protocolError('code must be an error code');
  return value;
}

function durableName(o: Obj, field: string): string {
  const value = str(o, field);
  const problem = durableNameProblem(value);
  if (problem !== undefined) throw protocolError(`${field}: ${problem}`);
  return value;
}

function cursor(value: unknown): Cursor {
  const o = obj(value, 'cursor');
  const c: Cursor = { topic: topic(o, 'topic'), partition: uint(o, 'partition'), offset: uint(o, 'offset') };
  return withOptional(c, 'incarnation', optUint(o, 'incarnation'));
}

function startPosition(value: unknown): StartPosition {
  if (value === 'new' || value === 'earliest') return value;
  const o = obj(value, 'from');
  if (o.offset !== undefined) return { offset: uint(o, 'offset') };
  if (o.time !== undefined) return { time: uint(o, 'time') };
  throw protocolError('from must be "new", "earliest", { offset } or { time }');
}

/** The fields every message on the wire may carry besides its data. */
function messageExtras<T extends { encoding?: Encoding; key?: string; headers?: Record<string, string> }>(o: Obj, message: T): T {
  if (o.encoding !== undefined && o.encoding !== null) message.encoding = oneOf(o, 'encoding', encodings);
  const key = optStr(o, 'key');
  if (key !== undefined) message.key = key;
  const hdrs = headers(o);
  if (hdrs !== undefined) message.headers = hdrs;
  return message;
}

function outgoingMessage(value: unknown): OutgoingMessage {
  const o = obj(value, 'message');
  return messageExtras<OutgoingMessage>(o, { data: bytes(o, 'data') });
}

function storedMessage(value: unknown): StoredMessageFrame {
  const o = obj(value, 'message');
  return messageExtras<StoredMessageFrame>(o, { timestamp: uint(o, 'timestamp'), data: bytes(o, 'data') });
}

/** Reads `field` as a list of batches whose messages, summed, stay within the frame limit. */
function batches<T extends { messages: unknown[] }>(o: Obj, field: string, read: (value: unknown) => T): T[] {
  const result = list(o, field, FIELD_LIMITS.maxBatch).map(read);
  let total = 0;
  for (const batch of result) total += batch.messages.length;
  if (total > FIELD_LIMITS.maxBatch) throw protocolError(`${field} hold more than ${FIELD_LIMITS.maxBatch} messages`);
  return result;
}

function publishBatch(value: unknown): PublishBatch {
  const o = obj(value, 'batch');
  const batch: PublishBatch = {
    topic: topic(o, 'topic'),
    partition: uint(o, 'partition'),
    ack: oneOf(o, 'ack', ackLevels),
    firstId: uint(o, 'firstId'),
    firstSeq: uint(o, 'firstSeq'),
    messages: list(o, 'messages', FIELD_LIMITS.maxBatch).map(outgoingMessage),
  };
  const incarnation = optUint(o, 'incarnation');
  if (incarnation !== undefined && incarnation > 0) batch.incarnation = incarnation;
  return batch;
}

function deliveryBatch(value: unknown): DeliveryBatch {
  const o = obj(value, 'batch');
  const batch: DeliveryBatch = {
    topic: topic(o, 'topic'),
    partition: uint(o, 'partition'),
    firstOffset: uint(o, 'firstOffset'),
    messages: list(o, 'messages', FIELD_LIMITS.maxBatch).map(storedMessage),
  };
  const from = optUint(o, 'from');
  if (from !== undefined) {
    if (from >= batch.firstOffset) throw protocolError('from must be below firstOffset');
    batch.from = from;
  }
  return withOptional(batch, 'incarnation', optUint(o, 'incarnation'));
}

function brokerInfo(value: unknown): BrokerInfo {
  const o = obj(value, 'broker');
  const info: BrokerInfo = { id: str(o, 'id', 256), url: str(o, 'url', 2048), state: oneOf(o, 'state', brokerStates) };
  if (o.load !== undefined && o.load !== null) {
    const load = obj(o.load, 'load');
    info.load = { connections: uint(load, 'connections'), partitionsLed: uint(load, 'partitionsLed') };
  }
  return info;
}

function clusterView(value: unknown): ClusterView {
  const o = obj(value, 'cluster');
  return { brokers: list(o, 'brokers', FIELD_LIMITS.maxBrokers).map(brokerInfo) };
}

function limits(value: unknown): BrokerLimits {
  const o = obj(value, 'limits');
  return { maxPayload: uint(o, 'maxPayload'), dedupeWindow: uint(o, 'dedupeWindow'), maxCredit: uint(o, 'maxCredit') };
}

function topicInfo(value: unknown): TopicInfo {
  const o = obj(value, 'topic');
  const info: TopicInfo = { topic: topic(o, 'topic'), partitions: uint(o, 'partitions') };
  if (o.leaders !== undefined && o.leaders !== null) {
    info.leaders = list(o, 'leaders', FIELD_LIMITS.maxList).map((id, i) => str({ [`leaders[${i}]`]: id }, `leaders[${i}]`, 256));
  }
  return info;
}

/**
 * Names an unknown frame type for an error message. Decoded maps are never passed
 * to `String()`: a map with its own `toString`/`valueOf` keys would throw a TypeError.
 */
function describeType(value: unknown): string {
  const text = typeof value === 'object' && value !== null ? Object.prototype.toString.call(value) : String(value);
  return JSON.stringify(text).slice(0, 40);
}

function withOptional<T extends object, K extends string, V>(target: T, key: K, value: V | undefined): T {
  if (value !== undefined) (target as Record<string, unknown>)[key] = value;
  return target;
}

/**
 * Checks the shape of a decoded value and returns it as a client frame.
 * The returned frame is a fresh object holding only known fields.
 */
export function validateClientFrame(value: unknown): ClientFrame {
  const o = obj(value, 'frame');
  switch (o.type) {
    case 'hello':
      return withOptional(
        { type: 'hello', version: uint(o, 'version'), clientId: str(o, 'clientId', 256), producerId: str(o, 'producerId', 256) },
        'token',
        optStr(o, 'token'),
      );
    case 'publish':
      return { type: 'publish', batches: batches(o, 'batches', publishBatch) };
    case 'subscribe': {
      const pattern = str(o, 'pattern');
      const problem = patternProblem(pattern);
      if (problem !== undefined) throw protocolError(`pattern: ${problem}`);
      const frame: ClientFrame = {
        type: 'subscribe',
        id: uint(o, 'id'),
        subscription: uint(o, 'subscription'),
        pattern,
        from: startPosition(o.from),
        resume: list(o, 'resume', FIELD_LIMITS.maxList).map(cursor),
        credit: uint(o, 'credit'),
      };
      if (o.creditBytes !== undefined && o.creditBytes !== null) frame.creditBytes = uint(o, 'creditBytes');
      if (o.durable !== undefined && o.durable !== null) frame.durable = durableName(o, 'durable');
      if (o.group !== undefined && o.group !== null) {
        if (frame.durable !== undefined) throw protocolError('a subscription is either durable or in a group, not both');
        frame.group = groupName(o, 'group');
        frame.member = memberId(o, 'member');
        frame.sessionTimeoutMs = sessionTimeout(o, 'sessionTimeoutMs');
      }
      return frame;
    }
    case 'commit':
      return {
        type: 'commit',
        id: uint(o, 'id'),
        durable: durableName(o, 'durable'),
        // Each may name the incarnation its offset belongs to: a broker stores none of a deleted one.
        positions: list(o, 'positions', FIELD_LIMITS.maxList).map(cursor),
      };
    case 'group-commit':
    case 'group-heartbeat':
      return validateGroupClientFrame(o, FIELD_LIMITS.maxList);
    case 'credit': {
      const frame: ClientFrame = { type: 'credit', subscription: uint(o, 'subscription'), credit: uint(o, 'credit') };
      if (o.bytes !== undefined && o.bytes !== null) frame.bytes = uint(o, 'bytes');
      return frame;
    }
    case 'unsubscribe':
      return { type: 'unsubscribe', id: uint(o, 'id'), subscription: uint(o, 'subscription') };
    case 'metadata': {
      const topics = list(o, 'topics', FIELD_LIMITS.maxList).map((t, i) => topic({ [`topics[${i}]`]: t }, `topics[${i}]`));
      const frame: ClientFrame = { type: 'metadata', id: uint(o, 'id'), topics };
      if (o.create !== undefined && o.create !== null) frame.create = bool(o, 'create');
      return frame;
    }
    case 'ping':
      return { type: 'ping', id: uint(o, 'id') };
    case 'pong':
      return { type: 'pong', id: uint(o, 'id') };
    default:
      throw protocolError(`unknown client frame type ${describeType(o.type)}`);
  }
}

/** Checks the shape of a decoded value and returns it as a broker frame. */
export function validateBrokerFrame(value: unknown): BrokerFrame {
  const o = obj(value, 'frame');
  switch (o.type) {
    case 'welcome': {
      const welcome: BrokerFrame = {
        type: 'welcome',
        version: uint(o, 'version'),
        brokerId: str(o, 'brokerId', 256),
        clientId: str(o, 'clientId', 256),
        producerId: str(o, 'producerId', 256),
        cluster: clusterView(o.cluster),
        limits: limits(o.limits),
        heartbeatMs: uint(o, 'heartbeatMs'),
      };
      withOptional(welcome, 'ready', optBool(o, 'ready'));
      return withOptional(welcome, 'logId', optStr(o, 'logId'));
    }
    case 'ack': {
      const acks = list(o, 'acks', FIELD_LIMITS.maxBatch).map((a) => {
        const ack = obj(a, 'ack');
        const result: Ack = { id: uint(ack, 'id'), offset: uint(ack, 'offset'), count: uint(ack, 'count'), duplicate: bool(ack, 'duplicate') };
        const leader = optStr(ack, 'leader');
        if (leader !== undefined) result.leader = leader;
        return result;
      });
      return { type: 'ack', acks };
    }
    case 'nack': {
      const nack = { type: 'nack' as const, id: uint(o, 'id'), code: code(o), message: str(o, 'message') };
      withOptional(nack, 'leader', optStr(o, 'leader'));
      return withOptional(nack, 'expectedSeq', optUint(o, 'expectedSeq'));
    }
    case 'subscribed': {
      const frame: BrokerFrame = {
        type: 'subscribed',
        id: uint(o, 'id'),
        subscription: uint(o, 'subscription'),
        cursors: list(o, 'cursors', FIELD_LIMITS.maxList).map(cursor),
      };
      if (o.resets !== undefined && o.resets !== null) frame.resets = list(o, 'resets', FIELD_LIMITS.maxList).map(cursor);
      return frame;
    }
    case 'message':
      return { type: 'message', subscription: uint(o, 'subscription'), batches: batches(o, 'batches', deliveryBatch) };
    case 'unsubscribed':
      return { type: 'unsubscribed', id: uint(o, 'id'), subscription: uint(o, 'subscription') };
    case 'committed':
      return { type: 'committed', id: uint(o, 'id') };
    case 'assignment':
      return validateAssignmentFrame(o, FIELD_LIMITS.maxList);
    case 'topics':
      return { type: 'topics', id: uint(o, 'id'), topics: list(o, 'topics', FIELD_LIMITS.maxList).map(topicInfo) };
    case 'cluster':
      return withOptional({ type: 'cluster' as const, cluster: clusterView(o.cluster) }, 'ready', optBool(o, 'ready'));
    case 'goaway':
      return { type: 'goaway', code: code(o), message: str(o, 'message') };
    case 'error':
    {
      const error: BrokerFrame = withOptional(withOptional({ type: 'error' as const, code: code(o), message: str(o, 'message') }, 'id', optUint(o, 'id')), 'subscription', optUint(o, 'subscription'));
      return withOptional(error, 'topic', optStr(o, 'topic'));
    }
    case 'ping':
      return { type: 'ping', id: uint(o, 'id') };
    case 'pong':
      return { type: 'pong', id: uint(o, 'id') };
    default:
      throw protocolError(`unknown broker frame type ${describeType(o.type)}`);
  }
}
