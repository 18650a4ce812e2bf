/** Holding back one broker's metadata (its Raft messages, not its heartbeats' links), and reading raw answers: the lagging-broker tests' tools. */
import type { Broker } from '@relaymq/broker';
import type { BrokerFrame } from '@relaymq/sdk/protocol';
import type { RawClient } from './raw-client.js';
import { waitFor } from './wait.js';

interface MetaEngine {
  groupStatus(): Array<{ group: string; leader: string | null }>;
  metadataLeaderKnown(): boolean;
}

/** `brokers`' metadata leader, once every one of them knows it, and another broker (the one to hold behind). */
export async function leaderAndFollower(brokers: readonly Broker[]): Promise<{ leader: Broker; follower: Broker }> {
  const engineOf = (b: Broker): MetaEngine => b.engine as unknown as MetaEngine;
  const metaLeader = (): string | null => engineOf(brokers[0] as Broker).groupStatus().find((g) => g.group === 'meta')?.leader ?? null;
  await waitFor(() => metaLeader() !== null && brokers.every((b) => engineOf(b).metadataLeaderKnown()), 'a metadata leader every broker knows', 20_000);
  const leader = brokers.find((b) => b.id === metaLeader()) as Broker;
  return { leader, follower: brokers.find((b) => b !== leader) as Broker };
}

interface RoutingEngine {
  toGroup(from: string, channel: string, payload: unknown): void;
}

/** Keeps the metadata group's Raft messages from `broker` until the returned function hands them over, in order. */
export function holdMetadata(broker: Broker): () => void {
  const engine = broker.engine as unknown as RoutingEngine;
  const toGroup = engine.toGroup.bind(engine);
  const held: Array<[string, string, unknown]> = [];
  engine.toGroup = (from, channel, payload) => {
    if (channel === 'raft/meta') held.push([from, channel, payload]);
    else toGroup(from, channel, payload);
  };
  return () => {
    engine.toGroup = toGroup;
    for (const [from, channel, payload] of held.splice(0)) toGroup(from, channel, payload);
  };
}

/** The answer to request `id` on `raw` (bounded wait). */
export async function answer(raw: RawClient, id: number): Promise<BrokerFrame> {
  let found: BrokerFrame | undefined;
  const answers = (f: BrokerFrame): boolean => f.type !== 'ping' && f.type !== 'pong' && 'id' in f && f.id === id;
  await waitFor(() => (found = raw.frames.find(answers)) !== undefined, `the answer to request ${id}`, 15_000);
  return found as BrokerFrame;
}
