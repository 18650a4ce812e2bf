import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { ClusterView } from '@relaymq/sdk/protocol';
import type { LogEngine } from './engine/engine.js';
import { ClusterEngine } from './engine/cluster.js';
import { MemoryEngine } from './engine/memory.js';
import type { BackboneEngine } from './engine/backbone/engine.js';
import { streamArguments } from './engine/backbone/retention.js';
import { listenForClients, type ClientListener } from './server/client-listener.js';
import { ForeignClusterError, PeerTransport, type PeerAddress } from './net/peer-transport.js';
import { COALESCED_HEARTBEATS } from './runtime/heartbeat-coalescer.js';
import { ENTRY_BODIES } from './runtime/raft-wire.js';
import { GossipRunner } from './runtime/gossip.js';
import type { RaftActivity } from './runtime/group-clock.js';
import { Ticker } from './runtime/ticker.js';
import { raftConfigOf, swimConfigOf } from './tuning.js';
import type { Operations } from './observability/operations.js';
import type { AdminActions, MemberDescription, MembershipDescription, MovesDescription, PartitionDescription, TopicDescription } from './observability/admin-api.js';
import { isReady } from './observability/cluster-status.js';
import { loadTracing } from './observability/tracing.js';
import type { TopicAssignment } from './observability/broker-report.js';
import type { ReplicaMove } from './core/metadata/moves.js';
import { durablePositionSource, groupPositionSource } from './observability/consumer-lag.js';
import { resolveBrokerOptions, type BrokerOptions, type ResolvedBackboneOptions, type ResolvedBrokerOptions } from './options.js';
import { Fanout } from './server/fanout.js';
import { ClientSession } from './server/session.js';
import type { Authenticator } from './security/auth.js';
import { newSecurityCounters, type SecurityCounters } from './security/counters.js';
import { loadTls } from './security/tls.js';
import { OpenSync, syncDataDirectory, takeCleanShutdownMarker, writeCleanShutdownMarker } from './storage/clean-shutdown.js';
import { LastRunRecord } from './storage/last-run.js';
import { checkDataLayout, DEFAULT_STORAGE_LAYOUT, type StorageLayout } from './storage/data-layout.js';
import { nodeFileSystem } from './storage/fs.js';
import { IDENTITY_FILE, loadIdentity, PeerIncarnations, recordClusterId, type BrokerIdentity } from './storage/identity.js';
import { RelayError } from '@relaymq/sdk/protocol';

/** How long `--join` keeps trying to reach one of its brokers before the start fails. */
export const JOIN_TIMEOUT_MS = 30_000;
/** A restarting broker gives each configured peer this long to say which cluster it belongs to (see refuseForeignPeers). */
export const FOREIGN_CHECK_MS = 1000;

/** A snapshot of a broker's counters. */
export interface BrokerStats {
  id: string;
  connections: number;
  subscriptions: number;
  /** Messages accepted by publish frames since start. */
  published: number;
  /**
   * Of them, messages of partitions another broker led: forwarded to that
   * leader (two more hops). Clients with discovery publish to partition
   * leaders directly, so this grows only while leadership moves, or for
   * clients that cannot reach the leaders (discovery off). Exported like
   * every stat, as `relaymq_broker_stat{stat="publishedForwarded"}`.
   */
  publishedForwarded: number;
  /** Messages pushed to subscribers since start. */
  delivered: number;
  /** Bytes written to client sockets but not yet flushed, summed over connections. */
  outboundBytes: number;
  /** Largest per-connection `outboundBytes`. */
  maxConnectionOutboundBytes: number;
  /** Security events since start: denials, auth failures, limits hit. */
  security: SecurityCounters;
  /** Raft group ticks run since start (a quiesced group is not ticked); 0 without a cluster. */
  raftTicks: number;
  /** Raft messages sent to peers since start, every group together; 0 without a cluster. */
  raftMessagesSent: number;
  /** Messages sent to peer brokers since start (Raft, gossip, peer requests); 0 without a cluster. */
  peerMessagesSent: number;
  /** Frames they went out in: a batch frame carries every message queued to a peer in one event-loop turn. */
  peerFramesSent: number;
  /** Raft groups hosted here (partition replicas and the metadata group). */
  raftGroups: number;
  /** Of them, quiesced: idle with every replica caught up, neither ticked nor heartbeating. */
  raftGroupsQuiesced: number;
  /**
   * Client sessions told of an append since start: one per append and session
   * holding a subscription that delivers its partition (sessions subscribed
   * elsewhere are not woken).
   */
  deliverySessionsWoken: number;
  /** Subscription cursors read by delivery since start: only those whose partition got messages (or were just placed). */
  deliveryCursorsVisited: number;
  /** Segment files open now, over every partition (bounded by `maxOpenSegmentFiles` but for those busy); 0 without a cluster. */
  openSegmentFiles: number;
  /** Raft log files open now, over every group (bounded by `maxOpenRaftLogFiles` but for those busy); 0 without a cluster. */
  openRaftLogFiles: number;
  /**
   * Times the heap was collected after a burst of partition replicas created
   * or removed here had settled (so the burst's garbage does not stay in the
   * RSS of an idle broker); 0 without a cluster.
   */
  heapSettles: number;
}

/** A running broker. */
export interface Broker {
  readonly id: string;
  /** The client port actually bound (useful with `port: 0`). */
  readonly port: number;
  /** The URL clients dial. */
  readonly url: string;
  /** The peer port actually bound, when clustered (`peers` set). */
  readonly peerPort: number | undefined;
  /** The admin server's base URL (`/metrics`, `/healthz`, the dashboard), when `adminPort` is set. */
  readonly adminUrl: string | undefined;
  /**
   * The partition logs.
   * @internal For tests and tools in this repository; not a stable API.
   */
  readonly engine: LogEngine;
  stats(): BrokerStats;
  /**
   * Graceful shutdown: refuses new work, sends `goaway` to every client,
   * waits up to `drainTimeoutMs` for them to leave, then closes.
   */
  close(): Promise<void>;
}

