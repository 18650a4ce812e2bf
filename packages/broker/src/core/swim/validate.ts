/**
 * Validation of gossip messages. The peer transport hands over plain decoded
 * data; nothing reaches the state machine before it has the right shape and
 * sizes. Returns fresh objects holding only known fields.
 */
import { RelayError } from '@relaymq/sdk/protocol';
import type { MemberMeta, MemberSnapshot, MemberState, SwimMessage, Update } from './types.js';

/** Size limits of what a member may claim or send. */
export const SWIM_WIRE_LIMITS = Object.freeze({
  /** Characters of a member id (as the `id@host:port` grammar allows). */
  maxIdLength: 64,
  /** Characters of a peer address (`host:port`). */
  maxAddressLength: 300,
  /** Characters of a client URL. */
  maxClientUrlLength: 2048,
  /** Updates in one message. */
  maxUpdates: 1024,
  /** Members in one `sync`. */
  maxSyncMembers: 1024,
});

export type SwimWireLimits = typeof SWIM_WIRE_LIMITS;

export type ParseResult = { ok: true; message: SwimMessage } | { ok: false; reason: string };

const ID = /^[A-Za-z0-9_-]+$/;
const STATES: ReadonlySet<string> = new Set<MemberState>(['alive', 'suspect', 'dead', 'left']);

class Invalid extends Error {}

function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Invalid(`${what} must be an object`);
  return value as Record<string, unknown>;
}

function count(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new Invalid(`${what} must be a non-negative integer`);
  return value;
}

function text(value: unknown, what: string, maxLength: number): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > maxLength) {
    throw new Invalid(`${what} must be a string of 1..${maxLength} characters`);
  }
  return value;
}

function memberId(value: unknown, what: string, limits: SwimWireLimits): string {
  const id = text(value, what, limits.maxIdLength);
  if (!ID.test(id)) throw new Invalid(`${what} must match [A-Za-z0-9_-]`);
  return id;
}

function list(value: unknown, what: string, max: number): unknown[] {
  if (!Array.isArray(value)) throw new Invalid(`${what} must be an array`);
  if (value.length > max) throw new Invalid(`${what} has ${value.length} entries, more than ${max}`);
  return value;
}

function meta(value: unknown, limits: SwimWireLimits): MemberMeta {
  const o = record(value, 'meta');
  const out: MemberMeta = { clientUrl: text(o.clientUrl, 'meta.clientUrl', limits.maxClientUrlLength) };
  if (o.load !== undefined) {
    const load = record(o.load, 'meta.load');
    out.load = { connections: count(load.connections, 'meta.load.connections'), partitionsLed: count(load.partitionsLed, 'meta.load.partitionsLed') };
  }
  return out;
}

function update(value: unknown, limits: SwimWireLimits): Update {
  const o = record(value, 'update');
  const id = memberId(o.id, 'update.id', limits);
  const incarnation = count(o.incarnation, 'update.incarnation');
  switch (o.kind) {
    case 'alive':
      return { kind: 'alive', id, incarnation, address: text(o.address, 'update.address', limits.maxAddressLength), meta: meta(o.meta, limits) };
    case 'suspect':
    case 'dead':
      return { kind: o.kind, id, incarnation, from: memberId(o.from, 'update.from', limits) };
    case 'left':
      return { kind: 'left', id, incarnation };
    default:
      throw new Invalid(`unknown update kind ${JSON.stringify(o.kind)}`);
  }
}

function snapshot(value: unknown, limits: SwimWireLimits): MemberSnapshot {
  const o = record(value, 'member');
  if (typeof o.state !== 'string' || !STATES.has(o.state)) throw new Invalid('member.state must be alive, suspect, dead or left');
  return {
    id: memberId(o.id, 'member.id', limits),
    address: text(o.address, 'member.address', limits.maxAddressLength),
    meta: meta(o.meta, limits),
    incarnation: count(o.incarnation, 'member.incarnation'),
    state: o.state as MemberState,
  };
}

function updates(value: unknown, limits: SwimWireLimits): Update[] {
  return list(value, 'updates', limits.maxUpdates).map((u) => update(u, limits));
}

/** Checks a decoded gossip payload; never throws. */
export function parseSwimMessage(value: unknown, limits: SwimWireLimits = SWIM_WIRE_LIMITS): ParseResult {
  try {
    const o = record(value, 'message');
    let message: SwimMessage;
    switch (o.type) {
      case 'ping':
        message = { type: 'ping', seq: count(o.seq, 'seq'), target: memberId(o.target, 'target', limits), updates: updates(o.updates, limits) };
        break;
      case 'ack':
      case 'nack':
        message = { type: o.type, seq: count(o.seq, 'seq'), updates: updates(o.updates, limits) };
        break;
      case 'ping-req':
        message = {
          type: 'ping-req',
          seq: count(o.seq, 'seq'),
          target: memberId(o.target, 'target', limits),
          targetAddress: text(o.targetAddress, 'targetAddress', limits.maxAddressLength),
          updates: updates(o.updates, limits),
        };
        break;
      case 'gossip':
        message = { type: 'gossip', updates: updates(o.updates, limits) };
        break;
      case 'sync':
        if (typeof o.reply !== 'boolean') throw new Invalid('reply must be a boolean');
        message = { type: 'sync', reply: o.reply, members: list(o.members, 'members', limits.maxSyncMembers).map((m) => snapshot(m, limits)) };
        break;
      default:
        throw new Invalid(`unknown message type ${JSON.stringify(o.type)}`);
    }
    return { ok: true, message };
  } catch (err) {
    if (err instanceof Invalid) return { ok: false, reason: err.message };
    throw err;
  }
}

/** Checks this node's own meta; throws `INVALID_ARGUMENT` naming the problem. */
export function checkMeta(value: MemberMeta, limits: SwimWireLimits = SWIM_WIRE_LIMITS): MemberMeta {
  try {
    return meta(value, limits);
  } catch (err) {
    if (err instanceof Invalid) throw new RelayError('INVALID_ARGUMENT', `swim meta: ${err.message}`);
    throw err;
  }
}

/** Checks this node's own id and address; throws `INVALID_ARGUMENT`. */
export function checkIdentity(id: string, address: string, limits: SwimWireLimits = SWIM_WIRE_LIMITS): void {
  try {
    memberId(id, 'id', limits);
    text(address, 'address', limits.maxAddressLength);
  } catch (err) {
    if (err instanceof Invalid) throw new RelayError('INVALID_ARGUMENT', `swim identity: ${err.message}`);
    throw err;
  }
}
