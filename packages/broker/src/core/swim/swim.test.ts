/**
 * Scripted scenarios of the SWIM state machine: messages are passed by hand,
 * so each test reads as the protocol (ping, ack, ping-req, nack, suspect,
 * refute, dead), then the precedence table of updates.
 */
import { describe, expect, it } from 'vitest';
import { RelayError } from '@relaymq/sdk/protocol';
import { Swim, type SwimInit, type SwimTestKnobs } from './swim.js';
import type { MemberState, MembershipEventType, Outbound, RandomSource, SwimMessage, Update } from './types.js';

/** Always the last choice: probe phase = probe interval, gossip phase = gossip interval. */
const last: RandomSource = { nextInt: (n) => n - 1 };
const address = (id: string): string => `${id}:7501`;
const meta = (id: string): { clientUrl: string } => ({ clientUrl: `ws://${id}:7401` });
const alive = (id: string, incarnation = 0): Update => ({ kind: 'alive', id, incarnation, address: address(id), meta: meta(id) });

function node(id: string, init: Partial<SwimInit> = {}, knobs?: SwimTestKnobs): Swim {
  return new Swim({ id, address: address(id), meta: meta(id), random: last, ...init }, knobs);
}

/** A node that already knows `others` (alive, incarnation 0), with its output drained. */
function knowing(id: string, others: string[], init: Partial<SwimInit> = {}): Swim {
  const swim = node(id, init);
  swim.step('x', { type: 'gossip', updates: others.map((o) => alive(o)) });
  swim.drain();
  return swim;
}

/** Ticks `swim` until it emits a message of `type` (at most `max` ticks); returns it and everything sent meanwhile. */
function tickUntil(swim: Swim, type: SwimMessage['type'], max = 100): { found: Outbound; sent: Outbound[] } {
  const sent: Outbound[] = [];
  for (let i = 0; i < max; i++) {
    swim.tick();
    const { messages } = swim.drain();
    sent.push(...messages);
    const found = messages.find((m) => m.message.type === type);
    if (found !== undefined) return { found, sent };
  }
  throw new Error(`${swim.id} sent no ${type} within ${max} ticks`);
}

function only<T extends SwimMessage['type']>(out: Outbound[], type: T): Array<Outbound & { message: Extract<SwimMessage, { type: T }> }> {
  return out.filter((m): m is Outbound & { message: Extract<SwimMessage, { type: T }> } => m.message.type === type);
}

function eventTypes(swim: Swim): string[] {
  return swim.drain().events.map((e) => `${e.type} ${e.member.id}@${e.member.incarnation}`);
}

