/**
 * What a partition replica whose log is damaged does, on either storage
 * layout (docs/storage.md): it never leads, and it repairs itself from the
 * broker that leads instead.
 */
import type { NodeId } from '../core/raft/index.js';

/** What a damaged replica needs of its partition's Raft group. */
export interface DamagedGroup {
  isLeader(): boolean;
  status(): { voters: readonly NodeId[] };
  transferLeadership(to: NodeId): boolean;
  readonly leader: NodeId | null;
}

/** What a damaged replica needs of the engine (a subset of the upkeep's context). */
export interface DamageContext {
  self: NodeId;
  log: (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
  connectedPeers: () => readonly string[];
}

/**
 * The leadership side of repairing a damaged replica, one upkeep round at a
 * time: the damage is logged once (until repaired); a leader hands
 * leadership to a connected voter; a follower is told whom to repair from
 * once another broker leads. (Alone in its group, a replica has nobody to
 * repair from: it keeps serving what is intact, and reads of the damaged
 * range fail with an error.) The copy itself is the layout's.
 */
export class DamagedReplica {
  /** The damage was logged (once, until repaired). */
  private reported = false;

  constructor(
    private readonly id: string,
    private readonly group: DamagedGroup,
    private readonly ctx: DamageContext,
  ) {}

  /**
   * One round while damaged: reports the damage (`details` say where) once;
   * a leader hands leadership over and gets `undefined`; a follower gets the
   * broker to repair from, when another one leads.
   */
  repairSource(details: Record<string, unknown>): NodeId | undefined {
    const { group, ctx } = this;
    if (!this.reported) {
      this.reported = true;
      ctx.log('error', 'partition log damaged; this replica will not lead it until repaired from a healthy one', { group: this.id, ...details });
    }
    if (group.isLeader()) {
      const others = group.status().voters.filter((v) => v !== ctx.self && ctx.connectedPeers().includes(v));
      const target = others[Math.floor(Math.random() * others.length)];
      if (target !== undefined) group.transferLeadership(target);
      return undefined;
    }
    const leader = group.leader;
    return leader === null || leader === ctx.self ? undefined : leader;
  }

  /** The repair from `leader` completed: a new damage is reported again. */
  repaired(leader: NodeId): void {
    this.reported = false;
    this.ctx.log('info', 'partition log repaired from the leader', { group: this.id, leader });
  }
}
