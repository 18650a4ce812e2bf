import { describe, expect, it } from 'vitest';
import { RelayError, type Cursor } from '../protocol/index.js';
import { PositionCommitter, type CommitPolicy, type CommitTimers } from './committer.js';

/** Timers that fire only when the test says so. */
class ManualTimers implements CommitTimers {
  private nextHandle = 1;
  readonly armed = new Map<number, { callback: () => void; ms: number }>();

  setTimeout(callback: () => void, ms: number): unknown {
    const handle = this.nextHandle++;
    this.armed.set(handle, { callback, ms });
    return handle;
  }

  clearTimeout(handle: unknown): void {
    this.armed.delete(handle as number);
  }

  /** Fires every armed timer once. */
  fire(): void {
    const due = [...this.armed.values()];
    this.armed.clear();
    for (const timer of due) timer.callback();
  }
}

/** A broker stand-in: records every commit and lets the test settle them one by one. */
class FakeBroker {
  readonly sent: Cursor[][] = [];
  private readonly waiting: Array<{ resolve: () => void; reject: (error: unknown) => void }> = [];

  send = (positions: Cursor[]): Promise<void> => {
    this.sent.push(positions);
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  };

  get inFlight(): number {
    return this.waiting.length;
  }

  async ack(): Promise<void> {
    this.waiting.shift()?.resolve();
    await settle();
  }

