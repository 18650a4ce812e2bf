import { createHash } from 'node:crypto';

/**
 * How relaymq names things in RabbitMQ. Every name starts with the
 * deployment's prefix (`backbone.streamPrefix`, default `relaymq`) and uses
 * `:` as the separator: relaymq topics are dot-separated segments of
 * `[A-Za-z0-9_-]`, so a `:` never occurs inside a topic and a name splits
 * unambiguously whatever dots the topic holds.
 *
 * - metadata stream: `<prefix>:__meta`
 * - partition stream: `<prefix>:<topic>:<generation>:<partition>`, e.g.
 *   `relaymq:orders.eu.paid:k3x9q2:0`. `generation` is chosen when the topic
 *   is created, so a topic deleted and created again gets fresh streams
 *   (offsets from 0) and a gateway that has not applied the deletion yet
 *   cannot write into the new topic's streams.
 * - a name longer than RabbitMQ's 255 bytes keeps the first 160 characters
 *   of the topic followed by `~` and 16 hex digits of its SHA-256 (`~` does
 *   not occur in topics either).
 */
export const MAX_STREAM_NAME_BYTES = 255;
const MAX_TOPIC_PART = 160;

/** Characters of a stream prefix. */
export const STREAM_PREFIX_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

/** The stream every gateway of the deployment tails for topics, positions and groups. */
export function metaStreamName(prefix: string): string {
  return `${prefix}:__meta`;
}

/** The stream holding partition `partition` of `topic` (generation `generation`). */
export function partitionStreamName(prefix: string, topic: string, generation: string, partition: number): string {
  const name = `${prefix}:${topic}:${generation}:${partition}`;
  if (Buffer.byteLength(name) <= MAX_STREAM_NAME_BYTES) return name;
  return `${prefix}:${topic.slice(0, MAX_TOPIC_PART)}~${shortHash(topic)}:${generation}:${partition}`;
}

/**
 * The publisher reference deduplicating one relaymq producer in one stream
 * (RabbitMQ keeps the last publishing id per reference and stream, at most
 * 256 bytes): the producer id, or a hash of it when long.
 */
export function publisherRef(producerId: string): string {
  return Buffer.byteLength(producerId) <= 200 ? `p:${producerId}` : `h:${createHash('sha256').update(producerId).digest('hex')}`;
}

/** A new topic generation: 8 characters of [0-9a-z]. */
export function newGeneration(random: () => number = Math.random): string {
  let out = '';
  for (let i = 0; i < 8; i++) out += Math.floor(random() * 36).toString(36);
  return out;
}

function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}
