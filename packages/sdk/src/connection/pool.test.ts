import { getEventListeners } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RelayClient } from '../client.js';
import type { WebSocketConstructor, WebSocketLike } from '../transport/websocket.js';
import { PROTOCOL_VERSION, decodeClientFrame, encodeFrame, partitionForKey, type BrokerFrame, type ClusterView } from '../protocol/index.js';

/** A WebSocket whose every dial fails right away, recording the URLs dialed. */
function failingWebSocket(dialed: string[]): WebSocketConstructor {
  return class implements WebSocketLike {
    binaryType = 'arraybuffer';
    readyState = 3;
    bufferedAmount = 0;
    onopen: WebSocketLike['onopen'] = null;
    onmessage: WebSocketLike['onmessage'] = null;
    onclose: WebSocketLike['onclose'] = null;
    onerror: WebSocketLike['onerror'] = null;
    constructor(url: string) {
      dialed.push(url);
      queueMicrotask(() => this.onerror?.({}));
    }
    send(): void {}
    close(): void {}
  };
}

/** Times (on the fake clock) at which dials started. */
async function dialTimes(options: { jitter: boolean; spanMs: number }): Promise<{ times: number[]; dialed: string[] }> {
  const dialed: string[] = [];
  const times: number[] = [];
  const client = new RelayClient({
    brokers: ['ws://broker-a.invalid:7401', 'ws://broker-b.invalid:7402'],
    WebSocket: failingWebSocket(dialed),
    poolSize: 1,
    connectTimeoutMs: 10 * options.spanMs,
    reconnect: { initialDelayMs: 100, factor: 2, maxDelayMs: 1000, jitter: options.jitter },
  });
  client.on('connecting', () => times.push(Date.now()));
  void client.start().catch(() => {});
  await vi.advanceTimersByTimeAsync(options.spanMs);
  await client.close();
  return { times, dialed };
}

const gaps = (times: number[]): number[] => times.slice(1).map((t, i) => t - (times[i] as number));

/** A client seeded with the first of `brokers`, one connection of its own: every other link is a leader link. */
const seededWithFirst = (brokers: FakeBroker[]): RelayClient =>
  new RelayClient({
    brokers: [(brokers[0] as FakeBroker).url],
    WebSocket: protocolWebSocket(brokers),
    poolSize: 1,
    connectTimeoutMs: 2000,
    closeTimeoutMs: 100,
    reconnect: { initialDelayMs: 5, maxDelayMs: 20, jitter: false },
  });

describe('reconnect backoff (fake clock)', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

  it('grows exponentially from initialDelayMs and is capped at maxDelayMs', async () => {
    const { times } = await dialTimes({ jitter: false, spanMs: 6000 });
    expect(gaps(times).slice(0, 8)).toEqual([100, 200, 400, 800, 1000, 1000, 1000, 1000]);
  });

  it('randomizes each delay within [1x, 2x) of the exponential step, still capped', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const { times } = await dialTimes({ jitter: true, spanMs: 6000 });
    expect(gaps(times).slice(0, 6)).toEqual([150, 300, 600, 1000, 1000, 1000]);
  });

  it('dials with a new socket every attempt (so DNS is resolved again) and alternates brokers', async () => {
    const { times, dialed } = await dialTimes({ jitter: false, spanMs: 2000 });
    expect(dialed.length).toBe(times.length);
    expect(new Set(dialed)).toEqual(new Set(['ws://broker-a.invalid:7401', 'ws://broker-b.invalid:7402']));
    // The broker that failed longest ago is tried next: never the same one twice in a row.
    for (let i = 1; i < dialed.length; i++) expect(dialed[i]).not.toBe(dialed[i - 1]);
  });

  it('gives up after maxAttempts and says so with a closed event', async () => {
    const dialed: string[] = [];
    const client = new RelayClient({
      brokers: ['ws://broker-a.invalid:7401'],
      WebSocket: failingWebSocket(dialed),
      connectTimeoutMs: 60_000,
      reconnect: { initialDelayMs: 10, maxDelayMs: 10, maxAttempts: 3, jitter: false },
    });
    const closed = new Promise<{ reason: { code: string } }>((resolve) => client.once('closed', resolve));
    const started = client.start().catch((err: unknown) => err);
    await vi.advanceTimersByTimeAsync(1000);
    expect(dialed).toHaveLength(3);
    expect((await closed).reason.code).toBe('NOT_CONNECTED');
    expect(await started).toMatchObject({ code: 'NOT_CONNECTED' });
  });
});

/** A broker as the protocol-speaking WebSocket double plays it. */
interface FakeBroker {
  id: string;
  url: string;
  ready: boolean;
  /** Client URLs of the brokers in its member list. */
  members: string[];
  /** While false, dials fail. */
  reachable: boolean;
  /** While true, pings go unanswered (a paused process: TCP up, nothing said). */
  silent?: boolean;
  /** Open sockets to it, for pushing frames. */
  sockets: Array<{ push(frame: BrokerFrame): void }>;
  /** Refuses every publish so, naming `leader` (a broker cut off from a partition's leader by a split), or the one `leaders` names for its partition. */
  refuse?: { code: string; leader?: string; leaders?: readonly string[] };
  /** Partitions of every topic, as its metadata answers say (absent: 1). */
  partitions?: number;
  /** Each partition's leader, as its metadata answers say (absent: none named). */
  leaders?: string[];
  /** Publishes it acknowledged. */
  acked?: number;
  /** A slow link: pongs and acks reach the client this much later. */
  delay?: { pongMs: number; ackMs: number };
  /** How it answers group heartbeats (absent: acknowledged at once): refused with `code` after `delayMs`, or never (no `code`). */
  groupHeartbeat?: { code?: string; delayMs?: number };
  /** Subscribes are answered this much later (absent: at once). */
  subscribeDelayMs?: number;
  /** Durable subscribes are refused with this code (a broker whose metadata stays behind: `NOT_READY`). */
  refuseDurable?: string;
  /** Durable subscribes it was sent. */
  durableSubscribes?: number;
}

