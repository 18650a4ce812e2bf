/**
 * The steps both disk profiles (`disk-profile.test.ts`, `interval-profile.test.ts`)
 * take alike each simulated tick: delivering the messages that are due, in
 * a random order, and one round of Readys on every live node, which a crash
 * may strike part way.
 */
import { runReady, type Message, type RaftNode, type ReadyHandlers, type SeededRandom } from '../../src/core/raft/index.js';
import type { FaultyFileSystem } from '../support/faulty-fs.js';
import type { Incarnation } from './incarnation.js';

/** A message on the simulated network, delivered at `at`. */
export interface InFlight {
  at: number;
  message: Message<string, string>;
}

/** What the driver needs of a simulated node. */
export interface DrivenNode {
  readonly id: string;
  readonly incarnation: Incarnation | undefined;
  readonly raft: RaftNode<string, string> | undefined;
  readonly io: ReadyHandlers<string, string> | undefined;
}

/** A simulated node of the disk profiles: its disk, its process (when up) and the state machine it applied. */
export interface DiskNode extends DrivenNode {
  readonly id: string;
  disk: FaultyFileSystem;
  incarnation: Incarnation | undefined;
  raft: RaftNode<string, string> | undefined;
  io: ReadyHandlers<string, string> | undefined;
  /** The state machine: the values applied, by index (JSON in snapshots). */
  state: Array<[number, string]>;
  restarts: number;
  /** Sim time before which it stays down after a crash. */
  downUntil: number;
}

/** Hands every message due at `now` to its node, in a random order; the rest stay in flight. */
export function deliverDue(network: InFlight[], now: number, random: SeededRandom, nodes: readonly DrivenNode[]): void {
  const due = network.filter((f) => f.at <= now);
  for (let i = due.length - 1; i > 0; i--) {
    const j = random.nextInt(i + 1);
    [due[i], due[j]] = [due[j] as InFlight, due[i] as InFlight];
  }
  network.splice(0, network.length, ...network.filter((f) => f.at > now));
  for (const { message } of due) nodes.find((n) => n.id === message.to)?.raft?.step(message);
}

/**
 * Runs a Ready on every live node that has one, at once; when `victim` is
 * one of them, `strike` (its crash) hits a few microtasks in, part way
 * through its Ready. A Ready of a crashed incarnation may fail: that is the
 * crash, not an error. Resolves whether the crash struck inside a Ready.
 */
export async function readyRound(nodes: readonly DrivenNode[], random: SeededRandom, victim: DrivenNode | undefined, strike: (node: DrivenNode) => Promise<void>): Promise<boolean> {
  const runs = nodes.map((node) => {
    if (node.raft === undefined || node.io === undefined || !node.raft.hasReady()) return undefined;
    const incarnation = node.incarnation as Incarnation;
    return Promise.resolve()
      .then(() => runReady(node.raft as RaftNode<string, string>, node.io as ReadyHandlers<string, string>))
      .catch((err: unknown) => {
        if (incarnation.alive) throw err;
      });
  });
  let struck = false;
  if (victim !== undefined && runs[nodes.indexOf(victim)] !== undefined) {
    for (let i = random.nextInt(12); i > 0; i--) await Promise.resolve();
    struck = true;
    await strike(victim);
  }
  await Promise.all(runs);
  return struck;
}
