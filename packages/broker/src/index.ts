/**
 * `@relaymq/broker`: the relaymq server.
 *
 * @packageDocumentation
 */
export { startBroker, type Broker, type BrokerStats } from './broker.js';
export { BROKER_DEFAULTS, resolveBrokerOptions, type BrokerOptions } from './options.js';
export type { LogEngine, LogEngineEvents, PartitionBounds } from './engine/engine.js';
export type { StoredMessage, AppendRequest, AppendOutcome } from './core/partition/partition.js';
export type { FileSystem, FileHandle, FileStat, OpenMode } from './storage/fs.js';
