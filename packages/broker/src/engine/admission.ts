/**
 * Admits brokers into the metadata group, driven by its leader: a broker
 * that is connected but not a member is added as a learner; a learner that
 * has caught up is promoted while the group has fewer voters than
 * `metadataVoters`; beyond that it stays a non-voting member (it receives
 * the metadata, hosts replicas and serves clients), so a large cluster does
 * not run a large voter group. One change at a time (the Raft core refuses
 * overlapping ones anyway); nothing is ever removed here (decommissioning is
 * an operator's decision).
 */
import type { ConfChange, ConfState, NodeId, ProgressStatus } from '../core/raft/index.js';
import type { LogFunction } from '../observability/logger.js';

/** What the leader knows when it decides. */
export interface AdmissionView {
  conf: ConfState;
  /** The leader's commit index. */
  commit: number;
  /** The learners' replication progress, as the leader tracks it. */
  learnerProgress: readonly ProgressStatus[];
  /** Brokers this one has a live link to (candidates for admission). */
  connected: readonly NodeId[];
  /** Brokers never to admit again (refused or removed by an operator). */
  excluded: ReadonlySet<NodeId>;
  metadataVoters: number;
}

/**
 * The next membership change admission calls for, or `undefined`. Learners
 * are promoted first (oldest first, by their order in the configuration),
 * then new brokers added (by id, so every leader picks the same one).
 */
export function nextAdmission(view: AdmissionView): ConfChange | undefined {
  const learners = view.conf.learners ?? [];
  if (view.conf.voters.length < view.metadataVoters) {
    for (const learner of learners) {
      const progress = view.learnerProgress.find((p) => p.id === learner);
      // Caught up: it holds everything committed, so promoting it cannot stall the quorum.
      if (progress !== undefined && progress.match >= view.commit) return { type: 'promote', node: learner };
    }
  }
  const members = new Set([...view.conf.voters, ...learners]);
  const newcomer = [...view.connected].filter((id) => !members.has(id) && !view.excluded.has(id)).sort()[0];
  return newcomer === undefined ? undefined : { type: 'add-learner', node: newcomer };
}

/** The metadata group as admission drives it. */
export interface AdmittingGroup {
  isLeader(): boolean;
  readonly confState: ConfState;
  status(): { commit: number; learnerProgress: readonly ProgressStatus[] };
  proposeConfChange(change: ConfChange, timeoutMs: number): Promise<ConfState>;
}

export interface AdmissionContext {
  group: () => AdmittingGroup;
  connected: () => readonly NodeId[];
  excluded: () => ReadonlySet<NodeId>;
  metadataVoters: number;
  timeoutMs: number;
  log: LogFunction;
}

/** Runs {@link nextAdmission} on the metadata leader, one change at a time; call {@link tick} periodically. */
export class MetadataAdmission {
  private inFlight = false;

  constructor(private readonly ctx: AdmissionContext) {}

  tick(): void {
    const group = this.ctx.group();
    if (this.inFlight || !group.isLeader()) return;
    const status = group.status();
    const change = nextAdmission({
      conf: group.confState,
      commit: status.commit,
      learnerProgress: status.learnerProgress,
      connected: this.ctx.connected(),
      excluded: this.ctx.excluded(),
      metadataVoters: this.ctx.metadataVoters,
    });
    if (change === undefined) return;
    this.inFlight = true;
    const what = change.type === 'add-learner' ? 'admitting a broker into the metadata group as a learner' : 'promoting a broker to metadata voter';
    this.ctx.log('info', what, { broker: change.node });
    group
      .proposeConfChange(change, this.ctx.timeoutMs)
      .then((conf) => this.ctx.log('info', 'metadata group membership changed', { change: change.type, broker: change.node, voters: conf.voters, learners: conf.learners ?? [] }))
      // Refused for now (another change pending, leadership moved): the next tick decides again.
      .catch((err: unknown) => this.ctx.log('debug', 'metadata membership change not made; retrying', { change: change.type, broker: change.node, error: String(err) }))
      .finally(() => {
        this.inFlight = false;
      });
  }
}
