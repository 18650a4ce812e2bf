import { afterEach, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, decodeBrokerFrame, encodeFrame, type BrokerFrame, type ClientFrame } from '@relaymq/sdk/protocol';
import { MemoryEngine } from '../engine/memory.js';
import { resolveBrokerOptions, type BrokerOptions } from '../options.js';
import { newSecurityCounters } from '../security/counters.js';
import { Fanout } from './fanout.js';
import type { ClientSocket } from './session-context.js';
import { ClientSession } from './session.js';

/** A socket whose peer never reads: nothing written ever completes. */
class StuckSocket implements ClientSocket {
  readonly frames: BrokerFrame[] = [];
  closed: { code: number; reason: string } | undefined;
  terminated = false;
  send(bytes: Uint8Array): void {
    this.frames.push(decodeBrokerFrame(bytes, 64 * 1024 * 1024));
  }
  close(code: number, reason: string): void {
    this.closed = { code, reason };
  }
  terminate(): void {
    this.terminated = true;
  }
}

const sessions: ClientSession[] = [];
afterEach(() => {
  for (const s of sessions.splice(0)) s.ended();
});

function session(options: BrokerOptions): { socket: StuckSocket; session: ClientSession; counters: ReturnType<typeof newSecurityCounters> } {
  const resolved = resolveBrokerOptions(options);
  const counters = newSecurityCounters();
  const socket = new StuckSocket();
  const engine = new MemoryEngine({ ...resolved, now: Date.now });
  const s = new ClientSession(
    socket,
    {
      options: resolved,
      engine,
      fanout: new Fanout(engine),
      cluster: () => ({ brokers: [] }),
      now: Date.now,
      newId: () => 'id',
      draining: () => false,
      ready: () => true,
      authenticator: undefined,
      counters,
    },
    () => {},
  );
  sessions.push(s);
  const send = (frame: ClientFrame): void => s.receive(encodeFrame(frame));
  send({ type: 'hello', version: PROTOCOL_VERSION, clientId: 'c', producerId: 'p' });
  return { socket, session: s, counters };
}

describe('ClientSession outbound limit', () => {
  it('cuts a connection off with SLOW_CONSUMER once unsent bytes would exceed maxOutboundBytes', () => {
    const { socket, session: s, counters } = session({ outboundHighWaterBytes: 1024, maxPayload: 1024, maxOutboundBytes: 4096, slowConsumerTimeoutMs: 3_600_000 });
    expect(socket.frames[0]?.type).toBe('welcome');
    // Pings make the broker answer with pongs, which pile up on a peer that never reads.
    let pings = 0;
    while (socket.closed === undefined && pings < 10_000) s.receive(encodeFrame({ type: 'ping', id: ++pings }));
    expect(socket.closed).toEqual({ code: 1008, reason: 'SLOW_CONSUMER' });
    expect(counters.slowConsumersCut).toBe(1);
    const queued = socket.frames.reduce((sum, f) => sum + encodeFrame(f).length, 0);
    expect(queued).toBeLessThanOrEqual(4096);
    expect(pings).toBeGreaterThan(10);
  });

  it('cuts a connection off when its queue stays at the high-water mark for slowConsumerTimeoutMs', async () => {
    const { socket, session: s, counters } = session({ outboundHighWaterBytes: 1024, maxPayload: 1024, slowConsumerTimeoutMs: 50 });
    for (let i = 1; i <= 100; i++) s.receive(encodeFrame({ type: 'ping', id: i })); // > 1024 bytes of pongs, none written
    expect(socket.closed).toBeUndefined();
    const deadline = Date.now() + 2000;
    while (socket.closed === undefined && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(socket.closed?.reason).toBe('SLOW_CONSUMER');
    expect(counters.slowConsumersCut).toBe(1);
  });
});
