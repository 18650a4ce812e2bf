import { RelayError, type AckLevel } from '@relaymq/sdk/protocol';
import { MAX_TOPICS_PER_ENTRY, type CreateTopicCommand, type CreateTopicsCommand, type MetadataCommand, type NewTopic } from '../core/metadata/metadata.js';
import { parseCommitPositions } from '../core/metadata/positions.js';
import { parseGroupCommand } from '../core/metadata/groups.js';
import { parsePublishCommand, type PublishCommand } from '../core/partition/command.js';
import type { AppendOutcome } from '../core/partition/batch.js';
import type { StoredMessage } from '../core/partition/partition.js';
import type { RecordCopy, RecordPage } from '../storage/segment-raft-storage.js';

/**
 * What brokers send each other besides Raft messages and gossip: the bodies
 * of peer RPCs (a forwarded publish, a topic creation, a partition fetch) and
 * the metadata commands in the metadata log. Peers are brokers, but a bug or
 * a stray process must not crash this one: every body is checked here.
 */

/** What a forwarded publish carries. */
export interface ForwardedPublish {
  topic: string;
  partition: number;
  ack: AckLevel;
  command: PublishCommand;
}

export interface FetchRequest {
  topic: string;
  partition: number;
  offset: number;
}

export interface FetchResponse {
  startOffset: number;
  messages: StoredMessage[];
}

export function parseFetch(body: unknown): FetchRequest {
  const o = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  if (typeof o.topic !== 'string' || !Number.isSafeInteger(o.partition) || !Number.isSafeInteger(o.offset) || (o.offset as number) < 0) {
    throw new RelayError('INVALID_ARGUMENT', 'malformed partition fetch');
  }
  return { topic: o.topic, partition: o.partition as number, offset: o.offset as number };
}

export function parseFetchResponse(body: unknown): FetchResponse {
  const o = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  if (!Number.isSafeInteger(o.startOffset) || !Array.isArray(o.messages)) throw new RelayError('PROTOCOL_ERROR', 'malformed partition fetch answer');
  const messages: StoredMessage[] = [];
  for (const raw of o.messages as unknown[]) {
    const m = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
    if (!Number.isSafeInteger(m.offset) || !Number.isSafeInteger(m.timestamp) || !(m.data instanceof Uint8Array) || (m.encoding !== 'raw' && m.encoding !== 'msgpack')) {
      throw new RelayError('PROTOCOL_ERROR', 'malformed message in a partition fetch answer');
    }
    const message: StoredMessage = { offset: m.offset as number, timestamp: m.timestamp as number, data: m.data, encoding: m.encoding };
    if (typeof m.key === 'string') message.key = m.key;
    if (typeof m.headers === 'object' && m.headers !== null) message.headers = m.headers as Record<string, string>;
    messages.push(message);
  }
  return { startOffset: o.startOffset as number, messages };
}

/** The peer RPC that reads committed records of a unified partition (a replica backfilling below a leader's snapshot). */
export const RECORDS_METHOD = 'partition.records';

/** Records of a unified partition from a Raft index. */
export interface RecordsRequest {
  topic: string;
  partition: number;
  fromIndex: number;
}

export function parseRecordsRequest(body: unknown): RecordsRequest {
  const o = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  if (typeof o.topic !== 'string' || !Number.isSafeInteger(o.partition) || !Number.isSafeInteger(o.fromIndex) || (o.fromIndex as number) < 1) {
    throw new RelayError('INVALID_ARGUMENT', 'malformed partition records request');
  }
  return { topic: o.topic, partition: o.partition as number, fromIndex: o.fromIndex as number };
}

export function parseRecordPage(body: unknown): RecordPage {
  const o = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  if (!Number.isSafeInteger(o.startIndex) || !Array.isArray(o.records)) throw new RelayError('PROTOCOL_ERROR', 'malformed partition records answer');
  const records: RecordCopy[] = [];
  for (const raw of o.records as unknown[]) {
    const r = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
    const numbers = [r.index, r.term, r.firstOffset, r.count, r.timestamp];
    if (!numbers.every((n) => Number.isSafeInteger(n) && (n as number) >= 0) || !(r.data instanceof Uint8Array)) {
      throw new RelayError('PROTOCOL_ERROR', 'malformed record in a partition records answer');
    }
    records.push({ index: r.index as number, term: r.term as number, firstOffset: r.firstOffset as number, count: r.count as number, timestamp: r.timestamp as number, data: r.data });
  }
  return { startIndex: o.startIndex as number, records };
}