/**
 * Starts a broker and resolves once it accepts clients.
 *
 * @example
 * ```ts
 * const broker = await startBroker({ id: 'b1', port: 7401 });
 * // ...
 * await broker.close();
 * ```
 */
export async function startBroker(options: BrokerOptions = {}): Promise<Broker> {
  const broker = new RunningBroker(resolveBrokerOptions(options));
  try {
    await broker.start();
  } catch (err) {
    await broker.close().catch(() => {});
    throw err;
  }
  return broker;
}

class RunningBroker implements Broker {
  private readonly sessions = new Set<ClientSession>();
  private listener: ClientListener | undefined;
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  private isDraining = false;
  private closing: Promise<void> | undefined;
  private endedTotals = { published: 0, forwarded: 0, delivered: 0 };
  private onEmpty: (() => void) | undefined;
  private peers: PeerTransport | undefined;
  private gossip: GossipRunner | undefined;
  /** Peers' incarnations as first met (with a data directory). */
  private peerIncarnations: PeerIncarnations | undefined;
  /** Ticks every Raft group and gossip: one clock (see runtime/ticker.ts). */
  private readonly ticker = new Ticker();
  private clusterPushScheduled = false;
  private readonly counters = newSecurityCounters();
  /** Open connections per remote address, for `maxConnectionsPerIp`. */
  private readonly connectionsByAddress = new Map<string, number>();
  private authenticator: Authenticator | undefined;
  /** The write of the cluster id into the data directory, awaited by close(). */
  private clusterIdRecorded: Promise<void> = Promise.resolve();
  /** Routes appends to the subscriptions that deliver them; set once the engine exists. */
  private fanout: Fanout | undefined;
  /** Every port is bound and start() returned: what 'broker closed' is logged against. */
  private started = false;

  engine!: LogEngine;
  private replicated: ClusterEngine | undefined;
  /** The layout of the data directory, once settled at start (none without one, or before). */
  private storageLayout: StorageLayout | undefined;
  /** The start's decision on fsyncs at open (with a data directory): see storage/clean-shutdown.ts. */
  private openSync: OpenSync | undefined;
  /** This start's record (with a data directory): whether its replicas may lack acknowledged entries. */
  private lastRun: LastRunRecord | undefined;
  /** The engine over RabbitMQ streams, in backbone mode. */
  private backbone: BackboneEngine | undefined;
  /** Metrics, admin server, alerts: only when `adminPort` or `alerts` is set (created by start()). */
  private operations: Operations | undefined;

  constructor(private readonly options: ResolvedBrokerOptions) {}

  /**
   * Metrics, the admin server and alerts, when `adminPort` or `alerts` is
   * set. Loaded only then: prom-client and the console's assets are no part
   * of a broker's start without them.
   */
  private async createOperations(): Promise<Operations | undefined> {
    const { options } = this;
    if (options.adminPort === undefined && options.alerts === undefined) return undefined;
    const { Operations } = await import('./observability/operations.js');
    return new Operations(options, {
      id: options.id,
      clustered: raftClustered(options),
      peerIds: options.peers.map((p) => p.id),
      dataDir: options.dataDir,
      stats: () => this.stats(),
      cluster: () => this.cluster(),
      groups: () => this.replicated?.groupStatus() ?? [],
      raftCounters: () => this.replicated?.raftCounters(),
      accepting: () => this.listener !== undefined && !this.isDraining,
      metadataLeaderKnown: () => this.replicated?.metadataLeaderKnown() ?? false,
      readReplica: async (topic, partition, offset, maxCount, maxBytes) => {
        if (this.replicated !== undefined) return this.replicated.readReplica(topic, partition, offset, maxCount, maxBytes);
        // Standalone in memory: the one copy there is.
        if (this.engine === undefined || (this.engine.partitionCount(topic) ?? 0) <= partition) return undefined;
        const bounds = this.engine.bounds(topic, partition);
        const messages = await this.engine.read(topic, partition, Math.max(offset, bounds.start), maxCount, maxBytes);
        return { ...bounds, messages };
      },
      url: () => this.url,
      peerTransport: () => this.peers,
      topics: () => this.topicAssignments(),
      hostedBounds: (topic, partition) =>
        (this.replicated === undefined ? (this.engine?.partitionCount(topic) ?? 0) > partition : this.replicated.hostsReplica(topic, partition))
          ? this.engine.bounds(topic, partition)
          : undefined,
      leads: (topic, partition) =>
        this.replicated === undefined ? (this.engine?.partitionCount(topic) ?? 0) > partition : this.replicated.leaderOf(topic, partition) === this.id && this.replicated.hostsReplica(topic, partition),
      holesBetween: (topic, partition, from, to) => this.engine?.holesBetween?.(topic, partition, from, to) ?? 0,
      positionSources: () => [
        durablePositionSource(() => (this.replicated !== undefined ? this.replicated.appliedMetadata().durables : this.engine instanceof MemoryEngine ? this.engine.appliedPositions() : (this.backbone?.appliedPositions() ?? []))),
        groupPositionSource(() => this.engine?.consumerGroups.toRecords() ?? []),
      ],
      browser: {
        partitionCount: (topic) => this.engine?.partitionCount(topic),
        bounds: (topic, partition) => this.engine.currentBounds(topic, partition),
        read: async (topic, partition, offset, maxCount, maxBytes) => this.engine.read(topic, partition, offset, maxCount, maxBytes),
      },
      ...(options.backbone === undefined
        ? {}
        : {
            backbone: () =>
              this.backbone !== undefined
                ? this.backbone.backboneHealth()
                : { kind: 'rabbitmq-stream' as const, connected: false, connectedTo: null, advertisedAs: null, connections: 0, nodes: [], partitions: [], lastConfirmMs: null },
          }),
      moves: () =>
        (this.replicated?.replicaMoves().moves ?? []).map((m) => ({
          topic: m.topic,
          partition: m.partition,
          from: m.from,
          to: m.to,
          startedAtMs: m.startedAtMs,
          phase: m.phase,
          copiedBytes: m.copiedBytes,
          totalBytes: m.totalBytes,
          bytesPerSecond: m.bytesPerSecond,
          timeLeftMs: m.timeLeftMs,
          error: m.error ?? null,
        })),
    }, this.adminActions());
  }

