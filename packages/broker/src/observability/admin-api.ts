/**
 * The admin port's topic and cluster endpoints, which `relaymq topic` and
 * `relaymq cluster` call. This module parses requests and shapes answers;
 * the broker supplies the actions ({@link AdminActions}). Mutating routes
 * are authenticated by the admin server (admin-server.ts) before they run.
 *
 *   GET   /api/topics[?topic=<name>]   describe one topic, or list them all
 *   POST  /api/topics                  { topic, partitions?, replicationFactor? }: create
 *   PATCH /api/topics                  { topic, partitions }: raise the partition count
 *   DELETE /api/topics?topic=<name>    delete a topic with its data (404 when there is none)
 *   GET   /api/membership              the brokers and the metadata group
 *   POST  /api/cluster/add             { broker }: admit a linked broker into the metadata group
 *   POST  /api/cluster/remove          { broker }: take a broker out (decommission.ts says when); one
 *                                      holding replicas drains first (its replicas are moved off)
 *   POST  /api/cluster/forget          { broker }: let a replaced or removed broker come back under its id on an
 *                                      empty data directory (refused while it is a member or holds replicas)
 *   GET   /api/cluster/moves           replica moves in progress and draining brokers
 *   POST  /api/cluster/rebalance       spread replicas evenly (by count) over the brokers
 *   POST  /api/cluster/move            { topic, partition, from, to }: move one replica (engine/manual-move.ts
 *                                      says when it is refused; the error then carries a stable `reason`)
 */
import { RelayError, topicProblem } from '@relaymq/sdk/protocol';
import { MoveRefusedError } from '../engine/manual-move.js';
import { json, jsonError, type AdminMutations, type AdminResponse, type AdminRoutes } from './admin-server.js';

/** One partition of a described topic. */
export interface PartitionDescription {
  partition: number;
  /**
   * Brokers holding a replica; the first is the preferred leader. On a
   * gateway: the RabbitMQ nodes holding the partition's stream (`host:port`,
   * leader first; empty when RabbitMQ could not be asked).
   */
  replicas: string[];
  /** The current leader as this broker knows it (on a gateway: the stream's leader node), `null` when none is known. */
  leader: string | null;
  /** A replica move of this partition in progress (absent when none). */
  moving?: { from: string; to: string };
}

/** A topic as `GET /api/topics?topic=` and `relaymq topic describe` show it. */
export interface TopicDescription {
  topic: string;
  replicationFactor: number;
  partitions: PartitionDescription[];
}

/** What creating a topic asks for; unset fields take the broker's defaults. */
export interface TopicSpec {
  topic: string;
  partitions?: number;
  replicationFactor?: number;
}

/** What `DELETE /api/topics?topic=` answers: the topic as it was before the deletion. */
export interface TopicDeleted {
  deleted: true;
  topic: TopicDescription;
}

/** What `POST /api/topics` answers: the topic, and whether this request created it. */
export interface TopicCreated {
  created: boolean;
  topic: TopicDescription;
}

/** One broker as `GET /api/membership` and `relaymq cluster status` show it. */
export interface MemberDescription {
  id: string;
  /** Its place in the metadata group: `voter`, `learner`, or `none` (linked or gossiped, not admitted). */
  role: 'voter' | 'learner' | 'none';
  /** As gossip sees it; `unknown` when gossip has not met it. */
  state: string;
  url: string | null;
  /** Partition replicas it holds, and partitions it leads (as this broker knows). */
  replicas: number;
  leaders: number;
  /** Present (true) while the broker is decommissioned: its replicas are being moved off. */
  draining?: true;
}

/** `GET /api/membership`. */
export interface MembershipDescription {
  /** The answering broker. */
  broker: string;
  clusterId: string | null;
  metadataLeader: string | null;
  /** Most voters the metadata group takes (`metadataVoters`). */
  metadataVoters: number;
  members: MemberDescription[];
}