describe('probing', () => {
  it('pings one member per probe interval; the ping and the ack carry each side’s own record', () => {
    const a = knowing('a', ['b']);
    const b = knowing('b', ['a']);
    const { found: ping } = tickUntil(a, 'ping');
    expect(a.currentTick).toBe(10);
    expect(ping.to).toBe('b');
    expect(ping.address).toBe(address('b'));
    expect(ping.message.type === 'ping' && ping.message.updates[0]).toEqual(alive('a'));
    b.step('a', ping.message);
    const [ack] = only(b.drain().messages, 'ack');
    expect(ack?.to).toBe('a');
    expect(ack?.message.seq).toBe(ping.message.type === 'ping' ? ping.message.seq : -1);
    expect(ack?.message.updates[0]).toEqual(alive('b'));
    a.step('b', ack?.message as SwimMessage);
    expect(a.stats()).toMatchObject({ probes: 1, probesFailed: 0, awareness: 0 });
    // The next probe starts one interval after the previous one.
    tickUntil(a, 'ping');
    expect(a.currentTick).toBe(20);
  });

  it('asks a peer to probe indirectly after the probe timeout, and takes its relayed ack', () => {
    const a = knowing('a', ['b', 'c']);
    const b = knowing('b', ['a', 'c']);
    const c = knowing('c', ['a', 'b']);
    const { found: ping } = tickUntil(a, 'ping');
    const target = ping.to;
    const helper = target === 'b' ? c : b;
    const targetNode = target === 'b' ? b : c;
    // The direct ping is lost. Five ticks later (probeTimeoutTicks) a asks the other member.
    const { found: req } = tickUntil(a, 'ping-req');
    expect(a.currentTick).toBe(15);
    expect(req.to).toBe(helper.id);
    expect(req.message).toMatchObject({ type: 'ping-req', target, targetAddress: address(target) });
    helper.step('a', req.message);
    const [relayPing] = only(helper.drain().messages, 'ping');
    expect(relayPing?.to).toBe(target);
    targetNode.step(helper.id, relayPing?.message as SwimMessage);
    const [ack] = only(targetNode.drain().messages, 'ack');
    helper.step(target, ack?.message as SwimMessage);
    const [relayed] = only(helper.drain().messages, 'ack');
    expect(relayed?.to).toBe('a');
    expect(relayed?.message.seq).toBe(req.message.type === 'ping-req' ? req.message.seq : -1);
    a.step(helper.id, relayed?.message as SwimMessage);
    while (a.currentTick < 19) a.tick();
    expect(eventTypes(a).filter((e) => e.startsWith('suspected'))).toEqual([]);
    expect(a.stats()).toMatchObject({ probes: 1, probesFailed: 0, indirectProbes: 1, awareness: 0 });
  });

  it('suspects a member that answers neither; nacks from helpers keep its own health score at 0', () => {
    for (const nackDelivered of [true, false]) {
      const a = knowing('a', ['b', 'c']);
      const c = knowing('c', ['a', 'b']);
      const { found: ping } = tickUntil(a, 'ping');
      const target = ping.to;
      const helperId = target === 'b' ? 'c' : 'b';
      const helper = helperId === 'c' ? c : knowing('b', ['a', 'c']);
      const { found: req } = tickUntil(a, 'ping-req');
      helper.step('a', req.message);
      helper.drain(); // its ping to the target is lost too
      const { found: nack } = tickUntil(helper, 'nack');
      expect(nack.to).toBe('a');
      if (nackDelivered) a.step(helperId, nack.message);
      a.drain();
      // At the end of the probe interval a suspects the target.
      while (a.currentTick < 20) a.tick();
      expect(eventTypes(a)).toContain(`suspected ${target}@0`);
      expect(a.stats().awareness).toBe(nackDelivered ? 0 : 1);
      expect(a.member(target)?.state).toBe('suspect');
    }
  });

  it('declares a suspect dead when the suspicion times out (the minimum: a 3-member cluster cannot confirm)', () => {
    const a = knowing('a', ['b', 'c']);
    a.step('c', { type: 'gossip', updates: [{ kind: 'suspect', id: 'b', incarnation: 0, from: 'c' }] });
    expect(eventTypes(a)).toEqual(['suspected b@0']);
    const suspectedAt = a.currentTick;
    // The suspicion spreads on.
    const { found } = tickUntil(a, 'gossip');
    expect(found.message.type === 'gossip' && found.message.updates).toContainEqual({ kind: 'suspect', id: 'b', incarnation: 0, from: 'c' });
    while (a.member('b')?.state === 'suspect') {
      a.tick();
      expect(a.currentTick - suspectedAt).toBeLessThanOrEqual(40);
    }
    expect(a.currentTick - suspectedAt).toBe(40);
    expect(eventTypes(a)).toContain('failed b@0');
  });

  it('tells a suspect it is suspected on the next ping (buddy system)', () => {
    const a = knowing('a', ['b']);
    a.step('c', { type: 'gossip', updates: [{ kind: 'suspect', id: 'b', incarnation: 0, from: 'c' }] });
    const { found: ping } = tickUntil(a, 'ping');
    expect(ping.message.type === 'ping' && ping.message.updates.slice(0, 2)).toEqual([alive('a'), { kind: 'suspect', id: 'b', incarnation: 0, from: 'a' }]);
  });

  it('probes a member suspected by another out of turn, once', () => {
    const ack = (swim: Swim, ping: Outbound): void => swim.step(ping.to, { type: 'ack', seq: ping.message.type === 'ping' ? ping.message.seq : -1, updates: [] });
    // The natural order, from a twin that sees no suspicion.
    const twin = knowing('a', ['b', 'c', 'd']);
    const order = [0, 1, 2].map(() => {
      const { found } = tickUntil(twin, 'ping');
      ack(twin, found);
      return found.to;
    });
    const a = knowing('a', ['b', 'c', 'd']);
    ack(a, tickUntil(a, 'ping').found);
    const suspect = order[2] as string; // due last in this round
    a.step('x', { type: 'gossip', updates: [{ kind: 'suspect', id: suspect, incarnation: 0, from: 'x' }] });
    const next = tickUntil(a, 'ping').found;
    expect(next.to).toBe(suspect);
    ack(a, next);
    expect(tickUntil(a, 'ping').found.to).toBe(order[1]);
  });

  it('ignores a ping meant for another member and acks it not', () => {
    const a = knowing('a', ['b']);
    a.step('b', { type: 'ping', seq: 1, target: 'z', updates: [] });
    expect(only(a.drain().messages, 'ack')).toEqual([]);
    expect(a.stats().messagesIgnored).toBe(1);
  });
});

