/**
 * The on-disk partition log: segments of CRC-checked records with sparse
 * offset and time indexes, group commit, crash recovery, retention; and the
 * small atomically replaced state beside it (Raft hard state, idempotence
 * table). See docs/storage.md.
 */
export { SegmentLog, type LogHealth, type RecoveryReport, type RetentionPolicy, type RetentionResult } from './segment-log.js';
export { MetaStore, type HardStateRecord, type IdempotenceSnapshot, type ProducerRecord } from './meta.js';
export { LogStorageError, layoutError, storageRelayError, type LogStorageErrorCode, type LogStorageErrorDetails } from './errors.js';
export {
  SEGMENT_LOG_DEFAULTS,
  nodeTimers,
  resolveSegmentLogOptions,
  type CorruptRange,
  type FsyncPolicy,
  type LogHealthStatus,
  type SegmentLogOptions,
  type StorageEvent,
  type Timers,
} from './options.js';
export type { NewMessage, RaftRecordHeader, StoredRecord } from './record.js';
export { segmentFileName } from './segment.js';
