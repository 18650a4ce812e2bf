import { describe, expect, it } from 'vitest';
import { devPorts } from './dev-cluster.js';

describe('relaymq dev ports', () => {
  it('numbers the brokers from the first one\'s ports', () => {
    expect(devPorts(3, 7401, 7501, 9401)).toEqual({ client: [7401, 7402, 7403], peer: [7501, 7502, 7503], admin: [9401, 9402, 9403] });
  });

  it('gives every broker a free port for 0, never ports 1, 2, ...', () => {
    expect(devPorts(3, 0, 7501, 0)).toEqual({ client: [0, 0, 0], peer: [7501, 7502, 7503], admin: [0, 0, 0] });
    expect(devPorts(1, 0, 0, 0)).toEqual({ client: [0], peer: [0], admin: [0] });
  });

  it('refuses peer port 0 for several brokers (each must know the others\' in advance) and ranges past 65535', () => {
    expect(() => devPorts(2, 0, 0, 0)).toThrow('--peer-port 0 works with --count 1 only');
    expect(() => devPorts(3, 65534, 7501, 9401)).toThrow('--port 65534 leaves no room for 3 brokers (the last would be 65536, above 65535)');
    expect(() => devPorts(3, 7401, 7501, 65535)).toThrow(/^--admin-port 65535 leaves no room/);
    expect(devPorts(2, 65534, 7501, 9401).client).toEqual([65534, 65535]);
  });
});
