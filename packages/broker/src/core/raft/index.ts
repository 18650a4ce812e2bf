/**
 * The Raft consensus core: a pure, synchronous state machine (no I/O, no
 * clock, no ambient randomness) driven by `tick`/`step`/`propose` and
 * drained through `ready`/`advance` by the one runner in `runner.ts`; what
 * a group owes the callers of `propose` is decided in `proposals.ts`.
 * See docs/raft.md.
 */
export { createRaftNode, type RaftNode, type RaftNodeInit } from './node.js';
export { runReady, runReadySync, drainReady, type MaybePromise, type ReadyHandlers, type ReadyStorage } from './runner.js';
export { CompactionGate, ProposalTracker, type Abandoned, type ProposalAck, type Settlement } from './proposals.js';
export { MemoryStorage, StorageError, type Storage, type StorageWriter } from './storage.js';
export { RAFT_DEFAULTS, resolveRaftConfig, type RaftConfig, type RaftConfigOptions } from './config.js';
export { SeededRandom, deriveRandom, hash32 } from './random.js';
export { RaftInvariantError } from './log.js';
export type { RaftCounters } from './raft.js';
export { majorityIndex, quorumSize } from './quorum.js';
export { applyConfChange, formatConf, isMember, isNodeId, isVoter, learnersOf, parseConf, sameConf } from './membership.js';
export { formatEntry, formatEntries, formatHardState, formatMessage, type DataFormatter } from './format.js';
export type {
  AppendMessage,
  AppendResponse,
  ConfChange,
  ConfChangeRefusal,
  ConfChangeResult,
  ConfEntry,
  ConfState,
  Entry,
  HardState,
  HeartbeatMessage,
  HeartbeatResponse,
  Message,
  MessageType,
  NodeId,
  NoopEntry,
  NormalEntry,
  ProgressStatus,
  ProposeRefusal,
  ProposeResult,
  RandomSource,
  Ready,
  Role,
  Snapshot,
  SnapshotMessage,
  SnapshotMeta,
  SoftState,
  Status,
  TimeoutNowMessage,
  TransferResult,
  VoteRequest,
  VoteResponse,
} from './types.js';
