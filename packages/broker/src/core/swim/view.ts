/**
 * What clients see of the membership: the `cluster` frame brokers push so
 * that an SDK given one seed learns every broker's client URL and load.
 */
import type { BrokerInfo, ClusterView } from '@relaymq/sdk/protocol';
import type { Member, MembershipEvent } from './types.js';

/**
 * The cluster view for clients, from one node's member list (`members()`):
 * alive and suspect members (a suspect may well be reachable), and dead ones
 * marked `dead` until they are reaped, so clients drop them. Members that
 * left are omitted. Sorted by id.
 */
export function clusterView(members: readonly Member[]): ClusterView {
  const brokers: BrokerInfo[] = [];
  for (const m of [...members].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    if (m.state === 'left') continue;
    const info: BrokerInfo = { id: m.id, url: m.meta.clientUrl, state: m.state };
    if (m.meta.load !== undefined) info.load = { connections: m.meta.load.connections, partitionsLed: m.meta.load.partitionsLed };
    brokers.push(info);
  }
  return { brokers };
}

/**
 * Whether an event changes what {@link clusterView} returns, i.e. whether the
 * broker should push a new `cluster` frame. A refutation only bumps this
 * node's incarnation, which clients do not see.
 */
export function changesClusterView(event: MembershipEvent): boolean {
  return event.type !== 'refuted';
}
