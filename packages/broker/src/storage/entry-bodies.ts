/**
 * A Raft entry's command encoded once (issue 12, "encode once"). The body of
 * a normal entry is the msgpack map `{ t: 'normal', d: command }` through the
 * pinned codec: what a unified record stores as its data, and what a leader
 * sends to a follower that reads it (the `raft-entry-bodies` feature,
 * runtime/raft-wire.ts). The leader encodes it once for every follower and its
 * own record; a follower keeps the bytes the append brought for its record and
 * decodes the command from them in place, without encoding it again.
 *
 * Bodies are remembered per command object until the entry is written (see
 * {@link takeNormalEntryBody}) or applied, so a command must not change once it was
 * proposed; none does (the replicas apply the same command, and the leader's
 * log holds the object it proposed).
 */
import { decodeValueInPlace, encodeValue, protocolError, type ScanLimits } from '@relaymq/sdk/protocol';
import type { ConfChange, ConfState } from '../core/raft/index.js';

/** Entry bodies are broker-written; a publish batch nests a few levels and holds many elements. */
export const ENTRY_SCAN_LIMITS: ScanLimits = { maxDepth: 16, maxElements: 16_000_000, allowTimestamp: false };

/** An entry's body (the pinned msgpack codec): its type and what it carries. */
export type EntryPayload<T> = { t: 'normal'; d: T } | { t: 'noop' } | { t: 'conf'; change: ConfChange; conf: ConfState };

const bodies = new WeakMap<object, Uint8Array>();

/** The body of a normal entry carrying `data`: encoded on the first ask, the same bytes after (for an object). */
export function normalEntryBody(data: unknown): Uint8Array {
  if (typeof data !== 'object' || data === null) return encodeValue({ t: 'normal', d: data });
  let body = bodies.get(data);
  if (body === undefined) {
    body = encodeValue({ t: 'normal', d: data });
    bodies.set(data, body);
  }
  return body;
}

/**
 * The body of the normal entry carrying `data`, for its record: it is not
 * kept after (the record holds it; the followers in step were sent it
 * before the leader's own write). A follower that lags is sent a body
 * encoded again.
 */
export function takeNormalEntryBody(data: unknown): Uint8Array {
  const body = normalEntryBody(data);
  forgetNormalEntryBody(data);
  return body;
}

/**
 * Forgets the body of the normal entry carrying `data` (a group whose log
 * keeps no records: once the entry is applied). A leader keeping the bodies
 * of its whole in-memory window (seconds of entries without a disk) doubled
 * what it holds.
 */
export function forgetNormalEntryBody(data: unknown): void {
  if (typeof data === 'object' && data !== null) bodies.delete(data);
}

/** Remembers `body` as the body of the normal entry carrying `data` (decoded from it): it is not encoded again. */
export function keepNormalEntryBody(data: unknown, body: Uint8Array): void {
  if (typeof data === 'object' && data !== null) bodies.set(data, body);
}

/**
 * Decodes an entry body; its byte strings are views into `body` (the caller
 * keeps `body` for as long as what it decoded). Throws `PROTOCOL_ERROR` on
 * bytes that are no msgpack value within {@link ENTRY_SCAN_LIMITS}; the
 * result is not checked to be an {@link EntryPayload}.
 */
export function decodeEntryBody(body: Uint8Array): unknown {
  return decodeValueInPlace(body, ENTRY_SCAN_LIMITS);
}

/** The command of the normal entry body `body` (views into it); throws `PROTOCOL_ERROR` on anything else. */
export function normalEntryData(body: Uint8Array): unknown {
  const payload = decodeEntryBody(body) as Partial<Record<'t' | 'd', unknown>> | null;
  if (typeof payload !== 'object' || payload === null || payload.t !== 'normal' || !('d' in payload)) throw protocolError('not the body of a normal entry');
  return payload.d;
}