  async fail(error: RelayError): Promise<void> {
    this.waiting.shift()?.reject(error);
    await settle();
  }
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const at = (topic: string, partition: number, offset: number): Cursor => ({ topic, partition, offset });

function setup(policy: CommitPolicy): { committer: PositionCommitter; broker: FakeBroker; timers: ManualTimers; refused: RelayError[] } {
  const broker = new FakeBroker();
  const timers = new ManualTimers();
  const refused: RelayError[] = [];
  const committer = new PositionCommitter(policy, { send: broker.send, refused: (e) => refused.push(e) }, undefined, timers);
  return { committer, broker, timers, refused };
}

describe('PositionCommitter', () => {
  it('batches: many handled messages become one commit of the next offset per partition when the interval ends', async () => {
    const { committer, broker, timers } = setup({ intervalMs: 1000, maxMessages: 1000 });
    for (let offset = 0; offset < 50; offset++) committer.handled('orders', offset % 2, offset);
    expect(broker.sent).toEqual([]);
    expect([...timers.armed.values()].map((t) => t.ms)).toEqual([1000]);
    timers.fire();
    expect(broker.sent).toEqual([[at('orders', 0, 49), at('orders', 1, 50)]]);
    await broker.ack();
    expect(committer.counters).toEqual({ commits: 1, commitFailures: 0, commitsInFlight: 0 });
    expect(committer.busy).toBe(false);
  });

  it('commits at once after maxMessages handled messages', () => {
    const { committer, broker, timers } = setup({ intervalMs: 60_000, maxMessages: 10 });
    for (let offset = 0; offset < 9; offset++) committer.handled('t', 0, offset);
    expect(broker.sent).toHaveLength(0);
    committer.handled('t', 0, 9);
    expect(broker.sent).toEqual([[at('t', 0, 10)]]);
    expect(timers.armed.size).toBe(0);
  });

  it('keeps one commit in flight and coalesces everything handled meanwhile into one more', async () => {
    const { committer, broker } = setup({ intervalMs: 0, maxMessages: 1000 });
    committer.handled('t', 0, 0);
    for (let offset = 1; offset < 100; offset++) committer.handled('t', 0, offset);
    expect(broker.sent).toEqual([[at('t', 0, 1)]]);
    expect(broker.inFlight).toBe(1);
    expect(committer.counters.commitsInFlight).toBe(1);
    await broker.ack();
    expect(broker.sent).toEqual([[at('t', 0, 1)], [at('t', 0, 100)]]);
    expect(committer.counters.commitsInFlight).toBe(1); // the coalesced one, sent once the first was answered
    await broker.ack();
    expect(broker.sent).toHaveLength(2);
    expect(committer.counters.commitsInFlight).toBe(0);
  });

  it('retries a commit that failed on a lost connection, merged with what was handled since', async () => {
    const { committer, broker, timers } = setup({ intervalMs: 500, maxMessages: 1000 });
    committer.handled('t', 0, 4);
    committer.handled('u', 0, 1);
    timers.fire();
    committer.handled('t', 0, 5);
    await broker.fail(new RelayError('NOT_CONNECTED', 'gone'));
    expect(committer.counters.commitFailures).toBe(1);
    expect(committer.counters.commitsInFlight).toBe(0);
    expect(timers.armed.size).toBe(1);
    timers.fire();
    expect(broker.sent[1]).toEqual([at('t', 0, 6), at('u', 0, 2)]);
    await broker.ack();
    expect(committer.busy).toBe(false);
  });

  it('drops positions the broker refuses for good, and says so', async () => {
    const { committer, broker, timers, refused } = setup({ intervalMs: 500, maxMessages: 1000 });
    committer.handled('t', 0, 4);
    timers.fire();
    await broker.fail(new RelayError('LIMIT_EXCEEDED', 'full'));
    expect(refused.map((e) => e.code)).toEqual(['LIMIT_EXCEEDED']);
    expect(committer.busy).toBe(false);
    expect(timers.armed.size).toBe(0);
  });

  it('flush waits for the commit in flight and then sends the rest; close stops for good', async () => {
    const { committer, broker, timers } = setup({ intervalMs: 500, maxMessages: 1000 });
    committer.handled('t', 0, 0);
    timers.fire();
    committer.handled('t', 0, 1);
    let closed = false;
    const closing = committer.close().then(() => (closed = true));
    await settle();
    expect(closed).toBe(false);
    await broker.ack();
    expect(broker.sent).toEqual([[at('t', 0, 1)], [at('t', 0, 2)]]);
    expect(closed).toBe(false);
    await broker.ack();
    await closing;
    committer.handled('t', 0, 2);
    committer.advance([at('t', 0, 9)]);
    expect(timers.armed.size).toBe(0);
    expect(broker.sent).toHaveLength(2);
  });

  it('never lowers a pending position: advance with an older offset is ignored', () => {
    const { committer, broker, timers } = setup({ intervalMs: 500, maxMessages: 1000 });
    committer.handled('t', 0, 7);
    committer.advance([at('t', 0, 3), at('t', 1, 0)]);
    expect(broker.sent).toEqual([[at('t', 0, 8), at('t', 1, 0)]]);
    expect(timers.armed.size).toBe(0);
  });

  it("sends each position's incarnation; a later incarnation replaces an earlier one's position, never the reverse", async () => {
    const { committer, broker } = setup({ intervalMs: 0, maxMessages: 1 });
    committer.handled('t', 0, 9, 1);
    expect(broker.sent[0]).toEqual([{ topic: 't', partition: 0, offset: 10, incarnation: 1 }]);
    // Pending behind the one in flight: the old incarnation at 20, then the topic created again (offsets from 0).
    committer.handled('t', 0, 19, 1);
    committer.handled('t', 0, 2, 2);
    committer.handled('t', 0, 15, 1); // a late one of the deleted topic does not take its place back
    await broker.fail(new RelayError('NOT_READY', 'retry')); // the first is put back: still incarnation 2's position
    await settle();
    expect(broker.sent[1]).toEqual([{ topic: 't', partition: 0, offset: 3, incarnation: 2 }]);
    // Positions naming none move forward as before.
    committer.handled('u', 0, 4);
    await broker.ack();
    await settle();
    expect(broker.sent.at(-1)).toEqual([{ topic: 'u', partition: 0, offset: 5 }]);
  });

  it('a failed commit does not put back the position of a partition forgotten while it was in flight (the topic deleted)', async () => {
    const { committer, broker, timers } = setup({ intervalMs: 500, maxMessages: 1000 });
    // A wildcard subscription's topic first met in a message frame: no incarnation told.
    committer.handled('t', 0, 99);
    committer.handled('u', 0, 4);
    timers.fire();
    // In flight: `t` is deleted (forgotten) and created again; the new topic's messages are handled.
    committer.forget('t', 0);
    committer.handled('t', 0, 2);
    await broker.fail(new RelayError('NOT_CONNECTED', 'gone'));
    timers.fire();
    // The deleted topic's 100 would be stored as the new topic's position (stamped with its incarnation): a silent skip.
    expect(broker.sent[1]).toEqual([at('t', 0, 3), at('u', 0, 5)]);
    await broker.ack();

    // Named incarnations: the old one put back over the new topic's unnamed position would be refused, and that lost.
    committer.handled('v', 0, 49, 1);
    timers.fire();
    committer.forget('v', 0);
    committer.handled('v', 0, 0);
    await broker.fail(new RelayError('NOT_READY', 'retry'));
    timers.fire();
    expect(broker.sent[3]).toEqual([at('v', 0, 1)]);
  });

  it('forgetAll drops every pending position, and those of the commit in flight should it fail (their log is gone)', async () => {
    const { committer, broker, timers } = setup({ intervalMs: 500, maxMessages: 1000 });
    committer.handled('t', 0, 9);
    committer.handled('u', 0, 4);
    timers.fire();
    committer.handled('t', 0, 10);
    // The broker restarted with a new log: nothing of the old one, pending or in flight, is committed to it.
    committer.forgetAll();
    expect(committer.busy).toBe(true); // the commit in flight, until it settles
    await broker.fail(new RelayError('NOT_CONNECTED', 'gone'));
    timers.fire();
    expect(broker.sent).toEqual([[at('t', 0, 10), at('u', 0, 5)]]);
    expect(committer.busy).toBe(false);
    // Positions of the new log are committed as usual, and a later failure puts them back again.
    committer.handled('t', 0, 0);
    timers.fire();
    await broker.fail(new RelayError('NOT_CONNECTED', 'gone'));
    timers.fire();
    expect(broker.sent.at(-1)).toEqual([at('t', 0, 1)]);
    expect(broker.sent).toHaveLength(3);
  });
});
