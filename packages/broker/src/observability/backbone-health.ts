import type { BackboneHealth, BackboneNodeHealth, BackbonePartitionHealth } from '../engine/backbone/health.js';
import type { PartitionView, TopicAssignment } from './cluster-status.js';

export type { BackboneHealth, BackboneNodeHealth, BackbonePartitionHealth } from '../engine/backbone/health.js';

/**
 * The backbone section of the console (issue 16: "the dashboard shows the
 * backbone's health as the gateways see it"): each gateway reports what it
 * sees of RabbitMQ (engine/backbone/health.ts); `/api/cluster` lists every
 * answering gateway's view, and this module judges and prints them. Pure.
 */

/** One gateway's view of the backbone, in `/api/cluster`. */
export interface GatewayBackbone extends BackboneHealth {
  /** The gateway (broker id) that reported it. */
  gateway: string;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === 'string';
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const orNull = (v: unknown, check: (x: unknown) => boolean): boolean => v === null || check(v);

/** Checks the `backbone` field of a peer's report; `undefined` when malformed (the report parser says so). */
export function parseBackboneHealth(value: unknown): BackboneHealth | undefined {
  if (!isObj(value) || value.kind !== 'rabbitmq-stream' || typeof value.connected !== 'boolean' || !orNull(value.connectedTo, isStr) || !isCount(value.connections) || !orNull(value.lastConfirmMs, isNum)) {
    return undefined;
  }
  const nodes = value.nodes;
  const partitions = value.partitions;
  if (!Array.isArray(nodes) || !nodes.every((n) => isObj(n) && isStr(n.node) && orNull(n.reachable, (r) => typeof r === 'boolean') && orNull(n.lastError, isStr) && orNull(n.checkedAtMs, isNum) && orNull(n.roundTripMs, isNum))) {
    return undefined;
  }
  if (!Array.isArray(partitions) || !partitions.every((p) => isObj(p) && isStr(p.topic) && isCount(p.partition) && isStr(p.stream) && orNull(p.leader, isStr))) return undefined;
  return {
    kind: 'rabbitmq-stream',
    connected: value.connected,
    connectedTo: value.connectedTo as string | null,
    // Absent from an older gateway's report (whose connectedTo was the advertised address).
    advertisedAs: isStr(value.advertisedAs) ? value.advertisedAs : null,
    connections: value.connections,
    nodes: nodes as BackboneNodeHealth[],
    partitions: partitions as BackbonePartitionHealth[],
    lastConfirmMs: value.lastConfirmMs as number | null,
  };
}

/**
 * What is wrong with the backbone as the gateways see it, one sentence
 * each: a gateway without a connection cannot serve (it cannot reach the
 * backbone at all), and a configured node a gateway cannot reach is a
 * RabbitMQ node down or cut off from it.
 */
export function backboneProblems(views: readonly GatewayBackbone[]): string[] {
  const problems: string[] = [];
  for (const v of views) {
    if (!v.connected) {
      const why = v.nodes.filter((n) => n.lastError !== null).map((n) => `${n.node}: ${n.lastError}`);
      problems.push(`gateway ${v.gateway} cannot reach the backbone (RabbitMQ)${why.length > 0 ? ` (${why.join('; ')})` : ''}`);
    }
    for (const n of v.nodes) if (n.reachable === false) problems.push(`gateway ${v.gateway} cannot reach RabbitMQ node ${n.node} (${n.lastError ?? 'no answer'})`);
  }
  return problems;
}

/** A round trip in ms as people read it: `2.41 ms`, `380 ms` (`-` when unknown). */
export function formatRoundTrip(ms: number | null): string {
  if (ms === null) return '-';
  return `${ms >= 100 ? Math.round(ms) : Number(ms.toPrecision(3))} ms`;
}

/** The node a gateway is connected to as dialled, and as it advertises itself when that differs (behind a proxy): `10.0.0.5:5552 (advertised rabbit-0:5552)`; `-` when not connected. */
export function connectedTo(v: Pick<BackboneHealth, 'connectedTo' | 'advertisedAs'>): string {
  if (v.connectedTo === null) return '-';
  return v.advertisedAs === null || v.advertisedAs === v.connectedTo ? v.connectedTo : `${v.connectedTo} (advertised ${v.advertisedAs})`;
}

/** A node's state as the status and the console show it. */
export function nodeState(n: Pick<BackboneNodeHealth, 'reachable'>): 'reachable' | 'UNREACHABLE' | 'unchecked' {
  return n.reachable === null ? 'unchecked' : n.reachable ? 'reachable' : 'UNREACHABLE';
}

/** Stream leaders over every gateway's view: per partition, the leader the most recently reporting gateway that knows one names. */
export function streamLeaders(views: readonly GatewayBackbone[]): Array<{ topic: string; partition: number; stream: string; leader: string | null }> {
  const byKey = new Map<string, { topic: string; partition: number; stream: string; leader: string | null }>();
  for (const v of views) {
    for (const p of v.partitions) {
      const key = `${p.topic}/${p.partition}`;
      const known = byKey.get(key);
      if (known === undefined || (known.leader === null && p.leader !== null)) byKey.set(key, { ...p });
    }
  }
  return [...byKey.values()].sort((a, b) => (a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1));
}

/** A gateway's role: in the cluster view's brokers, and in its report's partitions (it serves them, RabbitMQ leads them). */
export const GATEWAY_ROLE = 'gateway';

/**
 * A gateway's partitions in its report. A gateway leads nothing and holds no
 * replica: each partition is a RabbitMQ stream, led by the RabbitMQ node
 * RabbitMQ elected (as this gateway last asked it: `leader` is that node's
 * `host:port`, null while not known) and replicated by RabbitMQ, so the
 * gateway's role is `gateway` and `replicas` is empty. Lag and replica
 * health are RabbitMQ's, not known here (null).
 */
export function gatewayPartitions(topics: readonly TopicAssignment[], health: BackboneHealth): PartitionView[] {
  const leaders = new Map(health.partitions.map((p) => [`${p.topic}/${p.partition}`, p.leader]));
  return topics.flatMap((t) =>
    t.partitions.map((_, partition): PartitionView => ({
      topic: t.topic,
      partition,
      leader: leaders.get(`${t.topic}/${partition}`) ?? null,
      replicas: [],
      role: GATEWAY_ROLE,
      term: 0,
      commit: 0,
      lastIndex: 0,
      lag: null,
      outOfSync: null,
      leaderless: false,
      underReplicated: false,
    })),
  );
}

/** `relaymq status`'s backbone section: a row per gateway, a row per gateway and node, and the stream leaders. Empty without gateways. */
export function renderBackbone(views: readonly GatewayBackbone[], table: (header: string[], rows: string[][]) => string[]): string[] {
  if (views.length === 0) return [];
  const lines = ['', `backbone (${views[0]?.kind}) as the gateways see it:`];
  lines.push(
    ...table(
      ['GATEWAY', 'BACKBONE', 'CONNECTED TO', 'CONNECTIONS', 'LAST CONFIRM'],
      views.map((v) => [v.gateway, v.connected ? 'connected' : 'UNREACHABLE', connectedTo(v), String(v.connections), formatRoundTrip(v.lastConfirmMs)]),
    ),
  );
  lines.push('');
  lines.push(
    ...table(
      ['GATEWAY', 'NODE', 'STATE', 'ROUND TRIP', 'LAST ERROR'],
      views.flatMap((v) => v.nodes.map((n) => [v.gateway, n.node, nodeState(n), formatRoundTrip(n.roundTripMs), n.lastError ?? ''])),
    ),
  );
  const leaders = streamLeaders(views);
  if (leaders.length > 0) {
    lines.push('');
    lines.push(...table(['PARTITION', 'STREAM LEADER', 'STREAM'], leaders.map((p) => [`${p.topic}/${p.partition}`, p.leader ?? 'unknown', p.stream])));
  }
  return lines;
}
