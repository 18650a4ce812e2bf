/**
 * Resume positions naming their topic's incarnation: a broker takes them only
 * for that incarnation. Another one (the topic deleted and created again, or
 * deleted) puts the topic in `stale` and starts it where `from` says; one it
 * has not applied yet is NOT_READY; an engine without incarnations, or a
 * position naming none, is taken as before. The cursors it answers carry
 * their topic's incarnation.
 */
import { describe, expect, it } from 'vitest';
import { RelayError, type Cursor } from '@relaymq/sdk/protocol';
import type { LogEngine } from '../engine/engine.js';
import { Subscription } from './subscription.js';

/** `incarnationStatus` as the cluster engine answers it, over `topics` and the deletions so far. */
function statusOf(topics: Record<string, number>, deleted: () => number) {
  return (topic: string, incarnation: number): 'current' | 'gone' | 'ahead' => {
    const current = topics[topic];
    if (current !== undefined) return current === incarnation ? 'current' : current > incarnation ? 'gone' : 'ahead';
    return deleted() > incarnation ? 'gone' : 'ahead';
  };
}

/** A replicated engine's view: `topics` with their incarnation, partition 0 holding offsets 0–9; `deleted` deletions so far. */
function engine(topics: Record<string, number>, deleted: number, tracks = true): LogEngine {
  const fake = {
    offsetsSurviveRestart: true,
    topics: () => Object.keys(topics),
    partitionCount: (topic: string) => (topic in topics ? 1 : undefined),
    currentBounds: async () => ({ start: 0, end: 10 }),
    offsetForTime: async () => 0,
    ...(tracks
      ? {
          topicIncarnation: (topic: string) => topics[topic],
          incarnationStatus: statusOf(topics, () => deleted),
        }
      : {}),
  };
  return fake as unknown as LogEngine;
}

const at = (topic: string, offset: number, incarnation?: number): Cursor => ({ topic, partition: 0, offset, ...(incarnation === undefined ? {} : { incarnation }) });

describe('Subscription.start and topic incarnations', () => {
  it('resumes a position of the current incarnation, and answers cursors with their incarnation', async () => {
    const started = await new Subscription(1, 't', 'earliest', 10).start(engine({ t: 2 }, 2), [at('t', 7, 2)]);
    expect(started).toEqual({ cursors: [at('t', 7, 2)], resets: [], stale: [] });
  });

  it('does not resume a position of an earlier incarnation (deleted, created again): the topic is stale and starts where `from` says', async () => {
    const started = await new Subscription(1, 'x.*', 'earliest', 10).start(engine({ 'x.t': 3, 'x.u': 0 }, 3), [at('x.t', 7, 1), at('x.u', 4, 0)]);
    expect(started.stale).toEqual(['x.t']);
    expect(started.cursors).toEqual([at('x.u', 4, 0), at('x.t', 0, 3)]);
  });

  it('a topic missing here and deleted since the incarnation was created is stale; one this broker may lag behind is NOT_READY', async () => {
    expect((await new Subscription(1, 't', 'earliest', 10).start(engine({}, 2), [at('t', 7, 1)])).stale).toEqual(['t']);
    const behind = await new Subscription(1, 't', 'earliest', 10).start(engine({}, 1), [at('t', 7, 1)]).catch((err: unknown) => err);
    expect(behind).toBeInstanceOf(RelayError);
    expect((behind as RelayError).code).toBe('NOT_READY');
    // A newer incarnation than the broker's own: it has not applied the deletion and creation yet.
    const older = await new Subscription(1, 't', 'earliest', 10).start(engine({ t: 0 }, 0), [at('t', 7, 1)]).catch((err: unknown) => err);
    expect((older as RelayError).code).toBe('NOT_READY');
  });

  it('takes a position naming no incarnation (an older client), or on an engine without incarnations, as before', async () => {
    expect(await new Subscription(1, 't', 'earliest', 10).start(engine({ t: 3 }, 3), [at('t', 7)])).toEqual({ cursors: [at('t', 7, 3)], resets: [], stale: [] });
    expect(await new Subscription(1, 't', 'earliest', 10).start(engine({ t: 3 }, 3, false), [at('t', 7, 1)])).toEqual({ cursors: [at('t', 7)], resets: [], stale: [] });
  });

  it('a topic deleted and created again while start awaits (bounds of another topic) is not answered with the old position under its new incarnation', async () => {
    const topics: Record<string, number> = { 'x.t': 0, 'x.u': 0 };
    const fake = engine(topics, 0) as unknown as { currentBounds: () => Promise<{ start: number; end: number }>; incarnationStatus: unknown };
    let deleted = 0;
    fake.incarnationStatus = statusOf(topics, () => deleted);
    fake.currentBounds = async () => {
      // Applied while the bounds of x.u are asked (a remote leader's answer): x.t is deleted, then created again.
      await Promise.resolve();
      deleted = 1;
      topics['x.t'] = 1;
      return { start: 0, end: 10 };
    };
    const started = await new Subscription(1, 'x.*', 'earliest', 10).start(fake as unknown as LogEngine, [at('x.t', 7, 0)]).catch((err: unknown) => err);
    // Offset 7 was the deleted topic's: named incarnation 1, the client would skip the new topic's first 7 messages
    // unannounced, and resume there as if they were the new one's. The client asks again instead (and then hears stale).
    expect(started).toBeInstanceOf(RelayError);
    expect((started as RelayError).code).toBe('NOT_READY');
  });
});
