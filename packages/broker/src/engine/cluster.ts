import { EventEmitter } from 'eventemitter3';
import {
  ADD_PARTITIONS_METHOD,
  CREATE_TOPIC_METHOD,
  DELETE_TOPIC_METHOD,
  PARTITION_COUNT_METHOD,
  TOPIC_MISSING_METHOD,
  parseAddPartitionsRequest,
  parseAdminMetadataCommand,
  parseCreateTopicRequest,
  parseDeleteTopicRequest,
  parsePartitionCountRequest,
} from './admin-commands.js';
import { ClusterNaming } from './cluster-naming.js';
import { removalRefusal } from './decommission.js';
import { parseMoveCommand, replicasOn, type MoveCommand } from '../core/metadata/moves.js';
import {
  MOVE_COMMAND_METHOD,
  MOVE_PROGRESS_METHOD,
  MOVE_STEP_METHOD,
  PREFER_LEADER_METHOD,
  ReplicaMoveCoordinator,
  copiedEstimate,
  nextMoveStep,
  parseMoveStepAnswer,
  parseMoveStepRequest,
  parseMovesReport,
  parsePreferLeaderAnswer,
  parsePreferLeaderRequest,
  preferredLeaderStep,
  type MoveProgress,
  type MoveStepAnswer,
  type MoveStepRequest,
  type MovesReport,
  type PreferLeaderRequest,
  type PreferLeaderState,
} from './replica-moves.js';
import { MoveThrottle, fetchedBytes } from './move-throttle.js';
import { BoundPartitionHooks, type PartitionEvents } from './partition-hooks.js';
import { RelayError, topicMatches, type AckLevel, type Cursor, type TopicInfo } from '@relaymq/sdk/protocol';
import { MetadataState, parseDeleteTopicCommand, parseMetadataSnapshot, type MetadataCommand, type MetadataSnapshot, type TopicMetadata } from '../core/metadata/metadata.js';
import { parseGroupResult, type ConsumerGroups, type GroupCommand, type GroupResult } from '../core/metadata/groups.js';
import type { CommitPositionsCommand } from '../core/metadata/positions.js';
import type { AppendOutcome, EncodedMessages, PartitionLog, ProducerBatch, StoredMessage } from '../core/partition/partition.js';
import { isMember, type ConfChange, type ConfState, type NodeId, type RaftConfigOptions, type RaftCounters } from '../core/raft/index.js';
import { addRaftCounters, zeroRaftCounters } from '../runtime/raft-counters.js';
import { PeerRpc } from '../net/peer-rpc.js';
import type { PeerTransport } from '../net/peer-transport.js';
import type { BrokerObserver } from '../observability/observer.js';
import { GroupClock, type RaftActivity } from '../runtime/group-clock.js';
import { HEARTBEAT_CHANNEL, HeartbeatCoalescer } from '../runtime/heartbeat-coalescer.js';
import { fullCollection, HeapSettle } from '../runtime/heap-settle.js';
import type { RaftGroup } from '../runtime/raft-group.js';
import { TICK_MS, type Ticker } from '../runtime/ticker.js';
import type { StorageLayout } from '../storage/data-layout.js';
import type { FileSystem } from '../storage/fs.js';
import type { OpenSync } from '../storage/clean-shutdown.js';
import { deleteReplicaFiles, replicaFilesOf } from '../storage/replica-files.js';
import type { DurableRaftStorage, RaftStorageOptions } from '../storage/raft-storage.js';
import type { RecordPage } from '../storage/segment-raft-storage.js';
import type { RetentionPolicy } from '../storage/segments/index.js';
import type { LogEngine, LogEngineEvents, PartitionBounds, TopicSettings } from './engine.js';
import { CreationCache, RECOVERY_TIMEOUT_MS, metadataLagging, settleWithin, throttled } from './startup.js';
import { handOverLeadership, rankTargets, type HandoverGroup, type HandoverResult } from './handover.js';
import { GroupFactory, META_GROUP, parsePartitionGroup, partitionGroupId, type MetadataGroup } from './group-factory.js';
import type { PartitionGroup } from './hosted-partition.js';
import { UpkeepRounds } from './upkeep-rounds.js';
import { LeaderForwarding } from './leader-forwarding.js';
import { LeaderGrace } from './leader-grace.js';
import { LostPeers } from './lost-peers.js';
import { MetadataAdmission } from './admission.js';
import { CONF_CHANGE_METHOD, parseConfAnswer, parseConfChangeRequest, type ConfChangeRequest } from './membership-requests.js';
import { MetadataCompaction } from './metadata-compaction.js';
import { MetadataReads } from './metadata-reads.js';
import { parseFetch, parseForwarded, parseRecordsRequest, RECORDS_METHOD, type RecordsRequest, parseMetadataCommand, parseTopic, parseTopics, sentOnce, type FetchRequest, type FetchResponse, type ForwardedPublish } from './peer-messages.js';
import { RemotePartitions } from './remote-partitions.js';
import { COMMIT_POSITIONS_METHOD, ReplicatedPositions, parseForwardedCommit } from './replicated-positions.js';
import { GROUP_COMMAND_METHOD, appliedIndexOf, parseForwardedGroupCommand } from './groups/group-commands.js';
import { GroupSessionTracker } from './groups/session-tracker.js';
import { DEFAULT_MAX_CONCURRENT_MOVES, manualMoveRefusal, type MoveRefusedError } from './manual-move.js';
import { PublishRouter, type RouteResult, type RoutedPublish } from './routed-publish.js';
import { TransferAttempts } from './transfer-attempts.js';
import { CREATE_TOPICS_METHOD, TopicCreation } from './topic-creation.js';
import { waitFor } from './wait-for.js';