describe('refutation', () => {
  it('a member hearing it is suspected raises its incarnation and gossips that it is alive', () => {
    const b = knowing('b', ['a', 'c']);
    b.step('a', { type: 'gossip', updates: [{ kind: 'suspect', id: 'b', incarnation: 0, from: 'a' }] });
    expect(b.local().incarnation).toBe(1);
    expect(eventTypes(b)).toEqual(['refuted b@1']);
    expect(b.stats()).toMatchObject({ refutations: 1, awareness: 1 });
    const { found } = tickUntil(b, 'gossip');
    expect(found.message.type === 'gossip' && found.message.updates).toContainEqual(alive('b', 1));
    // The accuser takes the refutation.
    const a = knowing('a', ['b', 'c']);
    a.step('c', { type: 'gossip', updates: [{ kind: 'suspect', id: 'b', incarnation: 0, from: 'c' }] });
    a.step('b', found.message);
    expect(eventTypes(a)).toEqual(['suspected b@0', 'recovered b@1']);
  });

  it('refutes a death too, and an old accusation gets a direct correction instead', () => {
    const b = knowing('b', ['a'], { incarnation: 5 });
    b.step('a', { type: 'gossip', updates: [{ kind: 'dead', id: 'b', incarnation: 3, from: 'a' }] });
    expect(b.local().incarnation).toBe(5);
    const [correction] = b.drain().messages;
    expect(correction).toMatchObject({ to: 'a', message: { type: 'gossip', updates: [alive('b', 5)] } });
    b.step('a', { type: 'gossip', updates: [{ kind: 'dead', id: 'b', incarnation: 5, from: 'a' }] });
    expect(b.local()).toMatchObject({ incarnation: 6, state: 'alive' });
  });

  it('a restarted member learns its old incarnation from the ack to its first ping, and overrides it', () => {
    const a = knowing('a', []);
    a.step('x', { type: 'gossip', updates: [alive('b', 7)] });
    a.drain();
    const b = knowing('b', ['a']); // a new process: incarnation 0
    const { found: ping } = tickUntil(b, 'ping');
    a.step('b', ping.message);
    const [ack] = only(a.drain().messages, 'ack');
    expect(ack?.message.updates).toContainEqual(alive('b', 7));
    b.step('a', ack?.message as SwimMessage);
    expect(b.local().incarnation).toBe(8);
  });

  it('with refutation off (test knob) a member stays accused', () => {
    const b = node('b', {}, { refute: false, awareness: true });
    b.step('a', { type: 'gossip', updates: [alive('a'), { kind: 'suspect', id: 'b', incarnation: 0, from: 'a' }] });
    expect(b.local().incarnation).toBe(0);
    expect(b.stats().refutations).toBe(0);
  });
});

