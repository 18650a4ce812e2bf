import { MAX_TOPICS_PER_ENTRY } from '../core/metadata/metadata.js';

/** Peer method: creates topics on the metadata leader (a list of names; `meta.create` takes one). */
export const CREATE_TOPICS_METHOD = 'meta.create-topics';

interface Waiter {
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Topic creation in bulk. The topics asked for in one turn of the event loop
 * (a `metadata` request naming many topics, many requests at once) are sent
 * together: one request to the metadata leader and one metadata entry per
 * {@link MAX_TOPICS_PER_ENTRY} topics, instead of a round trip and an entry
 * for each. Thousands of partitions then cost a few commits, not thousands
 * in a row.
 */
export class TopicCreation {
  /** Topics asked for in this turn, with who waits for each. */
  private readonly queued = new Map<string, Waiter[]>();
  private scheduled = false;

  /** @param createTopics - creates the topics through the metadata leader; resolves once they are committed. */
  constructor(private readonly createTopics: (topics: string[]) => Promise<unknown>) {}

  /** Resolves once the metadata leader created `topic` (or found it existing); rejects with the batch's failure. */
  create(topic: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const waiters = this.queued.get(topic);
      if (waiters === undefined) this.queued.set(topic, [{ resolve, reject }]);
      else waiters.push({ resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    this.scheduled = false;
    const queued = [...this.queued];
    this.queued.clear();
    for (let i = 0; i < queued.length; i += MAX_TOPICS_PER_ENTRY) {
      const batch = queued.slice(i, i + MAX_TOPICS_PER_ENTRY);
      const settle = (done: (waiter: Waiter) => void): void => {
        for (const [, waiters] of batch) for (const waiter of waiters) done(waiter);
      };
      this.createTopics(batch.map(([topic]) => topic)).then(
        () => settle((waiter) => waiter.resolve()),
        (err: unknown) => settle((waiter) => waiter.reject(err)),
      );
    }
  }
}