/** Election timeouts a lost metadata leader still counts as known for readiness: an election, a retry, a margin. */
const READINESS_GRACE_ELECTIONS = 3;
/** Settings of the replicated engine. */
export interface ClusterEngineOptions {
  self: NodeId;
  /**
   * The metadata group's bootstrap voters (this broker and its `peers`), used
   * only when its log is new; the stored configuration rules afterwards.
   */
  brokers: readonly NodeId[];
  /**
   * This broker joins a running cluster (`--join`): its metadata group starts
   * outside the configuration and waits to be admitted by the leader.
   * @defaultValue false
   */
  joining?: boolean;
  /** The cluster id this broker was given or records; the metadata leader names the cluster with it (cluster-naming.ts). */
  clusterId?: string;
  /** Told the cluster id whenever the applied metadata has one; set, this broker names a new cluster (it records the id in its data directory). */
  onClusterId?: (clusterId: string) => void;
  /** The incarnation this broker met `peer` with (storage/identity.ts), recorded when an operator admits a forgotten broker. */
  incarnationOf?: (peer: NodeId) => string | undefined;
  /** A broker that came back on an empty data directory was admitted with `incarnation`: take it as the peer's (applied and restored metadata). */
  onIncarnationAdmitted?: (peer: NodeId, incarnation: string) => void;
  /** How many brokers vote in the metadata group; members admitted beyond it do not vote. */
  metadataVoters: number;
  /**
   * Replica moves in progress at once, in all (a decommission starts them
   * up to this cap).
   * @defaultValue 4
   */
  maxConcurrentMoves?: number;
  /**
   * A member of the metadata group the metadata leader cannot reach for
   * this long is replaced: drained like a decommissioned broker, so its
   * replicas are re-created on the others. 0 never replaces one.
   * @defaultValue 0
   */
  replacementTimeoutMs?: number;
  /**
   * Spread replicas evenly whenever counts differ by more than one (after a
   * broker joins or leaves), not only when an operator asks. The broker's
   * option (options.ts) turns it on by default; the engine's is off.
   * @defaultValue false
   */
  autoRebalance?: boolean;
  /**
   * Bytes per second a new replica copies into this broker (segments fetched
   * from the leader while it is a learner); 0 does not throttle.
   * @defaultValue 0
   */
  moveBytesPerSecond?: number;
  transport: PeerTransport;
  /** Where Raft logs live; undefined keeps them in memory (tests only: a restart then forgets votes). */
  dataDir: string | undefined;
  defaultPartitions: number;
  replicationFactor: number;
  dedupeWindow: number;
  /** In memory (no `dataDir`): data bytes kept per partition. */
  retentionBytes: number;
  /** On disk: retention of every topic, unless a `topicRetention` pattern matches it first. */
  retention: RetentionPolicy;
  topicRetention: ReadonlyArray<{ pattern: string } & RetentionPolicy>;
  /** On disk: when the Raft logs are fsynced. */
  fsync: RaftStorageOptions['fsync'];
  fsyncIntervalMs: number;
  /** On disk: size at which a partition's segment is sealed and a new one started. */
  segmentBytes: number;
  /** On disk: segment files kept open over all partitions (idle ones beyond are closed and reopened on use). */
  maxOpenSegmentFiles: number;
  /** On disk: Raft log files open over all groups (idle ones beyond are closed and reopened on write). */
  maxOpenRaftLogFiles: number;
  /** On disk: Raft log bytes a leader keeps for a lagging replica before compacting anyway (that replica then gets a snapshot). */
  raftLogMaxBytes: number;
  /** On disk: how partitions are stored (docs/storage.md; the broker settles it against the data directory). */
  storage: { layout: StorageLayout };
  /** The file system data is stored through; tests inject faults. @defaultValue node's */
  fileSystem: FileSystem | undefined;
  /** Whether the logs opened fsync what they take as durable: not after a clean stop (storage/clean-shutdown.ts). @defaultValue they do */
  openSync?: OpenSync;
  /** How long a publish or topic creation may wait for a leader and a commit, and a peer request for its answer. */
  requestTimeoutMs: number;
  /** A subscriber's read of a partition hosted elsewhere waits at most this long for one replica (capped by `requestTimeoutMs`). */
  readTimeoutMs: number;
  /** Timing of every Raft group, in ticks of `ticker`. */
  raftConfig: RaftConfigOptions;
  /** The broker's one ticker: every Raft group is ticked on it. */
  ticker: Ticker;
  now: () => number;
  /** Told of fsync durations and leader changes, when operations are enabled. */
  observer?: BrokerObserver;
  log: (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
}

/** How often partitions (and the metadata log) are checkpointed, compacted and trimmed by retention. */
const MAINTENANCE_MS = 250;
/** Maintenance visits every partition, settled or not, once in this many rounds, a share each round (see UpkeepRounds): 5 s. */
const UPKEEP_SWEEP_ROUNDS = 20;
/** One fetch of a snapshot install: at most this many messages and bytes. */
const FETCH_MESSAGES = 10_000;
const FETCH_BYTES = 4 * 1024 * 1024;

/** One Raft group as {@link ClusterEngine.groupStatus} reports it. */
export interface GroupStatus {
  /** `meta` or `p/<topic>/<partition>`. */
  group: string;
  /** This broker's role in the group. */
  role: string;
  leader: string | null;
  term: number;
  commit: number;
  /** The first entry the log holds in memory: those below were compacted into a snapshot (a replica behind gets it). */
  firstIndex: number;
  lastIndex: number;
  /** The group's replicas (voters). */
  voters: string[];
  /** Leader only: each replica's match index and whether this broker is connected to it. */
  replicas: Array<{ id: string; match: number; connected: boolean }>;
}

/** One page of a broker's own replica: its bounds and committed messages. */
export interface ReplicaRead extends PartitionBounds {
  messages: StoredMessage[];
}

/** A routed publish's outcomes (a named function: no closure per publish). */
function outcomesOf(result: RouteResult): AppendOutcome[] {
  return result.outcomes;
}

/**
 * The embedded, replicated engine: cluster metadata in one Raft group over
 * every broker, each partition in its own Raft group over its replicas. A
 * publish is proposed by the partition's leader (brokers that do not lead
 * forward it there) and acknowledged once committed on a quorum; every
 * replica applies committed batches to its copy of the partition, so any of
 * them serves subscribers.
 */
export class ClusterEngine extends EventEmitter<LogEngineEvents> implements LogEngine {
  readonly offsetsSurviveRestart = true;
  private readonly metadata: MetadataState;
  /** Proposes the cluster id while the metadata has none (set once the metadata group exists, with `onClusterId`). */
  private naming: ClusterNaming | undefined;
  private readonly groups = new Map<string, RaftGroup<unknown, unknown, unknown>>();
  private readonly partitions = new Map<string, PartitionLog>();
  /** Partitions kept on disk, with their Raft log and maintenance state. */
  private readonly disks = new UpkeepRounds(UPKEEP_SWEEP_ROUNDS, (id) => this.quiet(id));
  /** On a partition's leader: message bytes its fetches served to each learner of the group (a move's target copying), by group. */
  private readonly servedToLearners = new Map<string, Map<NodeId, number>>();
  /** On a partition's leader: preferred-leader transfers that did not take, so a target that cannot win is not asked again at once. */
  private readonly transferAttempts: TransferAttempts;
  /** Partition groups created or being created; a failed creation is forgotten and retried. */
  private readonly creating = new CreationCache<PartitionGroup>();
  /** Settles once `open()` did: peer requests that arrive before wait for it (bounded). */
  private readonly opened: Promise<void>;
  private markOpened!: (error?: unknown) => void;
  /**
   * Whether a partition of this broker may not be hosted: the metadata changed, a group creation failed, or a
   * replica's files went (a group of the topic created anew waits for them). Idle, nothing is walked.
   */
  private hostingStale = true;
  /** Hosts (again) partitions of this broker whose group creation failed, at most once a second. */
  private readonly hostMissing = throttled(1000, () => this.options.now(), () => {
    if (!this.hostingStale) return;
    this.hostingStale = false;
    for (const topic of this.metadata.all()) this.hostPartitions(topic);
  });
  private maintenanceTimer: ReturnType<typeof setInterval> | undefined;
  private readonly rpc: PeerRpc;
  /** Publishes to partitions without a replica here go through to one (see routed-publish.ts). */
  private readonly router: PublishRouter;
  /** Partitions this broker reads from other replicas for its subscribers, and serves to other brokers. */
  private readonly remote: RemotePartitions;
  /** Topics this broker learnt were deleted (see {@link onTopicDeleted}). */
  private readonly topicEvents = new EventEmitter<{ deleted: (topic: string) => void }>();
  /** The metadata changed (`applied`), or the metadata group's leader did. */
  private readonly metaEvents = new EventEmitter<{ applied: () => void; leader: () => void }>();
  /** The metadata leader as readiness sees it: kept through an election (see leader-grace.ts); its expiry is a change too. */
  private readonly metaLeaderGrace: LeaderGrace;
  /** Some group applied entries (announced only while a recovery waits for it). */
  private readonly groupEvents = new EventEmitter<{ applied: () => void }>();
  private appliedAnnounced = false;
  private stopTicking: (() => void) | undefined;
  private meta!: MetadataGroup;
  private metaStorage!: DurableRaftStorage<MetadataCommand, MetadataSnapshot>;
  /** The Raft counters of the groups dropped (their sums stay in {@link raftCounters}). */
  private readonly droppedRaftCounters = zeroRaftCounters();
  /** Set by {@link close}: see {@link closedDurably}. */
  private durableAtClose = false;
  /** Creates every Raft group with its storage (group-factory.ts). */
  private readonly factory: GroupFactory;
  /** Runs leader-only requests here or on the leader (leader-forwarding.ts). */
  private readonly forwarding: LeaderForwarding;
  /** Missing topics and partitions asked of the metadata leader, and waits for this broker's metadata (metadata-reads.ts). */
  private readonly reads: MetadataReads;
  private readonly metaCompaction: MetadataCompaction;
  /** On the metadata leader: admits brokers that joined (admission.ts). */
  private readonly admission: MetadataAdmission;
  /** On the metadata leader: drives replica moves and decommissions (replica-moves.ts). */
  private readonly moveCoordinator: ReplicaMoveCoordinator;
  /** Paces the segment copies of new replicas into this broker (move-throttle.ts). */
  private readonly moveThrottle: MoveThrottle;
  /** Partition replicas being dropped here (moved away): not hosted again until their files are gone. */
  private readonly dropping = new Map<string, Promise<void>>();
  /**
   * The incarnation of the topic (see TopicMetadata.incarnation) each hosted
   * group was created for: a group of a topic deleted and created again
   * under its name is dropped, not served as the new topic's.
   */
  private readonly hostedIncarnation = new Map<string, number | undefined>();
  /** Every broker seen in the metadata group's configuration since start: one no longer in it was removed. */
  private readonly metaMembersSeen = new Set<NodeId>();
  /**
   * `changed(group, conf, index)`: the configuration of a Raft group hosted
   * here changed (a `conf` entry reached this broker's log, so it is in
   * effect here, committed or not; or a truncation undid one).
   */
  readonly membershipEvents = new EventEmitter<{ changed: (group: string, conf: ConfState, index: number) => void }>();
  /** `changed(group)`: the consumer groups changed in this broker's metadata. */
  readonly consumerGroupEvents = new EventEmitter<{ changed: (group: string | undefined) => void }>();
  /** The metadata leader coordinates groups: it expires members whose session timed out. */
  private readonly groupSessions = new GroupSessionTracker({
    groups: () => this.metadata.groups,
    isCoordinator: () => this.meta?.isLeader() === true,
    expire: (command) => this.groupCommand(command),
    now: () => this.options.now(),
  });
  /** New topics asked for together become one request to the metadata leader and one entry (topic-creation.ts). */
  private readonly topicCreation = new TopicCreation((topics) =>
    this.forwarding.viaLeader(this.meta, () => this.createTopicsHere(topics), CREATE_TOPICS_METHOD, topics),
  );
  private readonly durablePositions = new ReplicatedPositions(
    (command) => this.forwarding.viaLeader(this.meta, () => this.positionsHere(command), COMMIT_POSITIONS_METHOD, command),
    (index) => this.reads.metaAppliedUpTo(index),
  );
  private readonly onPeerMessage = (from: string, channel: string, payload: unknown): void => {
    if (channel === HEARTBEAT_CHANNEL) this.heartbeats.receive(from, payload);
    else if (channel.startsWith('raft/')) this.toGroup(from, channel, payload);
  };
  /** Hands a Raft message on `channel` (`raft/<group id>`) to that group, if it is hosted here. */
  private toGroup(from: string, channel: string, payload: unknown): void {
    // A partition's channel may carry its topic's incarnation (`raft/p/t/0#1`): only the group of that incarnation hears it.
    const hash = channel.indexOf('#');
    const group = this.groups.get(channel.slice(5, hash < 0 ? undefined : hash));
    if (group !== undefined && group.channelName === channel) group.receive(from, payload);
  }
  /** One heartbeat message per peer and tick for every group, to peers that read them (see runtime/heartbeat-coalescer.ts). */
  private readonly heartbeats: HeartbeatCoalescer;
  /**
   * Ticks the groups that are awake (quiesced ones are left out) and counts Raft traffic. A group waking may apply
   * entries: its partition's upkeep is visited until it quiesces again (see UpkeepRounds).
   */
  private readonly clock = new GroupClock((group) => this.disks.changed(group.id));
  /** Full collections once a burst of group creations or removals settles: the burst's garbage would otherwise stay reserved (RSS). */
  private readonly heapSettle = new HeapSettle({
    collect: fullCollection(),
    // More than a tenth of the groups awake: the elections after a creation are not over.
    busy: () => {
      const { groups, quiesced } = this.clock.activity();
      return groups - quiesced > groups / 10;
    },
    // At most a hundredth awake (a few partitions with traffic): the elections' garbage is all made.
    idle: () => {
      const { groups, quiesced } = this.clock.activity();
      return groups - quiesced <= groups / 100;
    },
  });
  /** A peer link closed (a killed broker's sockets close at once): as good a sign as gossip's suspicion. */
  private readonly onPeerDown = (peer: string): void => this.peerDown(peer);
  /** A peer link came up (again): groups led here that count it wake, so a restarted peer hears its leaders (RaftGroup.peerUp). */
  private readonly onPeerUp = (peer: string): void => {
    for (const group of this.groups.values()) group.peerUp(peer);
  };

