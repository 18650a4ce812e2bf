/**
 * The relaymq wire protocol: frames, codec, validation, topic grammar and
 * error codes. Imported by both the SDK and the broker; it imports nothing
 * else of either.
 *
 * @packageDocumentation
 */
export * from './errors.js';
export * from './frames.js';
export * from './topic.js';
export * from './durable.js';
export {
  MAX_MEMBER_ID_LENGTH,
  SESSION_TIMEOUT_BOUNDS,
  type AssignedPartition,
  type AssignmentFrame,
  type GroupCommitFrame,
  type GroupCursor,
  type GroupHeartbeatFrame,
} from './groups.js';
export * from './partitioner.js';
export { FRAME_SCAN_LIMITS, PAYLOAD_SCAN_LIMITS, scanMsgpack, type ScanLimits } from './scan.js';
export { FIELD_LIMITS, validateBrokerFrame, validateClientFrame } from './validate.js';
export {
  decodeBrokerFrame,
  decodeClientFrame,
  decodePayload,
  decodeValue,
  encodeFrame,
  encodePayload,
  encodeValue,
} from './codec.js';
