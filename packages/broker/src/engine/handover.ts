import type { NodeId } from '../core/raft/index.js';

/**
 * Hands every leadership this broker holds to another voter before it shuts
 * down, so the groups it led stall for one round trip rather than an election
 * timeout. One transfer can fail silently (the target is paused, lagging, or
 * its own group is stopped, and the Raft core aborts the transfer after an
 * election timeout), so each group tries its targets in turn until the budget
 * is spent, and the groups still led then are logged by name. A group with no
 * other voter (a standalone broker's groups: a cluster of one; a topic of
 * replication factor 1) has nobody to hand over to: it is not waited for.
 */

/** One Raft group as the handover sees it. */
export interface HandoverGroup {
  readonly id: string;
  isLeader(): boolean;
  /** Voters that could take over, best first (connected and caught up first); never this broker. Empty: none (this broker is its only voter). */
  targets(): readonly NodeId[];
  /** Starts handing the group to `to`; false when this broker no longer leads it. */
  transferLeadership(to: NodeId): boolean;
}

export interface HandoverOptions {
  /** The whole budget (the broker's drain time): groups still led after it are reported. */
  timeoutMs: number;
  /** How long one target gets before the next one is tried. A transfer normally takes a round trip or two. */
  attemptMs: number;
  /** How often progress is checked. @defaultValue 10 */
  pollMs?: number;
  now: () => number;
  log: (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
}

export interface HandoverResult {
  /** Groups this broker led at some point of the handover and no longer leads. */
  handedOver: string[];
  /** Groups this broker still leads when the budget ran out (each with the targets it tried). */
  kept: Array<{ group: string; tried: NodeId[] }>;
  /** Groups led here that have no other voter to hand over to (not waited for, not counted in `kept`). */
  alone: string[];
}

interface Attempt {
  target: NodeId | undefined;
  startedMs: number;
  tried: NodeId[];
}

/**
 * Hands over every group of `groups()` that this broker leads (re-read on
 * every check: a group may gain a leader during the handover), retrying
 * another target after `attemptMs`, until none is led or `timeoutMs` passed.
 * Groups without another voter are skipped: when no led group has one, it
 * returns at once (a standalone broker's shutdown does not wait).
 */
export async function handOverLeadership(groups: () => Iterable<HandoverGroup>, options: HandoverOptions): Promise<HandoverResult> {
  const pollMs = options.pollMs ?? 10;
  const deadline = options.now() + options.timeoutMs;
  const attempts = new Map<string, Attempt>();
  const alone = new Set<string>();
  for (;;) {
    const leading: HandoverGroup[] = [];
    for (const g of groups()) {
      if (!g.isLeader() || alone.has(g.id)) continue;
      // Asked once per group (ranking targets reads the group's progress); a group being handed over has had some.
      if (attempts.has(g.id) || g.targets().length > 0) leading.push(g);
      else alone.add(g.id);
    }
    const now = options.now();
    if (leading.length === 0 || now >= deadline) {
      const kept = leading.map((g) => ({ group: g.id, tried: attempts.get(g.id)?.tried ?? [] }));
      const stillLed = new Set(kept.map((k) => k.group));
      const handedOver = [...attempts.keys()].filter((id) => !stillLed.has(id));
      if (kept.length > 0) {
        options.log('warn', 'some groups kept their leader at shutdown', {
          groups: kept.map((k) => k.group),
          tried: Object.fromEntries(kept.map((k) => [k.group, k.tried])),
          timeoutMs: options.timeoutMs,
        });
      } else if (handedOver.length > 0) {
        options.log('info', 'leadership handed over', { groups: handedOver.length });
      }
      if (alone.size > 0) options.log('debug', 'groups without another voter keep their leader at shutdown', { groups: alone.size });
      return { handedOver, kept, alone: [...alone] };
    }
    for (const group of leading) {
      const attempt = attempts.get(group.id) ?? { target: undefined, startedMs: now, tried: [] };
      attempts.set(group.id, attempt);
      if (attempt.target !== undefined && now - attempt.startedMs < options.attemptMs) continue;
      const target = nextTarget(group.targets(), attempt);
      if (target === undefined) continue;
      attempt.target = target;
      attempt.startedMs = now;
      if (!attempt.tried.includes(target)) attempt.tried.push(target);
      group.transferLeadership(target);
    }
    await new Promise((resolve) => setTimeout(resolve, Math.max(1, Math.min(pollMs, deadline - options.now()))));
  }
}

/** The best target not tried yet; once all were tried, the next one after the current (round robin). */
export function nextTarget(targets: readonly NodeId[], attempt: { target: NodeId | undefined; tried: readonly NodeId[] }): NodeId | undefined {
  const fresh = targets.find((t) => !attempt.tried.includes(t));
  if (fresh !== undefined) return fresh;
  if (targets.length === 0) return undefined;
  const current = attempt.target === undefined ? -1 : targets.indexOf(attempt.target);
  return targets[(current + 1) % targets.length];
}

/**
 * Ranks a group's voters as handover targets: connected ones first, then the
 * most caught up (a target must hold the whole log before it may campaign).
 */
export function rankTargets(self: NodeId, progress: ReadonlyArray<{ id: NodeId; match: number }>, connected: ReadonlySet<NodeId>): NodeId[] {
  return progress
    .filter((p) => p.id !== self)
    .sort((a, b) => Number(connected.has(b.id)) - Number(connected.has(a.id)) || b.match - a.match || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map((p) => p.id);
}