  /** What the admin API's topic and cluster endpoints do on this broker. */
  private adminActions(): AdminActions {
    return {
      topics: () => this.describeTopics(this.topicAssignments()),
      createTopic: async (spec) => {
        const existed = this.engine.partitionCount(spec.topic) !== undefined;
        const { topic, ...settings } = spec;
        if (this.engine.createTopic === undefined) throw new RelayError('INVALID_ARGUMENT', 'this broker\'s engine cannot create topics with settings');
        await this.engine.createTopic(topic, settings);
        const assignment = this.topicAssignments().find((t) => t.topic === topic);
        if (assignment === undefined) throw new RelayError('INTERNAL', `topic ${topic} was created but is not in this broker's metadata`);
        return { created: !existed, topic: (await this.describeTopics([assignment]))[0] as TopicDescription };
      },
      addPartitions: async (topic, partitions) => {
        if (this.engine.addPartitions === undefined) throw new RelayError('INVALID_ARGUMENT', 'this broker\'s engine cannot add partitions');
        await this.engine.addPartitions(topic, partitions);
        const assignment = this.topicAssignments().find((t) => t.topic === topic);
        if (assignment === undefined) throw new RelayError('INTERNAL', `topic ${topic} is not in this broker's metadata`);
        return (await this.describeTopics([assignment]))[0] as TopicDescription;
      },
      deleteTopic: async (topic) => {
        if (this.engine.deleteTopic === undefined) throw new RelayError('INVALID_ARGUMENT', 'this broker\'s engine cannot delete topics');
        let assignment = this.topicAssignments().find((t) => t.topic === topic);
        // Missing here, maybe only because this broker is behind its metadata leader: the engine asks it and waits.
        if (assignment === undefined && this.engine.awaitTopic !== undefined) {
          await this.engine.awaitTopic(topic);
          assignment = this.topicAssignments().find((t) => t.topic === topic);
        }
        if (assignment === undefined) throw new RelayError('INVALID_TOPIC', `no topic "${topic}"`);
        const described = (await this.describeTopics([assignment]))[0] as TopicDescription;
        await this.engine.deleteTopic(topic);
        return described;
      },
      membership: () => this.membership(),
      addBroker: async (broker) => {
        await this.clusterEngine('add a broker').addBroker(broker);
        return this.membership();
      },
      removeBroker: async (broker) => {
        const { outcome, replicas } = await this.clusterEngine('remove a broker').removeBroker(broker);
        return { ...this.membership(), removal: { broker, outcome, replicasToMove: replicas } };
      },
      forgetBroker: async (broker) => {
        await this.clusterEngine('forget a broker').forgetBroker(broker);
        return this.membership();
      },
      moves: () => this.movesDescription(),
      rebalance: async () => {
        await this.clusterEngine('rebalance').rebalance();
        return this.movesDescription();
      },
      moveReplica: async (move) => {
        await this.clusterEngine('move a replica').moveReplica(move.topic, move.partition, move.from, move.to);
        return { move, moves: await this.movesDescription() };
      },
    };
  }

  /** Replica moves as `GET /api/cluster/moves` answers them: as the metadata leader sees them when it can be asked. */
  private async movesDescription(): Promise<MovesDescription> {
    const meta = this.replicated?.metadataMembership();
    const { report, from } = (await this.replicated?.replicaMovesOfLeader()) ?? { report: { moves: [], draining: [], rebalancing: false }, from: this.id };
    // A drained broker stays recorded (not placed on again) once it left the metadata group; only those still in it drain.
    const members = new Set([...(meta?.voters ?? []), ...(meta?.learners ?? [])]);
    const { moves, draining, rebalancing } = report;
    return { broker: this.id, metadataLeader: meta?.leader ?? this.id, progressFrom: from, moves, draining: draining.filter((id) => members.has(id)), rebalancing };
  }

  /** The replicated engine, for an admin action only a cluster has. */
  private clusterEngine(action: string): ClusterEngine {
    if (this.replicated === undefined) throw new RelayError('INVALID_ARGUMENT', `cannot ${action}: broker ${this.id} runs standalone, in memory (no cluster)`);
    return this.replicated;
  }

