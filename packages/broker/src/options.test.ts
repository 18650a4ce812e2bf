import { describe, expect, it } from 'vitest';
import { RelayError } from '@relaymq/sdk/protocol';
import { BROKER_DEFAULTS, optionOfError, resolveBrokerOptions, type BrokerOptions } from './options.js';
import { PEER_DEFAULTS, RAFT_PRESETS, SWIM_TIMING_PRESETS, raftConfigOf } from './tuning.js';

describe('resolveBrokerOptions', () => {
  it('applies the documented defaults', () => {
    const o = resolveBrokerOptions();
    expect(o).toMatchObject(BROKER_DEFAULTS);
    expect(o.advertisedUrl).toBeUndefined();
  });

  it.each<[string, BrokerOptions, string]>([
    ['a port out of range', { port: 70000 }, 'port'],
    ['an unknown storage layout', { dataDir: '/d', storage: { layout: 'merged' as never } }, 'storage.layout must be one of split, unified'],
    ['an unknown storage option', { storage: { layot: 'unified' } as never }, 'storage.layot'],
    ['layout unified without a data directory', { storage: { layout: 'unified' } }, 'storage.layout "unified" needs dataDir'],
    ['a fractional port', { port: 1.5 }, 'port'],
    ['zero partitions', { defaultPartitions: 0 }, 'defaultPartitions'],
    ['a tiny maxPayload', { maxPayload: 10 }, 'maxPayload'],
    ['a bad id', { id: 'has space' }, 'id'],
    ['a non-ws advertised URL', { advertisedUrl: 'http://x' }, 'advertisedUrl'],
    ['an unknown option', { prot: 1 } as BrokerOptions, 'prot'],
    ['a malformed peer', { peers: ['b2:7502'] }, 'peers'],
    ['itself as a peer', { id: 'b1', peers: ['b1@127.0.0.1:7501'] }, 'peers'],
    ['a peer listed twice', { peers: ['b2@h:1', 'b2@h:2'] }, 'peers'],
    ['a peer port out of range', { peerPort: -1 }, 'peerPort'],
    ['an ACL without auth', { acl: {} }, 'acl needs auth'],
    ['auth with nothing to check', { auth: {} }, 'auth needs tokens'],
    ['a short static token', { auth: { tokens: { short: 'a' } } }, 'auth.tokens'],
    ['a JWT with no key', { auth: { jwt: {} } }, 'auth.jwt needs'],
    ['a short HS256 secret', { auth: { jwt: { secret: 'x' } } }, 'auth.jwt.secret'],
    ['an unknown JWT option', { auth: { jwt: { secret: 'x'.repeat(32), alg: 'HS256' } as never } }, 'auth.jwt.alg'],
    ['a bad ACL pattern', { auth: { tokens: { 'long-token': 'a' } }, acl: { a: { subscribe: { allow: ['a.>.b'] } } } }, 'acl.a.subscribe.allow'],
    ['an unknown ACL action', { auth: { tokens: { 'long-token': 'a' } }, acl: { a: { read: {} } as never } }, 'acl.a.read'],
    ['client TLS without a key', { tls: { cert: 'c' } as never }, 'tls.key'],
    ['mutual client TLS without a CA', { tls: { cert: 'c', key: 'k', requireClientCert: true } }, 'tls.requireClientCert'],
    ['peer TLS without a CA', { peerTls: { cert: 'c', key: 'k' } as never }, 'peerTls.ca'],
    ['a burst without a rate', { publishBurst: 10 }, 'publishBurst'],
    ['a negative rate', { publishRateLimit: -1 }, 'publishRateLimit'],
    ['zero connections', { maxConnections: 0 }, 'maxConnections'],
    ['an outbound cap below high water plus payload', { maxOutboundBytes: 2048 }, 'maxOutboundBytes'],
  ])('rejects %s, naming the option', (_, options, field) => {
    expect(() => resolveBrokerOptions(options)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining(field) }));
  });

  it('takes storage.layout as given, none unless set (the broker takes the data directory\'s, unified for a new one: data-layout.test.ts)', () => {
    expect(resolveBrokerOptions({ dataDir: '/d' }).storage).toEqual({});
    expect(resolveBrokerOptions({ dataDir: '/d', storage: {} }).storage).toEqual({});
    expect(resolveBrokerOptions({ dataDir: '/d', storage: { layout: 'unified' } }).storage).toEqual({ layout: 'unified' });
    expect(resolveBrokerOptions({ dataDir: '/d', storage: { layout: 'split' } }).storage).toEqual({ layout: 'split' });
    expect(resolveBrokerOptions({}).storage).toEqual({}); // in memory: no layout, and no error
  });

  it('defaults publishBurst to one second of publishRateLimit', () => {
    expect(resolveBrokerOptions({ publishRateLimit: 500 }).publishBurst).toBe(500);
    expect(resolveBrokerOptions({ publishRateLimit: 500, publishBurst: 20 }).publishBurst).toBe(20);
  });

  it('parses peers into addresses', () => {
    expect(resolveBrokerOptions({ id: 'b1', peers: ['b2@127.0.0.1:7502', 'b3@localhost:7503'] }).peers).toEqual([
      { id: 'b2', host: '127.0.0.1', port: 7502 },
      { id: 'b3', host: 'localhost', port: 7503 },
    ]);
  });
});

