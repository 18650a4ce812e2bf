/**
 * Membership changes of a Raft group as they cross the peer transport: a
 * broker that does not lead the group forwards the change to its leader,
 * and reads the resulting configuration back as untrusted input.
 */
import { RelayError } from '@relaymq/sdk/protocol';
import { parseConf, type ConfChange, type ConfState } from '../core/raft/index.js';
import { parseConfChange } from '../runtime/raft-wire.js';

/** The peer RPC method of a forwarded membership change. */
export const CONF_CHANGE_METHOD = 'raft.conf';

/** A membership change of one group (`meta` or `p/<topic>/<partition>`). */
export interface ConfChangeRequest {
  group: string;
  change: ConfChange;
}

export function parseConfChangeRequest(body: unknown): ConfChangeRequest {
  const o = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const change = parseConfChange(o.change);
  if (typeof o.group !== 'string' || o.group.length === 0 || o.group.length > 300 || change === undefined) {
    throw new RelayError('INVALID_ARGUMENT', `${CONF_CHANGE_METHOD} wants { group, change: { type, node } }`);
  }
  return { group: o.group, change };
}

/** The configuration a leader answered with. */
export function parseConfAnswer(body: unknown): ConfState {
  const conf = parseConf(body);
  if (conf === undefined) throw new RelayError('INTERNAL', 'malformed answer to a membership change');
  return conf;
}
