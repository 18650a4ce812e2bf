import { describe, expect, it } from 'vitest';
import { EMPTY_ALERT_STATE, evaluateAlerts, redactUrl, type AlertSnapshot, type AlertState } from './alerts.js';

const thresholds = { graceMs: 1000, diskFullPercent: 90 };
const healthy = (nowMs: number): AlertSnapshot => ({
  nowMs,
  brokers: [
    { id: 'b1', state: 'alive' },
    { id: 'b2', state: 'alive' },
  ],
  partitions: [{ group: 'p/orders/0', leaderless: false, underReplicated: false }],
  disk: { path: '/data', usedPercent: 40 },
});

/** Runs snapshots in order and returns the notifications of each step as `status alert key`. */
function run(snapshots: AlertSnapshot[]): string[][] {
  let state: AlertState = EMPTY_ALERT_STATE;
  return snapshots.map((snapshot) => {
    const result = evaluateAlerts(snapshot, state, thresholds, 'b1');
    state = result.state;
    return result.notifications.map((n) => `${n.status} ${n.key}`);
  });
}

describe('evaluateAlerts', () => {
  it('stays quiet while everything is healthy', () => {
    expect(run([healthy(0), healthy(5000), healthy(100_000)])).toEqual([[], [], []]);
  });

  it('fires backbone-unreachable once a gateway has had no backbone connection for the grace time, naming the nodes\' errors, then resolves', () => {
    const gateway = (nowMs: number, connected: boolean): AlertSnapshot => ({
      ...healthy(nowMs),
      backbone: { gateway: 'g1', connected, errors: connected ? [] : ['10.0.0.7:5552: connect ECONNREFUSED 10.0.0.7:5552'] },
    });
    // Cut off for less than the grace time (a node lost and reconnected around): quiet.
    expect(run([gateway(0, true), gateway(10, false), gateway(500, true)])).toEqual([[], [], []]);
    expect(run([gateway(0, true), gateway(10, false), gateway(900, false), gateway(1010, false), gateway(2000, false), gateway(3000, true)])).toEqual([
      [],
      [],
      [],
      ['firing backbone-unreachable:g1'],
      [],
      ['resolved backbone-unreachable:g1'],
    ]);
    const fired = evaluateAlerts(gateway(5000, false), { since: new Map([['backbone-unreachable:g1', 0]]), firing: new Set() }, thresholds, 'g1').notifications[0];
    expect(fired).toMatchObject({ alert: 'backbone-unreachable', subject: 'g1', message: 'gateway g1 cannot reach the backbone (RabbitMQ): 10.0.0.7:5552: connect ECONNREFUSED 10.0.0.7:5552', sinceMs: 0 });
  });

  it('fires broker-down at once for a dead or departed broker, once, then resolves', () => {
    const down = (nowMs: number, state: string): AlertSnapshot => ({ ...healthy(nowMs), brokers: [{ id: 'b1', state: 'alive' }, { id: 'b2', state }] });
    expect(run([healthy(0), down(10, 'suspect'), down(20, 'dead'), down(30, 'dead'), down(40, 'left'), healthy(50)])).toEqual([
      [],
      [],
      ['firing broker-down:b2'],
      [],
      [],
      ['resolved broker-down:b2'],
    ]);
  });

  it('fires a leaderless partition only after it lasted graceMs', () => {
    const leaderless = (nowMs: number): AlertSnapshot => ({ ...healthy(nowMs), partitions: [{ group: 'p/orders/0', leaderless: true, underReplicated: false }] });
    expect(run([leaderless(0), leaderless(999), leaderless(1000), leaderless(5000), healthy(6000)])).toEqual([
      [],
      [],
      ['firing partition-leaderless:p/orders/0'],
      [],
      ['resolved partition-leaderless:p/orders/0'],
    ]);
  });

  it('restarts the clock when an under-replicated partition recovers before the threshold', () => {
    const under = (nowMs: number): AlertSnapshot => ({ ...healthy(nowMs), partitions: [{ group: 'p/orders/0', leaderless: false, underReplicated: true }] });
    expect(run([under(0), under(900), healthy(950), under(1000), under(1900), under(2000)])).toEqual([
      [],
      [],
      [],
      [],
      [],
      ['firing partition-under-replicated:p/orders/0'],
    ]);
  });

  it('gives a configured peer never seen the grace time to join', () => {
    const unseen = (nowMs: number): AlertSnapshot => ({ ...healthy(nowMs), brokers: [{ id: 'b1', state: 'alive' }, { id: 'b2', state: 'unseen' }] });
    expect(run([unseen(0), unseen(500), healthy(600), unseen(700), unseen(1700)])).toEqual([[], [], [], [], ['firing broker-down:b2']]);
  });

  it('fires disk-full at the threshold percent', () => {
    const disk = (nowMs: number, usedPercent: number): AlertSnapshot => ({ ...healthy(nowMs), disk: { path: '/data', usedPercent } });
    expect(run([disk(0, 89.9), disk(1, 90), disk(2, 95), disk(3, 50)])).toEqual([[], ['firing disk-full:/data'], [], ['resolved disk-full:/data']]);
  });

  it('carries what a receiver needs to route and dedupe', () => {
    const { notifications } = evaluateAlerts({ ...healthy(1234), brokers: [{ id: 'b9', state: 'dead' }] }, EMPTY_ALERT_STATE, thresholds, 'b1');
    expect(notifications).toEqual([
      { status: 'firing', alert: 'broker-down', key: 'broker-down:b9', subject: 'b9', message: 'broker b9 is down (gossip: dead)', sinceMs: 1234, timeMs: 1234, reporter: 'b1' },
    ]);
  });
});

describe('redactUrl', () => {
  it('hides credentials and query strings', () => {
    expect(redactUrl('https://user:pw@hooks.example.com/x?token=abc')).toBe('https://REDACTED@hooks.example.com/x?REDACTED');
    expect(redactUrl('http://127.0.0.1:9/hook')).toBe('http://127.0.0.1:9/hook');
  });
});
