import { encodeFrame } from '@relaymq/sdk/protocol';
import type { EncodedMessages } from '../core/partition/partition.js';

/** msgpack: an empty fixarray, the last byte of the envelope (`messages: []`). */
const EMPTY_ARRAY = 0x90;

/**
 * The `message` frame delivering `messages` (one dense batch of one
 * partition) to `subscription`, with the messages' bytes as they were read
 * (issue 12, "encode once"): the envelope is encoded by the pinned codec with
 * an empty `messages` array, whose header (the envelope's last byte, since
 * `messages` is the last field of the last batch) is then replaced by one
 * for `messages.count` elements, followed by their bytes. Decodes as the
 * frame `encodeFrame` would give for the same messages as objects.
 */
export function encodeMessageFrame(subscription: number, topic: string, partition: number, messages: EncodedMessages, incarnation?: number): Uint8Array {
  // `incarnation` (the topic's, told once: see DeliveryBatch) goes before `messages`, which must stay last.
  const batch = incarnation === undefined
    ? { topic, partition, firstOffset: messages.firstOffset, messages: [] }
    : { topic, partition, firstOffset: messages.firstOffset, incarnation, messages: [] };
  const envelope = encodeFrame({ type: 'message', subscription, batches: [batch] });
  const head = envelope.length - 1;
  if (envelope[head] !== EMPTY_ARRAY) throw new Error('a message frame does not end with its messages array');
  const { count } = messages;
  const header = count < 16 ? 1 : count < 0x10000 ? 3 : 5;
  const out = Buffer.allocUnsafe(head + header + messages.bytes.length);
  out.set(envelope.subarray(0, head), 0);
  if (count < 16) out[head] = EMPTY_ARRAY | count;
  else if (count < 0x10000) {
    out[head] = 0xdc;
    out.writeUInt16BE(count, head + 1);
  } else {
    out[head] = 0xdd;
    out.writeUInt32BE(count, head + 1);
  }
  out.set(messages.bytes, head + header);
  return out;
}
