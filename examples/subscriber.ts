/**
 * Prints every message on `demo.>` (or the pattern given) until Ctrl-C.
 *
 *   npm run subscriber                          new messages on demo.>
 *   npm run subscriber -- --from earliest       everything still stored, then new ones
 *   npm run subscriber -- --from 10 'demo.*'    from offset 10 of each partition
 *   RELAYMQ_BROKERS=ws://127.0.0.1:7401,ws://127.0.0.1:7402 npm run subscriber
 *
 * After a failover the SDK resubscribes where it left off: the handler sees
 * each message once, in partition order.
 */
import { parseArgs } from 'node:util';
import { createClient, type Message, type StartPosition } from '@relaymq/sdk';
import { brokersFromEnv, describe, log } from './shared.js';

function parseFrom(value: string): StartPosition {
  if (value === 'earliest' || value === 'new') return value;
  if (/^\d+$/.test(value) && Number.isSafeInteger(Number(value))) return { offset: Number(value) };
  throw new Error(`--from must be earliest, new or an offset, got "${value}"`);
}

/** Message data as one line: bytes in hex (shortened), anything else as JSON. */
function show(data: unknown): string {
  if (data instanceof Uint8Array) {
    const hex = Buffer.from(data.subarray(0, 16)).toString('hex');
    return `<${data.length} bytes ${hex}${data.length > 16 ? '…' : ''}>`;
  }
  return JSON.stringify(data) ?? String(data);
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: { from: { type: 'string', default: 'new' } },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length > 1) throw new Error('give at most one pattern');
  const pattern = positionals[0] ?? 'demo.>';
  const from = parseFrom(values.from ?? 'new');
  const brokers = brokersFromEnv();

  // Listeners first: a failed first dial (a broker not running yet) is reported as it happens, with its cause.
  const client = createClient({ brokers });
  client.on('connecting', ({ url, attempt }) => log(`event connecting: ${url} (attempt ${attempt})`));
  client.on('connected', ({ broker }) => log(`event connected: ${broker.id} (${broker.url})`));
  client.on('failover', ({ from: previous, to, reason }) => log(`event failover: ${previous.id} → ${to.id} (${reason.code}); resuming where we left off`));
  client.on('reconnecting', ({ url, attempt, cause }) => log(`event reconnecting: ${url}, attempt ${attempt} failed: ${cause.message}`));
  client.on('disconnected', ({ broker, reason }) => log(`event disconnected: ${broker.id} (${reason.code})`));
  client.on('gap', (gap) => log(`event gap: ${gap.topic}[${gap.partition}] expected offset ${gap.expectedOffset}, first available ${gap.firstAvailableOffset}`));
  client.on('error', (error) => log(`event error: ${describe(error)}`));
  client.on('closed', ({ reason }) => log(`event closed: ${reason.code}`));

  log(`connecting to ${brokers.join(', ')}`);
  await client.start();
  log(`connected to ${client.stats().activeBroker?.id ?? '?'}`);

  const subscription = await client.subscribe(
    pattern,
    (message: Message) => {
      const key = message.key === undefined ? '' : ` key=${message.key}`;
      log(`${message.topic}[${message.partition}]@${message.offset}${key} ${show(message.data)}`);
    },
    { from },
  );
  log(`subscribed to ${pattern} from ${JSON.stringify(from)}; Ctrl-C to stop`);

  await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
  process.once('SIGINT', () => process.exit(130)); // a second Ctrl-C does not wait
  log('SIGINT: closing');
  await subscription.unsubscribe();
  await client.close();
  log(`received ${client.stats().subscribe.delivered} messages`);
}

main().catch((error: unknown) => {
  console.error(`subscriber: ${describe(error)}`);
  process.exitCode = 1;
});
