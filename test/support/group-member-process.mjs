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
/** Resolves true once `done()` holds (checked every 2 ms), false after `timeoutMs`. */
const until = async (done, timeoutMs) => {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  return true;
};
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
      // Let the commit of the previous message be answered first: the one commit in flight would hold the late one
      // back (sent after the socket is read, when the member may have learnt it lost the partition: no commit at all).
      // Waited on, not a fixed pause (under load an answer may take longer); bounded, and said if it ran out.
      const committed = await until(() => client.stats().subscribe.commitsInFlight === 0, 5000);
      if (!committed) print({ ev: 'error', message: 'the previous commit was not answered within 5 s before freezing' });
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
