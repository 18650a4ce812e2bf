/**
 * Names the cluster once: the metadata leader proposes a cluster id while
 * the metadata has none, and every broker records the applied id in its data
 * directory. The id proposed is the one this broker was given
 * (`--cluster-id`) or already records, else a new UUID; the first applied
 * wins (core/metadata/metadata.ts), so two leaders racing cannot name it twice.
 *
 * Without a given id, only a new cluster (metadata still empty) is named:
 * brokers of a version before cluster ids cannot apply the entry, so naming
 * a running cluster in the middle of a rolling upgrade would stall its
 * metadata group. An operator names an upgraded cluster with `--cluster-id`.
 */
import { randomUUID } from 'node:crypto';
import type { SetClusterIdCommand } from '../core/metadata/metadata.js';
import type { LogFunction } from '../observability/logger.js';

export interface ClusterNamingContext {
  isLeader(): boolean;
  /** The cluster id in the applied metadata, if any. */
  current(): string | undefined;
  /** The id this broker would name the cluster with (given or recorded), if any. */
  preferred: string | undefined;
  /** Whether the metadata is still empty (no topic, durable or group yet): a new cluster. */
  fresh(): boolean;
  propose(command: SetClusterIdCommand): Promise<unknown>;
  log: LogFunction;
}

export class ClusterNaming {
  private inFlight = false;
  private readonly candidate: string;

  constructor(private readonly ctx: ClusterNamingContext) {
    this.candidate = ctx.preferred ?? randomUUID();
  }

  /** Call periodically: proposes the id when this broker leads the metadata and the cluster has none. */
  tick(): void {
    if (this.inFlight || this.ctx.current() !== undefined || !this.ctx.isLeader()) return;
    if (this.ctx.preferred === undefined && !this.ctx.fresh()) return;
    this.inFlight = true;
    this.ctx
      .propose({ type: 'set-cluster-id', clusterId: this.candidate })
      .then(() => this.ctx.log('info', 'named the cluster', { clusterId: this.ctx.current() }))
      // Not leading any more, or a timeout: the next tick decides again.
      .catch((err: unknown) => this.ctx.log('debug', 'cluster id not proposed; retrying', { error: String(err) }))
      .finally(() => {
        this.inFlight = false;
      });
  }
}
