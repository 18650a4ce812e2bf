import type { Client } from 'rabbitmq-stream-js-client';
import { describe, expect, it } from 'vitest';
import { BackboneHealthMonitor } from './health.js';

/**
 * What a gateway reports of its connection. Behind a proxy, a load balancer
 * or NAT the node it reaches advertises another address than the one dialled
 * (the client's `getConnectionInfo()` answers the advertised one).
 */
describe('backbone health snapshot', () => {
  it('names the configured node the connection was dialled at, and the address that node advertises', () => {
    let live: Client | undefined = { getConnectionInfo: () => ({ host: 'rabbit-0', port: 5552 }) } as unknown as Client;
    const monitor = new BackboneHealthMonitor({
      endpoint: { hosts: [{ host: '10.0.0.5', port: 5553 }, { host: '10.0.0.6', port: 5553 }], username: 'u', password: 'p', vhost: '/' },
      client: () => live,
      dialled: () => (live === undefined ? undefined : '10.0.0.5:5553'),
      streams: () => [],
      openConnections: () => 2,
      timeoutMs: 1000,
      now: () => 0,
    });
    const connected = monitor.snapshot();
    expect(connected).toMatchObject({ connected: true, connectedTo: '10.0.0.5:5553', advertisedAs: 'rabbit-0:5552', connections: 2 });
    // The dialled address is one of the configured nodes the snapshot lists: an operator can tell which one.
    expect(connected.nodes.map((n) => n.node)).toContain(connected.connectedTo);

    live = undefined; // reconnecting
    expect(monitor.snapshot()).toMatchObject({ connected: false, connectedTo: null, advertisedAs: null, connections: 0 });
  });
});
