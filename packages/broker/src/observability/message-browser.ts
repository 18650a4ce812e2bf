import { PAYLOAD_SCAN_LIMITS, decodeValue, topicProblem } from '@relaymq/sdk/protocol';
import type { StoredMessage } from '../core/partition/partition.js';

/** Most messages one browse returns, whatever was asked. */
export const BROWSE_MAX_MESSAGES = 100;
/** Most data bytes one browse returns (beyond the first message). */
export const BROWSE_MAX_BYTES = 1024 * 1024;

/** A browse request: the last `count` messages, or `count` messages from `from`. */
export interface BrowseRequest {
  topic: string;
  partition: number;
  count: number;
  from: number | undefined;
}

/** What the browser needs of the broker: bounds and committed messages of any partition of the cluster. */
export interface BrowseSource {
  partitionCount(topic: string): number | undefined;
  bounds(topic: string, partition: number): Promise<{ start: number; end: number }>;
  read(topic: string, partition: number, offset: number, maxCount: number, maxBytes: number): Promise<StoredMessage[]>;
}

/** One message as the browser shows it: the data in base64 always, decoded where it can be. */
export interface BrowsedMessage {
  offset: number;
  timestamp: number;
  key: string | null;
  headers: Record<string, string> | null;
  encoding: StoredMessage['encoding'];
  size: number;
  /** Data bytes, base64. */
  data: string;
  /** A msgpack value as JSON (byte arrays as `{ "$bytes": base64 }`); null for raw data or an undecodable value. */
  json: unknown;
  /** Raw data as UTF-8 text, when it is valid UTF-8; null otherwise. */
  text: string | null;
}

/** `/api/messages` answer. */
export interface BrowseResult {
  topic: string;
  partition: number;
  start: number;
  end: number;
  messages: BrowsedMessage[];
}

const INTEGER = /^\d{1,15}$/;

/** Reads a browse query; a string names the first problem. */
export function parseBrowseQuery(query: URLSearchParams): BrowseRequest | string {
  const topic = query.get('topic') ?? '';
  const problem = topic === '' ? 'topic is required' : topicProblem(topic);
  if (problem !== undefined) return `topic: ${problem}`;
  const partition = query.get('partition') ?? '0';
  if (!INTEGER.test(partition)) return 'partition must be a non-negative integer';
  const count = query.get('count') ?? '20';
  if (!INTEGER.test(count) || Number(count) < 1 || Number(count) > BROWSE_MAX_MESSAGES) return `count must be an integer from 1 to ${BROWSE_MAX_MESSAGES}`;
  const from = query.get('from');
  if (from !== null && from !== '' && !INTEGER.test(from)) return 'from must be a non-negative offset (or absent for the last messages)';
  return { topic, partition: Number(partition), count: Number(count), from: from === null || from === '' ? undefined : Number(from) };
}

/** Reads the messages a request asks for; throws a string-bearing Error on a topic or partition that does not exist. */
export async function browse(source: BrowseSource, request: BrowseRequest): Promise<BrowseResult | string> {
  const { topic, partition, count } = request;
  const partitions = source.partitionCount(topic);
  if (partitions === undefined) return `topic ${topic} does not exist`;
  if (partition >= partitions) return `topic ${topic} has ${partitions} partition${partitions === 1 ? '' : 's'}`;
  const { start, end } = await source.bounds(topic, partition);
  const from = Math.max(start, request.from ?? end - count);
  const read = from >= end ? [] : await source.read(topic, partition, from, count, BROWSE_MAX_BYTES);
  return { topic, partition, start, end, messages: read.slice(0, count).map(show) };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function show(m: StoredMessage): BrowsedMessage {
  let json: unknown = null;
  let text: string | null = null;
  if (m.encoding === 'msgpack') {
    try {
      json = jsonSafe(decodeValue(m.data, PAYLOAD_SCAN_LIMITS));
    } catch {
      json = null;
    }
  } else {
    try {
      text = utf8.decode(m.data);
    } catch {
      text = null;
    }
  }
  return {
    offset: m.offset,
    timestamp: m.timestamp,
    key: m.key ?? null,
    headers: m.headers ?? null,
    encoding: m.encoding,
    size: m.data.byteLength,
    data: Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength).toString('base64'),
    json,
    text,
  };
}

/** A decoded msgpack value that JSON.stringify keeps: bytes as base64, big integers as strings, maps as objects. */
function jsonSafe(value: unknown, depth = 0): unknown {
  if (depth > 64) return '…';
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Date) return value.toISOString();
  if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [String(k), jsonSafe(v, depth + 1)]));
  if (Array.isArray(value)) return value.map((v) => jsonSafe(v, depth + 1));
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonSafe(v, depth + 1)]));
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return value;
}
