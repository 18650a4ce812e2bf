/**
 * What this machine allows, measured in the same run as the figures it
 * bounds: a Node-to-Node loopback round trip (every replicated ack needs two:
 * client to leader, leader to follower), one small write + fdatasync (what
 * `fsync: always` adds to an ack), and the disk's bandwidth when written the
 * way a broker writes (batches of up to 256 KiB, each fdatasynced). The three
 * brokers of the cluster runs share this one disk: a durable publish writes
 * its bytes three times to it (several writers may together get more than
 * one writer's bandwidth).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { open } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { makeTempDir, percentile, removeTempDir } from './lib.js';

export interface Floors {
  /** Round trip of 64 bytes between two Node processes on 127.0.0.1, p50 µs. */
  loopbackRoundTripP50Us: number;
  /** A 4 KiB write then fdatasync on the benchmark's temporary directory, p50 µs. */
  fdatasync4KiBP50Us: number;
  /** 256 KiB writes each followed by fdatasync, one writer, MB/s (10^6 bytes). */
  fdatasyncWriteMBps: number;
  /**
   * A 4 KiB write then fdatasync on the event loop's thread (as a broker
   * syncs a small batch), in three processes at once, each its own file:
   * what each replica of an `fsync: always` ack gets from the one disk the
   * three brokers share. p50 µs over the three.
   */
  fdatasync4KiBThreeAtOnceP50Us?: number;
}

const ROUND_TRIPS = 2_000;
const SMALL_SYNCS = 300;
const LARGE_WRITES = 160; // 40 MiB
const LARGE_WRITE_BYTES = 256 * 1024;
/** Each measurement stops after this long whatever its count. */
const STEP_BOUND_MS = 20_000;

/** An echo server in another Node process: it prints its port, then echoes until its stdin closes. */
const ECHO_SERVER = `
const net = require('node:net');
const server = net.createServer((s) => { s.setNoDelay(true); s.on('data', (d) => s.write(d)); s.on('error', () => {}); });
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

async function loopbackRoundTripP50Us(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ECHO_SERVER], { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    const [line] = (await Promise.race([
      once(createInterface({ input: child.stdout }), 'line'),
      new Promise((_, reject) => setTimeout(() => reject(new Error('echo server did not start in 5 s')), 5_000)),
    ])) as [string];
    const socket = net.connect({ host: '127.0.0.1', port: Number(line), noDelay: true });
    await once(socket, 'connect');
    const payload = Buffer.alloc(64, 7);
    const samples: number[] = [];
    const deadline = performance.now() + STEP_BOUND_MS;
    for (let i = 0; i < ROUND_TRIPS && performance.now() < deadline; i++) {
      const started = process.hrtime.bigint();
      let received = 0;
      const echoed = new Promise<void>((resolve) => {
        const onData = (chunk: Buffer): void => {
          received += chunk.length;
          if (received >= payload.length) {
            socket.off('data', onData);
            resolve();
          }
        };
        socket.on('data', onData);
      });
      socket.write(payload);
      await echoed;
      samples.push(Number(process.hrtime.bigint() - started) / 1_000);
    }
    socket.destroy();
    return Math.round(percentile(samples.sort((a, b) => a - b), 50));
  } finally {
    child.stdin.end();
    child.kill();
  }
}

async function diskFloors(): Promise<Pick<Floors, 'fdatasync4KiBP50Us' | 'fdatasyncWriteMBps'>> {
  const dir = makeTempDir('relaymq-bench-floors-');
  try {
    const small = await open(join(dir, 'small'), 'w');
    const block = Buffer.alloc(4096, 1);
    const samples: number[] = [];
    let deadline = performance.now() + STEP_BOUND_MS;
    for (let i = 0; i < SMALL_SYNCS && performance.now() < deadline; i++) {
      const started = process.hrtime.bigint();
      await small.write(block);
      await small.datasync();
      samples.push(Number(process.hrtime.bigint() - started) / 1_000);
    }
    await small.close();
    const large = await open(join(dir, 'large'), 'w');
    const chunk = Buffer.alloc(LARGE_WRITE_BYTES, 2);
    let written = 0;
    const started = performance.now();
    deadline = started + STEP_BOUND_MS;
    for (let i = 0; i < LARGE_WRITES && performance.now() < deadline; i++) {
      await large.write(chunk);
      await large.datasync();
      written += chunk.length;
    }
    const seconds = (performance.now() - started) / 1_000;
    await large.close();
    return { fdatasync4KiBP50Us: Math.round(percentile(samples.sort((a, b) => a - b), 50)), fdatasyncWriteMBps: Math.round(written / 1e6 / seconds) };
  } finally {
    removeTempDir(dir);
  }
}

/**
 * A writer in another Node process: once its stdin says go, it writes 4 KiB
 * and fdatasyncs on its own thread, `count` times or until its time bound,
 * then prints every sample (µs) as JSON.
 */
const SYNC_WRITER = `
const fs = require('node:fs');
const [file, count, boundMs] = process.argv.slice(1);
const fd = fs.openSync(file, 'w');
const block = Buffer.alloc(4096, 3);
process.stdout.write('ready\\n');
process.stdin.once('data', () => {
  const samples = [];
  const deadline = performance.now() + Number(boundMs);
  for (let i = 0; i < Number(count) && performance.now() < deadline; i++) {
    const started = process.hrtime.bigint();
    fs.writeSync(fd, block);
    fs.fdatasyncSync(fd);
    samples.push(Number(process.hrtime.bigint() - started) / 1000);
  }
  fs.closeSync(fd);
  process.stdout.write(JSON.stringify(samples) + '\\n', () => process.exit(0));
});
`;

/** Three processes write + fdatasync at once, each to its own file (see {@link Floors.fdatasync4KiBThreeAtOnceP50Us}). */
async function concurrentSyncP50Us(writers: number): Promise<number> {
  const dir = makeTempDir('relaymq-bench-floors-');
  const children = Array.from({ length: writers }, (_, i) =>
    spawn(process.execPath, ['-e', SYNC_WRITER, join(dir, `w${i}`), String(SMALL_SYNCS), String(STEP_BOUND_MS)], { stdio: ['pipe', 'pipe', 'inherit'] }),
  );
  try {
    const lines = children.map((child) => createInterface({ input: child.stdout })[Symbol.asyncIterator]());
    const nextLine = async (it: AsyncIterator<string>): Promise<string> => {
      const bound = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('a sync writer did not answer in time')), STEP_BOUND_MS + 5_000).unref());
      const line = await Promise.race([it.next(), bound]);
      if (line.done === true) throw new Error('a sync writer exited early');
      return line.value;
    };
    await Promise.all(lines.map(nextLine)); // every one ready
    for (const child of children) child.stdin.write('go\n');
    const samples = (await Promise.all(lines.map(nextLine))).flatMap((line) => JSON.parse(line) as number[]);
    return Math.round(percentile(samples.sort((a, b) => a - b), 50));
  } finally {
    for (const child of children) child.kill();
    removeTempDir(dir);
  }
}

/** Measures the floors; about 5 s on a quiet machine. */
export async function floors(): Promise<Floors> {
  return {
    loopbackRoundTripP50Us: await loopbackRoundTripP50Us(),
    ...(await diskFloors()),
    fdatasync4KiBThreeAtOnceP50Us: await concurrentSyncP50Us(3),
  };
}