  private constructor(private readonly options: ClusterEngineOptions) {
    super();
    const electionMs = (options.raftConfig.electionTicks ?? 10) * TICK_MS;
    this.metaLeaderGrace = new LeaderGrace(READINESS_GRACE_ELECTIONS * electionMs, () => options.now(), () => this.metaEvents.emit('leader'));
    this.transferAttempts = new TransferAttempts(() => options.now());
    this.metadata = new MetadataState(options.brokers);
    this.metaEvents.on('applied', () => (this.hostingStale = true));
    this.rpc = new PeerRpc(options.transport);
    this.heartbeats = new HeartbeatCoalescer({
      self: options.self,
      transport: options.transport,
      deliver: (from, channel, message) => {
        if (channel.startsWith('raft/')) this.toGroup(from, channel, message);
      },
    });
    this.factory = new GroupFactory({ ...options, clock: this.clock, heartbeats: this.heartbeats });
    // Links seen to drop: a forward that cannot reach any leader answers at once (leader-forwarding.ts, cutOff).
    const lostPeers = new LostPeers(options.transport, () => this.forwarding.linksChanged());
    this.forwarding = new LeaderForwarding({
      self: options.self,
      rpc: this.rpc,
      requestTimeoutMs: options.requestTimeoutMs,
      now: options.now,
      lostPeers,
      votersOf: (group) => this.groups.get(group.id)?.status().voters ?? [],
    });
    this.reads = new MetadataReads({
      self: options.self,
      group: () => this.meta,
      topic: (topic) => this.metadata.get(topic),
      propose: (command) => this.proposeMeta(command),
      forwarding: this.forwarding,
      metaEvents: this.metaEvents,
      requestTimeoutMs: options.requestTimeoutMs,
    });
    this.metaCompaction = new MetadataCompaction({
      group: () => this.meta,
      storage: () => this.metaStorage,
      snapshot: () => this.metadata.snapshot(),
      raftLogMaxBytes: options.raftLogMaxBytes,
      log: options.log,
    });
    this.admission = new MetadataAdmission({
      group: () => this.meta,
      connected: () => options.transport.connectedPeers(),
      // A broker taken out of the metadata group (by an operator) is not admitted back while it is still connected.
      // Nor one an operator let come back on an empty data directory (forgotten) before the operator adds it.
      excluded: () => new Set([...[...this.metaMembersSeen].filter((id) => !isMember(this.meta.confState, id)), ...this.metadata.moves.forgotten]),
      metadataVoters: options.metadataVoters,
      timeoutMs: options.requestTimeoutMs,
      log: options.log,
    });
    this.moveThrottle = new MoveThrottle(options.moveBytesPerSecond ?? 0);
    this.moveCoordinator = new ReplicaMoveCoordinator({
      isLeader: () => this.meta?.isLeader() === true,
      topics: () => this.metadata.all(),
      moves: () => this.metadata.moves.all(),
      draining: () => this.metadata.moves.draining,
      targets: () => {
        const linked = new Set([options.self, ...options.transport.connectedPeers()]);
        return this.placementBrokers().filter((id) => linked.has(id));
      },
      isMetadataMember: (broker) => isMember(this.meta.confState, broker),
      unlinked: () => {
        const linked = new Set(options.transport.connectedPeers());
        const conf = this.meta.confState;
        return [...conf.voters, ...(conf.learners ?? [])].filter((id) => id !== options.self && !linked.has(id));
      },
      removalRefusal: (broker) => this.removalRefusalOf(broker)?.message,
      replacementTimeoutMs: options.replacementTimeoutMs ?? 0,
      rebalanceAsked: () => this.metadata.moves.rebalancing,
      autoRebalance: options.autoRebalance === true,
      propose: (command) => this.proposeMeta(command),
      step: async (request) => parseMoveStepAnswer(await this.onPartitionLeader(request.group, MOVE_STEP_METHOD, request, () => this.moveStepHere(request))),
      preferLeader: async (request) =>
        parsePreferLeaderAnswer(await this.onPartitionLeader(request.group, PREFER_LEADER_METHOD, request, () => this.preferLeaderHere(request))),
      removeFromMetadata: (broker) => this.changeMembership(META_GROUP, { type: 'remove', node: broker }),
      maxMoves: options.maxConcurrentMoves ?? DEFAULT_MAX_CONCURRENT_MOVES,
      now: options.now,
      log: options.log,
    });
    this.opened = new Promise((resolve, reject) => {
      this.markOpened = (error) => (error === undefined ? resolve() : reject(error));
    });
    this.opened.catch(() => {}); // a failed open is reported by start()
    // Registered at once: peers reach this broker as soon as its transport listens, before its logs are open.
    const afterOpen =
      <R>(handler: (body: unknown) => Promise<R>) =>
      async (_from: string, body: unknown): Promise<R> => {
        await this.whenOpened();
        return handler(body);
      };
    this.rpc.handle('meta.create', afterOpen(async (body) => this.createTopicsHere([parseTopic(body)])));
    this.rpc.handle(CREATE_TOPICS_METHOD, afterOpen(async (body) => this.createTopicsHere(parseTopics(body))));
    this.rpc.handle('publish', afterOpen(async (body) => this.publishHere(parseForwarded(body))));
    this.rpc.handle('partition.fetch', async (from, body) => {
      await this.whenOpened();
      return this.fetchHere(parseFetch(body), from);
    });
    this.rpc.handle(RECORDS_METHOD, async (from, body) => {
      await this.whenOpened();
      return this.recordsHere(parseRecordsRequest(body), from);
    });
    this.rpc.handle(COMMIT_POSITIONS_METHOD, afterOpen(async (body) => this.positionsHere(parseForwardedCommit(body))));
    this.rpc.handle(GROUP_COMMAND_METHOD, afterOpen(async (body) => this.groupCommandHere(parseForwardedGroupCommand(body))));
    this.rpc.handle(CONF_CHANGE_METHOD, afterOpen(async (body) => this.changeMembershipViaLeader(parseConfChangeRequest(body))));
    this.rpc.handle(MOVE_STEP_METHOD, afterOpen(async (body) => {
      const request = parseMoveStepRequest(body);
      return this.viaHostedLeader(request.group, MOVE_STEP_METHOD, request, () => this.moveStepHere(request));
    }));
    this.rpc.handle(PREFER_LEADER_METHOD, afterOpen(async (body) => {
      const request = parsePreferLeaderRequest(body);
      return this.viaHostedLeader(request.group, PREFER_LEADER_METHOD, request, () => this.preferLeaderHere(request));
    }));
    this.rpc.handle(MOVE_PROGRESS_METHOD, afterOpen(async () => this.replicaMoves()));
    this.rpc.handle(MOVE_COMMAND_METHOD, afterOpen(async (body) => {
      const command = parseMoveCommand(body);
      if (command === undefined) throw new RelayError('INVALID_ARGUMENT', `${MOVE_COMMAND_METHOD} wants a move command`);
      return this.proposeMeta(command);
    }));
    this.rpc.handle(CREATE_TOPIC_METHOD, afterOpen(async (body) => {
      const { topic, settings } = parseCreateTopicRequest(body);
      return this.createTopicWithSettingsHere(topic, settings);
    }));
    this.rpc.handle(DELETE_TOPIC_METHOD, afterOpen(async (body) => this.deleteTopicHere(parseDeleteTopicRequest(body))));
    this.rpc.handle(TOPIC_MISSING_METHOD, afterOpen(async (body) => this.reads.topicMissingHere(parseDeleteTopicRequest(body))));
    this.rpc.handle(PARTITION_COUNT_METHOD, afterOpen(async (body) => {
      const { topic, partition } = parsePartitionCountRequest(body);
      return { partitions: await this.reads.partitionCountHere(topic, partition) };
    }));
    this.rpc.handle(ADD_PARTITIONS_METHOD, afterOpen(async (body) => {
      const { topic, partitions } = parseAddPartitionsRequest(body);
      return this.addPartitionsHere(topic, partitions);
    }));
    this.router = new PublishRouter({
      self: options.self,
      rpc: this.rpc,
      requestTimeoutMs: options.requestTimeoutMs,
      whenOpened: () => this.whenOpened(),
      lostPeers,
      brokers: () => this.options.brokers,
      replicasOf: (topic, partition) => this.metadata.get(topic)?.partitions[partition]?.replicas,
      hosts: (topic, partition) => this.hosts(topic, partition),
      hostedLeader: (topic, partition) => this.groups.get(partitionGroupId(topic, partition))?.leader ?? undefined,
      heardLeader: (topic, partition) => this.groups.get(partitionGroupId(topic, partition))?.heardLeader(),
      publishHosted: ({ topic, partition, ack, command }) => {
        const forwarded: ForwardedPublish = { topic, partition, ack, command };
        // The group made already (every publish but a partition's first): no await of a settled creation.
        const made = this.creating.now(partitionGroupId(topic, partition));
        const publish = (group: PartitionGroup): Promise<RouteResult> =>
          this.forwarding
            .viaLeader(group, () => this.publishHere(forwarded), 'publish', forwarded, sentOnce)
            .then((outcomes) => ({ leader: group.leader ?? undefined, outcomes }));
        return made !== undefined ? publish(made) : this.partitionGroup(topic, partition).then(publish);
      },
    });
    this.remote = new RemotePartitions({
      self: options.self,
      rpc: this.rpc,
      transport: options.transport,
      replicasOf: (topic, partition) => this.metadata.get(topic)?.partitions[partition]?.replicas,
      localLog: (topic, partition) => this.partitions.get(partitionGroupId(topic, partition)),
      leaderOf: (topic, partition) => this.leaderOf(topic, partition),
      onAppended: (topic, partition) => this.emit('appended', topic, partition),
      readTimeoutMs: Math.min(options.readTimeoutMs, options.requestTimeoutMs),
      now: options.now,
      log: options.log,
    });
    // Brokers reading a hosted partition learn of its growth as local subscribers do.
    this.on('appended', (topic, partition) => this.remote.localAppended(topic, partition));
  }

  static async start(options: ClusterEngineOptions): Promise<ClusterEngine> {
    const engine = new ClusterEngine(options);
    try {
      await engine.open();
      engine.markOpened();
    } catch (err) {
      engine.markOpened(err);
      throw err;
    }
    await engine.recover();
    return engine;
  }

  /**
   * Waits (bounded) until what this broker had committed before a restart is
   * applied again: topics, then every hosted partition at once up to its
   * persisted commit, so a restarted broker serves its data from the first
   * request. What is not recovered within the bound is logged, and the broker
   * serves anyway: those partitions catch up (or are retried) in the background.
   */
  private async recover(): Promise<void> {
    const deadline = this.options.now() + RECOVERY_TIMEOUT_MS;
    const left = (): number => Math.max(1, deadline - this.options.now());
    const recovered = (group: RaftGroup<unknown, unknown, unknown>, what: string): Promise<true> => {
      const target = this.factory.recoveryTarget(group);
      return waitFor(this.groupEvents, 'applied', () => (group.applied >= target ? true : undefined), left(), what);
    };
    const meta = this.meta as unknown as RaftGroup<unknown, unknown, unknown>;
    const failed = await settleWithin([{ name: META_GROUP, run: recovered(meta, 'metadata recovery') }], left());
    const partitions = this.creating.entriesNow().map(([id, creating]) => ({
      name: id,
      run: creating.then((group) => recovered(group as unknown as RaftGroup<unknown, unknown, unknown>, `recovery of ${id}`)),
    }));
    failed.push(...(await settleWithin(partitions, left())));
    if (failed.length > 0) {
      this.options.log('warn', 'startup recovery incomplete: serving anyway, the rest catches up in the background', {
        groups: failed.map((f) => f.name),
        errors: failed.slice(0, 10).map((f) => `${f.name}: ${f.error}`),
      });
    }
  }