  /** The brokers and the metadata group, as this broker knows them (`GET /api/membership`). */
  private membership(): MembershipDescription {
    const meta = this.replicated?.metadataMembership() ?? { voters: [this.id], learners: [], leader: this.id };
    const gossip = this.cluster().brokers;
    // Gateways hold no replicas and lead nothing: RabbitMQ keeps the partitions.
    const topics = this.backbone !== undefined ? [] : this.topicAssignments().map((t) => this.describeTopic(t));
    const ids = [...new Set([...meta.voters, ...meta.learners, ...gossip.map((b) => b.id)])].sort();
    const draining = new Set((this.replicated?.appliedMetadata().draining ?? []).filter((id) => meta.voters.includes(id) || meta.learners.includes(id)));
    const members = ids.map((id): MemberDescription => {
      const seen = gossip.find((b) => b.id === id);
      let replicas = 0;
      let leaders = 0;
      for (const t of topics) {
        for (const p of t.partitions) {
          if (p.replicas.includes(id)) replicas++;
          if (p.leader === id) leaders++;
        }
      }
      const member: MemberDescription = { id, role: meta.voters.includes(id) ? 'voter' : meta.learners.includes(id) ? 'learner' : 'none', state: seen?.state ?? 'unknown', url: seen?.url ?? null, replicas, leaders };
      if (draining.has(id)) member.draining = true;
      return member;
    });
    const clusterId = this.replicated?.appliedMetadata().clusterId ?? null;
    return { broker: this.id, clusterId, metadataLeader: meta.leader, metadataVoters: this.options.metadataVoters, members };
  }

  /** Topics as the admin API describes them; on a gateway, their partitions are the streams where RabbitMQ keeps them. */
  private async describeTopics(assignments: Array<TopicAssignment & { moves?: ReplicaMove[] }>): Promise<TopicDescription[]> {
    const backbone = this.backbone;
    if (backbone === undefined) return assignments.map((t) => this.describeTopic(t));
    const placements = await backbone.streamPlacements(assignments.map((t) => t.topic));
    return assignments.map((t) => {
      const streams = placements.get(t.topic) ?? [];
      return {
        topic: t.topic,
        replicationFactor: backbone.replicationFactorOf(t.topic),
        partitions: t.partitions.map((_, partition) => ({ partition, replicas: streams[partition]?.replicas ?? [], leader: streams[partition]?.leader ?? null })),
      };
    });
  }

  private describeTopic(t: TopicAssignment & { moves?: ReadonlyArray<{ partition: number; from: string; to: string }> }): TopicDescription {
    return {
      topic: t.topic,
      replicationFactor: t.replicationFactor,
      partitions: t.partitions.map((replicas, partition) => {
        const described: PartitionDescription = { partition, replicas, leader: this.replicated === undefined ? this.id : (this.replicated.leaderOf(t.topic, partition) ?? null) };
        const move = t.moves?.find((m) => m.partition === partition);
        if (move !== undefined) described.moving = { from: move.from, to: move.to };
        return described;
      }),
    };
  }

  /** Topics with their replicas, as the metadata applied here says (standalone in memory: all on this broker). */
  private topicAssignments(): Array<TopicAssignment & { moves?: ReplicaMove[] }> {
    if (this.replicated !== undefined) {
      const metadata = this.replicated.appliedMetadata();
      return metadata.topics.map((t) => ({
        topic: t.topic,
        replicationFactor: t.replicationFactor,
        partitions: t.partitions.map((p) => [...p.replicas]),
        moves: (metadata.moves ?? []).filter((m) => m.topic === t.topic),
      }));
    }
    if (this.engine === undefined) return [];
    return [...this.engine.topics()].map((topic) => ({ topic, replicationFactor: 1, partitions: Array.from({ length: this.engine.partitionCount(topic) ?? 0 }, () => [this.id]) }));
  }

  get id(): string {
    return this.options.id;
  }

  get port(): number {
    return this.listener?.port ?? this.options.port;
  }

  get url(): string {
    return this.options.advertisedUrl ?? `${this.options.tls === undefined ? 'ws' : 'wss'}://${this.options.host}:${this.port}`;
  }

  get peerPort(): number | undefined {
    return this.peers?.port;
  }

  get adminUrl(): string | undefined {
    const port = this.operations?.adminPort;
    return port === undefined ? undefined : `http://${this.options.adminHost}:${port}`;
  }

