import { describe, expect, it } from 'vitest';
import type { Message } from '../core/raft/index.js';
import { parseRaftMessage } from './raft-wire.js';

const parseString = (data: unknown): string | undefined => (typeof data === 'string' ? data : undefined);

describe('parseRaftMessage: configuration entries and snapshots', () => {
  it('takes a conf entry and a snapshot with learners as sent', () => {
    const app: Message<string, string> = {
      type: 'app',
      from: 'b1',
      to: 'b4',
      term: 2,
      prevIndex: 3,
      prevTerm: 1,
      commit: 3,
      entries: [
        { type: 'conf', index: 4, term: 2, change: { type: 'add-learner', node: 'b4' }, conf: { voters: ['b1', 'b2', 'b3'], learners: ['b4'] } },
        { type: 'normal', index: 5, term: 2, data: 'x' },
      ],
    };
    expect(parseRaftMessage(structuredClone(app), parseString)).toEqual(app);
    const snapshot: Message<string, string> = {
      type: 'snapshot',
      from: 'b1',
      to: 'b4',
      term: 2,
      snapshot: { meta: { index: 9, term: 2, conf: { voters: ['b1', 'b2'], learners: ['b4'] } }, data: 'sm' },
    };
    expect(parseRaftMessage(structuredClone(snapshot), parseString, parseString)).toEqual(snapshot);
    const old = { ...snapshot, snapshot: { ...snapshot.snapshot, meta: { index: 9, term: 2, conf: { voters: ['b1'] } } } };
    expect(parseRaftMessage(structuredClone(old), parseString, parseString)).toEqual(old);
  });

  it('keeps the commit-only mark of an empty append, and only there', () => {
    const carrier = { type: 'app', from: 'b1', to: 'b2', term: 2, prevIndex: 3, prevTerm: 1, commit: 3, entries: [], commitOnly: true };
    expect(parseRaftMessage(structuredClone(carrier), parseString)).toEqual(carrier);
    const { commitOnly: _, ...plain } = carrier;
    expect(parseRaftMessage(structuredClone(plain), parseString)).toEqual(plain);
    expect(parseRaftMessage({ ...carrier, commitOnly: 'yes' }, parseString)).toBeUndefined();
    // A mark on an append with entries is dropped: entries are always answered.
    const withEntries = { ...carrier, entries: [{ type: 'normal', index: 4, term: 2, data: 'x' }] };
    expect(parseRaftMessage(withEntries, parseString)).not.toHaveProperty('commitOnly');
  });

  it('refuses malformed conf entries and configurations', () => {
    const entry = { type: 'conf', index: 4, term: 2, change: { type: 'add-learner', node: 'b4' }, conf: { voters: ['b1'], learners: ['b4'] } };
    const app = (e: unknown): unknown => ({ type: 'app', from: 'b1', to: 'b4', term: 2, prevIndex: 3, prevTerm: 1, commit: 3, entries: [e] });
    expect(parseRaftMessage(app(entry), parseString)).toBeDefined();
    expect(parseRaftMessage(app({ ...entry, change: { type: 'demote', node: 'b4' } }), parseString)).toBeUndefined();
    expect(parseRaftMessage(app({ ...entry, change: { type: 'promote', node: '' } }), parseString)).toBeUndefined();
    expect(parseRaftMessage(app({ ...entry, conf: { voters: 'b1' } }), parseString)).toBeUndefined();
    expect(parseRaftMessage(app({ ...entry, conf: { voters: ['b1'], learners: [7] } }), parseString)).toBeUndefined();
    expect(parseRaftMessage(app({ ...entry, change: undefined }), parseString)).toBeUndefined();
  });
});