const view = (broker: FakeBroker, all: FakeBroker[]): ClusterView => ({
  brokers: broker.members.map((url) => ({ id: all.find((b) => b.url === url)?.id ?? url, url, state: 'alive' as const })),
});

/** A WebSocket that reaches the fake brokers: answers hello with a welcome (with `ready`), pings with pongs. */
function protocolWebSocket(brokers: FakeBroker[]): WebSocketConstructor {
  return class implements WebSocketLike {
    binaryType = 'arraybuffer';
    readyState = 0;
    bufferedAmount = 0;
    onopen: WebSocketLike['onopen'] = null;
    onmessage: WebSocketLike['onmessage'] = null;
    onclose: WebSocketLike['onclose'] = null;
    onerror: WebSocketLike['onerror'] = null;
    private readonly broker: FakeBroker | undefined;
    constructor(url: string) {
      this.broker = brokers.find((b) => b.url === url);
      const broker = this.broker;
      queueMicrotask(() => {
        if (broker === undefined || !broker.reachable) {
          this.onerror?.({});
          return;
        }
        this.readyState = 1;
        broker.sockets.push({ push: (frame) => this.push(frame) });
        this.onopen?.({});
      });
    }
    private push(frame: BrokerFrame): void {
      if (this.readyState === 1) this.onmessage?.({ data: encodeFrame(frame) });
    }
    private pushAfter(delayMs: number | undefined, frame: BrokerFrame): void {
      if (delayMs === undefined) this.push(frame);
      else setTimeout(() => this.push(frame), delayMs);
    }
    send(bytes: Uint8Array): void {
      const broker = this.broker as FakeBroker;
      const frame = decodeClientFrame(bytes, 1024 * 1024);
      if (frame.type === 'hello') {
        if (broker.silent === true) return; // a paused process accepts the connection but never answers the handshake
        this.push({
          type: 'welcome',
          version: PROTOCOL_VERSION,
          brokerId: broker.id,
          clientId: 'c',
          producerId: 'p',
          cluster: view(broker, brokers),
          ready: broker.ready,
          limits: { maxPayload: 1024 * 1024, dedupeWindow: 1000, maxCredit: 1000 },
          heartbeatMs: 60_000,
        });
      } else if (frame.type === 'ping') {
        if (broker.silent !== true) this.pushAfter(broker.delay?.pongMs, { type: 'pong', id: frame.id });
      } else if (broker.silent === true) {
        // a paused process answers nothing
      } else if (frame.type === 'metadata') {
        const leaders = broker.leaders === undefined ? {} : { leaders: broker.leaders };
        this.push({ type: 'topics', id: frame.id, topics: frame.topics.map((topic) => ({ topic, partitions: broker.partitions ?? 1, ...leaders })) });
      } else if (frame.type === 'subscribe' && frame.durable !== undefined && (broker.durableSubscribes = (broker.durableSubscribes ?? 0) + 1) > 0 && broker.refuseDurable !== undefined) {
        this.push({ type: 'error', id: frame.id, code: broker.refuseDurable, message: 'refused' });
      } else if (frame.type === 'subscribe') {
        this.pushAfter(broker.subscribeDelayMs, { type: 'subscribed', id: frame.id, subscription: frame.subscription, cursors: [{ topic: frame.pattern, partition: 0, offset: 0 }] });
      } else if (frame.type === 'group-heartbeat') {
        const answer = broker.groupHeartbeat;
        if (answer === undefined) this.push({ type: 'committed', id: frame.id });
        else if (answer.code !== undefined) this.pushAfter(answer.delayMs, { type: 'error', id: frame.id, code: answer.code, message: 'refused' });
      } else if (frame.type === 'commit') {
        this.push({ type: 'committed', id: frame.id });
      } else if (frame.type === 'group-commit') {
        this.push({ type: 'committed', id: frame.id });
      } else if (frame.type === 'unsubscribe') {
        if (frame.id !== 0) this.push({ type: 'unsubscribed', id: frame.id, subscription: frame.subscription });
      } else if (frame.type === 'publish' && broker.refuse !== undefined) {
        const { code, leader: named, leaders } = broker.refuse;
        for (const batch of frame.batches) {
          const leader = leaders?.[batch.partition] ?? named;
          batch.messages.forEach((_, i) => this.push({ type: 'nack', id: batch.firstId + i, code, message: 'refused', ...(leader === undefined ? {} : { leader }) }));
        }
      } else if (frame.type === 'publish') {
        broker.acked = (broker.acked ?? 0) + frame.batches.reduce((n, b) => n + b.messages.length, 0);
        this.pushAfter(broker.delay?.ackMs, { type: 'ack', acks: frame.batches.map((batch) => ({ id: batch.firstId, offset: batch.firstSeq, count: batch.messages.length, duplicate: false })) });
      }
    }
    close(): void {
      if (this.readyState === 3) return;
      this.readyState = 3;
      queueMicrotask(() => this.onclose?.({ code: 1000, reason: 'bye' }));
    }
  };
}

function fakeBrokers(specs: Array<Partial<FakeBroker> & { id: string }>): FakeBroker[] {
  const urls = specs.map((s) => `ws://${s.id}.invalid:7400`);
  return specs.map((s, i) => ({ url: urls[i] as string, ready: true, members: urls, reachable: true, sockets: [], ...s }));
}

