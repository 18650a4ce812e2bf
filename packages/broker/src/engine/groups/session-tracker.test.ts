import { describe, expect, it } from 'vitest';
import { ConsumerGroups, type GroupCommand } from '../../core/metadata/groups.js';
import { GroupSessionTracker, SESSION_CHECK_INTERVAL_MS } from './session-tracker.js';

const SESSION_MS = 3000;
const HEARTBEAT_MS = SESSION_MS / 3;

/** A coordinator's tracker over one group of members a and b, on a clock the test drives. */
function coordinator(): { tracker: GroupSessionTracker; expired: string[]; apply: (command: GroupCommand) => void; clock: { now: number } } {
  const groups = new ConsumerGroups(() => [{ topic: 'orders', partitions: 4 }]);
  const clock = { now: 0 };
  const expired: string[] = [];
  const tracker = new GroupSessionTracker({
    groups: () => groups,
    isCoordinator: () => true,
    expire: async (command) => {
      expired.push(command.member);
    },
    now: () => clock.now,
  });
  const apply = (command: GroupCommand): void => {
    groups.apply(command);
    tracker.applied(command);
  };
  for (const member of ['a', 'b']) apply({ type: 'group-join', group: 'g', member, pattern: 'orders', sessionTimeoutMs: SESSION_MS });
  return { tracker, expired, apply, clock };
}

/** Runs the checks every interval up to `untilMs`, `beating` heartbeating every third of the session (the others silent). */
function run(c: ReturnType<typeof coordinator>, untilMs: number, beating: readonly string[] = ['a']): void {
  while (c.clock.now < untilMs) {
    c.clock.now += SESSION_CHECK_INTERVAL_MS;
    if (c.clock.now % HEARTBEAT_MS === 0) for (const member of beating) c.apply({ type: 'group-heartbeat', group: 'g', member });
    c.tracker.check();
  }
}

describe('GroupSessionTracker', () => {
  it('expires a member silent for longer than its session while the coordinator runs, and only it', () => {
    const c = coordinator();
    run(c, SESSION_MS + 5 * SESSION_CHECK_INTERVAL_MS);
    expect(c.expired).toEqual(['b']);
  });

  it('a coordinator that was stopped (SIGSTOP, a long stall) expires nobody for the time it could not hear them', () => {
    // Chaos seed 7 ("pause c3" while c3 led the metadata): on resume, its first check ran before the heartbeats
    // queued meanwhile were applied, and expired every member at once (each then lost its partitions).
    const c = coordinator();
    run(c, 1200, ['a', 'b']); // both heard last at 1000 ms
    // Stopped for 2.9 s: no check ran, no heartbeat was applied (3.1 s since both were last heard).
    c.clock.now += 2900;
    c.tracker.check();
    expect(c.expired).toEqual([]);
    // The heartbeats queued meanwhile are applied right after; a member that stays silent still expires a session later.
    c.apply({ type: 'group-heartbeat', group: 'g', member: 'a' });
    run(c, c.clock.now + SESSION_MS + 5 * SESSION_CHECK_INTERVAL_MS);
    expect(c.expired).toEqual(['b']);
  });
});
