/**
 * `npm start`: the failover demo. Starts a 3-broker cluster (one process per
 * broker, Raft logs in a temporary directory), a subscriber and a publisher,
 * kills the partition leader with SIGKILL in the middle of the stream,
 * restarts it, and prints what happened: sent, acknowledged, received, lost,
 * duplicated, out of order, and the longest publish stall. Exits 1 if
 * anything was lost, duplicated or reordered.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient, RelayError, type Message, type RelayClient } from '@relaymq/sdk';

const CLI = fileURLToPath(new URL('../packages/broker/dist/cli.js', import.meta.url));
const TOPIC = 'demo.payments';
const MESSAGES = 3000;
/** Publishes per millisecond-ish pacing: the stream lasts a few seconds so the kill lands mid-stream. */
const PUBLISH_EVERY_MS = 1;
const KILL_AT = 1000;
const RESTART_AFTER_MS = 1500;

interface Node {
  id: string;
  peerPort: number;
  url: string;
  /** The admin port's URL: where the demo asks who leads. */
  adminUrl: string;
  child: ChildProcess;
}

async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<net.Server>((resolve) => {
      const server = net.createServer();
      server.listen(0, '127.0.0.1', () => resolve(server));
    })),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

function startBroker(id: string, port: number, peerPort: number, adminPort: number, peers: string, dataDir: string): Promise<Node> {
  const child = spawn(
    process.execPath,
    [CLI, 'broker', '--id', id, '--port', String(port), '--peer-port', String(peerPort), '--admin-port', String(adminPort), '--peers', peers, '--data', dataDir, '--log-level', 'error'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = / listening on (ws:\/\/\S+) .* admin on (http:\/\/\S+)/.exec(out);
      if (match !== null) resolve({ id, peerPort, url: match[1] as string, adminUrl: match[2] as string, child });
    });
    child.once('exit', (code) => reject(new Error(`broker ${id} exited (${code}) before listening`)));
  });
}

/** Asks a broker's admin port which broker leads partition 0 of the topic (what `relaymq topic describe` prints). */
async function leaderOf(adminUrl: string): Promise<string> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const response = await fetch(`${adminUrl}/api/topics?topic=${TOPIC}`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
    const topic = response?.ok === true ? ((await response.json()) as { partitions: Array<{ leader: string | null }> }) : undefined;
    const leader = topic?.partitions[0]?.leader;
    if (leader !== undefined && leader !== null) return leader;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('no leader elected');
}

const describe = (error: unknown): string => (error instanceof RelayError ? `${error.code}: ${error.message}` : String(error));

