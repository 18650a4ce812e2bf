import { describe, expect, it } from 'vitest';
import { connect } from '@relaymq/sdk';
import type { Cluster3Result, ClusterSizes } from '../bench/cluster.js';
import { compareEngines, rabbitmqBench, type RabbitBenchResult } from '../bench/rabbitmq.js';
import { rabbitAvailable } from './support/rabbitmq.js';

/**
 * The harness of `npm run bench -- --engine rabbitmq` (issue 16), so it
 * cannot rot unnoticed: with tiny sizes, 2 gateway processes (the built CLI)
 * over a 3-node RabbitMQ give every figure, the failover run kills a gateway
 * and the stream leader's RabbitMQ node with nothing lost or duplicated; the
 * comparison computes its ratios the right way round.
 */
const availability = rabbitAvailable();
if (!availability.ok) console.warn(`SKIPPED the rabbitmq bench run: ${availability.reason}`);

const TINY: ClusterSizes = {
  pipelined128B: 500,
  pipelined1KiB: 200,
  pipelinedWarmup: 100,
  rounds: 1,
  latencySamples: 30,
  latencyWarmup: 5,
  failoverKills: 1,
  failoverWindow: 2,
  failoverSteadyMs: 200,
  replayMessages: 0,
};

describe('bench --engine rabbitmq', () => {
  it.runIf(availability.ok)('measures pipelined, awaited, publish→deliver and failover figures on gateways over 3 RabbitMQ nodes', async () => {
    const all = new Set(['pipelined128B', 'pipelined1KiB', 'sequentialPublish', 'publishToDeliver', 'failoverStall'] as const);
    const result = (await rabbitmqBench(connect, TINY, { window: 100, ack: 'quorum' }, all)) as RabbitBenchResult;
    expect(result).not.toHaveProperty('skipped');
    expect(result.pipelined128B?.messages).toBe(500);
    expect(result.pipelined128B?.msgPerSec).toBeGreaterThan(0);
    expect(result.pipelined1KiB?.msgPerSec).toBeGreaterThan(0);
    expect(result.sequentialPublish?.p50Us).toBeGreaterThan(0);
    expect(result.publishToDeliver?.p50Us).toBeGreaterThan(0);
    const failover = result.failoverStall;
    expect(failover?.error).toBeUndefined();
    expect(failover?.gatewayKill?.stallsMs).toHaveLength(1);
    expect(failover?.rabbitNodeKill?.stallsMs).toHaveLength(1);
    expect(failover?.rabbitNodeKill?.killed[0]).toMatch(/^rmq-/);
    expect(failover).toMatchObject({ failed: 0, lost: 0, duplicated: 0 });
    expect(failover?.acknowledged).toBeGreaterThan(0);
  }, 180_000);

  it('compares the engines figure by figure: ratio rabbitmq / embedded, leaving out what one side did not measure', () => {
    const embedded = { storage: 'interval', pipelined128B: { msgPerSec: 20_000 }, sequentialPublish: { p50Us: 500, p99Us: 2_000 }, failoverStall: { medianMs: 800 } } as unknown as Cluster3Result;
    const rabbitmq = {
      setup: '',
      startupMs: 0,
      pipelined128B: { msgPerSec: 5_000 },
      sequentialPublish: { p50Us: 1_500, p99Us: 3_000 },
      failoverStall: { gatewayKill: { medianMs: 400 }, rabbitNodeKill: { medianMs: 2_000 } },
    } as unknown as RabbitBenchResult;
    const figures = compareEngines(embedded, rabbitmq);
    expect(figures.pipelined128B).toEqual({ embedded: 20_000, rabbitmq: 5_000, unit: 'msg/s', ratio: 0.25, better: 'higher' });
    expect(figures.awaitedP50).toMatchObject({ ratio: 3, better: 'lower' });
    expect(figures['failoverStallMedian (gateway kill)']).toMatchObject({ embedded: 800, rabbitmq: 400, ratio: 0.5 });
    expect(figures['failoverStallMedian (RabbitMQ node kill)']).toMatchObject({ ratio: 2.5 });
    expect(figures.pipelined1KiB).toBeUndefined();
    expect(figures.endToEndP50).toBeUndefined();
  });
});
