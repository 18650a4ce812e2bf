import { describe, expect, it } from 'vitest';
import type { Cluster3Result } from '../bench/cluster.js';
import { floors } from '../bench/floors.js';
import { summarize } from '../bench/summary.js';

/**
 * The benchmark's `summary` block judges issue 12's targets as ratios within
 * one run (fsync always against the in-memory cluster), and its floors are
 * measured for real; a target judged the wrong way round, or a floor that
 * stopped measuring, fails here rather than in a report.
 */

const throughput = (msgPerSec: number) => ({ msgPerSec }) as NonNullable<Cluster3Result['pipelined128B']>;
const latency = (p50Us: number, p99Us: number) => ({ p50Us, p99Us }) as NonNullable<Cluster3Result['sequentialPublish']>;

describe('bench summary', () => {
  it("judges issue 12's always-against-memory ratios of the same run", () => {
    const memory: Cluster3Result = { storage: 'memory', pipelined128B: throughput(100_000), pipelined1KiB: throughput(100_000), sequentialPublish: latency(400, 2_000) };
    const always: Cluster3Result = { storage: 'fsync', pipelined128B: throughput(90_000), pipelined1KiB: throughput(70_000), sequentialPublish: latency(700, 4_000) };
    const { figures } = summarize({ cluster3: always, cluster3Memory: memory }, undefined, { loopbackRoundTripP50Us: 90, fdatasync4KiBP50Us: 270, fdatasyncWriteMBps: 180 });
    expect(figures['cluster3.pipelined128BVsMemory']).toMatchObject({ value: 0.9, atLeast: 0.85, met: true, issue: 12 });
    expect(figures['cluster3.pipelined1KiBVsMemory']).toMatchObject({ value: 0.7, atLeast: 0.85, met: false, issue: 12 });
    expect(figures['cluster3.pipelined1KiBVsMemory']?.note).toContain('write 307 MB/s of payload to the one disk, which takes 180 MB/s');
    expect(figures['cluster3.awaitedP50VsMemory']).toMatchObject({ value: 1.75, atMost: 1.5, met: false, issue: 12 });
    expect(figures['cluster3.awaitedP50VsMemory']?.note).toContain('at least the in-memory p50 plus one: 670 µs, 1.68× in memory');
    expect(figures['cluster3Memory.awaitedP50']).toMatchObject({ value: 400, met: true });
    // With the three-at-once floor measured, the floor is the in-memory p50 plus one of those.
    const shared = summarize({ cluster3: always, cluster3Memory: memory }, undefined, { loopbackRoundTripP50Us: 90, fdatasync4KiBP50Us: 270, fdatasyncWriteMBps: 180, fdatasync4KiBThreeAtOnceP50Us: 380 });
    expect(shared.figures['cluster3.awaitedP50VsMemory']?.note).toContain('three at once, one per broker, as an ack makes them: 380 µs each, so fsync always takes at least the in-memory p50 plus one of those: 780 µs, 1.95× in memory');
    expect(figures['cluster3Memory.awaitedP99']).toMatchObject({ value: 2_000, met: true });
  });

  it('leaves out a ratio whose in-memory side did not run', () => {
    const always: Cluster3Result = { storage: 'fsync', pipelined128B: throughput(90_000), sequentialPublish: latency(700, 4_000) };
    const { figures } = summarize({ cluster3: always });
    expect(Object.keys(figures).filter((name) => name.includes('VsMemory'))).toEqual([]);
    expect(figures['cluster3.awaitedP50']).toMatchObject({ value: 700, atMost: 700, met: true, issue: 5 });
  });

  it('measures the floors: a loopback round trip, an fdatasync, the disk bandwidth', async () => {
    const measured = await floors();
    expect(measured.loopbackRoundTripP50Us).toBeGreaterThan(0);
    expect(measured.fdatasync4KiBP50Us).toBeGreaterThan(0);
    expect(measured.fdatasyncWriteMBps).toBeGreaterThan(0);
    expect(measured.fdatasync4KiBThreeAtOnceP50Us).toBeGreaterThan(0);
  });
});
