/**
 * `npm run chaos -- --brokers 3|5 --replication-factor R --seconds S --seed N
 *   [--faults kill,pause,...] [--partitions 6] [--producers 3] [--storage-layout split|unified] [--fsync always|interval|mixed]
 *   [--no-tmpfs] [--keep] [--json FILE]`
 *
 * Runs one seeded chaos run against real broker processes (see
 * docs/reliability.md) and exits 1 when the checker found a violation,
 * printing the command that replays it.
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { Cleanup } from './cleanup.js';
import { formatReport } from './report.js';
import { runChaos } from './run.js';
import { FAULT_FAMILIES, type FaultFamily } from './schedule.js';

const USAGE = `usage: npm run chaos -- --brokers 3|5 --replication-factor R --seconds S --seed N
         [--faults ${FAULT_FAMILIES.join(',')}] [--partitions 6] [--producers 3] [--storage-layout split|unified]
         [--fsync always|interval|mixed] [--no-tmpfs] [--keep] [--json FILE]
--storage-layout: passed to every broker (default unified, the brokers' own default; docs/storage.md)
--fsync: passed to every broker (default always, the brokers' own default, or RELAYMQ_FSYNC when set; interval
         acknowledges before the fsync: its loss window opens only on a power cut, which chaos does not inject;
         mixed: always on c1, c3, ..., interval on the others)
environment: CHAOS_BROKER_LOG_LEVEL=info|debug makes the brokers' logs (kept with --keep) trace a slow seed (default warn)`;

function integer(name: string, value: string | undefined, fallback: number | undefined, min: number, max: number): number {
  if (value === undefined) {
    if (fallback === undefined) throw new Error(`--${name} is required`);
    return fallback;
  }
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) throw new Error(`--${name} must be an integer from ${min} to ${max}, got "${value}"`);
  return Number(value);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      brokers: { type: 'string' },
      'replication-factor': { type: 'string' },
      seconds: { type: 'string' },
      seed: { type: 'string' },
      faults: { type: 'string' },
      partitions: { type: 'string' },
      producers: { type: 'string' },
      'storage-layout': { type: 'string' },
      fsync: { type: 'string' },
      'no-tmpfs': { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const brokers = integer('brokers', values.brokers, undefined, 1, 9);
  const faults = (values.faults?.split(',').map((f) => f.trim()) ?? [...FAULT_FAMILIES]) as FaultFamily[];
  const unknown = faults.filter((f) => !(FAULT_FAMILIES as readonly string[]).includes(f));
  if (unknown.length > 0) throw new Error(`unknown fault families ${unknown.join(', ')}; known: ${FAULT_FAMILIES.join(', ')}`);
  const storageLayout = values['storage-layout'] ?? 'unified';
  if (storageLayout !== 'split' && storageLayout !== 'unified') throw new Error(`--storage-layout must be split or unified, got "${storageLayout}"`);
  // RELAYMQ_FSYNC (which the brokers inherit) was how a run asked for interval before the flag: the replay then names it.
  const fsync = values.fsync ?? process.env.RELAYMQ_FSYNC ?? 'always';
  if (fsync !== 'always' && fsync !== 'interval' && fsync !== 'mixed') throw new Error(`--fsync must be always, interval or mixed, got "${fsync}"`);
  const cleanup = new Cleanup();
  cleanup.handleSignals();
  const started = Date.now();
  const report = await runChaos({
    brokers,
    replicationFactor: integer('replication-factor', values['replication-factor'], Math.min(3, brokers), 1, brokers),
    seconds: integer('seconds', values.seconds, undefined, 1, 3600),
    seed: integer('seed', values.seed, undefined, 0, 2 ** 32 - 1),
    faults,
    partitions: integer('partitions', values.partitions, 6, 1, 64),
    producers: integer('producers', values.producers, 3, 1, 16),
    tmpfs: !values['no-tmpfs'],
    storageLayout,
    fsync,
    keep: values.keep,
    cleanup,
    log: (line) => process.stdout.write(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${line}\n`),
  });
  process.stdout.write(`${formatReport(report)}\n`);
  if (values.json !== undefined) await writeFile(values.json, `${JSON.stringify(report, null, 2)}\n`);
  return report.ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`chaos: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n${USAGE}\n`);
    process.exit(2);
  },
);