  /**
   * Standalone: an in-memory engine. With peers: the peer transport, the
   * replicated engine over it, then (once the client port is known) gossip.
   */
  async start(): Promise<void> {
    const { id, host, peerPort, peers, log, auth, dataDir } = this.options;
    // Loads while the engine recovers; awaited before listening (a start that fails first leaves no rejection unhandled).
    const tracing = loadTracing();
    tracing.catch(() => {});
    this.operations = await this.createOperations();
    // Key material is read (and a bad path reported) before anything listens; the JWT library is loaded only then.
    if (auth !== undefined) this.authenticator = new (await import('./security/auth.js')).Authenticator(auth);
    const clustered = peers.length > 0 || this.options.join.length > 0;
    // Peer links carry no tokens: only mutual peer TLS keeps a stranger on the peer port from publishing and reading past every ACL.
    const peersAuthenticated = this.options.peerTls !== undefined && this.options.peerTls.mutual !== false;
    if (auth !== undefined && clustered && this.options.backbone === undefined && !peersAuthenticated) {
      log('warn', 'clients authenticate (auth), but the peer port takes any dialer (no peerTls, or peerTls.mutual false): whoever reaches it can publish, read and delete topics past every token and ACL; set peerTls with mutual TLS, or keep the peer port on a private network');
    }
    if (this.options.backbone !== undefined) {
      await this.startGateway(this.options.backbone);
    } else if (!clustered && this.options.dataDir === undefined) {
      this.engine = new MemoryEngine({ ...this.options, now: Date.now });
    } else {
      // A standalone broker with a data directory is a cluster of one: the same durable path, no peers to reach.
      if (this.options.dataDir === undefined) {
        log('warn', 'cluster without dataDir: partition logs live in memory and are never compacted, and a restarted broker forgets its votes; for tests only');
      }
      const fs = this.options.fileSystem ?? nodeFileSystem;
      // Whether the data directory is new (no broker identity yet: a mount point's lost+found is no data), before this start writes.
      const fresh = dataDir === undefined || (await fs.stat(join(dataDir, IDENTITY_FILE))) === undefined;
      // Before anything opens a partition: the directory's layout (a directory of the other layout than the one given is refused whole, naming both).
      const layout = dataDir === undefined ? DEFAULT_STORAGE_LAYOUT : await checkDataLayout(dataDir, this.options.storage.layout);
      this.storageLayout = dataDir === undefined ? undefined : layout;
      // The data directory's owner and incarnation, and the peers' as met: a broker with amnesia is refused (storage/identity.ts).
      const identity = dataDir === undefined ? undefined : await loadIdentity(dataDir, id, undefined, this.options.clusterId);
      const known = identity === undefined ? undefined : await PeerIncarnations.open(dataDir, (err) => log('warn', 'could not record a peer incarnation', { error: String(err) }));
      // Taken (removed, durably) before any log is opened: a broker killed from now on leaves none behind.
      const cleanStop = dataDir !== undefined && (await takeCleanShutdownMarker(dataDir, fs));
      const openSync = new OpenSync(dataDir !== undefined && !cleanStop);
      // Before any log opens: whether a power cut may have cost this broker's replicas entries they acknowledged.
      this.lastRun = dataDir === undefined ? undefined : await LastRunRecord.begin(dataDir, fs, this.options.fsync, cleanStop, fresh);
      if (this.lastRun?.unrecorded !== undefined) {
        log('warn', 'could not record this start (its boot and fsync policy): the next unclean start recovers as after a power cut', { error: String(this.lastRun.unrecorded) });
      }
      const recoveringAtStart = this.lastRun?.verdict.recovering ?? false;
      this.openSync = dataDir === undefined ? undefined : openSync;
      this.peerIncarnations = known;
      this.peers = new PeerTransport({
        id,
        // A broker new to the cluster introduces itself to peers that may not know it; one that belongs never dials against the configured direction.
        introducing: () => this.replicated?.isNewToCluster() ?? true,
        // Its Raft groups read heartbeats coalesced per peer (runtime/heartbeat-coalescer.ts), and entries as their encoded bodies (runtime/raft-wire.ts).
        features: [COALESCED_HEARTBEATS, ENTRY_BODIES],
        ...(identity === undefined || known === undefined
          ? {}
          : {
              identity: {
                incarnation: identity.incarnation,
                clusterId: () => identity.clusterId,
                known: (peer: string) => known.get(peer),
                remember: (peer: string, incarnation: string) => known.remember(peer, incarnation),
                // Another incarnation only of a broker an operator let come back (relaymq cluster forget), until it is added again.
                replaceable: (peer: string) => this.replicated?.isForgotten(peer) ?? false,
                replace: (peer: string, incarnation: string) => known.replace(peer, incarnation),
              },
            }),
        host,
        port: clustered ? peerPort : 0,
        peers,
        ...this.peerLinkSettings(),
      });
      await this.peers.listen();
      if (identity?.clusterId !== undefined && known !== undefined) await this.refuseForeignPeers(this.peers, known);
      const joined = await this.introduceToCluster(this.peers);
      this.replicated = await ClusterEngine.start({
        ...this.options,
        self: id,
        // A broker joining through --join bootstraps from the brokers it met, without itself: it waits to be admitted.
        brokers: joined.length > 0 ? joined.map((p) => p.id) : [id, ...peers.map((p) => p.id)],
        joining: joined.length > 0,
        ...(identity?.clusterId === undefined ? {} : { clusterId: identity.clusterId }),
        ...(identity === undefined || dataDir === undefined ? {} : { onClusterId: (clusterId: string) => this.learnedClusterId(dataDir, identity, clusterId) }),
        ...(known === undefined
          ? {}
          : {
              incarnationOf: (peer: string) => known.get(peer),
              // An operator admitted a broker that came back on an empty data directory: its admitted incarnation is the one kept here.
              onIncarnationAdmitted: (peer: string, incarnation: string) => {
                if (peer === id || known.get(peer) === incarnation) return;
                log('info', 'recording the incarnation an operator admitted a broker with', { peer, incarnation, known: known.get(peer) });
                known.replace(peer, incarnation);
              },
            }),
        transport: this.peers,
        requestTimeoutMs: this.options.peer.requestTimeoutMs,
        readTimeoutMs: this.options.peer.readTimeoutMs,
        raftConfig: { ...raftConfigOf(this.options.raft), recoveringAtStart },
        ticker: this.ticker,
        now: Date.now,
        storage: { layout },
        openSync,
        ...(this.operations === undefined ? {} : { observer: this.operations }),
      });
      this.engine = this.replicated;
      if (recoveringAtStart) this.watchRecovery(this.replicated);
      const synced = openSync.stats();
      // Said only when a file was fsynced: a new data directory has no marker and nothing to fsync.
      if (synced.files > 0) {
        log('info', 'no clean-shutdown marker (the last stop was not clean): fsynced the files opened before taking them as durable', {
          files: synced.files,
          fsyncSeconds: Number(synced.seconds.toFixed(3)),
        });
      }
    }
    await tracing;
    await this.listen();
    await this.operations?.start();
    // Said once every port is bound: a start that fails on the admin port never claims to be listening.
    this.started = true;
    // The layout said once the broker serves (a startup failure prints its one line only).
    this.options.log('info', 'broker listening', { id: this.id, url: this.url, ...(this.storageLayout === undefined ? {} : { storageLayout: this.storageLayout }) });
    if (this.adminUrl !== undefined) this.options.log('info', 'admin server listening', { url: this.adminUrl });
  }

