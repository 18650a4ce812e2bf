import { describe, expect, it } from 'vitest';
import { ConsumerGroups } from '../packages/broker/src/core/metadata/groups.js';
import { GroupMember } from '../packages/broker/src/server/group-member.js';
import type { LogEngine } from '../packages/broker/src/engine/engine.js';
import { GroupMembership, type MembershipHooks } from '../packages/sdk/src/subscribe/group-membership.js';
import type { AssignmentFrame, Cursor } from '../packages/sdk/src/protocol/index.js';

/**
 * The broker's table and its per-connection view of a member (GroupMember) wired to the SDK's
 * GroupMembership, with the commands a member sends applied to the table in order: no sockets, no timing.
 */
function groupOf(partitions: number) {
  const groups = new ConsumerGroups(() => [{ topic: 't', partitions }]);
  const engine = { consumerGroups: groups, bounds: () => ({ start: 0, end: 0 }) } as unknown as LogEngine;
  const join = (member: string): void => {
    expect(groups.apply({ type: 'group-join', group: 'g', member, pattern: 't', sessionTimeoutMs: 3000 })).toMatchObject({ known: true });
  };
  const client = (member: string) => {
    const broker = new GroupMember('g', member, 'earliest');
    const cursors = new Map<string, Cursor>();
    const owned = new Set<number>();
    const requests: Array<Promise<void>> = [];
    const hooks: MembershipHooks = {
      request: async (frame) => {
        if (frame.type !== 'group-commit') return;
        groups.apply({ type: 'group-commit', group: 'g', member: frame.member, positions: frame.positions, release: frame.release === true });
      },
      dropPartition: () => {},
      startPartition: () => {},
      idle: async () => {},
      rejoin: () => {},
      assigned: (e) => e.partitions.forEach((p) => owned.add(p.partition)),
      revoked: (e) => e.partitions.forEach((p) => owned.delete(p.partition)),
    };
    const membership = new GroupMembership('g', 3000, hooks, () => 0);
    Object.defineProperty(membership, 'member', { value: member });
    /** The broker pushes the member its assignment (when it changed), as after `subscribed` or a table change. */
    const push = (): AssignmentFrame | undefined => {
      const frame = broker.refresh(engine, 1, cursors);
      if (frame?.type === 'assignment') membership.onAssignment(frame);
      return frame?.type === 'assignment' ? frame : undefined;
    };
    return { push, owned, requests, membership };
  };
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 20; i++) await Promise.resolve();
  };
  return { groups, join, client, settle };
}

describe('a revocation of a partition the member was never shown', () => {
  it('is released at once, so the partition reaches its target (first frame after two joins: half granted, half revoking)', async () => {
    const { groups, join, client, settle } = groupOf(12);
    // m2's join is ordered first, m3's right after; m2's broker applies both before m2's subscription is in
    // place, so m2's first frame grants 6 partitions and asks it to revoke the other 6 it was never shown.
    join('m2');
    join('m3');
    const m2 = client('m2');
    const m3 = client('m3');
    const first = m2.push();
    expect(first?.partitions.filter((p) => p.revoking === true).map((p) => p.partition).sort((a, b) => a - b)).toEqual([4, 5, 6, 7, 8, 9]);
    await settle();
    m2.push();
    m3.push();
    await settle();
    m2.push();
    m3.push();
    expect([...m2.owned].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 10, 11]);
    expect([...m3.owned].sort((a, b) => a - b)).toEqual([4, 5, 6, 7, 8, 9]);
    // The table agrees: nothing left revoking, every partition owned by the member that handles it.
    const record = groups.get('g');
    expect(record?.partitions.every((p) => !p.revoking && p.owner !== undefined)).toBe(true);
    // Released without ever being handled: the app heard of no grant and no revocation for them.
    expect(m2.owned.has(4)).toBe(false);
  });
});
