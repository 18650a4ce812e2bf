import { describe, expect, it } from 'vitest';
import { RelayError } from '@relaymq/sdk/protocol';
import { effectiveConfig, resolveConfig } from './config.js';
import { optionOfError, resolveBrokerOptions } from './options.js';

const refusal = (run: () => unknown): RelayError => {
  try {
    run();
  } catch (err) {
    if (err instanceof RelayError) return err;
    throw err;
  }
  throw new Error('accepted');
};

describe('backbone options', () => {
  it('reads --backbone as one URL even though the flag is split at commas', () => {
    const { options } = resolveConfig({ env: {}, flags: { backbone: 'rabbitmq-stream://app:s3cret@h1:5552,h2:5553' } });
    const resolved = resolveBrokerOptions(options);
    expect(resolved.backbone).toMatchObject({
      kind: 'rabbitmq-stream',
      urls: ['rabbitmq-stream://app:s3cret@h1:5552,h2:5553'],
      endpoint: { hosts: [{ host: 'h1', port: 5552 }, { host: 'h2', port: 5553 }], username: 'app', password: 's3cret', vhost: '/' },
      streamPrefix: 'relaymq',
      requestTimeoutMs: 10_000,
    });
  });

  it('takes the config file form backbone: { kind, urls, streamPrefix }', () => {
    const { options } = resolveConfig({
      file: { path: 'relaymq.yaml', content: { backbone: { kind: 'rabbitmq-stream', urls: ['rabbitmq-stream://h1', 'rabbitmq-stream://h2:6000'], streamPrefix: 'prod-eu' } } },
      env: {},
      flags: {},
    });
    expect(resolveBrokerOptions(options).backbone).toMatchObject({ streamPrefix: 'prod-eu', endpoint: { hosts: [{ host: 'h1', port: 5552 }, { host: 'h2', port: 6000 }] } });
  });

  it('refuses bad URLs and combinations with INVALID_ARGUMENT naming the option, never the password', () => {
    const badUrl = refusal(() => resolveBrokerOptions({ backbone: { urls: ['amqp://app:s3cret@h1'] } }));
    expect(badUrl.code).toBe('INVALID_ARGUMENT');
    expect(badUrl.message).toMatch(/^broker option backbone\.urls .*must start with rabbitmq-stream:\/\//);
    expect(badUrl.message).not.toContain('s3cret');
    expect(refusal(() => resolveBrokerOptions({ backbone: { urls: [] } })).message).toMatch(/backbone\.urls must be a non-empty list/);
    expect(refusal(() => resolveBrokerOptions({ backbone: { kind: 'kafka' as never, urls: ['rabbitmq-stream://h'] } })).message).toMatch(/backbone\.kind/);
    expect(refusal(() => resolveBrokerOptions({ backbone: { urls: ['rabbitmq-stream://h'], streamPrefix: 'a:b' } })).message).toMatch(/backbone\.streamPrefix/);
    expect(refusal(() => resolveBrokerOptions({ dataDir: '/tmp/x', backbone: { urls: ['rabbitmq-stream://h'] } })).message).toMatch(/dataDir does not apply with backbone/);
    const fromFlag = refusal(() => resolveConfig({ env: {}, flags: { backbone: 'rabbitmq-stream://u:p@h1:70000' } }));
    expect(fromFlag.message).toMatch(/--backbone/);
  });

  it('refuses retention.maxMessages and topicRetention[i].maxMessages with INVALID_ARGUMENT naming maxBytes and maxAgeMs (RabbitMQ streams cannot count messages)', () => {
    const backbone = { urls: ['rabbitmq-stream://h'] };
    const global = refusal(() => resolveBrokerOptions({ backbone, retention: { maxAgeMs: 60_000, maxMessages: 1000 } }));
    expect(global.code).toBe('INVALID_ARGUMENT');
    expect(global.message).toBe(
      'broker option retention.maxMessages has no RabbitMQ stream equivalent and is refused with backbone (streams retain by age and size only): use retention.maxBytes (max-length-bytes) or retention.maxAgeMs (max-age)',
    );
    expect(optionOfError(global)).toBe('retention.maxMessages');
    const perTopic = refusal(() => resolveBrokerOptions({ backbone, topicRetention: [{ pattern: 'logs.>', maxBytes: 1 << 20 }, { pattern: 'audit.>', maxMessages: 10 }] }));
    expect(perTopic.message).toMatch(/^broker option topicRetention\[1\]\.maxMessages has no RabbitMQ stream equivalent .*use topicRetention\[1\]\.maxBytes \(max-length-bytes\) or topicRetention\[1\]\.maxAgeMs \(max-age\)$/);
    // From the command line too, and the embedded engine keeps the option.
    expect(() => resolveBrokerOptions(resolveConfig({ env: {}, flags: { backbone: 'rabbitmq-stream://h', 'retention-max-messages': '5' } }).options)).toThrow(/retention\.maxMessages has no RabbitMQ stream equivalent/);
    expect(resolveBrokerOptions({ retention: { maxMessages: 1000 } }).retention).toEqual({ maxMessages: 1000 });
    expect(resolveBrokerOptions({ backbone, retention: { maxAgeMs: 60_000, maxBytes: 1 << 30 } }).retention).toEqual({ maxAgeMs: 60_000, maxBytes: 1 << 30 });
  });

  it('prints the backbone with its password redacted, in a form accepted again', () => {
    const effective = effectiveConfig(resolveBrokerOptions({ backbone: { urls: ['rabbitmq-stream://app:s3cret@h1:5552,h2'] } }));
    expect(effective.backbone).toEqual({
      kind: 'rabbitmq-stream',
      urls: ['rabbitmq-stream://app:REDACTED@h1:5552,h2'],
      streamPrefix: 'relaymq',
      requestTimeoutMs: 10_000,
      tailStartMessages: 10_000,
      republishLookbackMessages: 100_000,
      metaSnapshotEveryEntries: 10_000,
      metaMaxBytes: 268_435_456,
    });
    expect(JSON.stringify(effective)).not.toContain('s3cret');
    expect(() => resolveConfig({ file: { path: 'printed.json', content: { backbone: JSON.parse(JSON.stringify(effective.backbone)) } }, env: {}, flags: {} })).not.toThrow();
  });
});
