/**
 * `npm start`: a broker, a subscriber and a publisher in one process.
 *
 * Starts a broker on a free loopback port (3 partitions per topic), subscribes
 * to `demo.>`, publishes 20 orders to `demo.orders` keyed by customer, and
 * checks what arrived: every order acknowledged and delivered once, and in
 * order within each partition (hence per customer). Exits 1 if not.
 */
import { startBroker, type Broker } from '@relaymq/broker';
import { createClient, type Message, type PublishReceipt, type RelayClient } from '@relaymq/sdk';
import { describe } from './shared.js';

const TOPIC = 'demo.orders';
const PATTERN = 'demo.>';
const ORDERS = 20;
const CUSTOMERS = ['ada', 'alan', 'linus'];
const PARTITIONS = 3;
/** Pause between publishes, so the output reads as a conversation. */
const PUBLISH_INTERVAL_MS = 40;
/** How long to wait for the last deliveries before calling them lost. */
const DELIVERY_TIMEOUT_MS = 3000;

interface Order {
  id: number;
  customer: string;
  amount: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function main(): Promise<number> {
  console.log('relaymq demo: one broker, one subscriber, one publisher\n');
  const broker = await startBroker({ id: 'demo', host: '127.0.0.1', port: 0, defaultPartitions: PARTITIONS });
  console.log(`  broker    ${broker.id} listening on ${broker.url} (${PARTITIONS} partitions per topic)`);
  const clients: RelayClient[] = [];
  try {
    return await run(broker, clients);
  } finally {
    // Also on failure: nothing may keep the process alive. Both closes are idempotent.
    await Promise.all(clients.map((client) => client.close()));
    await broker.close();
  }
}

/** The demo proper; returns the exit code. Clients it opens go into `clients`. */
async function run(broker: Broker, clients: RelayClient[]): Promise<number> {
  // Listeners first, then start(): nothing the clients report is missed, not even a failed first dial.
  const subscriberClient = createClient({ brokers: [broker.url], clientId: 'demo-subscriber' });
  clients.push(subscriberClient);
  const publisherClient = createClient({ brokers: [broker.url], clientId: 'demo-publisher' });
  clients.push(publisherClient);
  for (const [name, client] of [['subscriber', subscriberClient], ['publisher', publisherClient]] as const) {
    client.on('reconnecting', ({ url, cause }) => console.log(`  ${name}: cannot reach ${url}: ${cause.message}`));
    client.on('failover', ({ from, to, reason }) => console.log(`  ${name}: failover ${from.id} → ${to.id} (${reason.code})`));
    client.on('disconnected', ({ broker: lost, reason }) => console.log(`  ${name}: disconnected from ${lost.id} (${reason.code})`));
    client.on('error', (error) => console.log(`  ${name}: error ${describe(error)}`));
  }
  await Promise.all([subscriberClient.start(), publisherClient.start()]);

  // What the subscriber saw: per order id how often, and per partition the offsets in arrival order.
  const received = new Map<number, number>();
  const offsetsByPartition = new Map<number, number[]>();
  const idsByCustomer = new Map<string, number[]>();
  let allReceived: () => void = () => {};
  const complete = new Promise<void>((resolve) => (allReceived = resolve));

  const subscription = await subscriberClient.subscribe<Order>(
    PATTERN,
    (message: Message<Order>) => {
      const order = message.data;
      received.set(order.id, (received.get(order.id) ?? 0) + 1);
      offsetsByPartition.set(message.partition, [...(offsetsByPartition.get(message.partition) ?? []), message.offset]);
      idsByCustomer.set(order.customer, [...(idsByCustomer.get(order.customer) ?? []), order.id]);
      console.log(`    ← received   order #${String(order.id).padEnd(2)} ${message.topic} partition ${message.partition} offset ${message.offset}`);
      if (received.size === ORDERS) allReceived();
    },
    { from: 'new' },
  );
  console.log(`  subscriber connected to ${subscriberClient.stats().activeBroker?.id}, subscribed to ${PATTERN} from "new"`);
  console.log(`  publisher  connected to ${publisherClient.stats().activeBroker?.id}, publishing ${ORDERS} orders to ${TOPIC}\n`);

  let acknowledged = 0;
  let duplicateReceipts = 0;
  const failures: string[] = [];
  const receipts: Array<Promise<void>> = [];
  for (let id = 1; id <= ORDERS; id++) {
    const customer = CUSTOMERS[id % CUSTOMERS.length] as string;
    const order: Order = { id, customer, amount: 10 * id };
    // The key picks the partition: one customer's orders stay in order.
    const receipt = publisherClient.publish(TOPIC, order, { key: customer }).then(
      (r: PublishReceipt) => {
        acknowledged++;
        if (r.duplicate) duplicateReceipts++;
        console.log(`  → acknowledged order #${String(id).padEnd(2)} key ${customer.padEnd(5)} partition ${r.partition} offset ${r.offset}`);
      },
      (error: unknown) => {
        failures.push(`order #${id}: ${describe(error)}`);
      },
    );
    receipts.push(receipt);
    await sleep(PUBLISH_INTERVAL_MS);
  }
  await Promise.all(receipts);

  let deadline: ReturnType<typeof setTimeout> | undefined;
  const timedOut = await Promise.race([
    complete.then(() => false),
    new Promise<boolean>((resolve) => (deadline = setTimeout(() => resolve(true), DELIVERY_TIMEOUT_MS))),
  ]);
  clearTimeout(deadline);
  if (timedOut) failures.push(`only ${received.size} of ${ORDERS} orders arrived within ${DELIVERY_TIMEOUT_MS} ms`);

  await subscription.unsubscribe();

  // Checks: nothing lost, nothing twice, offsets dense and increasing per partition, ids increasing per customer.
  const lost = ORDERS - received.size;
  const duplicates = [...received.values()].reduce((sum, times) => sum + (times - 1), 0) + duplicateReceipts;
  let outOfOrder = 0;
  for (const offsets of offsetsByPartition.values()) {
    for (let i = 1; i < offsets.length; i++) if ((offsets[i] as number) !== (offsets[i - 1] as number) + 1) outOfOrder++;
  }
  for (const ids of idsByCustomer.values()) {
    for (let i = 1; i < ids.length; i++) if ((ids[i] as number) <= (ids[i - 1] as number)) outOfOrder++;
  }

  const ok = lost === 0 && duplicates === 0 && outOfOrder === 0 && failures.length === 0 && acknowledged === ORDERS;
  console.log('\nsummary');
  console.log(`  sent          ${ORDERS}`);
  console.log(`  acknowledged  ${acknowledged}`);
  console.log(`  received      ${received.size}`);
  console.log(`  duplicates    ${duplicates}`);
  console.log(`  out of order  ${outOfOrder}`);
  console.log(`  lost          ${lost}`);
  for (const failure of failures) console.log(`  failure: ${failure}`);
  console.log(ok ? '\nOK: every order delivered once, in order per partition.' : '\nFAILED: see above.');
  return ok ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(`demo: ${describe(error)}`);
    process.exitCode = 1;
  },
);