describe('update precedence', () => {
  type Start = MemberState;
  const setup: Record<Start, Update[]> = {
    alive: [alive('m', 1)],
    suspect: [alive('m', 1), { kind: 'suspect', id: 'm', incarnation: 1, from: 'x' }],
    dead: [alive('m', 1), { kind: 'dead', id: 'm', incarnation: 1, from: 'x' }],
    left: [alive('m', 1), { kind: 'left', id: 'm', incarnation: 1 }],
  };
  const s = (incarnation: number): Update => ({ kind: 'suspect', id: 'm', incarnation, from: 'y' });
  const d = (incarnation: number): Update => ({ kind: 'dead', id: 'm', incarnation, from: 'y' });
  const l = (incarnation: number): Update => ({ kind: 'left', id: 'm', incarnation });
  const rows: Array<[Start, Update, MemberState, number, MembershipEventType | undefined]> = [
    ['alive', alive('m', 0), 'alive', 1, undefined],
    ['alive', alive('m', 1), 'alive', 1, undefined],
    ['alive', alive('m', 2), 'alive', 2, undefined],
    ['alive', s(0), 'alive', 1, undefined],
    ['alive', s(1), 'suspect', 1, 'suspected'],
    ['alive', s(2), 'suspect', 2, 'suspected'],
    ['alive', d(0), 'alive', 1, undefined],
    ['alive', d(1), 'dead', 1, 'failed'],
    ['alive', l(1), 'left', 1, 'left'],
    ['suspect', alive('m', 1), 'suspect', 1, undefined],
    ['suspect', alive('m', 2), 'alive', 2, 'recovered'],
    ['suspect', s(1), 'suspect', 1, undefined],
    ['suspect', s(2), 'suspect', 2, 'suspected'],
    ['suspect', d(1), 'dead', 1, 'failed'],
    ['dead', alive('m', 1), 'dead', 1, undefined],
    ['dead', alive('m', 2), 'alive', 2, 'joined'],
    ['dead', s(2), 'dead', 1, undefined],
    ['dead', d(2), 'dead', 1, undefined],
    ['dead', l(2), 'dead', 1, undefined],
    ['left', alive('m', 1), 'left', 1, undefined],
    ['left', alive('m', 2), 'alive', 2, 'joined'],
    ['left', d(2), 'left', 1, undefined],
  ];
  it.each(rows)('%s@1 + %o → %s@%i (%s)', (start, update, state, incarnation, event) => {
    const a = node('a');
    a.step('x', { type: 'gossip', updates: setup[start] });
    a.drain();
    a.step('y', { type: 'gossip', updates: [update] });
    expect(a.member('m')).toMatchObject({ state, incarnation });
    const events = a.drain().events.map((e) => e.type);
    expect(events).toEqual(event === undefined ? [] : [event]);
  });

  it('an alive update with a new incarnation and other meta is an update', () => {
    const a = knowing('a', ['m']);
    a.step('m', { type: 'gossip', updates: [{ ...alive('m', 1), meta: { clientUrl: 'wss://m', load: { connections: 3, partitionsLed: 1 } } } as Update] });
    expect(eventTypes(a)).toEqual(['updated m@1']);
    expect(a.member('m')?.meta).toEqual({ clientUrl: 'wss://m', load: { connections: 3, partitionsLed: 1 } });
  });

  it('independent accusers confirm a suspicion: with the expected confirmations it times out at the minimum', () => {
    // n = 5: expected confirmations 2, timeout 240 ticks unconfirmed, 40 once confirmed twice.
    const a = knowing('a', ['m', 'p', 'q', 'r']);
    const accuse = (from: string): void => a.step(from, { type: 'gossip', updates: [{ kind: 'suspect', id: 'm', incarnation: 0, from }] });
    accuse('p');
    accuse('p'); // the first accuser again: not a confirmation
    accuse('q');
    accuse('r');
    expect(eventTypes(a)).toEqual(['suspected m@0']);
    let ticks = 0;
    while (a.member('m')?.state === 'suspect' && ticks < 300) {
      a.tick();
      ticks++;
    }
    expect(ticks).toBe(40);
    expect(a.member('m')?.state).toBe('dead');
    // One accuser alone (plus this node's own failed probe of m on the way) waits much longer.
    const lone = knowing('a', ['m', 'p', 'q', 'r']);
    lone.step('p', { type: 'gossip', updates: [{ kind: 'suspect', id: 'm', incarnation: 0, from: 'p' }] });
    let loneTicks = 0;
    while (lone.member('m')?.state === 'suspect' && loneTicks < 300) {
      lone.tick();
      loneTicks++;
    }
    expect(loneTicks).toBeGreaterThan(100);
  });
});

