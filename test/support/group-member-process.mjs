// A consumer-group member as its own OS process, for test/group-processes.test.ts:
// node group-member-process.mjs <name> <brokers,comma,separated> <group> <pattern> <sessionTimeoutMs> <commitIntervalMs>
// It prints one JSON line per event: handling start/end of each message, assigned, revoked, errors, and stats.
import { connect } from '../../packages/sdk/dist/node.js';

const [name, brokers, group, pattern, sessionTimeoutMs, commitIntervalMs] = process.argv.slice(2);
const print = (line) => process.stdout.write(`${JSON.stringify({ member: name, t: Date.now(), ...line })}\n`);

const client = await connect({
  brokers: brokers.split(','),
  connectTimeoutMs: 10_000,
  reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
  commit: { intervalMs: Number(commitIntervalMs) },
});
client.on('assigned', ({ partitions }) => print({ ev: 'assigned', partitions: partitions.map((p) => p.partition) }));
client.on('revoked', ({ partitions, reason }) => print({ ev: 'revoked', partitions: partitions.map((p) => p.partition), reason }));
client.on('error', (error) => print({ ev: 'error', message: String(error?.message ?? error) }));
await client.subscribe(
  pattern,
  async (m) => {
    print({ ev: 'start', p: m.partition, o: m.offset, k: m.key, n: m.data.n });
    await new Promise((resolve) => setTimeout(resolve, 1));
    print({ ev: 'end', p: m.partition, o: m.offset });
  },
  { group, from: 'earliest', sessionTimeoutMs: Number(sessionTimeoutMs) },
);
print({ ev: 'subscribed' });
setInterval(() => print({ ev: 'stats', fencedCommits: client.stats().subscribe.fencedCommits, commits: client.stats().subscribe.commits }), 250);
process.on('SIGTERM', () => void client.close().then(() => process.exit(0)));
