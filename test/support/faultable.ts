import type { Broker, BrokerOptions } from '@relaymq/broker';
import { FaultLink } from '../chaos/link.js';
import type { Fixture } from './cluster.js';
import { freePorts } from './ports.js';

/** An in-process cluster whose every connection goes through a {@link FaultLink} the test can block, drop or delay. */
export interface FaultableCluster {
  brokers: Broker[];
  /** `${from}->${to}`: the peer connection `from` dials to `to`. */
  peerLinks: Map<string, FaultLink>;
  /** Client URLs, through each broker's client link (what the brokers advertise). */
  urls: string[];
  /** Every link of `id`: the peer connections it dials and is dialed on, and its client link. */
  linksOf(id: string): FaultLink[];
}

/** Starts brokers `ids` (replication factor 3 unless `options` say otherwise) with a fault link on every peer and client connection. */
export async function faultableCluster(fixture: Fixture, ids: string[], options: BrokerOptions = {}): Promise<FaultableCluster> {
  const peerPorts = await freePorts(ids.length);
  const clientPorts = await freePorts(ids.length);
  const peerLinks = new Map<string, FaultLink>();
  const clientLinks = new Map<string, FaultLink>();
  const link = async (name: string, port: number): Promise<FaultLink> => {
    const started = await FaultLink.start(name, port);
    fixture.defer(() => started.close());
    return started;
  };
  for (const [i, from] of ids.entries()) {
    for (const [j, to] of ids.entries()) if (i !== j) peerLinks.set(`${from}->${to}`, await link(`${from}->${to}`, peerPorts[j] as number));
    clientLinks.set(from, await link(`client->${from}`, clientPorts[i] as number));
  }
  const urls = ids.map((id) => `ws://127.0.0.1:${(clientLinks.get(id) as FaultLink).port}`);
  const brokers = await Promise.all(
    ids.map((id, i) =>
      fixture.broker({
        replicationFactor: 3,
        ...options,
        id,
        port: clientPorts[i],
        peerPort: peerPorts[i],
        advertisedUrl: urls[i],
        peers: ids.flatMap((other) => (other === id ? [] : [`${other}@127.0.0.1:${(peerLinks.get(`${id}->${other}`) as FaultLink).port}`])),
      }),
    ),
  );
  const linksOf = (id: string): FaultLink[] => [
    ...[...peerLinks.entries()].filter(([name]) => name.startsWith(`${id}->`) || name.endsWith(`->${id}`)).map(([, l]) => l),
    clientLinks.get(id) as FaultLink,
  ];
  return { brokers, peerLinks, urls, linksOf };
}
