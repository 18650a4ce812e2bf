/**
 * `npm run sim -- --seeds N [--from S] [--seed S] [--steps K] [--profile NAME] [--bug KNOB] [--trace] [--verbose]`
 *
 * Runs the Raft simulator over seeds `from .. from + N - 1` (or the single
 * `--seed`), each for K fault-phase steps then the liveness phase. A failing
 * seed prints its fault profile, the violation, the last events and the
 * command that replays it. The last line is a JSON summary: seeds, steps,
 * wall time, and the distribution of ticks to elect a leader after the heal
 * (with `--profile reconfig`, also the membership changes accepted, refused
 * and committed).
 */
import { NO_TESTING_KNOBS, type RaftTestingKnobs } from '../../src/core/raft/raft.js';
import { replayCommand, runSimulation, type SimResult } from './sim.js';
import { distribution } from './stats.js';
import { SWARM_PROFILES } from './swarm.js';

interface CliOptions {
  seeds: number;
  from: number;
  steps: number;
  bug: keyof RaftTestingKnobs | undefined;
  profile: string | undefined;
  trace: boolean;
  verbose: boolean;
  maxFailuresPrinted: number;
}

const DEFAULT_STEPS = 4000;

function parseArgs(argv: readonly string[]): CliOptions {
  const options: CliOptions = { seeds: 100, from: 1, steps: DEFAULT_STEPS, bug: undefined, profile: undefined, trace: false, verbose: false, maxFailuresPrinted: 3 };
  const integer = (flag: string, value: string | undefined): number => {
    const n = Number(value);
    if (value === undefined || !Number.isSafeInteger(n) || n < 0) throw new Error(`${flag} needs a non-negative integer, got ${String(value)}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    switch (arg) {
      case '--seeds':
        options.seeds = integer(arg, argv[++i]);
        break;
      case '--from':
        options.from = integer(arg, argv[++i]);
        break;
      case '--seed':
        options.from = integer(arg, argv[++i]);
        options.seeds = 1;
        break;
      case '--steps':
        options.steps = integer(arg, argv[++i]);
        break;
      case '--bug': {
        const name = argv[++i] ?? '';
        if (!Object.hasOwn(NO_TESTING_KNOBS, name)) throw new Error(`--bug must be one of ${Object.keys(NO_TESTING_KNOBS).join(', ')}`);
        options.bug = name as keyof RaftTestingKnobs;
        break;
      }
      case '--profile': {
        const name = argv[++i] ?? '';
        if (!Object.hasOwn(SWARM_PROFILES, name)) throw new Error(`--profile must be one of ${Object.keys(SWARM_PROFILES).join(', ')}`);
        options.profile = name;
        break;
      }
      case '--trace':
        options.trace = true;
        break;
      case '--verbose':
        options.verbose = true;
        break;
      case '--max-failures':
        options.maxFailuresPrinted = integer(arg, argv[++i]);
        break;
      default:
        throw new Error(`unknown argument ${String(arg)} (usage: --seeds N [--from S] [--seed S] [--steps K] [--profile NAME] [--bug KNOB] [--trace] [--verbose])`);
    }
  }
  return options;
}

/** The fault profile in one short line. */
function faultSummary(result: SimResult): string {
  const p = result.params;
  const w = p.weights;
  return (
    `prevote=${p.raft.preVote} cq=${p.raft.checkQuorum} loss=${p.lossRate.toFixed(2)} dup=${p.duplicateRate.toFixed(2)} delay=${p.minDelayMs}-${p.maxDelayMs}ms` +
    ` faults/${p.faultIntervalMs}ms crash:${w.crash} part:${w.partition} oneway:${w.oneWay} pause:${w.pause} transfer:${w.transfer}`
  );
}

function printFailure(result: SimResult, options: CliOptions): void {
  const failure = result.failure;
  if (failure === undefined) return;
  const lines = [
    `FAIL seed ${result.seed}: ${failure.message}`,
    `  at step ${failure.step}, ${failure.timeMs} ms virtual time`,
    `  fault profile: ${JSON.stringify(result.params)}`,
    `  last events:`,
    ...failure.trace.map((l) => `    ${l}`),
    `  replay: ${replayCommand(result.seed, options.steps, options.bug, options.profile)}`,
    '',
  ];
  process.stderr.write(`${lines.join('\n')}\n`);
}

function main(): void {
  const options = parseArgs(process.argv.slice(2));
  const started = performance.now();
  const electionTicks: number[] = [];
  const electionTicksNoLeader: number[] = [];
  const electionTicksPreVote: number[] = [];
  const convergeTicks: number[] = [];
  const failures: Array<{ seed: number; property: string; message: string; replay: string }> = [];
  let steps = 0;
  let acked = 0;
  let ackedAll = 0;
  let crashes = 0;
  let partitions = 0;
  let confChanges = 0;
  let confChangesRefused = 0;
  let confChangesApplied = 0;
  let quiesces = 0;
  let peerDownSignals = 0;
  let peerRecoveries = 0;
  let recoveryWakes = 0;
  let recoveriesEnded = 0;
  let recoveryElections = 0;
  let learnerCampaigns = 0;
  const quiescedLeaderReplaced: number[] = [];
  const knobs = options.bug === undefined ? undefined : { [options.bug]: true };
  for (let k = 0; k < options.seeds; k++) {
    const seed = options.from + k;
    const params = options.profile === undefined ? undefined : SWARM_PROFILES[options.profile];
    const result = runSimulation({ seed, steps: options.steps, knobs, params, keepTrace: options.trace });
    steps += result.steps;
    acked += result.stats.acked;
    ackedAll += result.stats.ackedAll;
    crashes += result.stats.crashes;
    partitions += result.stats.partitions;
    confChanges += result.stats.confChanges;
    confChangesRefused += result.stats.confChangesRefused;
    confChangesApplied += result.stats.confChangesApplied;
    quiesces += result.stats.quiesces;
    peerDownSignals += result.stats.peerDownSignals;
    peerRecoveries += result.stats.peerRecoveries;
    recoveryWakes += result.stats.recoveryWakes;
    recoveriesEnded += result.stats.recoveriesEnded;
    recoveryElections += result.stats.recoveryElections;
    learnerCampaigns += result.stats.learnerCampaigns;
    if (result.stats.ticksToReplaceQuiescedLeader !== undefined) quiescedLeaderReplaced.push(result.stats.ticksToReplaceQuiescedLeader);
    const elected = result.electionTicksAfterHeal;
    if (elected !== undefined) {
      electionTicks.push(elected);
      if (!result.leaderAtHeal) electionTicksNoLeader.push(elected);
      if (result.params.raft.preVote && result.params.raft.checkQuorum) electionTicksPreVote.push(elected);
    }
    if (result.convergeTicksAfterHeal !== undefined) convergeTicks.push(result.convergeTicksAfterHeal);
    if (result.failure !== undefined) {
      failures.push({ seed, property: result.failure.property, message: result.failure.message, replay: replayCommand(seed, options.steps, options.bug, options.profile) });
      if (failures.length <= options.maxFailuresPrinted) printFailure(result, options);
      else process.stderr.write(`FAIL seed ${seed}: ${result.failure.message}\n  replay: ${replayCommand(seed, options.steps, options.bug, options.profile)}\n`);
    } else if (options.trace && result.trace !== undefined) {
      process.stderr.write(`${result.trace.join('\n')}\n`);
    }
    if (options.verbose) {
      process.stderr.write(
        `seed ${seed}: ${result.ok ? 'ok' : 'FAIL'} steps=${result.steps} nodes=${result.params.nodeCount} ${faultSummary(result)} acked=${result.stats.acked} leaders=${result.stats.leaders} crashes=${result.stats.crashes} partitions=${result.stats.partitions} election=${result.electionTicksAfterHeal ?? '-'} converge=${result.convergeTicksAfterHeal ?? '-'}\n`,
      );
    }
  }
  const wallMs = Math.round(performance.now() - started);
  const summary = {
    seeds: options.seeds,
    from: options.from,
    stepsPerSeed: options.steps,
    totalSteps: steps,
    bug: options.bug ?? null,
    profile: options.profile ?? 'swarm',
    failures: failures.length,
    failedSeeds: failures.slice(0, 20).map((f) => f.seed),
    wallMs,
    acknowledgedValues: acked,
    acknowledgedOnAll: ackedAll,
    crashes,
    partitions,
    ...(options.profile === 'reconfig' ? { confChangesAccepted: confChanges, confChangesRefused, confChangesCommitted: confChangesApplied, learnerCampaigns } : {}),
    ...(options.profile === 'recovering' ? { recoveriesEnded, recoveryElections } : {}),
    electionTicksAfterHeal: distribution(electionTicks),
    electionTicksAfterHealWithoutLeaderAtHeal: distribution(electionTicksNoLeader),
    electionTicksAfterHealPreVoteAndCheckQuorum: distribution(electionTicksPreVote),
    convergeTicksAfterHeal: distribution(convergeTicks),
    quiesces,
    peerDownSignals,
    peerRecoveries,
    recoveryWakes,
    ticksToReplaceQuiescedLeader: distribution(quiescedLeaderReplaced),
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  process.exitCode = failures.length > 0 ? 1 : 0;
}

main();