describe('parseRaftMessage: quiescence marks', () => {
  it('keeps the quiesce mark of heartbeats and their answers, and leaves it out when absent', () => {
    const heartbeat: Message<string, string> = { type: 'heartbeat', from: 'b1', to: 'b2', term: 3, commit: 7, quiesce: true };
    const answer: Message<string, string> = { type: 'heartbeat-resp', from: 'b2', to: 'b1', term: 3, quiesce: true };
    expect(parseRaftMessage(structuredClone(heartbeat), parseString)).toEqual(heartbeat);
    expect(parseRaftMessage(structuredClone(answer), parseString)).toEqual(answer);
    // A broker without quiescence sends neither mark: the message means what it always did.
    expect(parseRaftMessage({ type: 'heartbeat', from: 'b1', to: 'b2', term: 3, commit: 7 }, parseString)).toEqual({ type: 'heartbeat', from: 'b1', to: 'b2', term: 3, commit: 7 });
    expect(parseRaftMessage({ type: 'heartbeat', from: 'b1', to: 'b2', term: 3, commit: 7, quiesce: false }, parseString)).toEqual({ type: 'heartbeat', from: 'b1', to: 'b2', term: 3, commit: 7 });
  });

  it('refuses a quiesce mark that is not a boolean', () => {
    expect(parseRaftMessage({ type: 'heartbeat', from: 'b1', to: 'b2', term: 3, commit: 7, quiesce: 1 }, parseString)).toBeUndefined();
    expect(parseRaftMessage({ type: 'heartbeat-resp', from: 'b2', to: 'b1', term: 3, quiesce: 'yes' }, parseString)).toBeUndefined();
  });
});

describe('parseRaftMessage: the lost mark of a rejection', () => {
  it('keeps `lost` on a rejection, drops it elsewhere, and refuses one that is not a boolean', () => {
    const lost: Message<string, string> = { type: 'app-resp', from: 'b2', to: 'b1', term: 3, index: 9, reject: true, hintIndex: 4, hintTerm: 0, lost: true };
    expect(parseRaftMessage(structuredClone(lost), parseString)).toEqual(lost);
    const accepted = { type: 'app-resp', from: 'b2', to: 'b1', term: 3, index: 9, reject: false, hintIndex: 0, hintTerm: 0 };
    expect(parseRaftMessage({ ...accepted, lost: true }, parseString)).toEqual(accepted);
    expect(parseRaftMessage({ ...lost, lost: 1 }, parseString)).toBeUndefined();
  });
});

describe('parseRaftMessage: the unsynced mark of a follower that acknowledges before its fsync', () => {
  it('keeps `unsynced` on rejections and heartbeat answers, drops it on acceptances, and refuses one that is not a boolean', () => {
    const rejection: Message<string, string> = { type: 'app-resp', from: 'b2', to: 'b1', term: 3, index: 9, reject: true, hintIndex: 4, hintTerm: 2, unsynced: true };
    expect(parseRaftMessage(structuredClone(rejection), parseString)).toEqual(rejection);
    const both: Message<string, string> = { ...rejection, lost: true };
    expect(parseRaftMessage(structuredClone(both), parseString)).toEqual(both);
    const accepted = { type: 'app-resp', from: 'b2', to: 'b1', term: 3, index: 9, reject: false, hintIndex: 0, hintTerm: 0 };
    expect(parseRaftMessage({ ...accepted, unsynced: true }, parseString)).toEqual(accepted);
    const answer: Message<string, string> = { type: 'heartbeat-resp', from: 'b2', to: 'b1', term: 3, quiesce: true, unsynced: true };
    expect(parseRaftMessage(structuredClone(answer), parseString)).toEqual(answer);
    expect(parseRaftMessage({ ...rejection, unsynced: 'yes' }, parseString)).toBeUndefined();
    expect(parseRaftMessage({ ...answer, unsynced: 0 }, parseString)).toBeUndefined();
  });
});

