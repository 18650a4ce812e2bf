/**
 * The one runner that honours a {@link Ready}: a leader's appends → persist
 * (and fsync when `mustSync`) → the other messages → apply → advance (see
 * docs/raft.md for why appends may leave first). Storage, transport and state
 * machine are injected, so the broker's `RaftGroup`, the simulator and the
 * scenario tests all drive the core through this code and none of them can
 * reorder it.
 *
 * A handler may finish at once or return a promise (the broker's
 * group-committed fsync, its snapshot install). The runner goes on
 * synchronously while handlers finish at once and awaits only a handler that
 * returned a promise. So the simulator, whose handlers all finish at once,
 * stays synchronous and deterministic (one event is one step; no microtask
 * can slip in between two steps of a batch) while it runs the very code that
 * acknowledges clients in production. Making the simulator `await` instead
 * would interleave every node's batches through the microtask queue and cost
 * the determinism and speed that make hundreds of seeds per CI run possible.
 *
 * If a handler throws or its promise rejects (an I/O error, a simulated
 * crash), nothing more is sent or applied, the batch is not advanced, and the
 * node must be discarded: rebuild it from storage.
 */
import type { RaftNode } from './node.js';
import type { Entry, HardState, Message, Ready, Snapshot } from './types.js';

/** What a handler returns: nothing when it finished at once, a promise when the runner must wait for it. */
export type MaybePromise = void | Promise<void>;

/** How the runner writes what a `Ready` asks to persist (a `StorageWriter` fits). */
export interface ReadyStorage<T, S> {
  /** Replaces the whole log and state by `snapshot`. */
  applySnapshot(snapshot: Snapshot<S>): MaybePromise;
  /** Appends `entries`, first discarding any stored entry at or after `entries[0].index`. */
  append(entries: readonly Entry<T>[]): MaybePromise;
  /** `durable`: the commit passed a configuration entry (`Ready.commitPassedConf`), so the next sync makes it durable even where commits are recorded lazily. */
  setHardState(hardState: HardState, durable?: boolean): MaybePromise;
  /** Makes every write so far durable (fsync); called when `Ready.mustSync`, before any message but a leader's appends is sent. */
  sync(): MaybePromise;
}

export interface ReadyHandlers<T, S> {
  /** Stable storage. */
  readonly storage: ReadyStorage<T, S>;
  /** Hands messages to the transport (fire and forget). */
  send(messages: readonly Message<T, S>[]): void;
  /** Replaces the state machine with a snapshot received from the leader (already persisted). */
  restore(snapshot: Snapshot<S>): MaybePromise;
  /** Applies committed entries, in order (already persisted). */
  apply(entries: readonly Entry<T>[]): MaybePromise;
}

/**
 * Handles one `Ready` if there is one; returns whether it did — at once when
 * every handler finished at once, otherwise as a promise. While it awaits,
 * the node may keep receiving `step`/`tick`/`propose` (their output waits for
 * the next `Ready`); call it again only after it settled.
 */
export function runReady<T, S>(node: RaftNode<T, S>, io: ReadyHandlers<T, S>): boolean | Promise<boolean> {
  if (!node.hasReady()) return false;
  return finish(node, node.ready(), io, 0);
}

/**
 * {@link runReady} for drivers whose handlers all finish at once (the
 * simulator, the scenario tests): the same code, with the promise ruled out.
 */
export function runReadySync<T, S>(node: RaftNode<T, S>, io: ReadyHandlers<T, S>): boolean {
  const handled = runReady(node, io);
  if (typeof handled !== 'boolean') throw new Error('runReadySync: a Ready handler returned a promise; drive this node with runReady');
  return handled;
}

/**
 * Handles `Ready`s until there is none left, at most `maxRounds` (a batch of
 * committed entries is capped by `maxCommittedEntriesPerReady`, so a long
 * backlog takes several rounds), with handlers that finish at once. Returns
 * how many it handled.
 */
export function drainReady<T, S>(node: RaftNode<T, S>, io: ReadyHandlers<T, S>, maxRounds = 64): number {
  let rounds = 0;
  while (rounds < maxRounds && runReadySync(node, io)) rounds++;
  return rounds;
}

