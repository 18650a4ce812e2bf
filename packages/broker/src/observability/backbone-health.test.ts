import { describe, expect, it } from 'vitest';
import { backboneProblems, connectedTo, formatRoundTrip, parseBackboneHealth, streamLeaders, type GatewayBackbone } from './backbone-health.js';
import { parseBrokerReport } from './broker-report.js';

const gateway = (over: Partial<GatewayBackbone> = {}): GatewayBackbone => ({
  gateway: 'g1',
  kind: 'rabbitmq-stream',
  connected: true,
  connectedTo: '10.0.0.7:5552',
  advertisedAs: 'rabbit-0:5552',
  connections: 2,
  nodes: [
    { node: '10.0.0.7:5552', reachable: true, lastError: null, checkedAtMs: 1000, roundTripMs: 1.5 },
    { node: '10.0.0.8:5552', reachable: null, lastError: null, checkedAtMs: null, roundTripMs: null },
  ],
  partitions: [],
  lastConfirmMs: null,
  ...over,
});

describe('backbone health', () => {
  it('finds no problem while every gateway is connected and no checked node failed', () => {
    expect(backboneProblems([gateway(), gateway({ gateway: 'g2' })])).toEqual([]);
  });

  it('names a gateway that cannot reach the backbone, with each node\'s error, and each unreachable node', () => {
    const cutOff = gateway({
      gateway: 'g2',
      connected: false,
      connectedTo: null,
      advertisedAs: null,
      nodes: [
        { node: '10.0.0.7:5552', reachable: false, lastError: 'connect ECONNREFUSED 10.0.0.7:5552', checkedAtMs: 1000, roundTripMs: null },
        { node: '10.0.0.8:5552', reachable: false, lastError: 'TIMEOUT: connecting', checkedAtMs: 1000, roundTripMs: null },
      ],
    });
    expect(backboneProblems([gateway(), cutOff])).toEqual([
      'gateway g2 cannot reach the backbone (RabbitMQ) (10.0.0.7:5552: connect ECONNREFUSED 10.0.0.7:5552; 10.0.0.8:5552: TIMEOUT: connecting)',
      'gateway g2 cannot reach RabbitMQ node 10.0.0.7:5552 (connect ECONNREFUSED 10.0.0.7:5552)',
      'gateway g2 cannot reach RabbitMQ node 10.0.0.8:5552 (TIMEOUT: connecting)',
    ]);
  });

  it('takes per partition the stream leader any gateway knows', () => {
    const stream = 'relaymq:orders:k3x9:0';
    const views = [
      gateway({ partitions: [{ topic: 'orders', partition: 1, stream: 's1', leader: 'a:1' }, { topic: 'orders', partition: 0, stream, leader: null }] }),
      gateway({ gateway: 'g2', partitions: [{ topic: 'orders', partition: 0, stream, leader: 'b:2' }] }),
    ];
    expect(streamLeaders(views)).toEqual([
      { topic: 'orders', partition: 0, stream, leader: 'b:2' },
      { topic: 'orders', partition: 1, stream: 's1', leader: 'a:1' },
    ]);
    expect(formatRoundTrip(0.41234)).toBe('0.412 ms');
    expect(formatRoundTrip(412.6)).toBe('413 ms');
  });

  it('checks a peer report\'s backbone field: a malformed one makes the report malformed, an absent one is fine', () => {
    const { gateway: _id, ...health } = gateway();
    expect(parseBackboneHealth(JSON.parse(JSON.stringify(health)))).toEqual(health);
    expect(parseBackboneHealth({ ...health, connected: 'yes' })).toBeUndefined();
    expect(parseBackboneHealth({ ...health, nodes: [{ node: 'x', reachable: 1 }] })).toBeUndefined();
    expect(parseBackboneHealth({ ...health, partitions: [{ topic: 't', partition: -1, stream: 's', leader: null }] })).toBeUndefined();
    const report = {
      broker: 'g1', url: 'ws://g1', timeMs: 1, ready: true, metadataLeader: null, members: [], partitions: [], connections: 0, subscriptions: 0,
      series: [], topicRates: [], stores: [], disk: null, consumers: [], topics: [], events: [],
    };
    expect(parseBrokerReport(report).backbone).toBeUndefined();
    expect(parseBrokerReport({ ...report, backbone: health }).backbone).toEqual(health);
    expect(() => parseBrokerReport({ ...report, backbone: { ...health, kind: 'kafka' } })).toThrow('malformed broker report (backbone)');
    // An older gateway's report has no advertisedAs (its connectedTo was the advertised address).
    const { advertisedAs: _advertised, ...older } = health;
    expect(parseBackboneHealth(older)).toEqual({ ...older, advertisedAs: null });
  });

  it('shows the node dialled, and the address it advertises when that differs (behind a proxy, a load balancer or NAT)', () => {
    expect(connectedTo({ connectedTo: '10.0.0.7:5552', advertisedAs: 'rabbit-0:5552' })).toBe('10.0.0.7:5552 (advertised rabbit-0:5552)');
    expect(connectedTo({ connectedTo: '10.0.0.7:5552', advertisedAs: '10.0.0.7:5552' })).toBe('10.0.0.7:5552');
    expect(connectedTo({ connectedTo: '10.0.0.7:5552', advertisedAs: null })).toBe('10.0.0.7:5552');
    expect(connectedTo({ connectedTo: null, advertisedAs: null })).toBe('-');
  });
});
