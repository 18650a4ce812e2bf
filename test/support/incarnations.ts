/** What the topic-incarnation tests do to a standalone broker with a data directory (a cluster of one, whose metadata tracks incarnations). */
import type { Broker } from '@relaymq/broker';
import type { Fixture } from './cluster.js';

interface DeletingEngine {
  deleteTopic(topic: string): Promise<unknown>;
}

/** `solo` starts the broker; `publish` sends `count` messages (the SDK creates the topic when missing); `deleteTopic` deletes it. */
export function incarnationHelpers(fixture: Fixture, tempDir: () => Promise<string>) {
  return {
    solo: async (): Promise<Broker> => fixture.broker({ id: 'solo', dataDir: await tempDir() }),
    publish: async (broker: Broker, topic: string, count: number): Promise<void> => {
      const client = await fixture.client([broker.url]);
      for (let i = 0; i < count; i++) await client.publish(topic, `m${i}`);
    },
    deleteTopic: (broker: Broker, topic: string): Promise<unknown> => (broker.engine as unknown as DeletingEngine).deleteTopic(topic),
  };
}