describe('timing sections: raft, swim, peer', () => {
  it('defaults to the lan presets, which are the timing the broker always had', () => {
    const o = resolveBrokerOptions();
    expect(o.raft).toEqual({ preset: 'lan', heartbeatMs: 50, electionTimeoutMs: 500 });
    expect(o.swim).toEqual({ preset: 'lan', ...SWIM_TIMING_PRESETS.lan });
    expect(o.swim.probeIntervalMs).toBe(1000);
    expect(o.peer).toEqual(PEER_DEFAULTS);
    expect(o.peer).toEqual({
      requestTimeoutMs: 2000,
      readTimeoutMs: 3000,
      maxFrameBytes: 64 * 1024 * 1024,
      maxQueuedBytes: 64 * 1024 * 1024,
      reconnectInitialDelayMs: 50,
      reconnectMaxDelayMs: 500, // 2000 until 2026-12-06: a healed link came back up to 2 s late
    });
    // What the Raft groups ran with before the options existed: 50 ms ticks, heartbeat 1, election 10.
    expect(raftConfigOf(o.raft)).toEqual({ heartbeatTicks: 1, electionTicks: 10 });
  });

  it.each(['local', 'lan', 'wan'] as const)('applies the %s preset', (preset) => {
    const o = resolveBrokerOptions({ raft: { preset }, swim: { preset } });
    expect(o.raft).toEqual({ preset, ...RAFT_PRESETS[preset] });
    expect(o.swim).toEqual({ preset, ...SWIM_TIMING_PRESETS[preset] });
  });

  it('takes fields over the preset', () => {
    const o = resolveBrokerOptions({ raft: { preset: 'wan', heartbeatMs: 100 }, swim: { preset: 'local', probeIntervalMs: 2000, gossipFanout: 5 } });
    expect(o.raft).toEqual({ preset: 'wan', heartbeatMs: 100, electionTimeoutMs: 2500 });
    expect(o.swim).toMatchObject({ preset: 'local', probeIntervalMs: 2000, probeTimeoutMs: 200, gossipFanout: 5 });
    expect(resolveBrokerOptions({ peer: { requestTimeoutMs: 5000, maxFrameBytes: 8 * 1024 * 1024 } }).peer).toMatchObject({ requestTimeoutMs: 5000, maxFrameBytes: 8 * 1024 * 1024, readTimeoutMs: 3000 });
  });

  it('accepts its own output again (what --print-config prints can be fed back)', () => {
    const once = resolveBrokerOptions({ raft: { preset: 'wan', heartbeatMs: 100 }, swim: { preset: 'local', probeIntervalMs: 2000 }, peer: { readTimeoutMs: 500 } });
    const again = resolveBrokerOptions({ raft: once.raft, swim: once.swim, peer: once.peer });
    expect([again.raft, again.swim, again.peer]).toEqual([once.raft, once.swim, once.peer]);
  });

  it('takes raft.quiesce apart from the timing: unset leaves the groups their default, false reaches their Raft configuration', () => {
    expect(resolveBrokerOptions().raft.quiesce).toBeUndefined();
    const off = resolveBrokerOptions({ raft: { preset: 'local', quiesce: false } });
    expect(off.raft).toEqual({ preset: 'local', ...RAFT_PRESETS.local, quiesce: false });
    expect(raftConfigOf(off.raft)).toEqual({ ...raftConfigOf(RAFT_PRESETS.local), quiesce: false });
    expect(raftConfigOf(resolveBrokerOptions({ raft: { quiesce: true } }).raft).quiesce).toBe(true);
    // What --print-config prints is accepted again.
    expect(resolveBrokerOptions({ raft: off.raft }).raft).toEqual(off.raft);
    expect(() => resolveBrokerOptions({ raft: { quiesce: 'no' as never } })).toThrow('raft.quiesce must be true or false, got "no"');
  });

  it('lengthens the default request timeout to outlive a slow preset’s elections', () => {
    expect(resolveBrokerOptions({ raft: { preset: 'local' } }).peer.requestTimeoutMs).toBe(2000);
    expect(resolveBrokerOptions({ raft: { preset: 'wan' } }).peer.requestTimeoutMs).toBe(10_000);
  });

  it.each<[string, BrokerOptions, string]>([
    ['an unknown raft preset', { raft: { preset: 'moon' as never } }, 'raft.preset must be one of local, lan, wan'],
    ['an unknown raft field', { raft: { heartbeatTicks: 1 } as never }, 'raft.heartbeatTicks is not a known option'],
    ['a raft section that is not an object', { raft: 5 as never }, 'raft must be an object'],
    ['a negative heartbeat', { raft: { heartbeatMs: -50 } }, 'raft.heartbeatMs must be an integer number of milliseconds from 50'],
    ['a fractional election timeout', { raft: { electionTimeoutMs: 500.5 } }, 'raft.electionTimeoutMs must be an integer'],
    ['a heartbeat shorter than one tick', { raft: { heartbeatMs: 10 } }, 'raft.heartbeatMs must be an integer number of milliseconds from 50 (one tick)'],
    ['a heartbeat as long as the election timeout', { raft: { heartbeatMs: 500 } }, 'raft.heartbeatMs must leave raft.heartbeatMs (500) shorter than raft.electionTimeoutMs (500)'],
    ['an election timeout below the heartbeat', { raft: { electionTimeoutMs: 50 } }, 'raft.electionTimeoutMs must leave'],
    ['a heartbeat and election timeout within one tick', { raft: { heartbeatMs: 60, electionTimeoutMs: 90 } }, 'raft.heartbeatMs must leave'],
    ['an unknown swim preset', { swim: { preset: 'moon' as never } }, 'swim.preset must be one of local, lan, wan'],
    ['a swim field in ticks', { swim: { probeIntervalTicks: 10 } as never }, 'swim.probeIntervalTicks is not a known option'],
    ['a negative probe interval', { swim: { probeIntervalMs: -1 } }, 'swim.probeIntervalMs must be an integer'],
    ['a negative indirect check count', { swim: { indirectChecks: -1 } }, 'swim.indirectChecks must be an integer from 0'],
    ['a probe timeout not shorter than the interval', { swim: { probeTimeoutMs: 1000 } }, 'swim.probeTimeoutMs conflicts'],
    ['gossip slower than probing', { swim: { gossipIntervalMs: 1500 } }, 'swim.gossipIntervalMs conflicts'],
    ['suspicion too short to refute', { swim: { suspicionMult: 1 } }, 'swim.suspicionMult conflicts'],
    ['a tombstone shorter than gossip to the dead', { swim: { tombstoneMs: 10_000 } }, 'swim.gossipToTheDeadMs conflicts'],
    ['an unknown peer option', { peer: { timeoutMs: 1 } as never }, 'peer.timeoutMs is not a known option'],
    ['a negative request timeout', { peer: { requestTimeoutMs: -1 } }, 'peer.requestTimeoutMs must be an integer'],
    ['a request timeout shorter than an election', { peer: { requestTimeoutMs: 1000 } }, 'peer.requestTimeoutMs must be longer than the longest Raft election'],
    ['a request timeout shorter than a wan election', { raft: { preset: 'wan' }, peer: { requestTimeoutMs: 2000 } }, 'peer.requestTimeoutMs must be longer than the longest Raft election (2 × raft.electionTimeoutMs = 5000)'],
    ['a peer queue smaller than a frame', { peer: { maxQueuedBytes: 2 * 1024 * 1024 } }, 'peer.maxQueuedBytes must be at least peer.maxFrameBytes'],
    ['a reconnect backoff that shrinks', { peer: { reconnectInitialDelayMs: 5000 } }, 'peer.reconnectMaxDelayMs must be at least peer.reconnectInitialDelayMs'],
  ])('rejects %s, naming the option path', (_, options, message) => {
    let error: unknown;
    try {
      resolveBrokerOptions(options);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(RelayError);
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect((error as RelayError).message).toContain(`broker option ${message}`);
    expect(optionOfError(error)).toBe(message.split(' ')[0]);
  });
});