describe('joining, leaving and meta', () => {
  it('joins by syncing with the seeds, retrying until one answers', () => {
    const a = node('a');
    a.join([
      { id: 'a', address: address('a') },
      { id: 'b', address: address('b') },
    ]);
    const [sync] = only(a.drain().messages, 'sync');
    expect(sync).toMatchObject({ to: 'b', address: address('b'), message: { type: 'sync', reply: true } });
    expect(sync?.message.members).toEqual([{ id: 'a', address: address('a'), meta: meta('a'), incarnation: 0, state: 'alive' }]);
    const b = node('b');
    // Lost; retried after joinRetryTicks.
    const { found: again } = tickUntil(a, 'sync');
    expect(a.currentTick).toBe(10);
    b.step('a', again.message);
    const answer = b.drain();
    expect(answer.events.map((e) => `${e.type} ${e.member.id}`)).toEqual(['joined a']);
    const [reply] = only(answer.messages, 'sync');
    expect(reply).toMatchObject({ to: 'a', message: { type: 'sync', reply: false } });
    a.step('b', reply?.message as SwimMessage);
    expect(eventTypes(a)).toEqual(['joined b@0']);
    const later: Outbound[] = [];
    for (let i = 0; i < 30; i++) {
      a.tick();
      later.push(...a.drain().messages);
    }
    expect(only(later, 'sync')).toEqual([]);
  });

  it('treats a remote death as a suspicion only, so the member may refute', () => {
    const a = knowing('a', ['b', 'm']);
    a.step('b', { type: 'sync', reply: false, members: [{ id: 'm', address: address('m'), meta: meta('m'), incarnation: 0, state: 'dead' }] });
    expect(a.member('m')?.state).toBe('suspect');
  });

  it('leaves: tells every live member, stops probing, and reports when the news went out', () => {
    const a = knowing('a', ['b', 'c']);
    a.leave();
    const direct = a.drain().messages;
    expect(direct.map((m) => m.to).sort()).toEqual(['b', 'c']);
    expect(direct[0]?.message).toEqual({ type: 'gossip', updates: [{ kind: 'left', id: 'a', incarnation: 0 }] });
    expect(a.leaveSent).toBe(false);
    const sent: Outbound[] = [];
    for (let i = 0; i < 20; i++) {
      a.tick();
      sent.push(...a.drain().messages);
    }
    expect(only(sent, 'ping')).toEqual([]);
    expect(a.leaveSent).toBe(true);
    expect(a.local().state).toBe('left');
    // The others mark it left, not failed.
    const b = knowing('b', ['a']);
    b.step('a', direct[0]?.message as SwimMessage);
    expect(eventTypes(b)).toEqual(['left a@0']);
  });

  it('updateMeta bumps the incarnation and gossips the new meta; unchanged meta is no news', () => {
    const a = knowing('a', ['b']);
    const next = { clientUrl: meta('a').clientUrl, load: { connections: 12, partitionsLed: 2 } };
    expect(a.updateMeta(next)).toBe(true);
    expect(a.updateMeta({ clientUrl: meta('a').clientUrl, load: { connections: 12, partitionsLed: 2 } })).toBe(false);
    expect(a.local()).toMatchObject({ incarnation: 1, meta: next });
    const { found } = tickUntil(a, 'gossip');
    expect(found.message.type === 'gossip' && found.message.updates).toContainEqual({ kind: 'alive', id: 'a', incarnation: 1, address: address('a'), meta: next });
    expect(() => a.updateMeta({ clientUrl: '' })).toThrow(RelayError);
  });
});

