/**
 * Publishes an order to `demo.orders` every 200 ms and prints each receipt.
 *
 *   npm run publisher                      until Ctrl-C
 *   npm run publisher -- --count 5         five orders, then exit
 *   npm run publisher -- --interval-ms 50  faster
 *   RELAYMQ_BROKERS=ws://127.0.0.1:7401,ws://127.0.0.1:7402 npm run publisher
 *
 * Publishes are not awaited one by one: while no broker is reachable they
 * wait in the SDK's bounded outbox, and their receipts arrive, in order, once
 * a broker is back.
 */
import { parseArgs } from 'node:util';
import { createClient, type PublishReceipt } from '@relaymq/sdk';
import { brokersFromEnv, describe, log } from './shared.js';

const TOPIC = 'demo.orders';

/** An order, msgpack-encoded by the SDK. */
interface Order {
  id: number;
  /** ISO time of the publish call. */
  at: string;
}

function positiveInteger(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got "${value}"`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      count: { type: 'string' },
      'interval-ms': { type: 'string', default: '200' },
    },
    strict: true,
  });
  const count = positiveInteger('count', values.count);
  const intervalMs = positiveInteger('interval-ms', values['interval-ms']) ?? 200;
  const brokers = brokersFromEnv();

  // Listeners first: a failed first dial (a broker not running yet) is reported as it happens, with its cause.
  const client = createClient({ brokers });
  // Every state change is an event; none of them needs handling for correctness.
  client.on('connecting', ({ url, attempt }) => log(`event connecting: ${url} (attempt ${attempt})`));
  client.on('connected', ({ broker }) => log(`event connected: ${broker.id} (${broker.url})`));
  client.on('failover', ({ from, to, reason }) => log(`event failover: ${from.id} → ${to.id} (${reason.code})`));
  client.on('reconnecting', ({ url, attempt, cause }) => log(`event reconnecting: ${url}, attempt ${attempt} failed: ${cause.message}`));
  client.on('disconnected', ({ broker, reason }) => log(`event disconnected: ${broker.id} (${reason.code}); publishes wait in the outbox`));
  client.on('brokers', ({ added, removed }) => log(`event brokers: +[${added.join(', ')}] -[${removed.join(', ')}]`));
  client.on('closed', ({ reason }) => log(`event closed: ${reason.code}`));

  log(`connecting to ${brokers.join(', ')}`);
  await client.start();
  log(`connected to ${client.stats().activeBroker?.id ?? '?'}`);

  let sent = 0;
  let failed = 0;
  const pending = new Set<Promise<void>>();
  let timer: ReturnType<typeof setInterval> | undefined;
  let done: () => void = () => {};
  const finished = new Promise<void>((resolve) => (done = resolve));

  const publishOne = (): void => {
    const order: Order = { id: ++sent, at: new Date().toISOString() };
    const started = performance.now();
    const outcome = client.publish(TOPIC, order).then(
      (receipt: PublishReceipt) => {
        const ms = (performance.now() - started).toFixed(1);
        const duplicate = receipt.duplicate ? ' duplicate' : '';
        log(`order #${order.id} → ${receipt.topic} partition ${receipt.partition} offset ${receipt.offset}${duplicate} (${ms} ms)`);
      },
      (error: unknown) => {
        failed++;
        log(`order #${order.id} failed: ${describe(error)}`);
      },
    );
    pending.add(outcome);
    void outcome.finally(() => pending.delete(outcome));
    if (count !== undefined && sent >= count) stop();
  };

  const stop = (): void => {
    clearInterval(timer);
    done();
  };

  let interrupted = false;
  process.on('SIGINT', () => {
    if (interrupted) process.exit(130); // a second Ctrl-C does not wait
    interrupted = true;
    log('SIGINT: finishing (Ctrl-C again to quit at once)');
    stop();
  });

  publishOne();
  if (count === undefined || sent < count) timer = setInterval(publishOne, intervalMs);
  await finished;

  // close() waits (up to closeTimeoutMs) for the outbox to drain; receipts still print meanwhile.
  await client.close();
  await Promise.all(pending);
  const stats = client.stats().publish;
  log(`published ${stats.published}, acknowledged ${stats.acknowledged}, duplicates ${stats.duplicates}, failed ${failed}`);
  process.exitCode = failed === 0 ? 0 : 1;
}

main().catch((error: unknown) => {
  console.error(`publisher: ${describe(error)}`);
  process.exitCode = 1;
});