export function parseMetadataCommand(value: unknown): MetadataCommand | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const o = value as Record<string, unknown>;
  if (o.type === 'commit-positions') return parseCommitPositions(value);
  if (typeof o.type === 'string' && o.type.startsWith('group-')) return parseGroupCommand(value);
  if (o.type === 'create-topics') {
    if (!Array.isArray(o.topics) || o.topics.length === 0 || o.topics.length > MAX_TOPICS_PER_ENTRY) return undefined;
    const topics: NewTopic[] = [];
    for (const t of o.topics as unknown[]) {
      const topic = parseTopicCreation(t);
      if (topic === undefined) return undefined;
      topics.push(topic);
    }
    return withBrokers({ type: 'create-topics', topics }, o.brokers);
  }
  if (o.type !== 'create-topic') return undefined;
  const topic = parseTopicCreation(value);
  return topic === undefined ? undefined : withBrokers({ type: 'create-topic', ...topic }, o.brokers);
}

/** The topic, partition count and replication factor of a topic creation, or `undefined`. */
function parseTopicCreation(value: unknown): NewTopic | undefined {
  const o = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  if (typeof o.topic !== 'string' || o.topic.length > 255) return undefined;
  if (!Number.isSafeInteger(o.partitions) || (o.partitions as number) < 1 || (o.partitions as number) > 1024) return undefined;
  if (!Number.isSafeInteger(o.replicationFactor) || (o.replicationFactor as number) < 1) return undefined;
  return { topic: o.topic, partitions: o.partitions as number, replicationFactor: o.replicationFactor as number };
}

/** `command` with the brokers list a topic creation may carry (absent in older entries), or `undefined` if malformed. */
function withBrokers<C extends CreateTopicCommand | CreateTopicsCommand>(command: C, brokers: unknown): C | undefined {
  if (brokers === undefined) return command;
  if (!Array.isArray(brokers) || brokers.length > 256 || !brokers.every((id) => typeof id === 'string' && id.length > 0 && id.length <= 64)) return undefined;
  return { ...command, brokers: brokers as string[] };
}

export function parseTopic(body: unknown): string {
  if (typeof body !== 'string' || body.length === 0 || body.length > 255) throw new RelayError('INVALID_ARGUMENT', 'meta.create wants a topic name');
  return body;
}

/** The body of `meta.create-topics`: topic names, at most {@link MAX_TOPICS_PER_ENTRY}. */
export function parseTopics(body: unknown): string[] {
  if (!Array.isArray(body) || body.length === 0 || body.length > MAX_TOPICS_PER_ENTRY) {
    throw new RelayError('INVALID_ARGUMENT', `meta.create-topics wants 1 to ${MAX_TOPICS_PER_ENTRY} topic names`);
  }
  return body.map(parseTopic);
}

export function parseForwarded(body: unknown): ForwardedPublish {
  const o = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const command = parsePublishCommand(o.command);
  const ack = o.ack;
  if (
    command === undefined ||
    typeof o.topic !== 'string' ||
    !Number.isSafeInteger(o.partition) ||
    (ack !== 'none' && ack !== 'leader' && ack !== 'quorum' && ack !== 'all')
  ) {
    throw new RelayError('INVALID_ARGUMENT', 'malformed forwarded publish');
  }
  return { topic: o.topic, partition: o.partition as number, ack, command };
}

/** A broker reading a partition it does not host: committed messages from `from`, at most `max` (0: bounds only) and `maxBytes`. */
export interface PartitionRead {
  topic: string;
  partition: number;
  from: number;
  max: number;
  maxBytes: number;
}

/** A replica's answer: its bounds, the messages, and the leader it knows of (where the reader should go first). */
export interface PartitionReadResponse {
  start: number;
  end: number;
  leader?: string;
  messages: StoredMessage[];
}

/** A replica telling a reader that a partition now ends at `end`. */
export interface TailNotice {
  topic: string;
  partition: number;
  end: number;
}