  /** Resolves once the engine is open; peer requests wait for it, at most a request timeout. */
  private async whenOpened(): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeoutMs = this.options.requestTimeoutMs;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new RelayError('NOT_LEADER', `broker ${this.options.self} is still starting`)), timeoutMs);
    });
    try {
      await Promise.race([this.opened, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async open(): Promise<void> {
    const { options } = this;
    const { transport, brokers } = options;
    const storage = await this.factory.openMetadataStorage(brokers);
    this.metaStorage = storage;
    // A compacted log starts from its snapshot: the state it covers, then the entries after it.
    const snapshot = storage.memory.snapshot();
    if (snapshot !== undefined) this.restoreMetadata(snapshot.data);
    // Outside the stored configuration: a broker waiting to be admitted (joined, or started with peers that run already).
    const joining = options.joining === true || !isMember(storage.confState, options.self);
    for (const id of [...storage.confState.voters, ...(storage.confState.learners ?? [])]) this.metaMembersSeen.add(id);
    if (joining) this.options.log('info', 'waiting to be admitted into the metadata group', { members: [...storage.confState.voters, ...(storage.confState.learners ?? [])] });
    this.meta = this.factory.metadataGroup(storage, {
      joining,
      applied: snapshot?.meta.index ?? 0,
      parseData: (value) => parseMetadataCommand(value) ?? parseAdminMetadataCommand(value) ?? parseMoveCommand(value) ?? parseDeleteTopicCommand(value),
      parseSnapshot: parseMetadataSnapshot,
      installSnapshot: async (installed) => this.restoreMetadata(installed.data),
      apply: (command) => this.applyMetadata(command),
      onConfChange: (conf, index) => {
        for (const id of [...conf.voters, ...(conf.learners ?? [])]) this.metaMembersSeen.add(id);
        this.membershipEvents.emit('changed', META_GROUP, conf, index);
      },
      onLeaderChange: (leader) => {
        this.metaLeaderGrace.observe(leader);
        // A new leader of a new cluster names it before anything else is proposed.
        this.naming?.tick();
        this.metaEvents.emit('leader');
        this.forwarding.leaderChanged();
      },
      onTransferChange: () => this.forwarding.leaderChanged(),
    });
    this.groups.set(META_GROUP, this.meta as unknown as RaftGroup<unknown, unknown, unknown>);
    transport.on('message', this.onPeerMessage);
    transport.on('down', this.onPeerDown);
    transport.on('up', this.onPeerUp);
    this.stopTicking = this.options.ticker.add(() => this.clock.tick());
    // Only brokers that record the cluster id (with a data directory) name the cluster: in memory there is nothing to check it against.
    if (this.options.onClusterId !== undefined) {
      this.naming = new ClusterNaming({
        isLeader: () => this.meta.isLeader(),
        current: () => this.metadata.clusterId,
        fresh: () => this.metadata.isEmpty(),
        preferred: this.options.clusterId,
        propose: (command) => this.proposeMeta(command),
        log: this.options.log,
      });
    }
    this.maintenanceTimer = setInterval(() => this.maintain(), MAINTENANCE_MS);
    this.maintenanceTimer.unref();
    this.groupSessions.start();
  }

  // ---- LogEngine ----------------------------------------------------------------

  async ensureTopic(topic: string): Promise<TopicInfo> {
    const known = this.metadata.get(topic);
    if (known !== undefined) return { topic, partitions: known.partitions.length };
    await this.topicCreation.create(topic);
    // The leader applied it; wait until this broker did too.
    const created = await waitFor(this.metaEvents, 'applied', () => this.metadata.get(topic), this.options.requestTimeoutMs, `topic ${topic} to reach this broker's metadata`);
    return { topic, partitions: created.partitions.length };
  }

  partitionCount(topic: string): number | undefined {
    return this.metadata.get(topic)?.partitions.length;
  }

  topicIncarnation(topic: string): number | undefined {
    const known = this.metadata.get(topic);
    // The first topic of a name has none recorded (no deletion yet): 0, which no later one has.
    return known === undefined ? undefined : (known.incarnation ?? 0);
  }

  incarnationStatus(topic: string, incarnation: number): 'current' | 'gone' | 'ahead' {
    const current = this.topicIncarnation(topic);
    if (current !== undefined) return current === incarnation ? 'current' : current > incarnation ? 'gone' : 'ahead';
    // Missing. Incarnation n was created after the n-th deletion (0: before any): a broker that applied a
    // later deletion applied that creation too, so the topic was deleted since; otherwise it may lag behind it.
    return this.metadata.deletedSoFar > incarnation ? 'gone' : 'ahead';
  }

  /**
   * Creates `topic` with an operator's settings through the metadata leader
   * (an existing topic is answered as it is), and resolves once this broker
   * applied it.
   */
  async createTopic(topic: string, settings: TopicSettings): Promise<TopicInfo> {
    const known = this.metadata.get(topic);
    if (known !== undefined) return { topic, partitions: known.partitions.length };
    await this.forwarding.viaLeader(this.meta, () => this.createTopicWithSettingsHere(topic, settings), CREATE_TOPIC_METHOD, { topic, ...settings });
    const created = await waitFor(this.metaEvents, 'applied', () => this.metadata.get(topic), this.options.requestTimeoutMs, `topic ${topic} to reach this broker's metadata`);
    return { topic, partitions: created.partitions.length };
  }

  /**
   * Raises `topic`'s partition count to `partitions` through the metadata
   * leader, and resolves once this broker applied it. The new partitions are
   * placed over the metadata group's members; existing ones are untouched.
   * `INVALID_TOPIC` for an unknown topic (one only this broker lacks is
   * waited for: {@link MetadataReads.topicToChange}), `INVALID_ARGUMENT` for a count that is not higher.
   */
  async addPartitions(topic: string, partitions: number): Promise<TopicInfo> {
    const known = await this.reads.topicToChange(topic);
    if (partitions <= known.partitions.length) {
      throw new RelayError('INVALID_ARGUMENT', `topic ${topic} has ${known.partitions.length} partitions; the count can only be raised (asked for ${partitions})`);
    }
    await this.forwarding.viaLeader(this.meta, () => this.addPartitionsHere(topic, partitions), ADD_PARTITIONS_METHOD, { topic, partitions });
    const grown = await waitFor(
      this.metaEvents,
      'applied',
      () => ((this.metadata.get(topic)?.partitions.length ?? 0) >= partitions ? this.metadata.get(topic) : undefined),
      this.options.requestTimeoutMs,
      `topic ${topic}'s new partitions to reach this broker's metadata`,
    );
    return { topic, partitions: grown.partitions.length };
  }

  /**
   * Deletes `topic` through the metadata leader and resolves, with the
   * topic as it was, once this broker applied the deletion. Every broker
   * hosting a replica stops its group and deletes its files when it applies
   * the entry; subscribers of the topic are told (`INVALID_TOPIC`).
   * `INVALID_TOPIC` for a topic that does not exist (one only this broker
   * lacks is waited for: {@link MetadataReads.topicToChange}).
   */
  async deleteTopic(topic: string): Promise<TopicInfo> {
    const known = await this.reads.topicToChange(topic);
    const result = await this.forwarding.viaLeader(this.meta, () => this.deleteTopicHere(topic), DELETE_TOPIC_METHOD, { topic });
    const o = (typeof result === 'object' && result !== null ? result : {}) as { kind?: unknown };
    if (o.kind === 'missing') throw new RelayError('INVALID_TOPIC', `no topic "${topic}"`);
    // Applied on the leader; this broker applies it a moment later.
    await waitFor(
      this.metaEvents,
      'applied',
      () => (this.metadata.get(topic) === undefined || this.metadata.get(topic)?.incarnation !== known.incarnation ? true : undefined),
      this.options.requestTimeoutMs,
      `the deletion of topic ${topic} to reach this broker's metadata`,
    );
    return { topic, partitions: known.partitions.length };
  }

  /** See {@link MetadataReads.topicMissing}. */
  topicMissing(topic: string): Promise<boolean> {
    return this.reads.topicMissing(topic);
  }

  /** See {@link LogEngine.awaitTopic}. */
  async awaitTopic(topic: string): Promise<void> {
    await this.reads.topicToChange(topic);
  }

  /** See {@link MetadataReads.partitionMissing}. */
  partitionMissing(topic: string, partition: number): Promise<'topic' | 'partition' | undefined> {
    return this.reads.partitionMissing(topic, partition);
  }

  /**
   * On the metadata leader: proposes a durable position commit (or read), and
   * answers its result with the index applied here once it was applied
   * (`applied`): the asking broker applies its log that far before it takes
   * the positions with its own view of the topics (ReplicatedPositions).
   * Brokers before `applied` ignore it.
   */
  private async positionsHere(command: CommitPositionsCommand): Promise<unknown> {
    return this.withApplied(await this.proposeMeta(command));
  }

  /** A metadata leader's result with the index applied here (`applied`), for the asking broker to catch up to. */
  private withApplied(result: unknown): unknown {
    return typeof result === 'object' && result !== null ? { ...result, applied: this.meta.applied } : result;
  }

  /**
   * On the metadata leader: proposes the deletion of `topic`, answered
   * `missing` when there is none, which (as {@link MetadataReads.topicMissingHere}) is said
   * only after a read barrier: a leader deposed or just elected may not have
   * applied a creation yet.
   */
  private async deleteTopicHere(topic: string): Promise<unknown> {
    if (this.metadata.get(topic) === undefined) {
      if (this.meta.leader !== this.options.self) throw new RelayError('NOT_LEADER', `broker ${this.options.self} does not lead the metadata`);
      await this.reads.metaReadBarrier();
      if (this.metadata.get(topic) === undefined) return { kind: 'missing', topic };
    }
    return this.proposeMeta({ type: 'delete-topic', topic });
  }

  onTopicDeleted(listener: (topic: string) => void): () => void {
    this.topicEvents.on('deleted', listener);
    return () => this.topicEvents.off('deleted', listener);
  }

  topics(): Iterable<string> {
    return this.metadata.all().map((t) => t.topic);
  }

  append(topic: string, partition: number, batch: ProducerBatch, ack: AckLevel): Promise<AppendOutcome[]> {
    if (batch.messages.length === 0) return Promise.resolve([]);
    // The batch goes into the Raft log as it came from the session, with this broker's time.
    const { producerId, firstSeq, messages } = batch;
    // One literal: `{ ...forwarded, hops: 0 }` cost 2–4 µs per publish on Node 20 (a spread followed by more properties).
    const routed: RoutedPublish = { topic, partition, ack, command: { producerId, firstSeq, messages, timestampMs: this.options.now(), dedupe: ack !== 'none' }, hops: 0 };
    return this.router.route(routed).then(outcomesOf);
  }

  /** From this broker's replica where it has one (another replica answers if that read fails), else from a replica elsewhere. */
  read(topic: string, partition: number, offset: number, maxCount: number, maxBytes: number): StoredMessage[] | Promise<StoredMessage[]> {
    const id = partitionGroupId(topic, partition);
    const log = this.partitions.get(id);
    if (log === undefined) return this.remote.read(topic, partition, offset, maxCount, maxBytes);
    const elsewhere = (err: unknown): Promise<StoredMessage[]> => {
      this.options.log('warn', 'reading a hosted partition failed; reading another replica', { topic, partition, offset, error: String(err) });
      this.disks.changed(id); // the read may have found damage: the next maintenance round looks at it
      return this.remote.readFromReplica(topic, partition, offset, maxCount, maxBytes);
    };
    try {
      const read = log.read(offset, maxCount, maxBytes);
      return Array.isArray(read) ? read : read.catch(elsewhere);
    } catch (err) {
      return elsewhere(err);
    }
  }

  /** From this broker's replica when it stores its messages encoded (layout `unified`); else `undefined` (see {@link LogEngine.readEncoded}). */
  readEncoded(topic: string, partition: number, offset: number, maxCount: number, maxBytes: number): Promise<EncodedMessages> | undefined {
    const id = partitionGroupId(topic, partition);
    return this.partitions.get(id)?.readEncoded?.(offset, maxCount, maxBytes)?.catch((err: unknown) => {
      this.disks.changed(id); // the read may have found damage: the next maintenance round looks at it
      throw err;
    });
  }

  /**
   * Committed messages of this broker's own replica of a partition, never
   * read from another broker (the chaos checker compares replicas with it);
   * `undefined` when this broker hosts no replica of it.
   */
  async readReplica(topic: string, partition: number, offset: number, maxCount: number, maxBytes: number): Promise<ReplicaRead | undefined> {
    const log = this.partitions.get(partitionGroupId(topic, partition));
    if (log === undefined) return undefined;
    const from = Math.max(offset, log.startOffset);
    const messages = from >= log.endOffset ? [] : await log.read(from, maxCount, maxBytes);
    return { start: log.startOffset, end: log.endOffset, messages };
  }

  bounds(topic: string, partition: number): PartitionBounds {
    const log = this.partitions.get(partitionGroupId(topic, partition));
    return log === undefined ? this.remote.bounds(topic, partition) : { start: log.startOffset, end: log.endOffset };
  }

  boundsKnown(topic: string, partition: number): boolean {
    return this.partitions.has(partitionGroupId(topic, partition)) || this.remote.follows(topic, partition);
  }

  async currentBounds(topic: string, partition: number): Promise<PartitionBounds> {
    return this.partitions.has(partitionGroupId(topic, partition)) ? this.bounds(topic, partition) : this.remote.currentBounds(topic, partition);
  }

  async offsetForTime(topic: string, partition: number, timeMs: number): Promise<number> {
    const log = this.partitions.get(partitionGroupId(topic, partition));
    return log === undefined ? this.remote.offsetForTime(topic, partition, timeMs) : log.offsetForTime(timeMs);
  }

  get consumerGroups(): ConsumerGroups {
    return this.metadata.groups;
  }

  async groupCommand(command: GroupCommand): Promise<GroupResult> {
    const result = await this.forwarding.viaLeader(this.meta, () => this.groupCommandHere(command), GROUP_COMMAND_METHOD, command);
    // The result crossed the network when the leader is another broker: read it as untrusted.
    const read = parseGroupResult(result);
    if (read === undefined) throw new RelayError('INTERNAL', 'malformed answer to a consumer-group command');
    // A joined member is shown its assignment from the group table applied here: not one older than its join, which
    // may still show it a grant the coordinator took back and gave another member since (NOT_READY: the SDK retries).
    const applied = command.type === 'group-join' && read.kind === 'group' ? appliedIndexOf(result) : undefined;
    if (applied !== undefined) await this.reads.metaAppliedUpTo(applied, 'the consumer-group join');
    return read;
  }

  /**
   * On the metadata leader: proposes a consumer-group command and answers its
   * result with the index applied here once it was applied (`applied`), as
   * {@link positionsHere}. Brokers before `applied` ignore it.
   */
  private async groupCommandHere(command: GroupCommand): Promise<unknown> {
    return this.withApplied(await this.proposeMeta(command));
  }

  commitPositions(durable: string, positions: readonly Cursor[]): Promise<void> {
    return this.durablePositions.commitPositions(durable, positions);
  }

  positions(durable: string, pattern: string): Promise<Cursor[]> {
    return this.durablePositions.positions(durable, pattern);
  }

  /** The metadata as applied here (topics with their replicas, durable positions), read without a Raft round trip: for operators. */
  appliedMetadata(): MetadataSnapshot {
    return this.metadata.snapshot();
  }

  /** Whether this broker hosts a replica of the partition (its group is open here). */
  hostsReplica(topic: string, partition: number): boolean {
    return this.partitions.has(partitionGroupId(topic, partition));
  }

  /** The leader of a partition as this broker knows it. */
  leaderOf(topic: string, partition: number): string | undefined {
    const group = this.groups.get(partitionGroupId(topic, partition));
    return group === undefined ? this.router.leaderOf(topic, partition) : (group.leader ?? undefined);
  }

  leadersOf(topics: ReadonlyArray<{ topic: string; partitions: number }>): Promise<string[][]> {
    return this.remote.leadersOf(topics);
  }

  /** Whether a replica of the partition lives here (by the metadata); true for one unknown, so its error comes from the group. */
  private hosts(topic: string, partition: number): boolean {
    const replicas = this.metadata.get(topic)?.partitions[partition]?.replicas;
    return replicas === undefined || replicas.includes(this.options.self);
  }

  /**
   * Proposes a membership change of a Raft group (`meta`, or a partition's
   * `p/<topic>/<partition>`) through its leader, wherever it is, and resolves
   * with the resulting configuration once the change is committed. Hosted
   * here or not, the request goes to the leader this broker knows of (a
   * partition it does not host: the first replica in the metadata, which
   * forwards it on). Refusals: `NOT_READY` while another change of the group
   * is pending (retry), `INVALID_ARGUMENT` when the change does not apply
   * (adding a member, promoting a non-learner, removing the last voter).
   */
  async changeMembership(group: string, change: ConfChange): Promise<ConfState> {
    const request: ConfChangeRequest = { group, change };
    const hosted = this.groups.get(group);
    if (hosted === undefined) {
      const target = this.replicasOfGroup(group)?.find((id) => id !== this.options.self);
      if (target === undefined) throw new RelayError('INVALID_ARGUMENT', `no Raft group ${group} is known to broker ${this.options.self}`);
      return parseConfAnswer(await this.rpc.call(target, CONF_CHANGE_METHOD, request, this.options.requestTimeoutMs + 1000));
    }
    return parseConfAnswer(await this.changeMembershipViaLeader(request));
  }

  /** The metadata group's voters, learners and leader, as in effect on this broker. */
  metadataMembership(): { voters: NodeId[]; learners: NodeId[]; leader: NodeId | null } {
    const conf = this.meta.confState;
    return { voters: [...conf.voters], learners: [...(conf.learners ?? [])], leader: this.meta.leader };
  }

  /**
   * Takes `broker` out of the cluster (decommission), once
   * {@link removalRefusal} allows it (`FORBIDDEN` while fewer brokers than
   * the replication factor would remain). A broker holding no replica leaves
   * the metadata group at once (`removed`). Otherwise it is marked draining
   * (`draining`): the metadata leader moves every replica off it, at most
   * `maxConcurrentMoves` at once, then takes it out of the metadata group;
   * {@link replicaMoves} shows the progress. The operator stops the broker
   * once it left the metadata group.
   */
  async removeBroker(broker: NodeId): Promise<{ outcome: 'removed' | 'draining'; replicas: number }> {
    const refusal = this.removalRefusalOf(broker);
    if (refusal !== undefined) throw new RelayError(refusal.code, refusal.message);
    const held = replicasOn(broker, this.metadata.all()).length;
    if (held === 0) {
      await this.changeMembership(META_GROUP, { type: 'remove', node: broker });
      return { outcome: 'removed', replicas: 0 };
    }
    await this.proposeMove({ type: 'drain-broker', broker, draining: true });
    return { outcome: 'draining', replicas: held };
  }

  private removalRefusalOf(broker: NodeId): ReturnType<typeof removalRefusal> {
    const conf = this.meta.confState;
    return removalRefusal({
      broker,
      voters: conf.voters,
      learners: conf.learners ?? [],
      draining: this.metadata.moves.draining,
      replicationFactor: this.options.replicationFactor,
      topics: this.metadata.all(),
    });
  }

  /**
   * Asks the metadata leader to spread replicas evenly over the brokers
   * (by count): it moves them a wave (`maxConcurrentMoves`) at a time from
   * the brokers holding the most to those holding the fewest, until counts
   * differ by at most one. Resolves once asked, not done.
   */
  async rebalance(): Promise<void> {
    await this.proposeMove({ type: 'rebalance', on: true });
  }

  /** Replica moves in progress as this broker sees them (their last step only on the metadata leader) and the brokers being drained. */
  replicaMoves(): MovesReport {
    return { moves: this.moveCoordinator.progress(), draining: this.metadata.moves.draining, rebalancing: this.moveCoordinator.rebalancing() };
  }

  /**
   * {@link replicaMoves} as the metadata leader sees it, and which broker
   * answered: only the leader steps the moves, so another broker asks it.
   * When the leader is unknown, unreachable or older than this method, this
   * broker's own view answers (its moves `pending`).
   */
  async replicaMovesOfLeader(): Promise<{ report: MovesReport; from: NodeId }> {
    const leader = this.meta.leader;
    if (leader !== null && leader !== this.options.self) {
      try {
        return { report: parseMovesReport(await this.rpc.call(leader, MOVE_PROGRESS_METHOD, {}, this.options.requestTimeoutMs)), from: leader };
      } catch (err) {
        this.options.log('debug', 'the metadata leader did not say how its moves stand; showing this broker\'s view', { leader, error: String(err) });
      }
    }
    return { report: this.replicaMoves(), from: this.options.self };
  }

  /**
   * Moves the replica of `topic/partition` on broker `from` to broker `to`
   * (a member of the metadata group holding none): the metadata leader
   * drives it (replica-moves.ts); {@link replicaMoves} shows its progress.
   * Resolves once the move is recorded, not done. Refused with a
   * {@link MoveRefusedError} (manual-move.ts says when: unknown topic,
   * partition or broker, `to` a replica already, `from` none, `to` being
   * decommissioned, the partition moving already, `maxConcurrentMoves`
   * moves in progress), checked here and again by the metadata leader.
   */
  async moveReplica(topic: string, partition: number, from: NodeId, to: NodeId): Promise<void> {
    const refusal = (): MoveRefusedError | undefined => {
      const conf = this.meta.confState;
      return manualMoveRefusal({
        topic,
        partition,
        from,
        to,
        topics: this.metadata.all(),
        members: [...conf.voters, ...(conf.learners ?? [])],
        draining: this.metadata.moves.draining,
        moves: this.metadata.moves.all(),
        maxMoves: this.options.maxConcurrentMoves ?? DEFAULT_MAX_CONCURRENT_MOVES,
      });
    };
    let before = refusal();
    // Maybe unknown here only (this broker behind its metadata leader): a partition the leader has is waited for.
    if ((before?.reason === 'unknown-topic' || before?.reason === 'unknown-partition') && (await this.reads.partitionToChange(topic, partition))) before = refusal();
    if (before !== undefined) throw before;
    const result = await this.proposeMove({ type: 'move-replica', topic, partition, from, to, atMs: Math.floor(this.options.now()) });
    const o = (typeof result === 'object' && result !== null ? result : {}) as { kind?: unknown; reason?: unknown };
    if (o.kind !== 'move-refused') return;
    // The metadata leader knew better (this broker's view was behind): its state, applied here now, says why.
    throw refusal() ?? new RelayError('INVALID_ARGUMENT', `cannot move ${topic}/${partition} from ${from} to ${to}: ${String(o.reason)}`);
  }

  /** Proposes a move command through the metadata leader, resolves with its result once this broker applied it. */
  private async proposeMove(command: MoveCommand): Promise<unknown> {
    const result = await this.forwarding.viaLeader(this.meta, () => this.proposeMeta(command), MOVE_COMMAND_METHOD, command);
    // Applied on the leader; this broker applies it a moment later (its metadata says so once it is there).
    const index = this.meta.status().commit;
    await waitFor(this.metaEvents, 'applied', () => (this.meta.applied >= index ? true : undefined), this.options.requestTimeoutMs, 'a move command to reach this broker').catch(() => undefined);
    return result;
  }

  /**
   * Runs `local` on the leader of partition group `group`: through this
   * broker's replica when it is a member that knows a leader, else through
   * another replica (each forwards to the leader it knows). A move's target
   * is not a member until the step that adds it ran — its group has heard
   * from no leader — and a replica already removed hears from none any more.
   */
  private async onPartitionLeader(group: string, method: string, body: unknown, local: () => Promise<unknown>): Promise<unknown> {
    const hosted = this.groups.get(group);
    if (hosted !== undefined && isMember(hosted.confState, this.options.self) && hosted.leader !== null) return this.viaHostedLeader(group, method, body, local);
    // One picked at random, so a dead one is not asked every time.
    const others = (this.replicasOfGroup(group) ?? []).filter((id) => id !== this.options.self);
    const target = others[Math.floor(Math.random() * others.length)];
    if (target === undefined) throw new RelayError('NOT_LEADER', `no replica of ${group} to ask`);
    return this.rpc.call(target, method, body, this.options.requestTimeoutMs + 1000);
  }

  /** Runs `local` when this broker leads `group` (hosted here), else forwards `method` to the leader it knows. */
  private viaHostedLeader<R>(group: string, method: string, body: unknown, local: () => Promise<R>): Promise<R> {
    const hosted = this.groups.get(group);
    if (hosted === undefined) return Promise.reject(new RelayError('NOT_LEADER', `broker ${this.options.self} hosts no replica of ${group}`));
    return this.forwarding.viaLeader(hosted, local, method, body);
  }

  /** On the partition's leader: hands leadership to the preferred leader when it is caught up (see {@link preferredLeaderStep}). */
  private async preferLeaderHere(request: PreferLeaderRequest): Promise<PreferLeaderState> {
    const group = this.groups.get(request.group);
    const status = group?.status();
    if (group === undefined || status === undefined || status.role !== 'leader') throw new RelayError('NOT_LEADER', `broker ${this.options.self} does not lead ${request.group}`);
    const state = preferredLeaderStep({ ...status, self: this.options.self }, request.preferred);
    if (state !== 'transferring') return state;
    // A target that could not win the last time (not linked to the other voters yet) is left as it is for now.
    if (!this.transferAttempts.mayTransfer(request.group, request.preferred, status.term) || !group.transferLeadership(request.preferred)) return 'lagging';
    this.transferAttempts.asking(request.group, request.preferred, status.term);
    return state;
  }

  /** On the partition's leader: makes the next Raft change of the move (see {@link nextMoveStep}) and says where it stands. */
  private async moveStepHere(request: MoveStepRequest): Promise<MoveStepAnswer> {
    const group = this.groups.get(request.group);
    if (group === undefined) throw new RelayError('NOT_LEADER', `broker ${this.options.self} hosts no replica of ${request.group}`);
    const status = group.status();
    if (status.role !== 'leader') throw new RelayError('NOT_LEADER', `broker ${this.options.self} does not lead ${request.group}`, status.leader === null ? {} : { leader: status.leader });
    const { self, requestTimeoutMs } = this.options;
    const { from, to } = request;
    const answer = (phase: MoveStepAnswer['phase']): MoveStepAnswer => {
      const now = group.status();
      const match = [...now.progress, ...now.learnerProgress].find((p) => p.id === to)?.match ?? 0;
      const served = this.servedToLearners.get(request.group);
      const fetched = served?.get(to) ?? 0;
      // Counted while the target is a learner: once it votes (or is taken back out) the count is done with.
      if (!now.learners.includes(to) && served !== undefined) {
        served.delete(to);
        if (served.size === 0) this.servedToLearners.delete(request.group);
      }
      const totalBytes = this.partitions.get(request.group)?.sizeBytes;
      if (totalBytes === undefined) return { phase, leader: self, match, lastIndex: now.lastIndex };
      const copiedBytes = copiedEstimate({ fetchedBytes: fetched, match, lastIndex: now.lastIndex, totalBytes, votes: now.voters.includes(to) });
      return { phase, leader: self, match, lastIndex: now.lastIndex, copiedBytes, totalBytes };
    };
    const step = nextMoveStep({ ...status, self }, request);
    switch (step.action) {
      case 'add-learner':
        this.servedToLearners.get(request.group)?.delete(to); // a new move counts from nothing
        await group.proposeConfChange({ type: 'add-learner', node: to }, requestTimeoutMs);
        return answer('catching-up');
      case 'wait':
        return answer('catching-up');
      case 'promote':
        await group.proposeConfChange({ type: 'promote', node: to }, requestTimeoutMs);
        return answer('promoted');
      case 'transfer':
        if (!group.transferLeadership(step.target)) throw new RelayError('NOT_LEADER', `broker ${self} could not hand ${request.group} to ${step.target}`);
        return answer('transferring');
      case 'remove':
        await group.proposeConfChange({ type: 'remove', node: from }, requestTimeoutMs);
        return answer('removed');
      case 'done':
        return answer('done');
      case 'remove-learner':
        await group.proposeConfChange({ type: 'remove', node: to }, requestTimeoutMs);
        return answer('cancelled');
      case 'cancelled':
        return answer('cancelled');
    }
  }

  /**
   * Admits `broker` into the metadata group as a learner now (admission
   * promotes it once caught up, up to `metadataVoters`): for a broker an
   * operator removed earlier, which admission does not take back by itself.
   * It must be linked to this broker (started with `--join`).
   */
  async addBroker(broker: NodeId): Promise<ConfState> {
    // A broker that came back on an empty data directory keeps the incarnation it linked with from now on (amnesia is refused again).
    if (this.metadata.moves.isForgotten(broker) && !isMember(this.meta.confState, broker)) {
      if (!this.options.transport.connectedPeers().includes(broker)) {
        throw new RelayError('INVALID_ARGUMENT', `broker ${broker} is not linked to broker ${this.options.self}: start it (on an empty data directory, with --join <a member's peer address>) first`);
      }
      // The incarnation it linked here with becomes every broker's record of it, whether or not a broker met it yet.
      const incarnation = this.options.incarnationOf?.(broker);
      await this.proposeMove({ type: 'forget-broker', broker, forgotten: false, ...(incarnation === undefined ? {} : { incarnation }) });
    }
    // An operator adding a decommissioned broker back: it may hold replicas again (one still a member: its decommission is called off).
    if (this.metadata.moves.isDraining(broker)) {
      await this.proposeMove({ type: 'drain-broker', broker, draining: false });
      if (isMember(this.meta.confState, broker)) return this.meta.confState;
    }
    if (isMember(this.meta.confState, broker)) throw new RelayError('INVALID_ARGUMENT', `broker ${broker} is a member of the cluster already`);
    if (!this.options.transport.connectedPeers().includes(broker)) {
      throw new RelayError('INVALID_ARGUMENT', `broker ${broker} is not linked to broker ${this.options.self}: start it with --join <a member's peer address> first`);
    }
    return this.changeMembership(META_GROUP, { type: 'add-learner', node: broker });
  }

  /**
   * Lets `broker`, which lost its data directory, come back under the same id
   * on an empty one: every broker accepts the next incarnation it presents
   * (and keeps that one) instead of refusing it as a broker with amnesia,
   * until an operator admits it with {@link addBroker}. Safe only once it
   * votes nowhere: refused (`FORBIDDEN`) while it is a member of the metadata
   * group or holds (or receives) a partition replica, i.e. until it was
   * replaced (self-healing) or decommissioned.
   */
  async forgetBroker(broker: NodeId): Promise<void> {
    if (broker === this.options.self) throw new RelayError('INVALID_ARGUMENT', `broker ${broker} cannot forget itself: ask another broker`);
    if (isMember(this.meta.confState, broker)) {
      throw new RelayError(
        'FORBIDDEN',
        `broker ${broker} is still a member of the metadata group: its votes count, so its identity cannot be forgotten; wait until it is replaced (--replacement-timeout-ms) or remove it (relaymq cluster remove ${broker})`,
      );
    }
    const held = replicasOn(broker, this.metadata.all());
    if (held.length > 0) {
      throw new RelayError('FORBIDDEN', `broker ${broker} still holds ${held.length} partition replica${held.length === 1 ? '' : 's'} (${held.slice(0, 3).join(', ')}): wait until they are moved off`);
    }
    if (this.metadata.moves.isForgotten(broker)) return;
    await this.proposeMove({ type: 'forget-broker', broker, forgotten: true });
  }

  /** Whether an operator let `broker` come back on an empty data directory and did not admit it yet (see {@link forgetBroker}). */
  isForgotten(broker: NodeId): boolean {
    return this.metadata.moves.isForgotten(broker);
  }

  /** Proposes an operator's topic on this broker, the metadata leader. */
  private createTopicWithSettingsHere(topic: string, settings: TopicSettings): Promise<unknown> {
    if (this.metadata.get(topic) !== undefined) return Promise.resolve('exists');
    const brokers = this.placementBrokers();
    const partitions = settings.partitions ?? this.options.defaultPartitions;
    const replicationFactor = settings.replicationFactor ?? this.options.replicationFactor;
    return this.proposeMeta({ type: 'create-topic', topic, partitions, replicationFactor, brokers });
  }

  /** Proposes a partition increase on this broker, the metadata leader; placed over the metadata group's members. */
  private addPartitionsHere(topic: string, partitions: number): Promise<unknown> {
    const brokers = this.placementBrokers();
    return this.proposeMeta({ type: 'add-partitions', topic, partitions, brokers });
  }

  /** Where new replicas may go: the metadata group's members as this broker knows them, less draining ones (sorted). */
  private placementBrokers(): string[] {
    const conf = this.meta.confState;
    const members = [...conf.voters, ...(conf.learners ?? [])].filter((id) => !this.metadata.moves.isDraining(id)).sort();
    // Never nothing: a cluster whose every member drains places as before (the refusal rules keep this from happening).
    return members.length > 0 ? members : [...conf.voters, ...(conf.learners ?? [])].sort();
  }

  /** The configuration of a Raft group hosted here, as in effect on this broker; `undefined` when not hosted. */
  membership(group: string): ConfState | undefined {
    return this.groups.get(group)?.confState;
  }

  /** Proposes a change of a group hosted here, on this broker when it leads, else on the leader it knows. */
  private changeMembershipViaLeader(request: ConfChangeRequest): Promise<ConfState> {
    const hosted = this.groups.get(request.group);
    // Not hosted here either: refused rather than passed on again (a forward never hops twice blindly).
    if (hosted === undefined) return Promise.reject(new RelayError('NOT_LEADER', `broker ${this.options.self} hosts no replica of ${request.group}`));
    return this.forwarding.viaLeader(hosted, () => hosted.proposeConfChange(request.change, this.options.requestTimeoutMs), CONF_CHANGE_METHOD, request);
  }

  /** The replicas of a group by the metadata (every broker of the metadata group for `meta`). */
  private replicasOfGroup(group: string): readonly NodeId[] | undefined {
    if (group === META_GROUP) return this.meta.confState.voters;
    const parsed = parsePartitionGroup(group);
    return parsed === undefined ? undefined : this.metadata.get(parsed.topic)?.partitions[parsed.partition]?.replicas;
  }

  /** Whether this broker is new to its cluster: its metadata log holds nothing yet (nothing ever reached it). */
  isNewToCluster(): boolean {
    const reader = this.metaStorage?.reader;
    return reader === undefined || (reader.lastIndex() === 0 && reader.snapshot() === undefined);
  }

  /**
   * Whether this broker knows a metadata leader, as readiness counts it: one
   * lost less than {@link READINESS_GRACE_ELECTIONS} election timeouts ago
   * still counts (every broker loses it for the moment of an election).
   */
  metadataLeaderKnown(): boolean {
    return this.metaLeaderGrace.known(this.meta.leader);
  }

  /**
   * Whether every replica this broker hosts holds again what it acknowledged
   * before this start (`RaftConfig.recoveringAtStart`): the metadata applied
   * what it committed, every partition assigned here has its group, and no
   * group is recovering. False while a group is still to be created.
   */
  replicasRecovered(): boolean {
    const meta = this.meta.status();
    if (this.hostingStale || meta.leader === null || this.meta.applied < meta.commit) return false;
    for (const topic of this.metadata.all()) {
      for (let partition = 0; partition < topic.partitions.length; partition++) {
        const assignment = topic.partitions[partition];
        const here = assignment !== undefined && (assignment.replicas.includes(this.options.self) || (assignment.learners ?? []).includes(this.options.self));
        if (here && !this.groups.has(partitionGroupId(topic.topic, partition))) return false;
      }
    }
    for (const group of this.groups.values()) if (group.status().recovering) return false;
    return true;
  }

  /** Calls `listener` whenever the metadata group's leader changes, or a lost one stops counting (readiness depends on it). */
  onMetadataLeaderChange(listener: () => void): void {
    this.metaEvents.on('leader', listener);
  }

  /**
   * The failure detector (gossip, or a peer link that closed) suspects
   * broker `peer`: every group here that follows it stops trusting its lease
   * and campaigns within an election timeout unless it hears from it (a
   * quiesced group would otherwise never notice its leader is gone).
   */
  peerDown(peer: NodeId): void {
    if (peer === this.options.self) return;
    for (const group of this.groups.values()) group.peerDown(peer);
  }

  /**
   * The failure detector no longer suspects broker `peer`: leaders here that
   * quiesced without it and hold entries it lacks wake to catch it up.
   */
  peerRecovered(peer: NodeId): void {
    if (peer === this.options.self) return;
    for (const group of this.groups.values()) group.peerRecovered(peer);
  }

  /** The Raft counters of every group this broker ran since it started (those dropped included), summed (metrics). */
  raftCounters(): RaftCounters {
    const sum = { ...this.droppedRaftCounters };
    for (const group of this.groups.values()) addRaftCounters(sum, group.raftCounters());
    return sum;
  }

  /** Raft work of this broker: group ticks and messages sent since start, groups hosted and quiesced now. */
  raftActivity(): RaftActivity {
    return this.clock.activity();
  }

  /** Full collections run after bursts of group creations or removals (see HeapSettle). */
  heapSettles(): number {
    return this.heapSettle.settles;
  }

  /** Segment files and Raft log files open now, each kind under its broker-wide bound (`maxOpenSegmentFiles`, `maxOpenRaftLogFiles`). */
  openFiles(): { segments: number; raftLogs: number } {
    return { segments: this.factory.openSegmentFiles.stats().open, raftLogs: this.factory.openRaftLogFiles.stats().open };
  }

  /** How many groups this broker leads (advertised as load). */
  partitionsLed(): number {
    let led = 0;
    for (const [id, group] of this.groups) if (id !== META_GROUP && group.isLeader()) led++;
    return led;
  }

  /**
   * Raft status of every group hosted here, for tests and operators.
   * `replicas` has every voter's match index (known on the leader only,
   * empty elsewhere) and whether this broker's peer link to it is up.
   */
  groupStatus(): GroupStatus[] {
    const connected = new Set(this.options.transport.connectedPeers());
    return [...this.groups.values()].map((g) => {
      const s = g.status();
      const replicas = s.progress.map((p) => ({ id: p.id, match: p.match, connected: p.id === this.options.self || connected.has(p.id) }));
      return { group: g.id, role: s.role, leader: s.leader, term: s.term, commit: s.commit, firstIndex: s.firstIndex, lastIndex: s.lastIndex, voters: [...s.voters], replicas };
    });
  }

  /**
   * Before shutdown: hands every group this broker leads to another voter,
   * so publishing stalls for a heartbeat, not an election timeout; retries
   * other targets within `timeoutMs` and logs the groups it could not hand over.
   */
  async transferLeadership(timeoutMs: number): Promise<HandoverResult> {
    const { self, transport } = this.options;
    const handover = (group: RaftGroup<unknown, unknown, unknown>): HandoverGroup => ({
      id: group.id,
      isLeader: () => group.isLeader(),
      targets: () => rankTargets(self, group.status().progress, new Set(transport.connectedPeers())),
      transferLeadership: (to) => group.transferLeadership(to),
    });
    return handOverLeadership(() => [...this.groups.values()].map(handover), {
      timeoutMs,
      // The Raft core gives up on a transfer after an election timeout; try the next target well before.
      attemptMs: (this.options.raftConfig.electionTicks ?? 10) * TICK_MS / 2,
      now: this.options.now,
      log: this.options.log,
    });
  }

  /**
   * Closed, and every Raft log made everything it wrote durable by then: the
   * broker may leave its clean-stop marker (storage/clean-shutdown.ts).
   */
  get closedDurably(): boolean {
    return this.durableAtClose;
  }

  async close(): Promise<void> {
    this.groupSessions.stop();
    this.moveCoordinator.stop();
    this.metaLeaderGrace.close();
    this.consumerGroupEvents.removeAllListeners();
    this.membershipEvents.removeAllListeners();
    this.topicEvents.removeAllListeners();
    this.stopTicking?.();
    this.heapSettle.close();
    clearInterval(this.maintenanceTimer);
    this.options.transport.off('message', this.onPeerMessage);
    this.options.transport.off('down', this.onPeerDown);
    this.options.transport.off('up', this.onPeerUp);
    this.remote.close();
    this.rpc.close();
    for (const group of this.groups.values()) group.stop();
    await Promise.all([...this.disks.values()].map((hosted) => hosted.finish()));
    this.durableAtClose = await this.factory.close();
    await Promise.all([...this.disks.values()].map((d) => d.close()));
    this.removeAllListeners();
  }

  // ---- internals -------------------------------------------------------------------


  private applyMetadata(command: MetadataCommand): unknown {
    const result = this.metadata.apply(command);
    const created = result.kind === 'created' ? [result.topic] : result.kind === 'topics' ? result.results.flatMap((r) => (r.kind === 'created' ? [r.topic] : [])) : [];
    for (const topic of created) this.hostPartitions(topic);
    if (command.type.startsWith('group-')) {
      this.groupSessions.applied(command as GroupCommand);
      this.consumerGroupEvents.emit('changed', (command as GroupCommand).group);
    } else if (created.length > 0) {
      this.consumerGroupEvents.emit('changed', undefined);
    }

    // The admin's entries (admin-commands.ts): a grown topic's new partitions are hosted like a new topic's.
    if (result.kind === 'grown') {
      this.hostPartitions(result.topic);
      this.consumerGroupEvents.emit('changed', undefined);
    }
    if (result.kind === 'cluster-id') this.options.onClusterId?.(result.clusterId);
    if (result.kind === 'topic-deleted') this.topicDeleted(result.topic);
    if (result.kind === 'forgotten' && result.admitted !== undefined) this.options.onIncarnationAdmitted?.(result.admitted.broker, result.admitted.incarnation);
    // A move's new replica starts its group here; a finished (or cancelled) move drops the replica it replaced.
    if (result.kind === 'move-started' || result.kind === 'move-finished' || result.kind === 'move-cancelled') {
      const topic = this.metadata.get(result.move.topic);
      if (topic !== undefined) this.hostPartitions(topic);
    }
    this.metaEvents.emit('applied');
    this.announceApplied();
    // Durable position results carry the positions back to the proposer.
    if (result.kind === 'topics') return created.length > 0 ? 'created' : 'exists';
    return result.kind === 'created' || result.kind === 'exists' ? result.kind : result;
  }

  private proposeMeta(command: MetadataCommand): Promise<unknown> {
    // A new cluster is named before its first other entry (cluster-naming.ts), whatever comes first.
    this.naming?.tick();
    return this.meta.propose(command, this.options.requestTimeoutMs);
  }

  /** Replaces the metadata with a snapshot's (on start, or installed from the leader) and hosts its partitions. */
  private restoreMetadata(snapshot: MetadataSnapshot): void {
    const before = new Map(this.metadata.all().map((t) => [t.topic, t.incarnation]));
    this.metadata.restore(snapshot);
    // Groups of topics the snapshot no longer has (deleted while this broker was away), or has anew, go first.
    this.dropUnplaced();
    for (const [topic, incarnation] of before) {
      const now = this.metadata.get(topic);
      if (now === undefined || now.incarnation !== incarnation) this.forgetTopic(topic);
    }
    if (this.metadata.clusterId !== undefined) this.options.onClusterId?.(this.metadata.clusterId);
    for (const [broker, incarnation] of this.metadata.moves.admitted) this.options.onIncarnationAdmitted?.(broker, incarnation);
    for (const topic of this.metadata.all()) this.hostPartitions(topic);
    this.consumerGroupEvents.emit('changed', undefined);
    this.metaEvents.emit('applied');
    this.announceApplied();
  }

  /**
   * This broker applied the deletion of `topic`: its hosted groups stop and
   * their files go (also files of partitions not hosted, e.g. whose creation
   * failed), readers elsewhere forget it, subscribers are told.
   */
  private topicDeleted(topic: TopicMetadata): void {
    this.dropUnplaced(topic.topic);
    this.forgetTopic(topic.topic);
    this.sweepFiles(topic.topic);
    this.consumerGroupEvents.emit('changed', undefined);
    this.options.log('info', 'topic deleted', { topic: topic.topic, partitions: topic.partitions.length });
  }

  /** A topic this broker knew is gone (or created anew): reads and routes of it are forgotten, its subscribers told. */
  private forgetTopic(topic: string): void {
    this.remote.forgetTopic(topic);
    this.router.forgetTopic(topic);
    this.topicEvents.emit('deleted', topic);
  }

  /**
   * Drops every group hosted here (created: one still being created checks
   * itself once done) that the metadata no longer places here: its topic is
   * gone (deleted), it is another incarnation of the topic (deleted and
   * created again while this broker was away), or its partition is gone.
   * `topic`: only that topic's groups.
   */
  private dropUnplaced(topic?: string): void {
    for (const [id] of this.creating.entriesNow()) {
      const parsed = parsePartitionGroup(id);
      if (parsed === undefined || !this.hostedIncarnation.has(id)) continue;
      if (topic !== undefined && parsed.topic !== topic) continue;
      if (!this.placedHere(parsed.topic, parsed.partition, this.hostedIncarnation.get(id))) this.dropPartition(parsed.topic, parsed.partition);
    }
  }

  /** Whether the metadata places a replica (or a move's target) of `topic/partition` of that incarnation here. */
  private placedHere(topic: string, partition: number, incarnation: number | undefined): boolean {
    const known = this.metadata.get(topic);
    const assignment = known?.partitions[partition];
    if (known === undefined || assignment === undefined || known.incarnation !== incarnation) return false;
    const self = this.options.self;
    return assignment.replicas.includes(self) || (assignment.learners ?? []).includes(self);
  }

  /**
   * Deletes files of `topic`'s partitions no group here holds: a replica
   * whose group was never created (a failed creation), or left by a crash
   * in the middle of a deletion. Those being dropped are left to the drop.
   */
  private sweepFiles(topic: string): void {
    const { dataDir } = this.options;
    if (dataDir === undefined) return;
    const sweep = async (): Promise<void> => {
      for (const files of await replicaFilesOf(dataDir, topic)) {
        const id = partitionGroupId(topic, files.partition);
        // Hosted again (created anew meanwhile) or being dropped: not an orphan.
        if (this.creating.has(id) || this.dropping.has(id)) continue;
        // Not hosted while its files go: a group of a topic created anew waits for them to be gone.
        const deleting = deleteReplicaFiles(files.partitionDir, files.raftLog);
        const done = deleting.then(() => undefined, () => undefined).finally(() => {
          if (this.dropping.get(id) === done) this.dropping.delete(id);
          this.hostingStale = true;
        });
        this.dropping.set(id, done);
        await deleting;
      }
    };
    sweep().catch((err: unknown) => this.options.log('warn', 'could not delete the files of a deleted topic', { topic, error: String(err) }));
  }

  /**
   * Starts the partition groups of a new topic that have a replica here. The
   * others are announced too, so that subscriptions whose pattern matches
   * place a cursor and read them from a replica.
   */
  private hostPartitions(topic: TopicMetadata): void {
    topic.partitions.forEach((assignment, partition) => {
      const id = partitionGroupId(topic.topic, partition);
      const self = this.options.self;
      if (!assignment.replicas.includes(self) && !(assignment.learners ?? []).includes(self)) {
        if (this.creating.has(id)) this.dropPartition(topic.topic, partition);
        this.emit('appended', topic.topic, partition);
        return;
      }
      if (this.creating.has(id) || this.dropping.has(id)) return;
      // A failed creation (a full disk) is logged and forgotten; maintenance hosts it again.
      this.partitionGroup(topic.topic, partition).then(
        // Announced once hosted: a subscription that started before the topic reached this broker's metadata places its cursor.
        () => this.emit('appended', topic.topic, partition),
        (err: unknown) => {
          this.hostingStale = true;
          this.options.log('error', 'could not host partition; retrying', { group: id, error: err instanceof Error ? err.message : String(err) });
        },
      );
    });
  }

  /** What any hosted partition's group tells the engine, and asks of it (one object for all: see {@link BoundPartitionHooks}). */
  private readonly partitionEvents: PartitionEvents = {
    appended: (topic, partition) => this.emit('appended', topic, partition),
    applied: () => this.announceApplied(),
    leaderChanged: () => this.forwarding.leaderChanged(),
    confChanged: (id, conf, index) => this.membershipEvents.emit('changed', id, conf, index),
    fetchFromLeader: async (led, topic, partition, offset) => {
      const fetched = await this.forwarding.fetchFromLeader(led, topic, partition, offset);
      // A new replica (not a voter yet) copies at the move throttle's rate; a voter repairing itself does not wait.
      if (!led.confState.voters.includes(this.options.self)) await this.moveThrottle.took(fetchedBytes(fetched.messages));
      return fetched;
    },
    fetchRecords: async (led, topic, partition, fromIndex) => {
      const page = await this.forwarding.fetchRecordsFromLeader(led, topic, partition, fromIndex);
      if (!led.confState.voters.includes(this.options.self)) await this.moveThrottle.took(fetchedBytes(page.records));
      return page;
    },
    retentionFor: (name) => this.retentionFor(name),
  };

  /**
   * The local group of a partition, created (with its storage) on first need. A failed creation, whoever asked
   * for it, makes the next hosting pass look again: one asked for by a publish routed here, in flight when a pass
   * found it and left it alone, was otherwise never retried (a suspected cause of a CI run's replica not hosted
   * 20 s after its disk healed). A creation refused for a partition not placed here costs one more pass.
   */
  private partitionGroup(topic: string, partition: number): Promise<PartitionGroup> {
    const id = partitionGroupId(topic, partition);
    return this.creating.get(id, () =>
      this.createPartitionGroup(id, topic, partition).catch((err: unknown) => {
        this.hostingStale = true;
        throw err;
      }),
    );
  }

  private async createPartitionGroup(id: string, topic: string, partition: number): Promise<PartitionGroup> {
    // A replica being dropped (its topic deleted, and now created anew) is gone from the disk before the new one opens.
    for (let drop = this.dropping.get(id); drop !== undefined; drop = this.dropping.get(id)) await drop;
    const assignment = await this.assignment(topic, partition);
    const incarnation = this.metadata.get(topic)?.incarnation;
    // A move's target hosts the group before it is a replica (it joins as a learner).
    if (!assignment.replicas.includes(this.options.self) && !(assignment.learners ?? []).includes(this.options.self)) {
      throw new RelayError('NOT_LEADER', `broker ${this.options.self} holds no replica of ${id}`, { leader: assignment.replicas[0] as string });
    }
    const hooks = new BoundPartitionHooks(this.partitionEvents, id, topic, partition);
    const { group, log, hosted } = await this.factory.partition(topic, partition, assignment.replicas, hooks, incarnation);
    this.partitions.set(id, log);
    this.hostedIncarnation.set(id, incarnation);
    if (hosted !== undefined) this.disks.set(id, hosted);
    this.groups.set(id, group as RaftGroup<unknown, unknown, unknown>);
    this.heapSettle.changed();
    // Its topic was deleted (or created anew) while the group was being created: dropped once it is in the cache.
    const now = this.metadata.get(topic);
    if (now === undefined || now.incarnation !== incarnation) setImmediate(() => this.dropUnplaced(topic));
    return group;
  }

  /**
   * Stops and deletes this broker's replica of a partition the metadata no
   * longer places here (moved to another broker). Readers here go to the
   * other replicas from now on.
   */
  private dropPartition(topic: string, partition: number): void {
    const id = partitionGroupId(topic, partition);
    const creating = this.creating.take(id);
    if (creating === undefined) return;
    const done: Promise<void> = creating
      .then(async (group) => {
        group.stop(new RelayError('NOT_LEADER', `broker ${this.options.self} no longer holds a replica of ${id}`));
        if (this.groups.delete(id)) addRaftCounters(this.droppedRaftCounters, group.raftCounters());
        this.heapSettle.changed();
        this.servedToLearners.delete(id);
        this.transferAttempts.forget(id);
        this.partitions.delete(id);
        this.hostedIncarnation.delete(id);
        const hosted = this.disks.get(id);
        this.disks.delete(id);
        await hosted?.finish(); // lets a running maintenance step end before the files go
        await this.factory.dropPartition(topic, partition, hosted);
        this.options.log('info', 'replica no longer held here (moved away, or its topic deleted): group stopped and files deleted', { group: id });
      })
      .catch((err: unknown) => this.options.log('warn', 'could not delete a replica moved away', { group: id, error: String(err) }))
      .finally(() => {
        if (this.dropping.get(id) === done) this.dropping.delete(id);
        this.hostingStale = true;
        // Readers here look again, at another replica (none for a deleted topic: they were told it is gone).
        if (this.metadata.get(topic)?.partitions[partition] !== undefined) this.emit('appended', topic, partition);
      });
    this.dropping.set(id, done);
  }

  /**
   * A partition's replicas from the metadata. A topic not known here yet
   * (the metadata lags, or this broker is starting) is waited for, bounded,
   * then answered `NOT_LEADER` (retriable), never `INVALID_PARTITION`: the
   * broker that forwarded the publish had it checked against its metadata.
   */
  private async assignment(topic: string, partition: number): Promise<{ replicas: readonly NodeId[]; learners?: readonly NodeId[] }> {
    const waitMs = this.options.requestTimeoutMs;
    const known = await waitFor(this.metaEvents, 'applied', () => this.metadata.get(topic), waitMs, `topic ${topic} in this broker's metadata`).catch(() => undefined);
    if (known === undefined) throw metadataLagging(this.options.self, topic, waitMs);
    const assignment = known.partitions[partition];
    if (assignment === undefined) throw new RelayError('INVALID_PARTITION', `topic ${topic} has ${known.partitions.length} partitions, not ${partition + 1}`);
    return assignment;
  }

  /** Keeps partitions on disk bounded (checkpoints, compaction, retention) and repairs damage: see {@link HostedPartition}. */
  private maintain(): void {
    this.moveCoordinator.tick();
    this.metaCompaction.maybeCompact();
    this.admission.tick();
    this.naming?.tick();
    this.hostMissing();
    this.disks.run();
  }

  /** Whether group `id` quiesced with everything it committed applied: until it wakes, it applies nothing (see UpkeepRounds). */
  private quiet(id: string): boolean {
    const group = this.groups.get(id);
    return group !== undefined && this.clock.asleep(group) && group.applied >= group.status().commit;
  }

  private retentionFor(topic: string): RetentionPolicy {
    const match = this.options.topicRetention.find((r) => topicMatches(r.pattern, topic));
    if (match === undefined) return this.options.retention;
    const { pattern: _pattern, ...policy } = match;
    return policy;
  }

  /** Messages of a partition from `offset`, for a replica installing a snapshot. */
  private async fetchHere(request: FetchRequest, from?: NodeId): Promise<FetchResponse> {
    const id = partitionGroupId(request.topic, request.partition);
    const log = this.partitions.get(id);
    if (log === undefined) throw new RelayError('NOT_LEADER', `no replica of ${request.topic}/${request.partition} here`);
    const messages = await log.read(request.offset, FETCH_MESSAGES, FETCH_BYTES);
    this.countServed(id, from, fetchedBytes(messages));
    return { startOffset: log.startOffset, messages };
  }

  /** Committed records of a unified partition hosted here (a replica backfilling below a snapshot copies them). */
  private async recordsHere(request: RecordsRequest, from?: NodeId): Promise<RecordPage> {
    const id = partitionGroupId(request.topic, request.partition);
    const storage = this.factory.unifiedStorage(id);
    if (storage === undefined) throw new RelayError('NOT_LEADER', `no unified replica of ${request.topic}/${request.partition} here`);
    const page = await storage.readRecords(request.fromIndex, FETCH_MESSAGES, FETCH_BYTES);
    this.countServed(id, from, fetchedBytes(page.records));
    return page;
  }

  /** A learner fetching is a move's target copying the partition: its bytes count for the move's progress (moveStepHere). */
  private countServed(id: string, from: NodeId | undefined, bytes: number): void {
    if (from === undefined || this.groups.get(id)?.status().learners.includes(from) !== true) return;
    const served = this.servedToLearners.get(id) ?? new Map<NodeId, number>();
    served.set(from, (served.get(from) ?? 0) + bytes);
    this.servedToLearners.set(id, served);
  }

  /** On the metadata leader: one entry creating those of `topics` that do not exist yet (one topic: the single-topic entry). */
  private createTopicsHere(topics: readonly string[]): Promise<unknown> {
    const missing = [...new Set(topics)].filter((topic) => this.metadata.get(topic) === undefined);
    if (missing.length === 0) return Promise.resolve('exists');
    const { defaultPartitions: partitions, replicationFactor } = this.options;
    // Placed on the metadata group's members as this leader knows them (brokers that joined included).
    const brokers = this.placementBrokers();
    const command: MetadataCommand =
      missing.length === 1
        ? { type: 'create-topic', topic: missing[0] as string, partitions, replicationFactor, brokers }
        : { type: 'create-topics', topics: missing.map((topic) => ({ topic, partitions, replicationFactor })), brokers };
    return this.meta.propose(command, this.options.requestTimeoutMs);
  }

  private publishHere(forwarded: ForwardedPublish): Promise<AppendOutcome[]> {
    const made = this.creating.now(partitionGroupId(forwarded.topic, forwarded.partition));
    if (made === undefined) return this.partitionGroup(forwarded.topic, forwarded.partition).then((group) => this.proposePublish(group, forwarded));
    try {
      return this.proposePublish(made, forwarded);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private proposePublish(group: PartitionGroup, forwarded: ForwardedPublish): Promise<AppendOutcome[]> {
    // `none` is not waited for: proposed like `quorum`, which costs the leader no projection.
    const proposal = group.propose(forwarded.command, this.options.requestTimeoutMs, forwarded.ack === 'none' ? 'quorum' : forwarded.ack);
    if (forwarded.ack === 'none') {
      proposal.catch(() => {}); // fire and forget
      return Promise.resolve([]);
    }
    return proposal;
  }

  /**
   * Tells waiters that some group applied entries, once their Ready is done
   * (the group records its applied index after the apply callback returns).
   * Coalesced, and only while a recovery waits for it.
   */
  private announceApplied(): void {
    if (this.appliedAnnounced || this.groupEvents.listenerCount('applied') === 0) return;
    this.appliedAnnounced = true;
    setImmediate(() => {
      this.appliedAnnounced = false;
      this.groupEvents.emit('applied');
    });
  }
}
