import { RelayError, topicMatches, type Cursor, type StartPosition } from '@relaymq/sdk/protocol';
import type { LogEngine } from '../engine/engine.js';
import type { GroupMember } from './group-member.js';

/** The key of a partition's cursor in {@link Subscription.cursors}. */
export const cursorKey = (topic: string, partition: number): string => `${partition}:${topic}`;

/**
 * One client subscription on a broker: a pattern, a cursor per matching
 * partition (the next offset to send) and the credit the client granted.
 * It never holds messages itself; it reads them from the engine when credit
 * allows, so a slow subscriber costs a few numbers, not a queue.
 *
 * It also remembers which of its cursors may have something to send
 * ({@link ready}), so a delivery pass reads those and not every partition
 * the pattern matches: a subscription to `>` over 10,000 partitions costs one
 * read per partition that got messages, not 10,000 per append.
 */
export class Subscription {
  readonly cursors = new Map<string, Cursor>();
  /**
   * Keys of the cursors that may have messages to send: every cursor when the
   * subscription starts, a cursor whose partition got an append, one granted
   * to a group member, every cursor again when the client grants credit. A
   * cursor leaves once a read from memory finds nothing at it; the next append
   * to its partition (or credit) brings it back. At most one entry per cursor.
   */
  readonly ready = new Set<string>();
  /** Messages the broker may still send. */
  credit: number;
  /**
   * Payload bytes the broker may still send (`Infinity`: the client named no
   * byte limit). A delivery may take it below zero by one message.
   */
  creditBytes = Infinity;
  /**
   * The incarnation of each topic the client was told of on this connection
   * (in `subscribed` cursors, or on a delivery batch); only where the engine
   * tracks incarnations.
   */
  private readonly told = new Map<string, number>();
  /**
   * Topics with a cursor whose incarnation the client was not told yet (created
   * after the subscription started, or created again after a deletion), with
   * that incarnation: the next delivery of the topic names it ({@link tell}).
   * Empty on the hot path once told, so a delivery costs one size check.
   */
  readonly untold = new Map<string, number>();
  private readonly matchCache = new Map<string, boolean>();

  constructor(
    readonly id: number,
    readonly pattern: string,
    private readonly from: StartPosition,
    credit: number,
    /** Topics the subscriber may read; the others never match, whatever the pattern says. */
    private readonly mayRead: (topic: string) => boolean = () => true,
    /** Set for a consumer-group member: only its assigned partitions are delivered. */
    readonly member?: GroupMember,
  ) {
    this.credit = credit;
  }

  /** Whether this subscription delivers `topic`/`partition` (a group member: only those assigned to it). */
  delivers(topic: string, partition: number): boolean {
    return this.matches(topic) && (this.member === undefined || this.member.owns(topic, partition));
  }

  /** Whether `topic` matches the pattern and may be read (memoised; topics are few, lookups many). */
  matches(topic: string): boolean {
    let hit = this.matchCache.get(topic);
    if (hit === undefined) {
      hit = topicMatches(this.pattern, topic) && this.mayRead(topic);
      if (this.matchCache.size < 100_000) this.matchCache.set(topic, hit);
    }
    return hit;
  }