describe('readiness (fake brokers)', () => {
  const clients: RelayClient[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });
  const client = (brokers: FakeBroker[], seeds: string[]): RelayClient => {
    const c = new RelayClient({
      brokers: seeds,
      WebSocket: protocolWebSocket(brokers),
      poolSize: 2,
      connectTimeoutMs: 2000,
      closeTimeoutMs: 100,
      reconnect: { initialDelayMs: 5, maxDelayMs: 20, jitter: false },
    });
    clients.push(c);
    return c;
  };

  it('dials the broker a NO_QUORUM refusal names, one slot beyond poolSize, and publishes there without failing over', async () => {
    const brokers = fakeBrokers([{ id: 'a' }, { id: 'b' }, { id: 'c' }, { id: 'd' }]);
    const [a, b, c, d] = brokers as [FakeBroker, FakeBroker, FakeBroker, FakeBroker];
    // a and b are on the side of a split without the partition's leader; they name d, across it.
    a.refuse = { code: 'NO_QUORUM', leader: 'd' };
    b.refuse = { code: 'NO_QUORUM', leader: 'd' };
    c.reachable = false;
    d.reachable = false; // not dialed before it is needed
    const client_ = client(brokers, [a.url, b.url]);
    await client_.start();
    await vi.waitFor(() => expect(client_.stats().connectedBrokers).toHaveLength(2), { timeout: 2000 });
    d.reachable = true;
    const failovers: string[] = [];
    client_.on('failover', ({ reason }) => failovers.push(reason.code));
    const receipt = await client_.publish('t', 'across the split', { timeoutMs: 3000 });
    expect(receipt.offset).toBe(0);
    expect(d.acked).toBe(1);
    expect(failovers).toEqual([]);
    expect(client_.stats().connectedBrokers.map((x) => x.id).sort()).toEqual(['a', 'b', 'd']);
  });

  // Chaos 5/3 seed 361: a split put partitions' quorums behind brokers the client had not pooled; with two slots
  // beyond poolSize (and one standby moved per second) a broker named was refused a connection, its partition went back
  // through the brokers that had refused it, used up its hints and failed the client over twice (a 4.05 s wait).
  it('dials every broker that refusals name across a split, four beyond poolSize, and publishes there without failing over', async () => {
    const brokers = fakeBrokers([{ id: 'a' }, { id: 'b' }, { id: 'c' }, { id: 'd' }, { id: 'e' }, { id: 'f' }]);
    const [a, b, ...across] = brokers as [FakeBroker, FakeBroker, ...FakeBroker[]];
    for (const broker of brokers) broker.partitions = 4;
    // a and b cannot reach any of the four partitions' leaders: each is on the far side, behind its own broker.
    a.refuse = { code: 'NO_QUORUM', leaders: ['c', 'd', 'e', 'f'] };
    b.refuse = { code: 'NO_QUORUM', leaders: ['c', 'd', 'e', 'f'] };
    for (const broker of across) broker.reachable = false; // not dialed before they are needed
    const client_ = client(brokers, [a.url, b.url]);
    await client_.start();
    await vi.waitFor(() => expect(client_.stats().connectedBrokers).toHaveLength(2), { timeout: 2000 });
    for (const broker of across) broker.reachable = true;
    const failovers: string[] = [];
    client_.on('failover', ({ reason }) => failovers.push(reason.code));
    // Keyless: round robin, one message to each partition.
    const receipts = await Promise.all([0, 1, 2, 3].map((n) => client_.publish('t', `across ${n}`, { timeoutMs: 3000 })));
    expect(receipts.map((r) => r.partition).sort()).toEqual([0, 1, 2, 3]);
    expect(across.map((broker) => broker.acked)).toEqual([1, 1, 1, 1]);
    expect(failovers).toEqual([]);
    expect(client_.stats().connectedBrokers.map((x) => x.id).sort()).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
  });

  it('keeps a link to the leader of every partition it publishes to, beyond poolSize, one per broker, and publishes there directly', async () => {
    const brokers = fakeBrokers([{ id: 'a' }, { id: 'b' }, { id: 'c' }, { id: 'd' }, { id: 'e' }, { id: 'f' }]);
    for (const broker of brokers) {
      broker.partitions = 4;
      broker.leaders = ['c', 'd', 'e', 'f'];
    }
    const [a] = brokers as [FakeBroker];
    const client_ = client(brokers, [a.url]);
    await client_.start();
    // Keyless: round robin, one message to each partition. The first may go through the active broker meanwhile.
    await Promise.all([0, 1, 2, 3].map((n) => client_.publish('t', `warm ${n}`, { timeoutMs: 3000 })));
    await vi.waitFor(() => expect(client_.stats().connectedBrokers.map((x) => x.id)).toEqual(expect.arrayContaining(['c', 'd', 'e', 'f'])), { timeout: 2000 });
    const acked = brokers.map((broker) => broker.acked ?? 0);
    const receipts = await Promise.all([0, 1, 2, 3].map((n) => client_.publish('t', `direct ${n}`, { timeoutMs: 3000 })));
    expect(receipts.map((r) => r.partition).sort()).toEqual([0, 1, 2, 3]);
    // Each partition straight to its leader; nothing through the active broker (a) or its standby.
    expect(brokers.map((broker, i) => (broker.acked ?? 0) - (acked[i] as number))).toEqual([0, 0, 1, 1, 1, 1]);
    const pooled = client_.stats().connectedBrokers.map((x) => x.id);
    expect(new Set(pooled).size).toBe(pooled.length);
    // Beyond poolSize (2): the active broker and the four leaders (the standby slot may have found one of them, or b).
    expect(pooled.length).toBeGreaterThanOrEqual(5);
    expect(pooled).toEqual(expect.arrayContaining(['a', 'c', 'd', 'e', 'f']));
    expect(client_.stats().activeBroker?.id).toBe('a');
  });

  it('moves off an active broker that is not ready once a ready one is pooled (reason NOT_READY)', async () => {
    const [n, a] = fakeBrokers([{ id: 'n', ready: false }, { id: 'a', reachable: false }]) as [FakeBroker, FakeBroker];
    n.members = [n.url];
    const c = client([n, a], [n.url, a.url]);
    await c.start();
    expect(c.stats().activeBroker?.id).toBe('n');
    const failover = new Promise<{ to: { id: string }; reason: { code: string } }>((resolve) => c.once('failover', resolve));
    a.reachable = true;
    const moved = await Promise.race([failover, new Promise<undefined>((resolve) => setTimeout(resolve, 2000))]);
    expect(moved).toMatchObject({ to: { id: 'a' }, reason: { code: 'NOT_READY' } });
    expect(c.stats().activeBroker?.id).toBe('a');
  });

  it('moves off when the active broker says, in a cluster frame, that it is no longer ready', async () => {
    const [a, b] = fakeBrokers([{ id: 'a' }, { id: 'b' }]) as [FakeBroker, FakeBroker];
    const c = client([a, b], [a.url, b.url]);
    await c.start();
    const deadline = Date.now() + 2000;
    while (c.stats().connectedBrokers.length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    const active = c.stats().activeBroker?.id === 'a' ? a : b;
    const failover = new Promise<{ to: { id: string }; reason: { code: string } }>((resolve) => c.once('failover', resolve));
    for (const socket of active.sockets) socket.push({ type: 'cluster', cluster: view(active, [a, b]), ready: false });
    const moved = await Promise.race([failover, new Promise<undefined>((resolve) => setTimeout(resolve, 2000))]);
    expect(moved).toMatchObject({ to: { id: active === a ? 'b' : 'a' }, reason: { code: 'NOT_READY' } });
  });

  it('takes additions but no removals from a broker that is not ready; a ready one removes', async () => {
    // b and x are only known (unreachable), so the second slot ends up on n.
    const [a, b, x, n] = fakeBrokers([{ id: 'a' }, { id: 'b', reachable: false }, { id: 'x', reachable: false }, { id: 'n', ready: false }]) as [
      FakeBroker,
      FakeBroker,
      FakeBroker,
      FakeBroker,
    ];
    n.members = [n.url];
    const c = client([a, b, x, n], [a.url, n.url]);
    await c.start();
    const deadline = Date.now() + 2000;
    while (c.stats().connectedBrokers.length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(c.stats().connectedBrokers.map((r) => r.id).sort()).toEqual(['a', 'n']);
    const removed: string[] = [];
    c.on('brokers', (event) => removed.push(...event.removed));
    for (const socket of n.sockets) socket.push({ type: 'cluster', cluster: view(n, [a, b, x, n]), ready: false });
    expect(removed).toEqual([]);
    expect(c.stats().knownBrokers).toEqual(expect.arrayContaining([b.url, x.url]));
    a.members = [a.url, b.url, n.url];
    for (const socket of a.sockets) socket.push({ type: 'cluster', cluster: view(a, [a, b, x, n]) });
    expect(removed).toEqual([x.url]);
  });
});

describe('a durable subscribe a broker keeps refusing (fake brokers)', () => {
  it('goes, alone, to a ready standby after two NOT_READY refusals: not one that is not ready, and the active broker stays', async () => {
    const [a, n, b] = fakeBrokers([{ id: 'a', refuseDurable: 'NOT_READY' }, { id: 'n', ready: false }, { id: 'b' }]) as [FakeBroker, FakeBroker, FakeBroker];
    const c = new RelayClient({
      brokers: [a.url],
      WebSocket: protocolWebSocket([a, n, b]),
      poolSize: 3,
      connectTimeoutMs: 2000,
      closeTimeoutMs: 100,
      reconnect: { initialDelayMs: 5, maxDelayMs: 20, jitter: false },
    });
    try {
      await c.start();
      const deadline = Date.now() + 2000;
      while (c.stats().connectedBrokers.length < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      expect(c.stats().connectedBrokers.map((x) => x.id).sort()).toEqual(['a', 'b', 'n']);
      await c.subscribe('t', () => undefined, { durable: 'd' });
      expect(c.stats().subscribe.servedBy[0]?.broker).toBe('b');
      expect([a.durableSubscribes, n.durableSubscribes, b.durableSubscribes]).toEqual([2, undefined, 1]);
      expect(c.stats().activeBroker?.id).toBe('a');
      expect(c.stats().failovers).toBe(0);
    } finally {
      await c.close();
    }
  });
});

describe('placement on a leader that is not ready (fake brokers)', () => {
  it('does not move a subscription to its topic\'s leader while that broker says it cannot serve', async () => {
    const [a, b] = fakeBrokers([{ id: 'a', leaders: ['b'] }, { id: 'b', ready: false, leaders: ['b'] }]) as [FakeBroker, FakeBroker];
    const c = new RelayClient({
      brokers: [a.url],
      WebSocket: protocolWebSocket([a, b]),
      poolSize: 2,
      connectTimeoutMs: 2000,
      closeTimeoutMs: 100,
      reconnect: { initialDelayMs: 5, maxDelayMs: 20, jitter: false },
    });
    try {
      await c.start();
      const deadline = Date.now() + 2000;
      while (c.stats().connectedBrokers.length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      expect(c.stats().connectedBrokers.map((x) => x.id).sort()).toEqual(['a', 'b']);
      await c.subscribe('t', () => undefined);
      // The lookup (sent as the subscribe resolves) is answered by the fake at once: give it a few turns to act on.
      for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 5));
      // Before the fix: moved to b, a broker that said it cannot serve (a real one refuses, e.g. NOT_READY).
      expect(c.stats().subscribe.servedBy[0]?.broker).toBe('a');
      expect(c.stats().subscribe.leaderMoves).toBe(0);
    } finally {
      await c.close();
    }
  });
});

describe('leader links (fake brokers, fake clock)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('closes the link to a broker that led no partition in use for 30 s, and keeps the one in use', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const brokers = fakeBrokers([{ id: 'a' }, { id: 'b' }, { id: 'c' }, { id: 'd' }, { id: 'e' }, { id: 'f' }]);
    for (const broker of brokers) {
      broker.partitions = 4;
      broker.leaders = ['c', 'd', 'e', 'f'];
    }
    const c = seededWithFirst(brokers);
    try {
      await c.start();
      const publish = (options: { key?: string } = {}): Promise<unknown> => c.publish('t', 'x', { ...options, timeoutMs: 3000 });
      const all = Promise.all([0, 1, 2, 3].map(() => publish())); // round robin: every partition
      await vi.advanceTimersByTimeAsync(100);
      await all;
      const linked = async (): Promise<string[]> => {
        await vi.advanceTimersByTimeAsync(50);
        return c.stats().connectedBrokers.map((x) => x.id).sort();
      };
      await publish(); // the links are open by now: one more round goes direct
      expect(await linked()).toEqual(['a', 'c', 'd', 'e', 'f']);
      // Only partition 0 (led by c) in use from now on, for 40 s.
      const key = Array.from({ length: 100 }, (_, i) => `k${i}`).find((k) => partitionForKey(k, 4) === 0) as string;
      for (let second = 0; second < 40; second++) {
        const sent = publish({ key });
        await vi.advanceTimersByTimeAsync(1000);
        await sent;
      }
      expect(await linked()).toEqual(['a', 'c']);
    } finally {
      await c.close();
    }
  });
  it('closes the link a subscription was served by 30 s after it was unsubscribed, with nothing else asking for a leader', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const brokers = fakeBrokers([{ id: 'a' }, { id: 'b' }]);
    for (const broker of brokers) broker.leaders = ['b'];
    const c = seededWithFirst(brokers);
    try {
      await c.start();
      const subscribed = c.subscribe('t', () => undefined);
      await vi.advanceTimersByTimeAsync(100);
      const subscription = await subscribed;
      expect(c.stats().subscribe.servedBy).toEqual([{ subscription: subscription.id, pattern: 't', broker: 'b' }]);
      expect(c.stats().connectedBrokers.map((x) => x.id).sort()).toEqual(['a', 'b']);
      const unsubscribed = subscription.unsubscribe();
      await vi.advanceTimersByTimeAsync(100);
      await unsubscribed;
      await vi.advanceTimersByTimeAsync(40_000);
      expect(c.stats().connectedBrokers.map((x) => x.id)).toEqual(['a']);
    } finally {
      await c.close();
      vi.useRealTimers();
    }
  });

  it('redials an unreachable leader with backoff, with no listener left behind per failed dial', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const brokers = fakeBrokers([{ id: 'a' }, { id: 'c' }]);
    for (const broker of brokers) {
      broker.partitions = 1;
      broker.leaders = ['c'];
    }
    const [a, c] = brokers as [FakeBroker, FakeBroker];
    c.reachable = false; // the leader: its link is redialed while its partition is in use
    const client_ = new RelayClient({ brokers: [a.url], WebSocket: protocolWebSocket(brokers), poolSize: 1, connectTimeoutMs: 2000, closeTimeoutMs: 100, reconnect: { initialDelayMs: 5, maxDelayMs: 20, jitter: false } });
    const dials: string[] = [];
    client_.on('reconnecting', (info) => void dials.push(String(info.url)));
    const abort = (client_ as unknown as { pool: { abort: AbortController } }).pool.abort.signal;
    try {
      await client_.start();
      for (let second = 0; second < 5; second++) {
        const sent = client_.publish('t', 'x', { timeoutMs: 3000 });
        await vi.advanceTimersByTimeAsync(1000);
        await sent;
      }
      expect(dials.filter((url) => url === c.url).length).toBeGreaterThan(20);
      // Before: each failed dial's backoff wait left an abort listener on the pool's signal (MaxListenersExceededWarning).
      expect(getEventListeners(abort, 'abort').length).toBeLessThanOrEqual(2);
    } finally {
      await client_.close();
    }
  });
});

