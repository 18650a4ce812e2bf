/**
 * Restart time of a standalone broker (`--data`) holding one large
 * partition, per storage layout (issue 12: a 1 GiB partition serving again in
 * ≤ 2 s, no full rescan). For each layout: a broker process is filled with
 * `--mib` MiB of `--bytes` B messages (pipelined), then crashed (SIGKILL:
 * no last checkpoint or snapshot) and started again on the same data, then
 * stopped (SIGTERM) and started again. Each start is timed from the spawn to
 * its listening line, to a fresh client's publish being acknowledged, and to
 * that client reading the last message filled; the first start, on the
 * empty directory, is the baseline (`emptyListeningMs`). `--clis
 * before=<path>/dist/cli.js,after=packages/broker/dist/cli.js` runs every
 * layout with each build in turn (results keyed `<name>/<layout>`), for a
 * before/after in one run at one load.
 *
 *   npm run build && npx tsx bench/restart.ts [--mib 1024] [--bytes 1024] [--layouts split,unified] [--clis name=path,...]
 *
 * Prints one JSON object; progress goes to stderr.
 */
import { loadavg } from 'node:os';
import { killChildren, loadSdk, makeTempDir, nowSeconds, payload, progress, removeTempDir, spawnBroker, type BrokerProcess } from './lib.js';

function arg(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? (process.argv[at + 1] ?? fallback) : fallback;
}

const TOPIC = 'big';
const IN_FLIGHT = 4096;

interface StartTimes {
  listeningMs: number;
  publishAckedMs: number;
  lastMessageReadMs: number;
}

async function main(): Promise<void> {
  const mib = Number(arg('mib', '1024'));
  const bytes = Number(arg('bytes', '1024'));
  const layouts = arg('layouts', 'split,unified').split(',') as Array<'split' | 'unified'>;
  const clis = arg('clis', '')
    .split(',')
    .filter((c) => c !== '')
    .map((c) => {
      const [name, path] = c.split('=');
      if (name === undefined || path === undefined) throw new Error(`--clis takes name=path pairs, got ${c}`);
      return { name, path };
    });
  const loadAtStart = loadavg()[0] as number;
  const count = Math.floor((mib * 1024 * 1024) / bytes);
  const sdk = await loadSdk('dist');
  const data = payload(bytes);
  const results: Record<string, unknown> = {};

  /** Starts the broker on `dir` and times it until it serves again: listening, a publish acknowledged, the last filled message read. */
  const timedStart = async (id: string, args: string[], last: number): Promise<{ broker: BrokerProcess; times: StartTimes }> => {
    const t0 = nowSeconds();
    const broker = await spawnBroker(id, args);
    const listening = nowSeconds();
    const client = await sdk.connect({ brokers: [broker.url], connectTimeoutMs: 30_000 });
    try {
      await client.publish(TOPIC, data);
      const acked = nowSeconds();
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the last message was not read within 60 s')), 60_000);
        client
          .subscribe(TOPIC, (m) => {
            if (m.offset === last) {
              clearTimeout(timer);
              resolve();
            }
          }, { from: { offset: last } })
          .catch(reject);
      });
      const read = nowSeconds();
      const ms = (t: number): number => Math.round((t - t0) * 1000);
      return { broker, times: { listeningMs: ms(listening), publishAckedMs: ms(acked), lastMessageReadMs: ms(read) } };
    } finally {
      await client.close();
    }
  };

  const runs = layouts.flatMap((layout) => (clis.length === 0 ? [{ layout, key: layout as string, cli: undefined as string | undefined }] : clis.map((c) => ({ layout, key: `${c.name}/${layout}`, cli: c.path }))));
  for (const { layout, key, cli } of runs) {
    if (cli === undefined) delete process.env.RELAYMQ_BENCH_BROKER_CLI;
    else process.env.RELAYMQ_BENCH_BROKER_CLI = cli;
    const dir = makeTempDir(`relaymq-restart-${layout}-`);
    const args = ['--data', dir, '--storage-layout', layout];
    try {
      // The baseline: a start on the empty directory (process start, elections), timed the same way to its listening line.
      const spawned = nowSeconds();
      let broker = await spawnBroker(`r-${layout}`, args);
      const emptyListeningMs = Math.round((nowSeconds() - spawned) * 1000);
      const client = await sdk.connect({ brokers: [broker.url] });
      progress(`${key}: filling ${count} messages of ${bytes} B (${mib} MiB)`);
      const fillStart = nowSeconds();
      let pending: Array<Promise<unknown>> = [];
      for (let i = 0; i < count; i++) {
        pending.push(client.publish(TOPIC, data));
        if (pending.length >= IN_FLIGHT) {
          await Promise.all(pending);
          pending = [];
        }
      }
      await Promise.all(pending);
      const fillSeconds = nowSeconds() - fillStart;
      await client.close();
      progress(`${key}: filled in ${fillSeconds.toFixed(1)} s; SIGKILL and restart`);
      await broker.kill();
      const afterKill = await timedStart(`r-${layout}`, args, count - 1);
      broker = afterKill.broker;
      progress(`${key}: after SIGKILL ${JSON.stringify(afterKill.times)}; SIGTERM and restart`);
      await broker.stop();
      const afterStop = await timedStart(`r-${layout}`, args, count - 1);
      progress(`${key}: after SIGTERM ${JSON.stringify(afterStop.times)}`);
      await afterStop.broker.stop();
      results[key] = { messages: count, emptyListeningMs, fillMsgPerSec: Math.round(count / fillSeconds), afterSigkill: afterKill.times, afterSigterm: afterStop.times };
    } finally {
      removeTempDir(dir);
    }
  }
  const load = { start: Math.round(loadAtStart * 100) / 100, end: Math.round((loadavg()[0] as number) * 100) / 100 };
  process.stdout.write(`${JSON.stringify({ mib, bytes, load, results }, null, 2)}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    killChildren();
    process.stderr.write(`restart bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
