/**
 * The simulator in CI: hundreds of seeded fault schedules must pass every
 * safety checker and the liveness phase, with a static cluster and with
 * random membership changes; the same seed must replay exactly; and
 * deliberately injected bugs must be caught, which proves the checkers are
 * not vacuous.
 */
import { describe, expect, it } from 'vitest';
import { ProposalTracker, type ProposalAck, type Settlement } from '../../src/core/raft/proposals.js';
import type { RaftTestingKnobs } from '../../src/core/raft/raft.js';
import type { Value } from './checkers.js';
import { runSimulation, type SimOptions, type SimResult } from './sim.js';
import { distribution } from './stats.js';
import { SWARM_PROFILES, type SwarmParams } from './swarm.js';

/** A deliberately wrong acknowledgement: by index alone, whatever entry (another leader's) was applied there. */
class AcksByIndexAlone extends ProposalTracker<Value, Value> {
  private readonly proposedTerm = new Map<number, number>();
  override track(index: number, term: number, ack: ProposalAck, waiter: Value): ReturnType<ProposalTracker<Value, Value>['track']> {
    this.proposedTerm.set(index, term);
    return super.track(index, term, ack, waiter);
  }
  override onApplied(index: number, term: number, result: Value): Settlement<Value, Value> | undefined {
    return super.onApplied(index, this.proposedTerm.get(index) ?? term, result);
  }
  // It also keeps a deposed leader's proposals (which onRole would end, unknown), so the wrong ack is reachable in
  // every batch, not only in the one where the deposed leader learns of the new one.
  override onRole(): ReturnType<ProposalTracker<Value, Value>['onRole']> {
    return [];
  }
}

/** A deliberately wrong `all` acknowledgement: as soon as a quorum holds the entry. */
class AllAtQuorum extends ProposalTracker<Value, Value> {
  override track(index: number, term: number, _ack: ProposalAck, waiter: Value): ReturnType<ProposalTracker<Value, Value>['track']> {
    return super.track(index, term, 'quorum', waiter);
  }
}

const CI_SEEDS = 300;
const CI_STEPS = 10_000;
const RECONFIG_CI_SEEDS = 300;
/** Raft's safety properties (a liveness failure alone does not show a safety bug). */
const SAFETY = ['election safety', 'log matching', 'leader completeness', 'state machine safety', 'acknowledged write'];

function firstFailure(
  knobs: Partial<RaftTestingKnobs>,
  maxSeeds: number,
  params?: Partial<SwarmParams>,
  proposalTracker?: SimOptions['proposalTracker'],
  properties?: readonly string[],
): { seed: number; result: SimResult } | undefined {
  for (let seed = 1; seed <= maxSeeds; seed++) {
    const result = runSimulation({ seed, steps: 4000, knobs, params, proposalTracker });
    if (!result.ok && (properties === undefined || properties.includes(result.failure?.property ?? ''))) return { seed, result };
  }
  return undefined;
}

function describeFailure(result: SimResult): string {
  const f = result.failure;
  return f === undefined
    ? 'ok'
    : [`seed ${result.seed}: ${f.message}`, `fault profile: ${JSON.stringify(result.params)}`, ...f.trace.slice(-60)].join('\n');
}

