/**
 * The one runner that honours a {@link Ready}: a leader's appends → persist
 * (and fsync when `mustSync`) → the other messages → apply → advance (see
 * docs/raft.md for why appends may leave first). Storage, transport and state machine
 * are injected, so the broker runtime, the simulator and the scenario tests
 * all drive the core through this code and none of them can reorder it.
 *
 * If a callback throws (an I/O error, a simulated crash), the batch is not
 * advanced and the node must be discarded: rebuild it from storage.
 */
import type { RaftNode } from './node.js';
import type { StorageWriter } from './storage.js';
import type { Entry, Message, Ready, Snapshot } from './types.js';

export interface ReadyHandlers<T, S> {
  /** Stable storage; `sync()` is called when `Ready.mustSync`, before any message but a leader's appends is sent. */
  readonly storage: StorageWriter<T, S>;
  /** Hands messages to the transport (fire and forget). */
  send(messages: readonly Message<T, S>[]): void;
  /** Replaces the state machine with a snapshot received from the leader (already persisted). */
  restore(snapshot: Snapshot<S>): void;
  /** Applies committed entries, in order (already persisted). */
  apply(entries: readonly Entry<T>[]): void;
}

/** The same handlers, with asynchronous storage (e.g. a group-committed fsync). */
export interface AsyncReadyHandlers<T, S> {
  readonly storage: {
    applySnapshot(snapshot: Snapshot<S>): void | Promise<void>;
    append(entries: readonly Entry<T>[]): void | Promise<void>;
    setHardState(hardState: NonNullable<Ready<T, S>['hardState']>): void | Promise<void>;
    sync(): void | Promise<void>;
  };
  send(messages: readonly Message<T, S>[]): void;
  restore(snapshot: Snapshot<S>): void | Promise<void>;
  apply(entries: readonly Entry<T>[]): void | Promise<void>;
}

/** Handles one `Ready` if there is one; returns whether it did. */
export function runReady<T, S>(node: RaftNode<T, S>, io: ReadyHandlers<T, S>): boolean {
  if (!node.hasReady()) return false;
  const rd = node.ready();
  // 0. A leader's appends leave first (see runReadyAsync): the simulator's crashes inside an
  //    fsync then strike after they left, which is what makes this order safe to rely on.
  const early = rd.messages.filter(leavesBeforePersist);
  if (early.length > 0) io.send(early);
  // 1. Persist, durably if required, before anything that depends on it leaves.
  if (rd.snapshot !== undefined) io.storage.applySnapshot(rd.snapshot);
  if (rd.entriesToPersist.length > 0) io.storage.append(rd.entriesToPersist);
  if (rd.hardState !== undefined) io.storage.setHardState(rd.hardState);
  if (rd.mustSync) io.storage.sync();
  // 2. Send the rest.
  const late = early.length === 0 ? rd.messages : rd.messages.filter((m) => !leavesBeforePersist(m));
  if (late.length > 0) io.send(late);
  // 3. Apply.
  if (rd.snapshot !== undefined) io.restore(rd.snapshot);
  if (rd.committedEntries.length > 0) io.apply(rd.committedEntries);
  // 4. Advance.
  node.advance();
  return true;
}

/**
 * Handles `Ready`s until there is none left, at most `maxRounds` (a batch of
 * committed entries is capped by `maxCommittedEntriesPerReady`, so a long
 * backlog takes several rounds). Returns how many it handled.
 */
export function drainReady<T, S>(node: RaftNode<T, S>, io: ReadyHandlers<T, S>, maxRounds = 64): number {
  let rounds = 0;
  while (rounds < maxRounds && runReady(node, io)) rounds++;
  return rounds;
}

/**
 * {@link runReady} with asynchronous storage and state machine. The node
 * may keep receiving `step`/`tick` while this awaits (their output waits for
 * the next `Ready`); call it again only after it resolved.
 */
export async function runReadyAsync<T, S>(node: RaftNode<T, S>, io: AsyncReadyHandlers<T, S>): Promise<boolean> {
  if (!node.hasReady()) return false;
  const rd = node.ready();
  // A leader's appends may leave before its own write (Raft thesis §10.2.1): followers persist
  // in parallel with it. Safe because nothing this write covers can be applied, or its commit
  // announced, before the next Ready — which only exists once this one was persisted and advanced.
  // Everything else (votes, responses) still waits for the write it depends on.
  const early = rd.messages.filter(leavesBeforePersist);
  if (early.length > 0) io.send(early);
  if (rd.snapshot !== undefined) await io.storage.applySnapshot(rd.snapshot);
  if (rd.entriesToPersist.length > 0) await io.storage.append(rd.entriesToPersist);
  if (rd.hardState !== undefined) await io.storage.setHardState(rd.hardState);
  if (rd.mustSync) await io.storage.sync();
  const late = early.length === 0 ? rd.messages : rd.messages.filter((m) => !leavesBeforePersist(m));
  if (late.length > 0) io.send(late);
  if (rd.snapshot !== undefined) await io.restore(rd.snapshot);
  if (rd.committedEntries.length > 0) await io.apply(rd.committedEntries);
  node.advance();
  return true;
}

/** Messages only a leader sends, which carry its log to followers: they never wait for its own write. */
function leavesBeforePersist<T, S>(message: Message<T, S>): boolean {
  return message.type === 'app' || message.type === 'heartbeat';
}
