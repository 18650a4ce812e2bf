import { connect, type Client } from 'rabbitmq-stream-js-client';
import { bounded } from './bounded.js';
import type { BackboneEndpoint } from './url.js';

/** One configured RabbitMQ node as a gateway's last check of it found it. */
export interface BackboneNodeHealth {
  /** `host:port` as configured in `backbone.urls`. */
  node: string;
  /** `null` until the first check answered. */
  reachable: boolean | null;
  /** Why the last check failed; null once one succeeds again. */
  lastError: string | null;
  /** When it was last checked, ms since the epoch (null: not yet). */
  checkedAtMs: number | null;
  /** The last check's round trip: connect, authenticate, open the vhost (ms; null when it failed). */
  roundTripMs: number | null;
}

/** One partition stream this gateway tails, and its leader as RabbitMQ's metadata last named it. */
export interface BackbonePartitionHealth {
  topic: string;
  partition: number;
  stream: string;
  /** `host:port` of the stream's leader node; null when unknown (not asked yet, or none elected). */
  leader: string | null;
}

/**
 * The backbone as one gateway sees it: part of its `/api/broker` report,
 * combined over every gateway by `/api/cluster`, `relaymq status` and the
 * console. Values are null rather than absent (the peer codec drops undefined).
 */
export interface BackboneHealth {
  kind: 'rabbitmq-stream';
  /** Whether the gateway has a live connection to the backbone (false while it reconnects: it cannot reach it). */
  connected: boolean;
  /**
   * `host:port` the live connection was dialled at: one of the configured
   * nodes (`nodes[].node`, from `backbone.urls`), so behind a proxy or load
   * balancer the proxy's address; null while not connected.
   */
  connectedTo: string | null;
  /**
   * `host:port` of the node that connection reached, as the node advertises
   * itself (its `advertised_host`/`advertised_port`: how stream leaders are
   * named); differs from `connectedTo` behind a proxy, a load balancer or
   * NAT. Null while not connected.
   */
  advertisedAs: string | null;
  /** Stream protocol connections open: the main one and those of its consumers and publishers. */
  connections: number;
  /** Every configured node, in configuration order. */
  nodes: BackboneNodeHealth[];
  /** Partition streams this gateway tails, by topic and partition. */
  partitions: BackbonePartitionHealth[];
  /** The last publish's round trip, from sending to RabbitMQ's confirm (ms; null before the first). */
  lastConfirmMs: number | null;
}

/** A timed round trip to the backbone: `probe`, one node check; `confirm`, a publish from send to confirm. */
export type BackboneRequestOp = 'probe' | 'confirm';

/** What the health monitor reads from the gateway's engine. */
export interface HealthSources {
  endpoint: BackboneEndpoint;
  /** The live client, or undefined while reconnecting. */
  client(): Client | undefined;
  /** `host:port` (as configured) the live client was dialled at; undefined while reconnecting. */
  dialled(): string | undefined;
  /** Partition streams tailed here. */
  streams(): Array<{ topic: string; partition: number; stream: string }>;
  /** Stream protocol connections open (compat.ts counts the client's pool). */
  openConnections(client: Client): number;
  /** Bound on each check's round trip. */
  timeoutMs: number;
  now: () => number;
  /** Told each round trip measured, in seconds: `probe` per node, `confirm` per publish. */
  observe?: (op: BackboneRequestOp, seconds: number) => void;
}

/** How often a gateway checks each configured node and asks for its streams' leaders. */
export const HEALTH_CHECK_INTERVAL_MS = 5000;
/** Most streams whose leaders one check asks for (one metadata request); the rest are shown unknown. */
const MAX_LEADER_QUERIES = 1000;

/**
 * Watches the backbone for the console: every {@link HEALTH_CHECK_INTERVAL_MS}
 * it opens (and closes) a stream-protocol connection to each configured node,
 * which says whether the node is reachable with this gateway's credentials
 * and how long a round trip takes, and asks RabbitMQ's metadata for the
 * leaders of the streams tailed here. Publish confirms are timed as they come.
 */