describe('bounds', () => {
  it('reaps a tombstone after tombstoneTicks', () => {
    const a = knowing('a', ['b'], { config: { tombstoneTicks: 400, gossipToTheDeadTicks: 100 } });
    a.step('c', { type: 'gossip', updates: [{ kind: 'dead', id: 'b', incarnation: 0, from: 'c' }] });
    a.drain();
    for (let i = 0; i < 399; i++) a.tick();
    expect(a.member('b')?.state).toBe('dead');
    a.tick();
    expect(a.member('b')).toBeUndefined();
    expect(a.drain().events.map((e) => e.type)).toContain('reaped');
  });

  it('holds at most maxMembers, reaping the oldest tombstone to make room', () => {
    const a = knowing('a', ['b', 'c'], { config: { maxMembers: 3 } });
    a.step('x', { type: 'gossip', updates: [alive('d')] });
    expect(a.member('d')).toBeUndefined();
    expect(a.stats().membersRejected).toBe(1);
    a.step('x', { type: 'gossip', updates: [{ kind: 'dead', id: 'c', incarnation: 0, from: 'x' }, alive('d')] });
    expect(a.member('c')).toBeUndefined();
    expect(a.member('d')?.state).toBe('alive');
    expect(a.members().map((m) => m.id)).toEqual(['a', 'b', 'd']);
  });

  it('relays at most maxPendingIndirect indirect probes at once', () => {
    const a = knowing('a', ['b', 'c', 'd'], { config: { maxPendingIndirect: 2 } });
    for (const seq of [1, 2, 3]) a.step('b', { type: 'ping-req', seq, target: 'c', targetAddress: address('c'), updates: [] });
    expect(only(a.drain().messages, 'ping')).toHaveLength(2);
    expect(a.stats()).toMatchObject({ relaysDropped: 1, pendingRelays: 2 });
  });

  it('never holds more than maxOutboxMessages between drains', () => {
    const a = knowing('a', ['b'], { config: { maxOutboxMessages: 3 } });
    for (let seq = 0; seq < 5; seq++) a.step('b', { type: 'ping', seq, target: 'a', updates: [] });
    expect(a.drain().messages.map((m) => m.message.type === 'ack' && m.message.seq)).toEqual([2, 3, 4]);
    expect(a.stats().outboxDropped).toBe(2);
  });

  it('rejects a bad identity, meta or incarnation at construction', () => {
    expect(() => node('a b')).toThrow(RelayError);
    expect(() => node('a', { meta: { clientUrl: '' } })).toThrow(RelayError);
    expect(() => node('a', { incarnation: -1 })).toThrow(RangeError);
    expect(() => node('a', { config: { probeTimeoutTicks: 50 } })).toThrow(/probeTimeoutTicks/);
  });

  it('ignores messages from itself', () => {
    const a = knowing('a', ['b']);
    a.step('a', { type: 'ping', seq: 1, target: 'a', updates: [] });
    expect(a.drain().messages).toEqual([]);
  });
});