describe('group heartbeats that fail (fake brokers, fake clock)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** A started client of `brokers` seeded with the first, with a member (3 s session) in each of `groups`, joined 100 ms apart. */
  async function memberClient(brokers: FakeBroker[], groups: string[], poolSize = 2): Promise<RelayClient> {
    const c = new RelayClient({
      brokers: [(brokers[0] as FakeBroker).url],
      WebSocket: protocolWebSocket(brokers),
      poolSize,
      connectTimeoutMs: 2000,
      closeTimeoutMs: 100,
      reconnect: { initialDelayMs: 5, maxDelayMs: 20, jitter: false },
    });
    await c.start();
    for (let i = 0; i < 100 && c.stats().connectedBrokers.length < Math.min(poolSize, brokers.length); i++) await vi.advanceTimersByTimeAsync(10);
    for (const group of groups) {
      const subscribed = c.subscribe('t', () => undefined, { group, sessionTimeoutMs: 3000 });
      await vi.advanceTimersByTimeAsync(100);
      await subscribed;
    }
    return c;
  }

  it('never closes and redials the only broker a client knows, whether its heartbeats are refused or go unanswered', async () => {
    for (const answer of [{ code: 'NO_QUORUM' }, { code: 'NOT_LEADER', delayMs: 300 }, {}]) {
      vi.useFakeTimers({ now: 1_000_000 });
      const brokers = fakeBrokers([{ id: 'a', groupHeartbeat: answer }]);
      const dials: string[] = [];
      const c = await memberClient(brokers, ['g']);
      c.on('connecting', ({ url }) => dials.push(url));
      try {
        // Ten seconds: every heartbeat fails, the session expires (the member would be FENCED), and nowhere else to go.
        await vi.advanceTimersByTimeAsync(10_000);
        expect(dials, JSON.stringify(answer)).toEqual([]);
        expect(c.stats().connectedBrokers.map((x) => x.id)).toEqual(['a']);
      } finally {
        await c.close();
        vi.useRealTimers();
      }
    }
  });

  it('moves a client once for all its members whose heartbeats fail together, not once per member', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    // a, cut off from the coordinator, refuses group heartbeats after 300 ms (a proposal that timed out there).
    // The others answer joins after 20 ms, as a metadata proposal takes a while.
    const brokers = fakeBrokers([{ id: 'a', groupHeartbeat: { code: 'NO_QUORUM', delayMs: 300 } }, { id: 'b', subscribeDelayMs: 20 }, { id: 'c', subscribeDelayMs: 20 }]);
    // Three connections: when g1's move closes a, c is still open for another move.
    const c = await memberClient(brokers, ['g1', 'g2'], 3);
    // Every active connection left: a failover to a standby, or a disconnection when none was left.
    const left: string[] = [];
    c.on('failover', ({ from }) => left.push(from.id));
    c.on('disconnected', ({ broker }) => left.push(broker.id));
    try {
      expect(c.stats().connectedBrokers.map((x) => x.id).sort()).toEqual(['a', 'b', 'c']);
      // g2's heartbeats to a are in flight when g1's move closes that connection, and fail with it: no second move.
      await vi.advanceTimersByTimeAsync(10_000);
      expect(left).toEqual(['a']);
    } finally {
      await c.close();
    }
  });

  it('does not move a member onto a standby whose pings went unanswered (maybe stopped) for heartbeats failing on the active one', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const brokers = fakeBrokers([{ id: 'a', groupHeartbeat: {} }, { id: 'b' }]);
    const c = await memberClient(brokers, ['g']);
    const moves: string[] = [];
    c.on('failover', ({ from, to }) => moves.push(`${from.id}->${to.id}`));
    try {
      expect(c.stats().connectedBrokers.map((x) => x.id).sort()).toEqual(['a', 'b']);
      // b stops answering anything (stopped, its socket still open) shortly before a's second heartbeat fails.
      await vi.advanceTimersByTimeAsync(1250);
      (brokers[1] as FakeBroker).silent = true;
      // Probed once a's heartbeat is owed (b silent 500 ms), overdue 250 ms later, judged dead 1 s after the probe: the
      // move would come (~2.1 s) while b is overdue. Before the fix: a->b, onto a broker about to be judged dead.
      for (let i = 0; i < 20 && moves.length === 0; i++) await vi.advanceTimersByTimeAsync(50);
      expect(moves).toEqual([]);
    } finally {
      await c.close();
    }
  });

  it('closes cleanly when closed from within the move (the failover event): no further move, no error, no timer left', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const brokers = fakeBrokers([{ id: 'a', groupHeartbeat: {} }, { id: 'b' }, { id: 'c' }]);
    const c = await memberClient(brokers, ['g1', 'g2'], 3);
    // The pool stays up while closing (the final commits need a broker), so a's slot may redial: not counted.
    const after: string[] = [];
    let closing: Promise<void> | undefined;
    c.on('failover', () => {
      closing ??= c.close();
      c.on('failover', ({ from, to }) => after.push(`failover ${from.id}->${to.id}`));
      c.on('error', (e) => after.push(`error ${String(e)}`));
    });
    for (let i = 0; i < 100 && closing === undefined; i++) await vi.advanceTimersByTimeAsync(50);
    expect(closing, 'the move').toBeDefined();
    await vi.advanceTimersByTimeAsync(1000);
    await closing;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(after).toEqual([]);
    expect(c.stats().connectedBrokers).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('does not ping-pong a client between two brokers both cut off from the coordinator', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    // Both brokers it knows leave group heartbeats unanswered (both cut off, one way): moving helps nothing, and each
    // move closes the connection its publishes use. Before the fix: a, b, a, b... every ~2.25 s (8 moves in 20 s).
    const brokers = fakeBrokers([{ id: 'a', groupHeartbeat: {} }, { id: 'b', groupHeartbeat: {} }]);
    const c = await memberClient(brokers, ['g']);
    const left: string[] = [];
    c.on('failover', ({ from }) => left.push(from.id));
    c.on('disconnected', ({ broker }) => left.push(broker.id));
    try {
      expect(c.stats().connectedBrokers.map((x) => x.id).sort()).toEqual(['a', 'b']);
      await vi.advanceTimersByTimeAsync(20_000);
      // One move off the first (it could have been the only one cut off), then none back to it for ten intervals.
      expect(left.length, JSON.stringify(left)).toBeGreaterThanOrEqual(1);
      expect(left.length, JSON.stringify(left)).toBeLessThanOrEqual(2);
    } finally {
      await c.close();
    }
  });
});

