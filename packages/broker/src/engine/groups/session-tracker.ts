import type { ConsumerGroups, GroupCommand } from '../../core/metadata/groups.js';

/** What the tracker needs from the engine around it. */
export interface GroupSessionHooks {
  /** The group table as applied here. */
  groups(): ConsumerGroups;
  /** Whether this broker coordinates the groups now (the metadata leader; a standalone broker always). */
  isCoordinator(): boolean;
  /** Orders an expiry through the metadata (resolves or rejects; failures are retried next check). */
  expire(command: Extract<GroupCommand, { type: 'group-expire' }>): Promise<unknown>;
  now(): number;
}

/** How often the coordinator looks for members whose session timed out. */
export const SESSION_CHECK_INTERVAL_MS = 100;

/**
 * The coordinator's view of member sessions: when it last saw each member
 * (a join or heartbeat applied here), and the expiry of members silent for
 * longer than their group's `sessionTimeoutMs`. Every broker records what it
 * applies, but only the coordinator expires; a broker that becomes
 * coordinator starts every member's clock afresh, since what it applied
 * while following says nothing about how recently members were alive. Time
 * the coordinator itself stood still (stopped, or its event loop stalled: no
 * check ran) does not count either: it applied no heartbeat meanwhile, and
 * those sent then are still queued when its first check runs again.
 */
export class GroupSessionTracker {
  private readonly lastSeen = new Map<string, number>();
  private readonly expiring = new Set<string>();
  private wasCoordinator = false;
  /** When {@link check} last ran, to tell a stall of this broker from members' silence. */
  private lastCheckMs: number | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly hooks: GroupSessionHooks) {}

  start(): void {
    this.timer ??= setInterval(() => this.check(), SESSION_CHECK_INTERVAL_MS);
    this.timer.unref?.();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** A group command was applied here. */
  applied(command: GroupCommand): void {
    const id = sessionKey(command.group, command.member);
    if (command.type === 'group-join' || command.type === 'group-heartbeat' || command.type === 'group-commit') this.lastSeen.set(id, this.hooks.now());
    else {
      this.lastSeen.delete(id);
      this.expiring.delete(id);
    }
  }

  /** Expires members silent past their group's session timeout; exported for tests that drive time. */
  check(): void {
    const coordinator = this.hooks.isCoordinator();
    const now = this.hooks.now();
    // Checks more than two intervals apart: this broker stood still; members silent only meanwhile are not.
    const stalledMs = this.lastCheckMs === undefined ? 0 : now - this.lastCheckMs - SESSION_CHECK_INTERVAL_MS;
    this.lastCheckMs = now;
    if (stalledMs > SESSION_CHECK_INTERVAL_MS) for (const [id, seen] of this.lastSeen) this.lastSeen.set(id, Math.min(now, seen + stalledMs));
    if (coordinator && !this.wasCoordinator) for (const id of this.lastSeen.keys()) this.lastSeen.set(id, now);
    this.wasCoordinator = coordinator;
    if (!coordinator) return;
    for (const name of this.hooks.groups().names()) {
      const group = this.hooks.groups().get(name);
      if (group === undefined) continue;
      for (const member of group.members) {
        const id = sessionKey(name, member);
        const seen = this.lastSeen.get(id);
        // A member known only from a snapshot gets a full timeout from now.
        if (seen === undefined) {
          this.lastSeen.set(id, now);
          continue;
        }
        if (now - seen <= group.sessionTimeoutMs || this.expiring.has(id)) continue;
        this.expiring.add(id);
        this.hooks.expire({ type: 'group-expire', group: name, member }).then(
          () => this.expiring.delete(id),
          () => this.expiring.delete(id),
        );
      }
    }
  }
}

const sessionKey = (group: string, member: string): string => `${group}\u0000${member}`;
