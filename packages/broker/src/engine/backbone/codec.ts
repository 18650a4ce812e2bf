import type { Message, MessageOptions } from 'rabbitmq-stream-js-client/dist/publisher.js';
import type { Encoding } from '@relaymq/sdk/protocol';
import type { BatchMessage, StoredMessage } from '../../core/partition/partition.js';

/**
 * How a relaymq message travels in a partition stream: the data is the AMQP
 * body, the rest are string application properties (the client writes
 * numbers as 32-bit integers): `p` producer id and `s` seq (absent for ack
 * `none`), `t` the gateway's timestamp in ms, `e` the encoding unless raw,
 * `k` the key, `h` the headers as JSON. Stream offset 0 holds a header
 * message (`relaymq: partition`) so that no partition stream is ever empty;
 * relaymq offset = stream offset - 1.
 */
export const HEADER_PROPERTY = 'relaymq';

/** The options that carry `message`'s metadata. */
export function encodeMessage(message: BatchMessage, timestampMs: number, producer?: { id: string; seq: number }): MessageOptions {
  const props: Record<string, string> = { t: String(timestampMs) };
  if (producer !== undefined) {
    props.p = producer.id;
    props.s = String(producer.seq);
  }
  if (message.encoding !== undefined && message.encoding !== 'raw') props.e = message.encoding;
  if (message.key !== undefined) props.k = message.key;
  if (message.headers !== undefined) props.h = JSON.stringify(message.headers);
  return { applicationProperties: props };
}

/** The header message written at stream offset 0. */
export function headerOptions(): MessageOptions {
  return { applicationProperties: { [HEADER_PROPERTY]: 'partition' } };
}

/** A message read back: the stored message and its producer, or `undefined` for the header (or a foreign message without a timestamp). */
export function decodeMessage(message: Message, streamOffset: bigint): { stored: StoredMessage; producer?: { id: string; seq: number } } | undefined {
  const props = message.applicationProperties ?? {};
  if (props[HEADER_PROPERTY] !== undefined) return undefined;
  const stored: StoredMessage = {
    offset: Number(streamOffset) - 1,
    timestamp: Number(props.t ?? 0),
    data: new Uint8Array(message.content.buffer, message.content.byteOffset, message.content.byteLength),
    encoding: (typeof props.e === 'string' ? props.e : 'raw') as Encoding,
  };
  if (typeof props.k === 'string') stored.key = props.k;
  if (typeof props.h === 'string') stored.headers = JSON.parse(props.h) as Record<string, string>;
  const seq = Number(props.s);
  return typeof props.p === 'string' && Number.isInteger(seq) ? { stored, producer: { id: props.p, seq } } : { stored };
}
