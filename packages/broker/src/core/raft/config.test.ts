import { describe, expect, it } from 'vitest';
import { RelayError } from '@relaymq/sdk/protocol';
import { RAFT_DEFAULTS, resolveRaftConfig } from './config.js';

describe('resolveRaftConfig', () => {
  it('returns the frozen defaults', () => {
    const config = resolveRaftConfig();
    expect(config).toEqual(RAFT_DEFAULTS);
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(RAFT_DEFAULTS)).toBe(true);
    expect(config.electionTicks).toBeGreaterThan(config.heartbeatTicks);
  });

  it('applies overrides', () => {
    expect(resolveRaftConfig({ electionTicks: 20, preVote: false })).toMatchObject({ electionTicks: 20, preVote: false, heartbeatTicks: 1, recoveringAtStart: false });
    expect(resolveRaftConfig({ recoveringAtStart: true }).recoveringAtStart).toBe(true);
  });

  it.each([
    [{ electionTicks: 3, heartbeatTicks: 3 }, 'electionTicks', /must exceed heartbeatTicks/],
    [{ electionTicks: 0 }, 'electionTicks', /integer >= 1/],
    [{ heartbeatTicks: 1.5 }, 'heartbeatTicks', /integer >= 1/],
    [{ maxInflightAppends: -1 }, 'maxInflightAppends', /integer >= 1/],
    [{ preVote: 'yes' as unknown as boolean }, 'preVote', /boolean/],
    [{ recoveringAtStart: 1 as unknown as boolean }, 'recoveringAtStart', /boolean/],
    [{ maxUncommittedEntries: 10, maxEntriesPerAppend: 64 }, 'maxUncommittedEntries', /at least maxEntriesPerAppend/],
    [{ electionTick: 10 } as unknown as object, 'electionTick', /unknown option/],
  ])('rejects %j naming %s', (options, field, message) => {
    let error: unknown;
    try {
      resolveRaftConfig(options);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(RelayError);
    expect((error as RelayError).code).toBe('INVALID_ARGUMENT');
    expect((error as Error).message).toContain(`raft option ${field}:`);
    expect((error as Error).message).toMatch(message);
  });
});
