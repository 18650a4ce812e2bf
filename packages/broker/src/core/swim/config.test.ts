import { describe, expect, it } from 'vitest';
import { RelayError } from '@relaymq/sdk/protocol';
import { SWIM_DEFAULTS, SWIM_PRESETS, indirectNackTicks, resolveSwimConfig, type SwimConfigOptions } from './config.js';

describe('resolveSwimConfig', () => {
  it('returns the frozen defaults (the lan preset) when given nothing', () => {
    const config = resolveSwimConfig();
    expect(config).toEqual(SWIM_DEFAULTS);
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(SWIM_DEFAULTS)).toBe(true);
    expect(resolveSwimConfig({ preset: 'lan' })).toEqual(SWIM_DEFAULTS);
  });

  it('applies a preset, then explicit fields over it', () => {
    const local = resolveSwimConfig({ preset: 'local' });
    expect(local).toEqual({ ...SWIM_DEFAULTS, ...SWIM_PRESETS.local });
    expect(local.probeTimeoutTicks).toBe(2);
    expect(resolveSwimConfig({ preset: 'local', indirectChecks: 2 }).indirectChecks).toBe(2);
  });

  it('accepts its own output again', () => {
    const once = resolveSwimConfig({ preset: 'local', maxMembers: 64 });
    expect(resolveSwimConfig(once)).toEqual(once);
  });

  const rejected: Array<[string, SwimConfigOptions, string]> = [
    ['unknown option', { probeIntervalMs: 1000 } as unknown as SwimConfigOptions, 'probeIntervalMs'],
    ['unknown preset', { preset: 'wan' } as unknown as SwimConfigOptions, 'preset'],
    ['non-integer', { probeIntervalTicks: 2.5 }, 'probeIntervalTicks'],
    ['zero where at least 1 is needed', { gossipFanout: 0 }, 'gossipFanout'],
    ['negative', { indirectChecks: -1 }, 'indirectChecks'],
    ['NaN', { maxMembers: Number.NaN }, 'maxMembers'],
    ['probe timeout not shorter than the interval', { probeTimeoutTicks: 10 }, 'probeTimeoutTicks'],
    ['no room left for the indirect probe', { probeIntervalTicks: 6, probeTimeoutTicks: 5 }, 'probeTimeoutTicks'],
    ['gossip slower than probing', { gossipIntervalTicks: 11 }, 'gossipIntervalTicks'],
    ['suspicion too short to refute', { suspicionMult: 1 }, 'suspicionMult'],
    ['gossip to the dead outlives the tombstone', { gossipToTheDeadTicks: 5000 }, 'gossipToTheDeadTicks'],
    ['reconnect slower than reaping', { reconnectIntervalTicks: 3000 }, 'reconnectIntervalTicks'],
    ['piggyback larger than a gossip message', { maxPiggybackBytes: 10_000 }, 'maxPiggybackBytes'],
    ['broadcast queue smaller than one gossip message', { maxBroadcastBytes: 100 }, 'maxBroadcastBytes'],
    ['a one-member table', { maxMembers: 1 }, 'maxMembers'],
    ['more members than a sync may carry', { maxMembers: 5000 }, 'maxMembers'],
  ];
  it.each(rejected)('rejects %s, naming the field', (_, options, field) => {
    let error: unknown;
    try {
      resolveSwimConfig(options);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(RelayError);
    expect((error as RelayError).code).toBe('INVALID_ARGUMENT');
    expect((error as RelayError).message).toContain(field);
  });

  it('allows zero indirect checks and no gossip to the dead', () => {
    expect(resolveSwimConfig({ indirectChecks: 0, gossipToTheDeadTicks: 0 }).indirectChecks).toBe(0);
  });
});

describe('tick helpers', () => {
  it.each([
    [{ probeIntervalTicks: 10, probeTimeoutTicks: 5 }, 2],
    [{ probeIntervalTicks: 10, probeTimeoutTicks: 2 }, 4],
    [{ probeIntervalTicks: 4, probeTimeoutTicks: 2 }, 1],
  ])('indirect nack wait for %o is %i ticks', (fields, ticks) => {
    expect(indirectNackTicks(resolveSwimConfig(fields))).toBe(ticks);
  });
});
