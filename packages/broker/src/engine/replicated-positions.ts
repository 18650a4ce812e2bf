import { RelayError, topicMatches, type Cursor } from '@relaymq/sdk/protocol';
import { parseCommitPositions, type CommitPositionsCommand } from '../core/metadata/positions.js';
import type { PositionStore } from './engine.js';

/** Peer RPC method by which a broker hands a commit to the metadata leader. */
export const COMMIT_POSITIONS_METHOD = 'meta.positions';

/**
 * Durable positions replicated through the metadata Raft group. Every commit
 * and every read is a `commit-positions` command ordered in that group's log
 * (a read commits no positions), so what one broker acknowledged is what
 * every other broker reads, through any leader change.
 */
export class ReplicatedPositions implements PositionStore {
  /**
   * @param toMetaLeader - proposes a command on the metadata leader and resolves with its applied result
   * (with `applied`, the leader's applied index then, when it names it).
   * @param appliedUpTo - resolves once this broker's metadata applied that index (rejects `NOT_READY` when it has not in time).
   */
  constructor(
    private readonly toMetaLeader: (command: CommitPositionsCommand) => Promise<unknown>,
    private readonly appliedUpTo: (index: number) => Promise<void> = async () => {},
  ) {}

  async commitPositions(durable: string, positions: readonly Cursor[]): Promise<void> {
    await this.run({ type: 'commit-positions', durable, positions: positions.map((c) => ({ ...c })) });
  }

  /**
   * The positions stored under `durable` of topics `pattern` matches, once
   * this broker applied the metadata log as far as the read: its caller takes
   * them with this broker's view of the topics (their incarnations), which
   * must not be older than the read (a topic deleted and created again before
   * it, not applied here yet, would label the new topic's positions with the
   * deleted one's incarnation).
   */
  async positions(durable: string, pattern: string): Promise<Cursor[]> {
    const { positions, applied } = await this.run({ type: 'commit-positions', durable, positions: [] });
    if (applied !== undefined) await this.appliedUpTo(applied);
    return positions.filter((c) => topicMatches(pattern, c.topic));
  }

  private async run(command: CommitPositionsCommand): Promise<{ positions: Cursor[]; applied: number | undefined }> {
    const result = await this.toMetaLeader(command);
    const o = (typeof result === 'object' && result !== null ? result : {}) as Record<string, unknown>;
    if (o.kind === 'limit') throw new RelayError('LIMIT_EXCEEDED', typeof o.message === 'string' ? o.message : 'durable position limit reached');
    // The result crossed the network when the leader is another broker: read it as untrusted.
    const read = o.kind === 'positions' ? parseCommitPositions({ type: 'commit-positions', durable: command.durable, positions: o.positions }) : undefined;
    if (read === undefined) throw new RelayError('INTERNAL', 'malformed answer to a durable position commit');
    const applied = typeof o.applied === 'number' && Number.isSafeInteger(o.applied) && o.applied >= 0 ? o.applied : undefined;
    return { positions: read.positions, applied };
  }
}

/** Reads a forwarded commit; throws `INVALID_ARGUMENT` when it is not one. */
export function parseForwardedCommit(body: unknown): CommitPositionsCommand {
  const command = parseCommitPositions(body);
  if (command === undefined) throw new RelayError('INVALID_ARGUMENT', 'malformed durable position commit');
  return command;
}
