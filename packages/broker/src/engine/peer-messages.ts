import { RelayError, type AckLevel } from '@relaymq/sdk/protocol';
import type { MetadataCommand } from '../core/metadata/metadata.js';
import { parseCommitPositions } from '../core/metadata/positions.js';
import { parsePublishCommand, type PublishCommand } from '../core/partition/command.js';
import type { StoredMessage } from '../core/partition/partition.js';

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

export function parseMetadataCommand(value: unknown): MetadataCommand | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const o = value as Record<string, unknown>;
  if (o.type === 'commit-positions') return parseCommitPositions(value);
  if (o.type !== 'create-topic' || typeof o.topic !== 'string' || o.topic.length > 255) return undefined;
  if (!Number.isSafeInteger(o.partitions) || (o.partitions as number) < 1 || (o.partitions as number) > 1024) return undefined;
  if (!Number.isSafeInteger(o.replicationFactor) || (o.replicationFactor as number) < 1) return undefined;
  return { type: 'create-topic', topic: o.topic, partitions: o.partitions as number, replicationFactor: o.replicationFactor as number };
}

export function parseTopic(body: unknown): string {
  if (typeof body !== 'string' || body.length === 0 || body.length > 255) throw new RelayError('INVALID_ARGUMENT', 'meta.create wants a topic name');
  return body;
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