/** One replica move as `GET /api/cluster/moves` and `relaymq cluster moves` show it. */
export interface MoveDescription {
  topic: string;
  partition: number;
  from: string;
  to: string;
  startedAtMs: number;
  /** The last step the metadata leader saw (`pending` before its first, or when another broker answers). */
  phase: 'pending' | 'catching-up' | 'promoted' | 'transferring' | 'removed' | 'done' | 'cancelled';
  /** Raft entries the new replica holds, of the partition leader's `lastIndex` (0 when unknown). */
  match: number;
  lastIndex: number;
  /**
   * Bytes the new replica has copied of the partition, and the partition's
   * size on its leader; null (or absent, from an older broker) until a step
   * answered with them.
   */
  copiedBytes?: number | null;
  totalBytes?: number | null;
  /** Recent copy rate, and the time left at that rate; null when unknown (no rate yet, or stalled). */
  bytesPerSecond?: number | null;
  timeLeftMs?: number | null;
  /** The last step's failure while it is retried. */
  error?: string;
}

/** `GET /api/cluster/moves`. */
export interface MovesDescription {
  /** The answering broker, and the metadata leader (only it knows each move's phase). */
  broker: string;
  metadataLeader: string | null;
  /**
   * The broker whose view the moves are: the metadata leader, asked by the
   * answering broker; the answering broker itself when it leads, or when the
   * leader could not be asked (its moves then show `pending`). Absent from
   * older brokers.
   */
  progressFrom?: string;
  moves: MoveDescription[];
  /** Brokers being decommissioned. */
  draining: string[];
  /** A rebalance is asked for and not done, or (`autoRebalance`) replica counts differ by more than one. */
  rebalancing: boolean;
}

/** `POST /api/cluster/remove`: the membership, and what the removal did. */
export interface RemovalDescription extends MembershipDescription {
  removal: { broker: string; outcome: 'removed' | 'draining'; replicasToMove: number };
}

/** What moving a replica asks for (`POST /api/cluster/move`). */
export interface MoveRequest {
  topic: string;
  partition: number;
  /** The broker holding the replica now, and the one to hold it instead. */
  from: string;
  to: string;
}

/** `POST /api/cluster/move`: the move recorded, and the moves as they stand. */
export interface MoveStarted {
  move: MoveRequest;
  moves: MovesDescription;
}

/** What the broker does for the admin endpoints. */
export interface AdminActions {
  topics(): Promise<TopicDescription[]>;
  /** Creates a topic (through the metadata leader); an existing topic is answered as it is. */
  createTopic(spec: TopicSpec): Promise<TopicCreated>;
  /** Deletes a topic with its data and positions; answers it as it was. `INVALID_TOPIC` when it does not exist. */
  deleteTopic(topic: string): Promise<TopicDescription>;
  /** Raises a topic's partition count; `INVALID_TOPIC` unknown, `INVALID_ARGUMENT` not higher. */
  addPartitions(topic: string, partitions: number): Promise<TopicDescription>;
  membership(): MembershipDescription;
  /** Admits a linked broker into the metadata group. */
  addBroker(broker: string): Promise<MembershipDescription>;
  /** Takes a broker out (draining it first when it holds replicas); `FORBIDDEN` when it may not go (decommission.ts). */
  removeBroker(broker: string): Promise<RemovalDescription>;
  /** Lets a replaced or removed broker come back on an empty data directory (engine/cluster.ts forgetBroker). */
  forgetBroker(broker: string): Promise<MembershipDescription>;
  /** Replica moves in progress. */
  moves(): Promise<MovesDescription>;
  /** Asks for replicas to be spread evenly; answers the moves as they stand. */
  rebalance(): Promise<MovesDescription>;
  /** Starts moving one replica; a refusal is a `MoveRefusedError` (engine/manual-move.ts). Resolves once recorded, not done. */
  moveReplica(request: MoveRequest): Promise<MoveStarted>;
}

/** Largest partition count a topic may be created with (as `defaultPartitions`). */
export const MAX_TOPIC_PARTITIONS = 1024;
/** Largest replication factor (as `replicationFactor`). */
export const MAX_REPLICATION_FACTOR = 16;

