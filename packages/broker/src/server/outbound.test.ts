import { describe, expect, it } from 'vitest';
import { encodeFrame } from '@relaymq/sdk/protocol';
import { Outbound, type OutboundLimits } from './outbound.js';
import type { ClientSocket } from './session-context.js';

/** A socket whose writes complete only when the test says so. */
class ManualSocket implements ClientSocket {
  readonly pending: Array<() => void> = [];
  send(_bytes: Uint8Array, onWritten: () => void): void {
    this.pending.push(onWritten);
  }
  close(): void {}
  terminate(): void {}
}

const pongBytes = encodeFrame({ type: 'pong', id: 1 }).length;

function outbound(limits: OutboundLimits): { socket: ManualSocket; out: Outbound; events: string[]; end: () => void } {
  const socket = new ManualSocket();
  const events: string[] = [];
  let ended = false;
  const out = new Outbound(socket, limits, {
    ended: () => ended,
    drained: () => events.push('drained'),
    slowConsumer: (why) => events.push(`slow: ${why}`),
  });
  return { socket, out, events, end: () => (ended = true) };
}

describe('Outbound', () => {
  it('counts bytes until they are written, and reports drained once they fall back below the high-water mark', () => {
    const { socket, out, events } = outbound({ outboundHighWaterBytes: 2 * pongBytes, maxOutboundBytes: 1 << 20, slowConsumerTimeoutMs: 3_600_000 });
    out.send({ type: 'pong', id: 1 });
    expect(out.bytes).toBe(pongBytes);
    expect(out.hasRoom()).toBe(true);
    out.send({ type: 'pong', id: 2 });
    expect(out.hasRoom()).toBe(false);
    socket.pending.shift()?.();
    expect(out.bytes).toBe(pongBytes);
    expect(out.hasRoom()).toBe(true);
    expect(events).toEqual(['drained']);
    socket.pending.shift()?.();
    expect(out.bytes).toBe(0);
    expect(events).toEqual(['drained']); // below the mark already: no second report
    out.stop();
  });

  it('names maxOutboundBytes instead of passing it, and sends nothing once the session ended', () => {
    const { socket, out, events, end } = outbound({ outboundHighWaterBytes: 1 << 20, maxOutboundBytes: pongBytes, slowConsumerTimeoutMs: 3_600_000 });
    out.send({ type: 'pong', id: 1 });
    out.send({ type: 'pong', id: 2 });
    expect(events).toEqual([`slow: more than ${pongBytes} bytes queued (maxOutboundBytes)`]);
    expect(socket.pending).toHaveLength(1);
    end();
    out.send({ type: 'pong', id: 3 });
    expect(socket.pending).toHaveLength(1);
    out.stop();
  });
});
