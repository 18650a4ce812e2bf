import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, type TestContext } from 'vitest';
import type { BrokerOptions } from '@relaymq/broker';
import { rabbitAvailable, startRabbitCluster, type RabbitAvailability, type RabbitCluster } from './rabbitmq.js';

/**
 * The engines a conformance suite runs against, for
 * `describeEngines('ordering', (engine, context) => ...)`: the same tests,
 * once per engine, so the engines cannot drift (issue 16).
 *
 * - `embedded`: brokers keep their own log (the default engine); no setup.
 * - `rabbitmq`: brokers are gateways over a 3-node RabbitMQ streams cluster
 *   that is started once per test file (beforeAll) and stopped after it;
 *   every test gets its own stream prefix, so tests sharing the cluster do
 *   not see each other's topics. Skipped, with the reason printed, where
 *   RabbitMQ is not installed.
 */

/** What a test of one engine passes to every broker it starts. */
export interface EngineContext {
  /** Spread into `startBroker` / `Fixture.broker` options: `{ ...context().brokerOptions, id, ... }`. */
  readonly brokerOptions: Partial<BrokerOptions>;
  /** The RabbitMQ cluster under a `rabbitmq` test (to SIGKILL a node, read its URLs); undefined for `embedded`. */
  readonly rabbit: RabbitCluster | undefined;
}

/** One engine of the conformance suite. */
export interface EngineUnderTest {
  readonly name: 'embedded' | 'rabbitmq';
  /** Whether the engine can run here; the suite skips it with the printed reason when not. */
  available(): RabbitAvailability;
  /** Registers the engine's hooks in the current `describe` block and returns the current test's context. */
  use(): () => EngineContext;
}

/** Bound on starting the RabbitMQ cluster in a file's beforeAll: 3 nodes take 12-18 s at a load of 10 on 2 cores. */
const RABBIT_START_TIMEOUT_MS = 120_000;

export const embedded: EngineUnderTest = {
  name: 'embedded',
  available: () => ({ ok: true }),
  use: () => {
    const context: EngineContext = { brokerOptions: {}, rabbit: undefined };
    return () => context;
  },
};

export const rabbitmq: EngineUnderTest = {
  name: 'rabbitmq',
  available: rabbitAvailable,
  use: () => {
    let cluster: RabbitCluster | undefined;
    let context: EngineContext | undefined;
    beforeAll(async () => {
      cluster = await startRabbitCluster({ nodes: 3, timeoutMs: RABBIT_START_TIMEOUT_MS });
    }, RABBIT_START_TIMEOUT_MS + 10_000);
    afterAll(async () => {
      await cluster?.stop();
    }, 30_000);
    reportRabbitOnFailure(() => cluster);
    beforeEach(() => {
      if (cluster === undefined) throw new Error('the RabbitMQ cluster did not start (see beforeAll)');
      context = { brokerOptions: backboneBrokerOptions(cluster, `t-${randomBytes(4).toString('hex')}`), rabbit: cluster };
    });
    return () => {
      if (context === undefined) throw new Error('the rabbitmq engine context is only available inside a test');
      return context;
    };
  },
};

/**
 * One RabbitMQ cluster of `nodes` for a test file that runs only over
 * RabbitMQ: started before the file's tests (beforeAll) and stopped after
 * them. `available` says whether RabbitMQ runs here (run the tests with
 * `describe.runIf(rabbit.available)`; the reason is printed when not), and
 * `cluster()` is the running cluster inside a test.
 */
export function rabbitClusterForFile(what: string, nodes: 1 | 3): { readonly available: boolean; cluster: () => RabbitCluster } {
  const availability = rabbitAvailable();
  if (!availability.ok) console.log(`skipping ${what}: ${availability.reason}`);
  let running: RabbitCluster | undefined;
  beforeAll(async () => {
    if (availability.ok) running = await startRabbitCluster({ nodes, timeoutMs: RABBIT_START_TIMEOUT_MS });
  }, RABBIT_START_TIMEOUT_MS + 10_000);
  afterAll(async () => {
    await running?.stop();
  }, 60_000);
  return {
    available: availability.ok,
    cluster: () => {
      if (running === undefined) throw new Error('the RabbitMQ cluster did not start (see beforeAll)');
      return running;
    },
  };
}

/** Every engine, in the order the suite runs them. */
export const engines: readonly EngineUnderTest[] = [embedded, rabbitmq];

/**
 * `describe(title)` once per engine (`title [embedded]`, `title [rabbitmq]`);
 * `body` registers the tests and reads the current test's context through
 * `context()`. An engine that cannot run here is skipped with its reason printed.
 */
export function describeEngines(title: string, body: (engine: EngineUnderTest, context: () => EngineContext) => void): void {
  for (const engine of engines) {
    const availability = engine.available();
    if (!availability.ok) console.warn(`${title} [${engine.name}]: skipped, ${availability.reason}`);
    describe.skipIf(!availability.ok)(`${title} [${engine.name}]`, () => {
      body(engine, engine.use());
    });
  }
}

/**
 * The broker options that make a broker a gateway over `cluster`, with its
 * streams named under `streamPrefix`. The one place that knows the shape of
 * `BrokerOptions.backbone` (issue 16, on the `backbone` branch): until that
 * option is on main the object is typed loosely.
 */
export function backboneBrokerOptions(cluster: RabbitCluster, streamPrefix: string): Partial<BrokerOptions> {
  const backbone = { kind: 'rabbitmq-stream' as const, urls: [...cluster.streamUrls], streamPrefix };
  return { backbone } as Partial<BrokerOptions>;
}

/**
 * Registers, in the current `describe` block, before each test: a check that every node of the
 * RabbitMQ cluster runs, so a test on a dead cluster fails naming the node and how it exited
 * instead of with ECONNREFUSED (off with `requireRunning: false`, for tests that depend on the
 * previous one's nodes); and, when the test fails, a print of each node's state and log tail.
 */
export function reportRabbitOnFailure(cluster: () => RabbitCluster | undefined, { requireRunning = true } = {}): void {
  beforeEach((context: TestContext) => {
    const rabbit = cluster();
    if (rabbit === undefined) return;
    const dead = rabbit.nodes.filter((node) => !node.running);
    if (requireRunning && dead.length > 0) {
      throw new Error(`RabbitMQ node(s) ${dead.map((node) => node.name).join(', ')} not running before the test\n${rabbit.diagnose()}`);
    }
    context.onTestFailed(() => {
      console.error(`RabbitMQ cluster after the failed test "${context.task.name}":\n${rabbit.diagnose()}`);
    });
  });
}