  /**
   * After a power cut (storage/last-run.ts) this broker's replicas vote only
   * as `RaftConfig.recoveringAtStart` allows until a leader caught each up:
   * said when it starts and once every replica it hosts caught up.
   */
  private watchRecovery(engine: ClusterEngine): void {
    const { log } = this.options;
    const since = performance.now();
    log('warn', 'this start may have lost acknowledged entries: its replicas do not count as votes until a leader caught each up', { reason: this.lastRun?.verdict.reason });
    this.lastRun?.watch(
      () => engine.replicasRecovered(),
      (error) => {
        if (error === undefined) log('info', 'every replica caught up after the power cut', { seconds: Number(((performance.now() - since) / 1000).toFixed(3)) });
        else log('warn', 'could not record that every replica caught up: the next unclean start recovers again', { error: String(error) });
      },
    );
  }

  /** How peer links are framed, queued, redialled and secured: the same for cluster brokers and gateways. */
  private peerLinkSettings() {
    const { peer, peerTls, log } = this.options;
    return {
      maxFrameBytes: peer.maxFrameBytes,
      maxQueuedBytes: peer.maxQueuedBytes,
      reconnect: { initialDelayMs: peer.reconnectInitialDelayMs, maxDelayMs: peer.reconnectMaxDelayMs },
      tls: peerTls === undefined ? undefined : { ...loadTls('peerTls', peerTls), mutual: peerTls.mutual ?? true },
      log,
    };
  }

  /**
   * Backbone mode: the engine over RabbitMQ streams, and with peers a peer
   * transport for gossip only (no Raft group runs), so clients learn every
   * gateway.
   */
  private async startGateway(backbone: ResolvedBackboneOptions): Promise<void> {
    const { id, host, peerPort, peers, log } = this.options;
    if (peers.length > 0) {
      this.peers = new PeerTransport({
        id,
        introducing: () => true,
        host,
        port: peerPort,
        peers,
        ...this.peerLinkSettings(),
      });
      await this.peers.listen();
    }
    // The RabbitMQ client is loaded only in backbone mode: it is no part of any other broker's start.
    const { BackboneEngine } = await import('./engine/backbone/engine.js');
    this.engine = this.backbone = await BackboneEngine.start({
      endpoint: backbone.endpoint,
      streamPrefix: backbone.streamPrefix,
      defaultPartitions: this.options.defaultPartitions,
      replicationFactor: this.options.replicationFactor,
      dedupeWindow: this.options.dedupeWindow,
      cacheBytes: this.options.retentionBytes,
      streamArguments: (topic) => streamArguments(topic, this.options),
      requestTimeoutMs: backbone.requestTimeoutMs,
      tailStartMessages: backbone.tailStartMessages,
      republishLookbackMessages: backbone.republishLookbackMessages,
      metaSnapshotEveryEntries: backbone.metaSnapshotEveryEntries,
      metaMaxBytes: backbone.metaMaxBytes,
      now: Date.now,
      log,
      // One gateway expires timed-out group members: the lowest id among those alive.
      isGroupCoordinator: () => this.cluster().brokers.filter((b) => b.state === 'alive').every((b) => b.id >= id),
      // The node checks serve the console, metrics and alerts: none without them.
      healthChecks: this.operations !== undefined,
      ...(this.operations === undefined ? {} : { observeRequest: this.operations.backboneRequest.bind(this.operations) }),
    });
    log('info', 'running as a gateway over the backbone', { kind: backbone.kind, hosts: backbone.endpoint.hosts.map((h) => `${h.host}:${h.port}`), streamPrefix: backbone.streamPrefix });
  }

  /** Records the cluster id the metadata names, once (storage/identity.ts). */
  private learnedClusterId(dataDir: string, identity: BrokerIdentity, clusterId: string): void {
    const { log } = this.options;
    if (identity.clusterId === clusterId) return;
    if (identity.clusterId !== undefined) {
      // Peers of another cluster are refused before they link, so this takes an operator's mistake (a copied data directory).
      log('error', 'the cluster metadata names another cluster than this data directory records', { metadata: clusterId, recorded: identity.clusterId });
      return;
    }
    log('info', 'recording the cluster id in the data directory', { clusterId });
    this.clusterIdRecorded = recordClusterId(dataDir, identity, clusterId).catch((err: unknown) => log('warn', 'could not record the cluster id', { error: String(err) }));
  }

  /**
   * A broker whose data directory names its cluster fails to start when a
   * configured peer it never met, and that answers within
   * {@link FOREIGN_CHECK_MS}, belongs to another cluster: it was pointed at
   * the wrong brokers, or given another cluster's data. Peers met before
   * (peers.json) are of this cluster, so a plain restart asks nobody and
   * waits for nothing; a peer that does not answer is not waited for longer.
   * Either way the peer links of two clusters never come up.
   */
  private async refuseForeignPeers(transport: PeerTransport, known: PeerIncarnations): Promise<void> {
    const strangers = this.options.peers.filter((p) => known.get(p.id) === undefined);
    const answers = await Promise.allSettled(strangers.map((p) => transport.introduce(p.host, p.port, FOREIGN_CHECK_MS)));
    for (const answer of answers) {
      if (answer.status === 'rejected' && answer.reason instanceof ForeignClusterError) throw answer.reason;
    }
  }

