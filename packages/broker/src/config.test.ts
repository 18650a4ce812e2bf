import { describe, expect, it } from 'vitest';
import { effectiveConfig, envName, flagName, resolveConfig } from './config.js';
import { resolveBrokerOptions } from './options.js';

const file = (content: unknown): { path: string; content: unknown } => ({ path: 'relaymq.yaml', content });

describe('resolveConfig', () => {
  it('derives flag and environment names from option paths', () => {
    expect(flagName('peerPort')).toBe('peer-port');
    expect(envName('peerPort')).toBe('RELAYMQ_PEER_PORT');
    expect(flagName('alerts.diskFullPercent')).toBe('alerts-disk-full-percent');
    expect(envName('alerts.webhooks')).toBe('RELAYMQ_ALERTS_WEBHOOKS');
  });

  it('takes flags over environment over file over defaults, and says where each value came from', () => {
    const config = resolveConfig({
      file: file({ id: 'f1', port: 1001, peerPort: 2001, heartbeatMs: 3001, alerts: { webhooks: ['http://file/hook'], graceMs: 5 } }),
      env: { RELAYMQ_PORT: '1002', RELAYMQ_PEER_PORT: '2002', RELAYMQ_PEERS: 'b2@h:1, b3@h:2', RELAYMQ_ALERTS_GRACE_MS: '6', PATH: '/bin' },
      flags: { port: '1003' },
    });
    expect(config.options).toEqual({
      id: 'f1',
      port: 1003,
      peerPort: 2002,
      heartbeatMs: 3001,
      peers: ['b2@h:1', 'b3@h:2'],
      alerts: { webhooks: ['http://file/hook'], graceMs: 6 },
    });
    expect(Object.fromEntries([...config.sources].map(([path, s]) => [path, s.kind]))).toEqual({
      id: 'file',
      port: 'flag',
      peerPort: 'env',
      heartbeatMs: 'file',
      peers: 'env',
      'alerts.webhooks': 'file',
      'alerts.graceMs': 'env',
    });
    const resolved = resolveBrokerOptions(config.options);
    expect(resolved.maxPayload).toBe(1024 * 1024); // untouched: the default
  });

  it('takes nested retention options and topicRetention (JSON in the environment)', () => {
    const config = resolveConfig({
      file: file({ fsync: 'interval', retention: { maxAgeMs: 1000, maxBytes: 5000 } }),
      env: { RELAYMQ_RETENTION_MAX_BYTES: '6000', RELAYMQ_TOPIC_RETENTION: '[{"pattern":"logs.>","maxAgeMs":60000}]' },
      flags: { 'fsync-interval-ms': '200' },
    });
    expect(config.options).toEqual({
      fsync: 'interval',
      fsyncIntervalMs: 200,
      retention: { maxAgeMs: 1000, maxBytes: 6000 },
      topicRetention: [{ pattern: 'logs.>', maxAgeMs: 60000 }],
    });
    expect(resolveConfig({ env: { RELAYMQ_STORAGE_LAYOUT: 'split' }, flags: { 'storage-layout': 'unified', 'data-dir': '/d' } }).options).toEqual({ dataDir: '/d', storage: { layout: 'unified' } });
    expect(() => resolveConfig({ env: {}, flags: { 'storage-layout': 'unified' } })).toThrow('flag --storage-layout: broker option storage.layout "unified" needs dataDir');
    expect(() => resolveConfig({ env: { RELAYMQ_TOPIC_RETENTION: '[{' }, flags: {} })).toThrow('environment RELAYMQ_TOPIC_RETENTION: topicRetention must be JSON');
    expect(() => resolveConfig({ file: file({ retention: { maxAge: 1 } }), env: {}, flags: {} })).toThrow('config file relaymq.yaml: unknown option retention.maxAge');
  });

  it('takes the raft, swim and peer sections from a file, the environment and flags, naming the source of a bad value', () => {
    const config = resolveConfig({
      file: file({ raft: { preset: 'wan' }, swim: { preset: 'local', probeIntervalMs: 2000 } }),
      env: { RELAYMQ_RAFT_HEARTBEAT_MS: '100', RELAYMQ_PEER_MAX_FRAME_BYTES: '8388608' },
      flags: { 'peer-request-timeout-ms': '12000', 'swim-gossip-fanout': '4' },
    });
    expect(config.options).toEqual({
      raft: { preset: 'wan', heartbeatMs: 100 },
      swim: { preset: 'local', probeIntervalMs: 2000, gossipFanout: 4 },
      peer: { requestTimeoutMs: 12000, maxFrameBytes: 8388608 },
    });
    const resolved = resolveBrokerOptions(config.options);
    expect(resolved.raft).toEqual({ preset: 'wan', heartbeatMs: 100, electionTimeoutMs: 2500 });
    expect(resolved.peer.requestTimeoutMs).toBe(12000);
    expect(() => resolveConfig({ env: {}, flags: { 'raft-election-timeout-ms': '50' } })).toThrow('flag --raft-election-timeout-ms: broker option raft.electionTimeoutMs must leave');
    expect(() => resolveConfig({ env: { RELAYMQ_SWIM_PRESET: 'moon' }, flags: {} })).toThrow('environment RELAYMQ_SWIM_PRESET: broker option swim.preset must be one of local, lan, wan');
    expect(() => resolveConfig({ file: file({ raft: { heartbeatTicks: 1 } }), env: {}, flags: {} })).toThrow('config file relaymq.yaml: unknown option raft.heartbeatTicks');
    expect(() => resolveConfig({ file: file({ peer: { requestTimeoutMs: 900 } }), env: {}, flags: {} })).toThrow('config file relaymq.yaml: broker option peer.requestTimeoutMs must be longer');
  });

  it('takes raft.quiesce as true or false from a flag, the environment or a file', () => {
    expect(resolveConfig({ env: {}, flags: { 'raft-quiesce': 'false' } }).options).toEqual({ raft: { quiesce: false } });
    expect(resolveConfig({ env: { RELAYMQ_RAFT_QUIESCE: 'false' }, flags: {} }).options).toEqual({ raft: { quiesce: false } });
    expect(resolveBrokerOptions(resolveConfig({ file: file({ raft: { preset: 'wan', quiesce: false } }), env: {}, flags: {} }).options).raft.quiesce).toBe(false);
    expect(() => resolveConfig({ env: {}, flags: { 'raft-quiesce': 'off' } })).toThrow('flag --raft-quiesce');
    expect(() => resolveConfig({ env: {}, flags: { 'raft-quiesce': '"off"' } })).toThrow('raft.quiesce must be true or false');
  });

  it('accepts the old flag spellings --data and --partitions', () => {
    expect(resolveConfig({ env: {}, flags: { data: '/var/lib/relaymq', partitions: '4' } }).options).toEqual({ dataDir: '/var/lib/relaymq', defaultPartitions: 4 });
    expect(() => resolveConfig({ env: {}, flags: { data: '/a', 'data-dir': '/b' } })).toThrow('flag --data: dataDir is also given as --data-dir; give it once');
  });

  it('names the source and the option of every invalid value', () => {
    const cases: Array<[Parameters<typeof resolveConfig>[0], string]> = [
      [{ env: { RELAYMQ_PORT: 'eighty' }, flags: {} }, 'environment RELAYMQ_PORT: port must be a non-negative integer, got "eighty"'],
      [{ env: {}, flags: { 'heartbeat-ms': '10' } }, 'flag --heartbeat-ms: broker option heartbeatMs must be an integer from 50 to 3600000, got 10'],
      [{ file: file({ prot: 1 }), env: {}, flags: {} }, 'config file relaymq.yaml: unknown option prot'],
      [{ file: file({ port: '7401' }), env: {}, flags: {} }, 'config file relaymq.yaml: port must be an integer, got "7401"'],
      [{ file: file({ alerts: { webhook: [] } }), env: {}, flags: {} }, 'config file relaymq.yaml: unknown option alerts.webhook'],
      [{ file: file({ alerts: { graceMs: 5 } }), env: {}, flags: {} }, 'config file relaymq.yaml: broker option alerts.webhooks must list 1 to 16'],
      [{ file: file([1, 2]), env: {}, flags: {} }, 'config file relaymq.yaml: must hold an object of options'],
      [{ env: { RELAYMQ_LOG_LEVEL: 'loud' }, flags: {} }, 'environment RELAYMQ_LOG_LEVEL: broker option logLevel must be one of debug, info, warn, error, silent'],
      [{ env: { RELAYMQ_ID: 'b1', RELAYMQ_PEERS: 'b1@h:1' }, flags: {} }, `environment RELAYMQ_PEERS: broker option peers lists this broker's own id "b1"`],
    ];
    for (const [inputs, message] of cases) expect(() => resolveConfig(inputs), message).toThrow(message);
  });

  it('warns about unknown RELAYMQ_ variables but not about other tools of the project', () => {
    const { warnings } = resolveConfig({ env: { RELAYMQ_PROT: '1', RELAYMQ_BROKERS: 'ws://x', RELAYMQ_BENCH_BROKER_NODE_ARGS: '' }, flags: {} });
    expect(warnings).toEqual(['ignoring unknown environment variable RELAYMQ_PROT']);
  });
});

describe('effectiveConfig', () => {
  it('prints every option with defaults, peers as written, and secrets redacted', () => {
    const effective = effectiveConfig(
      resolveBrokerOptions({ id: 'b1', peers: ['b2@127.0.0.1:7502'], alerts: { webhooks: ['https://u:p@hooks.example.com/x?token=t'] } }),
    );
    expect(effective).toMatchObject({ id: 'b1', port: 7401, peers: ['b2@127.0.0.1:7502'], logLevel: 'silent' });
    expect((effective.alerts as { webhooks: string[] }).webhooks).toEqual(['https://REDACTED@hooks.example.com/x?REDACTED']);
    expect(effective).not.toHaveProperty('log');
  });
});
