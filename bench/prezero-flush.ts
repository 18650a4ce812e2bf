// SCRATCH (issue 12, prezero): p50 of append + flush (fsync always) through SegmentLog in one process; RELAYMQ_PREZERO=0 turns the zero fill off. Run three at once.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SegmentLog } from '../packages/broker/src/storage/segments/segment-log.js';
import { nodeFileSystem } from '../packages/broker/src/storage/fs.js';
const bytes = Number(process.argv[2] ?? 300);
const count = Number(process.argv[3] ?? 3000);
const gapUs = Number(process.argv[4] ?? 0);
const dir = await mkdtemp(join(tmpdir(), 'prezero-lat-'));
const log = await SegmentLog.open(join(dir, 'p'), nodeFileSystem, { fsync: 'always' });
const data = new Uint8Array(bytes);
const t: number[] = [];
for (let i = 0; i < count + 500; i++) {
  const s = process.hrtime.bigint();
  log.append([{ timestamp: Date.now(), data, encoding: 'binary' as never }]);
  await log.flush();
  if (i >= 500) t.push(Number(process.hrtime.bigint() - s) / 1000);
  if (gapUs > 0) { const until = process.hrtime.bigint() + BigInt(gapUs * 1000); while (process.hrtime.bigint() < until) await new Promise((r) => setImmediate(r)); }
}
await log.close();
await rm(dir, { recursive: true, force: true });
t.sort((a, b) => a - b);
console.log(JSON.stringify({ prezero: process.env.RELAYMQ_PREZERO !== '0', bytes, p50: Math.round(t[t.length >> 1]!), p99: Math.round(t[Math.floor(t.length * 0.99)]!) }));
