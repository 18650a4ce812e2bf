import { encodeFrame, type BrokerFrame } from '@relaymq/sdk/protocol';
import type { ResolvedBrokerOptions } from '../options.js';
import type { ClientSocket } from './session-context.js';

/** The outbound limits of one connection, from the broker options. */
export type OutboundLimits = Pick<ResolvedBrokerOptions, 'outboundHighWaterBytes' | 'maxOutboundBytes' | 'slowConsumerTimeoutMs'>;

/** What the outbound side tells the session it belongs to. */
export interface OutboundHooks {
  /** Whether the session ended: nothing goes out after that. */
  ended(): boolean;
  /** The unwritten bytes fell back below the high-water mark: delivery may go on. */
  drained(): void;
  /** The client does not read (`why` names the limit): the session must cut it off. */
  slowConsumer(why: string): void;
}

/**
 * Every frame a session sends goes through here, so the bytes handed to the
 * socket but not yet written are counted in one place. Backpressure: at
 * `outboundHighWaterBytes` delivery pauses (see `hasRoom`); a client whose
 * unwritten bytes would pass `maxOutboundBytes`, or stay at the high-water
 * mark for `slowConsumerTimeoutMs`, is a slow consumer.
 */
export class Outbound {
  private unwrittenBytes = 0;
  /** Fires when the unwritten bytes stayed at the high-water mark too long. */
  private slowConsumerTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly socket: ClientSocket,
    private readonly limits: OutboundLimits,
    private readonly hooks: OutboundHooks,
  ) {}

  /** Bytes handed to the socket and not yet written. */
  get bytes(): number {
    return this.unwrittenBytes;
  }

  /** Whether delivery may send more: the unwritten bytes are below the high-water mark. */
  hasRoom(): boolean {
    return this.unwrittenBytes < this.limits.outboundHighWaterBytes;
  }

  send(frame: BrokerFrame): void {
    if (this.hooks.ended()) return;
    this.sendEncoded(encodeFrame(frame));
  }

  /** Sends a frame already encoded (a delivery built from stored bytes). */
  sendEncoded(bytes: Uint8Array): void {
    if (this.hooks.ended()) return;
    const { outboundHighWaterBytes, maxOutboundBytes, slowConsumerTimeoutMs } = this.limits;
    if (this.unwrittenBytes + bytes.length > maxOutboundBytes) {
      this.hooks.slowConsumer(`more than ${maxOutboundBytes} bytes queued (maxOutboundBytes)`);
      return;
    }
    this.unwrittenBytes += bytes.length;
    if (this.unwrittenBytes >= outboundHighWaterBytes && this.slowConsumerTimer === undefined) {
      this.slowConsumerTimer = setTimeout(() => {
        this.hooks.slowConsumer(`the outbound queue stayed at ${outboundHighWaterBytes} bytes for ${slowConsumerTimeoutMs} ms (slowConsumerTimeoutMs)`);
      }, slowConsumerTimeoutMs);
    }
    this.socket.send(bytes, () => {
      const wasBlocked = this.unwrittenBytes >= outboundHighWaterBytes;
      this.unwrittenBytes -= bytes.length;
      if (wasBlocked && this.unwrittenBytes < outboundHighWaterBytes) {
        clearTimeout(this.slowConsumerTimer);
        this.slowConsumerTimer = undefined;
        this.hooks.drained();
      }
    });
  }

  /** The session ended: no slow-consumer verdict any more. */
  stop(): void {
    clearTimeout(this.slowConsumerTimer);
  }
}