describe('raft simulator', () => {
  it(`passes ${CI_SEEDS} swarm seeds of ${CI_STEPS} steps (crashes, partitions, loss, pauses), then heals and converges`, () => {
    const failures: string[] = [];
    const electionTicks: number[] = [];
    let steps = 0;
    let crashes = 0;
    let partitions = 0;
    let acked = 0;
    let ackedAll = 0;
    for (let seed = 1; seed <= CI_SEEDS; seed++) {
      const result = runSimulation({ seed, steps: CI_STEPS });
      steps += result.steps;
      crashes += result.stats.crashes;
      partitions += result.stats.partitions;
      acked += result.stats.acked;
      ackedAll += result.stats.ackedAll;
      if (result.electionTicksAfterHeal !== undefined) electionTicks.push(result.electionTicksAfterHeal);
      if (!result.ok) failures.push(describeFailure(result));
    }
    expect(failures.slice(0, 1).join('\n')).toBe('');
    // The runs were not idle: faults happened and clients got acknowledgements.
    expect(steps).toBeGreaterThanOrEqual(CI_SEEDS * CI_STEPS);
    expect(crashes).toBeGreaterThan(CI_SEEDS);
    expect(partitions).toBeGreaterThan(CI_SEEDS);
    expect(acked).toBeGreaterThan(CI_SEEDS * 10);
    expect(ackedAll).toBeGreaterThan(CI_SEEDS * 10);
    expect(distribution(electionTicks).count).toBe(CI_SEEDS);
  }, 120_000);

  it('passes the harsh churn profile without injected bugs', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const result = runSimulation({ seed, steps: 4000, params: SWARM_PROFILES['churn'] });
      expect(result.ok, describeFailure(result)).toBe(true);
    }
  }, 60_000);

  it('passes 300 quiescence seeds: groups quiesce between sparse proposals, false suspicions and random wakes under every fault, and after the heal a quiesced leader dies for good and is replaced', () => {
    const failures: string[] = [];
    let quiesces = 0;
    let signals = 0;
    const replaced: number[] = [];
    for (let seed = 1; seed <= 300; seed++) {
      const result = runSimulation({ seed, steps: CI_STEPS, params: SWARM_PROFILES['quiesce'] });
      quiesces += result.stats.quiesces;
      signals += result.stats.peerDownSignals;
      if (result.stats.ticksToReplaceQuiescedLeader !== undefined) replaced.push(result.stats.ticksToReplaceQuiescedLeader);
      if (!result.ok) failures.push(describeFailure(result));
    }
    expect(failures.slice(0, 1).join('\n')).toBe('');
    expect(quiesces).toBeGreaterThan(300 * 3);
    expect(signals).toBeGreaterThan(300);
    // Every seed lost its quiesced leader after the heal, and replaced it within the bound.
    expect(replaced.length).toBe(300);
  }, 120_000);

  it('passes 200 seeds with every restarted node recovering (RaftConfig.recoveringAtStart): elections under the ⌊n/2⌋ + 2 rule, leaders re-electing to end a recovery, then heals and converges', () => {
    const failures: string[] = [];
    let ended = 0;
    let reelections = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const result = runSimulation({ seed, steps: 4000, params: SWARM_PROFILES['recovering'] });
      ended += result.stats.recoveriesEnded;
      reelections += result.stats.recoveryElections;
      if (!result.ok) failures.push(describeFailure(result));
    }
    expect(failures.slice(0, 1).join('\n')).toBe('');
    // Not vacuous: restarted nodes recovered, some through their leader's re-election.
    expect(ended).toBeGreaterThan(200);
    expect(reelections).toBeGreaterThan(20);
  }, 60_000);

  it('replays a seed exactly', () => {
    const a = runSimulation({ seed: 4242, steps: 3000, keepTrace: true });
    const b = runSimulation({ seed: 4242, steps: 3000, keepTrace: true });
    expect(b.steps).toBe(a.steps);
    expect(b.stats).toEqual(a.stats);
    expect(b.trace).toEqual(a.trace);
    const c = runSimulation({ seed: 4243, steps: 3000, keepTrace: true });
    expect(c.trace).not.toEqual(a.trace);
  });

  it(`passes ${RECONFIG_CI_SEEDS} reconfiguration seeds of ${CI_STEPS} steps: random membership changes under every fault, then heals and converges`, () => {
    const failures: string[] = [];
    let accepted = 0;
    let committed = 0;
    let acked = 0;
    let crashes = 0;
    let partitions = 0;
    let elected = 0;
    for (let seed = 1; seed <= RECONFIG_CI_SEEDS; seed++) {
      const result = runSimulation({ seed, steps: CI_STEPS, params: SWARM_PROFILES['reconfig'] });
      accepted += result.stats.confChanges;
      committed += result.stats.confChangesApplied;
      acked += result.stats.acked;
      crashes += result.stats.crashes;
      partitions += result.stats.partitions;
      if (result.electionTicksAfterHeal !== undefined) elected++;
      if (!result.ok) failures.push(describeFailure(result));
    }
    expect(failures.slice(0, 1).join('\n')).toBe('');
    // Membership did change, a lot, under faults, while clients were acknowledged.
    expect(accepted).toBeGreaterThan(RECONFIG_CI_SEEDS * 10);
    expect(committed).toBeGreaterThan(RECONFIG_CI_SEEDS * 10);
    expect(acked).toBeGreaterThan(RECONFIG_CI_SEEDS * 10);
    expect(crashes).toBeGreaterThan(RECONFIG_CI_SEEDS);
    expect(partitions).toBeGreaterThan(RECONFIG_CI_SEEDS);
    expect(elected).toBe(RECONFIG_CI_SEEDS);
  }, 120_000);

  it('replays a reconfiguration seed exactly', () => {
    const a = runSimulation({ seed: 4242, steps: 3000, params: SWARM_PROFILES['reconfig'], keepTrace: true });
    const b = runSimulation({ seed: 4242, steps: 3000, params: SWARM_PROFILES['reconfig'], keepTrace: true });
    expect(b.stats).toEqual(a.stats);
    expect(b.trace).toEqual(a.trace);
    expect(a.stats.confChanges).toBeGreaterThan(0);
  });

  describe('finds deliberately injected bugs (the checkers are not vacuous)', () => {
    it('overlapping single-server changes (a second change before the first commits) break safety in the reconfiguration profile', () => {
      const found = firstFailure({ allowOverlappingConfChanges: true }, 100, SWARM_PROFILES['reconfig'], undefined, SAFETY);
      expect(found, 'no safety violation in 100 seeds').toBeDefined();
      expect(SAFETY).toContain(found?.result.failure?.property);
    }, 60_000);

    it('a node keeping the configuration of a truncated entry is caught by the configuration check', () => {
      const found = firstFailure({ keepTruncatedConf: true }, 100, SWARM_PROFILES['reconfig']);
      expect(found, 'no violation in 100 seeds').toBeDefined();
      expect(found?.result.failure?.property).toBe('configuration agrees with the log');
    }, 60_000);

    it('a follower granting two votes in one term breaks election safety', () => {
      const found = firstFailure({ grantTwoVotesPerTerm: true }, 100);
      expect(found, 'no violation in 100 seeds').toBeDefined();
      expect(found?.result.failure?.property).toBe('election safety');
    }, 60_000);

    it('voting for candidates with stale logs loses committed entries', () => {
      const found = firstFailure({ skipLogUpToDateCheck: true }, 100);
      expect(found, 'no violation in 100 seeds').toBeDefined();
      expect(['leader completeness', 'state machine safety', 'exception']).toContain(found?.result.failure?.property);
    }, 60_000);

    it('committing an earlier term entry by counting replicas (Figure 8) is caught in the churn profile', () => {
      const found = firstFailure({ commitEarlierTermByCounting: true }, 200, SWARM_PROFILES['churn']);
      expect(found, 'no violation in 200 seeds').toBeDefined();
      expect(['leader completeness', 'state machine safety']).toContain(found?.result.failure?.property);
    }, 60_000);

    it("acknowledging a proposal by its index alone (the broker's ProposalTracker ignoring the term) is caught", () => {
      const found = firstFailure({}, 100, undefined, () => new AcksByIndexAlone());
      expect(found, 'no violation in 100 seeds').toBeDefined();
      expect(found?.result.failure?.property).toBe('acknowledged write');
    }, 60_000);

    it('acknowledging ack `all` once a quorum holds the entry is caught', () => {
      const found = firstFailure({}, 50, undefined, () => new AllAtQuorum());
      expect(found, 'no violation in 50 seeds').toBeDefined();
      expect(found?.result.failure?.property).toBe('acknowledged on every replica');
    }, 60_000);

    it('acknowledging before fsync loses writes on crashes', () => {
      const found = firstFailure({ neverSync: true }, 50);
      expect(found, 'no violation in 50 seeds').toBeDefined();
    }, 60_000);
  });
});
