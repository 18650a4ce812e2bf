import { expect, it } from 'vitest';
import { describeEngines } from './support/engines.js';

/**
 * test/support/engines.ts: describeEngines runs a body once per engine with
 * that engine's broker options; the rabbitmq engine's cluster is up for the
 * file's tests and each test gets its own stream prefix.
 */

const prefixes: string[] = [];

describeEngines('engines helper', (engine, context) => {
  if (engine.name === 'embedded') {
    it('gives embedded brokers no extra options and no RabbitMQ', () => {
      expect(context()).toEqual({ brokerOptions: {}, rabbit: undefined });
    });
    return;
  }
  for (const round of [1, 2]) {
    it(`points brokers at the running cluster under a prefix of their own (${round})`, async () => {
      const { brokerOptions, rabbit } = context();
      expect(rabbit?.nodes.every((node) => node.running)).toBe(true);
      expect(await rabbit?.runningNodes()).toHaveLength(3);
      const backbone = (brokerOptions as { backbone?: { kind: string; urls: string[]; streamPrefix: string } }).backbone;
      expect(backbone?.kind).toBe('rabbitmq-stream');
      expect(backbone?.urls).toEqual(rabbit?.streamUrls);
      prefixes.push(backbone?.streamPrefix as string);
      expect(new Set(prefixes).size).toBe(prefixes.length);
    });
  }
});
