/**
 * The publish timeline of a failover run, shared by relaymq's (bench/cluster.ts)
 * and JetStream's (bench/jetstream.ts): when each publish started and was
 * acknowledged, and the wait for the first ack of a publish started after a
 * moment (the kill).
 */

/** One publish of a failover run. */
export interface Sent {
  startedAt: number;
  ackedAt: number | undefined;
}

/** Publishes in the order they started; subclasses push to `sent` and call {@link acked}. */
export class AckTimeline<S extends Sent> {
  readonly sent: S[] = [];
  /** Woken on every ack. */
  private onAck: (() => void) | undefined;

  /** Marks `sent` acknowledged now. */
  protected acked(sent: S): void {
    sent.ackedAt = performance.now();
    this.onAck?.();
  }

  get acknowledged(): number {
    return this.sent.reduce((n, s) => n + (s.ackedAt === undefined ? 0 : 1), 0);
  }

  /** Resolves with the ack time of the first publish started at or after `since`. */
  firstAckStartedAfter(since: number, timeoutMs: number): Promise<number> {
    const find = (): number | undefined => {
      let best: number | undefined;
      for (let i = this.sent.length - 1; i >= 0; i--) {
        const s = this.sent[i] as S;
        if (s.startedAt < since) break;
        if (s.ackedAt !== undefined && (best === undefined || s.ackedAt < best)) best = s.ackedAt;
      }
      return best;
    };
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.onAck = undefined;
        reject(new Error(`no publish started after the kill was acknowledged within ${timeoutMs} ms`));
      }, timeoutMs);
      const check = (): void => {
        const found = find();
        if (found === undefined) return;
        clearTimeout(timer);
        this.onAck = undefined;
        resolve(found);
      };
      this.onAck = check;
      check();
    });
  }
}
