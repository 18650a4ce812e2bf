/**
 * Raft nodes over memory storages with a manual message queue, for unit
 * tests that script a story step by step (who is up, what is delivered).
 */
import type { RaftConfigOptions } from '../../src/core/raft/config.js';
import { RaftNode } from '../../src/core/raft/node.js';
import { drainReady, type ReadyHandlers } from '../../src/core/raft/runner.js';
import { MemoryStorage } from '../../src/core/raft/storage.js';
import type { Entry, Message, RandomSource } from '../../src/core/raft/types.js';

export type Msg = Message<string, string>;
const ZERO: RandomSource = { nextInt: () => 0 };

export class ManualRaftCluster {
  readonly storages = new Map<string, MemoryStorage<string, string>>();
  readonly nodes = new Map<string, RaftNode<string, string>>();
  queue: Msg[] = [];
  /** Every message sent, in order. */
  readonly sent: Msg[] = [];

  /** `ids` start with `config`, each on a new storage whose configuration is `voters` (all of `ids` by default). */
  constructor(
    readonly ids: readonly string[],
    config: RaftConfigOptions,
    voters: readonly string[] = ids,
  ) {
    for (const id of ids) this.start(id, new MemoryStorage<string, string>(voters), config, !voters.includes(id));
  }

  /** `id` (re)starts on `storage`; `joining`: it is outside the storage's configuration (a learner to be). */
  start(id: string, storage: MemoryStorage<string, string>, config: RaftConfigOptions, joining = false): void {
    this.storages.set(id, storage);
    this.nodes.set(id, new RaftNode<string, string>({ id, storage, random: ZERO, config, applied: 0, ...(joining ? { joining } : {}) }));
  }

  node(id: string): RaftNode<string, string> {
    return this.nodes.get(id) as RaftNode<string, string>;
  }

  storage(id: string): MemoryStorage<string, string> {
    return this.storages.get(id) as MemoryStorage<string, string>;
  }

  io(id: string): ReadyHandlers<string, string> {
    return {
      storage: this.storage(id),
      send: (ms) => {
        this.queue.push(...ms);
        this.sent.push(...ms);
      },
      restore: () => undefined,
      apply: (_es: readonly Entry<string>[]) => undefined,
    };
  }

  /** Delivers until quiet (bounded), dropping messages to or from `isolated` (whose Readys still run). */
  stabilize(isolated: readonly string[] = []): void {
    this.deliver(this.ids, (id) => !isolated.includes(id));
  }

  /** Only the nodes of `up` run: their Readys, and messages between them until quiet (bounded); the rest are lost. */
  run(up: readonly string[]): void {
    this.deliver(up, (id) => up.includes(id));
  }

  /**
   * Up to three campaigns of `candidate` with only `up` running, until it leads: the first pre-vote may be at a
   * voter's term (refused), the next above it.
   */
  campaign(candidate: string, up: readonly string[]): void {
    for (let i = 0; i < 3 && this.node(candidate).counters.leaderships === 0; i++) {
      this.node(candidate).campaign();
      this.run(up);
    }
  }

  /** `n` ticks of the nodes of `up`, each followed by {@link run}. */
  ticks(n: number, up: readonly string[]): void {
    for (let i = 0; i < n; i++) {
      for (const id of up) this.node(id).tick();
      this.run(up);
    }
  }

  /** `id` restarts from its durable state (a power cut that lost nothing here), with `config` (recovering). */
  restart(id: string, config: RaftConfigOptions): void {
    const old = this.storage(id);
    const storage = new MemoryStorage<string, string>(this.ids);
    const last = old.lastIndex();
    if (last > 0) storage.append(old.entries(1, last + 1, 1e9));
    storage.setHardState(old.getHardState());
    this.start(id, storage, config);
  }

  private deliver(draining: readonly string[], reachable: (id: string) => boolean): void {
    for (const id of draining) drainReady(this.node(id), this.io(id));
    for (let round = 0; round < 100 && this.queue.length > 0; round++) {
      const batch = this.queue;
      this.queue = [];
      for (const m of batch) {
        if (!reachable(m.to) || !reachable(m.from)) continue;
        this.node(m.to).step(m);
        drainReady(this.node(m.to), this.io(m.to));
      }
    }
  }
}
