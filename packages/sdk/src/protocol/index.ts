/**
 * The relaymq wire protocol: frames, codec, validation, topic grammar and
 * error codes. Imported by both the SDK and the broker; it imports nothing
 * else of either.
 *
 * Exported as `@relaymq/sdk/protocol` on purpose, for the broker and for
 * tools that speak the wire protocol themselves (a raw test client, load
 * generators: `test/support/raw-client.ts`, `bench/`); it is not the
 * application API, and the API reference leaves it out. Why it is exported
 * rather than bundled into the broker: `@relaymq/broker` imports it at run
 * time, so both packages share one codec and one {@link RelayError} class,
 * and an application that runs a broker and a client in one process gets
 * errors that pass `instanceof` on either side. Applications import
 * `@relaymq/sdk`, which exports `RelayError` and the error codes too. Its
 * frames change only with {@link PROTOCOL_VERSION}.
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
  decodeValueInPlace,
  encodeFrame,
  encodePayload,
  encodeValue,
} from './codec.js';
