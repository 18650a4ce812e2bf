import { describe, expect, it } from 'vitest';
import { MAX_TOPICS_PER_ENTRY } from '../core/metadata/metadata.js';
import { TopicCreation } from './topic-creation.js';

/** A creator that records each bulk call and lets the test settle it. */
function recording() {
  const calls: Array<{ topics: string[]; resolve: () => void; reject: (err: unknown) => void }> = [];
  const creation = new TopicCreation(
    (topics) =>
      new Promise<void>((resolve, reject) => {
        calls.push({ topics, resolve, reject });
      }),
  );
  return { creation, calls };
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('TopicCreation', () => {
  it('sends the topics asked for in one turn as one request, each name once, and answers every caller', async () => {
    const { creation, calls } = recording();
    const answers = ['a', 'b', 'a', 'c'].map((topic) => creation.create(topic));
    await turn();
    expect(calls.map((c) => c.topics)).toEqual([['a', 'b', 'c']]);
    calls[0]?.resolve();
    await expect(Promise.all(answers)).resolves.toEqual([undefined, undefined, undefined, undefined]);

    // The next turn is the next request.
    const later = creation.create('d');
    await turn();
    expect(calls.map((c) => c.topics)).toEqual([['a', 'b', 'c'], ['d']]);
    calls[1]?.resolve();
    await later;
  });

  it(`splits a turn into requests of at most ${MAX_TOPICS_PER_ENTRY} topics, and fails only the callers of a failed one`, async () => {
    const { creation, calls } = recording();
    const topics = Array.from({ length: MAX_TOPICS_PER_ENTRY + 10 }, (_, i) => `t${i}`);
    const answers = topics.map((topic) => creation.create(topic).then(() => 'ok', (err: Error) => err.message));
    await turn();
    expect(calls.map((c) => c.topics.length)).toEqual([MAX_TOPICS_PER_ENTRY, 10]);
    expect(calls.flatMap((c) => c.topics)).toEqual(topics);
    calls[0]?.resolve();
    calls[1]?.reject(new Error('no quorum'));
    const settled = await Promise.all(answers);
    expect(settled.slice(0, MAX_TOPICS_PER_ENTRY).every((s) => s === 'ok')).toBe(true);
    expect(settled.slice(MAX_TOPICS_PER_ENTRY)).toEqual(Array.from({ length: 10 }, () => 'no quorum'));
  });
});
