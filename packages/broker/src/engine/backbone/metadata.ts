import type { Cursor, TopicInfo } from '@relaymq/sdk/protocol';
import { ConsumerGroups, type GroupCommand, type GroupResult } from '../../core/metadata/groups.js';
import { DurablePositions } from '../../core/metadata/positions.js';

/** What the backbone knows of a topic: its partition count and the generation its streams are named with (naming.ts). */
export interface BackboneTopic {
  partitions: number;
  generation: string;
  /** Nodes each partition stream was created on (`initial-cluster-size`); absent from topics created by older gateways. */
  replicationFactor?: number;
}

/**
 * A command of the metadata stream. Every gateway applies the same commands
 * in the stream's order, so they all hold the same topics, durable
 * positions and consumer groups (a replicated state machine whose log is
 * the stream).
 */
export type MetaCommand =
  | { type: 'topic-create'; topic: string; partitions: number; generation: string; replicationFactor?: number }
  | { type: 'topic-alter'; topic: string; partitions: number }
  | { type: 'topic-delete'; topic: string }
  | { type: 'positions'; durable: string; positions: Cursor[] }
  | { type: 'group'; command: GroupCommand }
  /** Orders nothing: a gateway that reads its own back has applied everything before it. */
  | { type: 'barrier' };

/** One entry of the metadata stream: who proposed it (to resolve the proposal when it is read back) and what. */
export interface MetaEntry {
  /** Unique per proposal: the gateway's incarnation and a counter. */
  id: string;
  command: MetaCommand;
}

/** What applying a command did. */
export type MetaResult =
  | { kind: 'topic'; info: TopicInfo; topic: BackboneTopic; created: boolean; addedFrom?: number }
  | { kind: 'topic-deleted'; info: TopicInfo; topic: BackboneTopic }
  | { kind: 'refused'; code: 'INVALID_TOPIC' | 'INVALID_ARGUMENT' | 'LIMIT_EXCEEDED'; message: string }
  | { kind: 'positions' }
  | { kind: 'group'; result: GroupResult }
  | { kind: 'barrier' };

/**
 * The metadata of a backbone deployment, as one gateway applied it: pure,
 * deterministic, no I/O (meta-log.ts feeds it the stream).
 */
export class BackboneMetadata {
  readonly topics = new Map<string, BackboneTopic>();
  readonly positions = new DurablePositions();
  readonly groups = new ConsumerGroups(() => [...this.topics].map(([topic, t]) => ({ topic, partitions: t.partitions })));

  apply(command: MetaCommand): MetaResult {
    switch (command.type) {
      case 'topic-create': {
        const existing = this.topics.get(command.topic);
        // The first create wins; a later one (another gateway raced) is answered with the topic as it is.
        if (existing !== undefined) return topicResult(command.topic, existing, false);
        const topic: BackboneTopic = { partitions: command.partitions, generation: command.generation };
        if (Number.isSafeInteger(command.replicationFactor) && (command.replicationFactor as number) > 0) topic.replicationFactor = command.replicationFactor;
        this.topics.set(command.topic, topic);
        this.groups.topicCreated(command.topic);
        return topicResult(command.topic, topic, true);
      }
      case 'topic-alter': {
        const existing = this.topics.get(command.topic);
        if (existing === undefined) return { kind: 'refused', code: 'INVALID_TOPIC', message: `no topic "${command.topic}"` };
        if (command.partitions <= existing.partitions) {
          return { kind: 'refused', code: 'INVALID_ARGUMENT', message: `topic ${command.topic} has ${existing.partitions} partitions; the count can only be raised (asked for ${command.partitions})` };
        }
        const before = existing.partitions;
        existing.partitions = command.partitions;
        this.groups.topicCreated(command.topic);
        return { kind: 'topic', info: { topic: command.topic, partitions: existing.partitions }, topic: { ...existing }, created: false, addedFrom: before };
      }
      case 'topic-delete': {
        const existing = this.topics.get(command.topic);
        if (existing === undefined) return { kind: 'refused', code: 'INVALID_TOPIC', message: `no topic "${command.topic}"` };
        this.topics.delete(command.topic);
        this.positions.forgetTopic(command.topic);
        this.groups.topicDeleted(command.topic);
        return { kind: 'topic-deleted', info: { topic: command.topic, partitions: existing.partitions }, topic: existing };
      }
      case 'positions': {
        const result = this.positions.commit(command.durable, command.positions);
        return result.kind === 'limit' ? { kind: 'refused', code: 'LIMIT_EXCEEDED', message: result.message } : { kind: 'positions' };
      }
      case 'group':
        return { kind: 'group', result: this.groups.apply(command.command) };
      case 'barrier':
        return { kind: 'barrier' };
    }
  }
}

function topicResult(name: string, topic: BackboneTopic, created: boolean): MetaResult {
  return { kind: 'topic', info: { topic: name, partitions: topic.partitions }, topic: { ...topic }, created };
}

/** Parses one entry read from the metadata stream; `undefined` for anything else (a foreign writer's message is skipped). */
export function parseMetaEntry(content: Buffer): MetaEntry | undefined {
  try {
    const entry = JSON.parse(content.toString('utf8')) as Partial<MetaEntry>;
    if (typeof entry.id !== 'string' || typeof entry.command !== 'object' || entry.command === null || typeof entry.command.type !== 'string') return undefined;
    return entry as MetaEntry;
  } catch {
    return undefined;
  }
}
