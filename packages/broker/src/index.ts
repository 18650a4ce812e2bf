/**
 * `@relaymq/broker`: the relaymq server, to embed (`startBroker`) or run
 * with the `relaymq` command.
 *
 * @module \@relaymq/broker
 */
export { startBroker, type Broker, type BrokerStats } from './broker.js';
export {
  ALERT_DEFAULTS,
  BROKER_DEFAULTS,
  resolveBrokerOptions,
  type AlertOptions,
  type BackboneOptions,
  type BrokerOptions,
  type LogFunction,
  type LogLevel,
  type PeerOptions,
  type RaftOptions,
  type StorageOptions,
  type SwimOptions,
  type TimingPreset,
} from './options.js';
export type { StorageLayout } from './storage/data-layout.js';
export { PEER_DEFAULTS, RAFT_PRESETS, SWIM_TIMING_PRESETS, TICK_MS } from './tuning.js';
export type { AlertKind, AlertNotification } from './observability/alerts.js';
export type {
  ClusterBroker,
  ClusterConsumerLag,
  ClusterEventView,
  ClusterMemberState,
  ClusterPartition,
  ClusterReport,
  ClusterSeries,
  ClusterTopic,
  PartitionStatus,
  ReplicaState,
} from './observability/cluster-view.js';
export type { BrokerDisk, BrokerReport, ReplicaStore, TopicAssignment, TopicRate } from './observability/broker-report.js';
export type { ConsumerKind, ConsumerLag, ConsumerPosition } from './observability/consumer-lag.js';
export type { BackboneHealth, BackboneNodeHealth, BackbonePartitionHealth, GatewayBackbone } from './observability/backbone-health.js';
export type { BrowsedMessage, BrowseResult } from './observability/message-browser.js';
export type { BrokerView, ClusterStatus, ClusterVerdict, MemberView, PartitionView } from './observability/cluster-status.js';
export type { ClusterEvent, SeriesPoint } from './observability/history.js';
export type { MemberDescription, MembershipDescription, MoveDescription, MovesDescription, PartitionDescription, RemovalDescription, TopicCreated, TopicDescription, TopicSpec } from './observability/admin-api.js';
export type { LogEngine, LogEngineEvents, PartitionBounds } from './engine/engine.js';
export type { StoredMessage, BatchMessage, ProducerBatch, AppendOutcome } from './core/partition/partition.js';
export type { FileSystem, FileHandle, FileStat, OpenMode } from './storage/fs.js';