  /**
   * `--join`: introduces this broker to each address (a running broker's
   * peer port), which adds it as a peer, and links to the brokers that
   * answer; the others are learned by gossip. Retried until one answers
   * (bounded by {@link JOIN_TIMEOUT_MS}), and fails the start with a clear
   * error if none does.
   */
  private async introduceToCluster(transport: PeerTransport): Promise<PeerAddress[]> {
    const { join, log } = this.options;
    if (join.length === 0) return [];
    const deadline = Date.now() + JOIN_TIMEOUT_MS;
    const errors: string[] = [];
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      const answers = await Promise.allSettled(join.map((seed) => transport.introduce(seed.host, seed.port, 2000)));
      // Another cluster answering is a mistake no retry mends: fail the start at once.
      const foreign = answers.find((a): a is PromiseRejectedResult => a.status === 'rejected' && a.reason instanceof ForeignClusterError);
      if (foreign !== undefined) throw foreign.reason;
      const met = answers.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []));
      errors.splice(0, errors.length, ...answers.flatMap((a) => (a.status === 'rejected' ? [String((a.reason as Error).message)] : [])));
      if (met.length > 0) {
        for (const peer of met) transport.addPeer(peer);
        log('info', 'joining the cluster', { through: met.map((p) => `${p.id}@${p.host}:${p.port}`) });
        return met;
      }
      log('warn', 'no broker to join answered yet; retrying', { join: join.map((j) => `${j.host}:${j.port}`), errors });
      await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 200 * 2 ** attempt)));
    }
    throw new RelayError('NOT_CONNECTED', `could not join: no broker answered at ${join.map((j) => `${j.host}:${j.port}`).join(', ')} within ${JOIN_TIMEOUT_MS} ms (${errors.join('; ')})`);
  }

  private async listen(): Promise<void> {
    const fanout = new Fanout(this.engine);
    this.fanout = fanout;
    const context = {
      options: this.options,
      engine: this.engine,
      fanout,
      cluster: (): ClusterView => this.cluster(),
      now: Date.now,
      newId: randomUUID,
      draining: (): boolean => this.isDraining,
      ready: (): boolean => this.ready(),
      authenticator: this.authenticator,
      counters: this.counters,
      ...(this.operations === undefined ? {} : { observer: this.operations }),
    };
    const { tls } = this.options;
    const listenerTls = tls === undefined ? undefined : { ...loadTls('tls', tls), requireClientCert: tls.requireClientCert ?? false };
    const refused = { message: () => {}, text: () => {}, closed: () => {} };
    const { host, port, maxPayload, helloTimeoutMs } = this.options;
    this.listener = await listenForClients(
      { host, port, maxPayload, handshakeTimeoutMs: helloTimeoutMs, tls: listenerTls },
      {
        open: (socket, address) => {
          const limit = this.connectionLimit(address);
          if (limit !== undefined) {
            this.counters.connectionsRejected++;
            ClientSession.refuse(socket, new RelayError('LIMIT_EXCEEDED', limit));
            return refused;
          }
          this.connectionsByAddress.set(address, (this.connectionsByAddress.get(address) ?? 0) + 1);
          const session = new ClientSession(socket, context, (ended) => this.forget(ended, address));
          this.sessions.add(session);
          return {
            message: (bytes) => session.receive(bytes),
            text: () => session.receiveText(),
            closed: () => session.ended(),
          };
        },
        tlsFailed: () => this.counters.tlsHandshakeFailures++,
      },
    );
    if (this.peers !== undefined) this.startGossip(this.peers);
    // Readiness follows the metadata leader: clients hear when this broker can serve, or no longer can.
    this.replicated?.onMetadataLeaderChange(() => this.scheduleClusterPush());
    this.heartbeatTimer = setInterval(() => {
      const now = Date.now();
      for (const session of this.sessions) session.heartbeat(now);
      this.gossip?.advertiseLoad({ connections: this.sessions.size, partitionsLed: this.replicated?.partitionsLed() ?? 0 }, now);
    }, this.options.heartbeatMs);
    this.heartbeatTimer.unref();
  }

  /** Gossips membership with the peers; changes are pushed to every client. */
  private startGossip(peers: PeerTransport): void {
    const { id, host, log } = this.options;
    this.gossip = new GossipRunner({
      id,
      address: `${host}:${peers.port}`,
      clientUrl: this.url,
      peers: this.options.peers,
      transport: peers,
      ticker: this.ticker,
      config: swimConfigOf(this.options.swim),
      log,
    });
    this.gossip.on('changed', () => this.scheduleClusterPush());
    // A suspected broker's quiesced groups would otherwise never notice a dead leader.
    this.gossip.on('memberDown', (member) => this.replicated?.peerDown(member));
    this.gossip.on('memberUp', (member) => this.replicated?.peerRecovered(member));
    this.gossip.start();
  }

  /** Coalesces membership changes into one `cluster` frame per client. */
  private scheduleClusterPush(): void {
    if (this.clusterPushScheduled) return;
    this.clusterPushScheduled = true;
    setImmediate(() => {
      this.clusterPushScheduled = false;
      const view = this.cluster();
      const ready = this.ready();
      for (const session of this.sessions) session.pushCluster(view, ready);
    });
  }

  /** Why a new connection from `address` is refused, or undefined when it may open. */
  private connectionLimit(address: string): string | undefined {
    const { maxConnections, maxConnectionsPerIp } = this.options;
    if (this.sessions.size >= maxConnections) return `broker ${this.id} holds ${maxConnections} connections (maxConnections)`;
    if ((this.connectionsByAddress.get(address) ?? 0) >= maxConnectionsPerIp) {
      return `broker ${this.id} holds ${maxConnectionsPerIp} connections from ${address} (maxConnectionsPerIp)`;
    }
    return undefined;
  }

  /** What `/readyz` answers: accepting clients and, in a cluster, a metadata leader known. */
  private ready(): boolean {
    return isReady({
      clustered: raftClustered(this.options),
      accepting: () => this.listener !== undefined && !this.isDraining,
      groups: () => this.replicated?.groupStatus() ?? [],
      metadataLeaderKnown: () => this.replicated?.metadataLeaderKnown() ?? false,
    });
  }

  cluster(): ClusterView {
    if (this.gossip !== undefined) return this.gossip.view();
    return {
      brokers: [{ id: this.id, url: this.url, state: 'alive', load: { connections: this.sessions.size, partitionsLed: 0 } }],
    };
  }

  stats(): BrokerStats {
    const stats: BrokerStats = {
      id: this.id,
      connections: this.sessions.size,
      subscriptions: 0,
      published: this.endedTotals.published,
      publishedForwarded: this.endedTotals.forwarded,
      delivered: this.endedTotals.delivered,
      outboundBytes: 0,
      maxConnectionOutboundBytes: 0,
      security: { ...this.counters },
      ...raftStats(this.replicated?.raftActivity()),
      peerMessagesSent: this.peers?.stats().messagesSent ?? 0,
      peerFramesSent: this.peers?.stats().framesSent ?? 0,
      deliverySessionsWoken: this.fanout?.stats.sessionsWoken ?? 0,
      deliveryCursorsVisited: this.fanout?.stats.cursorsVisited ?? 0,
      openSegmentFiles: this.replicated?.openFiles().segments ?? 0,
      openRaftLogFiles: this.replicated?.openFiles().raftLogs ?? 0,
      heapSettles: this.replicated?.heapSettles() ?? 0,
    };
    for (const session of this.sessions) {
      const s = session.stats();
      stats.subscriptions += s.subscriptions;
      stats.published += s.published;
      stats.publishedForwarded += s.forwarded;
      stats.delivered += s.delivered;
      stats.outboundBytes += s.outboundBytes;
      stats.maxConnectionOutboundBytes = Math.max(stats.maxConnectionOutboundBytes, s.outboundBytes);
    }
    return stats;
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.isDraining = true;
    // Hand the partitions this broker leads to others first (retrying other targets within the
    // drain time), so publishing forwarded there stalls for a heartbeat rather than an election timeout.
    await this.replicated?.transferLeadership(this.options.drainTimeoutMs);
    clearInterval(this.heartbeatTimer);
    for (const session of this.sessions) session.goaway(`broker ${this.id} is shutting down`);
    // Clients that got `goaway` disconnect on their own; wait for them, within the drain time.
    if (this.sessions.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.options.drainTimeoutMs);
        this.onEmpty = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    for (const session of this.sessions) session.close();
    this.gossip?.stop(); // others learn at once that this broker left, rather than suspecting it
    await this.listener?.close();
    await this.operations?.close();
    await this.peers?.close();
    await this.peerIncarnations?.flushed();
    await this.clusterIdRecorded;
    this.fanout?.close();
    await this.lastRun?.stop();
    await this.engine.close();
    await this.leaveCleanShutdownMarker();
    // After a failed start the CLI's one line says why; an info line about closing would only add noise.
    this.options.log(this.started ? 'info' : 'debug', 'broker closed', { id: this.id });
  }

  /**
   * After the engine closed: the marker of a clean stop, when every Raft log
   * made everything it wrote durable (the next start then fsyncs nothing at
   * open, storage/clean-shutdown.ts). Never after a failed last fsync, nor
   * after a start that failed before its engine opened: the next start
   * fsyncs what it opens. (A start that failed later, e.g. at listen, closes
   * an engine like any other: the marker is as true then.) After a start
   * without the marker, the whole data directory is fsynced first: that start
   * fsynced only the logs it opened.
   */
  private async leaveCleanShutdownMarker(): Promise<void> {
    const { dataDir, log } = this.options;
    if (dataDir === undefined || this.openSync === undefined || this.replicated === undefined) return;
    if (!this.replicated.closedDurably) {
      log('warn', 'a log could not make everything durable on close: no clean-shutdown marker, the next start fsyncs the files it opens', { dataDir });
      return;
    }
    const fs = this.options.fileSystem ?? nodeFileSystem;
    try {
      // After an unclean start only the logs opened were fsynced: the marker vouches for every file.
      if (this.openSync.required) await syncDataDirectory(dataDir, fs);
      await writeCleanShutdownMarker(dataDir, fs);
    } catch (err) {
      log('warn', 'could not write the clean-shutdown marker: the next start fsyncs the files it opens', { dataDir, error: String(err) });
    }
  }

  private forget(session: ClientSession, address: string): void {
    const open = (this.connectionsByAddress.get(address) ?? 1) - 1;
    if (open === 0) this.connectionsByAddress.delete(address);
    else this.connectionsByAddress.set(address, open);
    const s = session.stats();
    this.endedTotals.published += s.published;
    this.endedTotals.forwarded += s.forwarded;
    this.endedTotals.delivered += s.delivered;
    this.sessions.delete(session);
    if (this.sessions.size === 0) this.onEmpty?.();
  }
}

/** Whether the broker runs the embedded Raft cluster (peers or join, and no backbone). */
function raftClustered(options: ResolvedBrokerOptions): boolean {
  return options.backbone === undefined && (options.peers.length > 0 || options.join.length > 0);
}

/** The Raft part of {@link BrokerStats}. */
function raftStats(activity: RaftActivity | undefined): Pick<BrokerStats, 'raftTicks' | 'raftMessagesSent' | 'raftGroups' | 'raftGroupsQuiesced'> {
  if (activity === undefined) return { raftTicks: 0, raftMessagesSent: 0, raftGroups: 0, raftGroupsQuiesced: 0 };
  return { raftTicks: activity.ticks, raftMessagesSent: activity.messagesSent, raftGroups: activity.groups, raftGroupsQuiesced: activity.quiesced };
}