describe('silence (fake brokers, fake clock)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** A client pooled to two fake brokers pinging every second, on a fake clock, once both are connected. */
  async function twoPooledBrokers(): Promise<{ a: FakeBroker; b: FakeBroker; c: RelayClient }> {
    vi.useFakeTimers({ now: 1_000_000 });
    const [a, b] = fakeBrokers([{ id: 'a' }, { id: 'b' }]) as [FakeBroker, FakeBroker];
    const c = new RelayClient({
      brokers: [a.url, b.url],
      WebSocket: protocolWebSocket([a, b]),
      poolSize: 2,
      pingIntervalMs: 1000,
      connectTimeoutMs: 2000,
      closeTimeoutMs: 100,
      reconnect: { initialDelayMs: 5, maxDelayMs: 20, jitter: false },
    });
    await c.start();
    for (let i = 0; i < 100 && c.stats().connectedBrokers.length < 2; i++) await vi.advanceTimersByTimeAsync(10);
    return { a, b, c };
  }

  /** Advances the fake clock in 10 ms steps until `c` fails over (at most `maxMs`); the time that took. */
  async function msUntilFailover(c: RelayClient, maxMs: number): Promise<number> {
    const from = Date.now();
    let at: number | undefined;
    c.once('failover', () => (at = Date.now()));
    for (let waited = 0; waited < maxMs && at === undefined; waited += 10) await vi.advanceTimersByTimeAsync(10);
    expect(at).toBeDefined();
    return (at as number) - from;
  }

  it('judges a broker that stops answering dead at twice the ping interval, not up to three times it', async () => {
    const { a, b, c } = await twoPooledBrokers();
    try {
      // Let pings and pongs flow, then go silent right after a pong.
      await vi.advanceTimersByTimeAsync(3000);
      const active = c.stats().activeBroker?.id === 'a' ? a : b;
      active.silent = true;
      const failedOverAfter = await msUntilFailover(c, 4000);
      // The last inbound frame was at most one ping interval before the silence began.
      expect(failedOverAfter).toBeLessThanOrEqual(2 * 1000 + 1000 / 4 + 10);
    } finally {
      await c.close().catch(() => {});
    }
  });

  // Chaos 5/3 pause runs: every publish on a stopped broker waited the full two intervals before it was resent elsewhere.
  it('judges a broker that leaves a publish unanswered dead after one ping interval and an unanswered probe, while another broker is pooled', async () => {
    const { a, b, c } = await twoPooledBrokers();
    try {
      await c.publish('t', 'first');
      await vi.advanceTimersByTimeAsync(3000);
      const active = c.stats().activeBroker?.id === 'a' ? a : b;
      // The broker stops right after the last frame it sent, however long ago that was within the ping cadence.
      const acknowledged = c.publish('t', 'before the pause');
      await vi.advanceTimersByTimeAsync(1);
      await acknowledged;
      active.silent = true;
      const receipt = c.publish('t', 'during the pause');
      const failedOverAfter = await msUntilFailover(c, 4000);
      // One interval, plus a tick of the silence check (a quarter interval); two intervals before.
      expect(failedOverAfter).toBeLessThanOrEqual(1000 + 1000 / 4 + 10);
      await vi.advanceTimersByTimeAsync(10);
      await expect(receipt).resolves.toMatchObject({ partition: 0 });
    } finally {
      await c.close().catch(() => {});
    }
  });

  // Chaos 3/3 seed 906: 349 ms of latency each way on every link of c2; the probe came back after about 700 ms,
  // the client judged c2 dead at 500 ms and failed over, and its publishes waited 2.3 s instead of a round trip.
  it('keeps a broker on a slow link: a probe answered after 700 ms and acks after 1.3 s are not death', async () => {
    const { a, b, c } = await twoPooledBrokers();
    try {
      await c.publish('t', 'first');
      await vi.advanceTimersByTimeAsync(3000);
      const active = c.stats().activeBroker?.id === 'a' ? a : b;
      active.delay = { pongMs: 700, ackMs: 1300 };
      let failovers = 0;
      c.on('failover', () => failovers++);
      for (let i = 0; i < 10; i++) {
        const receipt = c.publish('t', `slow ${i}`);
        await vi.advanceTimersByTimeAsync(1400);
        await expect(receipt).resolves.toMatchObject({ partition: 0 });
      }
      expect(failovers).toBe(0);
      expect(c.stats().activeBroker?.id).toBe(active.id);
    } finally {
      await c.close().catch(() => {});
    }
  });

  it('judges a silent broker owing answers dead within 1.8 s with the default ping interval of 5 s (before: 5 s)', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const [a, b] = fakeBrokers([{ id: 'a' }, { id: 'b' }]) as [FakeBroker, FakeBroker];
    const c = new RelayClient({ brokers: [a.url, b.url], WebSocket: protocolWebSocket([a, b]), poolSize: 2, closeTimeoutMs: 100, reconnect: { initialDelayMs: 5, maxDelayMs: 20, jitter: false } });
    await c.start();
    try {
      for (let i = 0; i < 100 && c.stats().connectedBrokers.length < 2; i++) await vi.advanceTimersByTimeAsync(10);
      await c.publish('t', 'first');
      await vi.advanceTimersByTimeAsync(7000);
      const active = c.stats().activeBroker?.id === 'a' ? a : b;
      active.silent = true;
      const receipt = c.publish('t', 'during the pause');
      const failedOverAfter = await msUntilFailover(c, 10_000);
      // Probed after 500 ms of silence, dead once the probe is 1 s old, each judged on a 125 ms tick (before: 5 s).
      expect(failedOverAfter).toBeLessThanOrEqual(500 + 1000 + 2 * 125 + 10);
      await vi.advanceTimersByTimeAsync(10);
      await expect(receipt).resolves.toMatchObject({ partition: 0 });
    } finally {
      await c.close().catch(() => {});
    }
  });

  /** A client with the default ping interval pooled to every broker in `specs` (those reachable), on a fake clock. */
  async function pooledWithDefaults(specs: Array<Partial<FakeBroker> & { id: string }>): Promise<{ brokers: FakeBroker[]; c: RelayClient }> {
    vi.useFakeTimers({ now: 1_000_000 });
    const brokers = fakeBrokers(specs);
    const reachable = brokers.filter((b) => b.reachable).length;
    const c = new RelayClient({
      brokers: brokers.map((b) => b.url),
      WebSocket: protocolWebSocket(brokers),
      poolSize: reachable,
      closeTimeoutMs: 100,
      reconnect: { initialDelayMs: 5, maxDelayMs: 20, jitter: false },
    });
    await c.start();
    for (let i = 0; i < 100 && c.stats().connectedBrokers.length < reachable; i++) await vi.advanceTimersByTimeAsync(10);
    const first = c.publish('t', 'first');
    await vi.advanceTimersByTimeAsync(7000); // pings and pongs flow; round trips are measured
    await first;
    return { brokers, c };
  }

  /** Closes `c` on the fake clock: a close waits up to closeTimeoutMs for publishes in flight. */
  async function closeOnFakeClock(c: RelayClient): Promise<void> {
    const closing = c.close().catch(() => {});
    await vi.advanceTimersByTimeAsync(200);
    await closing;
  }

  /** Keeps publishes in flight on the active broker (acks come `ackMs` late) while the clock advances `ms`; their receipts. */
  async function publishWhileAdvancing(c: RelayClient, ms: number, until: () => boolean = () => false): Promise<Array<Promise<unknown>>> {
    const receipts: Array<Promise<unknown>> = [];
    for (let waited = 0; waited < ms && !until(); waited += 10) {
      if (waited % 100 === 0) receipts.push(c.publish('t', `in flight ${waited}`));
      await vi.advanceTimersByTimeAsync(10);
    }
    return receipts;
  }

  // Chaos 3/3 seed 371: c3 was paused while the client published through c1; when c1 refused, the client failed over
  // to c3 — an idle standby, judged only after two 5 s ping intervals — and its publishes waited 3.15 s.
  it('drops a standby that stops answering while publishes await answers elsewhere, within 1.8 s with the default ping interval (before: 10 s)', async () => {
    const { brokers, c } = await pooledWithDefaults([{ id: 'a' }, { id: 'b' }]);
    try {
      const active = brokers.find((b) => b.id === c.stats().activeBroker?.id) as FakeBroker;
      const standby = brokers.find((b) => b !== active) as FakeBroker;
      active.delay = { pongMs: 0, ackMs: 300 };
      standby.silent = true;
      const from = Date.now();
      const pooled = (): boolean => c.stats().connectedBrokers.some((x) => x.id === standby.id);
      const receipts = await publishWhileAdvancing(c, 3000, () => !pooled());
      // Probed on the first tick with answers owed (its last pong was long ago), dead once the probe is 1 s old.
      expect(pooled()).toBe(false);
      expect(Date.now() - from).toBeLessThanOrEqual(125 + 1000 + 2 * 125 + 10);
      expect(c.stats().activeBroker?.id).toBe(active.id);
      await vi.advanceTimersByTimeAsync(400);
      await Promise.all(receipts);
    } finally {
      await closeOnFakeClock(c);
    }
  });

  it('fails over to a standby that answers, not to one with a ping overdue, even when the stopped one had the shorter round trip', async () => {
    const { brokers, c } = await pooledWithDefaults([{ id: 'x' }, { id: 'y' }, { id: 'z' }]);
    try {
      const active = brokers.find((b) => b.id === c.stats().activeBroker?.id) as FakeBroker;
      const [stopped, answering] = brokers.filter((b) => b !== active) as [FakeBroker, FakeBroker];
      // The answering standby's pongs come 50 ms late: before this rule, the stopped standby won on round trip.
      answering.delay = { pongMs: 50, ackMs: 0 };
      await vi.advanceTimersByTimeAsync(5100);
      active.delay = { pongMs: 0, ackMs: 300 };
      stopped.silent = true;
      const first = await publishWhileAdvancing(c, 600);
      expect(c.stats().connectedBrokers.map((x) => x.id)).toContain(stopped.id); // probed, not yet judged dead
      const movedTo: string[] = [];
      c.on('failover', ({ to }) => movedTo.push(to.id));
      active.refuse = { code: 'NOT_READY' };
      const refused = c.publish('t', 'refused, then moved');
      for (let i = 0; i < 10 && movedTo.length === 0; i++) await vi.advanceTimersByTimeAsync(10);
      expect(movedTo).toEqual([answering.id]);
      await vi.advanceTimersByTimeAsync(400);
      await expect(refused).resolves.toMatchObject({ partition: 0 });
      await Promise.all(first);
    } finally {
      await closeOnFakeClock(c);
    }
  });

  it('keeps two intervals for a silent broker when nothing is owed on it (an idle connection)', async () => {
    const { a, b, c } = await twoPooledBrokers();
    try {
      await c.publish('t', 'first');
      await vi.advanceTimersByTimeAsync(3000);
      const active = c.stats().activeBroker?.id === 'a' ? a : b;
      active.silent = true;
      const failedOverAfter = await msUntilFailover(c, 4000);
      // Nothing owed: silence is judged at twice the interval, counted from the last pong (up to an interval before).
      expect(failedOverAfter).toBeGreaterThan(1000);
    } finally {
      await c.close().catch(() => {});
    }
  });
});
