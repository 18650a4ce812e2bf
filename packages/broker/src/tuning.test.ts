import { describe, expect, it } from 'vitest';
import { RAFT_DEFAULTS, resolveRaftConfig } from './core/raft/index.js';
import { SWIM_DEFAULTS, SWIM_PRESETS, resolveSwimConfig } from './core/swim/index.js';
import { RAFT_PRESETS, SWIM_TIMING_PRESETS, TICK_MS, raftConfigOf, swimConfigOf } from './tuning.js';

describe('timing presets', () => {
  it('lan and local are the SWIM core presets the simulator checks (written for 100 ms ticks)', () => {
    expect(resolveSwimConfig(swimConfigOf(SWIM_TIMING_PRESETS.lan, 100))).toEqual(SWIM_DEFAULTS);
    expect(resolveSwimConfig(swimConfigOf(SWIM_TIMING_PRESETS.local, 100))).toEqual(resolveSwimConfig({ preset: 'local' }));
    expect(resolveSwimConfig({ preset: 'local' })).toEqual({ ...SWIM_DEFAULTS, ...SWIM_PRESETS.local });
  });

  it('keeps every SWIM duration at the broker tick (the same milliseconds as at 100 ms ticks)', () => {
    expect(TICK_MS).toBe(50);
    const lan = resolveSwimConfig(swimConfigOf(SWIM_TIMING_PRESETS.lan));
    expect(lan.probeIntervalTicks * TICK_MS).toBe(1000);
    expect(lan.probeTimeoutTicks * TICK_MS).toBe(500);
    expect(lan.gossipIntervalTicks * TICK_MS).toBe(200);
    expect(lan.tombstoneTicks * TICK_MS).toBe(300_000);
  });

  it.each(['local', 'lan', 'wan'] as const)('the %s presets satisfy the cores’ own checks', (preset) => {
    expect(() => resolveSwimConfig(swimConfigOf(SWIM_TIMING_PRESETS[preset]))).not.toThrow();
    expect(() => resolveRaftConfig(raftConfigOf(RAFT_PRESETS[preset]))).not.toThrow();
  });

  it('raft lan is the ticks every group ran with: heartbeat 1, election 10 (of 50 ms)', () => {
    expect(raftConfigOf(RAFT_PRESETS.lan)).toEqual({ heartbeatTicks: RAFT_DEFAULTS.heartbeatTicks, electionTicks: RAFT_DEFAULTS.electionTicks });
    expect(raftConfigOf(RAFT_PRESETS.wan)).toEqual({ heartbeatTicks: 5, electionTicks: 50 });
  });

  it('rounds durations up to whole ticks, and keeps 0 (off) for gossip to the dead', () => {
    expect(raftConfigOf({ heartbeatMs: 60, electionTimeoutMs: 501 })).toEqual({ heartbeatTicks: 2, electionTicks: 11 });
    expect(swimConfigOf({ ...SWIM_TIMING_PRESETS.lan, gossipToTheDeadMs: 0 }).gossipToTheDeadTicks).toBe(0);
  });
});
