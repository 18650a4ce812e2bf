// A consumer-group member as its own OS process, for test/group-processes.test.ts:
// node group-member-process.mjs <name> <brokers,comma,separated> <group> <pattern> <sessionTimeoutMs> <commitIntervalMs>
// It prints one JSON line per event: handling start/end of each message, assigned, revoked, errors, and stats.
// SIGUSR2 asks it to freeze (SIGSTOP itself) in the middle of its next handler, so a test can pause a member
// exactly where a late commit follows its resumption: the handler finishes and its position is committed.
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
let freezeInNextHandler = false;
process.on('SIGUSR2', () => (freezeInNextHandler = true));
await client.subscribe(
  pattern,
  async (m) => {
    print({ ev: 'start', p: m.partition, o: m.offset, k: m.key, n: m.data.n });
    await new Promise((resolve) => setTimeout(resolve, 1));
    // Frozen after the handler's last await: once resumed, it returns (and commits) before any socket is read.
    if (freezeInNextHandler) {
      freezeInNextHandler = false;
      // Let the commit of the previous message be answered first: the one commit in flight would hold the late one back.
      await new Promise((resolve) => setTimeout(resolve, 300));
      // stdout to a pipe is synchronous: the test sees this line before the process stops.
      print({ ev: 'freeze', p: m.partition, o: m.offset });
      process.kill(process.pid, 'SIGSTOP');
      print({ ev: 'thawed', p: m.partition, o: m.offset });
    }
    print({ ev: 'end', p: m.partition, o: m.offset });
  },
  { group, from: 'earliest', sessionTimeoutMs: Number(sessionTimeoutMs) },
);
print({ ev: 'subscribed' });
setInterval(() => print({ ev: 'stats', fencedCommits: client.stats().subscribe.fencedCommits, commits: client.stats().subscribe.commits }), 250);
process.on('SIGTERM', () => void client.close().then(() => process.exit(0)));
