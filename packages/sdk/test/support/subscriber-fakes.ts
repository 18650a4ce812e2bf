/** Fakes the subscriber's unit tests share. */
import type { BrokerConnection } from '../../src/connection/connection.js';
import type { Cursor, DeliveryBatch } from '../../src/protocol/index.js';

/** A connection to broker `a` answering every subscribe at once, from `cursors`. */
export function answering(cursors: Cursor[]): BrokerConnection {
  return {
    open: true,
    brokerId: 'a',
    send: () => undefined,
    request: (frame: { subscription: number }, onReply?: (reply: unknown) => void) => {
      onReply?.({ type: 'subscribed', id: 1, subscription: frame.subscription, cursors });
      return Promise.resolve({ type: 'subscribed' });
    },
  } as unknown as BrokerConnection;
}

/** `count` messages of topic `t`, partition 0, from `firstOffset`. */
export const batch = (firstOffset: number, count: number): DeliveryBatch => ({
  topic: 't',
  partition: 0,
  firstOffset,
  messages: Array.from({ length: count }, (_, i) => ({ timestamp: i, data: Uint8Array.of(i) })),
});