describe('parseRaftMessage: the marks of a recovering replica (RaftConfig.recoveringAtStart)', () => {
  it('keeps recovering and wouldGrant on vote answers, absent means not recovering, and refuses malformed ones', () => {
    const would: Message<string, string> = { type: 'vote-resp', from: 'b2', to: 'b1', term: 3, reject: true, recovering: true, wouldGrant: true };
    expect(parseRaftMessage(structuredClone(would), parseString)).toEqual(would);
    const pre: Message<string, string> = { type: 'pre-vote-resp', from: 'b2', to: 'b1', term: 3, reject: true, recovering: true };
    expect(parseRaftMessage(structuredClone(pre), parseString)).toEqual(pre);
    const plain = { type: 'vote-resp', from: 'b2', to: 'b1', term: 3, reject: false };
    expect(parseRaftMessage(plain, parseString)).toEqual(plain);
    expect(parseRaftMessage({ ...plain, recovering: false, wouldGrant: false }, parseString)).toEqual(plain);
    expect(parseRaftMessage({ ...would, recovering: 'yes' }, parseString)).toBeUndefined();
    expect(parseRaftMessage({ ...would, wouldGrant: 1 }, parseString)).toBeUndefined();
    // wouldGrant only on a refusal of a recovering voter.
    expect(parseRaftMessage({ ...would, reject: false }, parseString)).toBeUndefined();
    expect(parseRaftMessage({ ...would, recovering: undefined }, parseString)).toBeUndefined();
  });

  it("keeps a timeout-now's commit and its term, both or neither (an older broker sends none)", () => {
    const handover: Message<string, string> = { type: 'timeout-now', from: 'b1', to: 'b2', term: 4, commit: 9, commitTerm: 4 };
    expect(parseRaftMessage(structuredClone(handover), parseString)).toEqual(handover);
    const older = { type: 'timeout-now', from: 'b1', to: 'b2', term: 4 };
    expect(parseRaftMessage(older, parseString)).toEqual(older);
    for (const bad of [{ commitTerm: undefined }, { commit: undefined }, { commit: 0 }, { commit: -1 }, { commit: 1.5 }, { commit: '9' }, { commitTerm: 'x' }]) {
      expect(parseRaftMessage({ ...handover, ...bad }, parseString)).toBeUndefined();
    }
  });

  it("keeps a guarded election's removal on vote requests and the attestation on any vote answer, both fields or neither", () => {
    const request: Message<string, string> = { type: 'pre-vote', from: 'b1', to: 'b2', term: 4, lastIndex: 9, lastTerm: 3, transfer: false, confIndex: 7, confTerm: 2 };
    expect(parseRaftMessage(structuredClone(request), parseString)).toEqual(request);
    const older = { type: 'vote', from: 'b1', to: 'b2', term: 4, lastIndex: 9, lastTerm: 3, transfer: false };
    expect(parseRaftMessage(older, parseString)).toEqual(older);
    expect(parseRaftMessage({ ...request, confTerm: undefined }, parseString)).toBeUndefined();
    expect(parseRaftMessage({ ...request, confIndex: undefined }, parseString)).toBeUndefined();
    expect(parseRaftMessage({ ...request, confIndex: 0 }, parseString)).toBeUndefined();
    expect(parseRaftMessage({ ...request, confTerm: -1 }, parseString)).toBeUndefined();
    // On a refusal at the voter's own term, a grant, or a recovering voter's would-grant.
    const refusal: Message<string, string> = { type: 'pre-vote-resp', from: 'b2', to: 'b1', term: 2, reject: true, committedIndex: 8, committedTerm: 2 };
    expect(parseRaftMessage(structuredClone(refusal), parseString)).toEqual(refusal);
    const grant: Message<string, string> = { type: 'vote-resp', from: 'b2', to: 'b1', term: 4, reject: false, committedIndex: 7, committedTerm: 2 };
    expect(parseRaftMessage(structuredClone(grant), parseString)).toEqual(grant);
    const would: Message<string, string> = { type: 'vote-resp', from: 'b2', to: 'b1', term: 4, reject: true, recovering: true, wouldGrant: true, committedIndex: 7, committedTerm: 2 };
    expect(parseRaftMessage(structuredClone(would), parseString)).toEqual(would);
    expect(parseRaftMessage({ ...refusal, committedTerm: undefined }, parseString)).toBeUndefined();
    expect(parseRaftMessage({ ...refusal, committedIndex: 0 }, parseString)).toBeUndefined();
    expect(parseRaftMessage({ ...refusal, committedIndex: '8' }, parseString)).toBeUndefined();
  });

  it('keeps recovering with its start term on heartbeat answers and rejections, drops it on acceptances, and refuses a bad start term', () => {
    const answer: Message<string, string> = { type: 'heartbeat-resp', from: 'b2', to: 'b1', term: 3, unsynced: true, recovering: true, startTerm: 3 };
    expect(parseRaftMessage(structuredClone(answer), parseString)).toEqual(answer);
    const rejection: Message<string, string> = { type: 'app-resp', from: 'b2', to: 'b1', term: 4, index: 9, reject: true, hintIndex: 4, hintTerm: 0, lost: true, recovering: true, startTerm: 2 };
    expect(parseRaftMessage(structuredClone(rejection), parseString)).toEqual(rejection);
    const accepted = { type: 'app-resp', from: 'b2', to: 'b1', term: 3, index: 9, reject: false, hintIndex: 0, hintTerm: 0 };
    expect(parseRaftMessage({ ...accepted, recovering: true, startTerm: 3 }, parseString)).toEqual(accepted);
    expect(parseRaftMessage({ type: 'heartbeat-resp', from: 'b2', to: 'b1', term: 3 }, parseString)).toEqual({ type: 'heartbeat-resp', from: 'b2', to: 'b1', term: 3 });
    expect(parseRaftMessage({ ...answer, startTerm: undefined }, parseString)).toBeUndefined();
    expect(parseRaftMessage({ ...answer, startTerm: 4 }, parseString)).toBeUndefined(); // above its term
    expect(parseRaftMessage({ ...answer, startTerm: -1 }, parseString)).toBeUndefined();
    expect(parseRaftMessage({ ...answer, recovering: 1 }, parseString)).toBeUndefined();
    expect(parseRaftMessage({ ...rejection, startTerm: 1.5 }, parseString)).toBeUndefined();
  });

  it('keeps a heartbeat answer\'s commit (to a leader that removed itself) and refuses a bad one', () => {
    const answer: Message<string, string> = { type: 'heartbeat-resp', from: 'b2', to: 'b1', term: 3, commit: 7 };
    expect(parseRaftMessage(structuredClone(answer), parseString)).toEqual(answer);
    expect(parseRaftMessage({ ...answer, commit: -1 }, parseString)).toBeUndefined();
    expect(parseRaftMessage({ ...answer, commit: '7' }, parseString)).toBeUndefined();
  });
});