  /**
   * Places a cursor on every partition the pattern matches now: a resumed
   * position when the client knows one, otherwise where `from` says. A
   * resumed position naming another incarnation of its topic than this
   * broker's (the topic was deleted and created again) is not taken: its
   * topic is in `stale`, and its partitions start where `from` says.
   * The cursors returned carry their topic's incarnation when the engine
   * tracks them. `before`: the incarnation of each topic here before
   * positions in `resume` that name none were read (a durable's stored
   * ones); a topic changed since is answered `NOT_READY`, as one changed
   * while this runs.
   */
  async start(
    engine: LogEngine,
    resume: readonly Cursor[],
    before: ReadonlyMap<string, number> = new Map(),
  ): Promise<{ cursors: Cursor[]; resets: Cursor[]; stale: string[] }> {
    // A group member's cursors follow its assignment (group-member.ts), never the pattern alone.
    if (this.member !== undefined) return { cursors: [], resets: [], stale: [] };
    const resets: Cursor[] = [];
    const stale = new Set<string>();
    /** Each placed topic's incarnation when its positions were decided (`undefined`: none tracked). */
    const seen = new Map<string, number | undefined>(before);
    for (const cursor of resume) {
      if (!this.matches(cursor.topic)) continue;
      const { incarnation, ...position } = cursor;
      // An engine without incarnations takes the position as before.
      const status = incarnation === undefined ? undefined : engine.incarnationStatus?.(cursor.topic, incarnation);
      if (status === 'gone') {
        stale.add(cursor.topic);
        continue;
      }
      // This broker has not applied the creation of the topic the client read: the client asks again (or another broker).
      if (status === 'ahead') throw new RelayError('NOT_READY', `topic ${cursor.topic} (incarnation ${incarnation}) is not known to this broker yet`);
      if (!seen.has(cursor.topic)) seen.set(cursor.topic, engine.topicIncarnation?.(cursor.topic));
      // Past the end of a log that does not survive restarts: the one the client read was lost.
      // (A replicated log is merely catching up: keep the position, and ask no replica for bounds.)
      const bounds = engine.offsetsSurviveRestart ? undefined : await engine.currentBounds(cursor.topic, cursor.partition);
      const offset = bounds !== undefined && cursor.offset > bounds.end ? bounds.start : cursor.offset;
      if (offset !== cursor.offset) resets.push({ ...position, offset });
      this.cursors.set(cursorKey(cursor.topic, cursor.partition), { ...position, offset });
    }
    for (const topic of engine.topics()) {
      if (!this.matches(topic)) continue;
      const count = engine.partitionCount(topic) ?? 0;
      for (let partition = 0; partition < count; partition++) {
        const key = cursorKey(topic, partition);
        if (this.cursors.has(key)) continue;
        if (!seen.has(topic)) seen.set(topic, engine.topicIncarnation?.(topic));
        const offset = await this.startOffset(engine, topic, partition);
        if (!this.cursors.has(key)) this.cursors.set(key, { topic, partition, offset });
      }
    }
    // A topic deleted (and maybe created again) while this awaited bounds: its positions are the old topic's, and
    // this subscription, not yet in the fan-out, heard no deletion. The client asks again and hears it then.
    for (const [topic, incarnation] of seen) {
      if (engine.topicIncarnation?.(topic) !== incarnation) throw new RelayError('NOT_READY', `topic ${topic} changed while subscription ${this.id} started`);
    }
    this.markAllReady();
    for (const [topic, incarnation] of seen) if (incarnation !== undefined) this.told.set(topic, incarnation);
    const cursors = [...this.cursors.values()].map((c) => {
      const incarnation = seen.get(c.topic);
      return incarnation === undefined ? { ...c } : { ...c, incarnation };
    });
    return { cursors, resets, stale: [...stale] };
  }

  /**
   * `topic`/`partition` got messages: its cursor (placed now if the partition
   * appeared after the subscription started) is read on the next pass.
   */
  appended(engine: LogEngine, topic: string, partition: number): void {
    const key = cursorKey(topic, partition);
    if (!this.cursors.has(key)) {
      // New to the subscriber: it begins at the partition's start (or at `from`'s offset, if later).
      const { start } = engine.bounds(topic, partition);
      const from = this.from;
      this.cursors.set(key, { topic, partition, offset: typeof from === 'object' && 'offset' in from ? Math.max(from.offset, start) : start });
      // No `subscribed` named this topic's incarnation (a group member's positions carry epochs instead).
      const incarnation = this.member === undefined ? engine.topicIncarnation?.(topic) : undefined;
      if (incarnation !== undefined && this.told.get(topic) !== incarnation) this.untold.set(topic, incarnation);
    }
    this.ready.add(key);
  }

  /**
   * The incarnation to name on a delivery of `topic`, once: the first delivery
   * of a topic the client was not told of (see {@link untold}); `undefined` after.
   */
  tell(topic: string): number | undefined {
    const incarnation = this.untold.get(topic);
    if (incarnation === undefined) return undefined;
    this.untold.delete(topic);
    this.told.set(topic, incarnation);
    return incarnation;
  }

  /** `topic` was deleted: its cursors are gone, and a topic created again under the name is told anew. */
  forgetTopic(topic: string): void {
    for (const [key, cursor] of this.cursors) {
      if (cursor.topic !== topic) continue;
      this.cursors.delete(key);
      this.ready.delete(key);
    }
    this.told.delete(topic);
    this.untold.delete(topic);
  }

  /** Every cursor is read on the next pass (they were just placed, or a group member's assignment changed). */
  markAllReady(): void {
    for (const key of this.cursors.keys()) this.ready.add(key);
  }

  /** Where a partition that exists when the subscription starts begins: where `from` says. */
  private async startOffset(engine: LogEngine, topic: string, partition: number): Promise<number> {
    const from = this.from;
    // An offset retention already removed is kept: delivery starts at the first retained one and the SDK reports the gap.
    if (typeof from === 'object') return 'offset' in from ? from.offset : engine.offsetForTime(topic, partition, from.time);
    const { start, end } = await engine.currentBounds(topic, partition);
    if (from === 'earliest') return start;
    return end;
  }
}
