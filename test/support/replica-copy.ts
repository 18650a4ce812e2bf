import type { Broker, StoredMessage } from '@relaymq/broker';

/** One replica's copy of partition 0 of `topic`, message by message (`offset|data as hex`), read from its engine. */
export async function replicaCopy(broker: Broker, topic: string): Promise<string[]> {
  const out: string[] = [];
  for (let offset = 0, rounds = 0; rounds < 10_000; rounds++) {
    const messages: StoredMessage[] = await broker.engine.read(topic, 0, offset, 5000, 16 * 1024 * 1024);
    const last = messages[messages.length - 1];
    if (last === undefined) break;
    for (const m of messages) out.push(`${m.offset}|${Buffer.from(m.data).toString('hex')}`);
    offset = last.offset + 1;
  }
  return out;
}
