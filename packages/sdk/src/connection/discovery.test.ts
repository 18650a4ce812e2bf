import { describe, expect, it } from 'vitest';
import { resolveClientOptions } from '../options.js';
import type { BrokerInfo } from '../protocol/index.js';
import type { WebSocketConstructor } from '../transport/websocket.js';
import { BrokerPool, type PoolListener } from './pool.js';

const seeds = ['ws://seed-1:7401', 'ws://seed-2:7401'];

function pool(discovery = true): { pool: BrokerPool; changes: Array<{ added: string[]; removed: string[] }> } {
  const changes: Array<{ added: string[]; removed: string[] }> = [];
  const listener: PoolListener = {
    activeChanged: () => {},
    dialing: () => {},
    dialFailed: () => {},
    brokersChanged: (added, removed) => changes.push({ added, removed }),
    gaveUp: () => {},
    connectionClosed: () => {},
    frame: () => {},
  };
  const options = resolveClientOptions({ brokers: seeds, discovery, WebSocket: class {} as unknown as WebSocketConstructor });
  return { pool: new BrokerPool(options, listener), changes };
}

const alive = (url: string): BrokerInfo => ({ id: url, url, state: 'alive' });

describe('discovery', () => {
  it('adds brokers from cluster views and removes them when they leave, never a seed', () => {
    const { pool: p, changes } = pool();
    p.learn({ brokers: [alive(seeds[0] as string), alive('ws://b3:7401'), alive('ws://b4:7401')] });
    expect(p.knownBrokers).toEqual([...seeds, 'ws://b3:7401', 'ws://b4:7401']);
    // The view no longer lists b4, nor any seed: b4 goes, seeds stay.
    p.learn({ brokers: [alive('ws://b3:7401'), { ...alive('ws://b4:7401'), state: 'dead' }] });
    expect(p.knownBrokers).toEqual([...seeds, 'ws://b3:7401']);
    expect(changes).toEqual([
      { added: ['ws://b3:7401', 'ws://b4:7401'], removed: [] },
      { added: [], removed: ['ws://b4:7401'] },
    ]);
    p.close();
  });

  it('does nothing with discovery off (clients behind a load balancer)', () => {
    const { pool: p, changes } = pool(false);
    p.learn({ brokers: [alive('ws://b3:7401')] });
    expect(p.knownBrokers).toEqual(seeds);
    expect(changes).toEqual([]);
    p.close();
  });

  it('dials the least-loaded broker first', () => {
    const dialed: string[] = [];
    const RecordingWebSocket = class {
      binaryType = 'arraybuffer';
      readyState = 0;
      bufferedAmount = 0;
      onopen = null;
      onmessage = null;
      onclose = null;
      onerror = null;
      constructor(url: string) {
        dialed.push(url);
      }
      send(): void {}
      close(): void {}
    } as unknown as WebSocketConstructor;
    const brokers = ['ws://busy:1', 'ws://idle:1', 'ws://medium:1'];
    const options = resolveClientOptions({ brokers, poolSize: 1, WebSocket: RecordingWebSocket });
    const p = new BrokerPool(options, { activeChanged() {}, dialing() {}, dialFailed() {}, brokersChanged() {}, gaveUp() {}, connectionClosed() {}, frame() {} });
    const loaded = (url: string, connections: number): BrokerInfo => ({ ...alive(url), load: { connections, partitionsLed: 0 } });
    p.learn({ brokers: [loaded('ws://busy:1', 40), loaded('ws://idle:1', 0), loaded('ws://medium:1', 7)] });
    p.start();
    expect(dialed).toEqual(['ws://idle:1']);
    p.close();
  });
});
