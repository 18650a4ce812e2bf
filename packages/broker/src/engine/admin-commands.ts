/**
 * The wire forms of the admin's metadata changes (observability/admin-api.ts
 * asks for them): the metadata entries that name the cluster and raise a
 * topic's partition count, and the peer requests that carry an operator's
 * topic creation and partition increase to the metadata leader. Read as
 * untrusted input, like peer-messages.ts.
 */
import { RelayError } from '@relaymq/sdk/protocol';
import { CLUSTER_ID_PATTERN, type AddPartitionsCommand, type SetClusterIdCommand } from '../core/metadata/metadata.js';
import type { TopicSettings } from './engine.js';

/** The peer RPC method of an operator's topic creation (with its settings). */
export const CREATE_TOPIC_METHOD = 'meta.create-topic';
/** The peer RPC method of a partition increase. */
export const ADD_PARTITIONS_METHOD = 'meta.add-partitions';

/** The peer RPC method of a topic deletion (`{ topic }`), run on the metadata leader. */
export const DELETE_TOPIC_METHOD = 'meta.delete-topic';
/** The peer RPC method asking the metadata leader whether a topic is missing (`{ topic }`, answered a boolean). */
export const TOPIC_MISSING_METHOD = 'meta.topic-missing';
/**
 * The peer RPC method asking the metadata leader for a topic's partition count (`{ topic, partition }`,
 * answered `{ partitions }`, `null` for no topic), at once when it has `partition`, else after a read
 * barrier. A leader of an older version answers it as an unknown method (see `isUnknownMethod`).
 */
export const PARTITION_COUNT_METHOD = 'meta.partition-count';

/** Largest partition count, as `defaultPartitions` and the metadata's create-topic allow. */
export const MAX_PARTITIONS = 1024;
/** Largest replication factor, as `replicationFactor` allows. */
export const MAX_REPLICATION_FACTOR = 16;

const isBrokerId = (id: unknown): id is string => typeof id === 'string' && id.length > 0 && id.length <= 64;
const isCount = (value: unknown, max: number): value is number => typeof value === 'number' && Number.isSafeInteger(value) && value >= 1 && value <= max;

function topicName(value: unknown, method: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 255) throw new RelayError('INVALID_ARGUMENT', `${method} wants a topic name`);
  return value;
}

/** A metadata entry of this module's kinds, or `undefined` when it is none (or malformed). */
export function parseAdminMetadataCommand(value: unknown): AddPartitionsCommand | SetClusterIdCommand | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const o = value as Record<string, unknown>;
  if (o.type === 'set-cluster-id') return typeof o.clusterId === 'string' && CLUSTER_ID_PATTERN.test(o.clusterId) ? { type: 'set-cluster-id', clusterId: o.clusterId } : undefined;
  if (o.type !== 'add-partitions') return undefined;
  if (typeof o.topic !== 'string' || o.topic.length === 0 || o.topic.length > 255 || !isCount(o.partitions, MAX_PARTITIONS)) return undefined;
  if (!Array.isArray(o.brokers) || o.brokers.length > 256 || !o.brokers.every(isBrokerId)) return undefined;
  return { type: 'add-partitions', topic: o.topic, partitions: o.partitions, brokers: o.brokers };
}

/** {@link CREATE_TOPIC_METHOD}'s body: `{ topic, partitions?, replicationFactor? }`. */
export function parseCreateTopicRequest(body: unknown): { topic: string; settings: TopicSettings } {
  const o = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const topic = topicName(o.topic, CREATE_TOPIC_METHOD);
  const settings: TopicSettings = {};
  if (o.partitions !== undefined) {
    if (!isCount(o.partitions, MAX_PARTITIONS)) throw new RelayError('INVALID_ARGUMENT', `${CREATE_TOPIC_METHOD}: partitions must be an integer from 1 to ${MAX_PARTITIONS}`);
    settings.partitions = o.partitions;
  }
  if (o.replicationFactor !== undefined) {
    if (!isCount(o.replicationFactor, MAX_REPLICATION_FACTOR)) throw new RelayError('INVALID_ARGUMENT', `${CREATE_TOPIC_METHOD}: replicationFactor must be an integer from 1 to ${MAX_REPLICATION_FACTOR}`);
    settings.replicationFactor = o.replicationFactor;
  }
  return { topic, settings };
}

/** {@link ADD_PARTITIONS_METHOD}'s body: `{ topic, partitions }`, the new count. */
export function parseAddPartitionsRequest(body: unknown): { topic: string; partitions: number } {
  const o = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const topic = topicName(o.topic, ADD_PARTITIONS_METHOD);
  if (!isCount(o.partitions, MAX_PARTITIONS)) throw new RelayError('INVALID_ARGUMENT', `${ADD_PARTITIONS_METHOD}: partitions must be an integer from 1 to ${MAX_PARTITIONS}`);
  return { topic, partitions: o.partitions };
}

/** {@link DELETE_TOPIC_METHOD}'s body: `{ topic }`. */
export function parseDeleteTopicRequest(body: unknown): string {
  const o = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  return topicName(o.topic, DELETE_TOPIC_METHOD);
}

/** {@link PARTITION_COUNT_METHOD}'s body: `{ topic, partition }`. */
export function parsePartitionCountRequest(body: unknown): { topic: string; partition: number } {
  const o = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const topic = topicName(o.topic, PARTITION_COUNT_METHOD);
  if (typeof o.partition !== 'number' || !Number.isSafeInteger(o.partition) || o.partition < 0) throw new RelayError('INVALID_ARGUMENT', `${PARTITION_COUNT_METHOD} wants a partition number`);
  return { topic, partition: o.partition };
}

/** {@link PARTITION_COUNT_METHOD}'s answer: the leader's partition count, `null` for no such topic. */
export function parsePartitionCountAnswer(body: unknown): number | null {
  const o = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  if (o.partitions === null) return null;
  if (!isCount(o.partitions, MAX_PARTITIONS)) throw new RelayError('INTERNAL', `${PARTITION_COUNT_METHOD}: the leader answered no partition count`);
  return o.partitions;
}