describe('parseRaftMessage: a guarded election\'s removal and its attestation (docs/raft.md, "Two voters beside three")', () => {
  it('keeps confIndex and confTerm on vote requests, absent means none (an older broker), and refuses malformed ones', () => {
    for (const type of ['vote', 'pre-vote'] as const) {
      const guarded: Message<string, string> = { type, from: 'b1', to: 'b2', term: 4, lastIndex: 9, lastTerm: 3, transfer: false, confIndex: 7, confTerm: 2 };
      expect(parseRaftMessage(structuredClone(guarded), parseString)).toEqual(guarded);
      const plain = { type, from: 'b1', to: 'b2', term: 4, lastIndex: 9, lastTerm: 3, transfer: false };
      expect(parseRaftMessage(plain, parseString)).toEqual(plain);
      // Both or neither, an index of an entry (at least 1), a term: anything else is refused, never half kept.
      for (const bad of [{ confTerm: undefined }, { confIndex: undefined }, { confIndex: 0 }, { confIndex: -1 }, { confIndex: 1.5 }, { confIndex: '7' }, { confIndex: null }, { confTerm: -1 }, { confTerm: 'x' }, { confIndex: 2 ** 53 }]) {
        expect(parseRaftMessage({ ...guarded, ...bad }, parseString)).toBeUndefined();
      }
    }
  });

  it('keeps committedIndex and committedTerm on any vote answer (a grant, a refusal, a would-grant), and refuses malformed ones', () => {
    const answers: Message<string, string>[] = [
      { type: 'vote-resp', from: 'b2', to: 'b1', term: 4, reject: false, committedIndex: 7, committedTerm: 2 },
      { type: 'pre-vote-resp', from: 'b2', to: 'b1', term: 1, reject: true, committedIndex: 9, committedTerm: 1 },
      { type: 'pre-vote-resp', from: 'b2', to: 'b1', term: 5, reject: true, recovering: true, wouldGrant: true, committedIndex: 7, committedTerm: 2 },
    ];
    for (const answer of answers) {
      expect(parseRaftMessage(structuredClone(answer), parseString)).toEqual(answer);
      for (const bad of [{ committedTerm: undefined }, { committedIndex: undefined }, { committedIndex: 0 }, { committedIndex: -3 }, { committedIndex: 7.5 }, { committedTerm: '2' }, { committedTerm: null }]) {
        expect(parseRaftMessage({ ...answer, ...bad }, parseString)).toBeUndefined();
      }
    }
    // An older broker's answer has neither: no attestation, and the shape of an answer without it.
    expect(parseRaftMessage({ type: 'vote-resp', from: 'b2', to: 'b1', term: 4, reject: false }, parseString)).toEqual({ type: 'vote-resp', from: 'b2', to: 'b1', term: 4, reject: false });
  });
});
