/**
 * Consumer-group frames: a `subscribe` with `group` makes the connection's
 * client a member; the broker pushes the member's `assignment` whenever it
 * changes; the member commits positions with `group-commit` (each fenced by
 * the epoch of its assignment) and proves it is alive with `group-heartbeat`.
 */
import { durableNameProblem } from './durable.js';
import { protocolError } from './errors.js';
import { topicProblem } from './topic.js';

/** Characters of a member id (chosen by the SDK, unique per subscription). */
export const MAX_MEMBER_ID_LENGTH = 128;
/** Bounds of a group's session timeout, in ms. */
export const SESSION_TIMEOUT_BOUNDS = Object.freeze({ minMs: 100, maxMs: 3_600_000 });

/** A position of a group member: `offset` is the next to deliver, `epoch` the assignment it was handled under. */
export interface GroupCursor {
  topic: string;
  partition: number;
  offset: number;
  epoch: number;
}

/** One partition of a member's assignment. */
export interface AssignedPartition {
  topic: string;
  partition: number;
  /** Epoch of the grant; commits for the partition must carry it. */
  epoch: number;
  /**
   * Where delivery starts, sent with a partition the member did not own in the previous assignment frame; on a
   * revoking partition the member was never granted under this epoch, the position to release it at.
   */
  offset?: number;
  /** The member must finish its in-flight message, commit and release the partition (`group-commit` with `release`). */
  revoking?: boolean;
}

/** The broker → member: the member's whole assignment, sent whenever it changes. */
export interface AssignmentFrame {
  type: 'assignment';
  subscription: number;
  partitions: AssignedPartition[];
}

/**
 * Member → broker: commits positions; with `release`, gives up the listed
 * partitions it was asked to revoke. Answered by `committed`, or by an `error`
 * `FENCED` when a position's epoch is no longer the partition's (the others are stored).
 */
export interface GroupCommitFrame {
  type: 'group-commit';
  id: number;
  group: string;
  member: string;
  positions: GroupCursor[];
  release?: boolean;
  /** The member leaves the group after these positions are stored (unsubscribe, close); its partitions go to the others at once. */
  leave?: boolean;
}

/** Member → broker: the member is alive. Answered by `committed`, or `FENCED` when the group no longer knows the member. */
export interface GroupHeartbeatFrame {
  type: 'group-heartbeat';
  id: number;
  group: string;
  member: string;
}

type Obj = Record<string, unknown>;

function obj(value: unknown, what: string): Obj {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) throw protocolError(`${what} must be a map`);
  return value as Obj;
}

function uint(o: Obj, field: string): number {
  const value = o[field];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw protocolError(`${field} must be a non-negative integer`);
  return value;
}

function list(o: Obj, field: string, max: number): unknown[] {
  const value = o[field];
  if (!Array.isArray(value)) throw protocolError(`${field} must be a list`);
  if (value.length > max) throw protocolError(`${field} has more than ${max} entries`);
  return value;
}

function topicOf(o: Obj): string {
  const value = o.topic;
  if (typeof value !== 'string') throw protocolError('topic must be a string');
  const problem = topicProblem(value);
  if (problem !== undefined) throw protocolError(`topic: ${problem}`);
  return value;
}

/** Reads a group name (same grammar as durable names). */
export function groupName(o: Obj, field: string): string {
  const value = o[field];
  if (typeof value !== 'string') throw protocolError(`${field} must be a string`);
  const problem = durableNameProblem(value);
  if (problem !== undefined) throw protocolError(`${field}: ${problem}`);
  return value;
}

/** Reads a member id. */
export function memberId(o: Obj, field: string): string {
  const value = o[field];
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_MEMBER_ID_LENGTH) throw protocolError(`${field} must be a string of 1–${MAX_MEMBER_ID_LENGTH} characters`);
  return value;
}

/** Reads a session timeout within {@link SESSION_TIMEOUT_BOUNDS}. */
export function sessionTimeout(o: Obj, field: string): number {
  const value = uint(o, field);
  if (value < SESSION_TIMEOUT_BOUNDS.minMs || value > SESSION_TIMEOUT_BOUNDS.maxMs) throw protocolError(`${field} must be from ${SESSION_TIMEOUT_BOUNDS.minMs} to ${SESSION_TIMEOUT_BOUNDS.maxMs}`);
  return value;
}

function groupCursor(value: unknown): GroupCursor {
  const o = obj(value, 'position');
  return { topic: topicOf(o), partition: uint(o, 'partition'), offset: uint(o, 'offset'), epoch: uint(o, 'epoch') };
}

function assigned(value: unknown): AssignedPartition {
  const o = obj(value, 'partition');
  const entry: AssignedPartition = { topic: topicOf(o), partition: uint(o, 'partition'), epoch: uint(o, 'epoch') };
  if (o.offset !== undefined && o.offset !== null) entry.offset = uint(o, 'offset');
  if (o.revoking === true) entry.revoking = true;
  else if (o.revoking !== undefined && o.revoking !== null && o.revoking !== false) throw protocolError('revoking must be a boolean');
  return entry;
}

/** Validates a decoded `group-commit` or `group-heartbeat` (a fresh object of known fields). */
export function validateGroupClientFrame(o: Obj, maxList: number): GroupCommitFrame | GroupHeartbeatFrame {
  if (o.type === 'group-heartbeat') return { type: 'group-heartbeat', id: uint(o, 'id'), group: groupName(o, 'group'), member: memberId(o, 'member') };
  const frame: GroupCommitFrame = {
    type: 'group-commit',
    id: uint(o, 'id'),
    group: groupName(o, 'group'),
    member: memberId(o, 'member'),
    positions: list(o, 'positions', maxList).map(groupCursor),
  };
  if (o.release === true) frame.release = true;
  if (o.leave === true) frame.leave = true;
  return frame;
}

/** Validates a decoded `assignment`. */
export function validateAssignmentFrame(o: Obj, maxList: number): AssignmentFrame {
  return { type: 'assignment', subscription: uint(o, 'subscription'), partitions: list(o, 'partitions', maxList).map(assigned) };
}
