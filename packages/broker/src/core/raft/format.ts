/**
 * One-line renderings of messages and entries, for logs, traces and the
 * golden files of the scenario tests. Stable: tests compare them verbatim.
 */
import { formatConf } from './membership.js';
import type { AppendResponse, Entry, HardState, HeartbeatResponse, Message } from './types.js';

export type DataFormatter<T> = (data: T) => string;

const defaultData = (data: unknown): string => {
  if (typeof data === 'string') return data;
  if (typeof data === 'number' || typeof data === 'boolean' || typeof data === 'bigint') return String(data);
  if (data instanceof Uint8Array) return `<${data.byteLength} bytes>`;
  return '<data>';
};

/**
 * `index/term` and the payload, e.g. `4/2 v1`; a leader's no-op shows as
 * `4/2 noop`, a configuration change as `5/2 conf(promote b4)`.
 */
export function formatEntry<T>(entry: Entry<T>, formatData: DataFormatter<T> = defaultData): string {
  switch (entry.type) {
    case 'noop':
      return `${entry.index}/${entry.term} noop`;
    case 'conf':
      return `${entry.index}/${entry.term} conf(${entry.change.type} ${entry.change.node})`;
    case 'normal':
      return `${entry.index}/${entry.term} ${formatData(entry.data)}`;
  }
}

export function formatEntries<T>(entries: readonly Entry<T>[], formatData: DataFormatter<T> = defaultData): string {
  return `[${entries.map((e) => formatEntry(e, formatData)).join(', ')}]`;
}

export function formatHardState(hs: HardState): string {
  return `term=${hs.term} vote=${hs.vote ?? '-'} commit=${hs.commit}`;
}

/** e.g. `b1->b2 app term=2 prev=3/1 commit=3 [4/2 v1]`. */
export function formatMessage<T, S>(m: Message<T, S>, formatData: DataFormatter<T> = defaultData): string {
  const head = `${m.from}->${m.to} ${m.type} term=${m.term}`;
  switch (m.type) {
    case 'app':
      return `${head} prev=${m.prevIndex}/${m.prevTerm} commit=${m.commit}${m.commitOnly === true ? ' commit-only' : ''} ${formatEntries(m.entries, formatData)}`;
    case 'app-resp':
      return m.reject ? `${head} reject index=${m.index} hint=${m.hintIndex}/${m.hintTerm}${recoveringMark(m)}` : `${head} index=${m.index}`;
    case 'vote':
    case 'pre-vote':
      return `${head} last=${m.lastIndex}/${m.lastTerm}${m.transfer ? ' transfer' : ''}${m.confIndex === undefined ? '' : ` removal=${m.confIndex}/${m.confTerm ?? '?'}`}`;
    case 'vote-resp':
    case 'pre-vote-resp':
      return `${head} ${m.reject ? 'reject' : 'grant'}${m.recovering === true ? ' recovering' : ''}${m.wouldGrant === true ? ' would-grant' : ''}${m.committedIndex === undefined ? '' : ` committed=${m.committedIndex}/${m.committedTerm ?? '?'}`}`;
    case 'heartbeat':
      return `${head} commit=${m.commit}${m.quiesce === true ? ' quiesce' : ''}`;
    case 'heartbeat-resp':
      return `${m.quiesce === true ? `${head} quiesce` : head}${recoveringMark(m)}${m.commit === undefined ? '' : ` commit=${m.commit}`}`;
    case 'timeout-now':
      return m.commit === undefined ? head : `${head} commit=${m.commit}/${m.commitTerm ?? '?'}`;
    case 'snapshot':
      return `${head} snap=${m.snapshot.meta.index}/${m.snapshot.meta.term} ${formatConf(m.snapshot.meta.conf)}`;
  }
}

/** ` recovering since=<start term>` on a recovering follower's answer, else nothing. */
function recoveringMark(m: AppendResponse | HeartbeatResponse): string {
  return m.recovering === true ? ` recovering since=${m.startTerm ?? '?'}` : '';
}