async function main(): Promise<number> {
  const dataRoot = await mkdtemp(join(tmpdir(), 'relaymq-demo-'));
  const ids = ['b1', 'b2', 'b3'];
  const [clientPorts, peerPorts, adminPorts] = [await freePorts(3), await freePorts(3), await freePorts(3)];
  const peersOf = (i: number): string => ids.flatMap((id, j) => (j === i ? [] : [`${id}@127.0.0.1:${peerPorts[j]}`])).join(',');
  const start = (i: number): Promise<Node> =>
    startBroker(ids[i] as string, clientPorts[i] as number, peerPorts[i] as number, adminPorts[i] as number, peersOf(i), join(dataRoot, ids[i] as string));
  const nodes = await Promise.all(ids.map((_, i) => start(i)));
  const clients: RelayClient[] = [];
  try {
    console.log('relaymq demo: a 3-broker cluster, a publisher, a subscriber, and the partition leader killed mid-stream\n');
    for (const node of nodes) console.log(`  broker ${node.id}  ${node.url}  (pid ${node.child.pid})`);

    const urls = nodes.map((n) => n.url);
    // Listeners first, then start(): nothing the clients report is missed, not even a failed first dial.
    const subscriber = createClient({ brokers: urls, clientId: 'demo-subscriber', pingIntervalMs: 250 });
    const publisher = createClient({ brokers: urls, clientId: 'demo-publisher', pingIntervalMs: 250 });
    clients.push(subscriber, publisher);
    for (const [name, client] of [['publisher', publisher], ['subscriber', subscriber]] as const) {
      client.on('failover', ({ from, to, reason }) => console.log(`  ${name}: failover ${from.id} → ${to.id} (${reason.code})`));
      client.on('disconnected', ({ broker, reason }) => console.log(`  ${name}: lost ${broker.id} (${reason.code})`));
    }
    await Promise.all([subscriber.start(), publisher.start()]);

    const seen = new Map<number, number>();
    let outOfOrder = 0;
    let last = -1;
    await subscriber.subscribe(
      TOPIC,
      (m: Message<number>) => {
        if (m.data === -1) return; // the message that created the topic
        seen.set(m.data, (seen.get(m.data) ?? 0) + 1);
        if (m.data <= last) outOfOrder++;
        last = m.data;
      },
      { from: 'earliest' },
    );

    await publisher.publish(TOPIC, -1); // creates the topic; not counted
    const leaderId = await leaderOf(nodes[0]?.adminUrl as string);
    console.log(`\n  partition leader of ${TOPIC}: ${leaderId}; publishing ${MESSAGES} messages, SIGKILL of ${leaderId} after ${KILL_AT}\n`);

    let acknowledged = 0;
    let longestStallMs = 0;
    const failures: string[] = [];
    const pending: Array<Promise<void>> = [];
    for (let i = 0; i < MESSAGES; i++) {
      const sentAt = performance.now();
      pending.push(
        publisher.publish(TOPIC, i).then(
          () => {
            acknowledged++;
            longestStallMs = Math.max(longestStallMs, performance.now() - sentAt);
          },
          (error: unknown) => void failures.push(`message ${i}: ${describe(error)}`),
        ),
      );
      if (i === KILL_AT) {
        const victim = nodes.find((n) => n.id === leaderId) as Node;
        victim.child.kill('SIGKILL');
        console.log(`  ✗ killed ${victim.id} (pid ${victim.child.pid}) with SIGKILL`);
        setTimeout(() => {
          void start(ids.indexOf(victim.id)).then((restarted) => {
            nodes[nodes.indexOf(victim)] = restarted;
            console.log(`  ✓ restarted ${restarted.id} (pid ${restarted.child.pid}); it catches up from its Raft log and the leader`);
          });
        }, RESTART_AFTER_MS);
      }
      await new Promise((resolve) => setTimeout(resolve, PUBLISH_EVERY_MS));
    }
    await Promise.all(pending);
    const deadline = Date.now() + 10_000;
    while (seen.size < MESSAGES && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));

    const lost = MESSAGES - seen.size;
    const duplicated = [...seen.values()].reduce((sum, n) => sum + n - 1, 0);
    const stats = publisher.stats();
    console.log('\nsummary');
    console.log(`  sent                  ${MESSAGES}`);
    console.log(`  acknowledged          ${acknowledged}`);
    console.log(`  received              ${seen.size}`);
    console.log(`  lost                  ${lost}`);
    console.log(`  duplicated            ${duplicated}`);
    console.log(`  out of order          ${outOfOrder}`);
    console.log(`  longest publish stall ${Math.round(longestStallMs)} ms`);
    console.log(`  republished           ${stats.publish.republished} (recognised as duplicates: ${stats.publish.duplicates})`);
    for (const failure of failures.slice(0, 5)) console.log(`  failure: ${failure}`);
    const ok = lost === 0 && duplicated === 0 && outOfOrder === 0 && failures.length === 0;
    console.log(ok ? '\nOK: nothing lost, nothing duplicated, nothing out of order.' : '\nFAILED: see above.');
    return ok ? 0 : 1;
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    for (const node of nodes) node.child.kill('SIGTERM');
    await Promise.all(nodes.map((n) => (n.child.exitCode === null && n.child.signalCode === null ? new Promise((r) => n.child.once('exit', r)) : undefined)));
    await rm(dataRoot, { recursive: true, force: true });
  }
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