/** How many steps {@link step} has. */
const STEPS = 8;

/**
 * Step `n` of the contract, in order; returns what its handler returned. A
 * numbered step rather than a generator: a Ready (several per publish on a
 * leader) then allocates no generator and no iterator results.
 */
function step<T, S>(rd: Ready<T, S>, io: ReadyHandlers<T, S>, n: number): MaybePromise {
  switch (n) {
    // 0. A leader's appends may leave before its own write (Raft thesis §10.2.1): followers persist
    //    in parallel with it. Safe because nothing this write covers can be applied, or its commit
    //    announced, before the next Ready — which only exists once this one was persisted and advanced.
    //    Everything else (votes, responses) still waits for the write it depends on. The simulator's
    //    crashes inside an fsync strike after these left, which is what makes this order safe to rely on.
    case 0: {
      const early = leavingEarly(rd.messages);
      if (early.length > 0) io.send(early);
      return;
    }
    // 1. Persist, durably if required, before anything that depends on it leaves.
    case 1:
      return rd.snapshot === undefined ? undefined : io.storage.applySnapshot(rd.snapshot);
    case 2:
      return rd.entriesToPersist.length === 0 ? undefined : io.storage.append(rd.entriesToPersist);
    case 3:
      if (rd.hardState === undefined) return;
      return rd.commitPassedConf === true ? io.storage.setHardState(rd.hardState, true) : io.storage.setHardState(rd.hardState);
    case 4:
      return rd.mustSync ? io.storage.sync() : undefined;
    // 2. Send the rest.
    case 5: {
      const late = leavingLate(rd.messages);
      if (late.length > 0) io.send(late);
      return;
    }
    // 3. Apply.
    case 6:
      return rd.snapshot === undefined ? undefined : io.restore(rd.snapshot);
    default:
      return rd.committedEntries.length === 0 ? undefined : io.apply(rd.committedEntries);
  }
}

/**
 * Runs the steps from `from` to the end, then advances `node`: synchronously
 * while each step finished at once (returns `true`), otherwise returns a
 * promise that awaits the step and goes on from there. A throw or a
 * rejection ends the steps where they are, and `node` is not advanced.
 */
function finish<T, S>(node: RaftNode<T, S>, rd: Ready<T, S>, io: ReadyHandlers<T, S>, from: number): true | Promise<true> {
  for (let n = from; n < STEPS; n++) {
    const pending = step(rd, io, n);
    // A handler typed to return nothing may still return a value (`() => log.push(x)`): only a thenable is awaited.
    if (isPromiseLike(pending)) return Promise.resolve(pending).then(() => finish(node, rd, io, n + 1));
  }
  node.advance();
  return true;
}

/** The messages of step 0 (all of them, or none, without a copy in the usual cases). */
function leavingEarly<T, S>(messages: readonly Message<T, S>[]): readonly Message<T, S>[] {
  const early = countEarly(messages);
  return early === messages.length ? messages : early === 0 ? NONE : messages.filter(leavesBeforePersist);
}

/** The messages of step 5: those step 0 did not send. */
function leavingLate<T, S>(messages: readonly Message<T, S>[]): readonly Message<T, S>[] {
  const early = countEarly(messages);
  return early === 0 ? messages : early === messages.length ? NONE : messages.filter((m) => !leavesBeforePersist(m));
}

function countEarly<T, S>(messages: readonly Message<T, S>[]): number {
  let early = 0;
  for (const m of messages) if (leavesBeforePersist(m)) early++;
  return early;
}

const NONE: readonly never[] = Object.freeze([]);

function isPromiseLike(value: unknown): value is PromiseLike<void> {
  return typeof (value as PromiseLike<void> | undefined)?.then === 'function';
}

/** Messages only a leader sends, which carry its log to followers: they never wait for its own write. */
function leavesBeforePersist<T, S>(message: Message<T, S>): boolean {
  return message.type === 'app' || message.type === 'heartbeat';
}