/** Status of an error thrown by an action: the client's mistake or not. */
function errorResponse(err: unknown): AdminResponse {
  if (err instanceof MoveRefusedError) {
    // Unknown names are not found; the rest is refused by the cluster's state (or names one broker twice).
    const status = err.reason.startsWith('unknown-') ? 404 : err.reason === 'same-broker' ? 400 : 409;
    return json({ error: err.message, code: err.code, reason: err.reason }, status);
  }
  if (err instanceof RelayError) {
    const status =
      err.code === 'INVALID_ARGUMENT' || err.code === 'INVALID_TOPIC'
        ? 400
        : err.code === 'FORBIDDEN'
          ? 409 // refused by the cluster's state (not by authentication, which is 401)
          : err.code === 'TIMEOUT' || err.code === 'NO_QUORUM' || err.code === 'NOT_READY' || err.code === 'NOT_LEADER'
            ? 503
            : 500;
    return jsonError(status, err.code, err.message);
  }
  return jsonError(500, 'INTERNAL', String(err));
}

function positiveInteger(o: Record<string, unknown>, field: string, max: number): number | undefined {
  const value = o[field];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new RelayError('INVALID_ARGUMENT', `${field} must be an integer from 1 to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** A request body's topic spec; throws INVALID_ARGUMENT / INVALID_TOPIC naming the bad field. */
export function parseTopicSpec(body: unknown): TopicSpec {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new RelayError('INVALID_ARGUMENT', 'expected a JSON object { topic, partitions?, replicationFactor? }');
  const o = body as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (key !== 'topic' && key !== 'partitions' && key !== 'replicationFactor') throw new RelayError('INVALID_ARGUMENT', `unknown field "${key}"; expected topic, partitions, replicationFactor`);
  }
  if (typeof o.topic !== 'string') throw new RelayError('INVALID_ARGUMENT', 'topic (a string) is required');
  const problem = topicProblem(o.topic);
  if (problem !== undefined) throw new RelayError('INVALID_TOPIC', problem);
  const spec: TopicSpec = { topic: o.topic };
  const partitions = positiveInteger(o, 'partitions', MAX_TOPIC_PARTITIONS);
  const replicationFactor = positiveInteger(o, 'replicationFactor', MAX_REPLICATION_FACTOR);
  if (partitions !== undefined) spec.partitions = partitions;
  if (replicationFactor !== undefined) spec.replicationFactor = replicationFactor;
  return spec;
}

/** A request body's `{ topic, partitions }` for raising a partition count. */
export function parseTopicAlteration(body: unknown): { topic: string; partitions: number } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new RelayError('INVALID_ARGUMENT', 'expected a JSON object { topic, partitions }');
  const o = body as Record<string, unknown>;
  for (const key of Object.keys(o)) if (key !== 'topic' && key !== 'partitions') throw new RelayError('INVALID_ARGUMENT', `unknown field "${key}"; expected topic, partitions`);
  if (typeof o.topic !== 'string') throw new RelayError('INVALID_ARGUMENT', 'topic (a string) is required');
  const partitions = positiveInteger(o, 'partitions', MAX_TOPIC_PARTITIONS);
  if (partitions === undefined) throw new RelayError('INVALID_ARGUMENT', 'partitions (the new, higher count) is required');
  return { topic: o.topic, partitions };
}

/** A broker id as the admin requests name one. */
const BROKER_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** A request body's `{ broker }`. */
export function parseBrokerRequest(body: unknown): string {
  const broker = typeof body === 'object' && body !== null ? (body as Record<string, unknown>).broker : undefined;
  if (typeof broker !== 'string' || !BROKER_ID.test(broker)) throw new RelayError('INVALID_ARGUMENT', 'expected a JSON object { broker: "<broker id>" }');
  return broker;
}

/** A request body's `{ topic, partition, from, to }` for moving a replica. */
export function parseMoveRequest(body: unknown): MoveRequest {
  const expected = 'expected a JSON object { topic, partition, from, to }';
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new RelayError('INVALID_ARGUMENT', expected);
  const o = body as Record<string, unknown>;
  for (const key of Object.keys(o)) if (!['topic', 'partition', 'from', 'to'].includes(key)) throw new RelayError('INVALID_ARGUMENT', `unknown field "${key}"; ${expected}`);
  if (typeof o.topic !== 'string') throw new RelayError('INVALID_ARGUMENT', `topic (a string) is required; ${expected}`);
  const problem = topicProblem(o.topic);
  if (problem !== undefined) throw new RelayError('INVALID_TOPIC', problem);
  if (typeof o.partition !== 'number' || !Number.isInteger(o.partition) || o.partition < 0 || o.partition >= MAX_TOPIC_PARTITIONS) {
    throw new RelayError('INVALID_ARGUMENT', `partition must be an integer from 0 to ${MAX_TOPIC_PARTITIONS - 1}, got ${JSON.stringify(o.partition)}`);
  }
  for (const field of ['from', 'to'] as const) {
    const id = o[field];
    if (typeof id !== 'string' || !BROKER_ID.test(id)) throw new RelayError('INVALID_ARGUMENT', `${field} must be a broker id (letters, digits, _ and -), got ${JSON.stringify(id)}`);
  }
  return { topic: o.topic, partition: o.partition, from: o.from as string, to: o.to as string };
}

/** Runs an action; a thrown error becomes its JSON answer. */
async function answering(action: () => Promise<AdminResponse>): Promise<AdminResponse> {
  try {
    return await action();
  } catch (err) {
    return errorResponse(err);
  }
}

/** The read-only routes. */
export function adminReadRoutes(actions: AdminActions): AdminRoutes {
  return {
    '/api/topics': (query) =>
      answering(async () => {
        const name = query.get('topic');
        const topics = await actions.topics();
        if (name === null) return json({ topics });
        const topic = topics.find((t) => t.topic === name);
        return topic === undefined ? jsonError(404, 'INVALID_TOPIC', `no topic "${name}"`) : json(topic);
      }),
    '/api/membership': () => json(actions.membership()),
    '/api/cluster/moves': () => answering(async () => json(await actions.moves())),
  };
}

/** The mutating routes (the admin server checks the token first). */
export function adminMutations(actions: AdminActions): AdminMutations {
  return {
    'POST /api/topics': ({ body }) =>
      answering(async () => {
        const result = await actions.createTopic(parseTopicSpec(body));
        return json(result, result.created ? 201 : 200);
      }),
    'PATCH /api/topics': ({ body }) =>
      answering(async () => {
        const { topic, partitions } = parseTopicAlteration(body);
        return json(await actions.addPartitions(topic, partitions));
      }),
    'DELETE /api/topics': ({ query }) =>
      answering(async () => {
        const topic = query.get('topic');
        if (topic === null || topic === '') throw new RelayError('INVALID_ARGUMENT', 'the topic to delete is required: DELETE /api/topics?topic=<name>');
        const problem = topicProblem(topic);
        if (problem !== undefined) throw new RelayError('INVALID_TOPIC', problem);
        try {
          return json({ deleted: true, topic: await actions.deleteTopic(topic) } satisfies TopicDeleted);
        } catch (err) {
          // No such topic: not found, as a describe of it answers.
          if (err instanceof RelayError && err.code === 'INVALID_TOPIC') return jsonError(404, err.code, err.message);
          throw err;
        }
      }),
    'POST /api/cluster/add': ({ body }) => answering(async () => json(await actions.addBroker(parseBrokerRequest(body)))),
    'POST /api/cluster/remove': ({ body }) => answering(async () => json(await actions.removeBroker(parseBrokerRequest(body)))),
    'POST /api/cluster/forget': ({ body }) => answering(async () => json(await actions.forgetBroker(parseBrokerRequest(body)))),
    'POST /api/cluster/rebalance': () => answering(async () => json(await actions.rebalance())),
    'POST /api/cluster/move': ({ body }) => answering(async () => json(await actions.moveReplica(parseMoveRequest(body)))),
  };
}
