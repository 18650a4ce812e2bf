/**
 * Requests that only a group's leader can serve: run here when this broker
 * leads, otherwise forwarded to the leader over peer RPC, waiting (bounded)
 * for a leader when there is none or it just went away.
 */
import pRetry from 'p-retry';
import { RelayError } from '@relaymq/sdk/protocol';
import type { NodeId } from '../core/raft/index.js';
import type { PeerRpc } from '../net/peer-rpc.js';
import { parseFetchResponse, publishFailure, type FetchRequest, type FetchResponse } from './peer-messages.js';
import { waitFor, type EventSource } from './wait-for.js';

/** A group as forwarding sees it: its id and its leader as this broker knows it. */
export interface LedGroup {
  readonly id: string;
  readonly leader: NodeId | null;
}

export interface LeaderForwardingContext {
  self: NodeId;
  rpc: PeerRpc;
  /** How long a request may wait for a leader and its answer. */
  requestTimeoutMs: number;
  now: () => number;
  /** Emits `leader` whenever some group's leader changes. */
  leaderChanges: EventSource<'leader'>;
}

export class LeaderForwarding {
  constructor(private readonly ctx: LeaderForwardingContext) {}

  /**
   * Runs `local` when this broker leads `group`, otherwise forwards to the
   * leader. When the leader is unknown, unreachable or just lost its role, it
   * waits for the next one (bounded by `requestTimeoutMs`) instead of
   * bouncing the client: only when no leader can be reached in time does it
   * answer `NO_QUORUM`, which sends the client to another broker.
   */
  async viaLeader<R>(group: LedGroup, local: () => Promise<R>, method: string, body: unknown): Promise<R> {
    const { self, rpc, requestTimeoutMs, now } = this.ctx;
    const deadline = now() + requestTimeoutMs;
    let avoid: NodeId | undefined;
    let attempted = false;
    for (let attempt = 0; now() < deadline && attempt < 100; attempt++) {
      const leader = await waitFor(
        this.ctx.leaderChanges,
        'leader',
        () => (group.leader !== null && group.leader !== avoid ? group.leader : undefined),
        Math.max(1, deadline - now()),
        `a leader of ${group.id}`,
      ).catch(() => undefined);
      if (leader === undefined) break;
      try {
        if (leader === self) return await local();
        // A little longer than the leader's own commit timeout, so its answer (even TIMEOUT) gets back.
        return (await rpc.call(leader, method, body, requestTimeoutMs + 1000)) as R;
      } catch (err) {
        const code = err instanceof RelayError ? err.code : 'INTERNAL';
        // The leader went away or stepped down between our look and our request: find the next one. A publish
        // it (or an earlier leader) may have proposed is never refused for good: the SDK would store it twice.
        if (code !== 'NOT_CONNECTED' && code !== 'NOT_LEADER' && code !== 'SHUTTING_DOWN') {
          throw method === 'publish' ? publishFailure(err, attempted, `publish to the leader of ${group.id}`) : err;
        }
        avoid = leader;
        attempted = true;
      }
    }
    throw new RelayError('NO_QUORUM', `no reachable leader for ${group.id}: this broker cannot reach a quorum of its replicas`);
  }

  /** Fetches a partition's messages from the group's leader, waiting for one and retrying (bounded) while it changes. */
  async fetchFromLeader(group: LedGroup, topic: string, partition: number, offset: number): Promise<FetchResponse> {
    const request: FetchRequest = { topic, partition, offset };
    try {
      // About 10 s in all: a leader is usually back within an election timeout.
      return await pRetry(
        async () => {
          const leader = group.leader;
          if (leader === null || leader === this.ctx.self) throw new RelayError('NOT_LEADER', `no other broker leads ${group.id} now`);
          return parseFetchResponse(await this.ctx.rpc.call(leader, 'partition.fetch', request, this.ctx.requestTimeoutMs));
        },
        { retries: 50, minTimeout: 200, maxTimeout: 200 },
      );
    } catch (err) {
      throw new RelayError('NO_QUORUM', `could not fetch ${topic}/${partition} from ${offset}: ${String(err)}`, { cause: err });
    }
  }
}