export class BackboneHealthMonitor {
  private readonly nodes: Map<string, BackboneNodeHealth>;
  private readonly leaders = new Map<string, string | null>();
  private lastConfirmMs: number | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private checking: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly sources: HealthSources) {
    this.nodes = new Map(
      sources.endpoint.hosts.map((h) => {
        const node = `${h.host}:${h.port}`;
        return [node, { node, reachable: null, lastError: null, checkedAtMs: null, roundTripMs: null }];
      }),
    );
  }

  /** Checks now, then every interval until {@link stop}. */
  start(intervalMs = HEALTH_CHECK_INTERVAL_MS): void {
    const loop = (): void => {
      if (this.stopped) return;
      this.checking = this.check().finally(() => {
        if (!this.stopped) this.timer = setTimeout(loop, intervalMs).unref();
      });
    };
    loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.checking?.catch(() => undefined);
  }

  /** A publish was confirmed `seconds` after it was sent. */
  confirmed(seconds: number): void {
    this.lastConfirmMs = Math.round(seconds * 1e6) / 1e3;
    this.sources.observe?.('confirm', seconds);
  }

  /** The backbone as this gateway sees it now. */
  snapshot(): BackboneHealth {
    const client = this.sources.client();
    const info = client?.getConnectionInfo();
    return {
      kind: 'rabbitmq-stream',
      connected: client !== undefined,
      connectedTo: client === undefined ? null : (this.sources.dialled() ?? null),
      advertisedAs: info === undefined ? null : `${info.host}:${info.port}`,
      connections: client === undefined ? 0 : this.sources.openConnections(client),
      nodes: [...this.nodes.values()].map((n) => ({ ...n })),
      partitions: this.sources
        .streams()
        .map((s) => ({ ...s, leader: this.leaders.get(s.stream) ?? null }))
        .sort((a, b) => (a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1)),
      lastConfirmMs: this.lastConfirmMs,
    };
  }

  /** One check: every configured node in parallel, then the leaders of the streams tailed here. */
  async check(): Promise<void> {
    await Promise.all(this.sources.endpoint.hosts.map((h) => this.probe(h.host, h.port)));
    await this.askLeaders();
  }

  private async probe(host: string, port: number): Promise<void> {
    const node = this.nodes.get(`${host}:${port}`) as BackboneNodeHealth;
    const { username, password, vhost } = this.sources.endpoint;
    const started = performance.now();
    const connecting = connect({ hostname: host, port, username, password, vhost, heartbeat: 0, connectionName: 'relaymq-gateway-health' });
    try {
      const client = await bounded(connecting, this.sources.timeoutMs, `connecting to ${host}:${port}`);
      const seconds = (performance.now() - started) / 1000;
      await client.close().catch(() => undefined);
      Object.assign(node, { reachable: true, lastError: null, checkedAtMs: this.sources.now(), roundTripMs: Math.round(seconds * 1e6) / 1e3 });
      this.sources.observe?.('probe', seconds);
    } catch (err) {
      // A connection that opens after the bound is closed as soon as it does.
      connecting.then((late) => late.close()).catch(() => undefined);
      Object.assign(node, { reachable: false, lastError: describeError(err), checkedAtMs: this.sources.now(), roundTripMs: null });
    }
  }

  private async askLeaders(): Promise<void> {
    const client = this.sources.client();
    const streams = this.sources.streams().map((s) => s.stream);
    for (const known of [...this.leaders.keys()]) if (!streams.includes(known)) this.leaders.delete(known);
    if (client === undefined || streams.length === 0) return;
    try {
      const asked = streams.slice(0, MAX_LEADER_QUERIES);
      const metadata = await bounded(client.queryMetadata({ streams: asked }), this.sources.timeoutMs, 'asking for stream leaders');
      for (const m of metadata) this.leaders.set(m.streamName, m.leader === undefined || m.leader.host === '' ? null : `${m.leader.host}:${m.leader.port}`);
    } catch {
      // Not known this time: the last answer stays; the node checks say why.
    }
  }
}

/** An error as one line: the client's errors are sometimes bare objects or strings. */
function describeError(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  if (typeof err === 'object' && err !== null && 'message' in err) return String((err as { message: unknown }).message);
  return String(err);
}