const offsetLike = (value: unknown): boolean => Number.isSafeInteger(value) && (value as number) >= 0;
const record = (body: unknown): Record<string, unknown> => (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;

export function parsePartitionRead(body: unknown): PartitionRead {
  const o = record(body);
  if (typeof o.topic !== 'string' || !offsetLike(o.partition) || !offsetLike(o.from) || !offsetLike(o.max) || !offsetLike(o.maxBytes)) {
    throw new RelayError('INVALID_ARGUMENT', 'malformed partition read');
  }
  return { topic: o.topic, partition: o.partition as number, from: o.from as number, max: o.max as number, maxBytes: o.maxBytes as number };
}

export function parsePartitionReadResponse(body: unknown): PartitionReadResponse {
  const o = record(body);
  if (!offsetLike(o.start) || !offsetLike(o.end) || (o.leader !== undefined && typeof o.leader !== 'string')) {
    throw new RelayError('PROTOCOL_ERROR', 'malformed partition read answer');
  }
  const { messages } = parseFetchResponse({ startOffset: o.start, messages: o.messages });
  const response: PartitionReadResponse = { start: o.start as number, end: o.end as number, messages };
  if (typeof o.leader === 'string' && o.leader !== '') response.leader = o.leader;
  return response;
}

export function parsePartitionTime(body: unknown): { topic: string; partition: number; timeMs: number } {
  const o = record(body);
  if (typeof o.topic !== 'string' || !offsetLike(o.partition) || !Number.isSafeInteger(o.timeMs)) throw new RelayError('INVALID_ARGUMENT', 'malformed partition time lookup');
  return { topic: o.topic, partition: o.partition as number, timeMs: o.timeMs as number };
}

/** At most this many partitions, over all its topics, in one `partition.leaders` request. */
const LEADERS_MAX_PARTITIONS = 1_000_000;

/** A `partition.leaders` request: for each topic, the partitions whose leaders are asked. */
export type PartitionLeadersLookup = Array<{ topic: string; partitions: number[] }>;

export function parsePartitionLeaders(body: unknown): PartitionLeadersLookup {
  const topics = record(body).topics;
  const malformed = (): RelayError => new RelayError('INVALID_ARGUMENT', 'malformed partition leaders lookup');
  if (!Array.isArray(topics)) throw malformed();
  let total = 0;
  return topics.map((item: unknown) => {
    const o = record(item);
    const partitions = o.partitions;
    if (typeof o.topic !== 'string' || !Array.isArray(partitions) || !partitions.every(offsetLike)) throw malformed();
    total += partitions.length;
    if (total > LEADERS_MAX_PARTITIONS) throw malformed();
    return { topic: o.topic, partitions: partitions as number[] };
  });
}

/** The answer to the `partition.leaders` request `asked`: for each topic, one broker id (or `""`) per partition asked. */
export function parsePartitionLeadersResponse(body: unknown, asked: PartitionLeadersLookup): string[][] {
  const leaders = record(body).leaders;
  const malformed = (): RelayError => new RelayError('PROTOCOL_ERROR', 'malformed partition leaders answer');
  if (!Array.isArray(leaders) || leaders.length !== asked.length) throw malformed();
  return leaders.map((named: unknown, i) => {
    if (!Array.isArray(named) || named.length !== (asked[i] as { partitions: number[] }).partitions.length || !named.every((id) => typeof id === 'string')) throw malformed();
    return named as string[];
  });
}

export function parseTailNotice(body: unknown): TailNotice {
  const o = record(body);
  if (typeof o.topic !== 'string' || !offsetLike(o.partition) || !offsetLike(o.end)) throw new RelayError('PROTOCOL_ERROR', 'malformed tail notice');
  return { topic: o.topic, partition: o.partition as number, end: o.end as number };
}

/** Refusals a broker gives while checking a publish, before proposing it: the same publish is refused the same way again. */
const BEFORE_PROPOSING: ReadonlySet<string> = new Set(['INVALID_TOPIC', 'INVALID_ARGUMENT', 'INVALID_PARTITION', 'PAYLOAD_TOO_LARGE', 'FORBIDDEN', 'UNAUTHORIZED', 'STORAGE_FULL']);

/**
 * What a client is told when a publish passed between brokers failed. The SDK
 * moves the messages after a non-retriable refusal to a new producer
 * incarnation, so a refusal for a publish that may have been proposed (here,
 * by a replica, or by an earlier attempt to another leader) would store
 * those messages twice: such failures become `TIMEOUT` (outcome unknown; the
 * SDK resends with the same seq). Retriable codes, `TIMEOUT` and
 * `STORAGE_ERROR` (which the SDK resends too) pass unchanged, and so do
 * validation refusals when nothing was attempted before.
 */
export function publishFailure(err: unknown, attemptedBefore: boolean, what: string): RelayError {
  if (err instanceof RelayError) {
    if (err.retriable || err.code === 'TIMEOUT' || err.code === 'STORAGE_ERROR') return err;
    if (!attemptedBefore && BEFORE_PROPOSING.has(err.code)) return err;
  }
  const reason = err instanceof RelayError ? `${err.code}: ${err.message}` : String(err);
  return new RelayError('TIMEOUT', `${what} failed (${reason})${attemptedBefore ? ' after an earlier attempt' : ''}; its outcome is unknown`, { cause: err });
}

/**
 * The outcomes of a publish this broker sent on more than once (a hedged
 * copy, or a resend to the next leader after the first stepped down): a
 * `duplicate` may name this very publish's own earlier copy. The client sent
 * it once, so it hears `stored` (same offset), not a republish it never made.
 */
export function sentOnce(outcomes: AppendOutcome[]): AppendOutcome[] {
  return outcomes.map((o) => (o.kind === 'duplicate' ? { kind: 'stored', offset: o.offset } : o));
}
